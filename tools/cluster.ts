// `npm run cluster`: a local control plane for manual use and demos.
// Installs crds/ if present, prints the environment to use it, stays up until Ctrl-C.
//
// `npm run cluster -- --node` adds a real node (tools/node: containerd, kubelet,
// kube-controller-manager, kube-scheduler in a private network namespace; root only) with the
// project's image built from the Dockerfile and imported (tools/image), so that deploy/ runs as
// pods: kubectl apply -k deploy/coordinator. Ctrl-C removes the node without a trace.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { type ControlPlane, startControlPlane } from "../test/support/controlplane.js";
import { type ClusterWithNode, startClusterWithNode } from "../test/support/incluster.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const crdDir = path.join(repoRoot, "crds");

async function main(): Promise<void> {
  const opts = new Command("cluster")
    .description("a local Kubernetes control plane (and, with --node, a node that runs pods)")
    .option("--node", "add a node with containerd and a kubelet, and the project's image (needs root)")
    .allowExcessArguments(false)
    .parse(process.argv.slice(2), { from: "user" })
    .opts<{ node?: boolean }>();
  const started = Date.now();
  let withNode: ClusterWithNode | undefined;
  let cp: ControlPlane;
  if (opts.node) {
    withNode = await startClusterWithNode();
    cp = withNode.cp;
  } else {
    cp = await startControlPlane();
  }
  process.stderr.write(`cluster ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);

  let stopping = false;
  const shutdown = (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\nstopping ${withNode ? "the node and " : ""}the control plane...\n`);
    void (withNode ? withNode.stop() : cp.stop()).then(
      () => process.exit(code),
      (err: unknown) => {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
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
      ...(withNode
        ? [
            `# node ${withNode.node.name} (network namespace ${withNode.node.netns}); images ${withNode.images.app.ref}, ${withNode.images.pause.ref}`,
            "# kubectl apply -k deploy/coordinator && kubectl apply -k deploy/examples/checksum",
          ]
        : []),
      "# Ctrl-C to stop; the cluster's data is deleted.",
      "",
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
