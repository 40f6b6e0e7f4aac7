// The adaptive list page size (KubeHttp.pages): a byte budget per page, within bounds.
import { describe, expect, it } from "vitest";
import {
  FIRST_PAGE_LIMIT,
  MAX_PAGE_LIMIT,
  MIN_PAGE_LIMIT,
  nextPageLimit,
  PAGE_BYTES,
} from "../../../src/kube/http.js";

describe("nextPageLimit", () => {
  it("asks for as many items as fill the budget at the bytes per item seen", () => {
    expect(nextPageLimit(500 * 4096, 500)).toBe(PAGE_BYTES / 4096); // 1024
    expect(nextPageLimit(1_000_000, 100, 100_000)).toBe(10);
    expect(nextPageLimit(30 * 200_000, 30)).toBe(20);
  });

  it("stays within MIN_PAGE_LIMIT … MAX_PAGE_LIMIT", () => {
    expect(nextPageLimit(500 * 300, 500)).toBe(MAX_PAGE_LIMIT); // small objects
    expect(nextPageLimit(10 * 1_500_000, 10)).toBe(MIN_PAGE_LIMIT); // 1.5 MB objects: 10, not 2
    expect(MIN_PAGE_LIMIT).toBe(10);
  });

  it("starts over at the first page's limit when nothing was seen yet (an empty page)", () => {
    expect(nextPageLimit(0, 0)).toBe(FIRST_PAGE_LIMIT);
    expect(nextPageLimit(120, 0)).toBe(FIRST_PAGE_LIMIT);
  });
});
