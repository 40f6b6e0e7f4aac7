/**
 * Leases of a deleted SlotMap: labelled `slotmap.dev/slotmap=<name>` for a SlotMap that no longer
 * exists. Nothing steps them (there is no SlotMap to step), so without this they stay for ever.
 * A Lease is deleted once nobody has renewed it for its duration plus `orphanAfterMs` on our own
 * clock (a released one: `orphanAfterMs` after its release), with a uid and resourceVersion
 * precondition so that a shard renewing it at that moment wins. Shards still running for the
 * deleted SlotMap keep renewing, and their Leases stay while they do. Pure: the I/O layer passes
 * the Leases and a clock, performs the deletes and calls again at `nextAt`.
 */
import { isLeaseFree, leaseDurationMs, leaseFingerprint } from "../../api/lease.js";
import type { DeleteLeaseAction, ObservedLease } from "./types.js";

/** What the sweep remembers per Lease (`namespace/name`): its fingerprint and when it last changed. */
export type OrphanMemory = Readonly<Record<string, { readonly fingerprint: string; readonly since: number }>>;

/** Input of {@link sweepOrphans}. */
export interface OrphanSweepInput {
  /** Leases labelled for SlotMaps that do not exist (the I/O layer's caches must have synced). */
  readonly leases: readonly ObservedLease[];
  readonly previous: OrphanMemory;
  /** Monotonic clock, ms. */
  readonly now: number;
  readonly orphanAfterMs: number;
  /** Duration of a Lease that declares none. */
  readonly defaultLeaseDurationMs: number;
}

/** Output of {@link sweepOrphans}. */
export interface OrphanSweep {
  readonly memory: OrphanMemory;
  readonly deletes: readonly DeleteLeaseAction[];
  /** When to sweep again (the earliest pending deadline), or undefined when nothing waits. */
  readonly nextAt: number | undefined;
}

/** Decides which orphaned Leases to delete now. */
export function sweepOrphans(input: OrphanSweepInput): OrphanSweep {
  const memory: Record<string, { fingerprint: string; since: number }> = {};
  const deletes: DeleteLeaseAction[] = [];
  let nextAt: number | undefined;
  for (const lease of input.leases) {
    const { name, namespace = "", uid, resourceVersion } = lease.metadata;
    const key = `${namespace}/${name}`;
    const fingerprint = leaseFingerprint(lease.spec);
    const seen = input.previous[key];
    const since = seen !== undefined && seen.fingerprint === fingerprint ? seen.since : input.now;
    memory[key] = { fingerprint, since };
    const wait = isLeaseFree(lease.spec)
      ? input.orphanAfterMs
      : leaseDurationMs(lease.spec, input.defaultLeaseDurationMs) + input.orphanAfterMs;
    const due = since + wait;
    if (due <= input.now) deletes.push({ type: "deleteLease", namespace, name, uid, resourceVersion });
    else nextAt = nextAt === undefined ? due : Math.min(nextAt, due);
  }
  return { memory, deletes, nextAt };
}
