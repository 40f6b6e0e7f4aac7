/**
 * The shard Lease state machine, judged by the coordinator's own observation clock (DESIGN "The
 * shard Lease"): never by the renewTime a shard writes, whose clock may be skewed.
 *
 *   Ready ──(no renewal seen for leaseDuration)──▶ Expired ──(takeover observed)──▶ Dead
 *   Dead ──(orphanAfterMs)──▶ Lease deleted
 *   any ──(released by the holder the slots were granted to)──▶ Dead at once
 *   Lease absent, or holder cleared or replaced by hand ──▶ Expired until the granted holder has not
 *     been seen renewing for leaseDuration, then Dead (its slots may move)
 *
 * A renewal is a change of holderIdentity or renewTime, nothing else: a label or annotation written
 * by a person or a tool does not keep a dead shard alive (DESIGN "Trust").
 *
 * Incarnations: the status grants a shard's slots to one holder (process incarnation). Another
 * holder in the Lease (a restarted process, a standby that won the Lease, a hand edit) gets nothing
 * until the granted holder has been seen unrenewed for a full leaseDuration, released the Lease, or
 * was taken over: until then the shard keeps its slots and counts as Expired. A Lease first
 * observed (new leader, reappeared, recreated) starts its clocks at that observation, and so does
 * every Lease after a blind period (the coordinator did not step for `maxObservationGapMs`): both
 * can only delay a takeover, never hasten it.
 */
import type { FieldError } from "../../api/errors.js";
import {
  ANNOTATION_RELEASED_BY,
  ackedGeneration,
  isLeaseFree,
  leaseDurationMs,
  leaseHolder,
  parseShardLeaseAnnotations,
  refusedGeneration,
} from "../../api/lease.js";
import type { ShardState } from "../../slots/types.js";
import type { CoordinatorGuards } from "./guards.js";
import { memoByObject } from "./memo.js";
import { type ObservedLease, type ShardMemory, TAKEOVER_HOLDER } from "./types.js";

/** What the status says about a shard, used when a Lease is first observed or absent. */
export interface StatusShardHint {
  readonly state: ShardState | undefined;
  /** The holder the shard's slots and migrations are granted to. */
  readonly holderIdentity: string | undefined;
  /** Owns slots or takes part in a migration in the status table: its absence must be waited out. */
  readonly involved: boolean;
}

/** The coordinator's view of one shard in this step. */
export interface ShardObservation {
  readonly name: string;
  /** The state the planner uses (and the status shows). */
  readonly state: ShardState;
  /** The observed Lease; undefined when the shard has no Lease (deleted, or not yet created). */
  readonly lease: ObservedLease | undefined;
  /** `spec.holderIdentity` ("" when empty or absent). */
  readonly holder: string;
  /** A process identity: neither empty nor {@link TAKEOVER_HOLDER}. */
  readonly realHolder: boolean;
  /**
   * The holder the shard's grants belong to after this step: the status's holder while that
   * incarnation may still run, else the current holder (undefined when there is none).
   */
  readonly grantHolder: string | undefined;
  /**
   * The status granted slots to another holder, and that incarnation is now known to have stopped
   * (unrenewed for a full lease duration, released, or taken over): its grants are fenced.
   */
  readonly previousGrantFenced: boolean;
  /**
   * Ack for this SlotMap instance, counted only from the holder the slots are granted to and only
   * up to `statusGeneration` (0 otherwise).
   */
  readonly ackedGeneration: number;
  /** The Lease's observed-generation for this SlotMap uid, whoever wrote it (regression check). */
  readonly rawAck: number;
  /** The generation whose table the shard refuses (restored under it), for this uid; 0 if none. */
  readonly refusedGeneration: number;
  /** Weight from the Lease annotation (default 1). */
  readonly leaseWeight: number;
  readonly annotationErrors: readonly FieldError[];
  /** The Lease asks for a longer duration than the policy allows: it gets no slots. */
  readonly refusedDurationMs: number | undefined;
  /** Expired by a full lease duration of our clock: take the Lease over. */
  readonly takeoverDue: boolean;
  /** Dead for `orphanAfterMs`: delete the Lease. */
  readonly deleteDue: boolean;
  /** When the state (or a due action) would change by the clock alone; undefined if never. */
  readonly deadline: number | undefined;
  /** State in the previous step of this leader, if it saw the shard. */
  readonly previousState: ShardState | undefined;
  readonly memory: ShardMemory;
}

/** Inputs of {@link observeShards}. */
export interface ObserveShardsInput {
  readonly previous: Readonly<Record<string, ShardMemory>>;
  /** The observed Leases, unique names. */
  readonly leases: readonly ObservedLease[];
  /** Shards named by the observed status (empty when the status is unusable). */
  readonly statusShards: ReadonlyMap<string, StatusShardHint>;
  readonly slotMapUid: string;
  /** `status.assignmentGeneration`: acks above it are for a generation that does not exist. */
  readonly statusGeneration: number;
  readonly now: number;
  /** The previous step was longer ago than the observation gap: restart every clock. */
  readonly blind: boolean;
  readonly defaultLeaseDurationMs: number;
  /** `spec.policy.maxLeaseDurationSeconds` in ms; undefined while the spec is invalid. */
  readonly maxLeaseDurationMs: number | undefined;
  readonly orphanAfterMs: number;
  /** Wall clock of the step (ms since the epoch). */
  readonly wallMs: number;
  readonly guards: CoordinatorGuards;
}

// Parsed annotations by annotations object (a step over 1000 renewing Leases parses only the
// ones whose annotations changed).
const parsedAnnotations = memoByObject((a: Readonly<Record<string, string>>) =>
  parseShardLeaseAnnotations(a),
);

/** A Lease's parsed annotations, once per annotations object (the step and the projections share it). */
export function leaseAnnotations(
  annotations: Readonly<Record<string, string>> | undefined | null,
): ReturnType<typeof parseShardLeaseAnnotations> {
  return annotations === undefined || annotations === null
    ? parseShardLeaseAnnotations(annotations)
    : parsedAnnotations(annotations);
}

function annotationsOf(lease: ObservedLease): ReturnType<typeof parseShardLeaseAnnotations> {
  return leaseAnnotations(lease.metadata.annotations);
}

/**
 * When the granted holder was last seen renewing, carried across steps: while it holds the Lease,
 * its last renewal; afterwards the value from the memory; never seen (new leader, restart): now.
 *
 * Our view may lag (a stalled watch delivers only the newest version): when the first version
 * without the granted holder (or no Lease at all) shows another renewTime than its last renewal we
 * saw, it renewed after that, unseen, so its clock restarts at this observation. A hand edit keeps
 * renewTime, so a holder cleared with no renewal missed is waited out from the renewal we saw.
 */
function grantClockOf(
  grant: string | undefined,
  holder: string,
  renewTime: string,
  lastChangeAt: number,
  durationMs: number,
  pm: ShardMemory | undefined,
  input: ObserveShardsInput,
): ShardMemory["grantClock"] {
  const { now } = input;
  if (grant === undefined) return null;
  if (holder === grant) return { holder: grant, renewedAt: lastChangeAt, durationMs, renewTime };
  const seen = pm?.grantClock?.holder === grant ? pm.grantClock : undefined;
  if (seen !== undefined && pm?.holder === grant && input.guards.missedRenewal(seen.renewTime, renewTime))
    return { holder: grant, renewedAt: now, durationMs: seen.durationMs };
  if (seen !== undefined) return seen;
  if (pm?.holder === grant)
    return { holder: grant, renewedAt: pm.lastChangeAt, durationMs: pm.leaseDurationMs };
  // Never seen it renew: wait from now, for the longest duration we know of (this Lease's), but
  // never longer than the cap: the grant was given to a duration within it, and a successor
  // declaring more (a rogue's hour) must not hold its slots for that long. The memory that knew the
  // granted duration is lost after a failed write or a failover (P6 of docs/verification.md).
  const cap = input.maxLeaseDurationMs;
  return {
    holder: grant,
    renewedAt: now,
    durationMs: cap === undefined ? durationMs : Math.min(durationMs, cap),
  };
}

/**
 * The incarnation to protect when the status grants this shard nothing: the last real holder we
 * saw, until it is known to have stopped (Dead). Its process may still run reconciles of a table it
 * has not seen replaced yet (a restored status, a reset that assigns nothing), so a cleared or
 * changed holder, or a deleted Lease, is waited out like a grant's (simulator finding, 2026-12-03:
 * a holder cleared during the drain barrier after a restore let the barrier pass while the old
 * process still ran a slot of the restored table).
 */
function lastIncarnation(pm: ShardMemory | undefined, input: ObserveShardsInput): string | undefined {
  if (pm === undefined || pm.state === "Dead") return undefined;
  // A Lease refused for its duration got no slots and is not waited for (a rogue's declared hour
  // would otherwise hold the drain barrier after it was deleted or cleared).
  if (input.guards.durationRefused(pm.leaseDurationMs, input.maxLeaseDurationMs)) return undefined;
  if (pm.grantClock !== null) return pm.grantClock.holder;
  return pm.holder !== "" && pm.holder !== TAKEOVER_HOLDER ? pm.holder : undefined;
}

interface LeaseClock {
  readonly fresh: boolean;
  readonly changed: boolean;
  readonly lastChangeAt: number;
}

function clockOf(
  lease: ObservedLease,
  fp: string,
  pm: ShardMemory | undefined,
  input: ObserveShardsInput,
): LeaseClock {
  const { now } = input;
  // First observation: no memory, recreated (new uid), or reappearing after an absence (uid null).
  const fresh = pm === undefined || pm.leaseUid !== lease.metadata.uid;
  const changed = fresh || pm.fingerprint !== fp;
  const observedAt = changed || input.blind ? now : pm.lastChangeAt;
  return { fresh, changed, lastChangeAt: input.guards.lastRenewalAt(observedAt, lease, now, input.wallMs) };
}

function observeLease(
  lease: ObservedLease,
  pm: ShardMemory | undefined,
  hint: StatusShardHint | undefined,
  input: ObserveShardsInput,
): ShardObservation {
  const { now, guards } = input;
  const holder = leaseHolder(lease.spec);
  const realHolder = !isLeaseFree(lease.spec);
  const durationMs = leaseDurationMs(lease.spec, input.defaultLeaseDurationMs);
  const fp = guards.renewalFingerprint(lease);
  const { fresh, changed, lastChangeAt } = clockOf(lease, fp, pm, input);
  // The memory of the same Lease (undefined on a first observation).
  const same = fresh ? undefined : pm;
  const suspect =
    same === undefined
      ? realHolder && hint?.state === "Expired" && hint.holderIdentity === holder
      : !changed && same.suspect;
  const parsed = annotationsOf(lease);

  // The grant: the holder the status gave this shard's slots to (only if it is involved at all),
  // else the last incarnation we saw running.
  const statusGrant = hint?.involved ? hint.holderIdentity : undefined;
  const granted = statusGrant ?? lastIncarnation(pm, input);
  const otherHolder = granted !== undefined && holder !== granted;
  const grantClock = grantClockOf(
    granted,
    holder,
    lease.spec?.renewTime ?? "",
    lastChangeAt,
    durationMs,
    pm,
    input,
  );
  // The granted incarnation fences by the duration it declared, not by what its successor (or a
  // rogue re-creating the Lease with an hour) declares now.
  const waitMs = grantClock?.durationMs ?? durationMs;
  const releasedByGrant =
    holder === "" &&
    granted !== undefined &&
    lease.metadata.annotations?.[ANNOTATION_RELEASED_BY] === granted;
  const grantStopped = guards.grantStopped({
    otherHolder,
    holder,
    takenOver: holder === TAKEOVER_HOLDER,
    releasedByGrant,
    wasDead: pm?.state === "Dead",
    waitedOut: grantClock !== null && now - grantClock.renewedAt >= waitMs,
  });
  const refused = realHolder && guards.durationRefused(durationMs, input.maxLeaseDurationMs);

  let state: ShardState;
  let deadSince: number | null = null;
  let takeoverDue = false;
  let deleteDue = false;
  let deadline: number | undefined;
  if (!realHolder && grantStopped) {
    // Released by its incarnation, taken over by us, or cleared long enough ago: nobody runs it.
    state = "Dead";
    deadSince = same?.deadSince ?? now;
    deleteDue = now - deadSince >= input.orphanAfterMs;
    if (!deleteDue) deadline = deadSince + input.orphanAfterMs;
  } else if (!realHolder) {
    // Cleared without the granted holder's release marker: wait it out like an expiry.
    state = "Expired";
    deadline = grantClock!.renewedAt + waitMs;
  } else if (now - lastChangeAt >= durationMs) {
    state = "Expired";
    takeoverDue = true;
  } else if (!grantStopped) {
    // Another incarnation holds the Lease; the granted one may still run: keep its slots, add none.
    state = "Expired";
    deadline = Math.min(lastChangeAt + durationMs, grantClock!.renewedAt + waitMs);
  } else {
    state = suspect || refused ? "Expired" : "Ready";
    deadline = lastChangeAt + durationMs;
  }
  const incarnationFenced = otherHolder && grantStopped;
  // Only a status grant has slots to release or commit (fenceStoppedGrants).
  const previousGrantFenced = incarnationFenced && statusGrant !== undefined;
  const grantHolder =
    incarnationFenced || granted === undefined ? (realHolder ? holder : undefined) : granted;
  const rawAck = ackedGeneration(parsed, input.slotMapUid);
  const memory: ShardMemory = {
    leaseUid: lease.metadata.uid,
    fingerprint: fp,
    holder,
    lastChangeAt,
    leaseDurationMs: durationMs,
    grantClock: incarnationFenced ? null : grantClock,
    // A renewal, or an ack written since our first observation, shows a live writer: its acks are current.
    confirmed:
      same !== undefined &&
      !input.blind &&
      (same.confirmed || changed || ackedGeneration(parsed, input.slotMapUid) !== same.lastAck),
    lastAck: ackedGeneration(parsed, input.slotMapUid),
    deadSince,
    suspect: suspect && state === "Expired",
    state,
  };
  return {
    name: lease.metadata.name,
    state,
    lease,
    holder,
    realHolder,
    grantHolder,
    previousGrantFenced,
    ackedGeneration: guards.countedAck({
      rawAck,
      anyUidAck: parsed.observedGeneration ?? 0,
      grantHolder,
      holder,
      statusGeneration: input.statusGeneration,
    }),
    rawAck,
    refusedGeneration: refusedGeneration(parsed, input.slotMapUid),
    leaseWeight: parsed.weight,
    annotationErrors: parsed.errors,
    refusedDurationMs: refused ? durationMs : undefined,
    takeoverDue,
    deleteDue,
    deadline,
    previousState: pm?.state,
    memory,
  };
}

function observeAbsent(
  name: string,
  pm: ShardMemory | undefined,
  hint: StatusShardHint | undefined,
  input: ObserveShardsInput,
): ShardObservation {
  const { now } = input;
  const durationMs = pm?.leaseDurationMs ?? input.defaultLeaseDurationMs;
  // Absence is "not renewing": its clock starts when the absence is first observed. A shard already
  // judged Dead (by us, or by the leader that wrote the status) stays Dead: it was fenced.
  const wasDead = pm !== undefined ? pm.state === "Dead" : hint?.state === "Dead";
  const lastChangeAt = pm !== undefined && pm.leaseUid === null && !input.blind ? pm.lastChangeAt : now;
  let state: ShardState;
  let deadSince: number | null = null;
  let deadline: number | undefined;
  if (wasDead || now - lastChangeAt >= durationMs) {
    state = "Dead";
    deadSince = pm?.deadSince ?? now;
  } else {
    state = "Expired";
    deadline = lastChangeAt + durationMs;
  }
  const granted = hint?.involved ? hint.holderIdentity : lastIncarnation(pm, input);
  return {
    name,
    state,
    lease: undefined,
    holder: "",
    realHolder: false,
    grantHolder: state === "Dead" ? undefined : granted,
    previousGrantFenced: false,
    ackedGeneration: 0,
    rawAck: 0,
    refusedGeneration: 0,
    leaseWeight: 1,
    annotationErrors: [],
    refusedDurationMs: undefined,
    takeoverDue: false,
    deleteDue: false,
    deadline,
    previousState: pm?.state,
    memory: {
      leaseUid: null,
      fingerprint: null,
      holder: pm?.holder ?? "",
      lastChangeAt,
      leaseDurationMs: durationMs,
      grantClock:
        state === "Dead" ? null : grantClockOf(granted, "", "", lastChangeAt, durationMs, pm, input),
      confirmed: false,
      lastAck: 0,
      deadSince,
      suspect: false,
      state,
    },
  };
}

/**
 * Judges every shard: each observed Lease, and each shard the status involves (owner or migration
 * party) that has no Lease. Shards without a Lease that the status does not involve are left out
 * (nothing to wait for). Returns observations sorted by name.
 */
export function observeShards(input: ObserveShardsInput): ShardObservation[] {
  const out: ShardObservation[] = [];
  const seen = new Set<string>();
  for (const lease of input.leases) {
    const name = lease.metadata.name;
    seen.add(name);
    out.push(observeLease(lease, input.previous[name], input.statusShards.get(name), input));
  }
  for (const [name, hint] of input.statusShards) {
    if (seen.has(name) || !hint.involved) continue;
    seen.add(name);
    out.push(observeAbsent(name, input.previous[name], hint, input));
  }
  // A Lease that vanished while its incarnation may still run is waited out too, involved or not.
  for (const [name, pm] of Object.entries(input.previous)) {
    if (seen.has(name) || lastIncarnation(pm, input) === undefined) continue;
    out.push(observeAbsent(name, pm, undefined, input));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
