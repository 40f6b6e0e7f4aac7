/**
 * Fencing tokens (issue 13, part 3): the token a shard stamps on each write to a sharded object,
 * so that an admission policy can refuse a late write of a shard that lost the slot while it was
 * frozen. Self-fencing is time-based; this is the check the API server itself makes.
 *
 * A token is `<resourceVersion>.<generation>.<uid>`: the resourceVersion of the newest
 * SlotMapShard projection (the shard's part of the SlotMap status) the shard had applied when the
 * reconcile started, zero-padded to 20 digits, then, for people reading it, that projection's
 * assignment generation and the SlotMap's uid. Fixed width, so the plain string order the policy
 * compares with (CEL `>=`) is the order of resourceVersions.
 *
 * Why it is ordered: a slot leaves a shard only in a status written after every version in which
 * that shard owned it, and its next owner starts only once it has applied its projection of that
 * status, written after it. Every
 * write gets a greater resourceVersion (etcd's revision, cluster-wide), so this holds across a
 * status restored from a backup and across a re-created SlotMap, where generations repeat: the
 * generation alone is not enough (the simulator found a restored status with a deleted Lease that
 * granted generation 2 twice). Kubernetes documents resourceVersions as opaque; the API server
 * with etcd, the only one slotmap supports, issues decimal revisions (KEP-5504 makes them
 * comparable). A non-decimal resourceVersion yields the all-zero prefix: tokens then compare
 * equal, the policy lets every write through, and fencing is off rather than wrong.
 */

import { isDecimalResourceVersion } from "./resource-version.js";

/** The annotation that carries a fencing token on a sharded object. */
export const ANNOTATION_FENCE = "slotmap.dev/fence";

const RV_DIGITS = 20;
const TOKEN = /^(\d{20})\.(\d+)\.(.+)$/;

/** What a token is made of. */
export interface FenceParts {
  /** metadata.resourceVersion of the projection applied (decimal, at most 20 digits). */
  readonly resourceVersion: string;
  /** Its status.assignmentGeneration. */
  readonly generation: number;
  /** metadata.uid of the SlotMap. */
  readonly uid: string;
}

/** Formats a fencing token; throws a RangeError naming the part that does not fit. */
export function formatFence(parts: FenceParts): string {
  const { resourceVersion, generation, uid } = parts;
  const rv =
    isDecimalResourceVersion(resourceVersion) && resourceVersion.length <= RV_DIGITS
      ? resourceVersion.padStart(RV_DIGITS, "0")
      : "0".repeat(RV_DIGITS);
  if (!Number.isSafeInteger(generation) || generation < 0)
    throw new RangeError(`fence generation ${generation}: not a non-negative safe integer`);
  if (uid === "") throw new RangeError("fence uid: empty");
  return `${rv}.${generation}.${uid}`;
}

/** Parses a token; undefined when it is not one. */
export function parseFence(token: string): FenceParts | undefined {
  const m = TOKEN.exec(token);
  if (m === null) return undefined;
  return { resourceVersion: m[1]!.replace(/^0+(?=\d)/, ""), generation: Number(m[2]), uid: m[3]! };
}

/**
 * A copy of `obj` whose `slotmap.dev/fence` annotation is `token` (the object itself is not
 * changed). For a merge patch, stamp the patch body: an annotation the patch leaves out keeps the
 * stored token and the policy has nothing to compare.
 */
export function withFence<T extends { metadata?: { annotations?: Record<string, string> } }>(
  obj: T,
  token: string,
): T {
  const metadata = obj.metadata ?? {};
  return {
    ...obj,
    metadata: { ...metadata, annotations: { ...(metadata.annotations ?? {}), [ANNOTATION_FENCE]: token } },
  };
}
