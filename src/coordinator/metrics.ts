import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { SlotMapMetrics } from "./core/index.js";

const STATES = ["Ready", "Expired", "Dead"] as const;
const OUTCOMES = ["acked", "fenced"] as const;
const INPUT_KINDS = ["spec", "status", "annotation"] as const;

/**
 * The coordinator's Prometheus metrics (all prefixed `slotmap_`, see docs/coordinator.md).
 * One registry per coordinator so tests can run several in one process.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  /** Shards per SlotMap and Lease state. */
  readonly shards = new Gauge({
    name: "slotmap_shards",
    help: "Shards by SlotMap and Lease state (Ready, Expired, Dead).",
    labelNames: ["slotmap", "state"] as const,
    registers: [this.registry],
  });
  /** Slots owned per shard. */
  readonly slots = new Gauge({
    name: "slotmap_slots",
    help: "Slots owned by each shard (committed assignment).",
    labelNames: ["slotmap", "shard"] as const,
    registers: [this.registry],
  });
  /** Migrations in flight. */
  readonly migrations = new Gauge({
    name: "slotmap_migrations_in_flight",
    help: "Migrations recorded in status and not yet committed.",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Slots in migrations. */
  readonly migratingSlots = new Gauge({
    name: "slotmap_migrating_slots",
    help: "Slots owned by nobody while their source shard has not acknowledged.",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Unassigned slots. */
  readonly unassignedSlots = new Gauge({
    name: "slotmap_unassigned_slots",
    help: "Slots with no owner and no migration (no Ready shard to take them).",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Assignment generation. */
  readonly generation = new Gauge({
    name: "slotmap_assignment_generation",
    help: "status.assignmentGeneration of each SlotMap.",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Handoff durations (migration start to commit), coordinator clock. */
  readonly handoffDuration = new Histogram({
    name: "slotmap_handoff_duration_seconds",
    help: "Time from recording a migration to committing it: outcome acked (the source acknowledged) or fenced (the source was Dead or replaced).",
    labelNames: ["slotmap", "outcome"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  /** API writes by verb, resource and outcome. */
  readonly apiWrites = new Counter({
    name: "slotmap_api_writes_total",
    help: "API writes made by the coordinator, by verb, resource and result (ok, conflict, error).",
    labelNames: ["verb", "resource", "result"] as const,
    registers: [this.registry],
  });
  /** 1 while the spec is valid. */
  readonly specValid = new Gauge({
    name: "slotmap_spec_valid",
    help: "1 while the SlotMap's spec is valid, 0 while it is rejected (Ready=False, reason InvalidSpec).",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** 1 while the status is valid; 0 means the table is held (alert on it). */
  readonly statusValid = new Gauge({
    name: "slotmap_status_valid",
    help: "1 while the SlotMap's status is valid, 0 while it is invalid and the slot table is held (no slot moves).",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Handoffs past their timeout. */
  readonly handoffsTimedOut = new Gauge({
    name: "slotmap_handoffs_timed_out",
    help: "Pending handoffs whose source has not acknowledged within spec.policy.handoffTimeoutSeconds.",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Shards beyond the supported count (they get no slots). */
  readonly shardsOverLimit = new Gauge({
    name: "slotmap_shards_over_limit",
    help: "Shards of the SlotMap beyond the supported count (1024): they get no slots until others leave. 0 normally.",
    labelNames: ["slotmap"] as const,
    registers: [this.registry],
  });
  /** Duration of one decision step including its API writes. */
  readonly stepDuration = new Histogram({
    name: "slotmap_coordinator_step_duration_seconds",
    help: "Time of one coordinator step for one SlotMap: planning plus applying its API writes.",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  /** 1 while this replica leads. */
  readonly leader = new Gauge({
    name: "slotmap_coordinator_leader",
    help: "1 while this coordinator replica is the leader.",
    registers: [this.registry],
  });
  /** Invalid input seen (specs, annotations, status). */
  readonly invalidInput = new Counter({
    name: "slotmap_invalid_input_total",
    help: "Invalid SlotMap specs, Lease annotations or statuses seen, by kind.",
    labelNames: ["slotmap", "kind"] as const,
    registers: [this.registry],
  });

  /** Shards with a `slotmap_slots` series, per SlotMap (to remove series of departed shards). */
  private readonly shardSeries = new Map<string, Set<string>>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Sets the gauges of one SlotMap from a core step's metrics and observes its committed handoffs. */
  publish(m: SlotMapMetrics): void {
    const slotmap = m.slotMap;
    for (const state of STATES) this.shards.set({ slotmap, state }, m.shardsByState[state]);
    const now = new Set<string>();
    for (const { shard, slots } of m.slotsPerShard) {
      now.add(shard);
      this.slots.set({ slotmap, shard }, slots);
    }
    for (const shard of this.shardSeries.get(slotmap) ?? []) {
      if (!now.has(shard)) this.slots.remove({ slotmap, shard });
    }
    this.shardSeries.set(slotmap, now);
    this.migrations.set({ slotmap }, m.migrationsInFlight);
    this.migratingSlots.set({ slotmap }, m.migratingSlots);
    this.unassignedSlots.set({ slotmap }, m.unassignedSlots);
    this.generation.set({ slotmap }, m.assignmentGeneration);
    this.specValid.set({ slotmap }, m.specValid ? 1 : 0);
    this.statusValid.set({ slotmap }, m.statusValid ? 1 : 0);
    this.handoffsTimedOut.set({ slotmap }, m.handoffsTimedOut);
    this.shardsOverLimit.set({ slotmap }, m.shardsOverLimit);
    for (const h of m.handoffs) {
      this.handoffDuration.observe({ slotmap, outcome: h.outcome }, h.durationMs / 1000);
    }
  }

  /** Removes every series of a SlotMap (deleted, or this replica stopped leading). */
  forget(slotmap: string): void {
    for (const state of STATES) this.shards.remove({ slotmap, state });
    for (const shard of this.shardSeries.get(slotmap) ?? []) this.slots.remove({ slotmap, shard });
    this.shardSeries.delete(slotmap);
    for (const g of [
      this.migrations,
      this.migratingSlots,
      this.unassignedSlots,
      this.generation,
      this.specValid,
      this.statusValid,
      this.handoffsTimedOut,
      this.shardsOverLimit,
    ]) {
      g.remove({ slotmap });
    }
    for (const outcome of OUTCOMES) this.handoffDuration.remove({ slotmap, outcome });
    for (const kind of INPUT_KINDS) this.invalidInput.remove({ slotmap, kind });
  }
}
