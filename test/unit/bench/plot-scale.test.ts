import { describe, expect, it } from "vitest";
import { compareWhole, scaleSizes } from "../../../bench/support/scale.js";
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

/** A window of the current harness: projection watchers (projection + metadata streams). */
function projectionWindow(kind: "join" | "leave", shards: number, writes: number): WindowFigures {
  const metadata = { events: shards * writes, bytes: shards * writes * 900 };
  const projection = { events: 40, bytes: 40 * 1200 };
  const t = (x: { events: number; bytes: number }, min: number, max: number) => ({
    ...x,
    minEvents: min,
    maxEvents: max,
    reconnects: 0,
    watchers: shards,
  });
  return {
    ...window(kind, shards, metadata.bytes + projection.bytes, writes),
    mode: "projection",
    slotMapEventBytes: shards * 51 + 1500,
    watch: t(
      { events: metadata.events + projection.events, bytes: metadata.bytes + projection.bytes },
      writes,
      writes + 2,
    ),
    streams: {
      projection: t(projection, 0, 2),
      metadata: t(metadata, writes, writes),
      spec: t({ events: 0, bytes: 0 }, 0, 0),
    },
    projectionWrites: { PUT: 38, POST: 1, "PUT 409": 1 },
    projections: { events: 39, shards: 20, bytesMean: 1100, bytesMax: 1300, settledBytesMean: 800 },
  };
}

/** Results from before projections: the main windows watched the whole SlotMap. */
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

/** Results of the current harness: projection watchers, and the whole-SlotMap comparison. */
const PROJECTED: ScaleDetail = {
  results: [100, 1000].map((n) => ({
    shards: n,
    join: projectionWindow("join", n, 2),
    leave: projectionWindow("leave", n + 1, 2),
    wholeJoin: window("join", n, 2 * n * (n * 51.5), 2),
    wholeLeave: window("leave", n + 1, 2 * n * (n * 51.5), 2),
  })),
};

describe("plot-scale", () => {
  it("derives one point per shard count, sorted, with bytes per event and the ratio", () => {
    const points = scalePoints(DETAIL);
    expect(points.map((p) => p.shards)).toEqual([100, 1000]);
    expect(points[1]).toMatchObject({
      mode: "slotmap",
      joinBytes: 103_000_000,
      wholeJoinBytes: 103_000_000,
      slotMapEventBytes: 51_500,
      joinWrites: 2,
      leaveWrites: 1,
    });
    expect(points[1]!.eventOverStatus).toBeCloseTo(1.03, 5);
    expect(points[1]!.joinProjectionWrites).toBeNaN();
    expect(points[1]!.metadataEventBytes).toBeNaN();
  });

  it("reads projection windows: per-stream event sizes, projection writes, the whole-SlotMap comparison", () => {
    const p = scalePoints(PROJECTED)[1]!;
    expect(p).toMatchObject({
      mode: "projection",
      shards: 1000,
      joinBytes: 2 * 1000 * 900 + 40 * 1200,
      wholeJoinBytes: 2 * 1000 * 51_500,
      metadataEventBytes: 900,
      projectionEventBytes: 1200,
      joinProjectionWrites: 40,
      projectionBytes: 1100,
      slotMapEventBytes: 51_500,
    });
    expect(p.eventOverStatus).toBeCloseTo(1.03, 5);
  });

  it("prints the three watch designs side by side", () => {
    const rows = scaleTable(scalePoints(PROJECTED)).trim().split("\n");
    expect(rows).toHaveLength(4);
    expect(rows[3]).toContain("| 1,000 | 50,000 | 51,500 (1.03) | 2 (2) | 40, 1,100 | 900 / 1,200 |");
    expect(rows[3]).toContain("6.5 GB → 103.0 MB → 1.8 MB (×0.018)");
    expect(rows[2]).toContain("140.0 MB → 1.0 MB → 228 KB (×0.221)");
    // Results from before projections: the projection columns are empty.
    const old = scaleTable(scalePoints(DETAIL)).trim().split("\n");
    expect(old[3]).toContain(
      "| 1,000 | 50,000 | 51,500 (1.03) | 2 (2) | – | – | 6.5 GB → 103.0 MB → – (–) |",
    );
  });

  it("draws an SVG with both panels and every measured series", () => {
    const svg = renderScaleSvg(scalePoints(PROJECTED), "caption <&>");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    for (const label of [
      "join, issue 17 (old status)",
      "join, whole SlotMap watched",
      "join, projection + metadata watched",
      "leave, projection + metadata watched",
      "status, now",
      "SlotMap watch event, issue 17",
      "metadata event (a shard, per status write)",
      "projection event",
    ])
      expect(svg).toContain(label);
    expect(svg).toContain("caption &lt;&amp;&gt;");
    expect(svg).not.toContain("NaN");
    // Without projection results their series are left out, not drawn empty.
    const old = renderScaleSvg(scalePoints(DETAIL), "x");
    expect(old).not.toContain("projection + metadata");
    expect(old).not.toContain("NaN");
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

  it("runs the whole-SlotMap comparison unless SLOTMAP_BENCH_SCALE_COMPARE=0", () => {
    expect(compareWhole(undefined)).toBe(true);
    expect(compareWhole(" 1 ")).toBe(true);
    expect(compareWhole("0")).toBe(false);
    expect(compareWhole("false")).toBe(false);
    expect(() => compareWhole("maybe")).toThrow(/SLOTMAP_BENCH_SCALE_COMPARE="maybe": must be 0 or 1/);
  });
});
