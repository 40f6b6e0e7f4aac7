// Starts the project's local Kubernetes control plane (tools/testenv: a real
// kube-apiserver + embedded etcd on loopback) as a child process.
import { type ChildProcessByStdio, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";

export interface ControlPlane {
  server: string;
  kubeconfig: string;
  testerKubeconfig: string;
  kubectlPath: string;
  dataDir: string;
  pid: number;
  /** Last lines of the control plane's log (etcd + apiserver), for error messages. */
  logTail(): string;
  /** Stops apiserver and etcd; the data dir is removed. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Time allowed for the ready line after the binary is built (default 90 s). */
  readyTimeoutMs?: number;
  /** Also write the full log to this file. */
  logFile?: string;
  /** Run the namespace and garbage-collector controllers (default true). */
  controllers?: boolean;
  /** Extra kube-apiserver flags, e.g. ["--v=2"]. */
  apiserverArgs?: string[];
}

const READY_PREFIX = "SLOTMAP_TESTENV_READY ";

/** A resource the local control plane serves without watch cache (see startControlPlane). */
export const UNCACHED_RESOURCE = "podtemplates";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const buildScript = path.join(repoRoot, "tools/testenv/build.mjs");

let binaryPromise: Promise<string> | undefined;

/** Path of the testenv binary; builds it (cached by source hash) on first use. */
export function ensureTestenvBinary(): Promise<string> {
  binaryPromise ??= new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [buildScript], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const bin = out.trim().split("\n").pop() ?? "";
      if (code === 0 && bin && fs.existsSync(bin)) resolve(bin);
      else reject(new Error(`building the testenv binary failed (exit ${code}); see the output above`));
    });
  });
  binaryPromise.catch(() => {
    binaryPromise = undefined;
  });
  return binaryPromise;
}

/** The kubectl symlink next to the testenv binary (the binary is multi-call). */
export function kubectlBeside(bin: string): string {
  return path.join(path.dirname(bin), "kubectl");
}

class LogTail {
  private lines: string[] = [];
  constructor(private readonly max = 80) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  toString(): string {
    return this.lines.join("\n");
  }
}

interface ReadyLine {
  server: string;
  kubeconfig: string;
  testerKubeconfig: string;
  dataDir: string;
  pid: number;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = await ensureTestenvBinary();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const args = ["--exit-on-stdin-close"];
  if (opts.controllers === false) args.push("--no-controllers");
  // PodTemplates bypass the watch cache, so their watches are served by etcd and answer
  // 410 Gone once etcd is compacted (SIGUSR1); cached resources replay from the cache.
  // Nothing in slotmap uses PodTemplates; tests that need a real 410 do.
  const apiserverArgs = [`--watch-cache-sizes=${UNCACHED_RESOURCE}#0`, ...(opts.apiserverArgs ?? [])];
  for (const a of apiserverArgs) args.push(`--apiserver-arg=${a}`);

  // stdin stays open and unused: when this process dies, the child sees EOF and exits.
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(bin, args, {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const tail = new LogTail();
  const logStream = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: "a" }) : undefined;
  // Always drain stderr: a full pipe would block the apiserver.
  createInterface({ input: child.stderr }).on("line", (line) => {
    tail.push(line);
    logStream?.write(`${line}\n`);
  });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  // If this process exits without calling stop(), don't leave the child behind.
  const onExit = () => child.kill("SIGTERM");
  process.on("exit", onExit);

  let ready: ReadyLine;
  try {
    ready = await new Promise<ReadyLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`control plane not ready within ${readyTimeoutMs} ms`));
      }, readyTimeoutMs);
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`control plane exited before ready (code ${code}, signal ${signal})`));
      });
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (!line.startsWith(READY_PREFIX)) {
          tail.push(`[stdout] ${line}`);
          return;
        }
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line.slice(READY_PREFIX.length)) as ReadyLine);
        } catch (err) {
          reject(new Error(`bad ready line ${JSON.stringify(line)}: ${String(err)}`));
        }
      });
    });
  } catch (err) {
    child.kill("SIGTERM");
    await Promise.race([exited, delay(15_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    process.off("exit", onExit);
    logStream?.end();
    throw new Error(
      `${(err as Error).message}\nbinary: ${bin} ${args.join(" ")}\n--- control plane log (tail) ---\n${tail}`,
    );
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const res = await Promise.race([exited, delay(30_000).then(() => undefined)]);
        if (res === undefined) {
          child.kill("SIGKILL");
          await exited;
          fs.rmSync(ready.dataDir, { recursive: true, force: true });
        }
      }
      child.stdin.destroy();
      process.off("exit", onExit);
      logStream?.end();
    })();
    return stopping;
  };

  return {
    server: ready.server,
    kubeconfig: ready.kubeconfig,
    testerKubeconfig: ready.testerKubeconfig,
    kubectlPath: kubectlBeside(bin),
    dataDir: ready.dataDir,
    pid: ready.pid,
    logTail: () => tail.toString(),
    stop,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
