import { describe, expect, it } from "vitest";
import {
  compareResourceVersions,
  isDecimalResourceVersion,
  isOlderResourceVersion,
} from "../../../src/api/resource-version.js";

describe("resourceVersion ordering", () => {
  it("orders decimal resourceVersions numerically, whatever their length", () => {
    expect(compareResourceVersions("99", "100")).toBe(-1);
    expect(compareResourceVersions("100", "100")).toBe(0);
    expect(compareResourceVersions("101", "100")).toBe(1);
    expect(compareResourceVersions("99999999999999999998", "99999999999999999999")).toBe(-1);
    expect(compareResourceVersions("123456789012345678901", "9")).toBe(1);
  });

  it("leaves anything not decimal unordered", () => {
    expect(compareResourceVersions("abc", "100")).toBeUndefined();
    expect(compareResourceVersions("007", "7")).toBeUndefined();
    expect(compareResourceVersions("-1", "1")).toBeUndefined();
    expect(compareResourceVersions("", "1")).toBeUndefined();
    expect(isDecimalResourceVersion("0")).toBe(true);
    expect(isDecimalResourceVersion("1e3")).toBe(false);
  });

  it("isOlderResourceVersion is false unless both are decimal and the first is lower", () => {
    expect(isOlderResourceVersion("9", "10")).toBe(true);
    expect(isOlderResourceVersion("10", "9")).toBe(false);
    expect(isOlderResourceVersion("10", "10")).toBe(false);
    expect(isOlderResourceVersion("abc", "10")).toBe(false);
    expect(isOlderResourceVersion(undefined, "10")).toBe(false);
  });
});
