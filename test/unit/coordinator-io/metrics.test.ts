import { describe, expect, it } from "vitest";
import type { SlotMapMetrics } from "../../../src/coordinator/core/index.js";
import { CoordinatorMetrics } from "../../../src/coordinator/metrics.js";

function sample(over: Partial<SlotMapMetrics> = {}): SlotMapMetrics {
  return {
    slotMap: "m",
    specValid: true,
    statusValid: true,
    assignmentGeneration: 7,
    shardsByState: { Ready: 2, Expired: 1, Dead: 0 },
    slotsPerShard: [
      { shard: "a", slots: 8192 },
      { shard: "b", slots: 8000 },
      { shard: "c", slots: 0 },
    ],
    migrationsInFlight: 1,
    migratingSlots: 192,
    unassignedSlots: 0,
    handoffsTimedOut: 0,
    shardsOverLimit: 0,
    handoffs: [{ from: "c", to: "b", generation: 6, slots: 10, durationMs: 1500, outcome: "acked" }],
    ...over,
  };
}

describe("CoordinatorMetrics", () => {
  it("publishes a step's gauges and observes committed handoffs by outcome", async () => {
    const m = new CoordinatorMetrics({ defaultMetrics: false });
    m.publish(sample());
    const text = await m.registry.metrics();
    for (const line of [
      'slotmap_shards{slotmap="m",state="Ready"} 2',
      'slotmap_shards{slotmap="m",state="Expired"} 1',
      'slotmap_shards{slotmap="m",state="Dead"} 0',
      'slotmap_slots{slotmap="m",shard="a"} 8192',
      'slotmap_migrations_in_flight{slotmap="m"} 1',
      'slotmap_migrating_slots{slotmap="m"} 192',
      'slotmap_assignment_generation{slotmap="m"} 7',
      'slotmap_spec_valid{slotmap="m"} 1',
      'slotmap_status_valid{slotmap="m"} 1',
      'slotmap_handoff_duration_seconds_count{slotmap="m",outcome="acked"} 1',
      'slotmap_handoff_duration_seconds_sum{slotmap="m",outcome="acked"} 1.5',
    ]) {
      expect(text).toContain(line);
    }
  });

  it("removes the series of a shard that left, and every series of a forgotten SlotMap", async () => {
    const m = new CoordinatorMetrics({ defaultMetrics: false });
    m.publish(sample());
    m.publish(sample({ slotMap: "other" }));
    m.publish(sample({ slotsPerShard: [{ shard: "a", slots: 16384 }], handoffs: [] }));
    let text = await m.registry.metrics();
    expect(text).not.toContain('slotmap="m",shard="b"');
    expect(text).toContain('slotmap="other",shard="b"');
    m.forget("m");
    text = await m.registry.metrics();
    expect(text).not.toContain('slotmap="m"');
    expect(text).toContain('slotmap_assignment_generation{slotmap="other"} 7');
  });
});
