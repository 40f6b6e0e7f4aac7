import { describe, expect, it } from "vitest";
import { pictureOf } from "../../../src/cli/render/colors.js";
import { renderFrame, renderScaledGrid, tableOf } from "../../../tools/demo/dashboard.js";
import { countRanges, describeStatus, isSettled, type ObservedStatus } from "../../e2e/driver.js";

function status(partial: Partial<ObservedStatus>): ObservedStatus {
  return {
    assignmentGeneration: 5,
    shards: [],
    migrations: [],
    unassignedSlots: "",
    conditions: [],
    ...partial,
  };
}

const three = [
  { name: "a", state: "Ready", slots: "0-5460", observedGeneration: 5 },
  { name: "b", state: "Ready", slots: "5461-10922", observedGeneration: 5 },
  { name: "c", state: "Ready", slots: "10923-16383", observedGeneration: 5 },
];

describe("countRanges", () => {
  it("counts slots of a ranges string", () => {
    expect(countRanges("")).toBe(0);
    expect(countRanges("7")).toBe(1);
    expect(countRanges("0-9,20,30-31")).toBe(13);
    expect(countRanges("0-16383")).toBe(16384);
  });
});

describe("isSettled", () => {
  it("holds for equal shares, all Ready and acked, nothing migrating", () => {
    expect(isSettled(status({ shards: three }), ["a", "b", "c"])).toBe(true);
  });

  it("does not hold before any status or for another set of shards", () => {
    expect(isSettled(undefined, ["a"])).toBe(false);
    expect(isSettled(status({ shards: three }), ["a", "b"])).toBe(false);
    expect(isSettled(status({ shards: three }), ["a", "b", "c", "d"])).toBe(false);
  });

  it("does not hold while slots migrate, are unassigned, or a shard has not acked", () => {
    const mig = [{ slots: "0-10", from: "a", to: "b", generation: 5 }];
    expect(isSettled(status({ shards: three, migrations: mig }), ["a", "b", "c"])).toBe(false);
    expect(isSettled(status({ shards: three, unassignedSlots: "1" }), ["a", "b", "c"])).toBe(false);
    const unacked = three.map((s, i) => (i === 1 ? { ...s, observedGeneration: 4 } : s));
    expect(isSettled(status({ shards: unacked }), ["a", "b", "c"])).toBe(false);
  });

  it("does not hold for unequal shares or a shard not Ready", () => {
    const skewed = [{ ...three[0]!, slots: "0-5000" }, { ...three[1]!, slots: "5001-10922" }, three[2]!];
    expect(isSettled(status({ shards: skewed }), ["a", "b", "c"])).toBe(false);
    const expired = three.map((s, i) => (i === 2 ? { ...s, state: "Expired" } : s));
    expect(isSettled(status({ shards: expired }), ["a", "b", "c"])).toBe(false);
  });

  it("accepts Dead shards without slots next to the ready set, not with slots", () => {
    const two = [
      { name: "a", state: "Ready", slots: "0-8191", observedGeneration: 5 },
      { name: "b", state: "Ready", slots: "8192-16383", observedGeneration: 5 },
    ];
    expect(isSettled(status({ shards: [...two, { name: "c", state: "Dead", slots: "" }] }), ["a", "b"])).toBe(
      true,
    );
    const deadOwner = [{ ...two[0]!, slots: "0-8190" }, two[1]!, { name: "c", state: "Dead", slots: "8191" }];
    expect(isSettled(status({ shards: deadOwner }), ["a", "b"])).toBe(false);
    expect(
      isSettled(status({ shards: [...two, { name: "c", state: "Ready", slots: "" }] }), ["a", "b"]),
    ).toBe(false);
  });
});

describe("describeStatus", () => {
  it("names shards with state, slot count and ack, and migrations", () => {
    const text = describeStatus(
      status({
        shards: [three[0]!, { name: "b", state: "Ready", slots: "5461-10000", observedGeneration: 4 }],
        migrations: [{ slots: "10001-16383", from: "c", to: "b", generation: 5 }],
      }),
    );
    expect(text).toBe("generation 5 [a:Ready:5461@5 b:Ready:4540@4] migrating c→b:6383@5");
    expect(describeStatus(undefined)).toBe("none yet");
  });
});

describe("demo dashboard", () => {
  const st = status({
    shards: [
      { name: "a", state: "Ready", slots: "0-8191", observedGeneration: 5 },
      { name: "b", state: "Ready", slots: "8192-16000", observedGeneration: 4 },
    ],
    migrations: [{ slots: "16001-16383", from: "a", to: "b", generation: 5 }],
  });

  it("decodes the status into a slot table (empty when there is none)", () => {
    expect(tableOf(st).generation).toBe(5);
    expect(tableOf(undefined).generation).toBe(0);
  });

  it("scales the grid down, showing a block as migrating if any of its slots migrates", () => {
    const p = pictureOf(tableOf(st), ["a", "b"]);
    const half = renderScaledGrid(p, 2, false);
    expect(half).toHaveLength(64);
    expect(half.every((l) => l.length === 64)).toBe(true);
    // Slot 0 is shard a (symbol A); the last row holds slots 16256-16383: migrating (~).
    expect(half[0]![0]).toBe("A");
    expect(half[63]).toBe("~".repeat(64));
    // Slots 8192.. start row 64 of the full grid = row 32 at half scale: shard b.
    expect(half[32]![0]).toBe("B");
    const quarter = renderScaledGrid(p, 4, true);
    expect(quarter).toHaveLength(16); // 32 block rows, two per line
  });

  it("fits the frame to the terminal height", () => {
    const state = {
      phase: "adding shard-3",
      elapsedMs: 12_300,
      status: st,
      reconciles: new Map([
        ["a", 10],
        ["b", 7],
        ["gone", 3],
      ]),
      processes: new Map([
        ["a", "running"],
        ["b", "running"],
        ["gone", "killed"],
      ]),
      migrations: 2,
      converged: { converged: 90, total: 100 },
      events: ["one", "two"],
    };
    const tall = renderFrame(state, 200, true).split("\n");
    const short = renderFrame(state, 40, true).split("\n");
    expect(tall.length).toBeGreaterThan(64);
    expect(short.length).toBeLessThanOrEqual(40);
    const text = renderFrame(state, 40, false);
    expect(text).toContain("adding shard-3");
    expect(text).toContain("90/100 ConfigMaps up to date");
    expect(text).toMatch(/a\s+8192 slots\s+Ready\s+running\s+10 reconciles\s+acked 5/);
    expect(text).toMatch(/gone .*killed .*3 reconciles/);
    expect(text).toMatch(/migrating\s+383 slots\s+a → b 16001-16383/);
  });
});
