/**
 * The shard Lease (`coordination.k8s.io/v1`) conventions: its label and annotations, and a parser
 * for the annotations that never throws. See DESIGN "The shard Lease".
 *
 * A malformed annotation is reported as a {@link FieldError} naming
 * `metadata.annotations["slotmap.dev/..."]` and the value, and falls back to the value that keeps
 * the protocol safe and the table stable:
 * - observed-generation: `undefined` (no ack). The coordinator then waits for this shard as if it
 *   had not applied anything; a handoff from it times out and is resolved by Lease-expiry fencing.
 *   Treating junk as an ack could hand slots to another shard while this one still runs them.
 * - slotmap-uid: `undefined`, so no generation is credited to this SlotMap instance.
 * - weight: 1 (the default), i.e. as if the annotation were absent. 0 would drain the shard and a
 *   large value would flood it; either would move slots because of a typo. The error tells the
 *   operator the weight is being ignored.
 */
import { type FieldError, formatFieldPath } from "./errors.js";
import { LIMITS } from "./v1alpha1.js";

/** Label on every shard Lease: the name of its SlotMap. */
export const LABEL_SLOTMAP = "slotmap.dev/slotmap";
/** Annotation: the assignment generation this shard has fully applied. */
export const ANNOTATION_OBSERVED_GENERATION = "slotmap.dev/observed-generation";
/** Annotation: UID of the SlotMap instance the observed generation refers to. */
export const ANNOTATION_SLOTMAP_UID = "slotmap.dev/slotmap-uid";
/**
 * Annotation a shard writes together with a graceful release (holderIdentity cleared): the
 * holderIdentity it released. The coordinator treats a cleared Lease as released, and its slots as
 * free at once, only when this names the incarnation the slots were granted to; a holder cleared by
 * hand (no marker) is waited out for a full lease duration like an expiry (DESIGN "Trust").
 */
export const ANNOTATION_RELEASED_BY = "slotmap.dev/released-by";
/**
 * Annotation a shard writes while it refuses the status of its SlotMap (the uid of its ack): a
 * table at this generation, or below, written after one it applied (a restore). The coordinator
 * resets above it (docs/design-decisions.md "Regressed status").
 */
export const ANNOTATION_REFUSED_GENERATION = "slotmap.dev/refused-generation";
/** Optional annotation: the shard's weight (default 1; 0 drains the shard). */
export const ANNOTATION_WEIGHT = "slotmap.dev/weight";
/** Weight of a shard without a valid weight annotation or `spec.weights` entry. */
export const DEFAULT_WEIGHT = 1;

/** What a shard Lease says through its annotations. */
export interface ShardLeaseAnnotations {
  /** The acknowledged assignment generation, or undefined when absent or malformed (no ack). */
  observedGeneration: number | undefined;
  /** The SlotMap UID the ack refers to, or undefined when absent or malformed. */
  slotmapUid: string | undefined;
  /** The generation whose table the shard refuses (same uid as the ack), or undefined. */
  refusedGeneration: number | undefined;
  /** The Lease's weight: {@link DEFAULT_WEIGHT} when absent or malformed. */
  weight: number;
  /** One error per malformed annotation; empty when all are fine or absent. */
  errors: FieldError[];
}

/** Field path of a Lease annotation as kubectl names it: `metadata.annotations["slotmap.dev/weight"]`. */
export function annotationField(name: string): string {
  return formatFieldPath(["metadata", "annotations", name]);
}

// Canonical decimal only: no sign, no leading zeros, no spaces, no exponent.
const DECIMAL = /^(0|[1-9][0-9]*)$/;

function parseDecimal(raw: unknown, max: number): number | undefined {
  if (typeof raw !== "string" || !DECIMAL.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n <= max ? n : undefined;
}

/** Parses the slotmap annotations of a shard Lease. Never throws; see the module doc for fallbacks. */
export function parseShardLeaseAnnotations(
  annotations: Readonly<Record<string, string>> | undefined | null,
): ShardLeaseAnnotations {
  const result: ShardLeaseAnnotations = {
    observedGeneration: undefined,
    slotmapUid: undefined,
    refusedGeneration: undefined,
    weight: DEFAULT_WEIGHT,
    errors: [],
  };
  if (annotations === undefined || annotations === null || typeof annotations !== "object") return result;
  const get = (name: string): unknown => (Object.hasOwn(annotations, name) ? annotations[name] : undefined);

  // A generation annotation: undefined when absent; when malformed, an error and undefined.
  const generation = (name: string, consequence: string): number | undefined => {
    const raw = get(name);
    if (raw === undefined) return undefined;
    const n = parseDecimal(raw, Number.MAX_SAFE_INTEGER);
    if (n === undefined) {
      result.errors.push({
        field: annotationField(name),
        value: raw,
        message: `must be a non-negative integer (at most ${Number.MAX_SAFE_INTEGER}) without sign or leading zeros; ${consequence}`,
      });
    }
    return n;
  };
  result.observedGeneration = generation(ANNOTATION_OBSERVED_GENERATION, "treated as no acknowledgement");
  result.refusedGeneration = generation(ANNOTATION_REFUSED_GENERATION, "ignored");

  const uid = get(ANNOTATION_SLOTMAP_UID);
  if (uid !== undefined) {
    if (typeof uid === "string" && uid.length > 0 && uid.length <= 128 && uid.trim() === uid) {
      result.slotmapUid = uid;
    } else {
      result.errors.push({
        field: annotationField(ANNOTATION_SLOTMAP_UID),
        value: uid,
        message:
          "must be the metadata.uid of the SlotMap (non-empty, at most 128 characters, no surrounding spaces); treated as no acknowledgement",
      });
    }
  }

  const weight = get(ANNOTATION_WEIGHT);
  if (weight !== undefined) {
    const w = parseDecimal(weight, LIMITS.maxWeight);
    if (w === undefined) {
      result.errors.push({
        field: annotationField(ANNOTATION_WEIGHT),
        value: weight,
        message: `must be an integer from 0 to ${LIMITS.maxWeight} (0 drains the shard); ignored, the shard keeps the default weight ${DEFAULT_WEIGHT}`,
      });
    } else {
      result.weight = w;
    }
  }
  return result;
}

/**
 * The generation a shard has acknowledged for one SlotMap instance: its observed generation when
 * the Lease names this SlotMap's UID, else 0 (a recreated SlotMap restarts at 1, so an ack for the
 * old instance must not count). This is `ShardInfo.ackedGeneration` of the planner.
 */
export function ackedGeneration(
  parsed: Pick<ShardLeaseAnnotations, "observedGeneration" | "slotmapUid">,
  slotmapUid: string | undefined,
): number {
  if (slotmapUid === undefined || parsed.slotmapUid !== slotmapUid) return 0;
  return parsed.observedGeneration ?? 0;
}

/**
 * The generation a shard refuses for one SlotMap instance (it had applied another table at that
 * generation: a status restored from a backup), else 0. Like {@link ackedGeneration}, a refusal of
 * another instance does not count.
 */
export function refusedGeneration(
  parsed: Pick<ShardLeaseAnnotations, "refusedGeneration" | "slotmapUid">,
  slotmapUid: string | undefined,
): number {
  if (slotmapUid === undefined || parsed.slotmapUid !== slotmapUid) return 0;
  return parsed.refusedGeneration ?? 0;
}

/**
 * The weight the planner uses for a shard: `spec.weights[shardName]` when set (it survives pod
 * restarts, which is how `kubectl slotmap drain` declares a drain), else the Lease's weight.
 */
export function effectiveWeight(
  spec: { readonly weights?: Readonly<Record<string, number>> | undefined } | undefined,
  shardName: string,
  leaseWeight: number,
): number {
  const weights = spec?.weights;
  if (weights !== undefined && Object.hasOwn(weights, shardName)) {
    const w = weights[shardName];
    if (w !== undefined) return w;
  }
  return leaseWeight;
}

/**
 * metav1.MicroTime, the wire format of Lease times: RFC 3339 in UTC with exactly 6 fractional
 * digits (the API server rejects a millisecond timestamp). Takes a Date or ms since the epoch.
 */
export function microTime(at: Date | number = new Date()): string {
  const d = typeof at === "number" ? new Date(Math.floor(at)) : at;
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * A `coordination.k8s.io/v1` Lease as the shards and the leader election read and write it, as
 * plain JSON. Times are RFC 3339 strings with microseconds ({@link microTime}). Other metadata and
 * spec fields pass through untouched, so a PUT built from an observed Lease keeps them.
 */
export interface LeaseObject {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string | undefined;
    uid?: string | undefined;
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    [field: string]: unknown;
  };
  spec?: LeaseSpecFields | undefined;
}

/** `LeaseSpec` of coordination.k8s.io/v1 (all optional on the wire). */
export interface LeaseSpecFields {
  holderIdentity?: string | null | undefined;
  leaseDurationSeconds?: number | null | undefined;
  acquireTime?: string | null | undefined;
  renewTime?: string | null | undefined;
  leaseTransitions?: number | null | undefined;
  [field: string]: unknown;
}

/**
 * `spec.holderIdentity` the coordinator writes into an Expired Lease it takes over. Once observed,
 * the Lease is Dead: its former holder has been fenced by expiry and can no longer renew.
 * A shard process must treat a Lease held by this marker like a released one (free to acquire).
 */
export const TAKEOVER_HOLDER = "slotmap.dev/coordinator-takeover";

/** The Lease's holder, "" when it has none. */
export function leaseHolder(spec: LeaseHolderFields | null | undefined): string {
  return spec?.holderIdentity ?? "";
}

/**
 * Whether a Lease may be acquired at once: released (no holder) or taken over by the coordinator
 * (its holder was fenced by expiry before the takeover, so nobody can still renew it).
 */
export function isLeaseFree(spec: LeaseHolderFields | null | undefined): boolean {
  const holder = leaseHolder(spec);
  return holder === "" || holder === TAKEOVER_HOLDER;
}

/** The Lease spec fields that say who holds it and whether it is renewed. */
export interface LeaseHolderFields {
  readonly holderIdentity?: string | null | undefined;
  readonly renewTime?: string | null | undefined;
  readonly leaseDurationSeconds?: number | null | undefined;
}

/**
 * What changes when a holder acquires or renews a Lease: holder and renewTime, and nothing else.
 * resourceVersion is left out on purpose: a label or annotation written by a person or a tool is
 * not a renewal, and must not keep a dead shard alive.
 */
export function leaseFingerprint(spec: LeaseHolderFields | null | undefined): string {
  return JSON.stringify([spec?.holderIdentity ?? "", spec?.renewTime ?? ""]);
}

/**
 * `spec.leaseDurationSeconds` in ms, or `fallbackMs` when absent or not a positive finite number
 * (the API server requires a positive duration; junk falls back rather than expiring at once).
 */
export function leaseDurationMs(spec: LeaseHolderFields | null | undefined, fallbackMs: number): number {
  const s = spec?.leaseDurationSeconds;
  return typeof s === "number" && Number.isFinite(s) && s > 0 ? s * 1000 : fallbackMs;
}

/** A Lease timing that breaks the tenure rule: which one, and why. */
export interface LeaseTimingProblem {
  readonly timing: "renewDeadline" | "retryPeriod";
  readonly value: number;
  /** Why, naming the other timing as `names` spells it. */
  readonly message: string;
}

/**
 * The tenure rule of every Lease holder here (shards and the coordinator's leader election, as in
 * client-go): renewDeadline < leaseDuration (the difference is the safety margin before anyone may
 * take over), and retryPeriod < renewDeadline (else one failed renewal ends the tenure). One rule;
 * each caller reports the problems its own way (flag errors, zod issues).
 */
export function leaseTimingProblems(
  t: { readonly leaseDuration: number; readonly renewDeadline: number; readonly retryPeriod: number },
  names: { readonly leaseDuration: string; readonly renewDeadline: string },
): LeaseTimingProblem[] {
  const out: LeaseTimingProblem[] = [];
  if (!(t.renewDeadline < t.leaseDuration)) {
    out.push({
      timing: "renewDeadline",
      value: t.renewDeadline,
      message: `must be less than ${names.leaseDuration} (${t.leaseDuration}): the difference is the safety margin`,
    });
  }
  if (!(t.retryPeriod < t.renewDeadline)) {
    out.push({
      timing: "retryPeriod",
      value: t.retryPeriod,
      message: `must be less than ${names.renewDeadline} (${t.renewDeadline}), or a single failed renewal ends the tenure`,
    });
  }
  return out;
}
