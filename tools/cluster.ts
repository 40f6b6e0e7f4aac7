// `npm run cluster`: a local control plane for manual use and demos.
// Installs crds/ if present, prints the environment to use it, stays up until Ctrl-C.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../test/support/controlplane.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const crdDir = path.join(repoRoot, "crds");

async function main(): Promise<void> {
  const started = Date.now();
  const cp = await startControlPlane();
  process.stderr.write(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);

  let stopping = false;
  const shutdown = (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write("\nstopping control plane...\n");
    void cp.stop().then(() => process.exit(code));
  };
  process.on("SIGINT", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));

  const hasCrds =
    fs.existsSync(crdDir) && fs.readdirSync(crdDir).some((f) => f.endsWith(".yaml") || f.endsWith(".yml"));
  if (hasCrds) {
    const res = spawnSync(cp.kubectlPath, ["--kubeconfig", cp.kubeconfig, "apply", "-f", crdDir], {
      encoding: "utf8",
    });
    process.stderr.write(res.stdout + res.stderr);
    if (res.status !== 0) {
      process.stderr.write("kubectl apply -f crds/ failed\n");
      shutdown(1);
      return;
    }
  }

  process.stdout.write(
    [
      `# ${cp.server}  (admin: slotmap-admin; non-admin: KUBECONFIG=${cp.testerKubeconfig})`,
      `export KUBECONFIG=${cp.kubeconfig}`,
      `export PATH=${path.dirname(cp.kubectlPath)}:$PATH`,
      "# Ctrl-C to stop; the cluster's data is deleted.",
      "",
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
