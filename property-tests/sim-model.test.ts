/**
 * The simulator's own parts, checked on their own: if the model of the API server accepted a
 * stale write, or the invariant checkers could not fail, the handoff property would prove nothing.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { projectionName, projectStatus } from "../src/api/projection.js";
import type { SlotMapStatus } from "../src/api/v1alpha1.js";
import type { LeaseObject, WriteLeaseEffect } from "../src/client/core/types.js";
import { ApiServer, LEASE_PREFIX, NS, PROJ_PREFIX, projKey, SM_KEY } from "./sim/apiserver.js";
import { ProcessClock } from "./sim/clock.js";
import { command, commandsArb, kindOf } from "./sim/commands.js";
import {
  checkLeaseTransition,
  FenceTracker,
  type LeaseLike,
  ObjectTracker,
  SafetyTracker,
  Violation,
} from "./sim/invariants.js";
import { withSkeleton } from "./sim/run.js";
import { assertProperty } from "./support/fc.js";

const SPEC = {
  leaseNamespace: NS,
  resources: [{ resource: "secrets" }],
  policy: { maxMigratingSlots: 16384, handoffTimeoutSeconds: 30 },
};

function leaseWrite(
  verb: "create" | "update",
  resourceVersion: string | undefined,
  holder: string,
  annotations: Record<string, string> = {},
): WriteLeaseEffect {
  const lease: LeaseObject = {
    metadata: {
      name: "s0",
      namespace: NS,
      annotations,
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15 },
  };
  return { type: "writeLease", writeId: 1, kind: "acquire", verb, lease, resourceVersion, timeoutAt: 0 };
}

/** The `slotMap` of a coordinator's status write: the SlotMap as the coordinator last saw it. */
function statusTarget(sm: { metadata: { name: string; uid: string; resourceVersion: string } }) {
  return { name: sm.metadata.name, uid: sm.metadata.uid, resourceVersion: sm.metadata.resourceVersion };
}

describe("API server model", () => {
  it("creates a Lease once; a second create is a conflict carrying the current object", () => {
    const s = new ApiServer();
    const a = s.writeLease(leaseWrite("create", undefined, "p1"));
    expect(a.outcome).toBe("ok");
    const b = s.writeLease(leaseWrite("create", undefined, "p2"));
    expect(b).toMatchObject({ outcome: "conflict", current: { spec: { holderIdentity: "p1" } } });
    expect(s.conflicts).toBe(1);
  });

  it("applies an update only at the current resourceVersion (optimistic concurrency)", () => {
    const s = new ApiServer();
    const created = s.writeLease(leaseWrite("create", undefined, "p1"));
    if (created.outcome !== "ok") throw new Error("create failed");
    const rv = created.lease.metadata.resourceVersion!;
    const renewed = s.writeLease(leaseWrite("update", rv, "p1"));
    expect(renewed.outcome).toBe("ok");
    // The same precondition again is now stale: 409, and nothing changes.
    const stale = s.writeLease(leaseWrite("update", rv, "p2"));
    expect(stale.outcome).toBe("conflict");
    expect(s.lease("s0")?.spec.holderIdentity).toBe("p1");
    const history = s.versions(`${LEASE_PREFIX}s0`).map((v) => v.rv);
    expect(history).toHaveLength(2);
    expect(history[1]).toBeGreaterThan(history[0]!);
  });

  it("updates of a Lease that does not exist are conflicts with current null (404)", () => {
    const s = new ApiServer();
    expect(s.writeLease(leaseWrite("update", "5", "p1"))).toEqual({ outcome: "conflict", current: null });
  });

  it("rejects a status write at a stale resourceVersion or for another SlotMap instance", () => {
    const s = new ApiServer();
    const sm = s.createSlotMap(SPEC);
    const target = statusTarget(sm);
    s.updateSpec({ ...SPEC, weights: { s0: 2 } });
    const stale = s.coordinatorWrite(
      { type: "updateStatus", slotMap: target, status: {} as SlotMapStatus },
      new Map(),
    );
    expect(stale).toBe("conflict");
    s.deleteSlotMap();
    const again = s.createSlotMap(SPEC);
    expect(again.metadata.uid).not.toBe(sm.metadata.uid);
    expect(s.versions(SM_KEY).map((v) => v.obj === null)).toEqual([false, false, true, false]);
  });

  it("rejects a leaseNamespace change (the CRD's CEL rule self == oldSelf) and keeps the spec", () => {
    const s = new ApiServer();
    s.createSlotMap(SPEC);
    expect(s.updateSpec({ ...SPEC, leaseNamespace: "elsewhere" })).toBe(false);
    expect(s.rejectedSpecEdits).toBe(1);
    expect(s.slotMap()?.spec.leaseNamespace).toBe(NS);
    expect(s.updateSpec({ ...SPEC, policy: { ...SPEC.policy, maxLeaseDurationSeconds: 30 } })).toBe(true);
    expect(s.slotMap()?.metadata.generation).toBe(2);
  });

  it("people's Lease writes bypass the ack check; the process's next write is judged against its own", () => {
    const s = new ApiServer();
    const created = s.writeLease(
      leaseWrite("create", undefined, "p1", {
        "slotmap.dev/observed-generation": "5",
        "slotmap.dev/slotmap-uid": "sm",
      }),
    );
    if (created.outcome !== "ok") throw new Error("create failed");
    // A person removes the ack (not a protocol violation), then the holder renews without one: the
    // transition from the person's version is not judged either.
    s.personWriteLease("s0", (cur) =>
      cur === null ? null : { ...cur, metadata: { ...cur.metadata, annotations: {} } },
    );
    const rv = s.lease("s0")!.metadata.resourceVersion;
    expect(s.writeLease(leaseWrite("update", rv, "p1")).outcome).toBe("ok");
    expect(s.personWrites).toBe(1);
    // A process's own regression is still caught.
    const rv2 = s.lease("s0")!.metadata.resourceVersion;
    s.writeLease(
      leaseWrite("update", rv2, "p1", {
        "slotmap.dev/observed-generation": "7",
        "slotmap.dev/slotmap-uid": "sm",
      }),
    );
    const rv3 = s.lease("s0")!.metadata.resourceVersion;
    expect(() => s.writeLease(leaseWrite("update", rv3, "p1"))).toThrow(Violation);
    // Deleting by hand leaves a deletion in the history (watchers see it).
    s.personWriteLease("s0", () => null);
    expect(s.lease("s0")).toBeNull();
  });

  it("hands out frozen objects, so a core that mutated its input would throw", () => {
    const s = new ApiServer();
    const sm = s.createSlotMap(SPEC);
    expect(Object.isFrozen(sm.spec.policy)).toBe(true);
    expect(() => {
      (sm.spec.policy as { maxMigratingSlots: number }).maxMigratingSlots = 1;
    }).toThrow(TypeError);
  });
});

describe("API server model: SlotMapShard projections", () => {
  const STATUS = {
    assignmentGeneration: 1,
    shards: [{ name: "s0", slots: "0-16383", holderIdentity: "p1" }],
    migrations: [],
    unassignedSlots: "",
    conditions: [],
  } as unknown as SlotMapStatus;
  const NAME = projectionName("sim", "s0");

  /** A server with a SlotMap whose status (generation 1) the coordinator wrote. */
  function withStatus(): { s: ApiServer; uid: string } {
    const s = new ApiServer();
    const sm = s.createSlotMap(SPEC);
    const target = statusTarget(sm);
    expect(s.coordinatorWrite({ type: "updateStatus", slotMap: target, status: STATUS }, new Map())).toBe(
      "ok",
    );
    return { s, uid: sm.metadata.uid };
  }

  it("creates once (AlreadyExists), replaces only at the current resourceVersion, deletes with preconditions", () => {
    const { s, uid } = withStatus();
    const spec = projectStatus(STATUS, { name: "sim", uid }, "s0");
    const write = (resourceVersion: string | undefined) =>
      s.coordinatorWrite(
        { type: "writeProjection", namespace: NS, name: NAME, resourceVersion, spec },
        new Map(),
      );
    expect(write("5")).toBe("conflict"); // replace of an absent object: 404
    expect(write(undefined)).toBe("ok");
    expect(write(undefined)).toBe("conflict"); // AlreadyExists
    const first = s.projection(NAME)!;
    expect(write("1")).toBe("conflict"); // stale resourceVersion
    expect(write(first.metadata.resourceVersion)).toBe("ok");
    const second = s.projection(NAME)!;
    expect(second.metadata.uid).toBe(first.metadata.uid);
    expect(Number(second.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion));
    const del = (u: string, rv: string) =>
      s.coordinatorWrite(
        { type: "deleteProjection", namespace: NS, name: NAME, uid: u, resourceVersion: rv },
        new Map(),
      );
    expect(del(first.metadata.uid, first.metadata.resourceVersion)).toBe("conflict");
    expect(del("other", second.metadata.resourceVersion)).toBe("conflict");
    expect(del(second.metadata.uid, second.metadata.resourceVersion)).toBe("ok");
    expect(s.projection(NAME)).toBeNull();
    expect(del(second.metadata.uid, second.metadata.resourceVersion)).toBe("ok"); // 404 is success
    expect(s.versions(projKey("s0")).map((v) => v.obj === null)).toEqual([false, false, true]);
    expect(s.projectionKeys()).toEqual([PROJ_PREFIX + NAME]);
    expect(s.projectionWrites).toBe(3);
  });

  it("hands out frozen projections; people delete and restore them with new resourceVersions", () => {
    const { s, uid } = withStatus();
    const spec = projectStatus(STATUS, { name: "sim", uid }, "s0");
    expect(s.personWriteProjection(NAME, null)).toBe(false); // nothing to delete
    expect(s.personWriteProjection(NAME, spec)).toBe(true); // a restore creates it
    const p = s.projection(NAME)!;
    expect(Object.isFrozen(p.spec)).toBe(true);
    expect(() => {
      (p.spec as { assignmentGeneration: number }).assignmentGeneration = 7;
    }).toThrow(TypeError);
    expect(s.personWriteProjection(NAME, { ...spec, assignmentGeneration: 0 })).toBe(true);
    expect(s.projection(NAME)!.metadata.uid).toBe(p.metadata.uid);
    expect(s.personWriteProjection(NAME, null)).toBe(true);
    expect(s.personWrites).toBe(3);
  });

  it("projection invariant: the coordinator may project only a status already written", () => {
    const { s, uid } = withStatus();
    const written = projectStatus(STATUS, { name: "sim", uid }, "s0");
    const unwritten = projectStatus({ ...STATUS, assignmentGeneration: 2 }, { name: "sim", uid }, "s0");
    const write = (spec: typeof written) =>
      s.coordinatorWrite(
        {
          type: "writeProjection",
          namespace: NS,
          name: NAME,
          resourceVersion: s.projection(NAME)?.metadata.resourceVersion,
          spec,
        },
        new Map(),
      );
    expect(write(written)).toBe("ok");
    expect(() => write(unwritten)).toThrow(/a table no status of that SlotMap has shown/);
    expect(() => write({ ...written, slotMapUid: "another" })).toThrow(Violation);
  });
});

describe("invariant checkers can fail", () => {
  it("safety: a slot ACTIVE on two processes is a violation; the same process twice is not", () => {
    const t = new SafetyTracker((id) => `p${id}`);
    t.start(1, 7, 0);
    t.start(1, 7, 1);
    t.finish(1, 7);
    expect(() => t.start(2, 7, 2)).toThrow(/slot 7 is ACTIVE on two processes/);
    t.finish(1, 7);
    expect(() => t.start(2, 7, 3)).not.toThrow();
  });

  it("safety: two processes on one object through different roots is a violation; one process twice is not", () => {
    const t = new ObjectTracker((id) => `p${id}`);
    t.start(1, [4, 5], 0); // a reconcile of 4 that also works on 5 (placement B)
    t.start(1, [5], 1);
    expect(() => t.start(2, [5], 2)).toThrow(/object k5 is ACTIVE on two processes/);
    expect(() => t.start(2, [6, 4], 2)).toThrow(/object k4 is ACTIVE on two processes/);
    expect(() => t.start(2, [6, 7], 3)).not.toThrow();
    t.finish(1, [4, 5]);
    t.finish(1, [5]);
    expect(() => t.start(2, [4, 5], 4)).not.toThrow();
    expect(() => t.finish(1, [4])).toThrow(/finish without start/);
  });

  it("fence: another process starting with a token not above the slot's newest is a violation", () => {
    const t = new FenceTracker((id) => `p${id}`);
    t.start(1, 7, "005", 0);
    t.start(1, 7, "005", 1); // the same process again: equal is fine
    expect(() => t.start(2, 7, "005", 2)).toThrow(/starts with fencing token 005, not above 005 of p1/);
    expect(() => t.start(1, 7, "004", 3)).toThrow(Violation); // a process's own token went down
    t.start(2, 7, "006", 4);
    expect(() => t.start(1, 7, "005", 5)).toThrow(/not above 006 of p2/);
    t.start(1, 8, "001", 6); // other slots are tracked apart
  });

  it("ack: an ack that goes back under the same holder is a violation; a new holder may clear it", () => {
    const lease = (holder: string, gen?: number): LeaseLike => ({
      metadata: {
        uid: "u",
        annotations:
          gen === undefined
            ? {}
            : { "slotmap.dev/observed-generation": String(gen), "slotmap.dev/slotmap-uid": "sm" },
      },
      spec: { holderIdentity: holder },
    });
    expect(() => checkLeaseTransition(lease("p1", 5), lease("p1", 4), "s0")).toThrow(Violation);
    expect(() => checkLeaseTransition(lease("p1", 5), lease("p1"), "s0")).toThrow(/regressed to none/);
    expect(() => checkLeaseTransition(lease("p1", 5), lease("p2"), "s0")).not.toThrow();
    expect(() => checkLeaseTransition(lease("p1", 5), lease("p1", 6), "s0")).not.toThrow();
  });
});

describe("clocks", () => {
  it("a process clock runs at its rate, and realAt inverts local", () => {
    assertProperty(
      fc.property(
        fc.double({ min: 0.99, max: 1.01, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        (rate, base, dt) => {
          const c = new ProcessClock(100, base, rate, 0);
          const local = c.local(100 + dt);
          expect(local - base).toBeCloseTo(dt * rate, 3);
          const r = c.realAt(local);
          expect(c.local(r)).toBeGreaterThanOrEqual(local);
          expect(r - (100 + dt)).toBeLessThan(1e-3);
        },
      ),
    );
  });

  it("rejects a rate that is not positive", () => {
    expect(() => new ProcessClock(0, 0, 0, 0)).toThrow(/rate: must be > 0/);
  });
});

describe("command lists", () => {
  it("a skeleton's commands land at their fractions and the random commands keep their order", () => {
    assertProperty(
      fc.property(commandsArb(50), (cmds) => {
        const pin = command("failover", 1, 2);
        const out = withSkeleton(cmds, [[0.5, pin]]);
        expect(out).toHaveLength(cmds.length + 1);
        expect(out[Math.floor(0.5 * cmds.length)]).toBe(pin);
        expect(out.filter((c) => c !== pin)).toEqual(cmds);
      }),
      { numRuns: 200 },
    );
  });

  it("command() builds a command of the named kind", () => {
    expect(kindOf(command("crash"))).toBe("crash");
    expect(kindOf(command("advance"))).toBe("advance");
  });
});
