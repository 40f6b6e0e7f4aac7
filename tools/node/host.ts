/**
 * What the local node changes on the host, and how each change is undone: its network
 * namespace, its cgroups, the mounts containerd and the kubelet make, the processes that outlive
 * containerd (shims, containers), and the few host directories the kubelet and the CNI plugins
 * write whatever they are told. Every function here is safe to call on a half-made node.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { NODE_NETWORK } from "./config.js";
import { run } from "./exec.js";

/** Prefix of every node's network namespace name (`ip netns list`). */
export const NETNS_PREFIX = "slotmap-node-";

/** Path of a named network namespace. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** Creates the node's namespace: `lo` up with the Service IP and the node IP on it. */
export async function createNetns(name: string): Promise<void> {
  await run("ip", ["netns", "add", name]);
  await run("ip", ["-n", name, "link", "set", "lo", "up"]);
  for (const ip of [NODE_NETWORK.serviceIP, NODE_NETWORK.nodeIP]) {
    await run("ip", ["-n", name, "addr", "add", `${ip}/32`, "dev", "lo"]);
  }
}

/** Deletes a namespace if it exists (its bridge and veths go with it). */
export async function deleteNetns(name: string): Promise<void> {
  if (fs.existsSync(netnsPath(name))) await run("ip", ["netns", "delete", name], { allowFailure: true });
}

/** Names of the node namespaces on this host. */
export function nodeNamespaces(): string[] {
  try {
    return fs.readdirSync("/run/netns").filter((n) => n.startsWith(NETNS_PREFIX));
  } catch {
    return [];
  }
}

/** Mount points of every cgroup hierarchy (v1 controllers, the v2 unified one). */
function cgroupMounts(): string[] {
  return mountInfo()
    .filter((m) => m.fsType === "cgroup" || m.fsType === "cgroup2")
    .map((m) => m.mountPoint);
}

/**
 * Creates the kubelet's cgroup root in every hierarchy (the kubelet checks that it exists). A
 * new v1 cpuset starts with no CPUs and no memory nodes, so it gets its parent's.
 */
export function createCgroupRoot(root: string): void {
  for (const mount of cgroupMounts()) {
    const dir = path.join(mount, root);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      const parent = path.join(mount, f);
      if (fs.existsSync(parent)) fs.writeFileSync(path.join(dir, f), fs.readFileSync(parent));
    }
  }
}

/** Every process id in a cgroup subtree (any hierarchy). */
function cgroupPids(root: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const p of fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n")) {
        if (p) pids.add(Number(p));
      }
    } catch {
      // not a cgroup directory
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  for (const mount of cgroupMounts()) walk(path.join(mount, root));
  return [...pids];
}

/** Removes the cgroup subtree (children first); cgroups with processes left stay. */
function removeCgroupTree(root: string): void {
  const rm = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) rm(path.join(dir, e.name));
    try {
      fs.rmdirSync(dir);
    } catch {
      // busy: reported by leftovers()
    }
  };
  for (const mount of cgroupMounts()) rm(path.join(mount, root));
}

/** Process ids whose command line mentions `text` (shims carry containerd's socket path). */
function pidsMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/**
 * SIGKILLs the node's pods (every process in its cgroup root) and containerd's shims (processes
 * whose command line names the node directory), until none is left (containers re-parent to
 * their shim, so the shims go last).
 */
export async function killNodeProcesses(cgroupRoot: string, dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pods = cgroupPids(cgroupRoot);
    const shims = pods.length === 0 ? pidsMentioning(dir) : [];
    if (pods.length === 0 && shims.length === 0) return;
    killAll(pods.length > 0 ? pods : shims);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface MountEntry {
  mountPoint: string;
  fsType: string;
}

function mountInfo(): MountEntry[] {
  // Fields: id parent major:minor root mountpoint options ... - fstype source superoptions
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [pre, post] = line.split(" - ");
      const fields = (pre ?? "").split(" ");
      const octal = (s: string) =>
        s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
      return { mountPoint: octal(fields[4] ?? ""), fsType: (post ?? "").split(" ")[0] ?? "" };
    });
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return mountInfo()
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything under `dir` (lazily: a mount still busy goes once its last user does). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) await run("umount", ["-l", m], { allowFailure: true });
  }
}

/**
 * Host directories written whatever the configuration says: the kubelet's device-plugin and
 * container-log directories, the pod logs, the CNI cache, containerd's shim sockets.
 */
export const SHARED_HOST_DIRS = [
  "/var/lib/kubelet",
  "/var/log/containers",
  "/var/log/pods",
  "/var/lib/cni",
  "/run/containerd",
] as const;

/**
 * Which of {@link SHARED_HOST_DIRS} nodes created: a list in the temporary directory, so that a
 * node started after a crashed one still knows which directories were not there before any.
 */
const HOST_DIRS_REGISTRY = path.join(os.tmpdir(), "slotmap-node-host-dirs.json");

function registeredHostDirs(): string[] {
  try {
    return JSON.parse(fs.readFileSync(HOST_DIRS_REGISTRY, "utf8")) as string[];
  } catch {
    return [];
  }
}

/** Directories the kubelet puts one entry per container or pod into (pod logs and their links). */
const PER_POD_DIRS = ["/var/log/pods", "/var/log/containers"] as const;

/** The entries of the per-pod host directories now (see {@link removeNewPodEntries}). */
export function podEntries(): Set<string> {
  const entries = new Set<string>();
  for (const d of PER_POD_DIRS) {
    try {
      for (const e of fs.readdirSync(d)) entries.add(path.join(d, e));
    } catch {
      // missing
    }
  }
  return entries;
}

/**
 * Removes the pod log directories and links that appeared since `before` (the node's own: its
 * kubelet was stopped with its pods still there, so it did not remove them), unless another node
 * runs. Matters where those directories existed before the node, so that they stay.
 */
export function removeNewPodEntries(before: ReadonlySet<string>): void {
  if (nodeNamespaces().length > 0) return;
  for (const e of podEntries()) if (!before.has(e)) fs.rmSync(e, { recursive: true, force: true });
}

/** `ip netns add` makes /run/netns, bind-mounted on itself, if it is missing. */
const NETNS_DIR = "/run/netns";

/**
 * Records which of {@link SHARED_HOST_DIRS} (and /run/netns) are missing now: nodes create them,
 * and remove them.
 */
export function claimHostDirs(): void {
  const missing = [...SHARED_HOST_DIRS, NETNS_DIR].filter((d) => !fs.existsSync(d));
  const dirs = new Set([...registeredHostDirs(), ...missing]);
  fs.writeFileSync(HOST_DIRS_REGISTRY, JSON.stringify([...dirs]));
}

/**
 * Removes the host directories that no node found when it started, unless a node still runs
 * (they share them); /run/netns only once no namespace at all is left in it.
 */
export async function releaseHostDirs(): Promise<void> {
  if (nodeNamespaces().length > 0) return;
  for (const d of registeredHostDirs()) {
    if ((SHARED_HOST_DIRS as readonly string[]).includes(d)) fs.rmSync(d, { recursive: true, force: true });
    if (d === NETNS_DIR && fs.existsSync(d) && fs.readdirSync(d).length === 0) {
      await unmountUnder(d);
      fs.rmdirSync(d);
    }
  }
  fs.rmSync(HOST_DIRS_REGISTRY, { force: true });
}

/** Removes the node's cgroups and directory (after {@link killNodeProcesses}). */
export async function removeNodeFiles(cgroupRoot: string, dir: string): Promise<void> {
  await unmountUnder(dir);
  removeCgroupTree(cgroupRoot);
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Removes what nodes of dead processes left (their test runner was killed before it could stop
 * them): a node's id starts with its starter's pid in base 36 (see node.ts), and its namespace,
 * cgroup root and directory are named after the id.
 */
export async function sweepStaleNodes(
  dirOf: (id: string) => string,
  log: (msg: string) => void,
): Promise<void> {
  for (const netns of nodeNamespaces()) {
    const id = netns.slice(NETNS_PREFIX.length);
    const pid = Number.parseInt(id.split("-")[0] ?? "", 36);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    log(`node: removing ${netns}, left by process ${pid} which is gone`);
    const cgroupRoot = `/${NETNS_PREFIX}${id}`;
    await killNodeProcesses(cgroupRoot, dirOf(id));
    await removeNodeFiles(cgroupRoot, dirOf(id));
    await deleteNetns(netns);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What a stopped node left behind (empty when the clean-up was complete). */
export function leftovers(opts: { netns: string; cgroupRoot: string; dir: string }): string[] {
  const left: string[] = [];
  const procs = [...new Set([...pidsMentioning(opts.dir), ...cgroupPids(opts.cgroupRoot)])];
  if (procs.length > 0) left.push(`processes ${procs.join(", ")}`);
  const mounts = mountsUnder(opts.dir);
  if (mounts.length > 0) left.push(`mounts ${mounts.join(", ")}`);
  if (fs.existsSync(opts.dir)) left.push(`directory ${opts.dir}`);
  if (fs.existsSync(netnsPath(opts.netns))) left.push(`network namespace ${opts.netns}`);
  const cgroups = cgroupMounts().filter((m) => fs.existsSync(path.join(m, opts.cgroupRoot)));
  if (cgroups.length > 0) left.push(`cgroups ${opts.cgroupRoot} in ${cgroups.join(", ")}`);
  return left;
}
