import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

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
    help: "Time from recording a migration to committing it after the source's ack.",
    labelNames: ["slotmap"] as const,
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

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }
}
