// vitest globalSetup for the integration project: one cluster for the whole run.
//
// SLOTMAP_KUBECONFIG set: use that existing cluster (kind, cloud) and start nothing.
//   Optional SLOTMAP_TESTER_KUBECONFIG: a non-admin identity for RBAC tests (else they skip).
//   Optional SLOTMAP_KUBECTL: kubectl to use (else `kubectl` on PATH, else the testenv one).
// Otherwise: start the local control plane (tools/testenv) and stop it at teardown.
// Workers read the result from SLOTMAP_TEST_* (see test/support/cluster.ts).
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { ENV, TEST_RUN_LABEL } from "./cluster.js";
import { ensureTestenvBinary, kubectlBeside, startControlPlane } from "./controlplane.js";

function onPath(cmd: string): boolean {
  return spawnSync(cmd, ["version", "--client"], { stdio: "ignore" }).status === 0;
}

export default async function setup(): Promise<() => Promise<void>> {
  const runId = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  process.env[ENV.runId] = runId;

  const external = process.env.SLOTMAP_KUBECONFIG;
  if (external) {
    process.env[ENV.kubeconfig] = external;
    if (process.env.SLOTMAP_TESTER_KUBECONFIG) {
      process.env[ENV.testerKubeconfig] = process.env.SLOTMAP_TESTER_KUBECONFIG;
    } else {
      delete process.env[ENV.testerKubeconfig];
    }
    delete process.env[ENV.testenvPid];
    process.env[ENV.kubectl] =
      process.env.SLOTMAP_KUBECTL ||
      (onPath("kubectl") ? "kubectl" : kubectlBeside(await ensureTestenvBinary()));
    // An external cluster outlives the run: remove the namespaces this run made.
    return async () => {
      const kc = new KubeConfig();
      kc.loadFromFile(external);
      const core = kc.makeApiClient(CoreV1Api);
      const list = await core.listNamespace({ labelSelector: `${TEST_RUN_LABEL}=${runId}` });
      await Promise.allSettled(
        list.items.map((ns) => core.deleteNamespace({ name: ns.metadata?.name ?? "" })),
      );
    };
  }

  // Timed apart: a cold build takes minutes, a start with the cached binary seconds.
  const buildStarted = Date.now();
  await ensureTestenvBinary();
  const started = Date.now();
  const cp = await startControlPlane();
  process.stderr.write(
    `[slotmap] control plane ${cp.server} ready in ${Date.now() - started} ms` +
      ` (binary ready in ${started - buildStarted} ms)\n`,
  );
  process.env[ENV.kubeconfig] = cp.kubeconfig;
  process.env[ENV.testerKubeconfig] = cp.testerKubeconfig;
  process.env[ENV.kubectl] = cp.kubectlPath;
  process.env[ENV.testenvPid] = String(cp.pid);

  // No signal handlers here: Ctrl-C reaches the child through the process group, and the
  // child exits on its own when this process dies (PR_SET_PDEATHSIG, stdin EOF).
  return async () => {
    await cp.stop();
  };
}
