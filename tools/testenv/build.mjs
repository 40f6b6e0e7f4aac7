#!/usr/bin/env node
// Builds the testenv binary (kube-apiserver + etcd + kubectl) once into a
// cache directory keyed by the hash of its sources, this script and the Go version, and
// prints the binary's path on stdout. Progress goes to stderr.
//
//   node tools/testenv/build.mjs            build if needed, print path
//   SLOTMAP_TESTENV_BIN=/path/testenv       use a prebuilt binary instead
//   SLOTMAP_TESTENV_CACHE=/dir              cache root (default $XDG_CACHE_HOME or ~/.cache, + /slotmap/testenv)
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const srcDir = path.dirname(fileURLToPath(import.meta.url));

function findGo() {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "go");
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  if (fs.existsSync("/usr/local/go/bin/go")) return "/usr/local/go/bin/go";
  throw new Error("testenv build: no `go` on PATH or at /usr/local/go/bin/go; install Go >= 1.26");
}

export function cacheRoot() {
  if (process.env.SLOTMAP_TESTENV_CACHE) return process.env.SLOTMAP_TESTENV_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "slotmap", "testenv");
}

export function sourceHash(goVersion) {
  const h = createHash("sha256");
  h.update(`go=${goVersion}\n`);
  const files = fs
    .readdirSync(srcDir)
    .filter((f) => f === "go.mod" || f === "go.sum" || f === "build.mjs" || f.endsWith(".go"))
    .sort();
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(srcDir, f)));
    h.update("\0");
  }
  return h.digest("hex").slice(0, 16);
}

// Without these, apiserver and kubectl report v0.0.0-master and kubectl version fails.
function versionLdflags() {
  const gomod = fs.readFileSync(path.join(srcDir, "go.mod"), "utf8");
  const m = /^\s*k8s\.io\/kubernetes (v(\d+)\.(\d+)\.\d+\S*)/m.exec(gomod);
  if (!m) throw new Error("tools/testenv/go.mod: no k8s.io/kubernetes requirement");
  const vars = { gitVersion: m[1], gitMajor: m[2], gitMinor: m[3], gitTreeState: "clean" };
  return Object.entries(vars).flatMap(([k, v]) =>
    ["k8s.io/client-go/pkg/version", "k8s.io/component-base/version"].map((pkg) => `-X ${pkg}.${k}=${v}`),
  );
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function ensureKubectlLink(dir) {
  const link = path.join(dir, "kubectl");
  try {
    if (fs.readlinkSync(link) === "testenv") return;
    fs.rmSync(link, { force: true });
  } catch {
    // missing: create below
  }
  try {
    fs.symlinkSync("testenv", link);
  } catch (err) {
    if (err.code !== "EEXIST") throw err;
  }
}

/** Returns the path of the testenv binary, building it if it is not cached. */
export async function ensureTestenv({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  if (process.env.SLOTMAP_TESTENV_BIN) {
    const bin = path.resolve(process.env.SLOTMAP_TESTENV_BIN);
    if (!fs.existsSync(bin)) throw new Error(`SLOTMAP_TESTENV_BIN=${bin} does not exist`);
    return bin;
  }
  const go = findGo();
  const goVersion = execFileSync(go, ["env", "GOVERSION"], { encoding: "utf8" }).trim();
  const dir = path.join(cacheRoot(), sourceHash(goVersion));
  const bin = path.join(dir, "testenv");
  if (fs.existsSync(bin)) {
    ensureKubectlLink(dir);
    return bin;
  }
  fs.mkdirSync(dir, { recursive: true });

  // Another process (a parallel test run) may be building the same hash.
  const lock = path.join(dir, ".lock");
  const staleMs = 60 * 60 * 1000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      if (fs.existsSync(bin)) {
        ensureKubectlLink(dir);
        return bin;
      }
      const age = Date.now() - fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
      if (age > staleMs) fs.rmSync(lock, { recursive: true, force: true });
      else await sleep(2000);
    }
  }
  try {
    if (fs.existsSync(bin)) return bin;
    const tmp = path.join(dir, `testenv.tmp-${process.pid}`);
    log(`testenv: building ${bin} (first build downloads Go modules and takes several minutes)`);
    const started = Date.now();
    const ldflags = ["-s", "-w", ...versionLdflags()].join(" ");
    await new Promise((resolve, reject) => {
      const child = spawn(
        go,
        ["build", "-trimpath", "-buildvcs=false", `-ldflags=${ldflags}`, "-o", tmp, "."],
        {
          cwd: srcDir,
          stdio: ["ignore", "inherit", "inherit"],
          env: { ...process.env, CGO_ENABLED: process.env.CGO_ENABLED ?? "0" },
        },
      );
      child.on("error", reject);
      child.on("exit", (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`go build failed (code ${code}, signal ${signal})`)),
      );
    });
    fs.renameSync(tmp, bin);
    ensureKubectlLink(dir);
    log(`testenv: built in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    return bin;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureTestenv().then(
    (bin) => process.stdout.write(`${bin}\n`),
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
