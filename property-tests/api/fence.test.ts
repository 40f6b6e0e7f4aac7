// Fencing tokens (src/api/fence.ts): the string order the admission policy compares with (CEL
// `>=` on strings) is the numeric order of the SlotMap resourceVersions they carry; formatting
// round-trips.
import fc from "fast-check";
import { describe, expect } from "vitest";
import { formatFence, parseFence } from "../../src/api/fence.js";
import { itProp } from "../support/fc.js";

// Decimal resourceVersions up to 20 digits (etcd revisions are int64: 19 digits).
const rv = fc.oneof(fc.bigInt({ min: 1n, max: 5000n }), fc.bigInt({ min: 1n, max: 10n ** 20n - 1n }));
const parts = fc.record({
  rv,
  generation: fc.oneof(fc.nat({ max: 2000 }), fc.maxSafeNat()),
  uid: fc.oneof(fc.uuid(), fc.constantFrom("a", "z", "none")),
});
const token = (p: { rv: bigint; generation: number; uid: string }) =>
  formatFence({ resourceVersion: String(p.rv), generation: p.generation, uid: p.uid });

describe("fencing tokens", () => {
  itProp("plain string order agrees with resourceVersion order, whatever the generation and uid", () =>
    fc.property(parts, parts, (a, b) => {
      if (a.rv === b.rv) return;
      const ta = token(a);
      const tb = token(b);
      expect(ta < tb).toBe(a.rv < b.rv);
    }),
  );

  itProp("parse(format(x)) is x", () =>
    fc.property(parts, (p) => {
      expect(parseFence(token(p))).toEqual({
        resourceVersion: String(p.rv),
        generation: p.generation,
        uid: p.uid,
      });
    }),
  );
});
