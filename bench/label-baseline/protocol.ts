/**
 * The label-based sharding protocol of timebertt/kubernetes-controller-sharding, re-implemented
 * as the benchmark's baseline (pure parts: names, hash ring, shard states, hash keys).
 *
 * Protocol as documented there (and as its sharder, shardlease controller, webhook and shard
 * library implement it):
 * - every shard holds a Lease labelled `alpha.sharding.timebertt.dev/controllerring: <ring>`,
 *   named after the shard and held with the shard name as holderIdentity;
 * - shard states from the Lease: ready (renewed within leaseDuration) → expired → uncertain
 *   (expired for another leaseDuration; the sharder acquires the Lease) → dead (released, or
 *   held by the sharder) → orphaned (dead for a minute; deleted). ready, expired and uncertain
 *   shards are "available" and take part in the ring;
 * - a consistent-hash ring: each available shard contributes 100 tokens `xxh64("<shard><i>")`
 *   (`node + strconv.Itoa(i)` since upstream commit 418e85d, #38; earlier `"%s-%d"`);
 *   an object goes to the shard of the first token at or after `xxh64(key)`, wrapping around;
 * - key `group/kind/namespace/name` of the object, or of its controller owner for controlled
 *   resources (no controller: not sharded);
 * - every object carries `shard.alpha.sharding.timebertt.dev/<ring>: <shard>`, set at admission
 *   by a mutating webhook for objects without it;
 * - moving an object off an available shard: the sharder sets `drain.…/<ring>: "true"`; the shard
 *   stops, removes both labels (its ack), and the webhook assigns the new shard in that same
 *   request. Controlled objects, and objects of unavailable shards, are moved directly: the sharder
 *   removes the labels and the webhook assigns them in that request.
 */
import { xxh64 } from "../../src/slots/index.js";

/** Label on every shard Lease: the ring name. */
export const LABEL_CONTROLLER_RING = "alpha.sharding.timebertt.dev/controllerring";
/** Label the shardlease controller maintains on each shard Lease: its state. */
export const LABEL_STATE = "alpha.sharding.timebertt.dev/state";
/** holderIdentity the sharder writes when it acquires an uncertain shard Lease. */
export const IDENTITY_SHARD_LEASE_CONTROLLER = "shardlease-controller";

/** The shard label of a ring: its value is the shard an object is assigned to. */
export function labelShard(ring: string): string {
  return `shard.alpha.sharding.timebertt.dev/${ring}`;
}

/** The drain label of a ring: `"true"` asks the current shard to let go of the object. */
export function labelDrain(ring: string): string {
  return `drain.alpha.sharding.timebertt.dev/${ring}`;
}

/** Virtual nodes per shard on the ring (timebertt's `DefaultTokensPerNode`). */
export const TOKENS_PER_NODE = 100;

/** A consistent-hash ring of shard names, immutable once built. */
export class HashRing {
  private readonly tokens: BigUint64Array;
  private readonly owners: string[];

  constructor(nodes: Iterable<string>, tokensPerNode = TOKENS_PER_NODE) {
    const pairs: Array<[bigint, string]> = [];
    for (const node of new Set(nodes)) {
      for (let i = 0; i < tokensPerNode; i++) pairs.push([xxh64(`${node}${i}`), node]);
    }
    // Same order as a sort of the token values; on a (practically impossible) collision the
    // later node wins the token, like the map in the Go implementation.
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.tokens = new BigUint64Array(pairs.map((p) => p[0]));
    this.owners = pairs.map((p) => p[1]);
  }

  /** Whether the ring has no nodes. */
  get empty(): boolean {
    return this.tokens.length === 0;
  }

  /** The shard for a key, or "" when the ring is empty. */
  hash(key: string): string {
    const n = this.tokens.length;
    if (n === 0) return "";
    const h = xxh64(key);
    // First token >= h (lower bound), wrapping to the first token.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.tokens[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo]!;
  }
}

/** Shard state computed from a Lease (timebertt `leases.ShardState`). */
export type ShardState = "ready" | "expired" | "uncertain" | "dead" | "orphaned" | "unknown";

/** Whether a state takes part in the ring. */
export function isAvailable(state: ShardState): boolean {
  return state === "ready" || state === "expired" || state === "uncertain";
}

/** The fields of a Lease the states are computed from. */
export interface LeaseLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number | null;
    acquireTime?: string | null;
    renewTime?: string | null;
  };
}

/** Durations until the next state changes, ms (may be negative: already passed). */
export interface LeaseTimes {
  leaseDurationMs: number;
  toExpiredMs: number;
  toUncertainMs: number;
  toOrphanedMs: number;
}

const DEFAULT_LEASE_DURATION_MS = 15_000;
const LEASE_TTL_MS = 60_000;

/** timebertt `leases.ToTimes`: expiry from renewTime + leaseDurationSeconds, on the wall clock. */
export function leaseTimes(lease: LeaseLike, nowMs: number): LeaseTimes {
  const spec = lease.spec ?? {};
  let expiration: number;
  let leaseDurationMs: number;
  const renew = spec.renewTime ? Date.parse(spec.renewTime) : Number.NaN;
  if (!spec.acquireTime || Number.isNaN(renew) || spec.leaseDurationSeconds == null) {
    expiration = nowMs;
    leaseDurationMs = DEFAULT_LEASE_DURATION_MS;
  } else {
    leaseDurationMs = spec.leaseDurationSeconds * 1000;
    expiration = renew + leaseDurationMs;
  }
  const toExpiredMs = expiration - nowMs;
  return {
    leaseDurationMs,
    toExpiredMs,
    toUncertainMs: toExpiredMs + leaseDurationMs,
    toOrphanedMs: toExpiredMs + LEASE_TTL_MS,
  };
}

/** timebertt `leases.ToState`. */
export function leaseState(lease: LeaseLike, nowMs: number): ShardState {
  const t = leaseTimes(lease, nowMs);
  const holder = lease.spec?.holderIdentity;
  if (!holder || holder !== lease.metadata?.name) return t.toOrphanedMs <= 0 ? "orphaned" : "dead";
  if (t.toUncertainMs <= 0) return "uncertain";
  if (t.toExpiredMs <= 0) return "expired";
  return "ready";
}

/** An object's metadata as far as the hash key needs it. */
export interface ObjectMetaLike {
  name?: string;
  namespace?: string;
  ownerReferences?: Array<{ apiVersion?: string; kind?: string; name?: string; controller?: boolean }>;
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

/** Key of the object itself: `group/kind/namespace/name`. */
export function keyForObject(group: string, kind: string, meta: ObjectMetaLike): string {
  if (!meta.name) throw new Error(`${kind} without metadata.name cannot be sharded`);
  return `${group}/${kind}/${meta.namespace ?? ""}/${meta.name}`;
}

/** Key of the object's controller owner, or "" when it has none (not sharded). */
export function keyForController(meta: ObjectMetaLike): string {
  const ref = meta.ownerReferences?.find((r) => r.controller === true);
  if (!ref) return "";
  if (!ref.apiVersion || !ref.kind || !ref.name) {
    throw new Error(`controller reference of ${meta.namespace}/${meta.name} lacks apiVersion, kind or name`);
  }
  return `${groupOf(ref.apiVersion)}/${ref.kind}/${meta.namespace ?? ""}/${ref.name}`;
}

/** What the sharder does with one object during a resync. */
export type ResyncAction =
  /** Already with its ring shard (or the ring is empty, or the object is not sharded). */
  | "keep"
  /** Set the drain label: the current (available) shard must let go first. */
  | "drain"
  /** Drain label already set: wait for the shard's ack. */
  | "draining"
  /** Remove shard and drain labels; the webhook assigns the ring shard in the same request. */
  | "move";

/**
 * The sharder's decision for one object (timebertt sharder controller): root objects on an
 * available shard are drained; controlled objects, unassigned objects and objects of unavailable
 * shards are moved at once (nobody can still be reconciling them, or their owner decides).
 *
 * @param desired ring shard for the object's key ("" when the ring is empty or not sharded)
 * @param labels the object's labels
 */
export function resyncAction(opts: {
  ring: string;
  desired: string;
  labels: Readonly<Record<string, string>> | undefined;
  controlled: boolean;
  stateOf: (shard: string) => ShardState | undefined;
}): ResyncAction {
  const current = opts.labels?.[labelShard(opts.ring)] ?? "";
  if (opts.desired === "" || opts.desired === current) return "keep";
  const state = current === "" ? undefined : opts.stateOf(current);
  if (state !== undefined && isAvailable(state) && !opts.controlled) {
    return opts.labels?.[labelDrain(opts.ring)] === "true" ? "draining" : "drain";
  }
  return "move";
}

/** What a shard's reconciler does with an object from its cache. */
export type ShardAction = "ignore" | "ackDrain" | "reconcile";

/**
 * The shard side (timebertt's sharded reconciler wrapper): an object not labelled for this shard
 * is ignored (it is moving or moved); a drain label is acknowledged by removing both labels
 * instead of reconciling; anything else is reconciled.
 */
export function shardAction(
  ring: string,
  shard: string,
  labels: Readonly<Record<string, string>> | undefined,
): ShardAction {
  if (labels?.[labelShard(ring)] !== shard) return "ignore";
  if (labels[labelDrain(ring)] !== undefined) return "ackDrain";
  return "reconcile";
}
