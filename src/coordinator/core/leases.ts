/**
 * The shard Lease state machine, judged by the coordinator's own observation clock (DESIGN "The
 * shard Lease"): never by the renewTime a shard writes, whose clock may be skewed.
 *
 *   Ready ──(no change seen for leaseDuration)──▶ Expired ──(takeover observed)──▶ Dead
 *   Dead ──(orphanAfterMs)──▶ Lease deleted
 *   any ──(holder cleared: graceful release)──▶ Dead at once
 *   Lease absent ──▶ Expired until leaseDuration has passed, then Dead
 *
 * A "change" is any change of holderIdentity, renewTime or resourceVersion. A Lease first observed
 * (new leader, reappeared, recreated with a new uid) starts its clock at that observation, which
 * can only delay a takeover, never hasten it.
 */
import type { FieldError } from "../../api/errors.js";
import { ackedGeneration, parseShardLeaseAnnotations } from "../../api/lease.js";
import type { ShardState } from "../../slots/types.js";
import { type CoordinatorMutation, type ObservedLease, type ShardMemory, TAKEOVER_HOLDER } from "./types.js";

/** What the status says about a shard, used when a Lease is first observed or absent. */
export interface StatusShardHint {
  readonly state: ShardState | undefined;
  readonly holderIdentity: string | undefined;
  /** Owns slots or takes part in a migration in the status table: its absence must be waited out. */
  readonly involved: boolean;
}

/** The coordinator's view of one shard in this step. */
export interface ShardObservation {
  readonly name: string;
  readonly state: ShardState;
  /** The observed Lease; undefined when the shard has no Lease (deleted, or not yet created). */
  readonly lease: ObservedLease | undefined;
  /** `spec.holderIdentity` ("" when empty or absent). */
  readonly holder: string;
  /** A process identity: neither empty nor {@link TAKEOVER_HOLDER}. */
  readonly realHolder: boolean;
  /** Ack for this SlotMap instance (0 without a Lease, a matching uid, or a valid annotation). */
  readonly ackedGeneration: number;
  /** Weight from the Lease annotation (default 1). */
  readonly leaseWeight: number;
  readonly annotationErrors: readonly FieldError[];
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
  readonly now: number;
  readonly defaultLeaseDurationMs: number;
  readonly orphanAfterMs: number;
  /** Simulator-only protocol bugs (see {@link CoordinatorMutation}); absent in production. */
  readonly mutations?: ReadonlySet<CoordinatorMutation> | undefined;
  /** Wall clock of the step (ms since the epoch); only read by the `trustRenewTime` mutation. */
  readonly wallMs?: number | undefined;
}

function leaseDurationMs(lease: ObservedLease, fallback: number): number {
  const s = lease.spec?.leaseDurationSeconds;
  // The API server requires a positive duration; anything else falls back rather than expiring at once.
  return typeof s === "number" && Number.isFinite(s) && s > 0 ? s * 1000 : fallback;
}

function fingerprint(lease: ObservedLease): string {
  return JSON.stringify([
    lease.spec?.holderIdentity ?? "",
    lease.spec?.renewTime ?? "",
    lease.metadata.resourceVersion,
  ]);
}

function observeLease(
  lease: ObservedLease,
  pm: ShardMemory | undefined,
  hint: StatusShardHint | undefined,
  input: ObserveShardsInput,
): ShardObservation {
  const { now } = input;
  const name = lease.metadata.name;
  const holder = lease.spec?.holderIdentity ?? "";
  const realHolder = holder !== "" && holder !== TAKEOVER_HOLDER;
  const durationMs = leaseDurationMs(lease, input.defaultLeaseDurationMs);
  const fp = fingerprint(lease);
  // First observation: no memory, recreated (new uid), or reappearing after an absence (uid null).
  const fresh = pm === undefined || pm.leaseUid !== lease.metadata.uid;
  const changed = fresh || pm.fingerprint !== fp;
  let lastChangeAt = changed ? now : pm.lastChangeAt;
  if (input.mutations?.has("trustRenewTime") && input.wallMs !== undefined) {
    // Mutation: trusts the shard's (skewed) wall clock instead of our own observation clock.
    const renewed = Date.parse(lease.spec?.renewTime ?? "");
    if (Number.isFinite(renewed)) lastChangeAt = now - (input.wallMs - renewed);
  }
  const suspect = fresh
    ? realHolder && hint?.state === "Expired" && hint.holderIdentity === holder
    : !changed && pm.suspect;

  const parsed = parseShardLeaseAnnotations(lease.metadata.annotations);
  let state: ShardState;
  let deadSince: number | null = null;
  let takeoverDue = false;
  let deleteDue = false;
  let deadline: number | undefined;
  if (!realHolder) {
    // Released (holder cleared) or taken over by us: nobody can renew it, its process is gone.
    state = "Dead";
    deadSince = !fresh && pm.deadSince !== null ? pm.deadSince : now;
    deleteDue = now - deadSince >= input.orphanAfterMs;
    if (!deleteDue) deadline = deadSince + input.orphanAfterMs;
  } else if (now - lastChangeAt >= durationMs) {
    state = "Expired";
    takeoverDue = true;
  } else {
    state = suspect ? "Expired" : "Ready";
    deadline = lastChangeAt + durationMs;
  }
  const memory: ShardMemory = {
    leaseUid: lease.metadata.uid,
    fingerprint: fp,
    lastChangeAt,
    leaseDurationMs: durationMs,
    deadSince,
    suspect: suspect && state === "Expired",
    state,
  };
  return {
    name,
    state,
    lease,
    holder,
    realHolder,
    ackedGeneration: input.mutations?.has("skipUidCheck")
      ? (parsed.observedGeneration ?? 0)
      : ackedGeneration(parsed, input.slotMapUid),
    leaseWeight: parsed.weight,
    annotationErrors: parsed.errors,
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
  const lastChangeAt = pm !== undefined && pm.leaseUid === null ? pm.lastChangeAt : now;
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
  return {
    name,
    state,
    lease: undefined,
    holder: "",
    realHolder: false,
    ackedGeneration: 0,
    leaseWeight: 1,
    annotationErrors: [],
    takeoverDue: false,
    deleteDue: false,
    deadline,
    previousState: pm?.state,
    memory: {
      leaseUid: null,
      fingerprint: null,
      lastChangeAt,
      leaseDurationMs: durationMs,
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
    out.push(observeAbsent(name, input.previous[name], hint, input));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
