/**
 * Codec for Redis-style slot range lists: `"0-99,200,300-399"`.
 *
 * Wire grammar (strict, so that the status has one obvious spelling and a CRD pattern can check it):
 *
 * ```
 * list  = "" | item *("," item)
 * item  = slot | slot "-" slot          ; start <= end
 * slot  = "0" | [1-9] *4DIGIT           ; 0..16383, no sign, no leading zeros
 * ```
 *
 * - No whitespace anywhere: the lists are machine-written; tools that accept human input (the
 *   CLI) strip spaces before calling {@link parseSlotRanges}.
 * - No leading zeros (`"007"`), no sign (`"+5"`, `"-5"`), no empty items (`"1,,2"`, `"1,"`).
 * - Items must not overlap (`"0-10,5"` and `"3,3"` are rejected): an overlap in the status means
 *   a writer bug, and silently merging would hide it.
 * - Items may come in any order and may touch (`"10-19,0-9"`); the result is canonical anyway.
 *
 * The canonical form, produced by {@link formatSlotRanges} and returned by {@link parseSlotRanges},
 * is sorted, with touching or overlapping ranges merged, and single slots written without `-`.
 */
import { MAX_SLOT, SLOT_COUNT, type SlotRange } from "./types.js";

/** A malformed slot range list. `field` is the status/spec path, `token` the offending item. */
export class SlotRangeError extends Error {
  /** Path of the field that held the list, e.g. `status.shards[2].slots`. */
  readonly field: string;
  /** The offending item as written (may be `""` for an empty item). */
  readonly token: string;

  constructor(field: string, token: string, reason: string) {
    super(`${field}: invalid slot range ${JSON.stringify(token)}: ${reason}`);
    this.name = "SlotRangeError";
    this.field = field;
    this.token = token;
  }
}

// One item: a slot or slot-slot; each slot "0" or 1-5 digits without a leading zero.
const ITEM = /^(0|[1-9][0-9]{0,4})(?:-(0|[1-9][0-9]{0,4}))?$/;

function explain(token: string): string {
  if (token === "") return "empty item (doubled, leading or trailing comma)";
  if (/\s/.test(token)) return "whitespace is not allowed";
  if (/^[+-]/.test(token)) return "signs are not allowed";
  if (/(^|-)0[0-9]/.test(token)) return "leading zeros are not allowed";
  if (/^[0-9]+(-[0-9]+)?$/.test(token)) return `slot out of range (0..${MAX_SLOT})`;
  return 'expected a slot "N" or a range "N-M" with 0 <= N <= M <= 16383';
}

/**
 * Parses a slot range list (grammar in the module comment) into canonical ranges: sorted, merged,
 * non-overlapping. `""` is the empty set.
 *
 * @param field - path named in errors, e.g. `status.shards[0].slots`.
 * @throws SlotRangeError naming `field` and the offending item.
 */
export function parseSlotRanges(text: string, field = "slots"): SlotRange[] {
  if (text === "") return [];
  const tokens = text.split(",");
  const items: Array<{ start: number; end: number; token: string }> = [];
  let sorted = true;
  for (const token of tokens) {
    const m = ITEM.exec(token);
    if (m === null) throw new SlotRangeError(field, token, explain(token));
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    if (start > MAX_SLOT || end > MAX_SLOT) {
      throw new SlotRangeError(field, token, `slot out of range (0..${MAX_SLOT})`);
    }
    if (start > end) throw new SlotRangeError(field, token, "reversed range (start > end)");
    const prev = items[items.length - 1];
    if (prev !== undefined && prev.start > start) sorted = false;
    items.push({ start, end, token });
  }
  if (!sorted) items.sort((a, b) => a.start - b.start);
  const out: SlotRange[] = [];
  let prevItem: { start: number; end: number; token: string } | undefined;
  for (const item of items) {
    if (prevItem !== undefined && item.start <= prevItem.end) {
      throw new SlotRangeError(field, item.token, `overlaps ${JSON.stringify(prevItem.token)}`);
    }
    const last = out[out.length - 1];
    if (last !== undefined && last.end + 1 === item.start) {
      out[out.length - 1] = { start: last.start, end: item.end };
    } else {
      out.push({ start: item.start, end: item.end });
    }
    prevItem = item;
  }
  return out;
}

function checkRange(r: SlotRange): void {
  if (
    !Number.isInteger(r.start) ||
    !Number.isInteger(r.end) ||
    r.start < 0 ||
    r.end > MAX_SLOT ||
    r.start > r.end
  ) {
    throw new RangeError(`invalid slot range ${JSON.stringify(r)}`);
  }
}

/**
 * Sorts and merges ranges (touching or overlapping ones become one). Returns the input array
 * itself when it is already canonical, so callers on the hot path pay only for the check.
 *
 * @throws RangeError for a range with bad bounds (a programming error, not input).
 */
export function normalizeRanges(ranges: Iterable<SlotRange>): SlotRange[] {
  const list = Array.isArray(ranges) ? (ranges as SlotRange[]) : [...ranges];
  let canonical = true;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    checkRange(r);
    if (i > 0 && r.start <= list[i - 1]!.end + 1) canonical = false;
  }
  if (canonical) return list;
  const sorted = [...list].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: SlotRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end + 1) {
      if (r.end > last.end) out[out.length - 1] = { start: last.start, end: r.end };
    } else {
      out.push({ start: r.start, end: r.end });
    }
  }
  return out;
}

/**
 * Formats ranges in canonical form, e.g. `"0-99,200,300-399"`; `""` when empty. Input in any order
 * is sorted and merged first.
 *
 * @throws RangeError for a range with bad bounds.
 */
export function formatSlotRanges(ranges: Iterable<SlotRange>): string {
  const parts: string[] = [];
  for (const r of normalizeRanges(ranges)) {
    parts.push(r.start === r.end ? String(r.start) : `${r.start}-${r.end}`);
  }
  return parts.join(",");
}

/**
 * Canonical ranges covering the given slots (any order, duplicates allowed).
 *
 * @throws RangeError for a value that is not a slot.
 */
export function rangesFromSlots(slots: Iterable<number>): SlotRange[] {
  const mask = new Uint8Array(SLOT_COUNT);
  for (const s of slots) {
    if (!Number.isInteger(s) || s < 0 || s > MAX_SLOT) throw new RangeError(`invalid slot ${s}`);
    mask[s] = 1;
  }
  return rangesFromMask(mask);
}

/**
 * Canonical ranges of the slots where `mask[slot] != 0`. Only the first {@link SLOT_COUNT}
 * entries are read.
 */
export function rangesFromMask(mask: ArrayLike<number>): SlotRange[] {
  const out: SlotRange[] = [];
  const n = Math.min(mask.length, SLOT_COUNT);
  let start = -1;
  for (let i = 0; i < n; i++) {
    if (mask[i]) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.push({ start, end: i - 1 });
      start = -1;
    }
  }
  if (start >= 0) out.push({ start, end: n - 1 });
  return out;
}

/** A {@link SLOT_COUNT}-long mask with 1 at every slot in `ranges`. */
export function maskFromRanges(ranges: Iterable<SlotRange>): Uint8Array {
  const mask = new Uint8Array(SLOT_COUNT);
  for (const r of ranges) {
    checkRange(r);
    mask.fill(1, r.start, r.end + 1);
  }
  return mask;
}

/** Number of slots in `ranges` (assumed disjoint, as every canonical list is). */
export function countSlots(ranges: Iterable<SlotRange>): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.start + 1;
  return n;
}

/** Whether `slot` lies in one of the canonical (sorted, disjoint) `ranges`; binary search. */
export function rangesContain(ranges: readonly SlotRange[], slot: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid]!;
    if (slot < r.start) hi = mid - 1;
    else if (slot > r.end) lo = mid + 1;
    else return true;
  }
  return false;
}
