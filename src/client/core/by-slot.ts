/**
 * A map of cached entries that also knows the ids in each slot, so that a change of a few slots
 * visits only their entries. A shard caching every slot (100k roots and as many controlled
 * objects) spent 280-445 ms scanning its whole cache on each lost slot range, on the path to its
 * ack (docs/benchmarks.md, "Where the 10→11 commit's time went").
 */
import { SLOT_COUNT } from "../../slots/types.js";

/** An entry placed in a slot. */
export interface Slotted {
  readonly slot: number;
}

/** `Map<id, E>` plus the ids of each slot; kept in step by {@link set} and {@link delete}. */
export class BySlot<E extends Slotted> {
  readonly #entries = new Map<string, E>();
  readonly #ids: Array<Set<string> | undefined> = Array.from({ length: SLOT_COUNT }, () => undefined);

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): E | undefined {
    return this.#entries.get(id);
  }

  /** Adds or replaces `id`; an entry whose slot changed moves to its new slot. */
  set(id: string, e: E): void {
    const prev = this.#entries.get(id);
    if (prev?.slot !== e.slot) {
      if (prev !== undefined) this.#unindex(prev.slot, id);
      let ids = this.#ids[e.slot];
      if (ids === undefined) {
        ids = new Set();
        this.#ids[e.slot] = ids;
      }
      ids.add(id);
    }
    this.#entries.set(id, e);
  }

  delete(id: string): boolean {
    const prev = this.#entries.get(id);
    if (prev === undefined) return false;
    this.#entries.delete(id);
    this.#unindex(prev.slot, id);
    return true;
  }

  clear(): void {
    this.#entries.clear();
    this.#ids.fill(undefined);
  }

  /** The ids in `slot`, copied: the caller may delete while it iterates. */
  idsIn(slot: number): string[] {
    const ids = this.#ids[slot];
    return ids === undefined ? [] : [...ids];
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  [Symbol.iterator](): IterableIterator<[string, E]> {
    return this.#entries.entries();
  }

  #unindex(slot: number, id: string): void {
    const ids = this.#ids[slot];
    if (ids?.delete(id) && ids.size === 0) this.#ids[slot] = undefined;
  }
}
