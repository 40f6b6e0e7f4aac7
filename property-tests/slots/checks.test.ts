// The step checks used by the planner properties must be able to fail: each hand-made unsafe step
// below is a planner bug they have to report.
import { describe, expect, it } from "vitest";
import { type PlanResult, type ShardInfo, type StatusTable, tableFromStatus } from "../../src/slots/index.js";
import { stepViolations } from "../support/checks.js";

const ALL = { maxMigratingSlots: 16384 };
const shard = (name: string, state: ShardInfo["state"] = "Ready", ackedGeneration = 0): ShardInfo => ({
  name,
  state,
  weight: 1,
  ackedGeneration,
});

const prev = tableFromStatus({
  assignmentGeneration: 5,
  shards: [
    { name: "a", slots: "0-8191" },
    { name: "b", slots: "8192-16000" },
  ],
  migrations: [{ slots: "16001-16383", from: "b", to: "a", generation: 5 }],
  unassignedSlots: "",
});

/** A result as the planner would return it for `status` (generation prev + 1). */
function result(status: StatusTable): PlanResult {
  return {
    table: tableFromStatus(status),
    changed: true,
    committed: [],
    started: [],
    direct: [],
    released: [],
    retargeted: [],
    targets: new Map(),
    balanced: false,
  };
}

const next = (
  shards: StatusTable["shards"],
  migrations: StatusTable["migrations"],
  unassignedSlots = "",
): StatusTable => ({
  assignmentGeneration: 6,
  shards,
  migrations,
  unassignedSlots,
});

describe("stepViolations", () => {
  it("accepts a correct step: b acked, its migration commits", () => {
    const res = result(
      next(
        [
          { name: "a", slots: "0-8191,16001-16383" },
          { name: "b", slots: "8192-16000" },
        ],
        [],
      ),
    );
    expect(stepViolations(prev, res, [shard("a"), shard("b", "Ready", 5)], ALL)).toEqual([]);
  });

  it("reports a migration committed before its ack", () => {
    const res = result(
      next(
        [
          { name: "a", slots: "0-8191,16001-16383" },
          { name: "b", slots: "8192-16000" },
        ],
        [],
      ),
    );
    expect(stepViolations(prev, res, [shard("a"), shard("b", "Ready", 4)], ALL).join("\n")).toMatch(
      /slot 16001: joined a while b has not acked generation 5/,
    );
  });

  it("reports a direct move between live shards", () => {
    const res = result(
      next(
        [
          { name: "a", slots: "0-8190" },
          { name: "b", slots: "8191-16000" },
        ],
        [{ slots: "16001-16383", from: "b", to: "a", generation: 5 }],
      ),
    );
    expect(stepViolations(prev, res, [shard("a"), shard("b")], ALL).join("\n")).toMatch(
      /slot 8191: moved directly from live a to b/,
    );
  });

  it("reports slots taken from an Expired shard and slots given to a non-Ready one", () => {
    const res = result(
      next(
        [
          { name: "a", slots: "0-8191" },
          { name: "b", slots: "8192-15000" },
        ],
        [
          { slots: "15001-16000", from: "b", to: "a", generation: 6 },
          { slots: "16001-16383", from: "b", to: "a", generation: 5 },
        ],
      ),
    );
    const errors = stepViolations(prev, res, [shard("a", "Expired"), shard("b", "Expired")], ALL).join("\n");
    expect(errors).toMatch(/slot 15001: taken from b, which is Expired/);
    expect(errors).toMatch(/migrates to a, which is not Ready/);
  });

  it("reports a pending migration dropped before its ack, and the rate limit", () => {
    const res = result(
      next(
        [
          { name: "a", slots: "0-8191" },
          { name: "b", slots: "8192-16000" },
        ],
        [],
        "16001-16383",
      ),
    );
    expect(stepViolations(prev, res, [shard("a"), shard("b")], ALL).join("\n")).toMatch(
      /pending migration from b \(generation 5\) ended before its ack/,
    );
    const same = result(
      next(
        [
          { name: "a", slots: "0-8191" },
          { name: "b", slots: "8192-16000" },
        ],
        [{ slots: "16001-16383", from: "b", to: "a", generation: 5 }],
      ),
    );
    expect(
      stepViolations(prev, same, [shard("a"), shard("b")], { maxMigratingSlots: 100 }).join("\n"),
    ).toMatch(/383 slots migrating > maxMigratingSlots 100/);
  });

  it("reports a changed result without a new generation, and an unchanged one that is a copy", () => {
    const copy = result({
      ...next(
        [
          { name: "a", slots: "0-8191" },
          { name: "b", slots: "8192-16000" },
        ],
        [{ slots: "16001-16383", from: "b", to: "a", generation: 5 }],
      ),
      assignmentGeneration: 5,
    });
    expect(stepViolations(prev, copy, [shard("a"), shard("b")], ALL).join("\n")).toMatch(/generation 5 -> 5/);
    expect(stepViolations(prev, { ...copy, changed: false }, [shard("a"), shard("b")], ALL)).toContain(
      "unchanged result is not the input table",
    );
  });
});
