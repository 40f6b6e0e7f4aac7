import { describe, expect, it } from "vitest";
import { shardMachineClass } from "../../../../property-tests/sim/mutations.js";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  LABEL_SLOTMAP,
} from "../../../../src/api/lease.js";
import { microTime, ShardConfigError, ShardMachine } from "../../../../src/client/core/index.js";
import {
  Driver,
  foreignLease,
  ident,
  NS,
  ofType,
  options,
  quiet,
  SHARD,
  SLOTMAP,
  status,
  writes,
} from "./harness.js";

describe("acquiring the shard Lease", () => {
  it("does nothing until the Lease has been observed", () => {
    const d = new Driver();
    expect(d.tick(0)).toEqual([]);
    expect(d.m.phase()).toBe("starting");
    expect(d.m.nextWakeAt()).toBeUndefined();
  });

  it("creates an absent Lease with a fresh identity, label, duration and times", () => {
    const d = new Driver({ wallClockOffsetMs: Date.UTC(2025, 0, 2, 3, 4, 5, 678), weight: 3 });
    d.at(0).observeLease(null);
    const w = d.onlyPending();
    expect(w).toMatchObject({ kind: "acquire", verb: "create", resourceVersion: undefined, timeoutAt: 2000 });
    expect(w.lease.metadata).toEqual({
      name: SHARD,
      namespace: NS,
      labels: { [LABEL_SLOTMAP]: SLOTMAP },
      annotations: { [ANNOTATION_WEIGHT]: "3" },
    });
    expect(w.lease.spec).toEqual({
      holderIdentity: ident(1),
      leaseDurationSeconds: 15,
      acquireTime: "2025-01-02T03:04:05.678000Z",
      renewTime: "2025-01-02T03:04:05.678000Z",
      leaseTransitions: 0,
    });
    expect(d.m.phase()).toBe("candidate");
    const fx = d.reply();
    expect(quiet(fx)).toEqual([{ type: "unfenced", identity: ident(1) }]);
    expect(d.m.phase()).toBe("active");
    expect(d.m.identity()).toBe(ident(1));
  });

  it("takes a released Lease (empty holder) at once, with an RV precondition", () => {
    const d = new Driver();
    const released = d.api.put(foreignLease("", "0"));
    d.at(0).observeLease(released);
    const w = d.onlyPending();
    expect(w).toMatchObject({
      kind: "acquire",
      verb: "update",
      resourceVersion: released.metadata.resourceVersion,
    });
    expect(w.lease.metadata.resourceVersion).toBe(released.metadata.resourceVersion);
    expect(w.lease.spec?.leaseTransitions).toBe(4);
    d.reply();
    expect(d.m.phase()).toBe("active");
  });

  it("never acquires while another holder keeps renewing", () => {
    const d = new Driver();
    d.at(0).observeLease(d.api.put(foreignLease("other", "0")));
    for (let t = 500; t <= 60_000; t += 500) {
      if (t % 2000 === 0) d.at(t).observeLease(d.api.put(foreignLease("other", "0", `renew-${t}`)));
      d.tick(t);
    }
    expect(writes(d.log)).toEqual([]);
    expect(d.m.phase()).toBe("candidate");
    // Woken again a full leaseDuration after the last change it saw.
    expect(d.m.nextWakeAt()).toBe(60_000 + 15_000);
  });

  it("acquires only after observing the same record unchanged for a full leaseDuration", () => {
    const d = new Driver();
    const held = d.api.put(foreignLease("other", "0"));
    d.at(1000).observeLease(held);
    expect(d.m.nextWakeAt()).toBe(16_000);
    // A relist delivering the identical record does not restart the wait.
    d.at(9000).observeLease(held);
    d.tick(15_999);
    expect(d.pending).toEqual([]);
    d.tick(16_000);
    const w = d.onlyPending();
    expect(w).toMatchObject({
      kind: "acquire",
      verb: "update",
      resourceVersion: held.metadata.resourceVersion,
    });
    expect(w.lease.spec?.holderIdentity).toBe(ident(1));
    expect(w.lease.spec?.leaseTransitions).toBe(4);
    d.reply();
    expect(d.m.phase()).toBe("active");
  });

  it("a label written by a tool to a Lease nobody renews does not restart the wait", () => {
    const d = new Driver();
    const held = d.api.put(foreignLease("other", "0"));
    d.at(1000).observeLease(held);
    const touched = d.api.put({
      ...held,
      metadata: { ...held.metadata, labels: { ...held.metadata.labels, touched: "1" } },
    });
    expect(touched.metadata.resourceVersion).not.toBe(held.metadata.resourceVersion);
    d.at(9000).observeLease(touched);
    expect(d.m.nextWakeAt()).toBe(16_000);
    d.tick(16_000);
    expect(d.onlyPending()).toMatchObject({
      kind: "acquire",
      resourceVersion: touched.metadata.resourceVersion,
    });
  });

  it("waits for the longer of the Lease's own duration and ours", () => {
    const d = new Driver();
    const lease = foreignLease("other", "0");
    lease.spec!.leaseDurationSeconds = 40;
    d.at(0).observeLease(d.api.put(lease));
    d.tick(39_999);
    expect(d.pending).toEqual([]);
    d.tick(40_000);
    expect(d.onlyPending().kind).toBe("acquire");
  });

  it("ignores an observation older than one already seen (resourceVersion order)", () => {
    const d = new Driver();
    const old = d.api.put(foreignLease("other", "0", "t1"));
    const newer = d.api.put(foreignLease("", "0"));
    d.at(0).observeLease(newer);
    d.reply(); // acquired
    expect(d.m.phase()).toBe("active");
    d.observeLease(old); // stale watch event naming the former holder
    expect(d.m.phase()).toBe("active");
  });

  it("retries a failed acquire after retryPeriod with the same identity", () => {
    const d = new Driver();
    d.at(0).observeLease(null);
    d.reply({ outcome: "error", message: "503" });
    expect(d.m.phase()).toBe("candidate");
    expect(d.m.nextWakeAt()).toBe(2000);
    d.tick(1999);
    expect(d.pending).toEqual([]);
    d.tick(2000);
    expect(d.onlyPending().lease.spec?.holderIdentity).toBe(ident(1));
  });
});

describe("renewing and self-fencing", () => {
  it("renews 250 ms after the acquire, then every retryPeriod, measured from the send time of the last success", () => {
    const d = new Driver();
    d.at(0).acquire();
    // The first renew comes soon: a coordinator admits a new Lease once it saw it renewing.
    expect(d.m.nextWakeAt()).toBe(250);
    d.tick(249);
    expect(d.pending).toEqual([]);
    d.tick(250);
    expect(d.onlyPending().kind).toBe("renew");
    d.at(1000).reply();
    expect(d.m.nextWakeAt()).toBe(2250);
    d.tick(2249);
    expect(d.pending).toEqual([]);
    d.tick(2250);
    const w = d.onlyPending();
    expect(w).toMatchObject({
      kind: "renew",
      verb: "update",
      resourceVersion: d.api.lease!.metadata.resourceVersion,
    });
    expect(w.lease.spec?.holderIdentity).toBe(ident(1));
    d.at(2300).reply();
    expect(d.m.nextWakeAt()).toBe(4250);
    d.tick(4250);
    expect(d.onlyPending().kind).toBe("renew");
  });

  it("fences exactly at renewDeadline after the last successful renew was SENT", () => {
    const d = new Driver();
    d.at(0).observeStatus(status(1, [[SHARD, "0-99", ident(1)]]));
    d.observeLease(null);
    d.at(900).reply(); // acquire sent at 0, answered at 900: the deadline counts from 0
    expect(d.m.ownsSlot(5)).toBe(true);
    expect(d.m.inspect().fenceAt).toBe(10_000);
    d.at(1000).start(5, "/Secret/ns/a");
    for (let t = 2000; t < 10_000; t += 2000) {
      d.tick(t);
      d.at(t + 10).reply({ outcome: "error", message: "timeout" });
    }
    expect(d.m.mayStart(5, 9999)).toBe(true);
    expect(d.m.mayStart(5, 10_000)).toBe(false); // even before the tick is processed
    expect(d.m.nextWakeAt()).toBe(10_000);
    const fx = d.tick(10_000);
    expect(quiet(fx).filter((e) => e.type !== "writeLease")).toEqual([
      { type: "fenced", reason: "renewDeadline" },
      { type: "abortInFlight", keys: ["/Secret/ns/a"], reason: "fenced" },
      { type: "slotsLost", ranges: [{ start: 0, end: 99 }], generation: 1, reason: "lease" },
    ]);
    expect(d.m.phase()).toBe("fenced");
    expect(d.m.ownsSlot(5)).toBe(false);
    expect(d.m.ownership.ownsSlot(5)).toBe(false);
  });

  it("unfences after a successful renew and reports the slots as gained again", () => {
    const d = new Driver();
    d.at(0).observeStatus(status(1, [[SHARD, "0-99", ident(1)]]));
    d.acquire();
    for (let t = 2000; t <= 10_000; t += 2000) {
      d.tick(t);
      if (d.pending.length > 0) d.reply({ outcome: "error", message: "timeout" });
    }
    expect(d.m.phase()).toBe("fenced");
    d.tick(12_000);
    const fx = d.at(12_050).reply();
    expect(quiet(fx)).toEqual([
      // The acquire left out generation 1's ack (nobody waited for it); this first renew carries it.
      { type: "acked", uid: "uid-a", generation: 1 },
      { type: "unfenced", identity: ident(1) },
      { type: "slotsGained", ranges: [{ start: 0, end: 99 }], generation: 1, reason: "lease" },
    ]);
    expect(d.m.mayStart(5, 12_050)).toBe(true);
    expect(d.m.inspect().fenceAt).toBe(22_000);
  });

  it("stops waiting for a write at timeoutAt and retries; a late success only counts as an observation", () => {
    const d = new Driver();
    d.at(0).acquire();
    d.tick(2000);
    const slow = d.onlyPending();
    const result = d.api.apply(slow); // applied by the server, reply delayed
    d.pending = [];
    d.tick(4000); // timeoutAt of the renew: given up, and retried at once (its backoff also ends now)
    const retry = d.onlyPending();
    expect(retry.writeId).not.toBe(slow.writeId);
    expect(retry.resourceVersion).not.toBe(d.api.lease!.metadata.resourceVersion); // stale precondition
    d.at(4100).m.handle({ type: "leaseWriteResult", now: 4100, writeId: slow.writeId, result });
    expect(d.m.inspect().fenceAt).toBe(10_000); // the late success did not move the deadline
    d.reply(); // the retry conflicts: the Lease is still ours, so no fence
    expect(d.m.phase()).toBe("active");
  });
});

describe("losing the Lease", () => {
  it("fences when another holder shows up, re-acquires with a new identity, and ignores old grants", () => {
    const d = new Driver();
    d.at(0).observeStatus(status(1, [[SHARD, "0-99", ident(1)]]));
    d.acquire();
    d.start(7, "k7");
    expect(d.m.ownsSlot(7)).toBe(true);

    const taken = d.api.put(foreignLease("intruder", "0"));
    const fx = d.at(3000).observeLease(taken);
    expect(quiet(fx)).toEqual([
      { type: "fenced", reason: "leaseLost" },
      { type: "abortInFlight", keys: ["k7"], reason: "fenced" },
      { type: "slotsLost", ranges: [{ start: 0, end: 99 }], generation: 1, reason: "lease" },
    ]);
    expect(d.m.phase()).toBe("candidate");
    expect(d.m.identity()).toBeUndefined();

    // The intruder stops renewing; after a full leaseDuration we take over as a new incarnation.
    d.tick(17_999);
    expect(d.pending).toEqual([]);
    d.tick(18_000);
    const w = d.onlyPending();
    expect(w.lease.spec?.holderIdentity).toBe(ident(2));
    d.reply();
    expect(d.m.phase()).toBe("active");
    // The status still grants the slots to the old incarnation: not ours.
    expect(d.m.ownsSlot(7)).toBe(false);
    // The coordinator re-grants them to the new identity in a new generation.
    const gained = d.observeStatus(status(2, [[SHARD, "0-99", ident(2)]]));
    expect(ofType(gained, "slotsGained")).toEqual([
      { type: "slotsGained", ranges: [{ start: 0, end: 99 }], generation: 2, reason: "assignment" },
    ]);
    // A duplicate of the old status naming the old identity changes nothing.
    d.observeStatus(status(1, [[SHARD, "0-99", ident(1)]]));
    expect(d.m.ownsSlot(7)).toBe(true);
  });

  it("fences when a renew conflicts and the Lease shows another holder", () => {
    const d = new Driver();
    d.at(0).acquire();
    d.api.put(foreignLease("coordinator-takeover", "0"));
    d.tick(2000);
    const fx = d.reply(); // conflict with the current object
    expect(ofType(fx, "fenced")).toEqual([{ type: "fenced", reason: "leaseLost" }]);
    expect(d.m.phase()).toBe("candidate");
  });

  it("re-acquires a Lease released by a takeover at once, with a new identity", () => {
    const d = new Driver();
    d.at(0).acquire();
    const released = d.api.put(foreignLease("", "0"));
    const fx = d.at(1000).observeLease(released);
    expect(ofType(fx, "fenced")).toHaveLength(1);
    const w = d.onlyPending();
    expect(w.lease.spec?.holderIdentity).toBe(ident(2));
    expect(w.resourceVersion).toBe(released.metadata.resourceVersion);
  });

  it("treats a deleted Lease as lost and re-creates it a lease duration later as a new incarnation", () => {
    const d = new Driver();
    d.at(0).acquire();
    d.api.lease = null;
    d.at(500).observeLease(null);
    expect(d.m.phase()).toBe("candidate");
    // Someone held it: its holder may still run reconciles until its renew deadline (DESIGN "Trust").
    expect(d.pending).toEqual([]);
    d.tick(500 + 15_000);
    expect(d.onlyPending()).toMatchObject({ verb: "create" });
    expect(d.pending[0]!.lease.spec?.holderIdentity).toBe(ident(2));
  });

  it("with the recreateLeaseAtOnce mutation re-creates a vanished Lease at once (what the rule prevents)", () => {
    const d = new Driver({}, shardMachineClass(["recreateLeaseAtOnce"]));
    d.at(0).acquire();
    d.api.lease = null;
    d.at(500).observeLease(null);
    expect(d.onlyPending()).toMatchObject({ verb: "create" });
  });

  it("adopts its own unconfirmed acquire (reply lost) only after a successful renew", () => {
    const d = new Driver();
    d.at(0).observeStatus(status(1, [[SHARD, "0-9", ident(1)]]));
    d.observeLease(null);
    const w = d.onlyPending();
    d.api.apply(w); // applied, but the reply is lost
    d.reply({ outcome: "error", message: "connection reset" });
    expect(d.m.phase()).toBe("candidate");
    d.at(100).observeLease(); // the watch shows our pending identity as holder
    expect(d.m.phase()).toBe("fenced");
    expect(d.m.ownsSlot(3)).toBe(false);
    expect(d.m.mayStart(3, 100)).toBe(false);
    expect(d.onlyPending()).toMatchObject({ kind: "renew" }); // confirm at once
    d.at(150).reply();
    expect(d.m.phase()).toBe("active");
    expect(d.m.identity()).toBe(ident(1));
    expect(d.m.ownsSlot(3)).toBe(true);
  });

  it("gives up an unconfirmed identity once the Lease moved to someone else", () => {
    const d = new Driver();
    d.at(0).observeLease(null);
    d.reply({ outcome: "error", message: "timeout" });
    d.at(500).observeLease(d.api.put(foreignLease("", "0")));
    d.tick(2000);
    expect(d.onlyPending().lease.spec?.holderIdentity).toBe(ident(2));
  });
});

describe("ShardMachine basics", () => {
  it("validates options and names the field and value", () => {
    expect(() => new ShardMachine(options({ renewDeadlineMs: 15_000 }))).toThrow(ShardConfigError);
    expect(() => new ShardMachine(options({ renewDeadlineMs: 15_000 }))).toThrow(
      /renewDeadlineMs: must be less than leaseDurationMs \(15000\).*got 15000/,
    );
    expect(() => new ShardMachine(options({ leaseDurationMs: 15_500 }))).toThrow(
      /leaseDurationMs: must be whole seconds/,
    );
    expect(() => new ShardMachine(options({ retryPeriodMs: 10_000 }))).toThrow(/retryPeriodMs/);
    expect(() => new ShardMachine({ ...options(), leaseDuration: 5 } as never)).toThrow(
      /leaseDuration: unknown option/,
    );
    expect(() => new ShardMachine(options({ holderIdentityPrefix: "p".repeat(250) }))).toThrow(
      /holderIdentityPrefix: must be at most/,
    );
    try {
      new ShardMachine(options({ shard: "Bad_Name" }));
      expect.unreachable();
    } catch (err) {
      expect((err as ShardConfigError).errors).toEqual([
        expect.objectContaining({ field: "shard", value: "Bad_Name" }),
      ]);
    }
  });

  it("rejects programming errors in inputs", () => {
    const m = new ShardMachine(options());
    expect(() => m.handle({ type: "tick", now: Number.NaN })).toThrow(/now: must be a finite number/);
    expect(() => m.handle({ type: "reconcileStarted", now: 0, slot: 16384, key: "k" })).toThrow(
      /reconcileStarted.slot: must be an integer slot 0..16383; got 16384/,
    );
  });

  it("is deterministic and clones independently", () => {
    const script = (m: ShardMachine): unknown[] => {
      const out: unknown[] = [];
      out.push(m.handle({ type: "leaseObserved", now: 0, lease: null }));
      out.push(
        m.handle({
          type: "slotMapObserved",
          now: 1,
          uid: "u",
          status: status(1, [[SHARD, "0-9", ident(1)]]),
        }),
      );
      out.push(m.handle({ type: "tick", now: 5000 }));
      return out;
    };
    const a = new ShardMachine(options());
    const b = new ShardMachine(options());
    expect(script(a)).toEqual(script(b));
    const c = a.clone();
    a.handle({ type: "shutdown", now: 6000 });
    expect(a.phase()).toBe("draining"); // waits for the acquire in flight before releasing
    expect(c.phase()).toBe("candidate");
    expect(c.snapshot().inFlight).toBeInstanceOf(Map);
    expect(new ShardMachine(options(), c.snapshot()).inspect()).toEqual(c.inspect());
  });

  it("logs carry slotmap, shard, generation and identity", () => {
    const d = new Driver();
    d.at(0).acquire();
    const fx = d.observeStatus(status(4, [[SHARD, "0-9", ident(1)]]));
    const log = ofType(fx, "log").find((l) => l.msg === "applying assignment generation");
    expect(log?.fields).toMatchObject({ slotmap: SLOTMAP, shard: SHARD, generation: 4, identity: ident(1) });
  });

  it("helpers: MicroTime", () => {
    expect(microTime(0)).toBe("1970-01-01T00:00:00.000000Z");
    expect(microTime(1234.9)).toBe("1970-01-01T00:00:01.234000Z");
  });

  it("writes the ack annotations and keeps foreign annotations and labels", () => {
    const d = new Driver();
    const lease = foreignLease("", "0");
    lease.metadata.annotations = { "example.com/keep": "yes", [ANNOTATION_OBSERVED_GENERATION]: "9" };
    lease.metadata.labels = { "app.kubernetes.io/name": "x" };
    d.at(0).observeLease(d.api.put(lease));
    const w = d.onlyPending();
    // No ack of ours yet: a stale ack left by another process is removed.
    expect(w.lease.metadata.annotations).toEqual({ "example.com/keep": "yes" });
    expect(w.lease.metadata.labels).toEqual({ "app.kubernetes.io/name": "x", [LABEL_SLOTMAP]: SLOTMAP });
    d.reply();
    d.observeStatus(status(2, [["other", "0-16383", "x"]]));
    d.tick(250); // the first renew carries the ack (nobody waits for it)
    const ack = d.onlyPending();
    expect(ack.lease.metadata.annotations).toEqual({
      "example.com/keep": "yes",
      [ANNOTATION_OBSERVED_GENERATION]: "2",
      [ANNOTATION_SLOTMAP_UID]: "uid-a",
    });
  });
});
