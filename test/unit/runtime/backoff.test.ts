import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../../src/runtime/backoff.js";

describe("backoffDelay", () => {
  it("doubles from the base and stops at the cap", () => {
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, 200, 30_000))).toEqual([200, 400, 800, 1600]);
    expect(backoffDelay(8, 200, 30_000)).toBe(30_000);
    expect(backoffDelay(1e9, 10, 300_000)).toBe(300_000);
    expect(backoffDelay(-3, 10, 100)).toBe(10);
  });
});
