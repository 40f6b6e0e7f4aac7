// The shard core treats a Lease held by the coordinator's takeover marker as free: the holder it
// replaced was fenced by expiry before the takeover, so waiting another leaseDuration would only
// delay the shard's restart (docs/dev/coordinator-core.md "Lease states").
import { describe, expect, it } from "vitest";
import { TAKEOVER_HOLDER } from "../../../../src/coordinator/core/types.js";
import { Driver, foreignLease, ident, ofType } from "../core/harness.js";

describe("a Lease taken over by the coordinator", () => {
  it("is acquired at once by a new process, with the takeover's resourceVersion as precondition", () => {
    const d = new Driver();
    const taken = d.api.put(foreignLease(TAKEOVER_HOLDER, "0"));
    d.at(0).observeLease(taken);
    const w = d.onlyPending();
    expect(w.kind).toBe("acquire");
    expect(w.verb).toBe("update");
    expect(w.resourceVersion).toBe(taken.metadata.resourceVersion);
    expect(w.lease.spec?.holderIdentity).toBe(ident(1));
    // A holder change counts as a transition.
    expect(w.lease.spec?.leaseTransitions).toBe(4);
    d.reply();
    expect(d.m.phase()).toBe("active");
  });

  it("is not free when held by any other identity (waits a full leaseDuration)", () => {
    const d = new Driver();
    d.at(0).observeLease(d.api.put(foreignLease("other-pod-x-1", "0")));
    expect(d.pending).toHaveLength(0);
    d.tick(14_999);
    expect(d.pending).toHaveLength(0);
    d.tick(15_000);
    expect(d.onlyPending().kind).toBe("acquire");
  });

  it("fences a holder whose Lease was taken over and re-acquires at once as a new incarnation", () => {
    const d = new Driver();
    d.at(0).acquire();
    const taken = d.api.put(foreignLease(TAKEOVER_HOLDER, "0"));
    const fx = d.at(1000).observeLease(taken);
    expect(ofType(fx, "fenced")).toEqual([{ type: "fenced", reason: "leaseLost" }]);
    expect(fx.some((e) => e.type === "log" && e.fields.why === "the coordinator took the Lease over")).toBe(
      true,
    );
    const w = d.onlyPending();
    expect(w.kind).toBe("acquire");
    expect(w.lease.spec?.holderIdentity).toBe(ident(2));
    expect(w.resourceVersion).toBe(taken.metadata.resourceVersion);
  });
});
