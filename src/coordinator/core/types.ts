/**
 * Types of the sans-I/O coordinator core: what one decision step reads (observed objects, clock,
 * config, memory) and what it returns (actions, logs, metrics, memory, next wake-up).
 *
 * Everything here is plain data. Memory is JSON-serializable, so a simulator can snapshot, compare
 * and replay it. See docs/dev/coordinator-core.md for the semantics of every field.
 */

import type { leaseFingerprint } from "../../api/lease.js";
import { TAKEOVER_HOLDER } from "../../api/lease.js";
import type { ProjectableStatus } from "../../api/projection.js";
import type { SlotMapStatus } from "../../api/v1alpha1.js";
import type { ShardState } from "../../slots/types.js";

export { TAKEOVER_HOLDER };

/** Default {@link CoordinatorConfig.orphanAfterMs}: DESIGN "Orphaned after 1 minute dead". */
export const DEFAULT_ORPHAN_AFTER_MS = 60_000;

/** Default {@link CoordinatorConfig.defaultLeaseDurationMs}: client-go's default lease duration. */
export const DEFAULT_LEASE_DURATION_MS = 15_000;

/** The SlotMap as observed (a raw API object: nothing is validated before the step). */
export interface ObservedSlotMap {
  readonly metadata: {
    readonly name: string;
    readonly uid: string;
    readonly generation?: number | undefined;
    readonly resourceVersion: string;
    readonly deletionTimestamp?: string | null | undefined;
  };
  /** Validated by the step with `parseSlotMapSpec`. */
  readonly spec: unknown;
  /** Validated by the step with `parseSlotMapStatus` (which builds the table); absent on a new SlotMap. */
  readonly status?: unknown;
}

/**
 * A shard Lease (`coordination.k8s.io/v1`) as observed: the Leases labelled
 * `slotmap.dev/slotmap=<SlotMap name>` in `spec.leaseNamespace`, and only those.
 */
export interface ObservedLease {
  readonly metadata: {
    readonly name: string;
    /** Defaults to the SlotMap's `spec.leaseNamespace` in actions. */
    readonly namespace?: string | undefined;
    readonly uid: string;
    readonly resourceVersion: string;
    readonly annotations?: Readonly<Record<string, string>> | null | undefined;
  };
  readonly spec?:
    | {
        readonly holderIdentity?: string | null | undefined;
        readonly leaseDurationSeconds?: number | null | undefined;
        readonly acquireTime?: string | null | undefined;
        readonly renewTime?: string | null | undefined;
        readonly leaseTransitions?: number | null | undefined;
      }
    | null
    | undefined;
}

/** Coordinator settings (the same for every SlotMap). */
export interface CoordinatorConfig {
  /** Identity of this coordinator process (e.g. the pod name); used as `reportingInstance` of Events. */
  readonly identity: string;
  /** A Dead shard's Lease is deleted after this long dead (coordinator clock). Default 60000. */
  readonly orphanAfterMs?: number | undefined;
  /** Lease duration assumed for a Lease without `spec.leaseDurationSeconds`. Default 15000. */
  readonly defaultLeaseDurationMs?: number | undefined;
  /**
   * A step later than this after the previous one means the coordinator was blind (paused,
   * starved, partitioned from its own clock): every Lease clock restarts, so nothing is judged
   * expired from a stale observation. Default 5000; steps come at least every
   * {@link CoordinatorConfig.heartbeatMs}.
   */
  readonly maxObservationGapMs?: number | undefined;
  /** `nextStepAt` is never later than this after a step. Default 1000. */
  readonly heartbeatMs?: number | undefined;
  /**
   * Acked migrations wait up to this long for the other sources' acks, so that a join or a leave
   * commits in one status write rather than one per ack. Default 250.
   */
  readonly commitBatchMs?: number | undefined;
}

/** Everything one decision step reads, besides the memory. */
export interface StepInput {
  readonly slotMap: ObservedSlotMap;
  /** Every shard Lease of this SlotMap currently observed (the complete set: absence is meaningful). */
  readonly leases: readonly ObservedLease[];
  /**
   * Leases labelled for this SlotMap in other namespaces than `spec.leaseNamespace` (e.g. shards
   * of a deleted SlotMap instance that used another namespace). They never get slots, but a drain
   * barrier waits for the live ones to acknowledge. Default: none.
   */
  readonly foreignLeases?: readonly ObservedLease[] | undefined;
  /** The coordinator's monotonic clock in ms (e.g. `performance.now()`); never decreases. */
  readonly now: number;
  /**
   * Wall-clock time as an RFC 3339 string (e.g. `new Date().toISOString()`). Only written into
   * objects (condition `lastTransitionTime`, Lease `acquireTime`/`renewTime`), never used to judge time.
   */
  readonly wallTime: string;
  readonly config: CoordinatorConfig;
}

/** What the coordinator remembers about one shard between steps (coordinator clock times). */
export interface ShardMemory {
  /** `metadata.uid` of the Lease last observed, or null while no Lease is observed. */
  readonly leaseUid: string | null;
  /** Holder and renewTime of the Lease last observed ({@link leaseFingerprint}); null while absent. */
  readonly fingerprint: string | null;
  /** holderIdentity last observed ("" when cleared, kept while the Lease is absent). */
  readonly holder: string;
  /** When the fingerprint last changed, the Lease was first observed, or its absence began. */
  readonly lastChangeAt: number;
  /** Lease duration last observed (or the default), in ms. */
  readonly leaseDurationMs: number;
  /**
   * The holder the status grants this shard's slots to, and when it was last seen renewing (our
   * clock): another incarnation gets them only a full lease duration after that. Null when the
   * shard has no grant to protect.
   */
  readonly grantClock: {
    readonly holder: string;
    readonly renewedAt: number;
    /** The lease duration that incarnation declared (it fences by it). */
    readonly durationMs: number;
    /** `spec.renewTime` of its last renewal we saw (only while it is the holder). */
    readonly renewTime?: string | undefined;
  } | null;
  /**
   * A renewal (or another holder) was observed since this leader first observed the Lease, or
   * since its last blind period: only then are its acks known to be current.
   */
  readonly confirmed: boolean;
  /** The Lease's ack for this SlotMap uid last observed (an ack written since then is current). */
  readonly lastAck: number;
  /** When the shard was first judged Dead; null while not Dead. */
  readonly deadSince: number | null;
  /**
   * First observed by this leader while the status said Expired for the same holder, and unchanged
   * since: the shard stays Expired (keeps its slots, gets none) until a renewal is seen, and is not
   * taken over before a full lease duration of this leader's clock.
   */
  readonly suspect: boolean;
  /** State judged in the last step (for transition logs). */
  readonly state: ShardState;
}

/** What the coordinator remembers about one pending handoff: the slots `from` must ack at `generation`. */
export interface HandoffMemory {
  readonly from: string;
  readonly generation: number;
  /** When the migration was started, or first observed by this leader (coordinator clock). */
  readonly since: number;
  /** The HandoffTimeout Event was emitted. */
  readonly timedOut: boolean;
  /** The commit was observed as a metric (once, even if the step is re-run on the same observation). */
  readonly committed: boolean;
  /** When `from`'s ack was first seen (our clock), or null: it waits for a batch of commits. */
  readonly ackedAt: number | null;
}

/**
 * Per-SlotMap memory carried from one step to the next (state in, state out). Deeply frozen,
 * JSON-serializable. `undefined` (a new leader, or a restarted coordinator) is always safe.
 */
export interface CoreMemory {
  /** The SlotMap instance this memory belongs to; another uid (deleted and recreated) resets it. */
  readonly slotMapUid: string;
  /** `now` of the last step, to reject a clock that goes backwards. */
  readonly lastStepAt: number;
  /** By shard (Lease) name, keys sorted. */
  readonly shards: Readonly<Record<string, ShardMemory>>;
  /** By `<from>@<generation>`, keys sorted. */
  readonly handoffs: Readonly<Record<string, HandoffMemory>>;
  /** Leases outside `spec.leaseNamespace`, by `<namespace>/<name>` (absent: none seen). */
  readonly foreign?: Readonly<Record<string, ShardMemory>> | undefined;
  /** Keys of problems already reported by an Event (sorted); a problem that goes away is forgotten. */
  readonly reported: readonly string[];
  /**
   * The highest status generation this coordinator has seen for this uid. A status below it was
   * set back (restored) even when no ack above it is in view yet: a Lease view that lags would
   * otherwise let it plan on the restored table and reuse a generation the shards applied.
   */
  readonly highestGeneration?: { readonly generation: number; readonly resourceVersion: string } | undefined;
}

/** Reference to the object an Event is about (`involvedObject` / `regarding`). */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  /** Absent for the cluster-scoped SlotMap. */
  readonly namespace?: string;
  readonly uid: string;
  readonly resourceVersion?: string;
}

/**
 * Replace the SlotMap's status (status subresource) with `status`, only if the SlotMap still has
 * `uid` and `resourceVersion`. A 409 Conflict means the observation was stale: re-read and re-step.
 */
export interface UpdateStatusAction {
  readonly type: "updateStatus";
  readonly slotMap: { readonly name: string; readonly uid: string; readonly resourceVersion: string };
  /** The complete new status (not a patch). */
  readonly status: SlotMapStatus;
}

/**
 * Take over an Expired Lease: update it with `spec` (other spec fields and metadata unchanged),
 * only if it still has `uid` and `resourceVersion`. A 409 means the holder renewed in between.
 */
export interface TakeOverLeaseAction {
  readonly type: "takeOverLease";
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly spec: {
    readonly holderIdentity: typeof TAKEOVER_HOLDER;
    /** MicroTime (RFC 3339 with 6 fractional digits). */
    readonly acquireTime: string;
    readonly renewTime: string;
    readonly leaseTransitions: number;
    readonly leaseDurationSeconds: number;
  };
}

/** Delete an orphaned Lease with preconditions `uid` and `resourceVersion`; 404 counts as done. */
export interface DeleteLeaseAction {
  readonly type: "deleteLease";
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
}

/** Record a Kubernetes Event. Best effort: a failure is logged, never retried by re-stepping. */
export interface EventAction {
  readonly type: "event";
  readonly involvedObject: ObjectRef;
  readonly eventType: "Normal" | "Warning";
  /** CamelCase, e.g. `HandoffTimeout`. */
  readonly reason: string;
  readonly message: string;
  /** The coordinator identity ({@link CoordinatorConfig.identity}). */
  readonly reportingInstance: string;
}

/** An API write decided by a step. See docs/dev/coordinator-core.md "Applying actions". */
export type CoordinatorAction = UpdateStatusAction | TakeOverLeaseAction | DeleteLeaseAction | EventAction;

/** A structured log line for pino: `logger[level](fields, msg)`. */
export interface LogRecord {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly msg: string;
  /** Always `slotmap`; `shard` and `generation` (assignment generation) where they apply. */
  readonly fields: Readonly<Record<string, string | number | boolean>>;
}

/** A committed handoff, observed once (histogram `slotmap_handoff_duration_seconds`). */
export interface HandoffObservation {
  readonly from: string;
  readonly to: string;
  /** The generation `from` had to acknowledge. */
  readonly generation: number;
  readonly slots: number;
  /** From start (or first observation by this leader) to commit, coordinator clock. */
  readonly durationMs: number;
  /** `acked`: `from` acknowledged; `fenced`: `from` was Dead, gone, or replaced by a new incarnation. */
  readonly outcome: "acked" | "fenced";
}

/** Gauges of one SlotMap after the step, plus the handoffs committed by it. */
export interface SlotMapMetrics {
  readonly slotMap: string;
  readonly specValid: boolean;
  readonly statusValid: boolean;
  /** Of the table the step wants written (or the observed one when it holds). */
  readonly assignmentGeneration: number;
  readonly shardsByState: Readonly<Record<ShardState, number>>;
  /** Owned slots per listed shard, sorted by shard. */
  readonly slotsPerShard: ReadonlyArray<{ readonly shard: string; readonly slots: number }>;
  readonly migrationsInFlight: number;
  readonly migratingSlots: number;
  readonly unassignedSlots: number;
  /** Pending handoffs whose source has not acked within `handoffTimeoutSeconds`. */
  readonly handoffsTimedOut: number;
  /** Shards beyond the supported count: they get no slots (0 normally). */
  readonly shardsOverLimit: number;
  readonly handoffs: readonly HandoffObservation[];
}

/** Result of one step. */
export interface StepResult {
  readonly memory: CoreMemory;
  /** API writes and Events, in the order to apply them. Empty when the world already matches. */
  readonly actions: readonly CoordinatorAction[];
  readonly logs: readonly LogRecord[];
  readonly metrics: SlotMapMetrics;
  /**
   * The earliest coordinator time at which this step's outcome would change without a new
   * observation (a Lease expiry, an orphan deadline, a handoff timeout); undefined when none.
   * The I/O layer must step again at this time (or earlier, on any watch event).
   */
  readonly nextStepAt: number | undefined;
  /**
   * The observed status this step stood by (it passed the regression checks): what the I/O layer
   * projects into the shards' SlotMapShard objects with `projectionActions` (absent when the step
   * resets the table, holds an invalid status or the SlotMap is being deleted).
   */
  readonly projectable?: ProjectableStatus;
}

/** A programming error in the caller's input (not a cluster state): the message names the field. */
export class CoordinatorInputError extends Error {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, reason: string) {
    let shown: string;
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = String(value);
    }
    super(`${field}: ${reason}; got ${shown}`);
    this.name = "CoordinatorInputError";
    this.field = field;
    this.value = value;
  }
}
