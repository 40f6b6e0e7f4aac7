/**
 * The trust rules of protocol v0.2 (docs: DESIGN "Trust"), one `describe` per rule: what the
 * coordinator believes about a Lease, an ack or a status, and what it waits for before it moves a
 * slot. Each rule has a "teeth" test: with the matching deliberate mutation the World's safety check
 * (no slot run by two live processes) or the rule's own expectation fails.
 */
import { describe, expect, it, vi } from "vitest";
import { type CoordinatorMutation, coordinatorGuards } from "../../../property-tests/sim/mutations.js";
import { ANNOTATION_RELEASED_BY } from "../../../src/api/index.js";
import { placementFingerprint, SLOT_COUNT } from "../../../src/slots/index.js";
import { actionsOf, condition, defaultSpec, World } from "./world.js";

// Every step plans a 16384-slot table and the World checks every write slot by slot: a few
// hundred ms per test alone, seconds on a loaded shared machine.
vi.setConfig({ testTimeout: 60_000 });

/** A World with the given shards joined, through the drain barrier, settled and acked. */
function balanced(...names: string[]): World {
  const w = new World();
  for (const n of names) w.join(n);
  w.settle({ ack: true });
  return w;
}

/** Time passes by 100 ms and every live shard renews. */
function tick(w: World): void {
  w.advance(100);
  w.renewAll();
}

function mutated(w: World, m: CoordinatorMutation): World {
  w.guards = coordinatorGuards([m]);
  return w;
}

/** a and b balanced; b-1 last seen renewing now; then b-2 acquires b's Lease. Returns that time. */
function holderChanged(w: World): number {
  tick(w);
  w.step();
  const at = w.now;
  w.reacquire("b", "b-2");
  return at;
}

describe("rule 2: incarnations", () => {
  it("a new holder: Expired (keeps its slots) until the granted holder is unrenewed for leaseDuration, then fenced in one generation", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    const at = holderChanged(w);
    w.step();
    expect(w.shardStatus("b")).toEqual({
      name: "b",
      state: "Expired",
      slots: "8192-16383",
      holderIdentity: "b-1",
    });
    for (const x of w.elapse(9_000, ["a", "b"])) expect(actionsOf(x, "updateStatus")).toEqual([]);
    w.advance(at + 9_999 - w.now);
    w.renew("a", "b");
    let r = w.step();
    expect(actionsOf(r, "updateStatus")).toEqual([]);
    expect(r.nextStepAt).toBe(at + 10_000);
    w.advance(1);
    r = w.step();
    // One generation: b-1's slots released, and given to b-2 (Ready, under its target) directly.
    expect(w.status().assignmentGeneration).toBe(g + 1);
    expect(w.shardStatus("b")).toEqual({ name: "b", slots: "8192-16383", holderIdentity: "b-2" });
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
    expect(actionsOf(r, "event")).toEqual([expect.objectContaining({ reason: "NewShardIncarnation" })]);
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
  });

  it("a standby that wins the Lease gets nothing earlier: no slots, no migration, while the granted holder may run", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    const at = holderChanged(w);
    w.step();
    w.ack("b", g); // b-2 acks what it saw: it is not b-1's ack
    w.join("c");
    const steps = w.elapse(at + 10_000 - w.now - 1, ["a", "b", "c"]);
    for (const x of steps) expect(actionsOf(x, "event")).toEqual([]);
    // Meanwhile the Expired b neither gives nor gets anything (c joined: a is at its share).
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.status().migrations).toEqual([]);
    expect(w.shardStatus("b")).toEqual({
      name: "b",
      state: "Expired",
      slots: "8192-16383",
      holderIdentity: "b-1",
    });
    w.advance(1);
    w.renew("a", "b", "c");
    const r = w.step();
    expect(actionsOf(r, "event")).toContainEqual(expect.objectContaining({ reason: "NewShardIncarnation" }));
    expect(w.shardStatus("b")?.holderIdentity).toBe("b-2");
    expect(w.status().assignmentGeneration).toBe(g + 1);
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
  });

  // Core bug (reported to the lead): while an Expired shard keeps its slots, a Ready shard that
  // joined gets nothing (the planner cannot move the Expired shard's slots, and the others are at
  // their share), so the table does not change; decide() then keeps the observed Balanced=True
  // (`result.balanced || (!result.changed && statusBalanced(status))`), and the condition claims
  // "each of the 2 Ready shards holds its weighted share" while c holds 0 slots.
  it("Balanced is not True while a Ready shard holds none of its share", () => {
    const w = balanced("a", "b");
    holderChanged(w);
    w.step();
    w.join("c");
    w.elapse(1_000, ["a", "b", "c"]);
    expect(w.counts().c).toBe(0);
    expect(condition(w.status(), "Balanced")?.status).toBe("False");
  });

  it("teeth: fenceOnHolderChange gives b-1's slots away while b-1 may still run them", () => {
    const w = balanced("a", "b");
    holderChanged(w);
    mutated(w, "fenceOnHolderChange");
    expect(() => w.step()).toThrow(/unsafe: slot \d+ may be run by b-1 and b-2/);
  });
});

describe("rule 3: the release marker", () => {
  it("a holder cleared by hand (no marker) is Expired until the granted holder was unrenewed for leaseDuration, then Dead", () => {
    const w = balanced("a", "b");
    tick(w);
    w.step();
    const at = w.now;
    w.clearHolder("b");
    let r = w.step();
    expect(w.shardStatus("b")).toMatchObject({ state: "Expired", slots: "8192-16383" });
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    for (const x of w.elapse(9_000, ["a"])) expect(x.actions).toEqual([]);
    w.advance(at + 10_000 - w.now);
    w.renew("a");
    r = w.step();
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
  });

  it("a marker naming another holder than the granted one is a hand edit too", () => {
    const w = balanced("a", "b");
    w.clearHolder("b");
    w.annotate("b", { [ANNOTATION_RELEASED_BY]: "b-0" });
    w.step();
    expect(w.stateOf("b")).toBe("Expired");
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });

  it("the graceful release (marker = the granted holder) is Dead at once and its slots move in the same step", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    w.release("b");
    expect(w.lease("b").metadata.annotations[ANNOTATION_RELEASED_BY]).toBe("b-1");
    w.step();
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.status().assignmentGeneration).toBe(g + 1);
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
  });

  it("a cleared holder without any grant is waited out too: its process may still run a table it has not seen replaced", () => {
    // Simulator finding (2026-12-03): after a restored status was reset, a shard still running the
    // restored table had its holder cleared during the drain barrier; the barrier stopped waiting
    // for it and its slots went to another shard while it still ran one.
    const w = new World();
    w.join("a");
    w.join("b");
    w.step(); // generation 1 assigns nothing: b has no grant
    tick(w);
    w.step();
    const at = w.now; // b-1 last seen renewing
    w.clearHolder("b");
    w.ack("a", 1);
    w.step();
    expect(w.stateOf("b")).toBe("Expired");
    for (const x of w.elapse(at + 9_000 - w.now, ["a"])) expect(actionsOf(x, "updateStatus")).toEqual([]);
    expect(w.status().assignmentGeneration).toBe(1); // the barrier still waits for b
    w.elapse(2_000, ["a"]);
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
  });

  it("teeth (no grant): with trustClearedHolder the barrier stops waiting for a cleared holder at once", () => {
    const w = new World();
    w.join("a");
    w.join("b");
    w.step();
    tick(w);
    w.step();
    mutated(w, "trustClearedHolder");
    w.clearHolder("b");
    w.ack("a", 1);
    w.step();
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.status().assignmentGeneration).toBe(2);
  });

  it("teeth: trustClearedHolder gives the slots away while the process may still run them", () => {
    const w = mutated(balanced("a", "b"), "trustClearedHolder");
    w.clearHolder("b");
    expect(() => w.step()).toThrow(/unsafe: slot \d+ may be run by (a-1 and b-1|b-1 and a-1)/);
  });
});

describe("rule 3: a lagging Lease view", () => {
  /** a and b balanced; the coordinator's Lease view stalls 16 s while both renew; then b's holder is cleared and the view catches up. */
  function clearedAfterUnseenRenewals(w: World): void {
    tick(w);
    w.step();
    w.staleLeases = w.observe().leases;
    for (let i = 0; i < 16; i++) {
      w.advance(1000);
      w.renewAll();
      w.step(); // a stale takeover of a or b fails its resourceVersion precondition
    }
    w.clearHolder("b");
    w.staleLeases = undefined;
  }

  it("a holder cleared after renewals the coordinator did not see is waited out from when it saw the clear", () => {
    const w = balanced("a", "b");
    clearedAfterUnseenRenewals(w);
    const at = w.now;
    w.step();
    expect(w.shardStatus("b")).toMatchObject({ state: "Expired", slots: "8192-16383" });
    for (const x of w.elapse(9_000, ["a"])) expect(actionsOf(x, "updateStatus")).toEqual([]);
    w.advance(at + 10_000 - w.now);
    w.renew("a");
    w.step();
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
  });

  it("teeth: trustLaggingView gives b's slots away while b-1 renewed a moment ago", () => {
    const w = mutated(balanced("a", "b"), "trustLaggingView");
    clearedAfterUnseenRenewals(w);
    expect(() => w.step()).toThrow(/unsafe: slot \d+ may be run by (a-1 and b-1|b-1 and a-1)/);
  });
});

describe("rule 4: what counts as a renewal", () => {
  it("label or annotation writes to a dead shard's Lease do not keep it alive: it still expires", () => {
    const w = balanced("a", "b");
    tick(w);
    w.step();
    const steps = [];
    for (let i = 0; i < 10; i++) {
      w.advance(1_000);
      w.renew("a");
      w.annotate("b", { "example.com/touched": String(i) }); // a tool touches b's Lease
      steps.push(w.step());
    }
    expect(actionsOf(steps.at(-1)!, "takeOverLease").map((x) => x.name)).toEqual(["b"]);
  });

  it("teeth: fingerprintResourceVersion keeps the touched dead shard alive", () => {
    const w = mutated(balanced("a", "b"), "fingerprintResourceVersion");
    for (let i = 0; i < 12; i++) {
      w.advance(1_000);
      w.renew("a");
      w.annotate("b", { "example.com/touched": String(i) });
      expect(actionsOf(w.step(), "takeOverLease")).toEqual([]);
    }
  });
});

describe("rule 5: which acks count", () => {
  it("an ack from another holder than the granted one commits nothing", () => {
    const w = balanced("a", "b");
    w.config = { commitBatchMs: 0 };
    w.join("c");
    w.step();
    const g = w.status().assignmentGeneration;
    holderChanged(w);
    w.ack("b", g); // b-2 acks: the migration from b-1 must wait
    w.ack("a", g);
    w.step();
    expect(w.status().migrations.map((m) => m.from)).toEqual(["b"]);
  });

  it("teeth: ackFromAnyHolder commits b-1's migration on b-2's ack while b-1 may still run it", () => {
    const w = balanced("a", "b");
    w.config = { commitBatchMs: 0 };
    w.join("c");
    w.step();
    const g = w.status().assignmentGeneration;
    holderChanged(w);
    w.step();
    mutated(w, "ackFromAnyHolder");
    w.ack("b", g);
    expect(() => w.step()).toThrow(/unsafe/);
  });

  it("an ack above the status generation means the status regressed: reset to highestAck + 1000, then the drain barrier", () => {
    const w = balanced("a", "b");
    w.join("c");
    w.settle({ ack: true });
    const top = w.status().assignmentGeneration;
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
    const writes = w.statusWrites.length;
    // Someone sets the generation back by hand (or restores an old backup).
    w.writeStatusRaw({ ...(w.slotMap.status as object), assignmentGeneration: 2 });
    let r = w.step();
    const reset = top + 1000;
    expect(w.status()).toMatchObject({
      assignmentGeneration: reset,
      migrations: [],
      unassignedSlots: `0-${SLOT_COUNT - 1}`,
    });
    expect(condition(w.status(), "Ready")).toMatchObject({ status: "False", reason: "StatusRegressed" });
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        eventType: "Warning",
        reason: "StatusRegressed",
        message: expect.stringContaining(`${top}`),
      }),
    ]);
    expect(r.metrics).toMatchObject({ statusValid: false, assignmentGeneration: reset });
    expect(w.statusWrites).toHaveLength(writes + 1);

    // Then the drain barrier: nothing is assigned until every live shard acked the reset.
    tick(w);
    r = w.step();
    expect(actionsOf(r, "event")).toEqual([]);
    expect(r.metrics.statusValid).toBe(true);
    expect(condition(w.status(), "Ready")).toMatchObject({ reason: "DrainBarrier" });
    w.ack("a");
    w.ack("b");
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(reset);
    w.ack("c");
    w.step();
    expect(w.status().assignmentGeneration).toBe(reset + 1);
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
  });

  it("a shard refusing the table at the status's generation (a reused generation) resets it; a refusal below it or for another uid does not", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    w.annotate("b", { "slotmap.dev/refused-generation": String(g - 1) });
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g);
    w.annotate("b", {
      "slotmap.dev/refused-generation": String(g),
      "slotmap.dev/slotmap-uid": "another-uid",
    });
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g);
    w.annotate("b", {
      "slotmap.dev/refused-generation": String(g),
      "slotmap.dev/slotmap-uid": w.slotMap.metadata.uid,
    });
    tick(w);
    const r = w.step();
    expect(w.status()).toMatchObject({
      assignmentGeneration: g + 1000,
      unassignedSlots: `0-${SLOT_COUNT - 1}`,
    });
    expect(condition(w.status(), "Ready")).toMatchObject({ status: "False", reason: "StatusRegressed" });
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        reason: "StatusRegressed",
        message: expect.stringContaining("refuses the table"),
      }),
    ]);
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });

  it("a status set back below a generation this coordinator saw is reset even when no ack above it is in view (a lagging Lease view)", () => {
    const w = balanced("a", "b");
    const backup = structuredClone(w.slotMap.status);
    const before = w.status().assignmentGeneration;
    w.join("c");
    for (let i = 0; i < 20 && w.status().assignmentGeneration === before; i++) {
      tick(w);
      w.step();
    }
    const seen = w.status().assignmentGeneration; // written; nobody's ack of it is seen
    expect(seen).toBeGreaterThan(before);
    tick(w);
    w.step(); // the coordinator observes its own write
    w.writeStatusRaw(backup);
    const r = w.step();
    expect(w.status().assignmentGeneration).toBe(seen + 1000);
    expect(actionsOf(r, "event").map((e) => e.reason)).toEqual(["StatusRegressed"]);
    // Teeth: without the memory it plans on the restored table and reuses generation g+1.
    const m = mutated(balanced("a", "b"), "forgetGenerations");
    const backup2 = structuredClone(m.slotMap.status);
    const before2 = m.status().assignmentGeneration;
    m.join("c");
    for (let i = 0; i < 20 && m.status().assignmentGeneration === before2; i++) {
      tick(m);
      m.step();
    }
    const seen2 = m.status().assignmentGeneration;
    tick(m);
    m.step();
    m.writeStatusRaw(backup2);
    m.step({ apply: true });
    expect(m.status().assignmentGeneration).toBeLessThanOrEqual(seen2);
  });

  it("teeth: with ignoreRefusal the refused table stands", () => {
    const w = mutated(balanced("a", "b"), "ignoreRefusal");
    const g = w.status().assignmentGeneration;
    w.annotate("b", { "slotmap.dev/refused-generation": String(g) });
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g);
  });

  it("an ack above the status generation for another SlotMap uid is not a regression", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    w.ack("b", g + 50, "uid-of-an-old-instance");
    w.advance(100);
    w.renewAll();
    const r = w.step();
    expect(actionsOf(r, "event")).toEqual([]);
    expect(w.status().assignmentGeneration).toBe(g);
    expect(condition(w.status(), "Ready")?.reason).toBe("AllSlotsCovered");
  });

  it("a status restored from a backup in the middle of a handoff is reset, never planned on", () => {
    const w = balanced("a", "b");
    const backup = structuredClone(w.slotMap.status);
    w.join("c");
    w.settle({ ack: true });
    w.writeStatusRaw(backup); // c owns nothing there, a and b own what c runs now
    const r = w.step();
    expect(condition(w.status(), "Ready")?.reason).toBe("StatusRegressed");
    expect(actionsOf(r, "event").map((e) => e.reason)).toEqual(["StatusRegressed"]);
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
  });
});

describe("rule 6: settle after a fresh observation", () => {
  it("a new leader changes nothing until every Ready Lease carrying an ack was seen renewing", () => {
    const w = balanced("a", "b");
    w.memory = undefined;
    w.join("c");
    const g = w.status().assignmentGeneration;
    let r = w.step();
    // Held: the table does not change (the status may still list the new shard).
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.status().migrations).toEqual([]);
    expect(r.logs).toContainEqual(
      expect.objectContaining({
        msg: expect.stringContaining("holding the slot table"),
        fields: expect.objectContaining({ shards: "a, b" }),
      }),
    );
    w.advance(100);
    w.renew("a");
    r = w.step();
    expect(w.status().migrations).toEqual([]);
    w.advance(100);
    w.renew("b");
    w.step();
    expect(w.status().migrations.map((m) => m.to)).toEqual(["c", "c"]);
  });

  it("teeth: skipSettle plans at once", () => {
    const w = balanced("a", "b");
    w.memory = undefined;
    mutated(w, "skipSettle");
    w.join("c");
    w.step();
    expect(w.status().migrations.map((m) => m.to)).toEqual(["c", "c"]);
  });
});

describe("rule 7: no false takeover after a blind period", () => {
  it("a step 30 s after the previous one restarts every Lease clock", () => {
    const w = balanced("a", "b");
    tick(w);
    w.step();
    // The coordinator was paused for 30 s: its observation still shows the renewals of then.
    w.advance(30_000);
    let r = w.step();
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(r.logs).toContainEqual(
      expect.objectContaining({ level: "warn", msg: expect.stringContaining("observation gap") }),
    );
    expect(w.stateOf("a")).toBe("Ready");
    // If they really stopped, a full lease duration of the clock from now is waited for.
    const steps = w.elapse(10_000);
    expect(steps.slice(0, -1).every((x) => actionsOf(x, "takeOverLease").length === 0)).toBe(true);
    r = steps.at(-1)!;
    expect(actionsOf(r, "takeOverLease").map((x) => x.name)).toEqual(["a", "b"]);
  });

  it("teeth: ignoreObservationGap takes over Leases that were renewing", () => {
    const w = mutated(balanced("a", "b"), "ignoreObservationGap");
    tick(w);
    w.step();
    w.advance(30_000);
    expect(actionsOf(w.step(), "takeOverLease").map((x) => x.name)).toEqual(["a", "b"]);
  });
});

describe("rule 8: the lease-duration cap", () => {
  it("a Lease longer than spec.policy.maxLeaseDurationSeconds gets no slots, with one Warning Event", () => {
    const w = new World(defaultSpec({ policy: { maxLeaseDurationSeconds: 60 } }));
    w.join("a");
    w.leaseDurationSeconds = 120;
    w.join("slow");
    let r = w.step();
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        eventType: "Warning",
        reason: "LeaseDurationRefused",
        message: expect.stringContaining("120s"),
      }),
    ]);
    tick(w);
    w.ackAll();
    r = w.step();
    expect(actionsOf(r, "event")).toEqual([]);
    expect(w.counts()).toEqual({ a: SLOT_COUNT, slow: 0 });
    expect(w.stateOf("slow")).toBe("Expired");
  });

  it("a refused Lease deleted or cleared is not waited for by the drain barrier (its declared hour is no wait)", () => {
    // Simulator finding (2026-12-03): a deleted rogue Lease of 3600 s held the barrier for an hour.
    for (const edit of ["delete", "clear"] as const) {
      const w = new World(defaultSpec({ policy: { maxLeaseDurationSeconds: 60 } }));
      w.join("a");
      w.leaseDurationSeconds = 3600;
      w.join("rogue", "x");
      w.step();
      tick(w);
      w.step(); // the rogue seen renewing, refused
      if (edit === "delete") w.leases.delete("rogue");
      else w.clearHolder("rogue");
      w.ack("a", 1);
      w.step();
      expect(w.counts(), edit).toEqual({ a: SLOT_COUNT, ...(edit === "clear" ? { rogue: 0 } : {}) });
    }
  });

  it("a new leader waits for a grant's stopped incarnation at most the cap, not a successor's refused hour", () => {
    // Simulator finding P6: the memory that knew b-1's 10 s is lost (a failover, or a failed
    // fencing write); b's Lease now declares a rogue's hour. The wait must end at the 60 s cap.
    const w = new World(defaultSpec({ policy: { maxLeaseDurationSeconds: 60 } }));
    w.join("a");
    w.join("b");
    w.settle({ ack: true });
    // b-1 stops renewing (gone after its 10 s), and at once someone takes b's Lease for an hour.
    w.lease("b").spec.leaseDurationSeconds = 3600;
    w.reacquire("b", "rogue");
    w.memory = undefined; // a new leader
    w.step();
    expect(w.shardStatus("b")?.holderIdentity).toBe("b-1");
    w.elapse(59_000, ["a", "b"]);
    expect(w.shardStatus("b")?.holderIdentity, "still within the cap").toBe("b-1");
    w.elapse(2_000, ["a", "b"]);
    expect(w.shardStatus("b")?.holderIdentity, "waited out after the cap").not.toBe("b-1");
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
  });

  it("teeth: uncappedLeaseDuration gives it slots", () => {
    const w = mutated(new World(), "uncappedLeaseDuration");
    w.join("a");
    w.leaseDurationSeconds = 120;
    w.join("slow");
    w.openBarrier();
    expect(w.counts()).toEqual({ a: 8192, slow: 8192 });
  });
});

describe("rule 10: sharding-rule changes pass the drain barrier", () => {
  const placementB = [{ resource: "configmaps", controlledResources: [{ resource: "secrets" }] }];
  const editResources = (w: World, resources: unknown): void => {
    w.slotMap = {
      ...w.slotMap,
      metadata: {
        ...w.slotMap.metadata,
        generation: w.slotMap.metadata.generation + 1,
        resourceVersion: w.nextRv(),
      },
      spec: { ...(w.slotMap.spec as object), resources },
    };
  };

  it("the status carries the placement fingerprint of spec.resources from its first write", () => {
    const w = balanced("a", "b");
    expect(w.status().rulesFingerprint).toBe(placementFingerprint([{ resource: "secrets" }]));
  });

  it("a placement change writes the next generation assigning nothing with the new fingerprint, then assigns once every live shard acked it", () => {
    const w = balanced("a", "b", "c");
    const g = w.status().assignmentGeneration;
    editResources(w, placementB);
    const r = w.step();
    expect(w.status()).toMatchObject({
      assignmentGeneration: g + 1,
      rulesFingerprint: placementFingerprint(placementB),
      migrations: [],
      unassignedSlots: `0-${SLOT_COUNT - 1}`,
    });
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({ eventType: "Normal", reason: "RulesChanged" }),
    ]);
    expect(condition(w.status(), "Ready")).toMatchObject({ status: "False", reason: "DrainBarrier" });
    // Nothing is assigned while one live shard has not acked (it may still run the old rules).
    w.ack("a");
    w.ack("b");
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g + 1);
    w.ack("c");
    w.step();
    expect(w.status().assignmentGeneration).toBe(g + 2);
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
    expect(w.status().rulesFingerprint).toBe(placementFingerprint(placementB));
  });

  it("reordering spec.resources or editing the namespace selector is no change: no barrier", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    editResources(w, [{ resource: "secrets" }]);
    w.slotMap = {
      ...w.slotMap,
      spec: { ...(w.slotMap.spec as object), namespaceSelector: { matchLabels: { team: "a" } } },
    };
    tick(w);
    const r = w.step();
    expect(actionsOf(r, "event")).toEqual([]);
    expect(w.status().assignmentGeneration).toBe(g);
  });

  it("a status without a fingerprint (written by v0.2) adopts the spec's without a barrier", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    const { rulesFingerprint: _, ...legacy } = w.status();
    w.writeStatusRaw(legacy);
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.status().rulesFingerprint).toBe(placementFingerprint([{ resource: "secrets" }]));
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });

  it("teeth: adoptRulesWithoutBarrier keeps the table and only swaps the fingerprint", () => {
    const w = mutated(balanced("a", "b"), "adoptRulesWithoutBarrier");
    const g = w.status().assignmentGeneration;
    editResources(w, placementB);
    tick(w);
    w.step();
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
    expect(w.status().rulesFingerprint).toBe(placementFingerprint(placementB));
  });
});

describe("rule 9: more than 1024 shards", () => {
  it("the excess (by name) is left out: not listed, no slots, Balanced=False TooManyShards, one Event", () => {
    const w = new World();
    const names = Array.from({ length: 1030 }, (_, i) => `s${String(i).padStart(4, "0")}`);
    for (const n of names) w.join(n);
    let r = w.step();
    expect(actionsOf(r, "event").filter((e) => e.reason === "TooManyShards")).toHaveLength(1);
    tick(w);
    w.ackAll();
    r = w.step();
    expect(actionsOf(r, "event")).toEqual([]);
    const s = w.status();
    expect(s.shards).toHaveLength(1024);
    expect(s.shards.at(-1)!.name).toBe("s1023");
    expect(s.unassignedSlots).toBe("");
    expect(condition(s, "Balanced")).toMatchObject({ status: "False", reason: "TooManyShards" });
    expect(r.metrics.shardsOverLimit).toBe(6);
  }, 120_000);
});

describe("batched commits and quiet logs", () => {
  function joining(): World {
    const w = balanced("a", "b", "c");
    w.join("d");
    const r = w.step();
    // One line per kind per generation, not one per shard.
    const started = r.logs.filter((l) => l.msg === "handoffs started");
    expect(started).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ count: 3, sources: "a, b, c" }) }),
    ]);
    expect(r.logs.filter((l) => l.msg.startsWith("handoff ") || l.msg === "slots released")).toEqual([]);
    return w;
  }

  // Core slip (reported): "handoffs started" lists each target once per migration ("d, d, d"):
  // nameList() of the targets is not deduplicated, as the conditions' migration pairs are.
  it("the handoffs-started line names each target once", () => {
    const w = balanced("a", "b", "c");
    w.join("d");
    const r = w.step();
    expect(r.logs.find((l) => l.msg === "handoffs started")?.fields.targets).toBe("d");
  });

  it("three sources acking at different times within commitBatchMs commit in one status write", () => {
    const w = joining();
    const writes = w.statusWrites.length;
    const first = w.now;
    w.ack("a");
    let r = w.step();
    expect(r.nextStepAt).toBe(first + 250);
    w.advance(100);
    w.ack("b");
    w.step();
    w.advance(100);
    w.ack("c");
    r = w.step();
    expect(w.statusWrites).toHaveLength(writes + 1);
    expect(w.status().migrations).toEqual([]);
    expect(w.counts().d).toBe(4096);
    expect(r.logs.filter((l) => l.msg === "handoffs committed")).toEqual([
      expect.objectContaining({
        fields: expect.objectContaining({ count: 3, acked: 3, sources: "a, b, c" }),
      }),
    ]);
  });

  it("past the window, the acked ones commit without waiting for the rest", () => {
    const w = joining();
    const writes = w.statusWrites.length;
    const first = w.now;
    w.ack("a");
    w.step();
    w.advance(100);
    w.ack("b");
    w.step();
    w.advance(149);
    w.step();
    expect(w.statusWrites).toHaveLength(writes);
    w.advance(1);
    const r = w.step();
    expect(w.now).toBe(first + 250);
    expect(w.statusWrites).toHaveLength(writes + 1);
    expect(w.status().migrations.map((m) => m.from)).toEqual(["c"]);
    expect(r.metrics.handoffs.map((h) => [h.from, h.outcome])).toEqual([
      ["a", "acked"],
      ["b", "acked"],
    ]);
  });
});
