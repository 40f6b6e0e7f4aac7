/**
 * The runtime's view of what a shard owns: a 16384-entry mask owned and updated in place by the
 * shard machine, so the hot path (`ownsSlot` per object event and per work item) is one typed-array
 * read with no allocation and no lookup.
 */
import { formatFence } from "../../api/fence.js";
import { rangesFromMask } from "../../slots/ranges.js";
import { SLOT_COUNT, type SlotRange } from "../../slots/types.js";

/** What {@link Ownership} reads besides the mask; the machine mutates it in place. */
export interface OwnershipSource {
  /** Assignment generation of the newest status applied (0 before any). */
  readonly generation: number;
  /** metadata.uid of the SlotMap that status belongs to. */
  readonly uid: string | undefined;
  /** metadata.resourceVersion of the SlotMap version applied (undefined before any). */
  readonly resourceVersion: string | undefined;
}

/**
 * Live, read-only ownership of one shard. Hold it for the process lifetime: it reflects every
 * change the machine makes (new table, fence, unfence, release) without being replaced.
 */
export class Ownership {
  readonly #mask: Uint8Array;
  readonly #source: OwnershipSource;

  /** @internal Built by the shard machine around its own mask. */
  constructor(mask: Uint8Array, source: OwnershipSource) {
    if (mask.length !== SLOT_COUNT) throw new RangeError(`ownership mask must have ${SLOT_COUNT} entries`);
    this.#mask = mask;
    this.#source = source;
  }

  /**
   * Whether the shard owns `slot` now: granted to its current Lease identity in the newest status
   * and not fenced. O(1), allocation-free; a non-slot (negative, fractional, ≥16384) is not owned.
   * Use `ShardMachine.mayStart(slot, now)` right before starting a reconcile: it also checks the
   * renew deadline against `now` and shutdown.
   */
  ownsSlot(slot: number): boolean {
    return this.#mask[slot] === 1;
  }

  /** Assignment generation of the newest status applied. */
  get generation(): number {
    return this.#source.generation;
  }

  /** UID of the SlotMap instance the ownership refers to. */
  get uid(): string | undefined {
    return this.#source.uid;
  }

  /**
   * The fencing token of a reconcile starting now (src/api/fence.ts, docs/fencing.md): built on
   * the resourceVersion of the newest SlotMap version applied, so the next owner of any slot this
   * shard owns now (granted by a later write) carries a greater token.
   */
  fence(): string {
    return formatFence({
      resourceVersion: this.#source.resourceVersion ?? "0",
      generation: this.#source.generation,
      uid: this.#source.uid ?? "none",
    });
  }

  /** Owned slots as canonical ranges (allocates; for logs, metrics and tests). */
  ownedRanges(): SlotRange[] {
    return rangesFromMask(this.#mask);
  }

  /** Number of owned slots (a 16384-step scan; for metrics). */
  ownedCount(): number {
    let n = 0;
    for (let s = 0; s < SLOT_COUNT; s++) n += this.#mask[s]!;
    return n;
  }
}

/** Sets `mask` to exactly the slots of `ranges` (canonical, valid ranges). */
export function fillMask(mask: Uint8Array, ranges: readonly SlotRange[]): void {
  mask.fill(0);
  for (const r of ranges) mask.fill(1, r.start, r.end + 1);
}

/** Whether a slot set in `before` is clear in `after` (both masks of {@link SLOT_COUNT}). */
export function releases(before: Uint8Array, after: Uint8Array): boolean {
  for (let i = 0; i < before.length; i++) if (before[i] === 1 && after[i] !== 1) return true;
  return false;
}

/**
 * Copies `next` into `current` and returns the slots that changed, as ranges. `scratch` is a
 * caller-owned work buffer (one per machine, so an update allocates only the result ranges).
 */
export function applyMask(
  current: Uint8Array,
  next: Uint8Array,
  scratch: Uint8Array,
): { gained: SlotRange[]; lost: SlotRange[] } {
  let gainedAny = false;
  let lostAny = false;
  for (let s = 0; s < SLOT_COUNT; s++) {
    const a = current[s]!;
    const b = next[s]!;
    // scratch: 1 = gained, 2 = lost, 0 = unchanged
    scratch[s] = a === b ? 0 : b === 1 ? 1 : 2;
    if (a !== b) {
      if (b === 1) gainedAny = true;
      else lostAny = true;
    }
  }
  current.set(next);
  return {
    gained: gainedAny ? rangesOfValue(scratch, 1) : [],
    lost: lostAny ? rangesOfValue(scratch, 2) : [],
  };
}

function rangesOfValue(mask: Uint8Array, value: number): SlotRange[] {
  const out: SlotRange[] = [];
  let start = -1;
  for (let s = 0; s < SLOT_COUNT; s++) {
    if (mask[s] === value) {
      if (start < 0) start = s;
    } else if (start >= 0) {
      out.push({ start, end: s - 1 });
      start = -1;
    }
  }
  if (start >= 0) out.push({ start, end: SLOT_COUNT - 1 });
  return out;
}
