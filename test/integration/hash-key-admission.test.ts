/**
 * deploy/admission/hash-key.yaml on the real API server: an object's `slotmap.dev/hash-key` decides
 * its slot, so an update may not add, change or remove it (a slot change under running shards could
 * let two of them reconcile the object at once: DESIGN "Trust"). Creation with the annotation,
 * other updates, and objects without it are left alone. Applied as deploy/ ships it (every
 * namespace), and removed at the end; integration files run one at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isStatus, type KubeHttp } from "../../src/kube/http.js";
import { freshNamespace, kubectl, waitFor } from "../support/cluster.js";
import { renderDeploy, yamlOf } from "../support/deploy.js";
import { newHttp } from "./coordinator-harness.js";

const ANNOTATION = "slotmap.dev/hash-key";
let http: KubeHttp;
let ns = "";
let applied = "";

const secrets = () => `/api/v1/namespaces/${ns}/secrets`;

async function create(name: string, annotations?: Record<string, string>): Promise<void> {
  await http.request("POST", secrets(), {
    body: { metadata: { name, ...(annotations ? { annotations } : {}) }, stringData: { v: "1" } },
  });
}

/** Read-modify-write of a Secret; returns the HTTP status (200, or the error's). */
async function update(
  name: string,
  edit: (s: { metadata: { annotations?: Record<string, string> } }) => void,
) {
  const s = await http.request<{ metadata: { annotations?: Record<string, string> } }>(
    "GET",
    `${secrets()}/${name}`,
  );
  edit(s);
  try {
    await http.request("PUT", `${secrets()}/${name}`, { body: s });
    return { status: 200, message: "" };
  } catch (err) {
    if (isStatus(err, 403)) return { status: 403, message: err.message };
    throw err;
  }
}

beforeAll(async () => {
  http = newHttp();
  ns = await freshNamespace("hash-key");
  const docs = (await renderDeploy("admission")).filter((d) => d.metadata?.name === "hash-key.slotmap.dev");
  expect(docs.map((d) => d.kind).sort()).toEqual([
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
  ]);
  applied = yamlOf(docs);
  const r = await kubectl(["apply", "-f", "-"], { input: applied });
  expect(r.code, r.stderr).toBe(0);
  // Policies are enforced from informers, a moment after the apply: probe until one denies. Each
  // probe sets a new value: an update admitted before the policy took effect changes the stored
  // key, and writing that same value again would be allowed for ever.
  await create("probe", { [ANNOTATION]: "p" });
  let probe = 0;
  await waitFor(
    async () =>
      (
        await update("probe", (s) => {
          s.metadata.annotations![ANNOTATION] = `q${++probe}`;
        })
      ).status === 403,
    { timeoutMs: 90_000, description: "the hash-key policy to take effect" },
  );
});

afterAll(async () => {
  if (applied) await kubectl(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], { input: applied });
});

describe("hash-key admission policy", () => {
  it("allows creating with a hash key and updates that keep it", async () => {
    await create("kept", { [ANNOTATION]: "tenant-a" });
    const r = await update("kept", (s) => {
      s.metadata.annotations!.other = "x";
    });
    expect(r.status).toBe(200);
  });

  it("denies changing, removing or adding the hash key, naming the field and both values", async () => {
    await create("changed", { [ANNOTATION]: "tenant-a" });
    const changed = await update("changed", (s) => {
      s.metadata.annotations![ANNOTATION] = "tenant-b";
    });
    expect(changed.status).toBe(403);
    expect(changed.message).toContain('metadata.annotations["slotmap.dev/hash-key"] is immutable');
    expect(changed.message).toContain('it was "tenant-a", the update makes it "tenant-b"');

    const removed = await update("changed", (s) => {
      delete s.metadata.annotations![ANNOTATION];
    });
    expect(removed.status).toBe(403);
    expect(removed.message).toContain("the update makes it absent");

    await create("plain");
    const added = await update("plain", (s) => {
      s.metadata.annotations = { [ANNOTATION]: "tenant-a" };
    });
    expect(added.status).toBe(403);
    expect(added.message).toContain("it was absent");
  });

  it("leaves objects without a hash key alone", async () => {
    await create("other");
    const r = await update("other", (s) => {
      s.metadata.annotations = { unrelated: "y" };
    });
    expect(r.status).toBe(200);
  });
});
