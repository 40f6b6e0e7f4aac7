/**
 * A local cluster that runs pods: the control plane of tools/testenv plus a real node
 * (tools/node: containerd, kubelet, kube-controller-manager, kube-scheduler in a private network
 * namespace) with the project's image and the pause image imported (tools/image). Needs root
 * (network namespaces, cgroups, mounts) and Linux; installs its Debian packages where missing.
 */
import { ensureImages, type Images } from "../../tools/image/build.js";
import { type LocalNode, startNode } from "../../tools/node/node.js";
import { type ControlPlane, startControlPlane } from "./controlplane.js";

/** A control plane with a node. */
export interface ClusterWithNode {
  cp: ControlPlane;
  node: LocalNode;
  images: Images;
  /** Seconds each part took to be ready: images (build or cache), control plane, node. */
  timings: { imagesMs: number; controlPlaneMs: number; nodeMs: number };
  /** Stops the node, then the control plane; throws if the node's clean-up was incomplete. */
  stop(): Promise<void>;
}

/** Why this machine cannot run a node, or undefined if it can try. */
export function nodeUnsupportedReason(): string | undefined {
  if (process.platform !== "linux") return `a node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "a node needs root (network namespaces, cgroups, mounts)";
  return undefined;
}

/** Builds or finds the images, starts the control plane, then the node. */
export async function startClusterWithNode(
  opts: { log?: (msg: string) => void } = {},
): Promise<ClusterWithNode> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const reason = nodeUnsupportedReason();
  if (reason) throw new Error(reason);
  let t = Date.now();
  const images = await ensureImages(log);
  const imagesMs = Date.now() - t;
  t = Date.now();
  const cp = await startControlPlane();
  const controlPlaneMs = Date.now() - t;
  log(`control plane ${cp.server} ready in ${(controlPlaneMs / 1000).toFixed(1)} s`);
  t = Date.now();
  let node: LocalNode;
  try {
    node = await startNode(cp, {
      images: [images.app.file, images.pause.file],
      sandboxImage: images.pause.ref,
      log,
    });
  } catch (err) {
    await cp.stop();
    throw err;
  }
  const nodeMs = Date.now() - t;
  return {
    cp,
    node,
    images,
    timings: { imagesMs, controlPlaneMs, nodeMs },
    stop: async () => {
      try {
        await node.stop();
      } finally {
        await cp.stop();
      }
    },
  };
}
