/** Small statistics helpers of the rebalance benchmark (pure). */
import { quantile } from "../lib.js";

/** p50, p99 (nearest rank) and max of values in any order; NaN for each when there are none. */
export function percentiles(values: readonly number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1]! };
}

/** Least squares y ≈ a·x1 + b·x2 (no intercept). */
export function fit2(points: ReadonlyArray<{ x1: number; x2: number; y: number }>): { a: number; b: number } {
  let s11 = 0;
  let s12 = 0;
  let s22 = 0;
  let s1y = 0;
  let s2y = 0;
  for (const p of points) {
    s11 += p.x1 * p.x1;
    s12 += p.x1 * p.x2;
    s22 += p.x2 * p.x2;
    s1y += p.x1 * p.y;
    s2y += p.x2 * p.y;
  }
  const det = s11 * s22 - s12 * s12;
  if (Math.abs(det) < 1e-9 * Math.max(1, s11 * s22)) {
    // x2 is (nearly) always 0 (label-based shards see only their own objects): fit a alone.
    return { a: s11 > 0 ? s1y / s11 : Number.NaN, b: Number.NaN };
  }
  return { a: (s1y * s22 - s2y * s12) / det, b: (s2y * s11 - s1y * s12) / det };
}
