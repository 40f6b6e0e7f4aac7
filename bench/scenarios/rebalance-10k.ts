/** Rebalance scenario at 10k objects only (see rebalance.ts and bench/support/rebalance.ts). */
import type { Scenario } from "../lib.js";
import { runRebalanceScenario } from "../support/rebalance.js";

const scenario: Scenario = {
  name: "rebalance-10k",
  description: "slot-based vs label-based sharding at 10k objects: 3→4, 4→3, 10→11 shards",
  heavy: true,
  run: (opts) => runRebalanceScenario("rebalance-10k", [10_000], opts),
};

export default scenario;
