/**
 * A model of a sharded controller's membership for planner properties: shards join, die, expire,
 * renew, leave, change weight and acknowledge generations; the coordinator plans in between.
 * Operations name shards by index into a small pool so that random sequences revisit the same
 * shards (a join after a death, an ack of a migrating donor, ...).
 */
import fc from "fast-check";
import {
  emptyTable,
  type PlanPolicy,
  type PlanResult,
  plan,
  rangesByShard,
  type ShardInfo,
  type SlotTable,
} from "../../src/slots/index.js";

/** Shard names used by the model (sorted, as the planner sorts them anyway). */
export const POOL = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"] as const;

/** One event of the model. `shard` indexes {@link POOL}. */
export type Op =
  | { op: "join"; shard: number; weight: number } // a Lease appears (Ready), or an Expired one renews
  | { op: "expire"; shard: number } // the Lease is not renewed in time
  | { op: "die"; shard: number } // taken over after expiry, or released on shutdown: Dead
  | { op: "forget"; shard: number } // Orphaned: the Lease is deleted, the shard is absent
  | { op: "weight"; shard: number; weight: number }
  | { op: "ack"; shard: number } // the shard applied the current generation
  | { op: "ackAll" }
  | { op: "plan" };

const shardIdx = fc.integer({ min: 0, max: POOL.length - 1 });
const weight = fc.oneof(
  { weight: 4, arbitrary: fc.constant(1) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }) },
);

/** A random event; planning and acks are frequent so that handoffs progress. */
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("join" as const), shard: shardIdx, weight }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("expire" as const), shard: shardIdx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("die" as const), shard: shardIdx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("forget" as const), shard: shardIdx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("weight" as const), shard: shardIdx, weight }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("ack" as const), shard: shardIdx }) },
  { weight: 2, arbitrary: fc.constant({ op: "ackAll" as const }) },
  { weight: 6, arbitrary: fc.constant({ op: "plan" as const }) },
);

/** Policies worth testing: unlimited, a few handoff rounds, many small rounds, one slot at a time. */
export const policyArb: fc.Arbitrary<PlanPolicy> = fc
  .oneof(fc.constant(16384), fc.constantFrom(4096, 1000, 100, 1), fc.integer({ min: 1, max: 16384 }))
  .map((maxMigratingSlots) => ({ maxMigratingSlots }));

/** Mutable model state: the current table and the shards the coordinator knows, by name. */
export class Model {
  table: SlotTable = emptyTable();
  readonly shards = new Map<string, ShardInfo>();

  constructor(readonly policy: PlanPolicy) {}

  /** The planner input, in name order (the planner must not depend on it; see determinism). */
  infos(): ShardInfo[] {
    return [...this.shards.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private update(name: string, patch: Partial<ShardInfo>): void {
    const s = this.shards.get(name);
    if (s !== undefined) this.shards.set(name, { ...s, ...patch });
  }

  /** Applies a membership event; returns the plan result for `plan`, else undefined. */
  apply(o: Op): PlanResult | undefined {
    switch (o.op) {
      case "join": {
        const name = POOL[o.shard]!;
        const s = this.shards.get(name);
        // A Dead shard's Lease is taken over: a new process starts with no valid ack.
        if (s === undefined || s.state === "Dead") {
          this.shards.set(name, { name, state: "Ready", weight: o.weight, ackedGeneration: 0 });
        } else this.update(name, { state: "Ready" });
        return undefined;
      }
      case "expire": {
        const s = this.shards.get(POOL[o.shard]!);
        if (s?.state === "Ready") this.update(s.name, { state: "Expired" });
        return undefined;
      }
      case "die":
        this.update(POOL[o.shard]!, { state: "Dead" });
        return undefined;
      case "forget": {
        const s = this.shards.get(POOL[o.shard]!);
        if (s?.state === "Dead") this.shards.delete(s.name);
        return undefined;
      }
      case "weight":
        this.update(POOL[o.shard]!, { weight: o.weight });
        return undefined;
      case "ack": {
        // Only a live, renewing shard writes its Lease.
        const s = this.shards.get(POOL[o.shard]!);
        if (s?.state === "Ready") this.update(s.name, { ackedGeneration: this.table.generation });
        return undefined;
      }
      case "ackAll":
        this.ackAll();
        return undefined;
      case "plan":
        return this.step();
    }
  }

  /** Every Ready shard acknowledges the current generation. */
  ackAll(): void {
    for (const s of this.shards.values()) {
      if (s.state === "Ready") this.update(s.name, { ackedGeneration: this.table.generation });
    }
  }

  /** One planning step; the table moves on. */
  step(): PlanResult {
    const res = plan(this.table, this.infos(), this.policy);
    this.table = res.table;
    return res;
  }
}

/** Most ranges owned by any one shard of the table. */
export function maxRangesPerShard(table: SlotTable): number {
  let worst = 0;
  for (const ranges of rangesByShard(table).values()) worst = Math.max(worst, ranges.length);
  return worst;
}
