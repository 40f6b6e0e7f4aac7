/**
 * `npm run bench -- [scenario...] [--all] [--list] [--quick] [--no-save] [--strict]`
 *
 * Runs the named scenarios of bench/scenarios/ (default: every scenario not marked heavy; `--all`
 * adds the heavy ones), prints an aligned table per scenario, and writes
 * bench/results/<scenario>-<timestamp>.json with the machine and the rows (bench/results/ is
 * gitignored). `--strict` exits 1 when a row misses its target; by default a miss is only
 * reported, since a shared machine can miss a timing target for reasons outside the code.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, platform, release, totalmem } from "node:os";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Row, Scenario } from "./lib.js";

const BENCH_DIR = import.meta.dirname;
const SCENARIO_DIR = join(BENCH_DIR, "scenarios");
const RESULTS_DIR = join(BENCH_DIR, "results");

function isScenario(value: unknown): value is Scenario {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === "string" && typeof v.description === "string" && typeof v.run === "function";
}

/** Every bench/scenarios/<name>.ts, imported; its default export must be a Scenario named <name>. */
async function loadScenarios(): Promise<Scenario[]> {
  const files = readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .sort();
  const out: Scenario[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(SCENARIO_DIR, file)).href)) as { default?: unknown };
    const s = mod.default;
    const expected = basename(file, ".ts");
    if (!isScenario(s)) {
      throw new Error(`bench/scenarios/${file}: default export must be {name, description, heavy?, run}`);
    }
    if (s.name !== expected) {
      throw new Error(`bench/scenarios/${file}: name is ${JSON.stringify(s.name)}, expected "${expected}"`);
    }
    out.push(s);
  }
  return out;
}

function gitCommit(): string | undefined {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: BENCH_DIR,
      encoding: "utf8",
      stdio: "pipe",
    }).trim();
  } catch {
    return undefined;
  }
}

function machine() {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    availableParallelism: availableParallelism(),
    totalMemBytes: totalmem(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${platform()} ${release()} ${arch()}`,
    // Other processes on a shared machine skew timings: record how busy it was.
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    commit: gitCommit(),
  };
}

/** 3 significant digits, no exponent. */
function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100 || Number.isInteger(x)) return Math.round(x).toLocaleString("en-US");
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Whether a row meets its target; undefined when it has none. */
function met(row: Row): boolean | undefined {
  return row.target === undefined ? undefined : row.median <= row.target;
}

function printTable(rows: readonly Row[]): void {
  const header = ["metric", "median", "p99", "unit", "target", "met", "ratio", "note"];
  const right = new Set([1, 2, 4, 6]);
  const cells = rows.map((r) => {
    const m = met(r);
    return [
      r.metric,
      formatNumber(r.median),
      r.p99 === undefined ? "" : formatNumber(r.p99),
      r.unit,
      r.target === undefined ? "" : `≤ ${formatNumber(r.target)}`,
      m === undefined ? "" : m ? "yes" : "NO",
      r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}× ${r.baseline ?? ""}`.trim(),
      r.note ?? "",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (right.has(i) ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    allowNegative: true,
    options: {
      all: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      save: { type: "boolean", default: true },
      strict: { type: "boolean", default: false },
    },
  });
  const scenarios = await loadScenarios();
  if (values.list) {
    for (const s of scenarios) console.log(`${s.name}${s.heavy ? " (heavy)" : ""}: ${s.description}`);
    return 0;
  }
  const byName = new Map(scenarios.map((s) => [s.name, s]));
  const unknown = positionals.filter((p) => !byName.has(p));
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(", ")}; available: ${[...byName.keys()].join(", ")}`);
    return 2;
  }
  const selected =
    positionals.length > 0
      ? positionals.map((p) => byName.get(p)!)
      : scenarios.filter((s) => values.all || !s.heavy);

  const info = machine();
  console.log(
    `${info.cpuModel}, ${info.cores} cores, ${(info.totalMemBytes / 2 ** 30).toFixed(1)} GiB, node ${info.node}, ` +
      `load ${info.loadavg.join(" ")}${values.quick ? " (quick run)" : ""}`,
  );
  let missed = 0;
  for (const s of selected) {
    console.log(`\n== ${s.name}: ${s.description}`);
    const startedAt = new Date();
    const t0 = process.hrtime.bigint();
    const rows = await s.run({ quick: values.quick, log: (m) => console.error(`  [${s.name}] ${m}`) });
    const durationMs = Number(process.hrtime.bigint() - t0) / 1e6;
    printTable(rows);
    const misses = rows.filter((r) => met(r) === false);
    missed += misses.length;
    if (misses.length > 0)
      console.log(`${misses.length} target(s) missed: ${misses.map((r) => r.metric).join("; ")}`);
    if (values.save) {
      mkdirSync(RESULTS_DIR, { recursive: true });
      const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
      const file = join(RESULTS_DIR, `${s.name}-${stamp}.json`);
      const doc = {
        scenario: s.name,
        description: s.description,
        startedAt: startedAt.toISOString(),
        durationMs: Math.round(durationMs),
        quick: values.quick,
        machine: info,
        rows: rows.map((r) => ({ ...r, met: met(r) })),
      };
      writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
      console.log(`wrote ${resolve(file)}`);
    }
  }
  return values.strict && missed > 0 ? 1 : 0;
}

process.exitCode = await main();
