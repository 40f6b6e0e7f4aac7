/** Scale scenario (issue 17): see bench/support/scale.ts. */
import type { Scenario } from "../lib.js";
import { runScaleScenario } from "../support/scale.js";

const scenario: Scenario = {
  name: "scale",
  description:
    "SlotMap fan-out at 100 / 300 / 1000 emulated shards with as many watchers (join, leave), and 1100 shards past the limit",
  heavy: true,
  run: (opts) => runScaleScenario(opts),
};

export default scenario;
