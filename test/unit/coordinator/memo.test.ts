import { describe, expect, it } from "vitest";
import { memoByObject } from "../../../src/coordinator/core/memo.js";

describe("memoByObject", () => {
  it("computes once per object, by identity, including an undefined result", () => {
    const calls: object[] = [];
    const f = memoByObject((o: { v?: number }) => {
      calls.push(o);
      return o.v;
    });
    const a = { v: 1 };
    const b = { v: 1 };
    const none = {};
    expect([f(a), f(a), f(b), f(none), f(none)]).toEqual([1, 1, 1, undefined, undefined]);
    expect(calls).toEqual([a, b, none]);
    expect(calls[0]).toBe(a);
  });
});
