// The test control plane is a real kube-apiserver with the two controllers tests notice
// when missing (namespace deletion, garbage collection) and a working kubectl. Leases and
// RBAC have their own files (lease.test.ts, rbac.test.ts).
import { ApiException, CoreV1Api, VersionApi } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  ENV,
  freshNamespace,
  kubeConfig,
  kubectl,
  TEST_RUN_LABEL,
  testerSkipReason,
  waitFor,
} from "../support/cluster.js";

async function httpStatus(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

describe("control plane", () => {
  it("answers /version", async () => {
    const v = await kubeConfig().makeApiClient(VersionApi).getCode();
    expect(v.gitVersion).toMatch(/^v1\.\d+\.\d+/);
    expect(Number(v.minor.replace(/\D.*$/, ""))).toBeGreaterThanOrEqual(30);
  });

  it("gives each test a fresh namespace labelled with the run id", async () => {
    const a = await freshNamespace("Fresh_NS");
    const b = await freshNamespace("Fresh_NS");
    expect(a).not.toBe(b);
    expect(a).toMatch(/^fresh-ns-[0-9a-f]{8}$/);
    const ns = await kubeConfig().makeApiClient(CoreV1Api).readNamespace({ name: a });
    expect(ns.metadata?.labels?.[TEST_RUN_LABEL]).toBe(process.env[ENV.runId]);
    expect(process.env[ENV.runId]).toBeTruthy();
  });

  it("runs the garbage collector and the namespace controller", async () => {
    const ns = await freshNamespace("gc");
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "owner" } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [
            {
              apiVersion: "v1",
              kind: "ConfigMap",
              name: "owner",
              uid: owner.metadata?.uid ?? "",
              controller: true,
            },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: "owner", namespace: ns });
    await waitFor(
      async () =>
        (await httpStatus(core.readNamespacedConfigMap({ name: "dependent", namespace: ns }))) === 404,
      { timeoutMs: 30_000, description: "the dependent ConfigMap to be garbage-collected" },
    );

    await core.deleteNamespace({ name: ns });
    await waitFor(async () => (await httpStatus(core.readNamespace({ name: ns }))) === 404, {
      timeoutMs: 60_000,
      description: `namespace ${ns} to be deleted`,
    });
  });

  it("works with the built kubectl", async () => {
    const ns = await freshNamespace("kubectl");
    const version = await kubectl(["version", "-o", "json"]);
    expect(version.code, version.stderr).toBe(0);
    const parsed = JSON.parse(version.stdout) as {
      clientVersion?: { gitVersion?: string };
      serverVersion?: { gitVersion?: string };
    };
    expect(parsed.serverVersion?.gitVersion).toMatch(/^v1\./);
    expect(parsed.clientVersion?.gitVersion).toBeTruthy();

    const get = await kubectl(["get", "ns", "-o", "name"]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout.split("\n")).toEqual(expect.arrayContaining(["namespace/default", `namespace/${ns}`]));

    const applied = await kubectl(["apply", "-n", ns, "-f", "-"], {
      input: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  k: v\n",
    });
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain("configmap/hello created");

    if (testerSkipReason() === undefined) {
      const denied = await kubectl(["get", "secrets", "-n", ns], { identity: "tester" });
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/forbidden/i);
    }
  });
});
