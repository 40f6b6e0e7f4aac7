/**
 * Shared vocabulary of the slot core. Pure data: no I/O, no classes with hidden state.
 * See ../../../shared/DESIGN.md (kept in the repo's sibling `shared/`) for the protocol.
 */

/** Number of slots in every SlotMap, as in Redis Cluster. */
export const SLOT_COUNT = 16384;

/** Highest valid slot number. */
export const MAX_SLOT = SLOT_COUNT - 1;

/** Owner id used in {@link SlotTable.owner} for a slot that nobody owns (free or migrating). */
export const NO_OWNER = 0xffff;

/** An inclusive range of slots, `start <= end`, both in `0..16383`. */
export interface SlotRange {
  readonly start: number;
  readonly end: number;
}

/** Lease state of a shard as judged by the coordinator's own observation clock. */
export type ShardState = "Ready" | "Expired" | "Dead";

/**
 * Slots moving from one shard to another. While a migration exists nobody owns its slots:
 * the coordinator commits it (slots join `to`) only after `from` acked `generation`.
 */
export interface Migration {
  readonly slots: readonly SlotRange[];
  readonly from: string;
  readonly to: string;
  /** The assignment generation `from` must acknowledge before the slots move on. */
  readonly generation: number;
}

/**
 * The slot table of one SlotMap: an owner per slot in a compact typed array plus the
 * in-flight migrations. Treat as immutable: every change produces a new table.
 */
export interface SlotTable {
  /** `status.assignmentGeneration`; +1 on every change of owners or migrations. */
  readonly generation: number;
  /** Shard names, sorted; `owner[slot]` indexes into this list. May name shards owning nothing. */
  readonly shards: readonly string[];
  /** Length {@link SLOT_COUNT}; index into `shards`, or {@link NO_OWNER} for free or migrating slots. */
  readonly owner: Uint16Array;
  /** Sorted by (from, to). A slot is in at most one migration and then has NO_OWNER. */
  readonly migrations: readonly Migration[];
}

/** What the planner knows of a shard. Built by the coordinator from Leases. */
export interface ShardInfo {
  readonly name: string;
  readonly state: ShardState;
  /** `slotmap.dev/weight`, default 1; 0 drains the shard. */
  readonly weight: number;
  /**
   * The generation this shard acknowledged for this SlotMap instance (annotation
   * `slotmap.dev/observed-generation`, already checked against `slotmap.dev/slotmap-uid`),
   * or 0 when it has acknowledged nothing valid.
   */
  readonly ackedGeneration: number;
}

/** Planner policy, from `spec.policy`. */
export interface PlanPolicy {
  /** Upper bound on slots in `migrations` at once (the rate limit per handoff round). */
  readonly maxMigratingSlots: number;
}

/**
 * The slot-table part of a SlotMap `status`, in its wire form (Redis-style range strings).
 * The zod schema of the full status in src/api is structurally compatible with it.
 */
export interface StatusTable {
  assignmentGeneration: number;
  /**
   * `holderIdentity`: the Lease holder (process instance) the slots were granted to. A shard
   * process owns its slots only while this equals its own identity, so a process that
   * re-acquires a Lease never acts on slots granted to an earlier incarnation.
   */
  shards: Array<{ name: string; slots: string; holderIdentity?: string }>;
  migrations: Array<{ slots: string; from: string; to: string; generation: number }>;
  unassignedSlots: string;
}
