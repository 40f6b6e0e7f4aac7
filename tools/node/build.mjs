#!/usr/bin/env node
// Builds the node's programs (kubelet, kube-controller-manager, kube-scheduler from
// k8s.io/kubernetes at the version tools/testenv uses; the netns forwarder; the pause program)
// once into a cache directory keyed by the hash of their sources, this script and the Go
// version, and prints the directory on stdout. Progress goes to stderr.
//
//   node tools/node/build.mjs             build if needed, print the directory
//   SLOTMAP_NODE_BIN_DIR=/dir             use prebuilt programs instead
//   SLOTMAP_NODE_CACHE=/dir               cache root (default: beside the testenv cache, /node)
//
// The Go module is tools/node/go, separate from tools/testenv's so that the kubelet's extra
// dependencies leave testenv's go.mod, and so its cache key, alone. Its shared requirements are
// kept at testenv's versions (go.mod was seeded from testenv's), which also lets the Go build
// cache testenv warmed serve most packages.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot as testenvCacheRoot } from "../testenv/build.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const moduleDir = path.join(here, "go");
const testenvGoMod = path.join(here, "../testenv/go.mod");

/** The programs built, each a main package of tools/node/go. */
export const PROGRAMS = ["kubelet", "kube-controller-manager", "kube-scheduler", "forward", "pause"];

function findGo() {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, "go"))) return path.join(dir, "go");
  }
  if (fs.existsSync("/usr/local/go/bin/go")) return "/usr/local/go/bin/go";
  throw new Error("node build: no `go` on PATH or at /usr/local/go/bin/go; install Go >= 1.26");
}

export function cacheRoot() {
  return process.env.SLOTMAP_NODE_CACHE || path.join(path.dirname(testenvCacheRoot()), "node");
}

function goFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && (e.name.endsWith(".go") || e.name === "go.mod" || e.name === "go.sum"))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

export function sourceHash(goVersion) {
  const h = createHash("sha256");
  h.update(`go=${goVersion}\n`);
  h.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  for (const f of goFiles(moduleDir)) {
    h.update(`\0${f}\0`);
    h.update(fs.readFileSync(path.join(moduleDir, f)));
  }
  return h.digest("hex").slice(0, 16);
}

function kubernetesVersion(goMod) {
  const m = /^\s*k8s\.io\/kubernetes (v(\d+)\.(\d+)\.\d+\S*)/m.exec(fs.readFileSync(goMod, "utf8"));
  if (!m) throw new Error(`${goMod}: no k8s.io/kubernetes requirement`);
  return { version: m[1], major: m[2], minor: m[3] };
}

/** The node must run the control plane's version: refuse to build a mismatch. */
function checkSameVersion() {
  const ours = kubernetesVersion(path.join(moduleDir, "go.mod"));
  const theirs = kubernetesVersion(testenvGoMod);
  if (ours.version !== theirs.version) {
    throw new Error(
      `tools/node/go/go.mod requires k8s.io/kubernetes ${ours.version} but tools/testenv/go.mod ` +
        `${theirs.version}: copy testenv's requirements and replace directives, then run go mod tidy there`,
    );
  }
  return ours;
}

// Without these, the kubelet registers its node as v0.0.0-master.
function versionLdflags({ version, major, minor }) {
  const vars = { gitVersion: version, gitMajor: major, gitMinor: minor, gitTreeState: "clean" };
  return Object.entries(vars).flatMap(([k, v]) =>
    ["k8s.io/client-go/pkg/version", "k8s.io/component-base/version"].map((pkg) => `-X ${pkg}.${k}=${v}`),
  );
}

function complete(dir) {
  return PROGRAMS.every((p) => fs.existsSync(path.join(dir, p)));
}

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "inherit", "inherit"], ...opts });
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args[0]} failed (code ${code}, signal ${signal})`)),
    );
  });
}

/** Returns the directory holding {@link PROGRAMS}, building them if they are not cached. */
export async function ensureNodePrograms({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  if (process.env.SLOTMAP_NODE_BIN_DIR) {
    const dir = path.resolve(process.env.SLOTMAP_NODE_BIN_DIR);
    if (!complete(dir)) throw new Error(`SLOTMAP_NODE_BIN_DIR=${dir} lacks one of ${PROGRAMS.join(", ")}`);
    return dir;
  }
  const version = checkSameVersion();
  const go = findGo();
  const goVersion = execFileSync(go, ["env", "GOVERSION"], { encoding: "utf8" }).trim();
  const dir = path.join(cacheRoot(), sourceHash(goVersion));
  if (complete(dir)) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  // A parallel build of the same hash: wait for it (a lock older than an hour is stale).
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      if (complete(dir)) return dir;
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > 60 * 60 * 1000) fs.rmSync(lock, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    if (complete(dir)) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    log(`node: building ${PROGRAMS.join(", ")} ${version.version} into ${dir} (minutes on a cold cache)`);
    const started = Date.now();
    const ldflags = ["-s", "-w", ...versionLdflags(version)].join(" ");
    await run(
      go,
      [
        "build",
        "-trimpath",
        "-buildvcs=false",
        `-ldflags=${ldflags}`,
        "-o",
        `${tmp}/`,
        ...PROGRAMS.map((p) => `./${p}`),
      ],
      { cwd: moduleDir, env: { ...process.env, CGO_ENABLED: process.env.CGO_ENABLED ?? "0" } },
    );
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    log(`node: built in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    return dir;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureNodePrograms().then(
    (dir) => process.stdout.write(`${dir}\n`),
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
