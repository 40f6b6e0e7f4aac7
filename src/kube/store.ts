import { isOlderResourceVersion } from "../api/resource-version.js";
import type { KubeObject } from "./http.js";

/**
 * An in-memory copy of one watched collection with client-go's Replace semantics (a re-list drops
 * what it did not deliver): the coordinator's SlotMaps and shard Leases, fed by a Reflector and by
 * the answers of its own writes and re-reads, and a shard member's Namespaces. Only small objects;
 * the sharded ones live in the runtime core (src/client/core/runtime.ts), which keeps only owned
 * slots.
 *
 * Writes and re-reads race with the watch stream, so an object is only replaced by a newer one:
 * resourceVersions are compared as numbers when both are decimal (they are etcd revisions on
 * every API server we know; an opaque one is always taken). A re-read only refreshes an object
 * still cached: one the watch deleted meanwhile is not brought back by a late answer.
 */

/** Whether `obj` should not replace `cached`: older, or the same version (nothing changed). */
function notNewer(obj: KubeObject, cached: KubeObject): boolean {
  const rv = obj.metadata?.resourceVersion;
  const cachedRv = cached.metadata?.resourceVersion;
  return (rv !== undefined && rv === cachedRv) || isOlderResourceVersion(rv, cachedRv);
}

/** Cache key of an object: `namespace/name`, or `name` for a cluster-scoped one. */
export function keyOf(obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ""}` : (m.name ?? "");
}

/** What a change did: the object before and after (undefined when absent; identical: no change). */
export interface CacheChange<T> {
  readonly before: T | undefined;
  readonly after: T | undefined;
}

/** A resourceVersion-monotonic map of objects by {@link keyOf}. */
export class ObjectCache<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private listing: Set<string> | undefined;

  /** Number of cached objects. */
  get size(): number {
    return this.items.size;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }

  /** Forgets everything (the watch stopped). */
  clear(): void {
    this.items.clear();
    this.listing = undefined;
  }

  /** A relist begins: objects not delivered again before {@link endList} are removed then. */
  beginList(): void {
    this.listing = new Set();
  }

  /** The relist is complete: removes what it did not deliver (deleted meanwhile) and returns those. */
  endList(): CacheChange<T>[] {
    const seen = this.listing;
    this.listing = undefined;
    if (seen === undefined) return [];
    const removed: CacheChange<T>[] = [];
    for (const [key, obj] of this.items) {
      if (!seen.has(key)) {
        this.items.delete(key);
        removed.push({ before: obj, after: undefined });
      }
    }
    return removed;
  }

  /** Stores an object from a list or a watch event, unless the cached one is newer. */
  put(obj: T): CacheChange<T> {
    const key = keyOf(obj);
    this.listing?.add(key);
    const before = this.items.get(key);
    if (before !== undefined && notNewer(obj, before)) return { before, after: before };
    this.items.set(key, obj);
    return { before, after: obj };
  }

  /** Refreshes an object from a write's answer or a re-read: only if still cached and not older. */
  refresh(obj: T): CacheChange<T> {
    const key = keyOf(obj);
    const before = this.items.get(key);
    if (before === undefined) return { before, after: undefined };
    if (notNewer(obj, before)) return { before, after: before };
    this.items.set(key, obj);
    return { before, after: obj };
  }

  /**
   * Removes an object on a DELETED event or a 404 re-read; `seen` (the deleted object) guards
   * against removing a newer instance: nothing happens when the cached one has another uid.
   */
  remove(key: string, seen?: T): CacheChange<T> {
    const before = this.items.get(key);
    if (before === undefined) return { before, after: undefined };
    const uid = seen?.metadata?.uid;
    if (uid !== undefined && before.metadata?.uid !== undefined && uid !== before.metadata.uid) {
      return { before, after: before };
    }
    this.items.delete(key);
    return { before, after: undefined };
  }
}
