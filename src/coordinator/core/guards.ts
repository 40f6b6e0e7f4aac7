/**
 * The coordinator's safety guards: each rule of DESIGN's "Trust" table that a step consults, as one
 * small pure function. The step always runs {@link COORDINATOR_GUARDS}; only the simulator's teeth
 * tests pass another set (`step(memory, input, guards)`), where one guard is replaced by a broken
 * variant to show that an invariant catches the bug (property-tests/sim/mutations.ts,
 * docs/verification.md "Mutations"). The production path has no test switch in it.
 */
import { leaseFingerprint } from "../../api/lease.js";
import type { ShardState, SlotTable } from "../../slots/types.js";
import type { ShardObservation } from "./leases.js";
import type { ObservedLease } from "./types.js";

/** What decides whether a shard's Lease ack counts (see {@link CoordinatorGuards.countedAck}). */
export interface AckFacts {
  /** The Lease's observed-generation for this SlotMap uid (0 if it acks another uid or none). */
  readonly rawAck: number;
  /** The Lease's observed-generation, whatever uid it names. */
  readonly anyUidAck: number;
  /** The holder the shard's slots are granted to, if any. */
  readonly grantHolder: string | undefined;
  /** The Lease's current holder. */
  readonly holder: string;
  /** `status.assignmentGeneration`. */
  readonly statusGeneration: number;
}

/** What decides whether the incarnation the slots are granted to has stopped. */
export interface GrantFacts {
  /** A holder other than the granted one is in the Lease (or it is empty). */
  readonly otherHolder: boolean;
  readonly holder: string;
  /** The coordinator's own takeover marker is the holder. */
  readonly takenOver: boolean;
  /** Cleared by the granted holder itself, with its release marker. */
  readonly releasedByGrant: boolean;
  /** Dead in the previous step. */
  readonly wasDead: boolean;
  /** The granted holder was not seen renewing for its declared lease duration. */
  readonly waitedOut: boolean;
}

/** The guards one coordinator step consults; see {@link COORDINATOR_GUARDS} for each rule. */
export interface CoordinatorGuards {
  /** The ack the planner may count for a shard (0 when none counts). */
  countedAck(facts: AckFacts): number;
  /** When the Lease was last seen renewing, given when we observed its last change. */
  lastRenewalAt(observedAt: number, lease: ObservedLease, now: number, wallMs: number): number;
  /**
   * Whether the grant renewed after our last view of it: the renewTime of its last renewal we saw
   * against the renewTime of the first version without it (undefined: we never saw one).
   */
  missedRenewal(lastSeen: string | undefined, renewTime: string): boolean;
  /** Whether the granted incarnation has stopped, so its slots may move. */
  grantStopped(facts: GrantFacts): boolean;
  /** What counts as a renewal: a change of this value. */
  renewalFingerprint(lease: ObservedLease): string;
  /** Whether a Lease's declared duration is refused by `policy.maxLeaseDurationSeconds`. */
  durationRefused(durationMs: number, capMs: number | undefined): boolean;
  /** Whether an ack above the status's generation shows a status set back (reset it). */
  statusBelowAcks(ack: number, statusGeneration: number): boolean;
  /** Whether a newer status below a generation we saw was set back (reset it). */
  statusSetBack(seenGeneration: number, statusGeneration: number, newerVersion: boolean): boolean;
  /** Whether a shard's refused-generation report resets the table. */
  refusalResets(refused: number, statusGeneration: number): boolean;
  /** Whether a changed placement needs a generation that assigns nothing before it is adopted. */
  rulesNeedBarrier(written: string | undefined, current: string): boolean;
  /** Whether the drain barrier waits for this live Lease. */
  barrierWaitsFor(o: ShardObservation, generation: number, uid: string): boolean;
  /** Whether a step this long after the previous one restarts every Lease clock. */
  blind(gapMs: number, maxGapMs: number): boolean;
  /** Whether nothing moves until this Lease was seen renewing once. */
  mustSettle(o: ShardObservation): boolean;
  /** The state the planner gives a shard. */
  plannedState(o: ShardObservation): ShardState;
  /** The ack the planner uses for a shard. */
  plannedAck(o: ShardObservation, table: SlotTable): number;
}

/** The protocol's guards: what every production step runs. */
export const COORDINATOR_GUARDS: CoordinatorGuards = Object.freeze({
  // Only the granted incarnation's ack, and never one above the status (a restored status).
  countedAck: (f: AckFacts) =>
    (f.grantHolder === undefined || f.grantHolder === f.holder) && f.rawAck <= f.statusGeneration
      ? f.rawAck
      : 0,
  // Our own observation clock: renewTime is another machine's (skewed) wall clock.
  lastRenewalAt: (observedAt: number) => observedAt,
  // Any other renewTime: a renewal we did not see (a lagging watch), or a hand edit of it.
  missedRenewal: (lastSeen: string | undefined, renewTime: string) =>
    lastSeen !== undefined && lastSeen !== renewTime,
  grantStopped: (f: GrantFacts) =>
    !f.otherHolder || f.takenOver || f.releasedByGrant || f.wasDead || f.waitedOut,
  // holderIdentity and renewTime only: a label or annotation touch keeps nobody alive.
  renewalFingerprint: (lease: ObservedLease) => leaseFingerprint(lease.spec),
  durationRefused: (durationMs: number, capMs: number | undefined) =>
    capMs !== undefined && durationMs > capMs,
  statusBelowAcks: (ack: number, statusGeneration: number) => ack > statusGeneration,
  statusSetBack: (seen: number, statusGeneration: number, newerVersion: boolean) =>
    seen > statusGeneration && newerVersion,
  refusalResets: (refused: number, statusGeneration: number) => refused > 0 && refused >= statusGeneration,
  rulesNeedBarrier: (written: string | undefined, current: string) =>
    written !== undefined && written !== current,
  barrierWaitsFor: (o: ShardObservation, generation: number) => o.ackedGeneration < generation,
  blind: (gapMs: number, maxGapMs: number) => gapMs > maxGapMs,
  // Only acks can be stale: a Lease without one (a joining shard) has nothing to settle.
  mustSettle: (o: ShardObservation) =>
    o.realHolder && o.state === "Ready" && o.rawAck > 0 && !o.memory.confirmed,
  plannedState: (o: ShardObservation) => o.state,
  plannedAck: (o: ShardObservation) => o.ackedGeneration,
});
