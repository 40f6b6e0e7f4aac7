// The slot range codec: canonical output (sorted, merged, singles without "-") and strict parsing
// that names the field and the offending token.
import { describe, expect, it } from "vitest";
import {
  countSlots,
  formatSlotRanges,
  MAX_SLOT,
  maskFromRanges,
  normalizeRanges,
  parseSlotRanges,
  rangesContain,
  rangesFromMask,
  rangesFromSlots,
  SLOT_COUNT,
  type SlotRange,
  SlotRangeError,
} from "../../../src/slots/index.js";

const r = (start: number, end = start): SlotRange => ({ start, end });

function rangeError(f: () => unknown): SlotRangeError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SlotRangeError);
    return e as SlotRangeError;
  }
  throw new Error("expected a SlotRangeError, nothing was thrown");
}

describe("formatSlotRanges", () => {
  it("writes canonical lists", () => {
    expect(formatSlotRanges([])).toBe("");
    expect(formatSlotRanges([r(0, 99), r(200), r(300, 399)])).toBe("0-99,200,300-399");
    expect(formatSlotRanges([r(0, MAX_SLOT)])).toBe("0-16383");
    expect(formatSlotRanges([r(MAX_SLOT)])).toBe("16383");
  });

  it("sorts and merges touching and overlapping input", () => {
    expect(formatSlotRanges([r(300, 399), r(0, 99), r(200)])).toBe("0-99,200,300-399");
    expect(formatSlotRanges([r(10, 19), r(0, 9)])).toBe("0-19");
    expect(formatSlotRanges([r(0, 10), r(5, 20), r(21), r(30, 30)])).toBe("0-21,30");
    expect(formatSlotRanges([r(5), r(5)])).toBe("5");
    expect(formatSlotRanges(new Set([r(2), r(1)]))).toBe("1-2");
  });

  it("throws RangeError for bad ranges (programming errors)", () => {
    expect(() => formatSlotRanges([r(5, 4)])).toThrow(RangeError);
    expect(() => formatSlotRanges([r(0, SLOT_COUNT)])).toThrow(RangeError);
    expect(() => formatSlotRanges([r(-1, 3)])).toThrow(RangeError);
    expect(() => formatSlotRanges([r(1.5, 3)])).toThrow(RangeError);
  });
});

describe("parseSlotRanges", () => {
  it("parses canonical lists", () => {
    expect(parseSlotRanges("")).toEqual([]);
    expect(parseSlotRanges("0-99,200,300-399")).toEqual([r(0, 99), r(200), r(300, 399)]);
    expect(parseSlotRanges("0-16383")).toEqual([r(0, MAX_SLOT)]);
    expect(parseSlotRanges("0")).toEqual([r(0)]);
    expect(parseSlotRanges("7-7")).toEqual([r(7)]);
  });

  it("returns canonical ranges for unsorted or touching input", () => {
    expect(parseSlotRanges("10-19,0-9")).toEqual([r(0, 19)]);
    expect(parseSlotRanges("300-399,200,0-99")).toEqual([r(0, 99), r(200), r(300, 399)]);
    expect(parseSlotRanges("1,2,3,5")).toEqual([r(1, 3), r(5)]);
  });

  it("round-trips canonical strings exactly", () => {
    for (const text of ["", "0", "16383", "0-16383", "0-99,200,300-399", "1,3,5-6,16000-16383"]) {
      expect(formatSlotRanges(parseSlotRanges(text))).toBe(text);
    }
  });

  it.each([
    ["0-10,5", "5", /overlaps "0-10"/],
    ["3,3", "3", /overlaps "3"/],
    ["100-200,150-300", "150-300", /overlaps "100-200"/],
    ["150-300,100-200", "150-300", /overlaps "100-200"/],
    ["5-3", "5-3", /reversed/],
    ["16384", "16384", /out of range/],
    ["0-16384", "0-16384", /out of range/],
    ["99999", "99999", /out of range/],
    ["123456", "123456", /out of range/],
    ["abc", "abc", /expected a slot/],
    ["1-2-3", "1-2-3", /expected a slot/],
    ["1.5", "1.5", /expected a slot/],
    ["0x10", "0x10", /expected a slot/],
    ["1,,2", "", /empty item/],
    ["1,", "", /empty item/],
    [",1", "", /empty item/],
    [" 1", " 1", /whitespace/],
    ["1, 2", " 2", /whitespace/],
    ["+5", "+5", /signs/],
    ["-5", "-5", /signs/],
    ["007", "007", /leading zeros/],
    ["1-05", "1-05", /leading zeros/],
  ])("rejects %j at token %j", (text, token, reason) => {
    const e = rangeError(() => parseSlotRanges(text, "status.shards[2].slots"));
    expect(e.field).toBe("status.shards[2].slots");
    expect(e.token).toBe(token);
    expect(e.message).toContain("status.shards[2].slots");
    expect(e.message).toContain(JSON.stringify(token));
    expect(e.message).toMatch(reason);
  });

  it("names the default field `slots`", () => {
    expect(rangeError(() => parseSlotRanges("x")).field).toBe("slots");
  });
});

describe("rangesFromSlots / rangesFromMask / maskFromRanges", () => {
  it("builds canonical ranges from slots in any order with duplicates", () => {
    expect(rangesFromSlots([])).toEqual([]);
    expect(rangesFromSlots([5, 3, 4, 4, 10, 0, MAX_SLOT])).toEqual([r(0), r(3, 5), r(10), r(MAX_SLOT)]);
    expect(() => rangesFromSlots([SLOT_COUNT])).toThrow(RangeError);
    expect(() => rangesFromSlots([-1])).toThrow(RangeError);
    expect(() => rangesFromSlots([0.5])).toThrow(RangeError);
  });

  it("reads a mask, including runs touching both ends", () => {
    const mask = new Uint8Array(SLOT_COUNT);
    expect(rangesFromMask(mask)).toEqual([]);
    mask.fill(1, 0, 3);
    mask[100] = 7; // any non-zero value counts
    mask.fill(1, 16380);
    expect(rangesFromMask(mask)).toEqual([r(0, 2), r(100), r(16380, MAX_SLOT)]);
    // Only the first 16384 entries are read.
    const long = new Uint8Array(SLOT_COUNT + 10).fill(1);
    expect(rangesFromMask(long)).toEqual([r(0, MAX_SLOT)]);
  });

  it("maskFromRanges is the inverse of rangesFromMask", () => {
    const ranges = [r(0, 2), r(100), r(16380, MAX_SLOT)];
    const mask = maskFromRanges(ranges);
    expect(mask.length).toBe(SLOT_COUNT);
    expect(mask.reduce((a, b) => a + b, 0)).toBe(3 + 1 + 4);
    expect(rangesFromMask(mask)).toEqual(ranges);
    expect(() => maskFromRanges([r(3, 2)])).toThrow(RangeError);
  });
});

describe("normalizeRanges / countSlots / rangesContain", () => {
  it("returns canonical input as is and merges the rest", () => {
    const canonical = [r(0, 5), r(7)];
    expect(normalizeRanges(canonical)).toBe(canonical);
    // Touching ranges are not canonical: they must be merged.
    expect(normalizeRanges([r(0, 5), r(6, 9)])).toEqual([r(0, 9)]);
    expect(normalizeRanges([r(8, 9), r(0, 5), r(3, 4)])).toEqual([r(0, 5), r(8, 9)]);
  });

  it("counts slots", () => {
    expect(countSlots([])).toBe(0);
    expect(countSlots(parseSlotRanges("0-99,200,300-399"))).toBe(201);
    expect(countSlots([r(0, MAX_SLOT)])).toBe(SLOT_COUNT);
  });

  it("finds slots by binary search", () => {
    const ranges = parseSlotRanges("0-99,200,300-399,16383");
    const mask = maskFromRanges(ranges);
    const wrong: number[] = [];
    for (let s = 0; s < SLOT_COUNT; s++) if (rangesContain(ranges, s) !== (mask[s] === 1)) wrong.push(s);
    expect(wrong).toEqual([]);
    expect(rangesContain([], 0)).toBe(false);
  });
});
