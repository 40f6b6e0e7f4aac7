/**
 * Slot hashing: `slot = xxh64(utf8(key), seed 0) & 0x3fff` (the low 14 bits, i.e. mod 16384).
 *
 * xxhash-wasm is instantiated once here with top-level await, so every function below is
 * synchronous. Measured alternatives (bench/core.ts): `h64(string)` is the fastest; encoding into
 * a reused buffer and calling `h64Raw` costs an extra copy into wasm memory, and a pure-JS XXH64 on
 * 32-bit halves is an order of magnitude slower. The remaining cost is mostly the BigInt result.
 *
 * Strings are encoded with the WHATWG UTF-8 encoder: a lone surrogate becomes U+FFFD. Kubernetes
 * names and annotation values are valid UTF-8, so this never matters for real objects.
 */
import xxhash from "xxhash-wasm";
import { SLOT_COUNT } from "./types.js";

const api = await xxhash();
const h64 = api.h64;
const SLOT_MASK = BigInt(SLOT_COUNT - 1);

/** The slot of a key: low 14 bits of XXH64 (seed 0) of its UTF-8 bytes. */
export function keySlot(key: string): number {
  return Number(h64(key) & SLOT_MASK);
}

/** XXH64 (seed 0) of the key's UTF-8 bytes, as 16 lowercase hex digits (for test vectors and tools). */
export function xxh64Hex(key: string): string {
  return api.h64ToString(key);
}

/** XXH64 (seed 0) of the key's UTF-8 bytes. */
export function xxh64(key: string): bigint {
  return h64(key);
}

/** XXH64 (seed 0) of raw bytes, for callers that already hold the encoded key. */
export function xxh64Bytes(bytes: Uint8Array): bigint {
  return api.h64Raw(bytes);
}
