// Planner properties about where slots end up (DESIGN "Planner"): balanced by weight at
// quiescence, minimal movement, few ranges per shard, idempotent on a balanced table.
//
// Run counts: each run plans a random history and then to quiescence (up to ~70 planning steps
// of ~2 ms each), so these run 100-300 times, not 1000, to keep the suite under two minutes on a
// 2-core machine. The single-step property (fresh start) runs the default 1000.
import fc from "fast-check";
import { describe, expect } from "vitest";
import {
  computeTargets,
  countSlots,
  diffTables,
  emptyTable,
  freeRanges,
  ownedCounts,
  type PlanPolicy,
  plan,
  rangesByShard,
  type ShardInfo,
  SLOT_COUNT,
  type SlotTable,
} from "../../src/slots/index.js";
import { stepViolations } from "../support/checks.js";
import { Model, maxRangesPerShard, type Op, opArb, POOL } from "../support/cluster-model.js";
import { itProp } from "../support/fc.js";
import { RANGES_PER_SHARD_BOUND, recordRanges } from "../support/ranges-figures.js";

/** Limits large enough that quiescence takes at most ~35 handoff rounds. */
const quickPolicy = fc
  .oneof(fc.constantFrom(16384, 4096, 1000), fc.integer({ min: 500, max: 16384 }))
  .map((maxMigratingSlots): PlanPolicy => ({ maxMigratingSlots }));

const history = fc.array(opArb, { maxLength: 40, size: "max" });

interface Settled {
  rounds: number;
  /** Slots handed over: in started migrations, or assigned directly. */
  moved: number;
  /** How often each slot was handed over. */
  movesPerSlot: Uint16Array;
}

/**
 * Plans with every Ready shard acking each generation until nothing changes, checking every step;
 * fails if that takes more rounds than the rate limit explains (liveness).
 */
function settle(model: Model): Settled {
  const limit = 2 * Math.ceil(SLOT_COUNT / Math.max(1, model.policy.maxMigratingSlots)) + 6;
  const movesPerSlot = new Uint16Array(SLOT_COUNT);
  let moved = 0;
  for (let rounds = 0; ; rounds++) {
    model.ackAll();
    const prev = model.table;
    const shards = model.infos();
    const res = model.step();
    expect(stepViolations(prev, res, shards, model.policy)).toEqual([]);
    if (!res.changed) return { rounds, moved, movesPerSlot };
    if (rounds >= limit)
      throw new Error(
        `not settled after ${limit} rounds (maxMigratingSlots ${model.policy.maxMigratingSlots})`,
      );
    for (const group of [...res.started, ...res.direct]) {
      moved += countSlots(group.slots);
      for (const r of group.slots) for (let s = r.start; s <= r.end; s++) movesPerSlot[s]!++;
    }
  }
}

/** Expired shards either renew (Ready) or are taken over (Dead), so that balance is reachable. */
function resolveExpired(model: Model, renew: readonly boolean[]): void {
  POOL.forEach((name, i) => {
    const s = model.shards.get(name);
    if (s?.state === "Expired") model.shards.set(name, { ...s, state: renew[i] ? "Ready" : "Dead" });
  });
}

/** Every violation of "balanced by weight" for a quiescent table. */
function balanceViolations(table: SlotTable, shards: readonly ShardInfo[]): string[] {
  const out: string[] = [];
  const counts = ownedCounts(table);
  const ready = shards.filter((s) => s.state === "Ready");
  const total = ready.reduce((n, s) => n + s.weight, 0);
  if (table.migrations.length > 0) out.push(`${table.migrations.length} migrations left`);
  for (const [name, n] of counts) {
    const s = shards.find((x) => x.name === name);
    if (n > 0 && s?.state !== "Ready") out.push(`${name} (${s?.state ?? "unknown"}) owns ${n} slots`);
  }
  if (total > 0) {
    const free = countSlots(freeRanges(table));
    if (free > 0) out.push(`${free} slots free`);
    for (const s of ready) {
      const exact = (SLOT_COUNT * s.weight) / total;
      const n = counts.get(s.name) ?? 0;
      if (Math.abs(n - exact) >= 1)
        out.push(`${s.name} (weight ${s.weight}) owns ${n}, exact share ${exact}`);
    }
  }
  return out;
}

const shardsArb = (min: number, max: number) =>
  fc.array(fc.integer({ min: 0, max: 4 }), { minLength: min, maxLength: max }).map((ws) =>
    ws.map(
      (weight, i): ShardInfo => ({
        name: `s${String(i).padStart(2, "0")}`,
        state: "Ready",
        weight,
        ackedGeneration: 0,
      }),
    ),
  );

describe("planner balance and movement", () => {
  itProp("targets split 16384 by weight: integers, summing to 16384, within 1 of the exact share", () =>
    fc.property(
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 1_000_000 }),
          fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true }),
        ),
        {
          minLength: 1,
          maxLength: 50,
        },
      ),
      (weights) => {
        const shards = weights.map(
          (weight, i): ShardInfo => ({ name: `s${i}`, state: "Ready", weight, ackedGeneration: 0 }),
        );
        const targets = computeTargets(shards);
        const values = [...targets.values()];
        expect(values.every((t) => Number.isInteger(t) && t >= 0)).toBe(true);
        weights.forEach((w, i) => {
          if (w === 0) expect(targets.get(`s${i}`)).toBe(0);
        });
        if (weights.some((w) => w > 0)) expect(values.reduce((a, b) => a + b, 0)).toBe(SLOT_COUNT);
        // Exact shares, computed on weights scaled by the largest so that the sum cannot overflow.
        const max = Math.max(...weights);
        if (max > 0) {
          const scaled = weights.map((w) => w / max);
          const total = scaled.reduce((a, b) => a + b, 0);
          scaled.forEach((w, i) => {
            expect(Math.abs(targets.get(`s${i}`)! - (SLOT_COUNT * w) / total)).toBeLessThan(1 + 1e-9);
          });
        }
      },
    ),
  );

  itProp("a fresh start gives every shard its exact share in one range", () =>
    fc.property(shardsArb(1, 40), fc.integer({ min: 0, max: SLOT_COUNT }), (shards, max) => {
      const res = plan(emptyTable(), shards, { maxMigratingSlots: max });
      const total = shards.reduce((n, s) => n + s.weight, 0);
      fc.pre(total > 0);
      expect(balanceViolations(res.table, shards)).toEqual([]);
      expect(res.balanced).toBe(true);
      const ranges = rangesByShard(res.table);
      for (const s of shards) expect(ranges.get(s.name)?.length ?? 0).toBe(s.weight > 0 ? 1 : 0);
    }),
  );

  itProp(
    "planning to quiescence balances by weight (±1), then changes nothing",
    () =>
      fc.property(
        quickPolicy,
        history,
        fc.array(fc.boolean(), { minLength: POOL.length, maxLength: POOL.length }),
        (policy, ops, renew) => {
          const model = new Model(policy);
          for (const op of ops) model.apply(op);
          resolveExpired(model, renew);
          settle(model);
          const shards = model.infos();
          expect(balanceViolations(model.table, shards)).toEqual([]);
          const worst = maxRangesPerShard(model.table);
          recordRanges("quiescence", worst);
          expect(worst).toBeLessThanOrEqual(RANGES_PER_SHARD_BOUND);
          // Idempotent: a balanced table comes back as is.
          model.ackAll();
          const again = plan(model.table, model.infos(), policy);
          expect(again.changed).toBe(false);
          expect(again.table).toBe(model.table);
          if (shards.some((s) => s.state === "Ready" && s.weight > 0)) expect(again.balanced).toBe(true);
        },
      ),
    { numRuns: 150 },
  );

  itProp(
    "n → n+1 shards moves only the newcomer's share, ≈16384/(n+1), each slot once",
    () =>
      fc.property(fc.integer({ min: 1, max: 30 }), fc.nat(), quickPolicy, (n, at, policy) => {
        const names = Array.from({ length: n }, (_, i) => `s${String(i).padStart(2, "0")}`);
        // The newcomer sorts anywhere among the others (names order ties in the targets).
        const newcomer = `s${String(at % (n + 1)).padStart(2, "0")}+`;
        const model = new Model(policy);
        for (const name of names)
          model.shards.set(name, { name, state: "Ready", weight: 1, ackedGeneration: 0 });
        settle(model);
        const before = model.table;
        for (const ranges of rangesByShard(before).values()) expect(ranges.length).toBe(1);
        model.shards.set(newcomer, { name: newcomer, state: "Ready", weight: 1, ackedGeneration: 0 });
        const { moved, movesPerSlot } = settle(model);
        const target = computeTargets(model.infos()).get(newcomer)!;
        expect(Math.abs(target - SLOT_COUNT / (n + 1))).toBeLessThan(1);
        expect(moved).toBe(target);
        expect(Math.max(...movesPerSlot)).toBeLessThanOrEqual(1);
        expect(diffTables(before, model.table).every((m) => m.to === newcomer)).toBe(true);
        // Contiguity: donors keep one range; the newcomer gets a piece per pair of adjacent donors.
        const ranges = rangesByShard(model.table);
        for (const name of names) expect(ranges.get(name)!.length).toBe(1);
        expect(ranges.get(newcomer)!.length).toBeLessThanOrEqual(Math.ceil(n / 2));
      }),
    { numRuns: 300 },
  );

  itProp(
    "from any balanced table, a membership change moves only surplus slots, each at most once",
    () => {
      const change = fc.oneof(
        fc.record({
          op: fc.constant("join" as const),
          shard: fc.nat(POOL.length - 1),
          weight: fc.integer({ min: 1, max: 4 }),
        }),
        fc.record({
          op: fc.constant("weight" as const),
          shard: fc.nat(POOL.length - 1),
          weight: fc.integer({ min: 0, max: 4 }),
        }),
        fc.record({ op: fc.constant("die" as const), shard: fc.nat(POOL.length - 1) }),
      );
      return fc.property(
        quickPolicy,
        history,
        fc.array(fc.boolean(), { minLength: POOL.length, maxLength: POOL.length }),
        fc.array(change, { minLength: 1, maxLength: 3 }),
        (policy, ops, renew, changes: Op[]) => {
          const model = new Model(policy);
          for (const op of ops) model.apply(op);
          resolveExpired(model, renew);
          settle(model);
          fc.pre(model.infos().some((s) => s.state === "Ready" && s.weight > 0));
          const before = model.table;
          for (const c of changes) model.apply(c);
          const after = model.infos();
          fc.pre(after.some((s) => s.state === "Ready" && s.weight > 0));
          // Surplus: what each owner holds beyond its new target (everything, if not Ready).
          const targets = computeTargets(after);
          let surplus = 0;
          for (const [name, n] of ownedCounts(before)) surplus += Math.max(0, n - (targets.get(name) ?? 0));
          const { moved, movesPerSlot } = settle(model);
          expect(balanceViolations(model.table, after)).toEqual([]);
          expect(moved).toBeLessThanOrEqual(surplus);
          expect(Math.max(...movesPerSlot)).toBeLessThanOrEqual(1);
          recordRanges("after a change", maxRangesPerShard(model.table));
        },
      );
    },
    { numRuns: 150 },
  );
});
