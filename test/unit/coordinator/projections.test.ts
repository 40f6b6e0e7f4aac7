import { describe, expect, it } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_REFUSED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
} from "../../../src/api/lease.js";
import { projectionName, projectStatus } from "../../../src/api/projection.js";
import { type ObservedProjection, projectionActions } from "../../../src/coordinator/core/projections.js";

const SM = { name: "demo", uid: "uid-1" };
const STATUS = {
  assignmentGeneration: 4,
  shards: [
    { name: "a", slots: "0-8191", holderIdentity: "a-1" },
    { name: "b", slots: "8192-16383", holderIdentity: "b-1" },
  ],
  migrations: [],
};
const LEASES = [
  { namespace: "ns", name: "a" },
  { namespace: "ns", name: "b" },
  { namespace: "other", name: "stray" },
];

/** Lease a with the ack and refusal annotations of SlotMap instance SM. */
function leaseOfA(g: { ack: number; refused?: number }) {
  return {
    ...LEASES[0]!,
    annotations: {
      [ANNOTATION_SLOTMAP_UID]: SM.uid,
      [ANNOTATION_OBSERVED_GENERATION]: String(g.ack),
      ...(g.refused === undefined ? {} : { [ANNOTATION_REFUSED_GENERATION]: String(g.refused) }),
    },
  };
}

function observed(namespace: string, shard: string, spec: unknown, rv = "10"): ObservedProjection {
  return { namespace, name: projectionName("demo", shard), uid: `u-${shard}`, resourceVersion: rv, spec };
}

function input(over: Partial<Parameters<typeof projectionActions>[0]> = {}) {
  return {
    slotMap: SM,
    status: STATUS,
    writesStatus: false,
    leaseNamespace: "ns",
    leases: LEASES,
    observed: [],
    ...over,
  };
}

describe("projectionActions", () => {
  it("creates a projection for every Lease, in its own namespace, and for every listed shard", () => {
    const actions = projectionActions(input({ leases: [LEASES[0]!, LEASES[2]!] }));
    expect(actions.map((a) => [a.type, a.namespace, a.name])).toEqual([
      ["writeProjection", "ns", "demo.a"],
      ["writeProjection", "other", "demo.stray"],
      ["writeProjection", "ns", "demo.b"], // listed in the table, its Lease gone: its process may run
    ]);
    const stray = actions[1]!;
    expect(stray.type === "writeProjection" && stray.resourceVersion).toBe(undefined);
    expect(stray.type === "writeProjection" && stray.spec.entry).toBeUndefined();
  });

  it("projects nothing in a step that writes the status, or without an accepted status", () => {
    expect(projectionActions(input({ writesStatus: true }))).toEqual([]);
    expect(projectionActions(input({ status: undefined }))).toEqual([]);
  });

  it("rewrites only what changed, at the observed resourceVersion, whatever generation it carries", () => {
    const old = { ...STATUS, assignmentGeneration: 2 };
    const actions = projectionActions(
      input({
        observed: [
          observed("ns", "a", projectStatus(old, SM, "a")), // same content, older generation: kept
          observed("ns", "b", projectStatus({ ...old, shards: [STATUS.shards[0]!] }, SM, "b"), "11"),
          observed("other", "stray", { garbage: true }, "12"), // malformed: rewritten
        ],
      }),
    );
    expect(
      actions.map((a) => [a.type, a.name, a.type === "writeProjection" ? a.resourceVersion : ""]),
    ).toEqual([
      ["writeProjection", "demo.b", "11"],
      ["writeProjection", "demo.stray", "12"],
    ]);
    const b = actions[0]!;
    expect(b.type === "writeProjection" && b.spec.assignmentGeneration).toBe(4);
  });

  it("rewrites every projection at each drain barrier, even one whose content did not change", () => {
    const barrier = (g: number) => ({
      assignmentGeneration: g,
      shards: STATUS.shards.map((e) => ({ name: e.name, slots: "" })),
      migrations: [],
    });
    const at5 = [observed("ns", "a", projectStatus(barrier(5), SM, "a"), "20")];
    const leases = [LEASES[0]!];
    // The same barrier: nothing to write. The next one (a reset after a barrier): same content,
    // but the shard must be able to ack its generation.
    expect(
      projectionActions(input({ status: barrier(5), leases, observed: at5 })).map((a) => a.name),
    ).toEqual(["demo.b"]);
    const next = projectionActions(input({ status: barrier(6), leases, observed: at5 }));
    const a = next.find((x) => x.name === "demo.a");
    expect(a?.type === "writeProjection" && a.spec.assignmentGeneration).toBe(6);
  });

  it("rewrites a projection set back below its shard's ack, even when its content is right", () => {
    // A backup of a.'s projection from before a drain barrier: the same table came back since.
    const restored = observed(
      "ns",
      "a",
      projectStatus({ ...STATUS, assignmentGeneration: 2 }, SM, "a"),
      "30",
    );
    const leases = [leaseOfA({ ack: 3 })];
    const actions = projectionActions(input({ leases, observed: [restored] }));
    const a = actions.find((x) => x.name === "demo.a");
    expect(a?.type === "writeProjection" && [a.resourceVersion, a.spec.assignmentGeneration]).toEqual([
      "30",
      4,
    ]);
    // At or above the ack: kept.
    expect(
      projectionActions(input({ leases: [leaseOfA({ ack: 2 })], observed: [restored] })).find(
        (x) => x.name === "demo.a",
      ),
    ).toBeUndefined();
  });

  it("rewrites a projection its shard refuses when the status has a higher generation to offer", () => {
    // a refused generation 3 (it had applied another table at 3, then saw a backup); the status
    // moved on to 4 for b only, so a's content is the same as at 3 (P8 of docs/verification.md).
    const refusedOne = observed(
      "ns",
      "a",
      projectStatus({ ...STATUS, assignmentGeneration: 3 }, SM, "a"),
      "50",
    );
    const a = (refused: number, status = STATUS) =>
      projectionActions(
        input({ status, leases: [leaseOfA({ ack: 3, refused })], observed: [refusedOne] }),
      ).find((x) => x.name === "demo.a");
    const written = a(3);
    expect(
      written?.type === "writeProjection" && [written.resourceVersion, written.spec.assignmentGeneration],
    ).toEqual(["50", 4]);
    // A refusal below the projection's generation is an old one: nothing to do.
    expect(a(2)).toBeUndefined();
    // No higher generation to offer: the step resets the table instead (refusalResets).
    expect(a(3, { ...STATUS, assignmentGeneration: 3 })).toBeUndefined();
  });

  it("rewrites a source's projection below its migration's generation, even when its row came back", () => {
    // a gained 100-199 and gave it away again between projections: its row is as at generation 2.
    const now = {
      ...STATUS,
      assignmentGeneration: 5,
      migrations: [{ slots: "100-199", from: "a", to: "b", generation: 5 }],
    };
    const old = observed("ns", "a", projectStatus({ ...STATUS, assignmentGeneration: 2 }, SM, "a"), "40");
    const actions = projectionActions(input({ status: now, leases: [LEASES[0]!], observed: [old] }));
    const a = actions.find((x) => x.name === "demo.a");
    expect(a?.type === "writeProjection" && a.spec.assignmentGeneration).toBe(5);
  });

  it("deletes the projections no shard needs, with uid and resourceVersion preconditions", () => {
    const actions = projectionActions(
      input({
        leases: [LEASES[0]!],
        observed: [observed("ns", "gone", {}, "13"), observed("ns", "a", {}, "14")],
      }),
    );
    expect(actions).toContainEqual({
      type: "deleteProjection",
      namespace: "ns",
      name: "demo.gone",
      uid: "u-gone",
      resourceVersion: "13",
    });
    expect(actions.filter((a) => a.type === "deleteProjection")).toHaveLength(1);
  });
});
