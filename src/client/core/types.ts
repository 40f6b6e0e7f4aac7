/**
 * Inputs, outputs and wire shapes of the sans-I/O shard state machine (see shard-machine.ts and
 * docs/dev/shard-core.md). Pure data: everything here is plain, serialisable values.
 */
import type { LeaseObject } from "../../api/lease.js";
import type { LeaseWriteRequest, LeaseWriteResult } from "../../api/lease-lock.js";
import type { SlotRange } from "../../slots/types.js";

export type { LeaseObject, LeaseSpecFields } from "../../api/lease.js";
export type { LeaseWriteKind, LeaseWriteResult } from "../../api/lease-lock.js";

/**
 * The slot-table part of a SlotMap status the shard reads. Structurally compatible with the zod
 * output `SlotMapStatus` of src/api (extra fields are ignored).
 */
export interface ShardStatusView {
  readonly assignmentGeneration: number;
  /**
   * Fingerprint of the placement the table applies to (`status.rulesFingerprint`). When present,
   * the shard owns nothing until it reported the same with `rulesApplied`.
   */
  readonly rulesFingerprint?: string | undefined;
  /**
   * Whether the table assigns nothing (a drain barrier every live shard must acknowledge). A
   * projection (one row) carries it; absent, it is read from `shards`.
   */
  readonly drainBarrier?: boolean | undefined;
  readonly shards: ReadonlyArray<{
    readonly name: string;
    readonly slots: string;
    readonly holderIdentity?: string | undefined;
  }>;
}

/**
 * Everything that can happen to a shard. Every input carries `now`: milliseconds of a monotonic
 * clock of this process (e.g. `performance.now()`); the machine never reads a clock itself. A
 * `now` lower than one seen before is treated as the highest seen (time never goes back).
 */
export type ShardInput =
  /** Time passed: the I/O layer calls this at {@link ShardMachineView.nextWakeAt} (late is unsafe, see docs). */
  | { type: "tick"; now: number }
  /** The shard's Lease as seen by a watch, list or get; `null` when it does not exist (404, DELETED). */
  | { type: "leaseObserved"; now: number; lease: LeaseObject | null }
  /** The result of a `writeLease` effect, matched by `writeId`. */
  | { type: "leaseWriteResult"; now: number; writeId: number; result: LeaseWriteResult }
  /**
   * The SlotMap as seen by a watch (possibly stale, duplicated or out of order): its `metadata.uid`
   * and its status (`undefined` when it has none yet).
   */
  | {
      type: "slotMapObserved";
      now: number;
      uid: string;
      status: ShardStatusView | undefined;
      /**
       * `metadata.resourceVersion` of the SlotMap: tells a stale observation (older, ignored) from
       * a status whose generation went down by a write (newer: restored, refused). Optional: without
       * it every lower generation is taken as stale.
       */
      resourceVersion?: string | undefined;
      /** `spec.policy.handoffTimeoutSeconds`: overrides the `handoffEscalateAfterMs` option. */
      handoffTimeoutSeconds?: number | undefined;
    }
  /** The SlotMap with this uid was deleted. */
  | { type: "slotMapDeleted"; now: number; uid: string }
  /**
   * The runtime now maps objects to slots by these rules (`placementFingerprint` of the
   * `spec.resources` it resolved). Report it before the runtime starts anything under them.
   */
  | { type: "rulesApplied"; now: number; fingerprint: string }
  /** A reconcile of `key` (an object in `slot`) started; call only after `mayStart(slot, now)`. */
  | { type: "reconcileStarted"; now: number; slot: number; key: string }
  /** A reconcile started with `reconcileStarted` ended (success, error or abort alike). */
  | { type: "reconcileFinished"; now: number; slot: number; key: string }
  /** Graceful shutdown: stop starting, drain, release. `abortInFlight` also asks to abort in-flight work. */
  | { type: "shutdown"; now: number; abortInFlight?: boolean };

/**
 * Write the shard's Lease. `verb: "create"` → POST `lease`; `verb: "update"` → PUT `lease`, whose
 * `metadata.resourceVersion` (also in `resourceVersion`) is the precondition: the API server
 * answers 409 Conflict when the Lease changed since. Report the outcome with a
 * `leaseWriteResult` input carrying `writeId`; abort the request at `timeoutAt` (machine clock)
 * and report an error: the machine stops waiting for it then anyway.
 */
export interface WriteLeaseEffect extends LeaseWriteRequest {
  type: "writeLease";
}

/** Why ownership changed: a new slot table, our Lease tenure (fence, unfence, new identity, release), or a recreated/deleted SlotMap. */
export type OwnershipChangeReason = "assignment" | "lease" | "reset";

/** Why the shard stopped starting reconciles. */
export type FenceReason = "renewDeadline" | "leaseLost" | "released";

/** Why in-flight reconciles should be aborted. */
export type AbortReason = "fenced" | "handoffTimeout" | "shutdown";

/** A structured log record; pass to pino as `logger[level]({...fields}, msg)`. */
export interface LogEffect {
  type: "log";
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  fields: {
    slotmap: string;
    shard: string;
    /** The assignment generation of the newest status applied (0 before any). */
    generation: number;
    /** Our current holder identity, if we hold the Lease. */
    identity: string | undefined;
    [field: string]: unknown;
  };
}

/** What the I/O layer and the runtime must do, in order. */
export type ShardEffect =
  | WriteLeaseEffect
  /** Enqueue every object whose slot is in `ranges`: we may now reconcile them. */
  | { type: "slotsGained"; ranges: SlotRange[]; generation: number; reason: OwnershipChangeReason }
  /** We no longer own `ranges` (in-flight reconciles on them are still tracked until finished). */
  | { type: "slotsLost"; ranges: SlotRange[]; generation: number; reason: OwnershipChangeReason }
  /** `mayStart` is now false for every slot. */
  | { type: "fenced"; reason: FenceReason }
  /** The Lease was renewed (or acquired) in time: starting reconciles is allowed again on owned slots. */
  | { type: "unfenced"; identity: string }
  /** Abort (AbortSignal) the reconciles of these keys; each key is reported once per reconcile. */
  | { type: "abortInFlight"; keys: string[]; reason: AbortReason }
  /** An ack was written to the Lease (the write succeeded). */
  | { type: "acked"; uid: string; generation: number }
  /** Shutdown finished: the Lease is released (or was not ours); nothing more will be written. */
  | { type: "stopped" }
  /**
   * A reconcile on lost slots outlived the handoff timeout and ignored its abort: the machine
   * stopped renewing (fenced for good). The process must exit now, ending that reconcile, without
   * releasing the Lease: the coordinator then fences the shard by expiry and completes the handoff.
   */
  | { type: "escalate"; keys: string[]; sinceMs: number }
  | LogEffect;

/** Coarse state of the machine, for metrics, logs and tests. */
export type ShardPhase =
  /** The Lease has not been observed yet (waiting for the first get/list). */
  | "starting"
  /** We do not hold the Lease: waiting for it to be absent, released or expired, or acquiring. */
  | "candidate"
  /** We hold the Lease and renewed it within renewDeadline: we may start reconciles. */
  | "active"
  /** We hold the Lease by identity but the last successful renew is older than renewDeadline. */
  | "fenced"
  /** Shutdown requested: waiting for in-flight reconciles, then releasing. */
  | "draining"
  /** Shutdown complete. */
  | "stopped";

/** Read-only queries of a shard machine. */
export interface ShardMachineView {
  /** O(1): whether we own `slot` now (granted to our identity in the newest status, and not fenced). */
  ownsSlot(slot: number): boolean;
  /** Whether a reconcile of an object in `slot` may start at `now`: owned, within renewDeadline, not shutting down. */
  mayStart(slot: number, now: number): boolean;
  /** The generation acknowledged in our Lease (written successfully) for the current SlotMap uid; 0 if none. */
  ackedGeneration(): number;
  /** Coarse state. */
  phase(): ShardPhase;
  /** When the machine next needs a `tick` (machine clock), or undefined when it waits only for inputs. */
  nextWakeAt(): number | undefined;
}
