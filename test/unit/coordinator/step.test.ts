import { describe, expect, it, vi } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_WEIGHT,
  parseSlotMapStatus,
} from "../../../src/api/index.js";
import {
  CoordinatorInputError,
  type StepInput,
  step,
  TAKEOVER_HOLDER,
} from "../../../src/coordinator/core/index.js";
import { SLOT_COUNT } from "../../../src/slots/index.js";
import { actionsOf, condition, defaultSpec, NS, WALL0, World } from "./world.js";

// Every step plans a 16384-slot table and the World checks every write slot by slot: a few
// hundred ms per test alone, seconds on a loaded shared machine.
vi.setConfig({ testTimeout: 60_000 });

/** A World with the given shards joined, settled and acked at the current generation. */
function balanced(...names: string[]): World {
  const w = new World();
  for (const n of names) w.join(n);
  w.settle({ ack: true });
  w.ackAll();
  w.settle();
  return w;
}

describe("first assignment", () => {
  it("gives the first shard all 16384 slots in generation 2, once it acked the empty generation 1", () => {
    const w = new World();
    w.join("a");
    const first = w.step();
    const [update] = actionsOf(first, "updateStatus");
    expect(update).toBeDefined();
    expect(update!.slotMap).toEqual({ name: "checksums", uid: "uid-1", resourceVersion: expect.any(String) });
    expect(w.status().assignmentGeneration).toBe(1);
    expect(w.status().unassignedSlots).toBe("0-16383");
    w.advance(100);
    w.renew("a");
    w.ack("a", 1);
    const r = w.step();
    const s = w.status();
    expect(s.assignmentGeneration).toBe(2);
    expect(s.observedGeneration).toBe(1);
    // Compact: no state when Ready, no per-shard ack (acks live in the Leases).
    expect(s.shards).toEqual([{ name: "a", slots: "0-16383", holderIdentity: "a-1" }]);
    expect(s.migrations).toEqual([]);
    expect(s.unassignedSlots).toBe("");
    expect([s.shardCount, s.readyShards, s.migratingSlots]).toEqual([1, 1, 0]);
    expect(condition(s, "Ready")).toMatchObject({ status: "True", reason: "AllSlotsCovered" });
    expect(condition(s, "Balanced")).toMatchObject({ status: "True", reason: "Balanced" });
    expect(condition(s, "Progressing")).toMatchObject({ status: "False", reason: "NoMigrations" });
    expect(condition(s, "Ready")!.lastTransitionTime).toBe("2025-01-02T03:04:06Z");
    expect(r.metrics).toMatchObject({
      assignmentGeneration: 2,
      shardsByState: { Ready: 1, Expired: 0, Dead: 0 },
      slotsPerShard: [{ shard: "a", slots: SLOT_COUNT }],
      migrationsInFlight: 0,
      unassignedSlots: 0,
    });
  });

  it("without any Lease writes generation 1 with every slot unassigned and Ready=False", () => {
    const w = new World();
    w.step();
    const s = w.status();
    expect(s.assignmentGeneration).toBe(1);
    expect(s.unassignedSlots).toBe("0-16383");
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "NoReadyShards" });
    expect(w.step().actions).toEqual([]);
  });

  it("splits 16384 slots over three shards, balanced within one slot", () => {
    const w = new World();
    for (const n of ["a", "b", "c"]) w.join(n);
    w.openBarrier();
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
    expect(w.status().assignmentGeneration).toBe(2);
    expect(w.status().migrations).toEqual([]);
    expect(condition(w.status(), "Balanced")?.status).toBe("True");
  });
});

describe("a fourth shard joins", () => {
  it("starts migrations only, commits none before the ack and each source's after its ack (commitBatchMs 0)", () => {
    const w = balanced("a", "b", "c");
    w.config = { commitBatchMs: 0 };
    const g = w.status().assignmentGeneration;
    const owned = w.counts();
    w.join("d");
    w.step();
    const s = w.status();
    expect(s.assignmentGeneration).toBe(g + 1);
    expect(w.counts()).toEqual({
      ...Object.fromEntries(Object.entries(owned).map(([k, v]) => [k, v - (v - 4096)])),
      d: 0,
    });
    expect(s.migrations.map((m) => [m.from, m.to, m.generation])).toEqual([
      ["a", "d", g + 1],
      ["b", "d", g + 1],
      ["c", "d", g + 1],
    ]);
    expect(s.migratingSlots).toBe(SLOT_COUNT - 3 * 4096);
    expect(condition(s, "Progressing")).toMatchObject({ status: "True", reason: "HandoffInProgress" });
    expect(condition(s, "Balanced")).toMatchObject({ status: "False", reason: "Migrating" });

    // Time passes, Leases renew, acks of older generations arrive: nothing is committed.
    for (let i = 0; i < 5; i++) {
      w.advance(2000);
      w.renew("a", "b", "c", "d");
      w.ack("a", g);
      const r = w.step();
      expect(actionsOf(r, "updateStatus")).toEqual([]);
    }
    expect(w.status().assignmentGeneration).toBe(g + 1);

    w.ack("a", g + 1);
    const r = w.step();
    expect(r.metrics.handoffs).toEqual([
      { from: "a", to: "d", generation: g + 1, slots: 5462 - 4096, durationMs: 10_000, outcome: "acked" },
    ]);
    expect(w.status().assignmentGeneration).toBe(g + 2);
    expect(w.status().migrations.map((m) => m.from)).toEqual(["b", "c"]);
    expect(w.counts().d).toBe(5462 - 4096);
    expect(r.logs).toContainEqual(
      expect.objectContaining({
        msg: "handoffs committed",
        fields: expect.objectContaining({ slotmap: "checksums", sources: "a", count: 1, generation: g + 2 }),
      }),
    );

    w.ack("b", g + 1);
    w.ack("c", g + 2);
    w.step();
    expect(w.counts()).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
    expect(w.status().migrations).toEqual([]);
    expect(condition(w.status(), "Balanced")?.status).toBe("True");
    expect(condition(w.status(), "Progressing")).toMatchObject({ status: "False", reason: "NoMigrations" });
    expect(w.step().actions).toEqual([]);
  });

  it("ignores an ack for another SlotMap uid", () => {
    const w = balanced("a", "b", "c");
    w.join("d");
    w.step();
    const g = w.status().assignmentGeneration;
    for (const n of ["a", "b", "c"]) w.ack(n, g, "uid-of-an-old-instance");
    const r = w.step();
    // No migration is committed, and the foreign ack causes no status write at all.
    expect(actionsOf(r, "updateStatus")).toEqual([]);
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.status().migrations).toHaveLength(3);
    expect(r.metrics.handoffs).toEqual([]);
    for (const n of ["a", "b", "c"]) w.ack(n, g);
    w.step();
    expect(w.status().migrations).toEqual([]);
    expect(w.counts().d).toBe(4096);
  });

  it("respects spec.policy.maxMigratingSlots", () => {
    const w = new World(defaultSpec({ policy: { maxMigratingSlots: 1000 } }));
    w.join("a");
    w.settle({ ack: true });
    w.join("b");
    w.step();
    expect(w.status().migratingSlots).toBe(1000);
    let rounds = 0;
    while ((w.status().migratingSlots ?? 0) > 0 && rounds < 50) {
      expect(w.status().migratingSlots ?? 0).toBeLessThanOrEqual(1000);
      w.advance(100);
      w.renewAll();
      w.ackAll();
      w.step();
      rounds++;
    }
    expect(rounds).toBe(9);
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });
});

describe("Lease expiry, takeover and orphan deletion", () => {
  it("Expired at exactly leaseDuration of the coordinator clock, then taken over, Dead, slots moved, Lease deleted", () => {
    const w = balanced("a", "b");
    const g = w.status().assignmentGeneration;
    const t0 = w.now;
    w.renew("a", "b");
    let r = w.step();
    expect(r.actions).toEqual([]);
    // The next wake-up is the heartbeat, never later (b's expiry is at t0 + 10 s).
    expect(r.nextStepAt).toBe(t0 + 1000);

    // b stops renewing; a keeps renewing. One millisecond before the deadline b is still Ready.
    for (const x of w.elapse(9_000, ["a"])) expect(x.actions).toEqual([]);
    w.advance(999);
    w.renew("a");
    r = w.step();
    expect(r.actions).toEqual([]);
    expect(w.stateOf("b")).toBe("Ready");
    expect(r.nextStepAt).toBe(t0 + 10_000);

    w.advance(1);
    const rvBefore = w.lease("b").metadata.resourceVersion;
    r = w.step();
    expect(w.stateOf("b")).toBe("Expired");
    expect(w.counts()).toEqual({ a: 8192, b: 8192 }); // an Expired shard keeps its slots
    expect(w.status().assignmentGeneration).toBe(g);
    expect(actionsOf(r, "takeOverLease")).toEqual([
      {
        type: "takeOverLease",
        namespace: NS,
        name: "b",
        uid: w.lease("b").metadata.uid,
        resourceVersion: rvBefore,
        spec: {
          holderIdentity: TAKEOVER_HOLDER,
          acquireTime: expect.stringMatching(/^2025-01-02T03:04:\d\d\.\d{6}Z$/),
          renewTime: expect.stringMatching(/^2025-01-02T03:04:\d\d\.\d{6}Z$/),
          leaseTransitions: 1,
          leaseDurationSeconds: 10,
        },
      },
    ]);
    expect(actionsOf(r, "takeOverLease")[0]!.spec.renewTime).toBe(
      new Date(WALL0 + w.now).toISOString().replace("Z", "000Z"),
    );
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        eventType: "Warning",
        reason: "ShardExpired",
        reportingInstance: "coordinator-0",
      }),
    ]);
    expect(w.lease("b").spec.holderIdentity).toBe(TAKEOVER_HOLDER);

    // The takeover is observed: b is Dead and its slots go straight to a.
    r = w.step();
    expect(w.shardStatus("b")).toEqual({ name: "b", state: "Dead", slots: "" });
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
    expect(w.status().assignmentGeneration).toBe(g + 1);
    expect(w.status().migrations).toEqual([]);
    expect(r.nextStepAt).toBe(w.now + 1000);
    expect(w.step().actions).toEqual([]);

    // Orphaned after 60 s dead (a keeps renewing, so only b's deadline matters).
    for (const x of w.elapse(59_000, ["a"])) expect(actionsOf(x, "deleteLease")).toEqual([]);
    w.advance(999);
    w.renew("a");
    r = w.step();
    expect(actionsOf(r, "deleteLease")).toEqual([]);
    expect(r.nextStepAt).toBe(w.now + 1);
    w.advance(1);
    const lease = w.lease("b");
    r = w.step();
    expect(actionsOf(r, "deleteLease")).toEqual([
      {
        type: "deleteLease",
        namespace: NS,
        name: "b",
        uid: lease.metadata.uid,
        resourceVersion: lease.metadata.resourceVersion,
      },
    ]);
    expect(w.leases.has("b")).toBe(false);
    w.step();
    expect(w.status().shards.map((s) => s.name)).toEqual(["a"]);
    expect(w.step().actions).toEqual([]);
  });

  it("a takeover that loses the race (the holder renewed) conflicts and the shard stays Ready", () => {
    const w = balanced("a", "b");
    w.elapse(9_000, ["a"]);
    w.advance(1_000);
    w.renew("a");
    const r = w.step({ apply: false });
    const [takeover] = actionsOf(r, "takeOverLease");
    expect(takeover?.name).toBe("b");
    w.renew("b"); // b renews before the takeover lands
    expect(w.apply(takeover!)).toBe(false);
    for (const a of r.actions) if (a !== takeover) w.apply(a);
    w.step();
    expect(w.stateOf("b")).toBe("Ready");
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });

  it("a released Lease (holder cleared with the release marker) is Dead at once and is not taken over", () => {
    const w = balanced("a", "b");
    w.release("b");
    const r = w.step();
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(w.stateOf("b")).toBe("Dead");
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
  });

  it("a shard whose Lease disappears keeps its slots for a lease duration, then is Dead", () => {
    const w = balanced("a", "b");
    w.leases.delete("b");
    let r = w.step();
    expect(w.stateOf("b")).toBe("Expired");
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
    expect(r.nextStepAt).toBe(w.now + 1000);
    for (const x of w.elapse(9_000, ["a"])) expect(actionsOf(x, "updateStatus")).toEqual([]);
    w.advance(999);
    w.renew("a");
    r = w.step();
    expect(actionsOf(r, "updateStatus")).toEqual([]);
    expect(r.nextStepAt).toBe(w.now + 1);
    w.advance(1);
    r = w.step();
    // Dead and released in one write; it owns nothing and has no Lease, so it leaves the list.
    expect(w.status().shards.map((s) => [s.name, s.state])).toEqual([["a", undefined]]);
    expect(w.counts()).toEqual({ a: SLOT_COUNT });
  });

  it("a migration from a shard that dies is committed when it is Dead", () => {
    const w = balanced("a", "b");
    w.join("c");
    w.step();
    const fromB = w.status().migrations.find((m) => m.from === "b");
    expect(fromB).toBeDefined();
    w.release("b");
    const r = w.step();
    expect(w.status().migrations.some((m) => m.from === "b")).toBe(false);
    expect(r.metrics.handoffs).toContainEqual(expect.objectContaining({ from: "b", outcome: "fenced" }));
  });
});

describe("Lease incarnations", () => {
  it("a new holder after a takeover gets a new generation with its holderIdentity and slots directly", () => {
    const w = balanced("a", "b");
    w.elapse(10_000, ["a"]); // b Expired and taken over at the last step
    w.step(); // Dead, slots to a
    expect(w.counts()).toEqual({ a: SLOT_COUNT, b: 0 });
    w.reacquire("b", "b-2");
    const g = w.status().assignmentGeneration;
    w.step();
    expect(w.shardStatus("b")).toEqual({ name: "b", slots: "", holderIdentity: "b-2" });
    expect(w.status().assignmentGeneration).toBe(g + 1);
    // a is live and must hand over: migrations, not a direct move.
    expect(w.status().migrations.map((m) => [m.from, m.to])).toEqual([["a", "b"]]);
  });

  it("a holder change of a Ready shard fences the old incarnation only after it was unrenewed for a lease duration", () => {
    const w = balanced("a", "b");
    w.join("c");
    w.step();
    const g = w.status().assignmentGeneration;
    expect(w.status().migrations.map((m) => m.from)).toEqual(["a", "b"]);
    // b-1 is last seen renewing now; then a new process b-2 acquires b's Lease (by its own clock,
    // or by hand): b-1 may still be running.
    w.advance(100);
    w.renewAll();
    w.step();
    const changedAt = w.now;
    w.reacquire("b", "b-2");
    let r = w.step();
    expect(actionsOf(r, "updateStatus")).toHaveLength(1);
    expect(w.shardStatus("b")).toMatchObject({ state: "Expired", holderIdentity: "b-1" });
    expect(w.status().assignmentGeneration).toBe(g);
    expect(w.status().migrations.map((m) => m.from)).toEqual(["a", "b"]);
    // b-2's ack is not b-1's: it commits nothing.
    w.ack("b");
    const waiting = w.elapse(9_000, ["a", "b", "c"]);
    for (const x of waiting) expect(x.metrics.handoffs).toEqual([]);
    expect(w.status().migrations.map((m) => m.from)).toEqual(["a", "b"]);
    expect(w.status().assignmentGeneration).toBe(g);

    // b-1 was last seen renewing when b-2 took over: a lease duration later it is fenced in one generation.
    w.advance(changedAt + 10_000 - w.now);
    w.renew("a", "b", "c");
    r = w.step();
    const s = w.status();
    expect(s.assignmentGeneration).toBe(g + 1);
    expect(w.shardStatus("b")).toEqual({ name: "b", slots: expect.any(String), holderIdentity: "b-2" });
    // The migration from the old b is committed (nobody runs it); a's is still waiting for a's ack.
    expect(s.migrations.map((m) => m.from)).toEqual(["a"]);
    expect(r.metrics.handoffs).toEqual([expect.objectContaining({ from: "b", to: "c", outcome: "fenced" })]);
    expect(r.logs).toContainEqual(
      expect.objectContaining({
        msg: "shard incarnation stopped: its slots are released",
        fields: expect.objectContaining({ shard: "b", holder: "b-2", previousHolder: "b-1" }),
      }),
    );
    expect(actionsOf(r, "event")).toContainEqual(expect.objectContaining({ reason: "NewShardIncarnation" }));
    w.ack("a");
    w.advance(100);
    w.renewAll();
    w.step();
    w.settle({ ack: true });
    expect(w.status().migrations).toEqual([]);
    expect(w.counts()).toEqual({ a: 5462, b: 5461, c: 5461 });
  });
});

describe("weights", () => {
  it("weight 0 in the Lease annotation drains the shard through acked handoffs", () => {
    const w = balanced("a", "b", "c");
    w.weight("c", "0");
    w.step();
    expect(w.status().migrations.every((m) => m.from === "c")).toBe(true);
    expect(w.counts().c).toBe(0);
    w.ackAll();
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: 8192, b: 8192, c: 0 });
    expect(condition(w.status(), "Balanced")?.status).toBe("True");
  });

  it("spec.weights overrides the annotation", () => {
    const w = balanced("a", "b");
    w.weight("a", "3");
    w.setSpec(defaultSpec({ weights: { a: 1, b: 3 } }));
    w.settle({ ack: true });
    expect(w.counts()).toEqual({ a: 4096, b: 12288 });
    expect(w.status().observedGeneration).toBe(2);
  });
});

describe("handoff timeout", () => {
  it("warns after handoffTimeoutSeconds and keeps waiting until the source's Lease expires", () => {
    const w = new World(defaultSpec({ policy: { handoffTimeoutSeconds: 30 } }));
    w.config = { commitBatchMs: 0 };
    w.leaseDurationSeconds = 40;
    w.join("a");
    w.join("b");
    w.settle({ ack: true });
    w.join("c");
    w.step();
    const start = w.now;
    for (const x of w.elapse(29_000, ["a", "b", "c"])) expect(actionsOf(x, "event")).toEqual([]);
    w.advance(999);
    w.renew("a", "b", "c");
    let r = w.step();
    expect(r.nextStepAt).toBe(start + 30_000);
    expect(actionsOf(r, "event")).toEqual([]);
    w.advance(1);
    r = w.step();
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({ eventType: "Warning", reason: "HandoffTimeout" }),
      expect.objectContaining({ eventType: "Warning", reason: "HandoffTimeout" }),
    ]);
    expect(r.metrics.handoffsTimedOut).toBe(2);
    expect(condition(w.status(), "Progressing")).toMatchObject({ status: "True", reason: "HandoffTimeout" });
    expect(w.status().migrations).toHaveLength(2); // not committed early
    // No repeated event while it lasts.
    for (const x of w.elapse(5_000, ["a", "b", "c"])) expect(x.actions).toEqual([]);
    // a acks late: its handoff commits; b never acks and stops renewing: fenced by expiry.
    w.ack("a");
    w.step();
    expect(w.status().migrations.map((m) => m.from)).toEqual(["b"]);
    w.elapse(40_000, ["a", "c"]); // b Expired at the last step: taken over
    r = w.step(); // b Dead: its migration commits directly
    expect(w.status().migrations).toEqual([]);
    expect(r.metrics.handoffs).toEqual([
      expect.objectContaining({ from: "b", outcome: "fenced", durationMs: 75_000 }),
    ]);
    expect(condition(w.status(), "Progressing")?.reason).toBe("NoMigrations");
  });
});

describe("invalid input from the cluster", () => {
  it("an invalid spec sets Ready=False/InvalidSpec, emits one Event and changes no slot", () => {
    const w = balanced("a", "b");
    const before = w.status();
    w.setSpec({ leaseNamespace: "Bad_NS", resources: [{ resource: "secrets" }] });
    w.advance(20_000); // leases expired by now: still no Lease writes while the spec is invalid
    const r = w.step();
    const s = w.status();
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(condition(s, "Ready")!.message).toContain("spec.leaseNamespace");
    expect(s.observedGeneration).toBe(2);
    expect({ ...s, conditions: [], observedGeneration: 0 }).toEqual({
      ...before,
      conditions: [],
      observedGeneration: 0,
    });
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        eventType: "Warning",
        reason: "InvalidSpec",
        message: expect.stringContaining('"Bad_NS"'),
      }),
    ]);
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(r.metrics.specValid).toBe(false);
    expect(w.step().actions).toEqual([]);

    // Fixed: back to normal, with Lease clocks that kept running (no takeover of renewing shards).
    w.renew("a", "b");
    w.step();
    w.setSpec(defaultSpec());
    w.advance(5_000);
    const fixed = w.step();
    expect(actionsOf(fixed, "takeOverLease")).toEqual([]);
    expect(condition(w.status(), "Ready")).toMatchObject({ status: "True", reason: "AllSlotsCovered" });
  });

  it("another SlotMap is unaffected by an invalid one (memory is per SlotMap)", () => {
    const bad = new World({ leaseNamespace: NS, resources: [] }, "bad");
    bad.join("x");
    const good = new World(defaultSpec(), "good");
    good.join("x");
    bad.step();
    good.openBarrier();
    expect(condition(bad.status(), "Ready")?.reason).toBe("InvalidSpec");
    expect(bad.status().assignmentGeneration).toBe(0);
    expect(good.counts()).toEqual({ x: SLOT_COUNT });
  });

  it("malformed Lease annotations are reported once, with field and value, and never throw", () => {
    const w = new World();
    w.join("a", "a-1", { [ANNOTATION_OBSERVED_GENERATION]: "007", [ANNOTATION_WEIGHT]: "heavy" });
    w.join("b");
    const r = w.step();
    const events = actionsOf(r, "event");
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      eventType: "Warning",
      reason: "InvalidAnnotation",
      involvedObject: { kind: "Lease", name: "a", namespace: NS },
    });
    expect(events.map((e) => e.message)).toEqual([
      expect.stringContaining('metadata.annotations["slotmap.dev/observed-generation"]'),
      expect.stringContaining('"heavy"'),
    ]);
    expect(r.logs.filter((l) => l.msg === "malformed shard Lease annotation")).toHaveLength(2);
    // The malformed ack is no ack: the drain barrier waits for a (and b) to ack generation 1.
    expect(condition(w.status(), "Ready")).toMatchObject({ reason: "DrainBarrier" });
    expect(condition(w.status(), "Ready")?.message).toContain("every live shard acknowledges generation 1");
    expect(actionsOf(w.step(), "event")).toEqual([]);
    w.advance(100);
    w.renewAll();
    w.ackAll();
    expect(actionsOf(w.step(), "event")).toEqual([]);
    expect(w.counts()).toEqual({ a: 8192, b: 8192 }); // weight fell back to 1
  });

  it("a corrupted status is reported and held: no status write, no slot moves, Leases still fenced", () => {
    const w = balanced("a", "b");
    const corrupted = structuredClone(w.slotMap.status) as { shards: Array<{ slots: string }> };
    corrupted.shards[1]!.slots = "0-8191"; // b claims a's slots too
    w.writeStatusRaw(corrupted);
    const steps = w.elapse(10_000, ["a"]);
    for (const x of steps) expect(actionsOf(x, "updateStatus")).toEqual([]);
    expect(actionsOf(steps[0]!, "event")).toContainEqual(
      expect.objectContaining({
        reason: "InvalidStatus",
        message: expect.stringContaining("status.shards[1].slots"),
      }),
    );
    expect(steps[0]!.logs).toContainEqual(expect.objectContaining({ level: "error" }));
    const r = steps.at(-1)!;
    expect(r.metrics.statusValid).toBe(false);
    expect(actionsOf(r, "takeOverLease").map((a) => a.name)).toEqual(["b"]);
    expect(w.slotMap.status).toEqual(corrupted);
    for (const x of [...steps.slice(1), w.step()]) {
      expect(actionsOf(x, "event").filter((e) => e.reason === "InvalidStatus")).toEqual([]);
    }
  });

  it("a status that violates table consistency (not just the schema) is held too", () => {
    const w = balanced("a");
    w.writeStatusRaw({
      ...(w.slotMap.status as object),
      unassignedSlots: "",
      shards: [{ name: "a", state: "Ready", slots: "0-100", holderIdentity: "a-1" }],
    });
    const r = w.step();
    expect(actionsOf(r, "updateStatus")).toEqual([]);
    expect(actionsOf(r, "event")).toEqual([
      expect.objectContaining({
        reason: "InvalidStatus",
        message: expect.stringContaining("status.unassignedSlots"),
      }),
    ]);
  });
});

describe("idempotence and determinism", () => {
  it("a step on an unchanged world produces no actions and no logs", () => {
    const w = balanced("a", "b", "c");
    const r = w.step();
    expect(r.actions).toEqual([]);
    expect(r.logs).toEqual([]);
    const again = w.step();
    expect(again.actions).toEqual([]);
    expect({ ...again.memory, lastStepAt: 0 }).toEqual({ ...r.memory, lastStepAt: 0 });
  });

  it("re-running a step on the same observation returns the same writes, but Events only once", () => {
    const w = new World();
    w.join("a");
    w.join("b", "b-1", { [ANNOTATION_WEIGHT]: "x" });
    const first = w.step({ apply: false });
    const second = w.step({ apply: false });
    expect(actionsOf(second, "updateStatus")).toEqual(actionsOf(first, "updateStatus"));
    expect(actionsOf(first, "event")).toHaveLength(1);
    expect(actionsOf(second, "event")).toEqual([]);
  });

  it("is deterministic: same memory and input give the same result, whatever the Lease order", () => {
    const w = balanced("a", "b", "c");
    w.join("d");
    w.join("e");
    const obs = w.observe();
    const input = (leases: StepInput["leases"]): StepInput => ({
      slotMap: obs.slotMap,
      leases,
      now: w.now,
      wallTime: w.wall(),
      config: { identity: "c" },
    });
    const r1 = step(w.memory, input(obs.leases));
    const r2 = step(w.memory, input([...obs.leases].reverse()));
    expect(r2).toEqual(r1);
    expect(Object.isFrozen(r1.memory)).toBe(true);
    expect(JSON.parse(JSON.stringify(r1.memory))).toEqual(r1.memory);
  });

  it("re-reads and re-steps after a conflicting status write", () => {
    const w = new World();
    w.join("a");
    const r = w.step({ apply: false });
    w.setSpec(defaultSpec({ policy: { maxMigratingSlots: 100 } })); // someone changed the SlotMap
    expect(w.apply(actionsOf(r, "updateStatus")[0]!)).toBe(false);
    w.openBarrier();
    expect(w.status().observedGeneration).toBe(2);
    expect(w.counts()).toEqual({ a: SLOT_COUNT });
  });
});

describe("a new leader", () => {
  it("resumes from status with empty memory: nothing moves, nothing is written", () => {
    const w = balanced("a", "b", "c");
    w.config = { commitBatchMs: 0 };
    w.join("d");
    w.step();
    w.ack("a");
    w.step();
    const before = structuredClone(w.slotMap.status);
    w.memory = undefined; // new leader
    w.advance(3_000);
    w.renew("a", "b", "c", "d");
    const r = w.step();
    expect(actionsOf(r, "updateStatus")).toEqual([]);
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(w.slotMap.status).toEqual(before);
    // The handoff continues normally from the status, once each Lease was seen renewing.
    w.ackAll();
    w.advance(100);
    w.renew("a", "b", "c", "d");
    w.step();
    expect(w.counts()).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
  });

  it("does not take over before a full lease duration of its own clock", () => {
    const w = balanced("a", "b");
    w.elapse(4_000, ["a"]);
    w.elapse(4_000, ["a"]); // b stopped renewing 8 s ago by the old leader's clock
    w.memory = undefined;
    w.advance(4_000); // 12 s since b's last renewal, but the new leader first sees it now
    w.renew("a");
    let r = w.step();
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(w.stateOf("b")).toBe("Ready");
    for (const x of w.elapse(9_000, ["a"])) expect(actionsOf(x, "takeOverLease")).toEqual([]);
    w.advance(999);
    w.renew("a");
    r = w.step();
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    w.advance(1);
    w.renew("a");
    r = w.step();
    expect(actionsOf(r, "takeOverLease").map((a) => a.name)).toEqual(["b"]);
  });

  it("keeps a shard the status says is Expired Expired until it renews (no slots to it, no early takeover)", () => {
    const w = balanced("a", "b");
    w.elapse(9_000, ["a"]);
    w.advance(1_000);
    w.renew("a");
    // The old leader wrote b Expired, but crashed before its takeover landed.
    const r0 = w.step({ apply: false });
    expect(actionsOf(r0, "takeOverLease").map((a) => a.name)).toEqual(["b"]);
    w.apply(actionsOf(r0, "updateStatus")[0]!);
    expect(w.stateOf("b")).toBe("Expired");
    w.memory = undefined;
    w.join("c");
    let r = w.step();
    expect(w.stateOf("b")).toBe("Expired");
    expect(actionsOf(r, "takeOverLease")).toEqual([]);
    expect(w.status().migrations.some((m) => m.from === "b" || m.to === "b")).toBe(false);
    w.advance(100);
    w.renew("a", "b", "c"); // it was alive after all
    r = w.step();
    expect(w.stateOf("b")).toBe("Ready");
  });
});

describe("a SlotMap deleted and recreated", () => {
  it("starts over at generation 1 and ignores acks for the old instance", () => {
    const w = balanced("a", "b");
    w.join("c");
    w.settle({ ack: true });
    const oldGen = w.status().assignmentGeneration;
    expect(oldGen).toBeGreaterThan(2);
    w.recreate("uid-2");
    const r = w.step();
    expect(r.memory.slotMapUid).toBe("uid-2");
    expect(r.logs).toContainEqual(
      expect.objectContaining({ msg: expect.stringContaining("deleted and recreated") }),
    );
    expect(w.status().assignmentGeneration).toBe(1);
    expect(w.status().shards).toEqual([
      { name: "a", slots: "", holderIdentity: "a-1" },
      { name: "b", slots: "", holderIdentity: "b-1" },
      { name: "c", slots: "", holderIdentity: "c-1" },
    ]);
    // The old acks (generation oldGen >= any new generation) do not count for the new instance:
    // it assigns nothing until the shards ack it (the drain barrier, see barrier.test.ts).
    expect(condition(w.status(), "Ready")).toMatchObject({ reason: "PreviousInstanceDraining" });
    w.join("d");
    w.step();
    w.step();
    expect(w.status().assignmentGeneration).toBe(1);
    expect(w.status().unassignedSlots).toBe("0-16383");
  });

  it("does nothing for a SlotMap being deleted", () => {
    const w = balanced("a");
    w.slotMap = {
      ...w.slotMap,
      metadata: { ...w.slotMap.metadata, deletionTimestamp: "2025-01-02T03:05:00Z" } as never,
    };
    w.advance(60_000);
    const r = w.step();
    expect(r.actions).toEqual([]);
    expect(r.nextStepAt).toBeUndefined();
  });
});

describe("input errors (bugs in the caller) throw naming the field", () => {
  const base = (): StepInput => ({
    slotMap: { metadata: { name: "m", uid: "u", resourceVersion: "1" }, spec: defaultSpec() },
    leases: [],
    now: 0,
    wallTime: new Date(WALL0).toISOString(),
    config: { identity: "c" },
  });

  it.each([
    [
      "slotMap.metadata.uid",
      (i: StepInput) => ({ ...i, slotMap: { ...i.slotMap, metadata: { name: "m", resourceVersion: "1" } } }),
    ],
    ["now", (i: StepInput) => ({ ...i, now: Number.NaN })],
    ["wallTime", (i: StepInput) => ({ ...i, wallTime: "yesterday" })],
    ["config.identity", (i: StepInput) => ({ ...i, config: { identity: "" } })],
    ["config.orphanAfterMs", (i: StepInput) => ({ ...i, config: { identity: "c", orphanAfterMs: -1 } })],
    [
      "leases[1].metadata.name",
      (i: StepInput) => ({
        ...i,
        leases: [
          { metadata: { name: "a", uid: "1", resourceVersion: "1" } },
          { metadata: { name: "a", uid: "2", resourceVersion: "1" } },
        ],
      }),
    ],
  ])("%s", (field, mutate) => {
    const bad = mutate(base()) as StepInput;
    expect(() => step(undefined, bad)).toThrow(CoordinatorInputError);
    expect(() => step(undefined, bad)).toThrow(new RegExp(`^${field.replace(/[[\].]/g, "\\$&")}: `));
  });

  it("rejects a clock that goes backwards", () => {
    const first = step(undefined, { ...base(), now: 100 });
    expect(() => step(first.memory, { ...base(), now: 99 })).toThrow(/^now: .*backwards/);
  });

  it("the test World's safety check rejects a direct move between live shards", () => {
    const w = balanced("a", "b");
    const s = structuredClone(w.status());
    s.assignmentGeneration += 1;
    s.shards[0]!.slots = "";
    s.shards[1]!.slots = "0-16383";
    const m = w.slotMap.metadata;
    const unsafe = {
      type: "updateStatus",
      slotMap: { name: m.name, uid: m.uid, resourceVersion: m.resourceVersion },
      status: s,
    } as const;
    expect(() => w.apply(unsafe)).toThrow("unsafe write: slot 0 moves directly from live shard a to b");
  });

  it("every status written validates against the schema", () => {
    const w = balanced("a", "b", "c");
    for (const s of w.statusWrites) expect(parseSlotMapStatus(s).ok).toBe(true);
    expect(w.statusWrites.length).toBeGreaterThan(0);
  });
});
