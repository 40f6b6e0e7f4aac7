import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { ControllerStats, ShardedController } from "../../../src/client/controller.js";
import type { ShardMember } from "../../../src/client/membership.js";
import { ShardMetrics } from "../../../src/client/metrics.js";

// The fields ShardMetrics samples; the rest of a member is not needed here.
const member = {
  slotMap: "demo",
  shard: "demo-0",
  generation: 7,
  status: () => ({ phase: "active", ownedSlots: 5461, ackedGeneration: 7, inFlight: 2 }),
} as unknown as ShardMember;

const stats: ControllerStats = {
  roots: 10,
  controlled: 4,
  tombstones: 0,
  held: 0,
  queued: 3,
  processing: 1,
  waiting: 2,
  reconciles: 42,
  reconcileErrors: 5,
  skipped: 0,
  gainLists: 1,
  gainListedObjects: 10,
};
const controller = { stats: () => stats } as unknown as ShardedController;

describe("ShardMetrics", () => {
  it("counts the attached controller's reconciles without onReconcile", async () => {
    const m = new ShardMetrics(member, { defaultMetrics: false });
    m.attach(controller);
    const text = await m.registry.metrics();
    expect(text).toContain('slotmap_shard_reconciles_total{result="all",slotmap="demo",shard="demo-0"} 42');
    expect(text).toContain('slotmap_shard_reconciles_total{result="error",slotmap="demo",shard="demo-0"} 5');
    expect(text).toContain('slotmap_shard_owned_slots{slotmap="demo",shard="demo-0"} 5461');
    expect(text).toContain('slotmap_shard_workqueue_depth{state="queued",slotmap="demo",shard="demo-0"} 3');
    expect(text).toContain('slotmap_shard_workqueue_depth{state="held",slotmap="demo",shard="demo-0"} 0');
    expect(text).not.toContain("process_cpu");
  });

  it("registers into the caller's registry, leaving its default labels alone", async () => {
    const registry = new Registry();
    const m = new ShardMetrics(member, { registry });
    expect(m.registry).toBe(registry);
    m.observe({
      shard: "demo-0",
      identity: "demo-0-x-1",
      key: "/Secret/ns/a",
      slot: 1,
      generation: 7,
      start: 1_000,
      end: 1_250,
      resourceVersion: "9",
      outcome: "ok",
    });
    const text = await registry.metrics();
    expect(text).toContain('slotmap_reconcile_total{outcome="ok"} 1');
    expect(text).toContain('slotmap_reconcile_duration_seconds_sum{outcome="ok"} 0.25');
    expect(text).not.toContain("process_cpu"); // default metrics are the caller's choice
  });
});
