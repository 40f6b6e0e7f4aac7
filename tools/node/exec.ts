/**
 * Running the system tools the node and the image build need (ip, nsenter, buildah, ctr, mount):
 * one helper that fails with the command, its exit status and the end of its output, so that a
 * failed step explains itself.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";

/** What {@link run} returns. */
export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Written to stdin. */
  input?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill it after this long (default 10 minutes). */
  timeoutMs?: number;
  /** Resolve even on a non-zero exit (the caller looks at `code`). */
  allowFailure?: boolean;
  /** Each line of stderr as it arrives (progress of long builds). */
  onStderrLine?: (line: string) => void;
}

/** Runs `cmd args` to completion; rejects on a non-zero exit unless `allowFailure`. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult & { code: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 600_000,
    });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      if (!opts.onStderrLine) return;
      const lines = (partial + d).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) opts.onStderrLine(l);
    });
    child.on("error", (err) => reject(new Error(`${cmd}: ${err.message}`)));
    child.on("close", (code, signal) => {
      const status = code ?? 128;
      if (status === 0 || opts.allowFailure) {
        resolve({ stdout, stderr, code: status });
        return;
      }
      const tail = (stderr.trim() || stdout.trim()).split("\n").slice(-15).join("\n");
      reject(
        new Error(
          `${cmd} ${args.join(" ")} failed (${signal ? `signal ${signal}` : `exit ${code}`})${tail ? `:\n${tail}` : ""}`,
        ),
      );
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** Whether an executable named `name` is on PATH (or at the given absolute path). */
export function onPath(name: string): string | undefined {
  const dirs = name.includes("/") ? [""] : (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const d of dirs) {
    const p = d ? `${d}/${name}` : name;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}
