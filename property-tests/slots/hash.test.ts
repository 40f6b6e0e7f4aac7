// Hash uniformity: slots of many keys are spread evenly over the 16384 slots. Thresholds are far
// in the tail of the chi-square distribution (mean + 8 standard deviations), so a correct hash
// fails with negligible probability while a broken one (the self-check below) fails by orders of
// magnitude.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keySlot, SLOT_COUNT } from "../../src/slots/index.js";
import { itProp } from "../support/fc.js";

const KEYS_PER_RUN = 100_000;

/** mulberry32: a tiny seeded PRNG, so one fast-check seed yields 100k keys cheaply. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GROUPS = ["", "apps", "batch", "networking.k8s.io", "example.com", "slotmap.dev"];
const KINDS = ["Secret", "ConfigMap", "Deployment", "Job", "Widget", "Namespace"];

/** Realistic keys: `group/kind/namespace/name`, names often sequential as controllers make them. */
function keysFrom(seed: number, style: "random" | "sequential"): string[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const keys: string[] = [];
  const ns = `ns-${Math.floor(rnd() * 1000)}`;
  for (let i = 0; i < KEYS_PER_RUN; i++) {
    if (style === "sequential") keys.push(`/ConfigMap/${ns}/cm-${i}`);
    else {
      const name = `${pick(["web", "db", "cache", "job"])}-${Math.floor(rnd() * 1e9).toString(36)}`;
      keys.push(
        `${pick(GROUPS)}/${pick(KINDS)}/${rnd() < 0.1 ? "" : `ns-${Math.floor(rnd() * 50)}`}/${name}`,
      );
    }
  }
  return keys;
}

/** Pearson's chi-square statistic of `values` (integers in 0..buckets-1) against uniform. */
function chiSquare(values: Iterable<number>, buckets: number): { stat: number; threshold: number } {
  const counts = new Float64Array(buckets);
  let n = 0;
  for (const v of values) {
    counts[v]!++;
    n++;
  }
  const expected = n / buckets;
  let stat = 0;
  for (const c of counts) stat += (c - expected) ** 2 / expected;
  const df = buckets - 1;
  // Chi-square(df) has mean df and variance 2·df.
  return { stat, threshold: df + 8 * Math.sqrt(2 * df) };
}

interface Uniformity {
  fine: { stat: number; threshold: number };
  coarse: { stat: number; threshold: number };
  worstBitSkew: number;
}

function uniformity(keys: readonly string[], slotOf: (k: string) => number): Uniformity {
  const slots = keys.map(slotOf);
  let worstBitSkew = 0;
  for (let bit = 0; bit < 14; bit++) {
    let ones = 0;
    for (const s of slots) ones += (s >> bit) & 1;
    worstBitSkew = Math.max(worstBitSkew, Math.abs(ones - slots.length / 2) / Math.sqrt(slots.length / 4));
  }
  return {
    fine: chiSquare(slots, SLOT_COUNT),
    coarse: chiSquare(
      slots.map((s) => s >> 8),
      SLOT_COUNT >> 8,
    ),
    worstBitSkew,
  };
}

function expectUniform(u: Uniformity): void {
  expect(u.fine.stat).toBeLessThan(u.fine.threshold);
  expect(u.coarse.stat).toBeLessThan(u.coarse.threshold);
  // Each of the 14 slot bits is set in half the keys, within 8 standard deviations.
  expect(u.worstBitSkew).toBeLessThan(8);
}

describe("hash uniformity", () => {
  // 100k hashes plus the statistics take ~0.3 s per run; 10 runs of 100k keys = 1M keys.
  itProp(
    "spreads 100k random keys evenly over the slots",
    () => fc.property(fc.integer(), (seed) => expectUniform(uniformity(keysFrom(seed, "random"), keySlot))),
    { numRuns: 10 },
  );

  itProp(
    "spreads 100k sequentially named keys evenly over the slots",
    () =>
      fc.property(fc.integer(), (seed) => expectUniform(uniformity(keysFrom(seed, "sequential"), keySlot))),
    { numRuns: 10 },
  );

  it("fails broken hashes, so the thresholds mean something", () => {
    const keys = keysFrom(1, "random");
    const byLength = uniformity(keys, (k) => k.length % SLOT_COUNT);
    expect(byLength.fine.stat).toBeGreaterThan(100 * byLength.fine.threshold);
    const byCharSum = uniformity(keys, (k) => {
      let h = 0;
      for (let i = 0; i < k.length; i++) h += k.charCodeAt(i);
      return h % SLOT_COUNT;
    });
    expect(byCharSum.fine.stat).toBeGreaterThan(10 * byCharSum.fine.threshold);
    // Right distribution of slots but only half the slots used (a lost bit).
    const lostBit = uniformity(keys, (k) => keySlot(k) & ~1);
    expect(lostBit.fine.stat).toBeGreaterThan(lostBit.fine.threshold);
    expect(lostBit.worstBitSkew).toBeGreaterThan(8);
  });
});
