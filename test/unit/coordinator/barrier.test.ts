/**
 * The new-uid barrier: a SlotMap deleted and recreated (new uid, empty status) while shard
 * processes may still run reconciles of the old instance. The coordinator assigns nothing until
 * every live shard that still acks the old uid has acked the new one (or is Dead).
 */
import { describe, expect, it } from "vitest";
import { SLOT_COUNT } from "../../../src/slots/index.js";
import { actionsOf, condition, World } from "./world.js";

/** Shards `names` hold a balanced table of instance uid-1 and ack it; then it is recreated as uid-2. */
function recreated(...names: string[]): World {
  const w = new World();
  for (const n of names) w.join(n);
  w.settle({ ack: true });
  w.ackAll();
  w.settle();
  expect(w.status().assignmentGeneration).toBeGreaterThan(0);
  w.recreate("uid-2");
  return w;
}

describe("new-uid barrier", () => {
  it("writes generation 1 listing the shards with nothing assigned, and holds it until they ack", () => {
    const w = recreated("a", "b");
    const r = w.step();
    const s = w.status();
    expect(s.assignmentGeneration).toBe(1);
    expect(s.unassignedSlots).toBe(`0-${SLOT_COUNT - 1}`);
    expect(s.migrations).toEqual([]);
    expect(s.shards.map((x) => [x.name, x.state, x.slots])).toEqual([
      ["a", "Ready", ""],
      ["b", "Ready", ""],
    ]);
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "PreviousInstanceDraining" });
    expect(condition(s, "Ready")?.message).toContain("a, b");
    expect(r.metrics).toMatchObject({ assignmentGeneration: 1, unassignedSlots: SLOT_COUNT });
    expect(r.logs).toContainEqual(
      expect.objectContaining({
        msg: expect.stringContaining("assigning nothing"),
        fields: expect.objectContaining({ slotmap: "checksums", generation: 1, shards: "a,b" }),
      }),
    );

    // Renewals and time do not lift the barrier; neither does one shard's ack.
    for (let i = 0; i < 3; i++) {
      w.advance(2000);
      w.renew("a", "b");
      expect(actionsOf(w.step(), "updateStatus")).toEqual([]);
    }
    w.ack("a", 1);
    w.step();
    expect(w.status().assignmentGeneration).toBe(1);
    expect(condition(w.status(), "Ready")?.message).toContain("b acknowledge");

    // The last one acks generation 1 of the new uid: now slots are assigned, directly.
    w.ack("b", 1);
    w.step();
    expect(w.status().assignmentGeneration).toBe(2);
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
    expect(w.status().migrations).toEqual([]);
    expect(condition(w.status(), "Ready")).toMatchObject({ status: "True", reason: "AllSlotsCovered" });
  });

  it("a shard that joins meanwhile (no ack at all) gets nothing until the old ones ack", () => {
    const w = recreated("a");
    w.step();
    w.join("fresh");
    w.step();
    expect(w.status().assignmentGeneration).toBe(1);
    expect(w.counts()).toEqual({ a: 0, fresh: 0 });
    w.ack("a", 1);
    w.step();
    expect(w.counts()).toEqual({ a: 8192, fresh: 8192 });
  });

  it("does not wait for a shard that is Dead: released, or expired and taken over", () => {
    const w = recreated("a", "b", "c");
    w.step();
    w.release("a"); // graceful shutdown: Dead at once
    w.advance(5000);
    w.renew("b", "c");
    w.ack("b", 1);
    w.step();
    expect(w.status().assignmentGeneration).toBe(1); // c still acks uid-1 and is alive

    // c stops renewing: Expired after a lease duration (still holds the barrier), then taken over.
    w.advance(10_000);
    w.renew("b");
    let r = w.step();
    expect(w.shardStatus("c")?.state).toBe("Expired");
    expect(actionsOf(r, "takeOverLease").map((a) => a.name)).toEqual(["c"]);
    expect(w.status().unassignedSlots).toBe(`0-${SLOT_COUNT - 1}`);
    r = w.step();
    expect(w.shardStatus("c")?.state).toBe("Dead");
    expect(w.counts()).toEqual({ a: 0, b: SLOT_COUNT, c: 0 });
    expect(w.status().assignmentGeneration).toBe(2);
  });

  it("is not applied when no live Lease acks another uid: first assignment in generation 1", () => {
    const w = new World();
    w.join("a", "a-1", { "slotmap.dev/observed-generation": "7", "slotmap.dev/slotmap-uid": "uid-1" });
    w.join("b");
    w.step();
    expect(w.status().assignmentGeneration).toBe(1);
    expect(w.counts()).toEqual({ a: 8192, b: 8192 });
  });

  it("is not applied once slots are assigned: a stale other-uid ack later only withholds that shard's acks", () => {
    const w = recreated("a", "b");
    w.step();
    w.ackAll();
    w.step();
    expect(w.status().assignmentGeneration).toBe(2);
    w.join("c", "c-1", { "slotmap.dev/observed-generation": "9", "slotmap.dev/slotmap-uid": "uid-1" });
    w.step();
    // c is a normal new shard: migrations towards it start (slots are owned, so no barrier).
    expect(w.status().migrations.map((m) => m.to)).toEqual(["c", "c"]);
  });
});
