/**
 * The shard runtime's object index as a sans-I/O core: which objects of owned slots are cached,
 * which root keys wait to be reconciled, deletions found by a re-list, the re-lists of gained
 * slots, the gate that holds a gained root until its controlled objects are cached, and warm
 * handoffs: the objects of slots migrating to this shard are listed and cached (never queued)
 * while the source drains them, so at the commit they are reconciled without a re-list.
 *
 * The controller (src/client/controller.ts) feeds it the reflectors' lists and watch events and
 * runs the reconciles it hands out; the fuzzing simulator feeds the same class from its own API
 * server. Nothing here does I/O, reads a clock or keeps a timer. See docs/dev/shard-core.md.
 */

import { compareResourceVersions } from "../../api/resource-version.js";
import { normalizeRanges, parseSlotRanges } from "../../slots/ranges.js";
import { SLOT_COUNT, type SlotRange } from "../../slots/types.js";
import { BySlot } from "./by-slot.js";

/** Where an object lands: its slot and the key of the root object reconciled for it. */
export interface RuntimePlace {
  readonly slot: number;
  readonly rootKey: string;
}

/** What the runtime core asks of its driver. */
export interface RuntimeHost<O> {
  /** Whether the shard owns `slot` now (the shard machine's ownership). */
  owns(slot: number): boolean;
  /**
   * Where `obj`, an object of watch `watch`, lands; undefined when it is not sharded (not
   * selected, no key). The driver logs why.
   */
  place(obj: O, watch: number): RuntimePlace | undefined;
  /** Whether `obj`'s namespace is still selected (after namespace labels changed). */
  selected(obj: O): boolean;
  /** The work queue: keys to reconcile. */
  readonly queue: { add(key: string): void; remove(key: string): void };
}

/** One watched resource of the rules: roots or controlled objects. */
export interface RuntimeWatch {
  readonly controlled: boolean;
}

/** A root key handed out to reconcile. */
export interface RuntimeWork<O> {
  readonly key: string;
  readonly slot: number;
  /** Index of the root's watch. */
  readonly watch: number;
  /** The cached root, or undefined when it was deleted (a tombstone). */
  readonly object: O | undefined;
  /** @internal The tombstone this work finishes, if any. */
  readonly tombstone: Tombstone | undefined;
}

/** Options of {@link ShardRuntime}. */
export interface RuntimeOptions {
  /**
   * Cache the objects of every slot, not only of owned and importing ones (what an unsharded
   * informer does): a gained slot is then reconciled from the cache, without a gain list, at the
   * cost of memory for every object of the watched resources.
   */
  readonly cacheAllSlots?: boolean | undefined;
}

/** Sizes, for stats and metrics. */
export interface RuntimeSizes {
  roots: number;
  controlled: number;
  tombstones: number;
  /** Gained roots held until their controlled objects are cached. */
  held: number;
}

interface Entry<O> {
  obj: O;
  rv: string | undefined;
  slot: number;
  watch: number;
}

interface ControlledEntry<O> extends Entry<O> {
  rootKey: string;
}

interface Tombstone {
  readonly slot: number;
  readonly watch: number;
}

interface WatchState {
  readonly controlled: boolean;
  /**
   * Cached ids delivered by the list in progress (Replace semantics: the cached rest were deleted).
   */
  listSeen: Set<string> | undefined;
  /** Slots gained since the last list started, still to be fetched by a gain list. */
  readonly pendingGain: Uint8Array;
  pendingAny: boolean;
  /** Deletions seen by the watch while a gain list runs: id → resourceVersion. */
  recentDeletes: Map<string, string> | undefined;
  /** Slots whose objects this watch has not listed since they were gained (or began importing). */
  readonly uncovered: Uint8Array;
}

/**
 * The slots migrating to `shard` in a status (`status.migrations[].to`): what the runtime caches
 * ahead of the commit ({@link ShardRuntime.slotsImporting}). Caching grants nothing: the shard
 * reconciles them only once the machine reports them gained.
 */
export function importingSlots(
  status: { readonly migrations: ReadonlyArray<{ readonly slots: string; readonly to: string }> },
  shard: string,
): SlotRange[] {
  return normalizeRanges(
    status.migrations.filter((m) => m.to === shard).flatMap((m) => parseSlotRanges(m.slots)),
  );
}

/** Whether resourceVersion `a` is at or after `b` (unknown order counts as newer: prefer the watch). */
function notOlder(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  const c = compareResourceVersions(a, b);
  return c === undefined || c >= 0;
}

/**
 * The objects one shard caches under one rule set, and the keys it queues. A new rule set gets a
 * new instance (call {@link ShardRuntime.clear} on the old one first).
 */
export class ShardRuntime<O> {
  readonly #host: RuntimeHost<O>;
  readonly #watches: WatchState[];
  readonly #roots = new BySlot<Entry<O>>();
  readonly #controlled = new BySlot<ControlledEntry<O>>();
  /** Root key → ids of the controlled objects whose controller it is. */
  readonly #children = new Map<string, Set<string>>();
  readonly #tombstones = new Map<string, Tombstone>();
  /** Root keys waiting for their slot's controlled objects (not queued yet). */
  readonly #held = new Set<string>();
  /** Slots migrating to this shard: their objects are cached, not queued, until owned. */
  readonly #importing = new Uint8Array(SLOT_COUNT);
  /** {@link RuntimeOptions.cacheAllSlots}: every slot counts as imported. */
  readonly #cacheAll: boolean;

  constructor(host: RuntimeHost<O>, watches: readonly RuntimeWatch[], options: RuntimeOptions = {}) {
    this.#host = host;
    this.#cacheAll = options.cacheAllSlots === true;
    this.#watches = watches.map((w) => ({
      controlled: w.controlled,
      listSeen: undefined,
      pendingGain: new Uint8Array(SLOT_COUNT),
      pendingAny: false,
      recentDeletes: undefined,
      // Nothing is listed yet: every slot waits for the first list.
      uncovered: new Uint8Array(SLOT_COUNT).fill(1),
    }));
  }

  // ---------------------------------------------------------------- lists and watch events

  /** A full list of watch `w` starts: it covers every slot owned now. */
  listStarted(w: number): void {
    const s = this.#watch(w);
    s.listSeen = new Set();
    s.pendingGain.fill(0);
    s.pendingAny = false;
  }

  /** An object of watch `w` from its list (`listed`) or its watch. */
  observe(
    w: number,
    type: "ADDED" | "MODIFIED" | "DELETED",
    id: string,
    obj: O,
    rv: string | undefined,
    listed: boolean,
  ): void {
    const s = this.#watch(w);
    if (type === "DELETED") {
      s.recentDeletes?.set(id, rv ?? "");
      if (s.controlled) this.#removeControlled(id, true);
      else this.#deleteRoot(id);
      return;
    }
    this.#upsert(w, id, obj, rv, listed);
  }

  /** The full list of watch `w` ended: what is cached but was not listed was deleted meanwhile. */
  listSynced(w: number): void {
    const s = this.#watch(w);
    const seen = s.listSeen;
    s.listSeen = undefined;
    if (seen !== undefined) {
      if (s.controlled) {
        for (const [id, e] of this.#controlled)
          if (e.watch === w && !seen.has(id)) this.#removeControlled(id, true);
      } else {
        for (const [id, e] of this.#roots) if (e.watch === w && !seen.has(id)) this.#deleteRoot(id);
      }
    }
    // Slots gained after the list started are still to be listed by a gain list.
    for (let i = 0; i < SLOT_COUNT; i++) if (s.pendingGain[i] === 0) s.uncovered[i] = 0;
    if (s.controlled) this.#release();
  }

  // ---------------------------------------------------------------- ownership changes

  /**
   * Slots were gained. An imported slot (migrating here: its lists ran, run, or are pending since
   * it began) is not listed again: its cached roots are queued now, or as its controlled objects'
   * list ends, and its other roots as their list delivers them. Any other slot must be fetched by a
   * gain list of every watch.
   */
  slotsGained(ranges: readonly SlotRange[]): void {
    for (const r of ranges) {
      for (let i = r.start; i <= r.end; i++) {
        if (this.#cacheAll || this.#importing[i] === 1) {
          for (const id of this.#roots.idsIn(i)) this.#enqueue(id, i);
        } else this.#markCold(i);
      }
    }
  }

  /**
   * The slots migrating to this shard now (status.migrations whose target it is, see
   * {@link importingSlots}): their objects are listed and cached, not queued; slots that stop
   * migrating here without being gained are dropped.
   */
  slotsImporting(ranges: readonly SlotRange[]): void {
    const next = new Uint8Array(SLOT_COUNT);
    for (const r of ranges) next.fill(1, r.start, r.end + 1);
    const dropped: number[] = [];
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (next[i] === this.#importing[i]) continue;
      if (next[i] === 1 && !this.#host.owns(i) && !this.#cacheAll) this.#markCold(i);
      if (next[i] === 0) dropped.push(i);
    }
    this.#importing.set(next);
    if (dropped.length > 0) this.#pruneSlots(dropped);
  }

  /**
   * Slots were lost: drops their objects, tombstones, held and queued keys (or, when the slots are
   * still cached, only unqueues them). Visits only the objects of `ranges`, not the whole cache.
   */
  slotsLost(ranges: readonly SlotRange[]): void {
    const slots: number[] = [];
    for (const r of ranges) for (let i = r.start; i <= r.end; i++) slots.push(i);
    this.#pruneSlots(slots);
  }

  /** Namespaces left the selection: checks every cached object (a scan of the whole cache). */
  prune(): void {
    for (const [id, e] of this.#roots) this.#pruneRoot(id, e);
    for (const [id, e] of this.#controlled) this.#pruneControlled(id, e);
    this.#pruneTombstones();
  }

  #pruneSlots(slots: readonly number[]): void {
    for (const slot of slots) {
      for (const id of this.#roots.idsIn(slot)) this.#pruneRoot(id, this.#roots.get(id)!);
      for (const id of this.#controlled.idsIn(slot)) this.#pruneControlled(id, this.#controlled.get(id)!);
    }
    this.#pruneTombstones();
  }

  #pruneRoot(id: string, e: Entry<O>): void {
    if (!this.holds(e.slot) || !this.#host.selected(e.obj)) this.#dropRoot(id);
    else if (!this.#host.owns(e.slot)) this.#unqueue(id); // kept in the cache (imported, or every slot)
  }

  #pruneControlled(id: string, e: ControlledEntry<O>): void {
    if (!this.holds(e.slot) || !this.#host.selected(e.obj)) this.#removeControlled(id, false);
  }

  #pruneTombstones(): void {
    const h = this.#host;
    // Tombstones are few (deleted roots not reconciled yet): all are checked.
    for (const [id, t] of this.#tombstones) {
      if (!h.owns(t.slot)) {
        this.#tombstones.delete(id);
        this.#unqueue(id);
      }
    }
  }

  /** Namespace labels changed: prunes, and every watch re-fetches every owned slot. */
  namespacesChanged(): void {
    this.prune();
    for (const s of this.#watches) {
      s.pendingGain.fill(1);
      s.pendingAny = true;
    }
  }

  // ---------------------------------------------------------------- gain lists

  /** Whether watch `w` has gained slots to fetch. */
  gainPending(w: number): boolean {
    return this.#watch(w).pendingAny;
  }

  /**
   * Starts a gain list of watch `w`: returns the slots to keep from it (and clears them from the
   * pending set), or undefined when nothing is pending.
   */
  gainListStarted(w: number): Uint8Array | undefined {
    const s = this.#watch(w);
    if (!s.pendingAny) return undefined;
    const gained = s.pendingGain.slice();
    s.pendingGain.fill(0);
    s.pendingAny = false;
    s.recentDeletes = new Map();
    return gained;
  }

  /**
   * An item of a gain list of watch `w`: cached when it is in a gained, owned slot and newer than
   * what the watch delivered since. Returns whether it was kept.
   */
  gainListed(w: number, gained: Uint8Array, id: string, obj: O, rv: string | undefined): boolean {
    const s = this.#watch(w);
    const p = this.#host.place(obj, w);
    if (p === undefined || gained[p.slot] !== 1 || !this.holds(p.slot)) return false;
    const cached = s.controlled ? this.#controlled.get(id) : this.#roots.get(id);
    if (cached !== undefined && notOlder(cached.rv, rv)) return false;
    const deleted = s.recentDeletes?.get(id);
    if (deleted !== undefined && notOlder(deleted, rv)) return false;
    this.#upsert(w, id, obj, rv, false, p);
    return true;
  }

  /** A gain list of watch `w` ended; a failed one leaves its slots pending for the next. */
  gainListEnded(w: number, gained: Uint8Array, ok: boolean): void {
    const s = this.#watch(w);
    s.recentDeletes = undefined;
    if (!ok) {
      for (let i = 0; i < SLOT_COUNT; i++) if (gained[i] === 1) s.pendingGain[i] = 1;
      s.pendingAny = true;
      return;
    }
    for (let i = 0; i < SLOT_COUNT; i++) if (gained[i] === 1 && s.pendingGain[i] === 0) s.uncovered[i] = 0;
    if (s.controlled) this.#release();
  }

  // ---------------------------------------------------------------- work

  /** The work of a queued key, or undefined when it is neither cached nor a tombstone any more. */
  work(key: string): RuntimeWork<O> | undefined {
    const e = this.#roots.get(key);
    if (e !== undefined) return { key, slot: e.slot, watch: e.watch, object: e.obj, tombstone: undefined };
    const t = this.#tombstones.get(key);
    if (t !== undefined) return { key, slot: t.slot, watch: t.watch, object: undefined, tombstone: t };
    return undefined;
  }

  /** A reconcile of `work` ended; `settled` (not requeued, not failed) ends its tombstone. */
  finished(work: RuntimeWork<O>, settled: boolean): void {
    if (settled && work.tombstone !== undefined && this.#tombstones.get(work.key) === work.tombstone) {
      this.#tombstones.delete(work.key);
    }
  }

  /** Cached controlled objects whose controller is root `key` (of watches `only` accepts). */
  controlledOf(key: string, only?: (watch: number) => boolean): O[] {
    const out: O[] = [];
    for (const id of this.#children.get(key) ?? []) {
      const c = this.#controlled.get(id);
      if (c !== undefined && (only === undefined || only(c.watch))) out.push(c.obj);
    }
    return out;
  }

  /** The cached root of `key`. */
  root(key: string): O | undefined {
    return this.#roots.get(key)?.obj;
  }

  /** Drops everything and unqueues every key (the rules changed, or the controller stops). */
  clear(): void {
    for (const key of this.#roots.keys()) this.#host.queue.remove(key);
    for (const key of this.#tombstones.keys()) this.#host.queue.remove(key);
    this.#roots.clear();
    this.#controlled.clear();
    this.#children.clear();
    this.#tombstones.clear();
    this.#held.clear();
  }

  sizes(): RuntimeSizes {
    return {
      roots: this.#roots.size,
      controlled: this.#controlled.size,
      tombstones: this.#tombstones.size,
      held: this.#held.size,
    };
  }

  /**
   * Whether every controlled watch has listed `slot` since it was gained: a root reconciled before
   * that would see its controlled objects missing and re-create them (409s).
   */
  protected warm(slot: number): boolean {
    for (const s of this.#watches) if (s.controlled && s.uncovered[slot] === 1) return false;
    return true;
  }

  /**
   * Whether objects of `slot` are cached: owned, or migrating here (a warm handoff), or every slot
   * with {@link RuntimeOptions.cacheAllSlots}. Objects of other slots are dropped as they stream by.
   */
  protected holds(slot: number): boolean {
    return this.#cacheAll || this.#importing[slot] === 1 || this.#host.owns(slot);
  }

  // ---------------------------------------------------------------- internals

  /** `slot` must be fetched by a gain list of every watch before its roots run. */
  #markCold(slot: number): void {
    for (const s of this.#watches) {
      s.pendingGain[slot] = 1;
      s.uncovered[slot] = 1;
      s.pendingAny = true;
    }
  }

  #watch(w: number): WatchState {
    const s = this.#watches[w];
    if (s === undefined) throw new RangeError(`watch ${w}: there are ${this.#watches.length}`);
    return s;
  }

  /** Caches (owned slot) or forgets (other slot) an object, and enqueues the affected root. */
  #upsert(
    w: number,
    id: string,
    obj: O,
    rv: string | undefined,
    fromList: boolean,
    placed?: RuntimePlace,
  ): void {
    const p = placed ?? this.#host.place(obj, w);
    const owned = p !== undefined && this.holds(p.slot);
    const s = this.#watch(w);
    // A full list records only the ids it caches: its end looks up only those (a shard's full list
    // of 200k objects keeps about a quarter).
    if (!s.controlled) {
      const prev = this.#roots.get(id);
      if (!owned) {
        // Moved to a slot not owned (or out of the selection): not ours any more.
        if (prev !== undefined) this.#dropRoot(id);
        return;
      }
      this.#roots.set(id, { obj, rv, slot: p.slot, watch: w });
      if (fromList) s.listSeen?.add(id);
      const wasTombstone = this.#tombstones.delete(id);
      // Back, or moved, into a slot cached but not owned: its key is no longer ours to run (and a
      // loss of the slot it was queued for would not find it there any more).
      if ((wasTombstone || (prev !== undefined && prev.slot !== p.slot)) && !this.#host.owns(p.slot))
        this.#unqueue(id);
      // A re-list delivers every object again: enqueue only what changed.
      if (fromList && prev?.rv === rv) return;
      this.#enqueue(id, p.slot);
      return;
    }
    const prev = this.#controlled.get(id);
    if (prev !== undefined && prev.rootKey !== p?.rootKey) this.#removeControlled(id, true);
    if (!owned) {
      if (prev !== undefined) this.#removeControlled(id, false);
      return;
    }
    this.#controlled.set(id, { obj, rv, slot: p.slot, watch: w, rootKey: p.rootKey });
    if (fromList) s.listSeen?.add(id);
    let set = this.#children.get(p.rootKey);
    if (set === undefined) {
      set = new Set();
      this.#children.set(p.rootKey, set);
    }
    set.add(id);
    if (fromList && prev?.rv === rv) return;
    this.#enqueueRoot(p.rootKey);
  }

  /** Only a cached (owned) root is enqueued: a root not cached is another shard's or not there. */
  #enqueueRoot(rootKey: string): void {
    const e = this.#roots.get(rootKey);
    if (e !== undefined) this.#enqueue(rootKey, e.slot);
  }

  #enqueue(key: string, slot: number): void {
    if (!this.#host.owns(slot)) return; // importing: queued when gained
    if (this.warm(slot)) this.#host.queue.add(key);
    else this.#held.add(key);
  }

  #unqueue(key: string): void {
    this.#held.delete(key);
    this.#host.queue.remove(key);
  }

  /** Queues the held roots whose slots are now warm. */
  #release(): void {
    for (const key of this.#held) {
      const slot = this.#roots.get(key)?.slot ?? this.#tombstones.get(key)?.slot;
      if (slot === undefined || !this.#host.owns(slot)) this.#held.delete(key);
      else if (this.warm(slot)) {
        this.#held.delete(key);
        this.#host.queue.add(key);
      }
    }
  }

  #dropRoot(id: string): void {
    this.#roots.delete(id);
    this.#unqueue(id);
  }

  #deleteRoot(id: string): void {
    const prev = this.#roots.get(id);
    if (prev === undefined) return;
    this.#roots.delete(id);
    // Deleted while importing: its source reconciles the deletion.
    if (!this.#host.owns(prev.slot)) {
      this.#unqueue(id);
      return;
    }
    this.#tombstones.set(id, { slot: prev.slot, watch: prev.watch });
    this.#enqueue(id, prev.slot);
  }

  #removeControlled(id: string, enqueueOwner: boolean): void {
    const prev = this.#controlled.get(id);
    if (prev === undefined) return;
    this.#controlled.delete(id);
    const set = this.#children.get(prev.rootKey);
    set?.delete(id);
    if (set?.size === 0) this.#children.delete(prev.rootKey);
    if (enqueueOwner) this.#enqueueRoot(prev.rootKey);
  }
}
