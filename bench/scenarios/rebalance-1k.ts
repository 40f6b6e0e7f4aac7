/** Rebalance scenario at 1k objects only (see rebalance.ts and bench/support/rebalance.ts). */
import type { Scenario } from "../lib.js";
import { runRebalanceScenario } from "../support/rebalance.js";

const scenario: Scenario = {
  name: "rebalance-1k",
  description: "slot-based vs label-based sharding at 1k objects: 3→4, 4→3, 10→11 shards",
  heavy: true,
  run: (opts) => runRebalanceScenario("rebalance-1k", [1000], opts),
};

export default scenario;
