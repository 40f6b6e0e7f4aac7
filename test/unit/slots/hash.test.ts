// Hashing: XXH64 (seed 0) of the UTF-8 key, slot = low 14 bits. Known values come from the xxHash
// reference (and python-xxhash's README), so these tests cannot pass with a different hash.
import { describe, expect, it } from "vitest";
import { keySlot, SLOT_COUNT, xxh64, xxh64Bytes, xxh64Hex } from "../../../src/slots/index.js";

const KNOWN: ReadonlyArray<readonly [string, string]> = [
  ["", "ef46db3751d8e999"],
  ["a", "d24ec4f1a98c6e5b"],
  ["abc", "44bc2cf5ad770999"],
  ["xxhash", "32dd38952c4bc720"],
  ["Nobody inspects the spammish repetition", "fbcea83c8a378bf1"],
];

describe("xxh64", () => {
  it.each(KNOWN)("xxh64(%j) = %s", (key, hex) => {
    expect(xxh64Hex(key)).toBe(hex);
    expect(xxh64(key)).toBe(BigInt(`0x${hex}`));
  });

  it("writes 16 lowercase hex digits, zero-padded", () => {
    // This key's hash starts with "00": a formatter that drops leading zeros fails here.
    expect(xxh64Hex("/ConfigMap/default/cm-124")).toBe("00b2f94043a2aecd");
    for (let i = 0; i < 2000; i++) expect(xxh64Hex(`key-${i}`)).toMatch(/^[0-9a-f]{16}$/);
  });

  it("hashes the UTF-8 bytes of the key", () => {
    const enc = new TextEncoder();
    for (const key of ["café", "租户-42", "emoji 🚀 key", "e\u0301"]) {
      expect(xxh64Bytes(enc.encode(key))).toBe(xxh64(key));
    }
    // Different Unicode spellings of "é" are different keys (no normalisation).
    expect(xxh64("\u00e9")).not.toBe(xxh64("e\u0301"));
  });

  it("encodes a lone surrogate as U+FFFD (WHATWG UTF-8), as documented", () => {
    expect(xxh64Hex("\ud800")).toBe(xxh64Hex("\ufffd"));
    expect(xxh64Hex("\ufffd")).toBe("3cf809391954c4fe");
  });
});

describe("keySlot", () => {
  it("is the low 14 bits of XXH64", () => {
    expect(keySlot("")).toBe(0xe999 & 0x3fff);
    expect(keySlot("")).toBe(10649);
    expect(keySlot("/Secret/default/foo")).toBe(Number(0xa9653f84ae538aa1n & 0x3fffn));
    for (let i = 0; i < 2000; i++) {
      const key = `apps/Deployment/ns-${i % 7}/d-${i}`;
      expect(keySlot(key)).toBe(Number(xxh64(key) % BigInt(SLOT_COUNT)));
    }
  });

  it("returns an integer slot in 0..16383", () => {
    for (let i = 0; i < 2000; i++) {
      const s = keySlot(`/Secret/default/s-${i}`);
      expect(Number.isInteger(s)).toBe(true);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(SLOT_COUNT);
    }
  });
});
