import { describe, expect, it } from "vitest";
import { formatFieldError } from "../../../src/api/errors.js";
import {
  parseProjectionSpec,
  projectionName,
  projectStatus,
  sameProjection,
  viewOfProjection,
} from "../../../src/api/projection.js";

const SM = { name: "demo", uid: "uid-1" };
const STATUS = {
  assignmentGeneration: 7,
  rulesFingerprint: "0123456789abcdef",
  shards: [
    { name: "a", slots: "0-8191", holderIdentity: "a-1" },
    { name: "b", slots: "8192-12287", holderIdentity: "b-1" },
    { name: "c", slots: "" },
  ],
  migrations: [
    { slots: "12288-16383", from: "b", to: "c", generation: 7 },
    { slots: "100-200", from: "x", to: "a", generation: 6 },
  ],
};

describe("projectionName", () => {
  it("joins the SlotMap and the shard with a dot", () => {
    expect(projectionName("demo", "shard-0")).toBe("demo.shard-0");
  });

  it("stays a unique DNS subdomain of at most 253 characters when the join is longer", () => {
    const long = "s".repeat(200);
    const a = projectionName(long, `${"x".repeat(100)}-1`);
    const b = projectionName(long, `${"x".repeat(100)}-2`);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });
});

describe("projectStatus", () => {
  it("carries the shard's row, the migrations towards it, the generation and the fingerprint", () => {
    const p = projectStatus(STATUS, SM, "c");
    expect(p).toEqual({
      slotMap: "demo",
      slotMapUid: "uid-1",
      shard: "c",
      assignmentGeneration: 7,
      rulesFingerprint: "0123456789abcdef",
      drainBarrier: false,
      entry: { slots: "" },
      migrations: [{ slots: "12288-16383", from: "b", to: "c", generation: 7 }],
    });
    // Nothing of another shard's row, and not the migrations away from the shard.
    expect(projectStatus(STATUS, SM, "b").migrations).toEqual([]);
    expect(projectStatus(STATUS, SM, "b").entry).toEqual({ slots: "8192-12287", holderIdentity: "b-1" });
  });

  it("has no entry for a shard the table does not list, and flags a table that assigns nothing", () => {
    expect(projectStatus(STATUS, SM, "z").entry).toBeUndefined();
    const empty = { ...STATUS, shards: STATUS.shards.map((s) => ({ ...s, slots: "" })), migrations: [] };
    expect(projectStatus(empty, SM, "a").drainBarrier).toBe(true);
    expect(projectStatus(STATUS, SM, "a").drainBarrier).toBe(false);
    // Every row empty but slots migrating: a handoff, not a barrier (the coordinator's definition).
    const migrating = { ...empty, migrations: [{ slots: "0-16383", from: "a", to: "b", generation: 7 }] };
    expect(projectStatus(migrating, SM, "c").drainBarrier).toBe(false);
  });
});

describe("sameProjection", () => {
  it("ignores the generation and nothing else", () => {
    const p = projectStatus(STATUS, SM, "a");
    expect(sameProjection(p, { ...p, assignmentGeneration: 99 })).toBe(true);
    expect(sameProjection(p, { ...p, entry: { slots: "0-8190", holderIdentity: "a-1" } })).toBe(false);
    expect(sameProjection(p, { ...p, entry: { slots: "0-8191", holderIdentity: "a-2" } })).toBe(false);
    expect(sameProjection(p, { ...p, drainBarrier: true })).toBe(false);
    expect(sameProjection(p, { ...p, slotMapUid: "uid-2" })).toBe(false);
    expect(sameProjection(p, { ...p, rulesFingerprint: "fedcba9876543210" })).toBe(false);
    expect(sameProjection(p, { ...p, migrations: [] })).toBe(false);
    expect(sameProjection(p, { ...p, migrations: [{ ...p.migrations[0]!, generation: 8 }] })).toBe(false);
    const { entry: _, ...unlisted } = p;
    expect(sameProjection(p, unlisted)).toBe(false);
  });
});

describe("viewOfProjection", () => {
  it("is a one-row status view with the barrier flag", () => {
    const v = viewOfProjection(projectStatus(STATUS, SM, "a"));
    expect(v.shards).toEqual([{ name: "a", slots: "0-8191", holderIdentity: "a-1" }]);
    expect(v.assignmentGeneration).toBe(7);
    expect(v.drainBarrier).toBe(false);
    expect(v.migrations).toHaveLength(1);
    expect(viewOfProjection(projectStatus(STATUS, SM, "z")).shards).toEqual([]);
  });
});

describe("parseProjectionSpec", () => {
  it("accepts what projectStatus writes", () => {
    const p = projectStatus(STATUS, SM, "c");
    expect(parseProjectionSpec(JSON.parse(JSON.stringify(p)))).toEqual({ ok: true, value: p });
  });

  it("names the field and the problem of a bad projection", () => {
    const p = projectStatus(STATUS, SM, "c");
    const bad = (patch: Record<string, unknown>) => {
      const r = parseProjectionSpec({ ...p, ...patch });
      if (r.ok) throw new Error("expected an error");
      return r.errors.map(formatFieldError).join("\n");
    };
    expect(bad({ assignmentGeneration: -1 })).toMatch(/^spec\.assignmentGeneration: /);
    expect(bad({ entry: { slots: "5-1" } })).toMatch(/^spec\.entry\.slots: /);
    expect(bad({ shard: "Not_A_Name" })).toMatch(/^spec\.shard: /);
    expect(bad({ migrations: [{ slots: "1", from: "b", to: "a", generation: 3 }] })).toMatch(
      /^spec\.migrations\[0\]\.to: must be the projection's shard "c"/,
    );
    expect(bad({ drainBarrier: "yes" })).toMatch(/^spec\.drainBarrier: /);
  });
});
