import { describe, expect, it } from "vitest";
import { type ObservedLease, sweepOrphans, TAKEOVER_HOLDER } from "../../../src/coordinator/core/index.js";

const lease = (
  name: string,
  holder: string,
  renewTime = "2030-01-01T00:00:00.000000Z",
  rv = "1",
): ObservedLease => ({
  metadata: { name, namespace: "ns", uid: `uid-${name}`, resourceVersion: rv },
  spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime },
});

const sweep = (leases: ObservedLease[], now: number, previous = {}) =>
  sweepOrphans({ leases, previous, now, orphanAfterMs: 60_000, defaultLeaseDurationMs: 15_000 });

describe("sweepOrphans (Leases of deleted SlotMaps)", () => {
  it("deletes a released Lease orphanAfter after it was first seen, with uid and resourceVersion preconditions", () => {
    const first = sweep([lease("a", "")], 0);
    expect(first.deletes).toEqual([]);
    expect(first.nextAt).toBe(60_000);
    expect(sweep([lease("a", "")], 59_999, first.memory).deletes).toEqual([]);
    expect(sweep([lease("a", "")], 60_000, first.memory).deletes).toEqual([
      { type: "deleteLease", namespace: "ns", name: "a", uid: "uid-a", resourceVersion: "1" },
    ]);
    // Taken over by a coordinator counts as free too.
    expect(
      sweep([lease("t", TAKEOVER_HOLDER)], 60_000, sweep([lease("t", TAKEOVER_HOLDER)], 0).memory).deletes,
    ).toHaveLength(1);
  });

  it("a held Lease waits its duration plus orphanAfter without renewal; every renewal restarts the wait", () => {
    let r = sweep([lease("b", "b-1")], 0);
    expect(r.nextAt).toBe(75_000);
    r = sweep([lease("b", "b-1", "2030-01-01T00:00:50.000000Z", "2")], 50_000, r.memory);
    expect(r.deletes).toEqual([]);
    expect(r.nextAt).toBe(125_000);
    // A label written by a tool (new resourceVersion, same holder and renewTime) is no renewal.
    r = sweep([lease("b", "b-1", "2030-01-01T00:00:50.000000Z", "3")], 100_000, r.memory);
    expect(r.nextAt).toBe(125_000);
    expect(sweep([lease("b", "b-1", "2030-01-01T00:00:50.000000Z", "3")], 125_000, r.memory).deletes).toEqual(
      [{ type: "deleteLease", namespace: "ns", name: "b", uid: "uid-b", resourceVersion: "3" }],
    );
  });

  it("forgets Leases no longer passed (their SlotMap was re-created): nothing waits", () => {
    const r = sweep([lease("a", "")], 0);
    const again = sweep([], 10_000, r.memory);
    expect(again).toEqual({ memory: {}, deletes: [], nextAt: undefined });
  });
});
