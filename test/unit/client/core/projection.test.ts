import { describe, expect, it } from "vitest";
import { projectStatus } from "../../../../src/api/projection.js";
import { readProjection } from "../../../../src/client/core/projection.js";

const SPEC = projectStatus(
  {
    assignmentGeneration: 5,
    shards: [{ name: "a", slots: "0-99", holderIdentity: "a-1" }],
    migrations: [{ slots: "100-199", from: "b", to: "a", generation: 5 }],
  },
  { name: "demo", uid: "uid-1" },
  "a",
);
const AT = { now: 1, slotMap: "demo", shard: "a", slotMapUid: "uid-1", handoffTimeoutSeconds: 30 };

describe("readProjection", () => {
  it("makes the machine's slotMapObserved input and the importing slots", () => {
    const r = readProjection({ spec: SPEC, resourceVersion: "42" }, AT);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.input).toEqual({
      type: "slotMapObserved",
      now: 1,
      uid: "uid-1",
      status: {
        assignmentGeneration: 5,
        drainBarrier: false,
        shards: [{ name: "a", slots: "0-99", holderIdentity: "a-1" }],
        migrations: SPEC.migrations,
      },
      resourceVersion: "42",
      handoffTimeoutSeconds: 30,
    });
    expect(r.importing).toEqual([{ start: 100, end: 199 }]);
  });

  it("ignores a malformed projection, naming the field", () => {
    const r = readProjection({ spec: { ...SPEC, assignmentGeneration: "x" }, resourceVersion: "1" }, AT);
    expect(r).toMatchObject({ ok: false });
    expect(!r.ok && r.reason).toMatch(/spec\.assignmentGeneration/);
  });

  it("ignores a projection of another instance of the SlotMap, or while the SlotMap is not seen", () => {
    // A backup can put an old instance's projection back: taken for a re-creation, it would make
    // the machine retire the current instance.
    const old = readProjection({ spec: SPEC, resourceVersion: "1" }, { ...AT, slotMapUid: "uid-2" });
    expect(!old.ok && old.reason).toMatch(/not of the current instance uid-2/);
    expect(readProjection({ spec: SPEC, resourceVersion: "1" }, { ...AT, slotMapUid: undefined }).ok).toBe(
      false,
    );
  });

  it("ignores a projection of another SlotMap or shard", () => {
    expect(readProjection({ spec: SPEC, resourceVersion: "1" }, { ...AT, shard: "b" }).ok).toBe(false);
    expect(readProjection({ spec: SPEC, resourceVersion: "1" }, { ...AT, slotMap: "other" }).ok).toBe(false);
  });
});
