/**
 * Process harness of the end-to-end test and the demo: runs the coordinator and the example
 * shards as separate OS processes, straight from TypeScript (`node --import tsx`, no build step),
 * with stdout and stderr written to files, and signals them like an orchestrator (or a failure)
 * would: SIGTERM, SIGKILL, SIGSTOP, SIGCONT.
 *
 * No child outlives its parent: each is started under `setpriv --pdeathsig KILL` where util-linux
 * has it (the kernel kills it when the spawning process dies, even by SIGKILL), the group kills
 * every child on `exit`, and {@link ProcessGroup.stopAll} is meant for `finally`/`afterAll`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { fileURLToPath } from "node:url";

/** Root of the repository (for relative script paths and as the children's cwd). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** What to run. */
export interface ProcessSpec {
  /** Unique name within the group; names the log files (`<name>.stdout`, `<name>.stderr`). */
  name: string;
  /** TypeScript (or JavaScript) entry point, relative to the repository root or absolute. */
  script?: string;
  /** An executable to run instead of a script (the local node's kubelet, containerd, ...). */
  command?: string;
  args?: readonly string[];
  /** Added to the parent's environment. */
  env?: Readonly<Record<string, string>>;
  /** Modules loaded before `script` (`node --import tsx --import <each> script`), for fault injection. */
  preload?: readonly string[];
}

/** How a process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

let setprivChecked: boolean | undefined;
/** Whether `setpriv --pdeathsig` is usable here (util-linux on Linux). */
function haveSetpriv(): boolean {
  setprivChecked ??=
    process.platform === "linux" &&
    spawnSync("setpriv", ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" }).status === 0;
  return setprivChecked;
}

/** One child process. */
export class ManagedProcess {
  readonly startedAt = Date.now();
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  /** Epoch milliseconds at which the exit was seen (undefined while running). */
  exitedAt: number | undefined;
  private frozen = false;
  private ending = false;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly stdoutPath: string,
    readonly stderrPath: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exitedAt = Date.now();
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      // A spawn failure (no such binary) also ends the process's life here.
      child.on("error", (err) => {
        fs.appendFileSync(this.stderrPath, `[harness] spawn failed: ${err.message}\n`);
        this.exitInfo ??= { code: 127, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  /** OS process id (the node process itself: setpriv execs it). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Whether the process has not exited yet (also true while frozen). */
  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Whether it is stopped by {@link freeze}. */
  get isFrozen(): boolean {
    return this.frozen && this.running;
  }

  /** How it ended, or undefined while running. */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /**
   * Whether the process was told to end (SIGTERM, SIGINT, SIGKILL sent by the harness): its exit
   * is expected. An exit without that is a crash of the program under test.
   */
  get endRequested(): boolean {
    return this.ending;
  }

  /** Sends a signal; false if the process is gone. */
  signal(sig: NodeJS.Signals): boolean {
    if (!this.running) return false;
    if (sig === "SIGTERM" || sig === "SIGINT" || sig === "SIGKILL") this.ending = true;
    try {
      return this.child.kill(sig);
    } catch {
      return false;
    }
  }

  /** Marks an exit the test causes on purpose (e.g. an escalation's exit 70) as expected: no crash. */
  expectExit(): void {
    this.ending = true;
  }

  /** SIGKILL: a crash. Resolves when it is gone. */
  async kill(): Promise<ExitInfo> {
    this.signal("SIGKILL");
    return this.exited;
  }

  /** SIGSTOP: the process is frozen (a GC pause, a VM freeze), its clock keeps running. */
  freeze(): void {
    if (this.signal("SIGSTOP")) this.frozen = true;
  }

  /** SIGCONT after {@link freeze}. */
  resume(): void {
    this.signal("SIGCONT");
    this.frozen = false;
  }

  /** SIGTERM (graceful shutdown); SIGKILL if still running after `timeoutMs`. */
  async terminate(timeoutMs = 30_000): Promise<ExitInfo & { forced: boolean }> {
    if (!this.running) return { ...this.exitInfo!, forced: false };
    if (this.frozen) this.resume(); // a stopped process cannot act on SIGTERM
    this.signal("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) return { ...(await this.kill()), forced: true };
    return { ...this.exitInfo!, forced: false };
  }

  /** Everything it wrote to stdout so far. */
  readStdout(): string {
    return readIfExists(this.stdoutPath);
  }

  /** The last `n` lines of its stderr (and stdout, if stderr is empty), for error messages. */
  tail(n = 30): string {
    const err = readIfExists(this.stderrPath).trimEnd();
    const text = err || readIfExists(this.stdoutPath).trimEnd();
    return text.split("\n").slice(-n).join("\n");
  }

  /** Synchronous SIGKILL for exit handlers. */
  killNow(): void {
    if (this.running) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

function readIfExists(p: string): string {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

/** Options of a {@link ProcessGroup}. */
export interface ProcessGroupOptions {
  /** Directory of the log files; created if missing. */
  logDir: string;
  /** Node binary; default: the running one. */
  node?: string;
}

/** A set of child processes that are always cleaned up together. */
export class ProcessGroup {
  private readonly procs: ManagedProcess[] = [];
  private readonly exitListeners = new Set<(p: ManagedProcess) => void>();
  private readonly onExit = () => {
    for (const p of this.procs) p.killNow();
  };

  constructor(private readonly opts: ProcessGroupOptions) {
    fs.mkdirSync(opts.logDir, { recursive: true });
    process.on("exit", this.onExit);
  }

  /** Directory of the log files. */
  get logDir(): string {
    return this.opts.logDir;
  }

  /**
   * Calls `fn` when a process exits without the harness having asked it to (a crash); returns
   * the unsubscribe function.
   */
  onUnexpectedExit(fn: (p: ManagedProcess) => void): () => void {
    this.exitListeners.add(fn);
    return () => this.exitListeners.delete(fn);
  }

  /** Processes that exited without being asked to. */
  crashed(): ManagedProcess[] {
    return this.procs.filter((p) => !p.running && !p.endRequested);
  }

  /** Every process started, running or not, in start order. */
  all(): readonly ManagedProcess[] {
    return this.procs;
  }

  /** The processes still running. */
  running(): ManagedProcess[] {
    return this.procs.filter((p) => p.running);
  }

  /** The process named `name` (throws if none). */
  get(name: string): ManagedProcess {
    const p = this.procs.find((x) => x.name === name);
    if (!p)
      throw new Error(
        `no process named ${JSON.stringify(name)} (have: ${this.procs.map((x) => x.name).join(", ")})`,
      );
    return p;
  }

  /** Starts `spec.script` under `node --import tsx` (or `spec.command`), stdout and stderr to files in the log dir. */
  start(spec: ProcessSpec): ManagedProcess {
    if (!/^[A-Za-z0-9._#-]+$/.test(spec.name)) {
      throw new Error(`process name ${JSON.stringify(spec.name)}: use letters, digits, '.', '_', '#', '-'`);
    }
    if (this.procs.some((p) => p.name === spec.name)) {
      throw new Error(`process name ${JSON.stringify(spec.name)} is already used in this group`);
    }
    const program = this.program(spec);
    const stdoutPath = path.join(this.opts.logDir, `${spec.name}.stdout`);
    const stderrPath = path.join(this.opts.logDir, `${spec.name}.stderr`);
    // Files, not pipes: a busy parent never blocks a child's writes, and whatever a child wrote
    // before SIGKILL is on disk.
    const out = fs.openSync(stdoutPath, "w");
    const err = fs.openSync(stderrPath, "w");
    const [cmd, args] = haveSetpriv()
      ? ["setpriv", ["--pdeathsig", "KILL", "--", ...program, ...(spec.args ?? [])]]
      : [program[0]!, [...program.slice(1), ...(spec.args ?? [])]];
    let child: ChildProcess;
    try {
      child = spawn(cmd, args as string[], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...spec.env },
        stdio: ["ignore", out, err],
      });
    } finally {
      fs.closeSync(out);
      fs.closeSync(err);
    }
    const p = new ManagedProcess(spec.name, child, stdoutPath, stderrPath);
    this.procs.push(p);
    void p.exited.then(() => {
      if (!p.endRequested) for (const l of this.exitListeners) l(p);
    });
    return p;
  }

  /** The command line before `spec.args`: the executable, or node with tsx and the script. */
  private program(spec: ProcessSpec): string[] {
    if ((spec.script === undefined) === (spec.command === undefined)) {
      throw new Error(`${spec.name}: give exactly one of script and command`);
    }
    if (spec.command !== undefined) return [spec.command];
    const script = path.isAbsolute(spec.script!) ? spec.script! : path.join(REPO_ROOT, spec.script!);
    if (!fs.existsSync(script)) throw new Error(`${spec.name}: script ${script} does not exist`);
    const preload = (spec.preload ?? []).flatMap((m) => [
      "--import",
      path.isAbsolute(m) ? m : path.join(REPO_ROOT, m),
    ]);
    return [this.opts.node ?? process.execPath, "--import", "tsx", ...preload, script];
  }

  /**
   * Stops every running child: SIGCONT for frozen ones, SIGTERM, then SIGKILL after `graceMs`.
   * Safe to call more than once.
   */
  async stopAll(graceMs = 10_000): Promise<void> {
    await Promise.all(this.running().map((p) => p.terminate(graceMs)));
  }

  /** Kills every child at once (SIGKILL) and forgets the exit hook. */
  async killAll(): Promise<void> {
    await Promise.all(this.running().map((p) => p.kill()));
    process.off("exit", this.onExit);
  }

  /** Removes the exit hook once everything has stopped. */
  dispose(): void {
    for (const p of this.procs) p.killNow();
    process.off("exit", this.onExit);
  }
}

/**
 * Follows a growing log file: each {@link poll} returns the complete lines appended since the
 * last one (a partial last line waits for its newline).
 */
export class LineTail {
  private offset = 0;
  private rest = "";
  // Keeps a UTF-8 sequence cut by a read boundary for the next read.
  private readonly decoder = new StringDecoder("utf8");

  constructor(readonly file: string) {}

  /** New complete lines. */
  poll(): string[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, "r");
    } catch {
      return [];
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return [];
      const buf = Buffer.alloc(size - this.offset);
      const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const text = this.rest + this.decoder.write(buf.subarray(0, n));
      const lines = text.split("\n");
      this.rest = lines.pop() ?? "";
      return lines;
    } finally {
      fs.closeSync(fd);
    }
  }
}
