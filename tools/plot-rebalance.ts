/**
 * `tsx tools/plot-rebalance.ts [detail.json ...] [--out docs/bench-rebalance.svg] [--table]`
 *
 * Draws the rebalance benchmark (bench/support/rebalance.ts) as an SVG: API writes per rebalance
 * and time until every moved object was reconciled by its new owner, against the number of
 * objects, for slot-based and label-based sharding, one line per transition (3→4, 4→3, 10→11).
 * Both axes are logarithmic. Without arguments it reads every bench/results/rebalance*-detail-*.json
 * and keeps the newest figure per approach, object count and transition. Hand-written SVG: no
 * plotting dependency. `--table` prints the figures as the Markdown table of docs/benchmarks.md.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";

const REPO = resolve(import.meta.dirname, "..");

/** The bench's approaches: slot-based (cache "owned" / "all") and the label baseline. */
type Approach = "slot" | "slot-all" | "label";
const APPROACH_NAME: Record<Approach, string> = {
  slot: "slot (coordinator)",
  "slot-all": "slot, cache all (coordinator)",
  label: "label (sharder)",
};

interface Transition {
  approach: Approach;
  objects: number;
  transition: string;
  moved: number;
  writesNetTotal: number;
  protocolWritesTotal: number;
  commitMs: number;
  reconciledMs: number;
  pauseMs: { p50: number; p99: number; max: number };
  /** Absent in result files written before it was measured. */
  handoffMs?: { p50: number; p99: number; max: number };
  controllerCpuSeconds: number;
}

interface Memory {
  rss: number;
  heapUsed: number;
}

interface Detail {
  results: Array<{
    approach: Approach;
    objects: number;
    transitions: Array<Transition & { apiListedObjects?: Record<string, number> }>;
    churn?: { updates: number; secretEventsPerShard: number; secretBytesPerShard: number };
    shardMemory?: { heapPerOwned: number; heapPerNonOwned: number | null };
    controllerMemory?: { zeroObjects: Memory; created: Memory; end: Memory };
  }>;
}

/**
 * A second Markdown table, per object count and approach: what the rebalances cost in LISTs, the
 * watch traffic per shard in steady state, shard heap per object, and the controller's memory
 * after a full GC at 0 objects, after the creates and after the last rebalance. Newest file wins.
 */
export function resourceTable(files: readonly string[]): string {
  type Result = Detail["results"][number];
  const byKey = new Map<string, Result>();
  for (const f of files) {
    for (const r of (JSON.parse(readFileSync(f, "utf8")) as Detail).results)
      byKey.set(`${r.approach}|${r.objects}`, r);
  }
  const mib = (b: number | undefined) => (b === undefined ? "–" : (b / 2 ** 20).toFixed(1));
  const num = (v: number | null | undefined, digits = 0) =>
    v === undefined || v === null || Number.isNaN(v)
      ? "–"
      : v.toLocaleString("en-US", { maximumFractionDigits: digits });
  const lines = [
    "| objects | approach | LIST objects 3→4 / 4→3 / 10→11 | Secret watch events per shard per update | shard heap per owned / non-owned object | controller RSS after GC: 0 objects / created / end (MiB) | controller heap after GC: 0 / created / end (MiB) |",
    "|---:|---|---:|---:|---:|---:|---:|",
  ];
  const rows = [...byKey.values()].sort(
    (a, b) => a.objects - b.objects || b.approach.localeCompare(a.approach),
  );
  for (const r of rows) {
    const lists = ORDER.map((tr) => {
      const t = r.transitions.find((x) => x.transition === tr);
      const l = t?.apiListedObjects;
      return l === undefined ? "–" : num((l.secrets ?? 0) + (l.configmaps ?? 0));
    }).join(" / ");
    const churn =
      r.churn && r.churn.updates > 0 ? num(r.churn.secretEventsPerShard / r.churn.updates, 2) : "–";
    const heap =
      r.objects === 0 || !r.shardMemory
        ? "–"
        : `${num(r.shardMemory.heapPerOwned)} B / ${r.approach !== "label" ? `${num(r.shardMemory.heapPerNonOwned)} B` : "n/a"}`;
    const m = r.controllerMemory;
    lines.push(
      `| ${num(r.objects)} | ${APPROACH_NAME[r.approach]} | ${lists} | ${churn} | ${heap} | ${m ? `${mib(m.zeroObjects.rss)} / ${mib(m.created.rss)} / ${mib(m.end.rss)}` : "–"} | ${m ? `${mib(m.zeroObjects.heapUsed)} / ${mib(m.created.heapUsed)} / ${mib(m.end.heapUsed)}` : "–"} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** One plotted point (and table row). */
export interface Point {
  approach: Approach;
  transition: string;
  objects: number;
  moved: number;
  writes: number;
  protocolWrites: number;
  commitMs: number;
  reconciledMs: number;
  pauseP99Ms: number;
  /** p99 of lost → first reconcile by the new owner (NaN when not measured). */
  handoffP99Ms: number;
  controllerCpuSeconds: number;
}

/** Newest value per (approach, objects, transition) from detail files, oldest file first. */
export function collectPoints(files: readonly string[]): Point[] {
  const byKey = new Map<string, Point>();
  for (const f of files) {
    const d = JSON.parse(readFileSync(f, "utf8")) as Detail;
    for (const r of d.results) {
      for (const t of r.transitions) {
        byKey.set(`${r.approach}|${r.objects}|${t.transition}`, {
          approach: r.approach,
          transition: t.transition,
          objects: r.objects,
          moved: t.moved,
          writes: t.writesNetTotal,
          protocolWrites: t.protocolWritesTotal,
          commitMs: t.commitMs,
          reconciledMs: t.reconciledMs,
          // JSON turns NaN (nothing moved) into null.
          pauseP99Ms: t.pauseMs.p99 ?? Number.NaN,
          handoffP99Ms: t.handoffMs?.p99 ?? Number.NaN,
          controllerCpuSeconds: t.controllerCpuSeconds,
        });
      }
    }
  }
  return [...byKey.values()].sort((a, b) => a.objects - b.objects);
}

const ORDER = ["3→4", "4→3", "10→11"];

/** A Markdown table: per object count and transition, slot-based vs label-based side by side. */
export function markdownTable(points: readonly Point[]): string {
  const num = (v: number | undefined, digits = 0) =>
    v === undefined || Number.isNaN(v) ? "–" : v.toLocaleString("en-US", { maximumFractionDigits: digits });
  const lines = [
    "| objects | shards | moved (slot / label) | API writes slot (excl. 409s) | API writes label (excl. 409s) | label ÷ slot | all assigned slot / label | all reconciled slot / label | pause p99 slot / label | lost → reconciled p99 slot / label | controller CPU slot / label |",
    "|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const sizes = [...new Set(points.map((p) => p.objects))].sort((a, b) => a - b);
  for (const n of sizes) {
    for (const tr of ORDER) {
      const s = points.find((p) => p.objects === n && p.transition === tr && p.approach === "slot");
      const l = points.find((p) => p.objects === n && p.transition === tr && p.approach === "label");
      if (!s && !l) continue;
      const ms = (p: Point | undefined, f: (p: Point) => number) =>
        p === undefined || (p.moved === 0 && f !== pickCommit) ? "–" : `${num(f(p))} ms`;
      lines.push(
        `| ${num(n)} | ${tr} | ${num(s?.moved)} / ${num(l?.moved)} | ${num(s?.writes)} (${num(s?.protocolWrites)}) | ${num(l?.writes)} (${num(l?.protocolWrites)}) | ${s && l ? `${num(l.writes / s.writes)}× (${num(l.protocolWrites / s.protocolWrites)}×)` : "–"} | ${ms(s, pickCommit)} / ${ms(l, pickCommit)} | ${ms(s, (p) => p.reconciledMs)} / ${ms(l, (p) => p.reconciledMs)} | ${ms(s, (p) => p.pauseP99Ms)} / ${ms(l, (p) => p.pauseP99Ms)} | ${ms(s, (p) => p.handoffP99Ms)} / ${ms(l, (p) => p.handoffP99Ms)} | ${s ? num(s.controllerCpuSeconds, 2) : "–"} / ${l ? num(l.controllerCpuSeconds, 2) : "–"} s |`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

const pickCommit = (p: Point): number => p.commitMs;

const COLORS = { slot: "#1f77b4", label: "#d62728" } as const;
const DASH: Record<string, string> = { "3→4": "", "4→3": "6 4", "10→11": "2 3" };
const MARKER: Record<string, string> = { "3→4": "circle", "4→3": "square", "10→11": "triangle" };

/** Escapes text for SVG. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Powers of ten covering [min, max]: the ticks of a log axis. */
export function decades(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
  return out;
}

/** A tick label: 1k, 10k, 1M. */
export function fmt(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

/** A point marker: `circle`, `square` or `triangle`. */
export function marker(shape: string, x: number, y: number, color: string): string {
  if (shape === "square") return `<rect x="${x - 3.5}" y="${y - 3.5}" width="7" height="7" fill="${color}"/>`;
  if (shape === "triangle")
    return `<path d="M${x},${y - 4.5} L${x + 4.5},${y + 3.5} L${x - 4.5},${y + 3.5} Z" fill="${color}"/>`;
  return `<circle cx="${x}" cy="${y}" r="3.8" fill="${color}"/>`;
}

/** One log-log panel at (x0, y0) of the given size. */
function panel(
  all: readonly Point[],
  value: (p: Point) => number,
  faint: ((p: Point) => number) | undefined,
  title: string,
  yLabel: string,
  x0: number,
  y0: number,
  w: number,
  h: number,
): string {
  const points = all.filter((p) => p.objects > 0); // log axis; the 0-object run is quoted in the docs
  const xs = points.map((p) => p.objects);
  const ys = [...points.map(value), ...(faint ? points.map(faint) : [])].map((v) => Math.max(v, 1));
  const xTicks = decades(Math.min(...xs), Math.max(...xs));
  const yTicks = decades(Math.min(...ys), Math.max(...ys));
  const [xa, xb] = [Math.log10(xTicks[0]!), Math.log10(xTicks[xTicks.length - 1]!)];
  const [ya, yb] = [Math.log10(yTicks[0]!), Math.log10(yTicks[yTicks.length - 1]!)];
  const left = x0 + 62;
  const right = x0 + w - 24;
  const top = y0 + 30;
  const bottom = y0 + h - 42;
  const px = (v: number) => left + ((Math.log10(v) - xa) / Math.max(1e-9, xb - xa)) * (right - left);
  const py = (v: number) =>
    bottom - ((Math.log10(Math.max(v, 1)) - ya) / Math.max(1e-9, yb - ya)) * (bottom - top);
  const out: string[] = [];
  out.push(
    `<text x="${(left + right) / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  );
  for (const t of yTicks) {
    out.push(`<line x1="${left}" x2="${right}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${top}" y2="${bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px(t)}" y="${bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#888"/>`,
  );
  out.push(
    `<text x="${(left + right) / 2}" y="${bottom + 34}" text-anchor="middle">objects (Secrets, each with a ConfigMap)</text>`,
  );
  out.push(
    `<text x="${x0 + 14}" y="${(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${(top + bottom) / 2})">${esc(yLabel)}</text>`,
  );
  const series = new Map<string, Point[]>();
  // The figure compares the default slot-based runtime with the baseline.
  for (const p of points.filter((q) => q.approach !== "slot-all")) {
    const k = `${p.approach}|${p.transition}`;
    series.set(k, [...(series.get(k) ?? []), p]);
  }
  for (const [k, ps] of series) {
    const [approach, transition] = k.split("|") as ["slot" | "label", string];
    const color = COLORS[approach];
    const path = (f: (p: Point) => number) =>
      ps.map((p, i) => `${i === 0 ? "M" : "L"}${px(p.objects).toFixed(1)},${py(f(p)).toFixed(1)}`).join(" ");
    if (faint) {
      out.push(
        `<path d="${path(faint)}" fill="none" stroke="${color}" stroke-opacity="0.35" stroke-width="1.2" stroke-dasharray="${DASH[transition] ?? ""}"/>`,
      );
    }
    const d = path(value);
    out.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-dasharray="${DASH[transition] ?? ""}"/>`,
    );
    for (const p of ps) out.push(marker(MARKER[transition] ?? "circle", px(p.objects), py(value(p)), color));
  }
  return out.join("\n");
}

/** The whole figure: writes and reconcile time side by side, with a legend. */
export function renderSvg(points: readonly Point[], caption: string): string {
  if (!points.some((p) => p.objects > 0)) throw new Error("no rebalance results with objects > 0 to plot");
  const W = 980;
  const H = 430;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    "<title>Rebalance cost against object count: API writes and time until every moved object was reconciled, slot-based vs label-based sharding</title>",
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    panel(
      points,
      (p) => p.protocolWrites,
      (p) => p.writes,
      "API writes per rebalance (net of idle Lease renewals)",
      "writes",
      0,
      0,
      W / 2,
      H - 50,
    ),
  );
  parts.push(
    panel(
      points,
      (p) => p.reconciledMs,
      undefined,
      "Time until every moved object was reconciled",
      "milliseconds",
      W / 2,
      0,
      W / 2,
      H - 50,
    ),
  );
  // Legend.
  let x = 40;
  const y = H - 28;
  for (const approach of ["slot", "label"] as const) {
    for (const tr of ["3→4", "4→3", "10→11"]) {
      const color = COLORS[approach];
      parts.push(
        `<line x1="${x}" x2="${x + 26}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2" stroke-dasharray="${DASH[tr]}"/>`,
      );
      parts.push(marker(MARKER[tr]!, x + 13, y, color));
      parts.push(
        `<text x="${x + 32}" y="${y + 4}">${approach === "slot" ? "slot-based" : "label-based"} ${tr}</text>`,
      );
      x += 152;
    }
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#555" font-size="11">${esc(caption)}</text>`,
  );
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: "string", default: join(REPO, "docs/bench-rebalance.svg") },
      table: { type: "boolean", default: false },
    },
  });
  let files = positionals;
  if (files.length === 0) {
    const dir = join(REPO, "bench/results");
    files = readdirSync(dir)
      .filter((f) => /^rebalance.*-detail-.*\.json$/.test(f))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  }
  if (files.length === 0)
    throw new Error("no bench/results/rebalance*-detail-*.json: run `npm run bench -- rebalance` first");
  const points = collectPoints(files);
  if (values.table) {
    process.stdout.write(`${markdownTable(points)}\n${resourceTable(files)}`);
    return;
  }
  const caption =
    "Left: bold = without the new owner's failed ConfigMap creates (409), faint = all writes. " +
    `Data: ${files.map((f) => basename(f)).join(", ")}`;
  writeFileSync(
    values.out!,
    renderSvg(points, caption.length > 170 ? `${caption.slice(0, 167)}...` : caption),
  );
  process.stdout.write(`wrote ${values.out} (${points.length} points from ${files.length} file(s))\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) main();
