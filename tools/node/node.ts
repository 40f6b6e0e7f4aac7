/**
 * A real single node for the local control plane (test/support/controlplane.ts): containerd,
 * runc and the CNI plugins from Debian packages; kubelet, kube-controller-manager and
 * kube-scheduler built at testenv's Kubernetes version (tools/node/build.mjs); the images of
 * tools/image imported into containerd. No registry, no docker engine.
 *
 * The kubelet and containerd run in a private network namespace (`nsenter --net`, so they still
 * share the host's mounts) whose `lo` holds the node IP and the `kubernetes` Service IP; pods get
 * addresses on a bridge there. A forwarder joins the two sides: the Service IP's port 443 to the
 * API server on the host's loopback (so pods use the default in-cluster configuration without
 * kube-proxy), and the host's loopback to the kubelet (so the API server reaches it for logs,
 * exec and port-forward: the node is named `localhost`, and the API server dials a node by its
 * Hostname address first). Nothing of the pod network exists outside the namespace.
 *
 * stop() kills what the node started (pods, shims, containerd, the components), unmounts what
 * they mounted, and removes the namespace, the cgroups and the node's directory; it throws if
 * anything is left.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ManagedProcess, ProcessGroup } from "../../test/e2e/harness.js";
import type { ControlPlane } from "../../test/support/controlplane.js";
import { cniConfig, cniDirs, containerdConfig, kubeletConfig, NODE_NETWORK, nodeLayout } from "./config.js";
import { run } from "./exec.js";
import {
  claimHostDirs,
  createCgroupRoot,
  createNetns,
  deleteNetns,
  killNodeProcesses,
  leftovers,
  NETNS_PREFIX,
  netnsPath,
  podEntries,
  releaseHostDirs,
  removeNewPodEntries,
  removeNodeFiles,
  sweepStaleNodes,
} from "./host.js";
import { CNI_BIN_DIR, ensurePackages, NODE_REQUIREMENTS } from "./packages.js";

/** The node's name: the API server reaches the kubelet by it (see the module comment). */
export const NODE_NAME = "localhost";

const buildScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "build.mjs");

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** Image archives (docker-archive tar) to import into containerd before the kubelet starts. */
  images: readonly string[];
  /** The image the pod sandboxes run; must be among `images`. */
  sandboxImage: string;
  /** Progress messages. */
  log?: (msg: string) => void;
  /** Time allowed for the node to become Ready (default 120 s). */
  readyTimeoutMs?: number;
}

/** A running node. */
export interface LocalNode {
  name: string;
  /** The node's directory: state, configuration and the components' logs (`logs/`). */
  dir: string;
  netns: string;
  /** containerd's socket, for `ctr -a`. */
  containerdSocket: string;
  /** Milliseconds from start to the Node being Ready. */
  readyAfterMs: number;
  /** Last lines of each component's log, for error messages. */
  diagnostics(lines?: number): string;
  /** Stops everything and removes every trace; throws naming what could not be removed. */
  stop(): Promise<void>;
}

/** The directory of the node with this id. */
function nodeDir(id: string): string {
  return path.join(os.tmpdir(), `${NETNS_PREFIX}${id}`);
}

/** Directory of the built node programs (kubelet, ...); builds them on first use. */
export function ensureNodePrograms(log: (msg: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [buildScript], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      for (const l of d.split("\n")) if (l.trim()) log(l);
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const dir = out.trim().split("\n").pop() ?? "";
      if (code === 0 && dir && fs.existsSync(dir)) resolve(dir);
      else reject(new Error(`building the node programs failed (exit ${code}); see the output above`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when `line` appears in the process's stdout, rejects if it exits first. */
async function waitForOutput(p: ManagedProcess, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.readStdout().includes(text)) {
    if (!p.running) throw new Error(`${p.name} exited (${JSON.stringify(p.exit)}):\n${p.tail(20)}`);
    if (Date.now() > deadline)
      throw new Error(`${p.name}: no "${text}" within ${timeoutMs} ms:\n${p.tail(20)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitUntil(
  what: string,
  timeoutMs: number,
  procs: ManagedProcess[],
  ok: () => Promise<boolean>,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ok().catch(() => false)) return;
    const dead = procs.find((p) => !p.running);
    if (dead)
      throw new Error(`${dead.name} exited (${JSON.stringify(dead.exit)}) before ${what}:\n${dead.tail(20)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts a node for `cp`; see the module comment. */
export async function startNode(cp: ControlPlane, opts: NodeOptions): Promise<LocalNode> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const started = Date.now();
  await ensurePackages(NODE_REQUIREMENTS, log);
  const bin = await ensureNodePrograms(log);

  await sweepStaleNodes(nodeDir, log);
  const id = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
  const netns = `${NETNS_PREFIX}${id}`;
  const dir = nodeDir(id);
  fs.mkdirSync(dir);
  const layout = nodeLayout(dir, id, opts.sandboxImage, await freePort());
  claimHostDirs();
  const podEntriesBefore = podEntries();
  const group = new ProcessGroup({ logDir: path.join(dir, "logs") });

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      // Components first, so that nothing restarts what is killed next.
      await Promise.all(
        group
          .running()
          .filter((p) => p.name !== "containerd")
          .map((p) => p.terminate(10_000)),
      );
      await killNodeProcesses(layout.cgroupRoot, dir);
      await group.stopAll(10_000);
      group.dispose();
      await killNodeProcesses(layout.cgroupRoot, dir);
      await removeNodeFiles(layout.cgroupRoot, dir);
      await deleteNetns(netns);
      removeNewPodEntries(podEntriesBefore);
      await releaseHostDirs();
      const left = leftovers({ netns, cgroupRoot: layout.cgroupRoot, dir });
      if (left.length > 0) throw new Error(`node ${netns}: clean-up left ${left.join("; ")}`);
    })();
    return stopped;
  };

  const diagnostics = (lines = 15) =>
    group
      .all()
      .map(
        (p) =>
          `--- ${p.name} (${p.running ? "running" : `exited ${JSON.stringify(p.exit)}`}):\n${p.tail(lines)}`,
      )
      .join("\n");

  try {
    await createNetns(netns);
    createCgroupRoot(layout.cgroupRoot);
    const inNetns = (name: string, command: string, args: string[]) =>
      group.start({ name, command: "nsenter", args: [`--net=${netnsPath(netns)}`, "--", command, ...args] });

    const apiPort = new URL(cp.server).port;
    const forward = group.start({
      name: "forward",
      command: path.join(bin, "forward"),
      args: [
        ...[netnsPath(netns), `${NODE_NETWORK.serviceIP}:443`, "-", `127.0.0.1:${apiPort}`],
        ...["-", `127.0.0.1:${layout.kubeletPort}`, netnsPath(netns), `127.0.0.1:${layout.kubeletPort}`],
      ],
    });
    await waitForOutput(forward, "ready", 10_000);

    fs.mkdirSync(cniDirs(layout).confDir, { recursive: true });
    fs.writeFileSync(path.join(cniDirs(layout).confDir, "10-slotmap.conflist"), cniConfig(layout));
    fs.writeFileSync(path.join(dir, "containerd.toml"), containerdConfig(layout, CNI_BIN_DIR));
    const containerd = inNetns("containerd", "containerd", ["--config", path.join(dir, "containerd.toml")]);
    const ctr = (...args: string[]) => run("ctr", ["-a", layout.containerdSocket, "-n", "k8s.io", ...args]);
    await waitUntil("containerd answers", 30_000, [containerd], async () => {
      await ctr("version");
      return true;
    });
    for (const image of opts.images) await ctr("images", "import", image);
    log(
      `node: containerd up with ${opts.images.length} images after ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    const components: ManagedProcess[] = [containerd, forward];
    const dataFile = (f: string) => path.join(cp.dataDir, f);
    components.push(
      group.start({
        name: "kube-controller-manager",
        command: path.join(bin, "kube-controller-manager"),
        args: [
          `--kubeconfig=${cp.kubeconfig}`,
          // testenv runs the namespace and garbage-collector controllers itself; no node CIDRs
          // and no CSR signing are needed.
          "--controllers=*,-namespace,-garbagecollector,-nodeipam,-csrsigning",
          `--root-ca-file=${dataFile("ca.crt")}`,
          `--service-account-private-key-file=${dataFile("sa.key")}`,
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          "--secure-port=0",
        ],
      }),
      group.start({
        name: "kube-scheduler",
        command: path.join(bin, "kube-scheduler"),
        args: [
          `--kubeconfig=${cp.kubeconfig}`,
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          "--secure-port=0",
        ],
      }),
    );

    fs.writeFileSync(path.join(dir, "kubelet.yaml"), kubeletConfig(layout));
    // In its namespace the kubelet reaches the API server as pods do: the Service IP.
    const kubeletKubeconfig = path.join(dir, "kubelet.kubeconfig");
    const admin = fs.readFileSync(cp.kubeconfig, "utf8");
    if (!admin.includes(cp.server)) throw new Error(`${cp.kubeconfig} does not name ${cp.server}`);
    fs.writeFileSync(kubeletKubeconfig, admin.replaceAll(cp.server, `https://${NODE_NETWORK.serviceIP}:443`));
    components.push(
      inNetns("kubelet", path.join(bin, "kubelet"), [
        `--config=${path.join(dir, "kubelet.yaml")}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${path.join(dir, "kubelet")}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${NODE_NETWORK.nodeIP}`,
      ]),
    );
    await waitUntil("the node is Ready", opts.readyTimeoutMs ?? 120_000, components, async () => {
      const r = await run(cp.kubectlPath, [
        "--kubeconfig",
        cp.kubeconfig,
        "get",
        "node",
        NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return r.stdout.trim() === "True";
    });
    const readyAfterMs = Date.now() - started;
    log(`node: ${NODE_NAME} Ready after ${(readyAfterMs / 1000).toFixed(1)} s (netns ${netns}, ${dir})`);
    return {
      name: NODE_NAME,
      dir,
      netns,
      containerdSocket: layout.containerdSocket,
      readyAfterMs,
      diagnostics,
      stop,
    };
  } catch (err) {
    const kept = `${dir}-logs`;
    fs.cpSync(path.join(dir, "logs"), kept, { recursive: true });
    const message = `${(err as Error).message}\n${diagnostics()}\nthe components' logs are kept in ${kept}`;
    await stop().catch((e: unknown) => log(String(e)));
    throw new Error(message);
  }
}
