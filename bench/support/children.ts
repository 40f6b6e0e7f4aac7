/**
 * Harness side of the child processes: spawn an entry point (compiled JavaScript, or TypeScript
 * through tsx) with an IPC channel, collect its reports, ask for stats, stop it, and sample its
 * /proc figures. A child started with `inspect` can also be measured after a full garbage
 * collection through the V8 inspector, which needs no cooperation from the process (the
 * coordinator is the unmodified production entry point).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, createWriteStream, openSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { ChildMessage, ChildStats, ParentMessage } from "./ipc.js";
import { type ProcSample, trySampleProc } from "./proc.js";

const require = createRequire(import.meta.url);
/** tsx's ESM loader, resolved from this repository's node_modules (for `.ts` entries). */
const TSX_LOADER = require.resolve("tsx");

/** Memory of a process right after a full garbage collection. */
export interface GcMemory {
  /** VmRSS from /proc after the collection, bytes. */
  readonly rss: number;
  /** V8 heap in use after the collection (`process.memoryUsage().heapUsed`), bytes. */
  readonly heapUsed: number;
  readonly heapTotal: number;
  /** Memory of C++ objects bound to JavaScript (buffers, …), bytes. */
  readonly external: number;
}

/** Parses the inspector URL out of node's `Debugger listening on ws://…` line. */
export function inspectorUrl(text: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(text)?.[1];
}

/** A running child process of the benchmark. */
export class Child {
  readonly proc: ChildProcess;
  readonly startedAt = performance.timeOrigin + performance.now();
  private readyAt: number | undefined;
  private readyWaiters: Array<(t: number) => void> = [];
  private exitWaiters: Array<() => void> = [];
  private nextId = 1;
  private pending = new Map<number, (s: ChildStats) => void>();
  private exited = false;
  /** The V8 inspector's WebSocket URL (children started with `inspect`). */
  private inspector: string | undefined;
  /** Exit code or signal once exited. */
  exitInfo: string | undefined;
  private readonly onMessage: (child: Child, msg: ChildMessage) => void;

  constructor(
    readonly name: string,
    opts: {
      /** Entry point: compiled `.js` (see build.ts), or `.ts` run through tsx. */
      entry: string;
      /** Its command-line arguments. */
      args?: string[];
      /** JSON configuration, passed as BENCH_CHILD_CONFIG. */
      config?: unknown;
      /** Directory of the child's log file `<name>.log` (stdout and stderr). */
      logDir: string;
      onMessage?: (child: Child, msg: ChildMessage) => void;
      /** Open the V8 inspector on a free loopback port, for {@link Child.gcMemory}. */
      inspect?: boolean;
      /**
       * Write stdout and stderr straight into the log file instead of through a pipe to this
       * process: a child that logs synchronously (pino to stdout) must not block on a harness
       * busy with other work. Not with `inspect` (its URL is read from stderr).
       */
      directLog?: boolean;
    },
  ) {
    const logPath = join(opts.logDir, `${name}.log`);
    const direct = opts.directLog === true && opts.inspect !== true;
    const log = direct ? undefined : createWriteStream(logPath, { flags: "a" });
    const fd = direct ? openSync(logPath, "a") : undefined;
    this.onMessage = opts.onMessage ?? (() => {});
    const loader = opts.entry.endsWith(".ts") ? ["--import", TSX_LOADER] : [];
    const inspect = opts.inspect ? ["--inspect=127.0.0.1:0"] : [];
    this.proc = spawn(
      process.execPath,
      [...loader, ...inspect, ...childNodeFlags(), "--expose-gc", opts.entry, ...(opts.args ?? [])],
      {
        stdio: fd === undefined ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", fd, fd, "ipc"],
        env: { ...process.env, BENCH_CHILD_CONFIG: JSON.stringify(opts.config ?? {}) },
      },
    );
    if (fd !== undefined) closeSync(fd); // the child holds its own copy
    if (log !== undefined) {
      this.proc.stdout?.pipe(log);
      this.proc.stderr?.pipe(log);
    }
    if (opts.inspect) {
      let head = "";
      const onData = (chunk: Buffer) => {
        head += chunk.toString("utf8");
        const url = inspectorUrl(head);
        if (url !== undefined || head.length > 4096) {
          this.inspector = url;
          this.proc.stderr?.off("data", onData);
        }
      };
      this.proc.stderr?.on("data", onData);
    }
    this.proc.on("message", (raw: unknown) => {
      const msg = raw as ChildMessage;
      if (msg.type === "ready") {
        this.readyAt ??= msg.t;
        for (const w of this.readyWaiters.splice(0)) w(msg.t);
      } else if (msg.type === "stats") {
        this.pending.get(msg.id)?.(msg.stats);
        this.pending.delete(msg.id);
      }
      this.onMessage(this, msg);
    });
    this.proc.on("exit", (code, signal) => {
      this.exited = true;
      this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      for (const w of this.exitWaiters.splice(0)) w();
      for (const w of this.readyWaiters.splice(0)) w(Number.NaN);
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Resolves with the child's ready time; rejects if it exits first or after `timeoutMs`. */
  ready(timeoutMs: number): Promise<number> {
    if (this.readyAt !== undefined) return Promise.resolve(this.readyAt);
    if (this.exited) return Promise.reject(new Error(`${this.name} exited (${this.exitInfo}) before ready`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name} not ready within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.readyWaiters.push((t) => {
        clearTimeout(timer);
        if (Number.isNaN(t)) reject(new Error(`${this.name} exited (${this.exitInfo}) before ready`));
        else resolve(t);
      });
    });
  }

  send(msg: ParentMessage): void {
    if (!this.exited && this.proc.connected) this.proc.send(msg);
  }

  /** Asks for the child's stats (after a full GC when `gc`). */
  stats(gc = false, timeoutMs = 30_000): Promise<ChildStats> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no stats answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.send({ type: "stats", id, gc });
    });
  }

  /**
   * Memory after a full garbage collection, through the V8 inspector (Chrome DevTools Protocol:
   * `HeapProfiler.collectGarbage`, then `process.memoryUsage()` evaluated in the child). Unlike a
   * plain RSS sample, it does not depend on when V8 last collected garbage.
   */
  async gcMemory(timeoutMs = 30_000): Promise<GcMemory> {
    const url = this.inspector;
    if (url === undefined)
      throw new Error(`${this.name}: not started with inspect (or no inspector URL yet)`);
    const ws = new WebSocket(url);
    const pending = new Map<number, (result: unknown) => void>();
    let nextId = 1;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    });
    const call = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    const work = (async () => {
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener("open", () => resolve(), { once: true });
        ws.addEventListener("error", () => reject(new Error(`${this.name}: inspector ${url} unreachable`)), {
          once: true,
        });
      });
      await call("HeapProfiler.collectGarbage");
      await call("HeapProfiler.collectGarbage");
      const r = (await call("Runtime.evaluate", {
        expression: "JSON.stringify(process.memoryUsage())",
        returnByValue: true,
      })) as { result?: { value?: string } };
      const mem = JSON.parse(r.result?.value ?? "null") as NodeJS.MemoryUsage | null;
      if (mem === null) throw new Error(`${this.name}: process.memoryUsage() failed in the inspector`);
      const rss = this.sample()?.rssBytes ?? mem.rss;
      return { rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external };
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name}: inspector timed out`)), timeoutMs);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
      ws.close();
    }
  }

  /** RSS and CPU from /proc, or undefined once exited. */
  sample(): ProcSample | undefined {
    return this.exited ? undefined : trySampleProc(this.pid);
  }

  /** Graceful stop (SIGTERM); SIGKILL after `graceMs`. Resolves on exit. */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await done;
    clearTimeout(timer);
  }

  /** Resolves when the process has exited. */
  exitedPromise(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }
}

/**
 * `SLOTMAP_BENCH_CHILD_NODE_FLAGS`: extra Node flags for every child process, space-separated,
 * for profiling (`--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses).
 */
export function childNodeFlags(raw = process.env.SLOTMAP_BENCH_CHILD_NODE_FLAGS): string[] {
  if (raw === undefined || raw.trim() === "") return [];
  const flags = raw.trim().split(/\s+/);
  const bad = flags.find((f) => !f.startsWith("--"));
  if (bad !== undefined) {
    throw new Error(
      `SLOTMAP_BENCH_CHILD_NODE_FLAGS: ${JSON.stringify(bad)} is not a Node flag (--…); got ${JSON.stringify(raw)}`,
    );
  }
  return flags;
}
