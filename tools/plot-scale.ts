/**
 * `tsx tools/plot-scale.ts [scale-detail.json ...] [--out docs/bench-scale.svg] [--table]`
 *
 * Draws the scale benchmark (bench/support/scale.ts) as an SVG: watch traffic delivered to all
 * watchers per join and per leave, and the sizes of one status and of each kind of watch event,
 * against the shard count. Three watch designs: issue 17's measurement on the old status format
 * ("issue 17"), watchers of the whole compact SlotMap ("whole SlotMap": the comparison windows of
 * a run, or the main windows of results from before projections), and what a shard watches since
 * per-shard projections, its own SlotMapShard and the SlotMap's metadata ("projections"). Both
 * axes are logarithmic. Without arguments it reads every non-quick bench/results/scale-detail-*.json
 * and keeps the newest result per shard count. `--table` prints the Markdown table of
 * docs/benchmarks.md.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { derive, sumWrites, type WatchMode, type WindowFigures } from "../bench/support/scale-model.js";
import { decades, esc, fmt, marker } from "./plot-rebalance.js";

const REPO = resolve(import.meta.dirname, "..");

/** Issue 17's measurements on the old status format (map-type list, per-shard acks). */
export const BEFORE: ReadonlyArray<{
  shards: number;
  statusBytes: number;
  eventBytes: number;
  writesPerJoin: number;
  joinBytes: number;
}> = [
  { shards: 100, statusBytes: 12_308, eventBytes: 29_900, writesPerJoin: 47, joinBytes: 140e6 },
  { shards: 300, statusBytes: 35_440, eventBytes: 76_000, writesPerJoin: 32, joinBytes: 731e6 },
  { shards: 1000, statusBytes: 118_418, eventBytes: 260_000, writesPerJoin: 27, joinBytes: 6.5e9 },
];

/** The parts of a scale-detail file the plot and table read. */
export interface ScaleDetail {
  quick?: boolean;
  results: Array<{
    shards: number;
    join: WindowFigures;
    leave: WindowFigures;
    wholeJoin?: WindowFigures;
    wholeLeave?: WindowFigures;
  }>;
}

/** One plotted shard count (NaN: not measured). */
export interface ScalePoint {
  shards: number;
  /** What the main windows' watchers watched (results from before projections: `slotmap`). */
  mode: WatchMode;
  /** Main windows: traffic to all watchers. */
  joinBytes: number;
  leaveBytes: number;
  /** Watchers of the whole SlotMap (the comparison windows, or the main ones in `slotmap` mode). */
  wholeJoinBytes: number;
  wholeLeaveBytes: number;
  statusBytes: number;
  /** One whole-SlotMap watch event: measured when watchers of it ran, else from the object's JSON. */
  slotMapEventBytes: number;
  /** slotMapEventBytes ÷ status bytes. */
  eventOverStatus: number;
  /** One shard's SlotMap metadata event and projection event (projection mode). */
  metadataEventBytes: number;
  projectionEventBytes: number;
  joinWrites: number;
  leaveWrites: number;
  joinGenerations: number;
  leaveGenerations: number;
  /** SlotMapShard writes (every verb and code) per join and leave; mean bytes of one written. */
  joinProjectionWrites: number;
  leaveProjectionWrites: number;
  projectionBytes: number;
  apiserverCpuJoin: number;
  apiserverRssMax: number;
  coordinatorCpuJoin: number;
  coordinatorRssMax: number;
}

const projectionWrites = (w: WindowFigures): number => {
  if (w.projectionWrites === undefined) return Number.NaN;
  const s = sumWrites(w.projectionWrites);
  return s.ok + s.failed;
};

/** Points of a detail file, by shard count. */
export function scalePoints(d: ScaleDetail): ScalePoint[] {
  return d.results
    .map((r): ScalePoint => {
      const mode = r.join.mode ?? "slotmap";
      const j = derive(r.join);
      const whole = mode === "slotmap" ? { join: r.join, leave: r.leave } : undefined;
      const wj = whole?.join ?? r.wholeJoin;
      const wl = whole?.leave ?? r.wholeLeave;
      const dw = wj === undefined ? undefined : derive(wj);
      return {
        shards: r.shards,
        mode,
        joinBytes: r.join.watch.bytes,
        leaveBytes: r.leave.watch.bytes,
        wholeJoinBytes: wj?.watch.bytes ?? Number.NaN,
        wholeLeaveBytes: wl?.watch.bytes ?? Number.NaN,
        statusBytes: r.join.statusBytes,
        slotMapEventBytes: dw?.eventBytes ?? j.slotMapEventBytes,
        eventOverStatus: dw?.eventOverStatus ?? j.eventOverStatus,
        metadataEventBytes: mode === "projection" ? j.eventBytes : Number.NaN,
        projectionEventBytes: j.projectionEventBytes,
        joinWrites: r.join.statusWrites + r.join.statusWritesFailed,
        leaveWrites: r.leave.statusWrites + r.leave.statusWritesFailed,
        joinGenerations: r.join.generations,
        leaveGenerations: r.leave.generations,
        joinProjectionWrites: projectionWrites(r.join),
        leaveProjectionWrites: projectionWrites(r.leave),
        projectionBytes: r.join.projections?.bytesMean ?? Number.NaN,
        apiserverCpuJoin: r.join.apiserverCpuSeconds,
        apiserverRssMax: Math.max(r.join.apiserverRssMaxBytes, r.leave.apiserverRssMaxBytes),
        coordinatorCpuJoin: r.join.coordinatorCpuSeconds,
        coordinatorRssMax: Math.max(r.join.coordinatorRssMaxBytes, r.leave.coordinatorRssMaxBytes),
      };
    })
    .sort((a, b) => a.shards - b.shards);
}

const n0 = (v: number) =>
  Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : "–";
const mb = (b: number) =>
  !Number.isFinite(b)
    ? "–"
    : b >= 1e9
      ? `${(b / 1e9).toFixed(1)} GB`
      : b >= 1e6
        ? `${(b / 1e6).toFixed(1)} MB`
        : `${(b / 1e3).toFixed(0)} KB`;
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `×${(a / b).toFixed(3)}` : "–");

/**
 * The Markdown table of docs/benchmarks.md: per shard count, the SlotMap's sizes and writes, the
 * projections, and the watch traffic of the three designs side by side (issue 17, whole SlotMap,
 * projections), with what a projection watcher receives as a fraction of a whole-SlotMap one.
 */
export function scaleTable(points: readonly ScalePoint[]): string {
  const lines = [
    "| shards | status bytes | SlotMap event bytes (÷ status) | status writes per join (generations) | projection writes per join, bytes each | a shard's events: metadata / projection bytes | watch traffic per join, all watchers: issue 17 → whole SlotMap → projections (projections ÷ whole) | leave: status writes (generations), projection writes, traffic whole SlotMap → projections | API server CPU per join, RSS max | coordinator CPU per join, RSS max |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const p of points) {
    const b = BEFORE.find((x) => x.shards === p.shards);
    const proj = p.mode === "projection";
    lines.push(
      `| ${n0(p.shards)} | ${n0(p.statusBytes)} | ${n0(p.slotMapEventBytes)} (${p.eventOverStatus.toFixed(2)}) | ${p.joinWrites} (${p.joinGenerations}) | ${proj ? `${n0(p.joinProjectionWrites)}, ${n0(p.projectionBytes)}` : "–"} | ${proj ? `${n0(p.metadataEventBytes)} / ${n0(p.projectionEventBytes)}` : "–"} | ${b === undefined ? "–" : mb(b.joinBytes)} → ${mb(p.wholeJoinBytes)} → ${proj ? mb(p.joinBytes) : "–"} (${proj ? ratio(p.joinBytes, p.wholeJoinBytes) : "–"}) | ${p.leaveWrites} (${p.leaveGenerations}), ${proj ? n0(p.leaveProjectionWrites) : "–"}, ${mb(p.wholeLeaveBytes)} → ${proj ? mb(p.leaveBytes) : "–"} | ${p.apiserverCpuJoin.toFixed(2)} s, ${(p.apiserverRssMax / 2 ** 20).toFixed(0)} MiB | ${p.coordinatorCpuJoin.toFixed(2)} s, ${(p.coordinatorRssMax / 2 ** 20).toFixed(0)} MiB |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

interface Series {
  label: string;
  color: string;
  dash: string;
  shape: string;
  points: ReadonlyArray<[number, number]>;
}

/** One log-log panel at (x0, y0): shard count on x. */
function panel(
  allSeries: readonly Series[],
  title: string,
  yLabel: string,
  x0: number,
  y0: number,
  w: number,
  h: number,
): string {
  // A series without a measured point (e.g. projections in results from before them) is left out.
  const series = allSeries.filter((s) => s.points.some(([x, y]) => x > 0 && y > 0));
  const all = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  const xTicks = decades(Math.min(...all.map(([x]) => x)), Math.max(...all.map(([x]) => x)));
  const yTicks = decades(Math.min(...all.map(([, y]) => y)), Math.max(...all.map(([, y]) => y)));
  const [xa, xb] = [Math.log10(xTicks[0]!), Math.log10(xTicks[xTicks.length - 1]!)];
  const [ya, yb] = [Math.log10(yTicks[0]!), Math.log10(yTicks[yTicks.length - 1]!)];
  const left = x0 + 62;
  const right = x0 + w - 20;
  const top = y0 + 30;
  const bottom = y0 + h - 42;
  const px = (v: number) => left + ((Math.log10(v) - xa) / Math.max(1e-9, xb - xa)) * (right - left);
  const py = (v: number) => bottom - ((Math.log10(v) - ya) / Math.max(1e-9, yb - ya)) * (bottom - top);
  const out = [
    `<text x="${(left + right) / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const t of yTicks) {
    out.push(`<line x1="${left}" x2="${right}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/>`);
    out.push(
      `<text x="${left - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t).replace(/000k$/, "M").replace(/000M$/, "G")}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${top}" y2="${bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px(t)}" y="${bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#888"/>`,
  );
  out.push(
    `<text x="${(left + right) / 2}" y="${bottom + 34}" text-anchor="middle">shards (and as many SlotMap watchers)</text>`,
  );
  out.push(
    `<text x="${x0 + 14}" y="${(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${(top + bottom) / 2})">${esc(yLabel)}</text>`,
  );
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => x > 0 && y > 0);
    const d = pts
      .map(([x, y], i) => `${i === 0 ? "M" : "L"}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(" ");
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`,
    );
    for (const [x, y] of pts) out.push(marker(s.shape, px(x), py(y), s.color));
  }
  // Legend inside the panel, top left.
  series.forEach((s, i) => {
    const ly = top + 16 + i * 16;
    out.push(
      `<line x1="${left + 10}" x2="${left + 34}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`,
    );
    out.push(marker(s.shape, left + 22, ly, s.color));
    out.push(`<text x="${left + 40}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  return out.join("\n");
}

const OLD = "#d62728";
const WHOLE = "#ff7f0e";
const NEW = "#1f77b4";

/**
 * The figure: traffic per join/leave (left) and the size of a status and of each watch event
 * (right), for issue 17, watchers of the whole SlotMap, and projections.
 */
export function renderScaleSvg(points: readonly ScalePoint[], caption: string): string {
  if (points.length === 0) throw new Error("no scale results to plot");
  const W = 980;
  const H = 440;
  const proj = points.filter((p) => p.mode === "projection");
  const traffic: Series[] = [
    {
      label: "join, issue 17 (old status)",
      color: OLD,
      dash: "6 4",
      shape: "square",
      points: BEFORE.map((b) => [b.shards, b.joinBytes]),
    },
    {
      label: "join, whole SlotMap watched",
      color: WHOLE,
      dash: "4 2",
      shape: "square",
      points: points.map((p) => [p.shards, p.wholeJoinBytes]),
    },
    {
      label: "join, projection + metadata watched",
      color: NEW,
      dash: "",
      shape: "circle",
      points: proj.map((p) => [p.shards, p.joinBytes]),
    },
    {
      label: "leave, projection + metadata watched",
      color: NEW,
      dash: "2 3",
      shape: "triangle",
      points: proj.map((p) => [p.shards, p.leaveBytes]),
    },
    {
      label: "target at 1000 shards: 200 MB",
      color: "#2ca02c",
      dash: "",
      shape: "square",
      points: [[1000, 200e6]],
    },
  ];
  const sizes: Series[] = [
    {
      label: "SlotMap watch event, issue 17",
      color: OLD,
      dash: "6 4",
      shape: "square",
      points: BEFORE.map((b) => [b.shards, b.eventBytes]),
    },
    {
      label: "SlotMap watch event, now",
      color: WHOLE,
      dash: "4 2",
      shape: "square",
      points: points.map((p) => [p.shards, p.slotMapEventBytes]),
    },
    {
      label: "status, now",
      color: WHOLE,
      dash: "2 3",
      shape: "triangle",
      points: points.map((p) => [p.shards, p.statusBytes]),
    },
    {
      label: "metadata event (a shard, per status write)",
      color: NEW,
      dash: "",
      shape: "circle",
      points: proj.map((p) => [p.shards, p.metadataEventBytes]),
    },
    {
      label: "projection event",
      color: NEW,
      dash: "2 3",
      shape: "triangle",
      points: proj.map((p) => [p.shards, p.projectionEventBytes]),
    },
  ];
  return `${[
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    "<title>SlotMap watch traffic per join and leave, and the size of a status and of each watch event, against the shard count: issue 17, watchers of the whole SlotMap, per-shard projections</title>",
    `<rect width="${W}" height="${H}" fill="white"/>`,
    panel(traffic, "Watch traffic to all watchers per join / leave", "bytes", 0, 0, W / 2, H - 24),
    panel(sizes, "Size of a status and of one watch event", "bytes", W / 2, 0, W / 2, H - 24),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#555" font-size="11">${esc(caption)}</text>`,
    "</svg>",
  ].join("\n")}\n`;
}

/**
 * The full (not `--quick`) scale-detail files of bench/results, oldest first (a run per shard
 * count is allowed: `SLOTMAP_BENCH_SCALE_SIZES`); only quick ones if there is no full one.
 */
function detailFiles(): string[] {
  const dir = join(REPO, "bench/results");
  const files = readdirSync(dir)
    .filter((f) => /^scale-detail-.*\.json$/.test(f))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  const full = files.filter((f) => (JSON.parse(readFileSync(f, "utf8")) as ScaleDetail).quick !== true);
  const pick = full.length > 0 ? full : files;
  if (pick.length === 0)
    throw new Error("no bench/results/scale-detail-*.json: run `npm run bench -- scale` first");
  return pick;
}

/** The results of several detail files, oldest first: the newest per shard count wins. */
export function mergeDetails(details: readonly ScaleDetail[]): ScaleDetail {
  const byShards = new Map<number, ScaleDetail["results"][number]>();
  for (const d of details) for (const r of d.results) byShards.set(r.shards, r);
  return { results: [...byShards.values()] };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: "string", default: join(REPO, "docs/bench-scale.svg") },
      table: { type: "boolean", default: false },
    },
  });
  const files = positionals.length > 0 ? positionals : detailFiles();
  const points = scalePoints(
    mergeDetails(files.map((f) => JSON.parse(readFileSync(f, "utf8")) as ScaleDetail)),
  );
  if (values.table) {
    process.stdout.write(scaleTable(points));
    return;
  }
  const names = files.map((f) => basename(f)).join(", ");
  writeFileSync(
    values.out!,
    renderScaleSvg(points, `Issue 17: old status format. Whole SlotMap and projections: ${names}`),
  );
  process.stdout.write(`wrote ${values.out} (${points.length} shard counts from ${names})\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) main();
