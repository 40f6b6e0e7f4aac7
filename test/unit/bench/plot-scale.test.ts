import { describe, expect, it } from "vitest";
import { scaleSizes } from "../../../bench/support/scale.js";
import type { WindowFigures } from "../../../bench/support/scale-model.js";
import {
  mergeDetails,
  renderScaleSvg,
  type ScaleDetail,
  scalePoints,
  scaleTable,
} from "../../../tools/plot-scale.js";

function window(kind: "join" | "leave", shards: number, bytes: number, writes: number): WindowFigures {
  return {
    kind,
    shards,
    watchers: shards,
    durationMs: 5000,
    settledMs: 800,
    statusWrites: writes,
    statusWritesFailed: 0,
    generations: writes,
    statusBytes: shards * 50,
    statusBytesMax: shards * 50,
    statusBytesMean: shards * 50,
    objectBytes: shards * 50 + 1500,
    watch: {
      events: shards * writes,
      bytes,
      minEvents: writes,
      maxEvents: writes,
      reconnects: 0,
      watchers: shards,
    },
    apiWatch: { events: shards * writes, bytes },
    leaseWrites: shards * writes,
    apiserverCpuSeconds: 1.5,
    apiserverRssBytes: 400 * 2 ** 20,
    apiserverRssMaxBytes: 420 * 2 ** 20,
    coordinatorCpuSeconds: 0.25,
    coordinatorRssBytes: 200 * 2 ** 20,
    coordinatorRssMaxBytes: 210 * 2 ** 20,
    writes: [],
    acks: [],
  };
}

const DETAIL: ScaleDetail = {
  results: [
    {
      shards: 1000,
      join: window("join", 1000, 2 * 1000 * 51_500, 2),
      leave: window("leave", 1001, 1000 * 51_500, 1),
    },
    { shards: 100, join: window("join", 100, 2 * 100 * 6500, 2), leave: window("leave", 101, 100 * 6500, 1) },
  ],
};

describe("plot-scale", () => {
  it("derives one point per shard count, sorted, with bytes per event and the ratio", () => {
    const points = scalePoints(DETAIL);
    expect(points.map((p) => p.shards)).toEqual([100, 1000]);
    expect(points[1]).toMatchObject({
      joinBytes: 103_000_000,
      eventBytes: 51_500,
      joinWrites: 2,
      leaveWrites: 1,
    });
    expect(points[1]!.eventOverStatus).toBeCloseTo(1.03, 5);
  });

  it("prints the before (issue 17) and now columns side by side", () => {
    const table = scaleTable(scalePoints(DETAIL));
    const rows = table.trim().split("\n");
    expect(rows).toHaveLength(4);
    expect(rows[3]).toContain("| 1,000 | 118,418 → 50,000 |");
    expect(rows[3]).toContain("6.5 GB → 103.0 MB");
    expect(rows[3]).toContain("27 → 2 (2)");
    expect(rows[2]).toContain("140.0 MB → 1.3 MB");
  });

  it("draws an SVG with both panels and every series", () => {
    const svg = renderScaleSvg(scalePoints(DETAIL), "caption <&>");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    for (const label of [
      "join, before (issue 17)",
      "join, now",
      "leave, now",
      "status, now",
      "watch event, before",
    ])
      expect(svg).toContain(label);
    expect(svg).toContain("caption &lt;&amp;&gt;");
    expect(svg).not.toContain("NaN");
    expect(() => renderScaleSvg([], "x")).toThrow(/no scale results/);
  });
});

describe("scale runs", () => {
  it("keeps the newest result per shard count across detail files", () => {
    const newer: ScaleDetail = {
      results: [{ shards: 1000, join: window("join", 1000, 7, 3), leave: window("leave", 1001, 1, 1) }],
    };
    const merged = scalePoints(mergeDetails([DETAIL, newer]));
    expect(merged.map((p) => [p.shards, p.joinBytes])).toEqual([
      [100, 1_300_000],
      [1000, 7],
    ]);
  });

  it("takes shard counts from the environment, or the defaults", () => {
    expect(scaleSizes(false, undefined)).toEqual([100, 300, 1000]);
    expect(scaleSizes(true, "")).toEqual([20, 50]);
    expect(scaleSizes(false, "1000, 300")).toEqual([1000, 300]);
    expect(() => scaleSizes(false, "1000,abc")).toThrow(/SLOTMAP_BENCH_SCALE_SIZES="1000,abc": each entry/);
  });
});
