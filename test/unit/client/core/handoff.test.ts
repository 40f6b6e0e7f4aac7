import { describe, expect, it } from "vitest";
import { shardMachineClass } from "../../../../property-tests/sim/mutations.js";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_REFUSED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
} from "../../../../src/api/lease.js";
import { Driver, ident, ofType, quiet, SHARD, status, UID } from "./harness.js";

/** An active shard that owns 0-99 in generation 1 (acked). */
function owning(slots = "0-99", opts: ConstructorParameters<typeof Driver>[0] = {}): Driver {
  const d = new Driver(opts);
  d.at(0).observeStatus(status(1, [[SHARD, slots, ident(1)]]));
  d.acquire();
  // Nobody waits for this ack (the status took nothing from us): the acquire leaves it out, so
  // the coordinator need not see the Lease renewing before admitting it. The first renew, soon
  // after, carries it; then one renew every retryPeriod from 250.
  expect(d.m.ackedGeneration()).toBe(0);
  d.tick(250);
  expect(d.onlyPending().kind).toBe("renew");
  d.reply();
  expect(d.m.ackedGeneration()).toBe(1);
  return d;
}

const r = (start: number, end: number) => ({ start, end });

describe("ownership from the SlotMap status", () => {
  it("owns exactly the slots granted to its current identity, through a live Ownership view", () => {
    const d = owning("0-99,200");
    const view = d.m.ownership;
    expect(view.ownsSlot(0)).toBe(true);
    expect(view.ownsSlot(99)).toBe(true);
    expect(view.ownsSlot(100)).toBe(false);
    expect(view.ownsSlot(200)).toBe(true);
    expect(view.ownsSlot(-1)).toBe(false);
    expect(view.ownsSlot(16384)).toBe(false);
    expect(view.ownsSlot(1.5)).toBe(false);
    expect(view.ownedRanges()).toEqual([r(0, 99), r(200, 200)]);
    expect(view.ownedCount()).toBe(101);
    expect(view.generation).toBe(1);
    expect(view.uid).toBe(UID);
    d.at(100).observeStatus(status(2, [[SHARD, "5", ident(1)]]));
    expect(view.ownedRanges()).toEqual([r(5, 5)]); // same object, new content
    expect(view.generation).toBe(2);
  });

  it("reports gained slots so the runtime enqueues them", () => {
    const d = owning();
    const fx = d.observeStatus(status(2, [[SHARD, "0-199", ident(1)]]));
    expect(quiet(fx).filter((e) => e.type !== "writeLease" && e.type !== "acked")).toEqual([
      { type: "slotsGained", ranges: [r(100, 199)], generation: 2, reason: "assignment" },
    ]);
    expect(d.m.mayStart(150, d.now)).toBe(true);
  });

  it("owns nothing when the entry names another identity, or is missing", () => {
    const d = owning();
    const fx = d.observeStatus(status(2, [[SHARD, "0-99", "someone-else"]]));
    expect(ofType(fx, "slotsLost")).toEqual([
      { type: "slotsLost", ranges: [r(0, 99)], generation: 2, reason: "assignment" },
    ]);
    d.observeStatus(status(3, [["checksums-1", "0-16383", "x"]]));
    expect(d.m.ownership.ownedCount()).toBe(0);
  });

  it("ignores stale and duplicate statuses", () => {
    const d = owning();
    d.observeStatus(status(3, [[SHARD, "0-49", ident(1)]]));
    for (const g of [2, 3, 1]) {
      const fx = d.observeStatus(status(g, [[SHARD, "0-16383", ident(1)]]));
      expect(quiet(fx)).toEqual([]);
      expect(d.m.ownership.ownedRanges()).toEqual([r(0, 49)]);
      expect(d.m.ownership.generation).toBe(3);
    }
  });

  it("a new SlotMap uid resets ownership and acks; the old uid never comes back", () => {
    const d = owning();
    d.observeStatus(status(7, [[SHARD, "0-99", ident(1)]]));
    d.run(2300); // ack 7 for uid-a, with the next renewal
    expect(d.m.ackedGeneration()).toBe(7);
    const fx = d.at(100).observeStatus(status(1, [[SHARD, "300-399", ident(1)]]), "uid-b");
    expect(ofType(fx, "slotsLost")).toEqual([
      { type: "slotsLost", ranges: [r(0, 99)], generation: 1, reason: "reset" },
    ]);
    expect(ofType(fx, "slotsGained")).toEqual([
      { type: "slotsGained", ranges: [r(300, 399)], generation: 1, reason: "reset" },
    ]);
    expect(d.m.ackedGeneration()).toBe(0); // nothing acked for uid-b yet
    const w = d.onlyPending(); // a generation lower than 7, but for another SlotMap instance
    expect(w.lease.metadata.annotations).toMatchObject({
      [ANNOTATION_OBSERVED_GENERATION]: "1",
      [ANNOTATION_SLOTMAP_UID]: "uid-b",
    });
    d.reply();
    expect(d.m.ackedGeneration()).toBe(1);
    expect(quiet(d.observeStatus(status(8, [[SHARD, "0-16383", ident(1)]]), UID))).toEqual([]);
    expect(d.m.ownership.uid).toBe("uid-b");
  });

  it("a deleted SlotMap means owning nothing", () => {
    const d = owning();
    const fx = d.m.handle({ type: "slotMapDeleted", now: 10, uid: UID });
    expect(ofType(fx, "slotsLost")).toEqual([
      { type: "slotsLost", ranges: [r(0, 99)], generation: 0, reason: "reset" },
    ]);
    expect(d.m.ownership.uid).toBeUndefined();
  });

  it("logs and ignores a status with a malformed slot list, keeping the previous table", () => {
    const d = owning();
    const fx = d.observeStatus(status(2, [[SHARD, "0-99,50", ident(1)]]));
    const errors = ofType(fx, "log").filter((l) => l.level === "error");
    expect(errors).toHaveLength(1);
    expect(String(errors[0]!.fields.error)).toContain("status.shards[0].slots");
    expect(d.m.ownership.generation).toBe(1);
    expect(d.m.ownsSlot(10)).toBe(true);
  });
});

describe("handoff", () => {
  it("stops starting lost slots at once, acks only after their in-flight reconciles finish", () => {
    const d = owning();
    d.start(5, "keep");
    d.start(50, "moving-a");
    d.start(60, "moving-b");
    const fx = d.at(500).observeStatus(status(2, [[SHARD, "0-9", ident(1)]]));
    expect(ofType(fx, "slotsLost")).toEqual([
      { type: "slotsLost", ranges: [r(10, 99)], generation: 2, reason: "assignment" },
    ]);
    expect(writes(fx)).toEqual([]); // no ack yet
    expect(d.m.mayStart(50, 500)).toBe(false);
    expect(d.m.mayStart(5, 500)).toBe(true);

    // A regular renew meanwhile still carries the old ack.
    d.tick(2250);
    expect(d.onlyPending().lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("1");
    d.reply();

    expect(writes(d.at(2500).finish(50, "moving-a"))).toEqual([]);
    expect(writes(d.finish(5, "keep"))).toEqual([]); // a reconcile on a kept slot does not block
    const last = d.finish(60, "moving-b");
    const w = d.onlyPending(); // written at once, not at the next renew
    expect(writes(last)).toEqual([w]);
    expect(w.kind).toBe("renew");
    expect(w.lease.metadata.annotations).toMatchObject({
      [ANNOTATION_OBSERVED_GENERATION]: "2",
      [ANNOTATION_SLOTMAP_UID]: UID,
    });
    expect(d.m.ackedGeneration()).toBe(1); // not before the write succeeded
    expect(ofType(d.reply(), "acked")).toEqual([{ type: "acked", uid: UID, generation: 2 }]);
    expect(d.m.ackedGeneration()).toBe(2);
  });

  it("acks a generation that takes nothing from it with the next renewal, not at once", () => {
    const d = new Driver();
    d.at(0).acquire();
    d.tick(250); // the first renew of the tenure
    d.reply();
    d.at(300).observeStatus(status(5, [["checksums-1", "0-16383", "other"]]));
    expect(d.m.inspect().ackTarget).toEqual({ uid: UID, generation: 5 });
    expect(d.pending).toEqual([]); // nobody waits for it: no Lease write of its own
    d.run(2200);
    expect(d.m.ackedGeneration()).toBe(0);
    d.run(2300); // the renewal at 2250 carries it
    expect(d.m.ackedGeneration()).toBe(5);
    // Gaining slots is no reason either: only a source's ack is waited for.
    d.observeStatus(status(6, [[SHARD, "0-99", ident(1)]]));
    expect(d.pending).toEqual([]);
    expect(d.m.ownsSlot(5)).toBe(true);
  });

  it("acks at once a generation that assigns nothing: a drain barrier waits for every live shard", () => {
    const d = new Driver();
    d.at(0).acquire();
    d.tick(250);
    d.reply();
    d.at(300).observeStatus(status(5, [["checksums-1", "", "other"]]));
    const w = d.onlyPending();
    expect(w.kind).toBe("renew");
    expect(w.lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("5");
    d.reply();
    expect(d.m.ackedGeneration()).toBe(5);
  });

  it("an acquire carries an ack only when it is waited for", () => {
    // Not waited for: a fresh Lease with an ack would be held until seen renewing.
    const joiner = new Driver();
    joiner.at(0).observeStatus(status(5, [["checksums-1", "0-16383", "other"]]));
    joiner.observeLease(null);
    expect(joiner.onlyPending().lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBeUndefined();
    // A drain barrier waits for it.
    const barrier = new Driver();
    barrier.at(0).observeStatus(status(5, [["checksums-1", "", "other"]]));
    barrier.observeLease(null);
    expect(barrier.onlyPending().lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("5");
  });

  it("ack never regresses; a later generation is acked once drained, implying the earlier ones", () => {
    const d = owning();
    d.observeStatus(status(3, [[SHARD, "0-99", ident(1)]]));
    d.run(2300); // with the next renewal
    expect(d.m.ackedGeneration()).toBe(3);
    d.start(80, "slow");
    d.observeStatus(status(4, [[SHARD, "0-49", ident(1)]]));
    d.observeStatus(status(5, [[SHARD, "0-39", ident(1)]]));
    d.observeStatus(status(2, [[SHARD, "0-99", ident(1)]])); // stale
    expect(d.m.inspect().ackTarget).toEqual({ uid: UID, generation: 3 });
    d.run(6000);
    const annotations = writes(d.log).map(
      (w) => w.lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION],
    );
    expect(annotations.every((g) => g === undefined || g === "1" || g === "3")).toBe(true);
    d.finish(80, "slow");
    d.reply();
    expect(d.m.ackedGeneration()).toBe(5); // 4 is implied
    const acked = ofType(d.log, "acked").map((a) => a.generation);
    expect(acked).toEqual([...acked].sort((a, b) => a - b));
  });

  it("after a re-acquire, reconciles of the old incarnation still block the ack", () => {
    const d = owning();
    d.start(1, "old");
    const released = d.api.put({ ...d.api.lease!, spec: { ...d.api.lease!.spec, holderIdentity: "" } });
    d.at(1000).observeLease(released);
    d.reply(); // re-acquired as a new incarnation
    expect(d.m.identity()).toBe(ident(2));
    expect(d.m.inspect().inFlightOnUnownedSlots).toBe(1); // slot 1 was granted to ident(1) only
    d.observeStatus(status(2, [["checksums-1", "0-99", "x"]])); // the coordinator moved our slots away
    expect(d.m.inspect().ackTarget).toEqual({ uid: UID, generation: 1 });
    expect(d.pending).toEqual([]);
    d.finish(1, "old");
    d.reply();
    expect(d.m.ackedGeneration()).toBe(2);
  });

  it("optionally aborts reconciles that hold up a handoff", () => {
    const d = owning("0-99", { handoffAbortAfterMs: 5000 });
    d.start(50, "stuck");
    d.at(1000).observeStatus(status(2, [[SHARD, "0-9", ident(1)]]));
    expect(d.m.nextWakeAt()).toBeLessThanOrEqual(6000);
    d.run(5900);
    expect(ofType(d.log, "abortInFlight")).toEqual([]);
    d.run(6000);
    expect(ofType(d.log, "abortInFlight")).toEqual([
      { type: "abortInFlight", keys: ["stuck"], reason: "handoffTimeout" },
    ]);
    d.run(9000);
    expect(ofType(d.log, "abortInFlight")).toHaveLength(1); // once per reconcile
  });

  it("tracks a reconcile started against mayStart and aborts it when fenced", () => {
    const d = new Driver();
    d.at(0).observeLease(
      d.api.put({ metadata: { name: SHARD, namespace: "x" }, spec: { holderIdentity: "o" } }),
    );
    const fx = d.m.handle({ type: "reconcileStarted", now: 1, slot: 3, key: "rogue" });
    expect(ofType(fx, "abortInFlight")).toEqual([
      { type: "abortInFlight", keys: ["rogue"], reason: "fenced" },
    ]);
    expect(ofType(fx, "log")[0]?.level).toBe("warn");
    expect(d.m.inspect().inFlight).toBe(1);
  });
});

describe("a restored status (generation reused by the coordinator)", () => {
  const observe = (d: Driver, g: number, slots: string, rv: string) =>
    d.observeStatus(status(g, [[SHARD, slots, ident(1)]]), UID, rv);

  it("refuses another table at the generation it applied, owns nothing and reports the refusal in its Lease until a higher generation", () => {
    const d = new Driver();
    d.at(0);
    observe(d, 3, "0-99", "100");
    d.acquire();
    expect(d.m.ackedGeneration()).toBe(0); // not waited for: the next renewal carries it
    // Restored to 2, then the coordinator writes 3 again with another table (newer resourceVersions).
    observe(d, 2, "0-16383", "110");
    observe(d, 3, "0-16383", "120");
    expect(d.m.ownership.ownedCount()).toBe(0);
    // Written at once, not at the next renew: first the refusal of the restored 2, then of 3.
    expect(d.onlyPending().lease.metadata.annotations?.[ANNOTATION_REFUSED_GENERATION]).toBe("2");
    d.reply();
    d.tick(d.now + 1);
    const w = d.onlyPending();
    expect(w.lease.metadata.annotations).toMatchObject({
      [ANNOTATION_REFUSED_GENERATION]: "3",
      [ANNOTATION_OBSERVED_GENERATION]: "3",
      [ANNOTATION_SLOTMAP_UID]: UID,
    });
    d.reply();
    // The coordinator's reset, then the new table: the report goes away with the next write.
    observe(d, 1003, "", "130");
    d.run(d.now + 3000);
    expect(d.m.ackedGeneration()).toBe(1003);
    expect(d.api.lease!.metadata.annotations?.[ANNOTATION_REFUSED_GENERATION]).toBeUndefined();
  });

  it("a rewrite of the same table at the same generation (conditions) is no refusal", () => {
    const d = new Driver();
    d.at(0);
    observe(d, 3, "0-99", "100");
    d.acquire();
    observe(d, 3, "0-99", "105");
    expect(d.m.ownership.ownedCount()).toBe(100);
    d.run(d.now + 3000);
    expect(d.api.lease!.metadata.annotations?.[ANNOTATION_REFUSED_GENERATION]).toBeUndefined();
  });
});

describe("sharding rules (status.rulesFingerprint)", () => {
  const withRules = (g: number, slots: string, rules: string) => ({
    ...status(g, [[SHARD, slots, ident(1)]]),
    rulesFingerprint: rules,
  });
  const rules = (d: Driver, fingerprint: string) => d.rulesApplied(fingerprint);

  it("owns its grant only while the runtime applies the rules the status names", () => {
    const d = new Driver();
    d.at(0).observeStatus(withRules(1, "0-99", "aaaaaaaaaaaaaaaa"));
    d.acquire();
    expect(d.m.ownership.ownedCount()).toBe(0); // no rules reported yet
    let fx = rules(d, "aaaaaaaaaaaaaaaa");
    expect(ofType(fx, "slotsGained")).toEqual([
      { type: "slotsGained", ranges: [r(0, 99)], generation: 1, reason: "assignment" },
    ]);
    // The runtime resolved an edited spec before the coordinator's barrier: nothing is owned.
    fx = rules(d, "bbbbbbbbbbbbbbbb");
    expect(ofType(fx, "slotsLost")).toEqual([
      { type: "slotsLost", ranges: [r(0, 99)], generation: 1, reason: "assignment" },
    ]);
    expect(d.m.mayStart(5, d.now)).toBe(false);
    // The barrier generation (assigns nothing, new rules), then the new table.
    d.observeStatus({ ...withRules(2, "", "bbbbbbbbbbbbbbbb"), shards: [] });
    d.run(d.now + 1000);
    expect(d.m.ackedGeneration()).toBe(2);
    d.observeStatus(withRules(3, "0-199", "bbbbbbbbbbbbbbbb"));
    expect(d.m.ownership.ownedCount()).toBe(200);
  });

  it("a status naming other rules holds the ack until reconciles of the old rules finish", () => {
    const d = new Driver();
    d.at(0).observeStatus(withRules(1, "0-99", "aaaaaaaaaaaaaaaa"));
    d.acquire();
    rules(d, "aaaaaaaaaaaaaaaa");
    d.start(5, "old-rules-key");
    d.observeStatus({ ...withRules(2, "", "bbbbbbbbbbbbbbbb"), shards: [] });
    d.run(d.now + 2000);
    expect(d.m.ackedGeneration()).toBe(1);
    d.finish(5, "old-rules-key");
    d.run(d.now + 1000);
    expect(d.m.ackedGeneration()).toBe(2);
  });

  it("a status without a fingerprint (v0.2) is used whatever rules the runtime applies", () => {
    const d = owning();
    rules(d, "bbbbbbbbbbbbbbbb");
    expect(d.m.ownership.ownedCount()).toBe(100);
  });

  it("teeth: with ignoreRulesFingerprint the grant is used under other rules", () => {
    const d = new Driver({}, shardMachineClass(["ignoreRulesFingerprint"]));
    d.at(0).observeStatus(withRules(1, "0-99", "aaaaaaaaaaaaaaaa"));
    d.acquire();
    rules(d, "bbbbbbbbbbbbbbbb");
    expect(d.m.ownership.ownedCount()).toBe(100);
  });

  it("rejects an empty fingerprint", () => {
    const d = new Driver();
    expect(() => rules(d, "")).toThrow(/rulesApplied.fingerprint/);
  });
});

describe("graceful shutdown", () => {
  it("stops starting, drains, then releases the Lease keeping the ack", () => {
    const d = owning();
    d.start(5, "a");
    d.at(500).shutdown();
    expect(d.m.phase()).toBe("draining");
    expect(d.m.mayStart(6, 500)).toBe(false);
    expect(d.m.ownsSlot(6)).toBe(true); // still ours until released
    d.run(4000); // keeps renewing meanwhile, no release
    expect(writes(d.log).map((w) => w.kind)).toEqual(["acquire", "renew", "renew"]);
    d.at(4100).finish(5, "a");
    const w = d.onlyPending();
    expect(w.kind).toBe("release");
    expect(w.lease.spec?.holderIdentity).toBe("");
    expect(w.lease.metadata.annotations).toMatchObject({
      [ANNOTATION_OBSERVED_GENERATION]: "1",
      [ANNOTATION_SLOTMAP_UID]: UID,
    });
    const fx = d.reply();
    expect(quiet(fx)).toEqual([
      { type: "fenced", reason: "released" },
      { type: "slotsLost", ranges: [r(0, 99)], generation: 1, reason: "lease" },
      { type: "stopped" },
    ]);
    expect(d.m.phase()).toBe("stopped");
    expect(d.api.lease?.spec?.holderIdentity).toBe("");
    expect(d.m.nextWakeAt()).toBeUndefined();
    expect(d.tick(100_000)).toEqual([]);
  });

  it("its own release seen by the watch before the reply stops it (info), not a lost Lease (warn)", () => {
    const d = owning();
    d.at(500).shutdown();
    const w = d.onlyPending();
    expect(w.kind).toBe("release");
    const released = d.api.put(w.lease); // applied; the reply is still on its way
    const fx = d.observeLease(released);
    expect(quiet(fx)).toEqual([
      { type: "fenced", reason: "released" },
      { type: "slotsLost", ranges: [r(0, 99)], generation: 1, reason: "lease" },
      { type: "stopped" },
    ]);
    const logs = fx.filter((e) => e.type === "log");
    expect(logs.filter((e) => e.type === "log" && e.level === "warn")).toEqual([]);
    expect(d.m.phase()).toBe("stopped");
    expect(quiet(d.reply())).toEqual([]);
  });

  it("acks the newest generation in the release once everything is drained", () => {
    const d = owning();
    d.start(50, "a");
    d.observeStatus(status(2, [[SHARD, "0-9", ident(1)]]));
    d.shutdown();
    d.finish(50, "a");
    const w = d.onlyPending();
    expect(w.kind).toBe("release");
    expect(w.lease.metadata.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("2");
  });

  it("can ask to abort in-flight reconciles", () => {
    const d = owning();
    d.start(5, "a");
    expect(ofType(d.shutdown(true), "abortInFlight")).toEqual([
      { type: "abortInFlight", keys: ["a"], reason: "shutdown" },
    ]);
  });

  it("stops at once when it does not hold the Lease", () => {
    const d = new Driver();
    d.at(0).observeLease(
      d.api.put({ metadata: { name: SHARD, namespace: "x" }, spec: { holderIdentity: "o" } }),
    );
    expect(quiet(d.shutdown())).toEqual([{ type: "stopped" }]);
  });
});

function writes(effects: ReturnType<Driver["tick"]>) {
  return effects.filter((e) => e.type === "writeLease");
}
