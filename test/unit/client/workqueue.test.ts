import { describe, expect, it, vi } from "vitest";
import { WorkQueue } from "../../../src/client/workqueue.js";

describe("WorkQueue", () => {
  it("dedupes keys waiting in the queue and keeps FIFO order", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.stats().queued).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
  });

  it("never hands a key to two workers: a key added while processing returns after done", async () => {
    const q = new WorkQueue();
    q.add("a");
    const first = await q.get();
    expect(first).toBe("a");
    q.add("a");
    q.add("a");
    // Not handed out again while the first worker holds it.
    const second = q.get();
    let got: string | undefined;
    void second.then((k) => {
      got = k;
    });
    await Promise.resolve();
    expect(got).toBeUndefined();
    expect(q.isProcessing("a")).toBe(true);
    q.done("a");
    expect(await second).toBe("a");
    q.done("a");
    expect(q.stats()).toEqual({ queued: 0, processing: 0, waiting: 0 });
  });

  it("wakes a waiting worker when a key arrives", async () => {
    const q = new WorkQueue();
    const p = q.get();
    q.add("x");
    expect(await p).toBe("x");
    expect(q.isProcessing("x")).toBe(true);
  });

  it("backs off exponentially per key up to the cap, and forget resets it", () => {
    vi.useFakeTimers();
    try {
      const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
      expect(q.addRateLimited("k")).toBe(10);
      expect(q.stats().waiting).toBe(1);
      vi.advanceTimersByTime(9);
      expect(q.stats().queued).toBe(0);
      vi.advanceTimersByTime(1);
      expect(q.stats().queued).toBe(1);
      expect(q.addRateLimited("k")).toBe(20);
      expect(q.addRateLimited("k")).toBe(40);
      expect(q.addRateLimited("k")).toBe(50);
      expect(q.numRequeues("k")).toBe(4);
      q.forget("k");
      expect(q.numRequeues("k")).toBe(0);
      expect(q.addRateLimited("k")).toBe(10);
    } finally {
      vi.useRealTimers();
    }
  });

  it("addAfter keeps the earliest ready time of a key (a sooner add replaces a later one, not the reverse)", () => {
    vi.useFakeTimers();
    try {
      const q = new WorkQueue({ now: () => Date.now() });
      q.addAfter("k", 3000);
      q.addAfter("k", 50);
      q.addAfter("k", 1000); // later than the pending one: ignored
      expect(q.stats().waiting).toBe(1);
      vi.advanceTimersByTime(49);
      expect(q.stats().queued).toBe(0);
      vi.advanceTimersByTime(1);
      expect(q.stats()).toEqual({ queued: 1, processing: 0, waiting: 0 });
      vi.advanceTimersByTime(5000);
      expect(q.stats()).toEqual({ queued: 1, processing: 0, waiting: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it("remove drops a queued key and its delayed re-add", () => {
    vi.useFakeTimers();
    try {
      const q = new WorkQueue();
      q.add("a");
      q.addAfter("b", 100);
      q.remove("a");
      q.remove("b");
      vi.advanceTimersByTime(1000);
      expect(q.stats()).toEqual({ queued: 0, processing: 0, waiting: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it("shutDown wakes idle workers, refuses new keys and resolves after in-flight keys are done", async () => {
    const q = new WorkQueue();
    q.add("busy");
    expect(await q.get()).toBe("busy");
    const idle = q.get();
    q.add("queued-later");
    // "queued-later" went to the idle worker; add another that must be dropped by shutdown.
    expect(await idle).toBe("queued-later");
    q.add("dropped");
    let drained = false;
    const done = q.shutDown().then(() => {
      drained = true;
    });
    expect(await q.get()).toBeUndefined();
    q.add("after-shutdown");
    expect(q.stats().queued).toBe(0);
    q.done("busy");
    await Promise.resolve();
    expect(drained).toBe(false);
    q.done("queued-later");
    await done;
    expect(drained).toBe(true);
  });

  it("rejects a nonsensical backoff configuration with the values named", () => {
    expect(() => new WorkQueue({ baseDelayMs: 0 })).toThrow(/baseDelayMs \(0\)/);
    expect(() => new WorkQueue({ baseDelayMs: 100, maxDelayMs: 10 })).toThrow(/maxDelayMs \(10\)/);
  });
});
