/**
 * Resident memory and CPU time of a process from Linux's /proc, read from outside the process so
 * that the figures cover what the kernel charges it (heap, code, buffers), not what it reports.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** RSS and cumulative CPU of one process at one instant. */
export interface ProcSample {
  /** VmRSS from /proc/<pid>/status, bytes. */
  readonly rssBytes: number;
  /** utime + stime from /proc/<pid>/stat, seconds. */
  readonly cpuSeconds: number;
}

let ticks: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless reconfigured). */
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Parses `VmRSS:   12345 kB` out of /proc/<pid>/status text; bytes. */
export function parseVmRss(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error("no VmRSS line in /proc/<pid>/status (process exited or is a zombie?)");
  return Number(m[1]) * 1024;
}

/**
 * utime + stime (fields 14 and 15) of /proc/<pid>/stat, in ticks. The command name (field 2) is in
 * parentheses and may contain spaces and parentheses, so fields are counted after the last `)`.
 */
export function parseStatTicks(stat: string): number {
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new Error(`malformed /proc/<pid>/stat: ${stat.slice(0, 80)}`);
  const fields = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`malformed /proc/<pid>/stat: ${stat.slice(0, 120)}`);
  }
  return utime + stime;
}

/** Samples /proc/<pid>/status and /proc/<pid>/stat. */
export function sampleProc(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return { rssBytes: parseVmRss(status), cpuSeconds: parseStatTicks(stat) / clockTicks() };
}

/** Like {@link sampleProc}, undefined when the process is gone. */
export function trySampleProc(pid: number | undefined): ProcSample | undefined {
  if (pid === undefined) return undefined;
  try {
    return sampleProc(pid);
  } catch {
    return undefined;
  }
}
