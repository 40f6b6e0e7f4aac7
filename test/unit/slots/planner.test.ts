// The planner (DESIGN "Planner" and "The handoff protocol", docs/dev/core-contract.md).
import { describe, expect, it } from "vitest";
import {
  computeTargets,
  countSlots,
  diffTables,
  emptyTable,
  formatSlotRanges,
  freeRanges,
  ownedCounts,
  ownedRanges,
  ownerOf,
  PlanInputError,
  type PlanPolicy,
  plan,
  type ShardInfo,
  type ShardState,
  SLOT_COUNT,
  type SlotTable,
  tableInvariantErrors,
  tableToStatus,
} from "../../../src/slots/index.js";

const ALL: PlanPolicy = { maxMigratingSlots: SLOT_COUNT };

function shard(name: string, state: ShardState = "Ready", weight = 1, ackedGeneration = 0): ShardInfo {
  return { name, state, weight, ackedGeneration };
}

/** The shards with every one of them having acknowledged `generation`. */
function acked(shards: readonly ShardInfo[], generation: number): ShardInfo[] {
  return shards.map((s) => ({ ...s, ackedGeneration: generation }));
}

function counts(t: SlotTable): Record<string, number> {
  return Object.fromEntries([...ownedCounts(t)].filter(([, n]) => n > 0));
}

function migrating(t: SlotTable): number {
  return t.migrations.reduce((n, m) => n + countSlots(m.slots), 0);
}

/** Plans with every shard acking each new generation until nothing changes; returns every table. */
function settle(start: SlotTable, shards: readonly ShardInfo[], policy = ALL): SlotTable[] {
  const tables = [start];
  let t = start;
  for (let round = 0; round < 100; round++) {
    const res = plan(t, acked(shards, t.generation), policy);
    expect(tableInvariantErrors(res.table)).toEqual([]);
    if (!res.changed) return tables;
    t = res.table;
    tables.push(t);
  }
  throw new Error("planner did not settle in 100 rounds");
}

const last = (ts: SlotTable[]): SlotTable => ts[ts.length - 1]!;

/** Three Ready shards a, b, c planned from scratch to balance. */
function threeBalanced(): SlotTable {
  const t = plan(emptyTable(), [shard("a"), shard("b"), shard("c")], ALL).table;
  expect(counts(t)).toEqual({ a: 5462, b: 5461, c: 5461 });
  return t;
}

describe("computeTargets", () => {
  it("splits 16384 by weight with the largest remainder, ties by name", () => {
    expect(computeTargets([shard("b"), shard("a"), shard("c")])).toEqual(
      new Map([
        ["a", 5462],
        ["b", 5461],
        ["c", 5461],
      ]),
    );
    expect(computeTargets([shard("a", "Ready", 2), shard("b"), shard("c")])).toEqual(
      new Map([
        ["a", 8192],
        ["b", 4096],
        ["c", 4096],
      ]),
    );
    expect(
      computeTargets([shard("a", "Ready", 0), shard("b"), shard("x", "Expired"), shard("y", "Dead")]),
    ).toEqual(
      new Map([
        ["a", 0],
        ["b", SLOT_COUNT],
      ]),
    );
    expect(computeTargets([shard("a", "Ready", 0)])).toEqual(new Map([["a", 0]]));
    expect(computeTargets([])).toEqual(new Map());
  });

  it("handles huge finite weights without overflowing to NaN", () => {
    // Found by the targets property: 16384·w/Σw with w = 1e308 overflowed (Σw = Infinity), every
    // target was NaN and plan() left all slots unassigned with two Ready shards.
    expect(computeTargets([shard("a", "Ready", 1e308), shard("b", "Ready", 1e308)])).toEqual(
      new Map([
        ["a", 8192],
        ["b", 8192],
      ]),
    );
    expect(
      computeTargets([shard("a", "Ready", Number.MAX_VALUE), shard("b", "Ready", Number.MIN_VALUE)]),
    ).toEqual(
      new Map([
        ["a", SLOT_COUNT],
        ["b", 0],
      ]),
    );
    const res = plan(emptyTable(), [shard("a", "Ready", 1e308), shard("b", "Ready", 3e307)], ALL);
    expect(counts(res.table)).toEqual({ a: 12603, b: 3781 });
  });

  it("handles fractional weights and sums to 16384", () => {
    const t = computeTargets([shard("a", "Ready", 0.1), shard("b", "Ready", 0.2), shard("c", "Ready", 0.3)]);
    expect([...t.values()].reduce((x, y) => x + y, 0)).toBe(SLOT_COUNT);
    expect(t.get("c")).toBe(8192);
  });
});

describe("plan: first shards", () => {
  it("gives the first shard all 16384 slots directly", () => {
    const res = plan(emptyTable(), [shard("a")], ALL);
    expect(res.changed).toBe(true);
    expect(res.table.generation).toBe(1);
    expect(ownedRanges(res.table, "a")).toEqual([{ start: 0, end: SLOT_COUNT - 1 }]);
    expect(res.direct).toEqual([{ slots: [{ start: 0, end: SLOT_COUNT - 1 }], to: "a" }]);
    expect(res.started).toEqual([]);
    expect(res.committed).toEqual([]);
    expect(res.table.migrations).toEqual([]);
    expect(res.balanced).toBe(true);
    expect(res.targets).toEqual(new Map([["a", SLOT_COUNT]]));
  });

  it("splits 16384 over 3 shards within ±1, one range each", () => {
    const t = threeBalanced();
    expect(t.generation).toBe(1);
    for (const name of ["a", "b", "c"]) expect(ownedRanges(t, name)).toHaveLength(1);
    expect(freeRanges(t)).toEqual([]);
  });

  it("returns the same table with changed: false when balanced", () => {
    const t = threeBalanced();
    const res = plan(
      t,
      [shard("a", "Ready", 1, 1), shard("b", "Ready", 1, 1), shard("c", "Ready", 1, 1)],
      ALL,
    );
    expect(res.changed).toBe(false);
    expect(res.table).toBe(t);
    expect(res.balanced).toBe(true);
    expect(res.started).toEqual([]);
    expect(res.direct).toEqual([]);
  });
});

describe("plan: a fourth shard joins", () => {
  const shards = [shard("a"), shard("b"), shard("c"), shard("d")];

  it("starts migrations of the surplus only and commits nothing until acked", () => {
    const t1 = threeBalanced();
    const res = plan(t1, acked(shards, 1), ALL);
    const t2 = res.table;
    expect(res.changed).toBe(true);
    expect(t2.generation).toBe(2);
    expect(tableInvariantErrors(t2)).toEqual([]);
    // Surplus: 5462-4096 + 2 * (5461-4096) = 4096, exactly d's target.
    expect(migrating(t2)).toBe(4096);
    expect(res.started).toHaveLength(t2.migrations.length);
    for (const m of t2.migrations) {
      expect(m.to).toBe("d");
      expect(m.generation).toBe(2);
    }
    // Nobody owns migrating slots; d owns nothing yet; donors kept the rest.
    expect(counts(t2)).toEqual({ a: 4096, b: 4096, c: 4096 });
    for (const move of diffTables(t1, t2)) expect(move.to).toBeNull();
    expect(res.committed).toEqual([]);
    expect(res.direct).toEqual([]);
    expect(res.balanced).toBe(false);

    // Without acks of generation 2 nothing moves on.
    const waiting = plan(t2, acked(shards, 1), ALL);
    expect(waiting.changed).toBe(false);
    expect(waiting.table).toBe(t2);
  });

  it("commits when the donors ack, one migration at a time", () => {
    const t2 = plan(threeBalanced(), acked(shards, 1), ALL).table;
    // Only b acks generation 2: only b's migration commits.
    const partial = plan(
      t2,
      [shard("a", "Ready", 1, 1), shard("b", "Ready", 1, 2), shard("c", "Ready", 1, 1), shard("d")],
      ALL,
    );
    expect(partial.committed.map((m) => m.from)).toEqual(["b"]);
    expect(partial.table.generation).toBe(3);
    expect(counts(partial.table)).toEqual({ a: 4096, b: 4096, c: 4096, d: 1365 });
    expect(partial.table.migrations.map((m) => m.from)).toEqual(["a", "c"]);
    // Pending migrations keep the generation their `from` must ack.
    for (const m of partial.table.migrations) expect(m.generation).toBe(2);

    const done = plan(partial.table, acked(shards, 3), ALL);
    expect(done.committed.map((m) => m.from)).toEqual(["a", "c"]);
    expect(counts(done.table)).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
    expect(done.table.migrations).toEqual([]);
    expect(done.balanced).toBe(true);
    expect(plan(done.table, acked(shards, 4), ALL).changed).toBe(false);
  });

  it("moves only the surplus: total owner changes equal d's share", () => {
    const t1 = threeBalanced();
    const tables = settle(t1, shards);
    const final = last(tables);
    const moved = diffTables(t1, final).reduce((n, m) => n + countSlots(m.slots), 0);
    expect(moved).toBe(4096);
    for (const name of ["a", "b", "c", "d"]) expect(ownedRanges(final, name).length).toBeLessThanOrEqual(3);
  });
});

describe("plan: shard states", () => {
  it("moves a Dead shard's slots directly, in one generation", () => {
    const t = threeBalanced();
    const bSlots = ownedRanges(t, "b");
    const res = plan(
      t,
      [shard("a", "Ready", 1, 1), shard("b", "Dead", 1, 1), shard("c", "Ready", 1, 1)],
      ALL,
    );
    expect(res.released).toEqual([{ slots: bSlots, from: "b" }]);
    expect(res.table.migrations).toEqual([]);
    expect(counts(res.table)).toEqual({ a: 8192, c: 8192 });
    expect(res.balanced).toBe(true);
    // Only b's slots changed owner.
    for (const move of diffTables(t, res.table)) expect(move.from).toBe("b");
  });

  it("releases the slots of a shard missing from the input", () => {
    const t = threeBalanced();
    const res = plan(t, [shard("a", "Ready", 1, 1), shard("c", "Ready", 1, 1)], ALL);
    expect(res.released.map((r) => r.from)).toEqual(["b"]);
    expect(counts(res.table)).toEqual({ a: 8192, c: 8192 });
  });

  it("lets an Expired shard keep its slots and gives it nothing", () => {
    const t = threeBalanced();
    const res = plan(
      t,
      [shard("a", "Ready", 1, 1), shard("b", "Expired", 1, 1), shard("c", "Ready", 1, 1)],
      ALL,
    );
    expect(res.changed).toBe(false);
    expect(res.table).toBe(t);
    expect(res.balanced).toBe(false);
    expect(res.targets.has("b")).toBe(false);
  });

  it("makes migrations from an Expired shard wait, and completes them when it dies", () => {
    const shards = [shard("a"), shard("b"), shard("c"), shard("d")];
    const t2 = plan(threeBalanced(), acked(shards, 1), ALL).table;
    const bMig = t2.migrations.find((m) => m.from === "b")!;
    const expired = [
      shard("a", "Ready", 1, 2),
      shard("b", "Expired", 1, 1),
      shard("c", "Ready", 1, 2),
      shard("d"),
    ];
    const t3 = plan(t2, expired, ALL).table;
    expect(t3.migrations).toEqual([bMig]);
    expect(
      plan(
        t3,
        acked(expired, 3).map((s) => (s.name === "b" ? { ...s, ackedGeneration: 1 } : s)),
        ALL,
      ).changed,
    ).toBe(false);
    // b dies without acking: its migration completes at once (nobody can still run those slots).
    const dead = plan(
      t3,
      [
        shard("a", "Ready", 1, 3),
        shard("b", "Dead", 1, 1),
        shard("c", "Ready", 1, 3),
        shard("d", "Ready", 1, 3),
      ],
      ALL,
    );
    expect(dead.committed).toEqual([bMig]);
    expect(dead.table.migrations).toEqual([]);
    expect(counts(dead.table)).toEqual({ a: 5462, c: 5461, d: 5461 });
  });

  it("drains a shard of weight 0 through migrations", () => {
    const t = threeBalanced();
    const shards = [shard("a"), shard("b"), shard("c", "Ready", 0)];
    const res = plan(t, acked(shards, 1), ALL);
    expect(res.targets.get("c")).toBe(0);
    expect(res.table.migrations.every((m) => m.from === "c")).toBe(true);
    expect(migrating(res.table)).toBe(5461);
    const final = last(settle(res.table, shards));
    expect(counts(final)).toEqual({ a: 8192, b: 8192 });
  });

  it("leaves slots unassigned while no shard is Ready", () => {
    const none = plan(emptyTable(), [shard("a", "Expired"), shard("b", "Dead")], ALL);
    expect(none.changed).toBe(false);
    expect(none.balanced).toBe(false);
    expect(freeRanges(none.table)).toEqual([{ start: 0, end: SLOT_COUNT - 1 }]);

    const t = plan(emptyTable(), [shard("a")], ALL).table;
    const res = plan(t, [shard("a", "Dead", 1, 1)], ALL);
    expect(res.changed).toBe(true);
    expect(res.released).toEqual([{ slots: [{ start: 0, end: SLOT_COUNT - 1 }], from: "a" }]);
    expect(tableToStatus(res.table).unassignedSlots).toBe("0-16383");

    // Weight 0 everywhere is the same as no Ready shard.
    const zero = plan(emptyTable(), [shard("a", "Ready", 0)], ALL);
    expect(zero.changed).toBe(false);
    expect(zero.targets).toEqual(new Map([["a", 0]]));

    // A shard becoming Ready gets them all directly.
    const back = plan(res.table, [shard("a", "Dead", 1, 1), shard("b", "Ready")], ALL);
    expect(counts(back.table)).toEqual({ b: SLOT_COUNT });
    expect(back.direct).toEqual([{ slots: [{ start: 0, end: SLOT_COUNT - 1 }], to: "b" }]);
  });
});

describe("plan: rate limit and retargeting", () => {
  it("keeps at most maxMigratingSlots slots migrating, and still converges", () => {
    const shards = [shard("a"), shard("b"), shard("c"), shard("d")];
    const policy = { maxMigratingSlots: 1000 };
    const tables = settle(threeBalanced(), shards, policy);
    for (const t of tables) expect(migrating(t)).toBeLessThanOrEqual(1000);
    // 4096 slots in batches of at most 1000: 5 generations that start a batch (each also
    // committing the previous one) and a last one that commits, after the starting table.
    expect(tables.length).toBeGreaterThanOrEqual(1 + Math.ceil(4096 / 1000) + 1);
    expect(counts(last(tables))).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
  });

  it("moves nothing with maxMigratingSlots 0, but still assigns free slots", () => {
    const shards = [shard("a"), shard("b"), shard("c"), shard("d")];
    expect(plan(threeBalanced(), acked(shards, 1), { maxMigratingSlots: 0 }).changed).toBe(false);
    expect(counts(plan(emptyTable(), shards, { maxMigratingSlots: 0 }).table)).toEqual({
      a: 4096,
      b: 4096,
      c: 4096,
      d: 4096,
    });
  });

  it("retargets pending migrations when `to` dies, keeping their generation", () => {
    const t2 = plan(threeBalanced(), acked([shard("a"), shard("b"), shard("c"), shard("d")], 1), ALL).table;
    const before = new Map(t2.migrations.map((m) => [m.from, m]));
    // d dies before any donor acked generation 2.
    const shards = [
      shard("a", "Ready", 1, 1),
      shard("b", "Ready", 1, 1),
      shard("c", "Ready", 1, 1),
      shard("d", "Dead"),
    ];
    const res = plan(t2, shards, ALL);
    expect(res.changed).toBe(true);
    expect(tableInvariantErrors(res.table)).toEqual([]);
    expect(res.committed).toEqual([]);
    expect(res.retargeted.length).toBeGreaterThan(0);
    expect(migrating(res.table)).toBe(4096);
    for (const m of res.table.migrations) {
      expect(m.to).not.toBe("d");
      expect(m.to).not.toBe(m.from);
      // The donor still has to ack the generation in which it gave the slots up.
      expect(m.generation).toBe(before.get(m.from)!.generation);
    }
    // Nothing has an owner it did not have before.
    for (const move of diffTables(t2, res.table)) expect(move.to).toBeNull();
    const final = last(settle(res.table, shards.slice(0, 3)));
    expect(counts(final)).toEqual({ a: 5462, b: 5461, c: 5461 });
  });

  it("commits to nobody when `to` is not Ready but `from` acked", () => {
    const t2 = plan(threeBalanced(), acked([shard("a"), shard("b"), shard("c"), shard("d")], 1), ALL).table;
    const res = plan(
      t2,
      [
        shard("a", "Expired", 1, 2),
        shard("b", "Expired", 1, 2),
        shard("c", "Expired", 1, 2),
        shard("d", "Expired"),
      ],
      ALL,
    );
    expect(res.committed).toHaveLength(3);
    expect(res.table.migrations).toEqual([]);
    expect(countSlots(freeRanges(res.table))).toBe(4096);
    expect(ownerOf(res.table, freeRanges(res.table)[0]!.start)).toBeUndefined();
  });
});

describe("plan: input validation", () => {
  it.each<[string, ShardInfo[], PlanPolicy, string]>([
    ["duplicate names", [shard("a"), shard("a")], ALL, "shards[1].name"],
    ["an empty name", [shard("")], ALL, "shards[0].name"],
    ["a negative weight", [shard("a", "Ready", -1)], ALL, "shards[0].weight"],
    ["an infinite weight", [shard("a", "Ready", Number.POSITIVE_INFINITY)], ALL, "shards[0].weight"],
    ["an unknown state", [shard("a", "Gone" as ShardState)], ALL, "shards[0].state"],
    ["a negative ack", [shard("a", "Ready", 1, -1)], ALL, "shards[0].ackedGeneration"],
    ["a negative maxMigratingSlots", [shard("a")], { maxMigratingSlots: -1 }, "policy.maxMigratingSlots"],
    ["a fractional maxMigratingSlots", [shard("a")], { maxMigratingSlots: 1.5 }, "policy.maxMigratingSlots"],
  ])("rejects %s naming the field", (_what, shards, policy, field) => {
    let err: unknown;
    try {
      plan(emptyTable(), shards, policy);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanInputError);
    expect(err).toMatchObject({ field });
    expect((err as Error).message).toContain(field);
  });

  it("accepts an infinite maxMigratingSlots", () => {
    const t = plan(threeBalanced(), acked([shard("a"), shard("b"), shard("c"), shard("d")], 1), {
      maxMigratingSlots: Number.POSITIVE_INFINITY,
    }).table;
    expect(migrating(t)).toBe(4096);
  });
});

describe("plan: output shape", () => {
  it("is deterministic whatever the order of the shard list", () => {
    const t = threeBalanced();
    const x = plan(t, acked([shard("a"), shard("b"), shard("c"), shard("d")], 1), ALL);
    const y = plan(t, acked([shard("d"), shard("c"), shard("b"), shard("a")], 1), ALL);
    expect(tableToStatus(y.table)).toEqual(tableToStatus(x.table));
    expect(formatSlotRanges(y.table.migrations.flatMap((m) => m.slots))).toBe(
      formatSlotRanges(x.table.migrations.flatMap((m) => m.slots)),
    );
  });

  it("does not mutate its input table", () => {
    const t = threeBalanced();
    const snapshot = tableToStatus(t);
    const owner = t.owner.slice();
    plan(t, acked([shard("a"), shard("b", "Dead"), shard("c"), shard("d")], 1), ALL);
    expect(tableToStatus(t)).toEqual(snapshot);
    expect(t.owner).toEqual(owner);
  });
});
