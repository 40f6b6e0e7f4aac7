/**
 * The process harness of the end-to-end test (test/e2e/harness.ts) with a small fixture program:
 * output to files, the signals it sends, crash detection, and that no child outlives its parent.
 * Needs no API server; it lives with the integration tests because it runs real processes.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LineTail, type ManagedProcess, ProcessGroup } from "../e2e/harness.js";
import { waitFor } from "../support/cluster.js";

const FIXTURE = "test/e2e/fixtures/ticker.ts";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-harness-"));
const group = new ProcessGroup({ logDir: dir });

afterAll(async () => {
  await group.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const ticks = (p: ManagedProcess) =>
  p
    .readStdout()
    .split("\n")
    .filter((l) => l.includes('"tick"')).length;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Process state letter from /proc (R, S, T = stopped, Z...). */
const procState = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];

describe("process harness", () => {
  it("writes stdout to a file, followed line by line, and ends gracefully on SIGTERM", async () => {
    const p = group.start({ name: "graceful", script: FIXTURE });
    const tail = new LineTail(p.stdoutPath);
    // poll() returns only the lines written since the previous call: collect them all.
    const lines: string[] = [];
    const seen = await waitFor(() => {
      lines.push(...tail.poll());
      return lines.length >= 3 ? lines : undefined;
    });
    expect(JSON.parse(seen[0]!)).toMatchObject({ event: "tick", n: 0, pid: p.pid });
    const exit = await p.terminate(10_000);
    expect(exit).toEqual({ code: 0, signal: null, forced: false });
    expect(p.running).toBe(false);
    expect(p.readStdout().trimEnd().split("\n").pop()).toContain('"bye"');
    expect(group.crashed()).toEqual([]);
  });

  it("freezes a process with SIGSTOP and resumes it with SIGCONT", async () => {
    const p = group.start({ name: "frozen", script: FIXTURE });
    await waitFor(() => ticks(p) >= 2);
    p.freeze();
    await waitFor(() => procState(p.pid) === "T", { description: "state T (stopped)" });
    expect(p.isFrozen).toBe(true);
    const before = ticks(p);
    await new Promise((r) => setTimeout(r, 300));
    expect(ticks(p)).toBe(before);
    p.resume();
    await waitFor(() => ticks(p) > before, { description: "ticks after SIGCONT" });
    expect(p.isFrozen).toBe(false);
    // terminate() of a frozen process resumes it first, so it can handle SIGTERM.
    p.freeze();
    expect((await p.terminate(10_000)).forced).toBe(false);
  });

  it("SIGKILLs, and reports a process that exits by itself as a crash", async () => {
    const killed = group.start({ name: "killed", script: FIXTURE });
    await waitFor(() => ticks(killed) >= 1);
    expect(await killed.kill()).toEqual({ code: null, signal: "SIGKILL" });

    const reported: string[] = [];
    const off = group.onUnexpectedExit((p) => reported.push(p.name));
    const crasher = group.start({ name: "crasher", script: FIXTURE, args: ["--exit", "3"] });
    expect(await crasher.exited).toEqual({ code: 3, signal: null });
    await waitFor(() => reported.length > 0);
    off();
    expect(reported).toEqual(["crasher"]);
    expect(group.crashed().map((p) => p.name)).toEqual(["crasher"]);
  });

  it("rejects bad and duplicate names and missing scripts", () => {
    expect(() => group.start({ name: "a b", script: FIXTURE })).toThrow(/process name "a b"/);
    expect(() => group.start({ name: "graceful", script: FIXTURE })).toThrow(/already used/);
    expect(() => group.start({ name: "nope", script: "test/e2e/fixtures/missing.ts" })).toThrow(
      /does not exist/,
    );
  });

  it.skipIf(process.platform !== "linux")("kills a child when its parent dies, even by SIGKILL", async () => {
    const childDir = path.join(dir, "parent");
    const parent = group.start({ name: "parent", script: FIXTURE, args: ["--spawn-child", childDir] });
    const line = await waitFor(() =>
      parent
        .readStdout()
        .split("\n")
        .find((l) => l.includes('"child"')),
    );
    const childPid = (JSON.parse(line) as { pid: number }).pid;
    expect(alive(childPid)).toBe(true);
    await parent.kill();
    await waitFor(() => !alive(childPid) || procState(childPid) === "Z", {
      description: `grandchild ${childPid} to die with its parent`,
    });
  });
});
