import { describe, expect, it } from "vitest";
import { ANNOTATION_FENCE, formatFence, parseFence, withFence } from "../../../src/api/fence.js";

describe("fencing tokens", () => {
  it("pads the resourceVersion to 20 digits, then generation and uid", () => {
    expect(formatFence({ resourceVersion: "1234", generation: 42, uid: "u-1" })).toBe(
      "00000000000000001234.42.u-1",
    );
  });

  it("refuses a generation or uid that does not fit, naming the part and value", () => {
    expect(() => formatFence({ resourceVersion: "1", generation: 1.5, uid: "u" })).toThrow(/generation 1.5/);
    expect(() => formatFence({ resourceVersion: "1", generation: -1, uid: "u" })).toThrow(/generation -1/);
    expect(() => formatFence({ resourceVersion: "1", generation: 1, uid: "" })).toThrow(/uid: empty/);
  });

  it("a non-decimal resourceVersion turns fencing off (all-zero prefix) instead of ordering wrongly", () => {
    expect(formatFence({ resourceVersion: "abc", generation: 3, uid: "u" })).toBe("00000000000000000000.3.u");
    expect(formatFence({ resourceVersion: "1".repeat(21), generation: 3, uid: "u" })).toBe(
      "00000000000000000000.3.u",
    );
  });

  it("a re-created SlotMap's first generation orders after the old one's last (later resourceVersion)", () => {
    const old = formatFence({ resourceVersion: "9000", generation: 999_999, uid: "old" });
    const recreated = formatFence({ resourceVersion: "9001", generation: 1, uid: "new" });
    expect(recreated > old).toBe(true);
  });

  it("parses only tokens of its own format", () => {
    expect(parseFence("1.2.3")).toBeUndefined();
    expect(parseFence("")).toBeUndefined();
    expect(parseFence("00000000000000001234.42.")).toBeUndefined();
    expect(parseFence("00000000000000001234.42.u")).toEqual({
      resourceVersion: "1234",
      generation: 42,
      uid: "u",
    });
  });

  it("withFence stamps a copy and keeps the other annotations", () => {
    const obj = {
      kind: "ConfigMap",
      metadata: { name: "a", annotations: { keep: "1", [ANNOTATION_FENCE]: "old" } },
    };
    const stamped = withFence(obj, "new");
    expect(stamped.metadata.annotations).toEqual({ keep: "1", [ANNOTATION_FENCE]: "new" });
    expect(obj.metadata.annotations[ANNOTATION_FENCE]).toBe("old");
    const bare: { data: object; metadata?: { annotations?: Record<string, string> } } = { data: {} };
    expect(withFence(bare, "t")).toEqual({
      data: {},
      metadata: { annotations: { [ANNOTATION_FENCE]: "t" } },
    });
  });
});
