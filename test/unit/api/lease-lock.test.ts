import { describe, expect, it } from "vitest";
import { type LeaseObject, microTime, TAKEOVER_HOLDER } from "../../../src/api/lease.js";
import {
  type LeaseEvent,
  LeaseLock,
  type LeaseLockHooks,
  type LeaseWants,
  type LeaseWriteRequest,
} from "../../../src/api/lease-lock.js";

const TIMINGS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  writeTimeoutMs: 2_000,
};
const OPTIONS = { name: "lock", namespace: "ns", ...TIMINGS };
const WALL = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const RUN: LeaseWants = { acquire: true, release: false, renewNow: false };
const STOP: LeaseWants = { acquire: false, release: true, renewNow: false };

/** A lock whose identities are `me-1`, `me-2`, ... */
function lockOf(hooks: Partial<LeaseLockHooks> = {}): LeaseLock {
  let n = 0;
  return new LeaseLock(OPTIONS, { nextIdentity: () => `me-${++n}`, ...hooks });
}

function lease(holder: string | null, rv: string, extra: Partial<LeaseObject["spec"]> = {}): LeaseObject {
  return {
    metadata: { name: "lock", namespace: "ns", resourceVersion: rv, labels: { team: "a" } },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: 15,
      renewTime: "2026-01-01T00:00:00.000000Z",
      acquireTime: "2026-01-01T00:00:00.000000Z",
      leaseTransitions: 4,
      ...extra,
    },
  };
}

/** What the API server returns for `w`: its body with a new resourceVersion. */
function stored(w: LeaseWriteRequest, rv: string): LeaseObject {
  const l = structuredClone(w.lease);
  l.metadata.resourceVersion = rv;
  return l;
}

const types = (events: LeaseEvent<undefined>[]): string[] => events.map((e) => e.type);

/** Observes `observed`, sends the planned write at `now` and applies it; returns the request. */
function writeOk(lock: LeaseLock, now: number, rv: string, wants = RUN): LeaseWriteRequest {
  const planned = lock.plannedWrite(now, wants);
  expect(planned?.at).toBeLessThanOrEqual(now);
  const w = lock.send(planned!.kind, now, { wallMs: WALL, tag: undefined });
  lock.writeResult(w.writeId, { outcome: "ok", lease: stored(w, rv) }, now + 50);
  return w;
}

describe("LeaseLock acquire", () => {
  it("creates an absent Lease at once, with the holder fields in microTime of the wall clock given", () => {
    const lock = lockOf();
    expect(lock.plannedWrite(0, RUN)).toBeUndefined(); // nothing observed yet
    expect(lock.observe(null, 0)).toEqual([]);
    expect(lock.plannedWrite(0, RUN)).toEqual({ kind: "acquire", at: 0 });
    const w = lock.send("acquire", 100, { wallMs: WALL, tag: undefined });
    expect(w).toMatchObject({
      kind: "acquire",
      verb: "create",
      resourceVersion: undefined,
      timeoutAt: 2_100,
    });
    expect(w.lease).toEqual({
      metadata: { name: "lock", namespace: "ns" },
      spec: {
        holderIdentity: "me-1",
        leaseDurationSeconds: 15,
        acquireTime: "2026-01-02T03:04:05.678000Z",
        renewTime: microTime(WALL),
        leaseTransitions: 0,
      },
    });
    const events = lock.writeResult(w.writeId, { outcome: "ok", lease: stored(w, "7") }, 300);
    expect(events).toMatchObject([
      { type: "written", acquired: true, write: { identity: "me-1", sentAt: 100 } },
    ]);
    expect(lock.identity).toBe("me-1");
    expect(lock.deadlineAt()).toBe(10_100); // from the send time, not the reply
    expect(lock.held(10_099)).toBe(true);
    expect(lock.held(10_100)).toBe(false);
  });

  it.each([
    ["released", ""],
    ["taken over by the coordinator", TAKEOVER_HOLDER],
  ])(
    "takes a %s Lease at once, keeping its other fields, with the resourceVersion as precondition",
    (_, holder) => {
      const lock = lockOf();
      lock.observe(lease(holder, "41"), 5_000);
      expect(lock.plannedWrite(5_000, RUN)).toEqual({ kind: "acquire", at: 5_000 });
      const w = lock.send("acquire", 5_000, { wallMs: WALL, tag: undefined });
      expect(w.verb).toBe("update");
      expect(w.resourceVersion).toBe("41");
      expect(w.lease.metadata).toEqual({
        name: "lock",
        namespace: "ns",
        resourceVersion: "41",
        labels: { team: "a" },
      });
      expect(w.lease.spec).toMatchObject({
        holderIdentity: "me-1",
        leaseTransitions: 5,
        acquireTime: microTime(WALL),
      });
    },
  );

  it("takes a held Lease only after its holder record sat unchanged for a lease duration of our clock", () => {
    const lock = lockOf();
    // The holder's own duration counts when it is longer than ours; its renewTime is never read.
    lock.observe(
      lease("other", "10", { leaseDurationSeconds: 30, renewTime: "2000-01-01T00:00:00.000000Z" }),
      1_000,
    );
    expect(lock.plannedWrite(1_000, RUN)).toEqual({ kind: "acquire", at: 31_000 });
    lock.observe(
      lease("other", "10", { leaseDurationSeconds: 30, renewTime: "2000-01-01T00:00:00.000000Z" }),
      20_000,
    );
    expect(lock.plannedWrite(20_000, RUN)?.at).toBe(31_000); // seen again unchanged: the wait goes on
    // A label edit is no renewal.
    const touched = lease("other", "11", {
      leaseDurationSeconds: 30,
      renewTime: "2000-01-01T00:00:00.000000Z",
    });
    touched.metadata.labels = { team: "b" };
    lock.observe(touched, 25_000);
    expect(lock.plannedWrite(25_000, RUN)?.at).toBe(31_000);
    // A renewal (new renewTime) restarts the wait from when we saw it.
    lock.observe(
      lease("other", "12", { leaseDurationSeconds: 30, renewTime: "2000-01-01T00:00:09.000000Z" }),
      26_000,
    );
    expect(lock.plannedWrite(26_000, RUN)?.at).toBe(56_000);
    // Our duration counts when the holder's is shorter.
    lock.observe(lease("third", "13", { leaseDurationSeconds: 5 }), 27_000);
    expect(lock.plannedWrite(27_000, RUN)?.at).toBe(42_000);
  });

  it("re-creates a vanished Lease at once unless the owner waits it out after someone held it", () => {
    const eager = lockOf();
    eager.observe(lease("other", "10"), 0);
    eager.observe(null, 3_000);
    expect(eager.plannedWrite(3_000, RUN)).toEqual({ kind: "acquire", at: 3_000 });

    const seen: boolean[] = [];
    const careful = lockOf({
      waitsOutVanishedLease: (everHeld) => {
        seen.push(everHeld);
        return everHeld;
      },
    });
    careful.observe(null, 0);
    expect(careful.plannedWrite(0, RUN)?.at).toBe(0); // never seen held
    careful.observe(lease("other", "10"), 1_000);
    careful.observe(null, 3_000);
    expect(careful.plannedWrite(3_000, RUN)?.at).toBe(18_000);
    expect(seen).toEqual([false, true]);
  });
});

describe("LeaseLock tenure", () => {
  it("renews every retry period from the last send, at once when the owner asks, and only in order", () => {
    const lock = lockOf();
    lock.observe(null, 0);
    writeOk(lock, 0, "2");
    expect(lock.plannedWrite(500, RUN)).toEqual({ kind: "renew", at: 2_000 });
    expect(lock.plannedWrite(500, { ...RUN, renewNow: true })).toEqual({ kind: "renew", at: 500 });
    const renew = writeOk(lock, 2_000, "3");
    expect(renew.lease.spec?.holderIdentity).toBe("me-1");
    expect(renew.lease.spec?.acquireTime).toBe(microTime(WALL)); // kept from the acquire
    expect(renew.resourceVersion).toBe("2");
    expect(lock.deadlineAt()).toBe(12_000);
    expect(lock.plannedWrite(2_100, RUN)).toEqual({ kind: "renew", at: 4_000 });
  });

  it("with firstRenewAfterMs, renews that soon after an acquire (also after a re-acquire), then at the cadence", () => {
    let n = 0;
    const lock = new LeaseLock({ ...OPTIONS, firstRenewAfterMs: 250 }, { nextIdentity: () => `me-${++n}` });
    lock.observe(null, 0);
    writeOk(lock, 0, "2");
    expect(lock.plannedWrite(100, RUN)).toEqual({ kind: "renew", at: 250 });
    writeOk(lock, 250, "3");
    expect(lock.plannedWrite(300, RUN)).toEqual({ kind: "renew", at: 2_250 });
    writeOk(lock, 2_250, "4");
    expect(lock.plannedWrite(2_300, RUN)).toEqual({ kind: "renew", at: 4_250 });
    // Lost to another holder, re-acquired when it is released: soon again.
    lock.observe(lease("other", "5"), 3_000);
    lock.observe(lease(null, "6"), 3_100);
    writeOk(lock, 3_100, "7");
    expect(lock.plannedWrite(3_200, RUN)).toEqual({ kind: "renew", at: 3_350 });
    expect(() => new LeaseLock({ ...OPTIONS, firstRenewAfterMs: -1 }, { nextIdentity: () => "x" })).toThrow(
      /firstRenewAfterMs must be a positive number of milliseconds; got -1/,
    );
  });

  it("steps past the renew deadline without losing the identity; a later renewal restores the tenure", () => {
    const lock = lockOf();
    lock.observe(null, 0);
    writeOk(lock, 0, "2");
    const w = lock.send("renew", 2_000, { wallMs: WALL, tag: undefined });
    expect(lock.writeResult(w.writeId, { outcome: "error", message: "timeout" }, 3_000)).toMatchObject([
      { type: "failed", message: "timeout" },
    ]);
    expect(lock.plannedWrite(3_000, RUN)).toEqual({ kind: "renew", at: 4_000 }); // a retry period after the send
    expect(lock.held(10_000)).toBe(false);
    expect(lock.identity).toBe("me-1");
    writeOk(lock, 11_000, "3");
    expect(lock.held(11_100)).toBe(true);
    expect(lock.deadlineAt()).toBe(21_000);
  });

  it("uses the owner's renewDeadlineAt", () => {
    const lock = lockOf({ renewDeadlineAt: (t) => t + 1 });
    lock.observe(null, 0);
    writeOk(lock, 0, "2");
    expect(lock.deadlineAt()).toBe(1);
    expect(lock.held(1)).toBe(false);
  });

  it.each([
    ["another holder", lease("other", "9"), "other"],
    ["the Lease was released", lease("", "9"), ""],
    ["the coordinator took the Lease over", lease(TAKEOVER_HOLDER, "9"), TAKEOVER_HOLDER],
    ["the Lease was deleted", null, ""],
  ])("is lost while held when %s, and the next acquire uses a new identity", (why, seen, holder) => {
    const lock = lockOf();
    lock.observe(null, 0);
    writeOk(lock, 0, "2");
    expect(lock.observe(seen, 1_000)).toEqual([{ type: "lost", identity: "me-1", holder, why }]);
    expect(lock.identity).toBeUndefined();
    expect(lock.held(1_000)).toBe(false);
    expect(lock.deadlineAt()).toBe(Number.NEGATIVE_INFINITY);
    const at = lock.plannedWrite(1_000, RUN)!.at;
    expect(lock.send("acquire", at, { wallMs: WALL, tag: undefined }).lease.spec?.holderIdentity).toBe(
      "me-2",
    );
  });
});

describe("LeaseLock write results", () => {
  it("retries a conflict a retry period after the send, observing the Lease it carries", () => {
    const lock = lockOf();
    lock.observe(lease("", "5"), 0);
    const w = lock.send("acquire", 1_000, { wallMs: WALL, tag: undefined });
    expect(types(lock.writeResult(w.writeId, { outcome: "conflict", current: undefined }, 1_200))).toEqual([
      "conflict",
    ]);
    expect(lock.plannedWrite(1_200, RUN)).toEqual({ kind: "acquire", at: 3_000 });
    // The pending identity is kept while the Lease did not move on...
    expect(lock.state.pendingIdentity).toBe("me-1");
    const w2 = lock.send("acquire", 3_000, { wallMs: WALL, tag: undefined });
    expect(w2.lease.spec?.holderIdentity).toBe("me-1");
    // ...and dropped once it did: the winner's Lease is waited out.
    expect(
      types(lock.writeResult(w2.writeId, { outcome: "conflict", current: lease("other", "6") }, 3_100)),
    ).toEqual(["conflict"]);
    expect(lock.state.pendingIdentity).toBeUndefined();
    expect(lock.plannedWrite(3_100, RUN)).toEqual({ kind: "acquire", at: 18_100 });
  });

  it("gives a write up at its timeout; a late result is an observation: an acquire that landed is adopted", () => {
    const lock = lockOf();
    lock.observe(null, 0);
    const w = lock.send("acquire", 0, { wallMs: WALL, tag: undefined });
    expect(lock.expire(1_999)).toBeUndefined();
    expect(lock.expire(2_000)?.id).toBe(w.writeId);
    expect(lock.state.write).toBeUndefined();
    const late = lock.writeResult(w.writeId, { outcome: "ok", lease: stored(w, "3") }, 2_500);
    expect(late).toEqual([
      { type: "late", writeId: w.writeId, outcome: "ok", identity: undefined },
      { type: "adopted", identity: "me-1" },
    ]);
    // Held by identity but not within a deadline: renew at once before relying on it.
    expect(lock.held(2_500)).toBe(false);
    expect(lock.plannedWrite(2_500, RUN)).toEqual({ kind: "renew", at: 2_000 }); // due: the backoff has passed
  });

  it("adopts a failed acquire that landed and renews at once, not after the backoff", () => {
    const lock = lockOf();
    lock.observe(null, 0);
    const w = lock.send("acquire", 0, { wallMs: WALL, tag: undefined });
    lock.writeResult(w.writeId, { outcome: "error", message: "connection reset" }, 100);
    expect(lock.plannedWrite(100, RUN)?.at).toBe(2_000);
    expect(lock.observe(stored(w, "3"), 500)).toEqual([{ type: "adopted", identity: "me-1" }]);
    expect(lock.plannedWrite(500, RUN)).toEqual({ kind: "renew", at: 500 });
  });

  it("ignores an observation older than the newest resourceVersion seen, also a late write result", () => {
    const lock = lockOf();
    lock.observe(lease("other", "20"), 0);
    expect(lock.observe(lease("", "19"), 1_000)).toEqual([{ type: "stale", resourceVersion: "19" }]);
    expect(lock.state.lease?.metadata.resourceVersion).toBe("20");
    expect(lock.plannedWrite(1_000, RUN)?.at).toBe(15_000);
    expect(lock.writeResult(99, { outcome: "ok", lease: lease("me-1", "18") }, 2_000)).toEqual([
      { type: "late", writeId: 99, outcome: "ok", identity: undefined },
      { type: "stale", resourceVersion: "18" },
    ]);
    expect(lock.identity).toBeUndefined();
  });

  it("does not take an ok result older than what was seen since as a success", () => {
    const lock = lockOf();
    lock.observe(lease("", "5"), 0);
    const w = lock.send("acquire", 0, { wallMs: WALL, tag: undefined });
    lock.observe(lease("other", "8"), 100); // the watch already shows a newer holder
    expect(lock.writeResult(w.writeId, { outcome: "ok", lease: stored(w, "6") }, 200)).toEqual([
      { type: "stale", resourceVersion: "6" },
    ]);
    expect(lock.identity).toBeUndefined();
  });

  it("refuses a second write in flight and a renew without the Lease", () => {
    const lock = lockOf();
    lock.observe(null, 0);
    expect(() => lock.send("renew", 0, { wallMs: WALL, tag: undefined })).toThrow(/renew without holding/);
    lock.send("acquire", 0, { wallMs: WALL, tag: undefined });
    expect(lock.plannedWrite(0, RUN)).toBeUndefined();
    expect(() => lock.send("acquire", 0, { wallMs: WALL, tag: undefined })).toThrow(/write 1 is in flight/);
  });
});

describe("LeaseLock release", () => {
  it("clears the holder with the owner's metadata and is released when the reply lands", () => {
    const lock = new LeaseLock<{ ack: number }>(OPTIONS, { nextIdentity: () => "me" });
    lock.observe(null, 0);
    const a = lock.send("acquire", 0, { wallMs: WALL, tag: { ack: 1 } });
    lock.writeResult(a.writeId, { outcome: "ok", lease: stored(a, "2") }, 10);
    expect(lock.plannedWrite(500, { ...STOP, acquire: true })).toEqual({ kind: "release", at: 500 });
    const w = lock.send("release", 500, {
      wallMs: WALL,
      tag: { ack: 2 },
      metadata: (identity) => ({ annotations: { "released-by": identity } }),
    });
    expect(w.lease.spec?.holderIdentity).toBe("");
    expect(w.lease.metadata.annotations).toEqual({ "released-by": "me" });
    expect(w.resourceVersion).toBe("2");
    const events = lock.writeResult(w.writeId, { outcome: "ok", lease: stored(w, "3") }, 600);
    expect(events).toMatchObject([{ type: "released", write: { kind: "release", tag: { ack: 2 } } }]);
    expect(lock.identity).toBeUndefined();
    expect(lock.plannedWrite(600, STOP)).toBeUndefined(); // stopping: no acquire
  });

  it("takes its own release seen before the reply as released only when the owner's marker names it", () => {
    const released = (hooks: Partial<LeaseLockHooks>): string[] => {
      const lock = lockOf(hooks);
      lock.observe(null, 0);
      writeOk(lock, 0, "2");
      lock.send("release", 100, { wallMs: WALL, tag: undefined });
      const cleared = lease("", "3");
      cleared.metadata.annotations = { by: "me-1" };
      return types(lock.observe(cleared, 150));
    };
    expect(released({ releasedBy: (l) => l.metadata.annotations?.by })).toEqual(["released"]);
    expect(released({})).toEqual(["lost"]);
  });
});

describe("LeaseLock state", () => {
  it("is plain data: a snapshot resumes as an independent lock", () => {
    const lock = lockOf();
    lock.observe(lease("other", "10"), 1_000);
    const copy = new LeaseLock(OPTIONS, { nextIdentity: () => "x" }, lock.snapshot());
    lock.observe(lease("other", "11", { renewTime: "2026-01-01T00:00:01.000000Z" }), 2_000);
    expect(copy.plannedWrite(2_000, RUN)?.at).toBe(16_000);
    expect(lock.plannedWrite(2_000, RUN)?.at).toBe(17_000);
    expect(copy.state.lease?.metadata.resourceVersion).toBe("10");
  });

  it("rejects timings that break the tenure rule, naming the option", () => {
    expect(() => new LeaseLock({ ...OPTIONS, renewDeadlineMs: 15_000 }, { nextIdentity: () => "x" })).toThrow(
      /renewDeadlineMs \(15000\) must be less than leaseDurationMs/,
    );
    expect(() => new LeaseLock({ ...OPTIONS, writeTimeoutMs: 0 }, { nextIdentity: () => "x" })).toThrow(
      /writeTimeoutMs must be a positive number of milliseconds; got 0/,
    );
  });
});
