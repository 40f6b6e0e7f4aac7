// Properties of the slot range codec: canonical round trip, agreement with a set-of-slots model,
// and rejection of malformed input naming the bad token.
import fc from "fast-check";
import { describe, expect } from "vitest";
import {
  countSlots,
  formatSlotRanges,
  MAX_SLOT,
  maskFromRanges,
  parseSlotRanges,
  rangesContain,
  rangesFromMask,
  rangesFromSlots,
  SLOT_COUNT,
  type SlotRange,
  SlotRangeError,
} from "../../src/slots/index.js";
import { itProp } from "../support/fc.js";

const slot = fc.integer({ min: 0, max: MAX_SLOT });
// Mostly small slots so that ranges touch and overlap often, plus the whole space.
const nearSlot = fc.oneof(fc.integer({ min: 0, max: 64 }), slot, fc.constantFrom(0, MAX_SLOT));
const range = fc
  .tuple(nearSlot, nearSlot)
  .map(([a, b]): SlotRange => ({ start: Math.min(a, b), end: Math.max(a, b) }));
const slotSet = fc.uniqueArray(nearSlot, { maxLength: 200 });

/** The model: a naive membership array of the slots in `ranges` (or in a list of slots). */
function slotsOf(ranges: readonly SlotRange[]): Uint8Array {
  const m = new Uint8Array(SLOT_COUNT);
  for (const r of ranges) for (let s = r.start; s <= r.end; s++) m[s] = 1;
  return m;
}

function modelOf(slots: readonly number[]): Uint8Array {
  const m = new Uint8Array(SLOT_COUNT);
  for (const s of slots) m[s] = 1;
  return m;
}

/** The first slot where two models differ, or -1 (cheaper to compare than deep equality). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let s = 0; s < SLOT_COUNT; s++) if (a[s] !== b[s]) return s;
  return -1;
}

function size(m: Uint8Array): number {
  let n = 0;
  for (let s = 0; s < SLOT_COUNT; s++) n += m[s]!;
  return n;
}

function isCanonical(ranges: readonly SlotRange[]): boolean {
  return ranges.every(
    (r, i) =>
      r.start <= r.end && r.start >= 0 && r.end <= MAX_SLOT && (i === 0 || r.start > ranges[i - 1]!.end + 1),
  );
}

/** Throws unless `f` throws a SlotRangeError whose token is in `text` and in the message. */
function expectRejected(text: string, f: () => unknown): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `parseSlotRanges(${JSON.stringify(text)}) should throw`).toBeInstanceOf(SlotRangeError);
  const e = err as SlotRangeError;
  expect(e.field).toBe("f");
  expect(`,${text},`).toContain(`,${e.token},`);
  expect(e.message).toContain(JSON.stringify(e.token));
}

describe("slot range codec", () => {
  itProp("format is canonical and parse(format(x)) has the same slots", () =>
    fc.property(fc.array(range, { maxLength: 30 }), (ranges) => {
      const text = formatSlotRanges(ranges);
      expect(text).toMatch(/^$|^(0|[1-9]\d*)(-(0|[1-9]\d*))?(,(0|[1-9]\d*)(-(0|[1-9]\d*))?)*$/);
      const parsed = parseSlotRanges(text);
      expect(isCanonical(parsed)).toBe(true);
      const model = slotsOf(ranges);
      expect(firstDifference(slotsOf(parsed), model)).toBe(-1);
      expect(formatSlotRanges(parsed)).toBe(text);
      expect(countSlots(parsed)).toBe(size(model));
    }),
  );

  itProp("rangesFromSlots, rangesFromMask and maskFromRanges agree with the set of slots", () =>
    fc.property(slotSet, fc.array(slot, { maxLength: 20 }), (slots, dupes) => {
      const ranges = rangesFromSlots([...slots, ...dupes.filter((d) => slots.includes(d))]);
      expect(isCanonical(ranges)).toBe(true);
      const model = modelOf(slots);
      expect(firstDifference(slotsOf(ranges), model)).toBe(-1);
      const mask = maskFromRanges(ranges);
      expect(firstDifference(mask, model)).toBe(-1);
      expect(rangesFromMask(mask)).toEqual(ranges);
      expect(slots.filter((s) => !rangesContain(ranges, s))).toEqual([]);
    }),
  );

  itProp("parses any disjoint list in any order to the canonical form", () =>
    fc.property(slotSet, fc.func(fc.integer()), (slots, order) => {
      // Split the slots into disjoint items (runs cut at random points), then shuffle the items.
      const sorted = [...slots].sort((a, b) => a - b);
      const items: string[] = [];
      let start = 0;
      for (let i = 1; i <= sorted.length; i++) {
        if (i === sorted.length || sorted[i] !== sorted[i - 1]! + 1 || order(i) % 3 === 0) {
          const a = sorted[start]!;
          const b = sorted[i - 1]!;
          items.push(a === b ? String(a) : `${a}-${b}`);
          start = i;
        }
      }
      items.sort((x, y) => order(x.length) - order(y.length) || (x < y ? -1 : 1));
      const parsed = parseSlotRanges(items.join(","));
      expect(parsed).toEqual(rangesFromSlots(slots));
    }),
  );

  itProp("rejects lists with overlapping items, naming the later one", () =>
    fc.property(fc.array(range, { minLength: 1, maxLength: 10 }), range, fc.nat(), (ranges, extra, at) => {
      // Make `extra` overlap one of the ranges, then insert it anywhere.
      const target = ranges[at % ranges.length]!;
      const overlap: SlotRange = {
        start: Math.min(extra.start, target.end),
        end: Math.max(extra.end, target.start),
      };
      const items = [...ranges, overlap].map((r) =>
        r.start === r.end ? String(r.start) : `${r.start}-${r.end}`,
      );
      const text = items.join(",");
      expectRejected(text, () => parseSlotRanges(text, "f"));
    }),
  );

  itProp("rejects malformed items wherever they appear", () => {
    const bad = fc.oneof(
      fc.integer({ min: SLOT_COUNT, max: 99_999 }).map(String), // out of range
      fc
        .tuple(slot, slot)
        .filter(([a, b]) => a > b)
        .map(([a, b]) => `${a}-${b}`), // reversed
      fc.constantFrom(
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "01",
        "00",
        "1-02",
        "1--2",
        "1-",
        "-",
        "a",
        "0x1",
        "1.0",
        "1-2-3",
        "１",
      ),
      fc
        .string({ minLength: 1, maxLength: 6 })
        .filter((s) => !/^(0|[1-9]\d{0,4})(-(0|[1-9]\d{0,4}))?$/.test(s) && !s.includes(",")),
    );
    return fc.property(fc.array(range, { maxLength: 5 }), bad, fc.nat(), (ranges, token, at) => {
      const items = formatSlotRanges(ranges)
        .split(",")
        .filter((x) => x !== "");
      items.splice(at % (items.length + 1), 0, token);
      const text = items.join(",");
      // A lone "" is the empty list, which is valid.
      fc.pre(text !== "");
      expectRejected(text, () => parseSlotRanges(text, "f"));
    });
  });
});
