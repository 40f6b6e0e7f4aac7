import { describe, expect, it } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  ackedGeneration,
  annotationField,
  DEFAULT_WEIGHT,
  effectiveWeight,
  formatFieldErrors,
  LABEL_SLOTMAP,
  LIMITS,
  parseShardLeaseAnnotations,
} from "../../../src/api/index.js";
import { leaseTimingProblems } from "../../../src/api/lease.js";

const UID = "0b7f8c2e-1f0a-4a8e-9a43-0c3b2a1d9e77";

describe("shard Lease conventions", () => {
  it("uses the names of DESIGN.md", () => {
    expect(LABEL_SLOTMAP).toBe("slotmap.dev/slotmap");
    expect(ANNOTATION_OBSERVED_GENERATION).toBe("slotmap.dev/observed-generation");
    expect(ANNOTATION_SLOTMAP_UID).toBe("slotmap.dev/slotmap-uid");
    expect(ANNOTATION_WEIGHT).toBe("slotmap.dev/weight");
    expect(DEFAULT_WEIGHT).toBe(1);
    expect(annotationField(ANNOTATION_WEIGHT)).toBe('metadata.annotations["slotmap.dev/weight"]');
  });
});

describe("parseShardLeaseAnnotations", () => {
  it("without annotations: no ack, default weight, no errors", () => {
    const none = { observedGeneration: undefined, slotmapUid: undefined, weight: 1, errors: [] };
    expect(parseShardLeaseAnnotations(undefined)).toEqual(none);
    expect(parseShardLeaseAnnotations(null)).toEqual(none);
    expect(parseShardLeaseAnnotations({})).toEqual(none);
    expect(parseShardLeaseAnnotations({ "example.com/other": "x" })).toEqual(none);
  });

  it("reads well-formed annotations", () => {
    expect(
      parseShardLeaseAnnotations({
        [ANNOTATION_OBSERVED_GENERATION]: "42",
        [ANNOTATION_SLOTMAP_UID]: UID,
        [ANNOTATION_WEIGHT]: "3",
      }),
    ).toEqual({ observedGeneration: 42, slotmapUid: UID, weight: 3, errors: [] });
    expect(parseShardLeaseAnnotations({ [ANNOTATION_OBSERVED_GENERATION]: "0" }).observedGeneration).toBe(0);
    expect(parseShardLeaseAnnotations({ [ANNOTATION_WEIGHT]: "0" }).weight).toBe(0);
    expect(parseShardLeaseAnnotations({ [ANNOTATION_WEIGHT]: String(LIMITS.maxWeight) }).weight).toBe(
      LIMITS.maxWeight,
    );
    expect(
      parseShardLeaseAnnotations({ [ANNOTATION_OBSERVED_GENERATION]: String(Number.MAX_SAFE_INTEGER) })
        .observedGeneration,
    ).toBe(Number.MAX_SAFE_INTEGER);
  });

  it.each([
    "abc",
    "-1",
    "1.5",
    "",
    " 1",
    "1 ",
    "+1",
    "01",
    "1e3",
    "0x10",
    "9007199254740992",
    "99999999999999999999",
  ])("observed-generation %j: error, no ack", (value) => {
    const r = parseShardLeaseAnnotations({
      [ANNOTATION_OBSERVED_GENERATION]: value,
      [ANNOTATION_SLOTMAP_UID]: UID,
    });
    expect(r.observedGeneration).toBeUndefined();
    expect(r.slotmapUid).toBe(UID);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({
      field: 'metadata.annotations["slotmap.dev/observed-generation"]',
      value,
    });
    const text = formatFieldErrors(r.errors);
    expect(text).toContain('metadata.annotations["slotmap.dev/observed-generation"]');
    expect(text).toContain(JSON.stringify(value));
    expect(text).toContain("treated as no acknowledgement");
  });

  it.each(["x", "-1", "1.5", "", "two", "01", " 2", String(LIMITS.maxWeight + 1), "1e9"])(
    "weight %j: error, keeps the default weight (neither drains nor floods the shard)",
    (value) => {
      const r = parseShardLeaseAnnotations({ [ANNOTATION_WEIGHT]: value });
      expect(r.weight).toBe(DEFAULT_WEIGHT);
      expect(r.errors).toEqual([
        {
          field: 'metadata.annotations["slotmap.dev/weight"]',
          value,
          message: `must be an integer from 0 to ${LIMITS.maxWeight} (0 drains the shard); ignored, the shard keeps the default weight 1`,
        },
      ]);
      expect(formatFieldErrors(r.errors)).toBe(
        `metadata.annotations["slotmap.dev/weight"]: must be an integer from 0 to ${LIMITS.maxWeight} (0 drains the shard); ignored, the shard keeps the default weight 1; got ${JSON.stringify(value)}`,
      );
    },
  );

  it.each(["", " uid", "x".repeat(129)])("slotmap-uid %j: error, no uid", (value) => {
    const r = parseShardLeaseAnnotations({
      [ANNOTATION_SLOTMAP_UID]: value,
      [ANNOTATION_OBSERVED_GENERATION]: "3",
    });
    expect(r.slotmapUid).toBeUndefined();
    expect(r.observedGeneration).toBe(3);
    expect(r.errors[0]?.field).toBe('metadata.annotations["slotmap.dev/slotmap-uid"]');
  });

  it("reports every malformed annotation and never throws on non-string values", () => {
    const junk = {
      [ANNOTATION_OBSERVED_GENERATION]: 5,
      [ANNOTATION_SLOTMAP_UID]: null,
      [ANNOTATION_WEIGHT]: { w: 1 },
    } as unknown as Record<string, string>;
    const r = parseShardLeaseAnnotations(junk);
    expect(r).toMatchObject({ observedGeneration: undefined, slotmapUid: undefined, weight: 1 });
    expect(r.errors.map((e) => e.field)).toEqual([
      'metadata.annotations["slotmap.dev/observed-generation"]',
      'metadata.annotations["slotmap.dev/slotmap-uid"]',
      'metadata.annotations["slotmap.dev/weight"]',
    ]);
    expect(() => parseShardLeaseAnnotations("nope" as unknown as Record<string, string>)).not.toThrow();
  });

  it("ignores inherited properties", () => {
    const proto = { [ANNOTATION_WEIGHT]: "0" };
    const annotations = Object.create(proto) as Record<string, string>;
    expect(parseShardLeaseAnnotations(annotations).weight).toBe(1);
  });
});

describe("ackedGeneration", () => {
  it("credits the ack only to the SlotMap instance it names", () => {
    const parsed = parseShardLeaseAnnotations({
      [ANNOTATION_OBSERVED_GENERATION]: "7",
      [ANNOTATION_SLOTMAP_UID]: UID,
    });
    expect(ackedGeneration(parsed, UID)).toBe(7);
    // A recreated SlotMap has a new UID and restarts at generation 1: the old ack must not count.
    expect(ackedGeneration(parsed, "another-uid")).toBe(0);
    expect(ackedGeneration(parsed, undefined)).toBe(0);
    expect(ackedGeneration(parseShardLeaseAnnotations({ [ANNOTATION_OBSERVED_GENERATION]: "7" }), UID)).toBe(
      0,
    );
    expect(ackedGeneration(parseShardLeaseAnnotations({ [ANNOTATION_SLOTMAP_UID]: UID }), UID)).toBe(0);
  });
});

describe("effectiveWeight", () => {
  it("prefers spec.weights over the Lease annotation", () => {
    const spec = { weights: { "s-0": 0, "s-1": 5 } };
    expect(effectiveWeight(spec, "s-0", 3)).toBe(0);
    expect(effectiveWeight(spec, "s-1", 3)).toBe(5);
    expect(effectiveWeight(spec, "s-2", 3)).toBe(3);
    expect(effectiveWeight({}, "s-0", 2)).toBe(2);
    expect(effectiveWeight({ weights: undefined }, "s-0", 2)).toBe(2);
    expect(effectiveWeight(undefined, "s-0", 1)).toBe(1);
  });

  it("does not read inherited keys as shard names", () => {
    expect(effectiveWeight({ weights: {} }, "constructor", 1)).toBe(1);
    expect(effectiveWeight({ weights: {} }, "__proto__", 1)).toBe(1);
  });
});

describe("leaseTimingProblems (the one tenure rule of shards and the coordinator's election)", () => {
  const names = { leaseDuration: "L", renewDeadline: "R" };
  it("accepts renewDeadline < leaseDuration and retryPeriod < renewDeadline", () => {
    expect(leaseTimingProblems({ leaseDuration: 15, renewDeadline: 10, retryPeriod: 2 }, names)).toEqual([]);
  });
  it("names each broken relation, the value and the other timing", () => {
    expect(leaseTimingProblems({ leaseDuration: 10, renewDeadline: 10, retryPeriod: 10 }, names)).toEqual([
      {
        timing: "renewDeadline",
        value: 10,
        message: "must be less than L (10): the difference is the safety margin",
      },
      {
        timing: "retryPeriod",
        value: 10,
        message: "must be less than R (10), or a single failed renewal ends the tenure",
      },
    ]);
  });
});
