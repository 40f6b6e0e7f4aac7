/**
 * Rebalance scenario, default sizes: slot-based vs label-based sharding at 1k and 10k objects,
 * 3→4, 4→3 and 10→11 shards on one local API server. See bench/support/rebalance.ts and
 * docs/benchmarks.md ("Slot-based vs label-based sharding"). 100k: `rebalance-100k`.
 */
import type { Scenario } from "../lib.js";
import { runRebalanceScenario } from "../support/rebalance.js";

const scenario: Scenario = {
  name: "rebalance",
  description:
    "slot-based vs label-based sharding: rebalance writes, times, pauses, memory at 1k and 10k objects",
  heavy: true,
  run: (opts) => runRebalanceScenario("rebalance", [1000, 10_000], opts),
};

export default scenario;
