// Fencing tokens on the real API server (issue 13, part 3; docs/fencing.md). A shard process is
// SIGSTOPped mid-reconcile, after its last signal check and before its write, for longer than its
// Lease; the coordinator moves its slots to a second shard, which writes the object; then the
// first resumes and its late write goes out. With deploy/admission/fencing.yaml bound to the
// namespace, the API server refuses that write (the stored token is newer); without the binding
// it lands and overwrites the new owner's write, which is what fencing is for.
import { type ChildProcess, spawn } from "node:child_process";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION_FENCE } from "../../src/api/fence.js";
import { parseCoordinatorConfig } from "../../src/coordinator/config.js";
import { runCoordinator } from "../../src/coordinator/main.js";
import { isStatus, type KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { freshNamespace, kubeConfig, kubeconfigPath, kubectl, waitFor } from "../support/cluster.js";
import { renderDeploy, yamlOf } from "../support/deploy.js";
import { createSlotMap, ensureCrd, newHttp, repoRoot, uniqueName } from "./coordinator-harness.js";

interface Line {
  event: string;
  shard: string;
  outcome?: string;
  value?: string;
  fence?: string;
  message?: string;
}
interface Shard {
  child: ChildProcess;
  lines: Line[];
  text: () => string;
}
interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

let http: KubeHttp;
const shards: Shard[] = [];
const stop = new AbortController();
let coordinator: Promise<void> | undefined;
const coordinatorLog: string[] = [];
let policy = "";

function startShard(name: string, sm: string, leaseNs: string, freeze?: string): Shard {
  const args = [
    "--import",
    "tsx",
    "test/support/fencing-shard.ts",
    name,
    sm,
    leaseNs,
    kubeconfigPath("admin"),
  ];
  const child = spawn(process.execPath, freeze === undefined ? args : [...args, freeze], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, KUBECONFIG: "" },
  });
  const s: Shard = { child, lines: [], text: () => "" };
  let raw = "";
  let pending = "";
  child.stdout!.on("data", (b: Buffer) => {
    raw += b.toString();
    pending += b.toString();
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        s.lines.push(JSON.parse(line) as Line);
      } catch {
        // not one of ours (a warning): kept in the raw text only
      }
      nl = pending.indexOf("\n");
    }
  });
  child.stderr!.on("data", (b: Buffer) => {
    raw += b.toString();
  });
  s.text = () => raw;
  shards.push(s);
  return s;
}

async function newSlotMap(): Promise<{ sm: string; ns: string; leaseNs: string }> {
  const ns = await freshNamespace("fencing");
  const leaseNs = await freshNamespace("fencing-leases");
  const sm = uniqueName("fencing");
  await createSlotMap(http, sm, {
    leaseNamespace: leaseNs,
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } },
    resources: [{ group: "", resource: "secrets" }],
  });
  return { sm, ns, leaseNs };
}

const secretBody = (name: string, value: string) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name },
  data: { v: Buffer.from(value).toString("base64") },
});

async function owner(ns: string, name: string): Promise<ConfigMap | undefined> {
  try {
    return await http.request<ConfigMap>("GET", `/api/v1/namespaces/${ns}/configmaps/${name}-owner`);
  } catch (err) {
    if (isStatus(err, 404)) return undefined;
    throw err;
  }
}

/** Binds fencing.slotmap.dev to namespace `ns` for ConfigMaps; waits until it refuses an older token. */
async function bindFencing(ns: string): Promise<void> {
  const binding = {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicyBinding",
    metadata: { name: `fencing-it-${ns}` },
    spec: {
      policyName: "fencing.slotmap.dev",
      validationActions: ["Deny"],
      matchResources: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } },
        resourceRules: [
          { apiGroups: [""], apiVersions: ["*"], resources: ["configmaps"], operations: ["UPDATE"] },
        ],
      },
    },
  };
  await http.request("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings", {
    body: binding,
  });
  // Enforced from informers a moment later: each probe is a fresh ConfigMap stamped "2", then
  // updated to the older "1" (a probe admitted early must not make the next one a no-op).
  let n = 0;
  const cms = `/api/v1/namespaces/${ns}/configmaps`;
  await waitFor(
    async () => {
      const name = `probe-${n++}`;
      await http.request("POST", cms, {
        body: { metadata: { name, annotations: { [ANNOTATION_FENCE]: "2" } } },
      });
      try {
        await http.request("PATCH", `${cms}/${name}`, {
          body: { metadata: { annotations: { [ANNOTATION_FENCE]: "1" } } },
          contentType: "application/merge-patch+json",
        });
        return false;
      } catch (err) {
        if (isStatus(err, 403)) return true;
        throw err;
      }
    },
    { timeoutMs: 60_000, intervalMs: 250, description: "the fencing policy to take effect" },
  );
}

const lastOf = (s: Shard, event: string) => s.lines.filter((l) => l.event === event).at(-1);

/**
 * Shard a owns everything and writes Secret x's ConfigMap; x changes to "slow" and a is frozen in
 * its reconcile's pause; b joins and takes the slots once a's Lease expired, writes; a resumes.
 * Returns a's late write's outcome and the ConfigMap after it.
 */
async function freezeAndResume(target: { sm: string; ns: string; leaseNs: string }) {
  const { sm, ns, leaseNs } = target;
  const a = startShard("a", sm, leaseNs, "slow");
  const secrets = `/api/v1/namespaces/${ns}/secrets`;
  await http.request("POST", secrets, { body: secretBody("x", "fast") });
  await waitFor(async () => (await owner(ns, "x"))?.data?.owner === "a", {
    timeoutMs: 60_000,
    description: `shard a to write x-owner\n${a.text()}`,
  });

  await http.request("PUT", `${secrets}/x`, { body: secretBody("x", "slow") });
  await waitFor(() => lastOf(a, "pausing") !== undefined, {
    timeoutMs: 30_000,
    intervalMs: 20,
    description: `shard a to start the slow reconcile\n${a.text()}`,
  });
  a.child.kill("SIGSTOP");
  const frozenAt = Date.now();
  const aFence = lastOf(a, "pausing")!.fence!;

  const b = startShard("b", sm, leaseNs);
  await waitFor(async () => (await owner(ns, "x"))?.data?.owner === "b", {
    timeoutMs: 90_000,
    description: `shard b to take x over and write x-owner\n${b.text()}`,
  });
  // b logs its write after the API server answered it: the line can trail the object (CI once
  // read the ConfigMap before the line had arrived through b's stdout).
  await waitFor(() => lastOf(b, "write") !== undefined, {
    timeoutMs: 10_000,
    intervalMs: 20,
    description: `shard b's write line\n${b.text()}`,
  });
  const bWrite = lastOf(b, "write")!;
  expect(bWrite.fence! > aFence, `b's token ${bWrite.fence} above a's ${aFence}`).toBe(true);
  const frozenMs = Date.now() - frozenAt;

  a.child.kill("SIGCONT");
  await waitFor(() => a.lines.some((l) => l.event === "write" && l.value === "slow"), {
    timeoutMs: 30_000,
    description: `shard a's late write\n${a.text()}`,
  });
  const late = a.lines.find((l) => l.event === "write" && l.value === "slow")!;
  // Let a late write that landed be read back (and b possibly repair it on a later event).
  const after = await owner(ns, "x");
  for (const s of [a, b]) s.child.kill("SIGKILL");
  return { late, after, frozenMs, aFence, bFence: bWrite.fence! };
}

beforeAll(async () => {
  http = newHttp();
  await ensureCrd();
  const docs = (await renderDeploy("admission")).filter(
    (d) => d.kind === "ValidatingAdmissionPolicy" && d.metadata?.name === "fencing.slotmap.dev",
  );
  expect(docs).toHaveLength(1);
  policy = yamlOf(docs);
  const r = await kubectl(["apply", "-f", "-"], { input: policy });
  expect(r.code, r.stderr).toBe(0);
  const config = parseCoordinatorConfig(
    [
      ...["--leader-elect", "false", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"],
      ...["--identity", "fencing-it"],
    ],
    {},
  );
  coordinator = runCoordinator(config, {
    signal: stop.signal,
    kubeConfig: kubeConfig(),
    logger: pino({ level: "info" }, { write: (s: string) => void coordinatorLog.push(s.trimEnd()) }),
  });
});

afterAll(async () => {
  for (const s of shards) if (s.child.exitCode === null) s.child.kill("SIGKILL");
  stop.abort();
  await coordinator;
  if (policy) await kubectl(["delete", "--ignore-not-found", "-f", "-"], { input: policy });
  const bindings = await http.listAll<KubeObject>(
    "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
  );
  for (const b of bindings.items.filter((x) => x.metadata?.name?.startsWith("fencing-it-")))
    await kubectl(["delete", "validatingadmissionpolicybinding", b.metadata!.name!, "--ignore-not-found"]);
});

describe("fencing tokens enforced by the API server", () => {
  it("refuses the late write of a shard frozen past its Lease, once a newer owner has written", async () => {
    const target = await newSlotMap();
    await bindFencing(target.ns);
    const r = await freezeAndResume(target);
    console.log(
      `[fencing] with the policy: a frozen ${r.frozenMs} ms; a's token ${r.aFence}, b's ${r.bFence}; a's late write ${r.late.outcome}`,
    );
    expect(r.late.outcome).toBe("refused");
    expect(r.late.message).toContain("slotmap fencing");
    expect(r.after?.data).toMatchObject({ owner: "b", value: "slow" });
  });

  it("without the policy the same late write lands over the new owner's (what fencing prevents)", async () => {
    const target = await newSlotMap();
    const r = await freezeAndResume(target);
    console.log(
      `[fencing] without the policy: a frozen ${r.frozenMs} ms; a's late write ${r.late.outcome}, x-owner now names ${r.after?.data?.owner}`,
    );
    expect(r.late.outcome).toBe("ok");
    expect(r.after?.data?.owner).toBe("a");
  });
});
