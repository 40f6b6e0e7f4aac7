/**
 * The handoff protocol end to end: the real coordinator core and the real shard machine, driven by
 * the deterministic simulator (property-tests/sim) against a model of the API server with faults.
 * Every step checks safety (at most one shard ACTIVE on a slot), generation monotonicity, acks and
 * grants; each scenario ends with a fault-free phase that must converge (liveness). See
 * docs/verification.md. Longer campaigns: `npm run fuzz -- --steps 1000000`.
 */
import { describe, expect, it } from "vitest";
import { newCounters, simProperty } from "./sim/run.js";
import { assertProperty } from "./support/fc.js";

describe("handoff protocol under faults (simulated cluster, real cores)", () => {
  // Each run is a whole cluster history: up to 1500 commands (about 3 simulated minutes) between a
  // warm-up and a final settle phase. 40 runs take 20 to 40 s on the 2-core dev machine.
  it("no slot is ever ACTIVE on two shards, and every slot is owned again once faults stop", (ctx) => {
    const counters = newCounters();
    assertProperty(simProperty({ maxCommands: 1500, counters }), { numRuns: 40 }, ctx);
    if (process.env.FC_PATH === undefined && process.env.FC_NUM_RUNS === undefined) {
      // A simulator that never starts a reconcile or never fences anybody would prove nothing.
      expect(counters.steps).toBeGreaterThan(10_000);
      expect(counters.reconciles).toBeGreaterThan(5_000);
      expect(counters.statusWrites).toBeGreaterThan(500);
      expect(counters.takeovers).toBeGreaterThan(20);
      // The threats of issue 12 are produced: people's writes, resets of a regressed status.
      expect(counters.personWrites).toBeGreaterThan(20);
      expect(counters.resets).toBeGreaterThan(0);
      // Shards learn their slots only from their projections, which people delete and restore.
      expect(counters.projectionWrites).toBeGreaterThan(500);
      expect(counters.projectionRegressions).toBeGreaterThan(0);
    }
  }, 300_000);

  // The large class: 20+ shards and 1000+ keys (about 4 s of CPU per scenario on the dev machine,
  // hence the small budget; `npm run fuzz -- --large` runs long campaigns of it).
  it("large cluster (20+ shards, 1000+ keys): the same invariants", (ctx) => {
    const counters = newCounters();
    assertProperty(simProperty({ maxCommands: 400, counters, large: true }), { numRuns: 3 }, ctx);
    console.log(
      `large class: ${counters.steps} steps, ${counters.reconciles} reconciles, ${counters.statusWrites} status writes`,
    );
    if (process.env.FC_PATH === undefined && process.env.FC_NUM_RUNS === undefined) {
      expect(counters.reconciles).toBeGreaterThan(3_000);
      // The warm-up balances 20+ shards (several writes per scenario) whatever the commands do.
      expect(counters.statusWrites).toBeGreaterThan(10);
    }
  }, 300_000);
});
