/**
 * The live view of `npm run demo`: the slot grid of the SlotMap (the renderer of
 * `kubectl slotmap view`), per shard its state, slots and reconciles, the handoffs so far and the
 * latest events. On a terminal it redraws about twice a second; otherwise it prints plain
 * progress lines.
 */
import { pictureOf, type SlotPicture, shownLegend } from "../../src/cli/render/colors.js";
import { GRID_SIDE, renderAnsiGrid, renderPlainGrid } from "../../src/cli/render/grid.js";
import { emptyTable, type SlotTable, tableFromStatus } from "../../src/slots/index.js";
import { countRanges, type ObservedStatus } from "../../test/e2e/driver.js";

const RESET = "\x1b[0m";
const fg = (c: number) => `\x1b[38;5;${c}m`;
const bg = (c: number) => `\x1b[48;5;${c}m`;

/** What the dashboard shows, gathered by the demo. */
export interface DashboardState {
  phase: string;
  elapsedMs: number;
  status: ObservedStatus | undefined;
  /** Reconciles so far per shard name. */
  reconciles: ReadonlyMap<string, number>;
  /** Shard name → state of its newest process ("running", "killed", "stopped"). */
  processes: ReadonlyMap<string, string>;
  /** Distinct migrations (from, to, generation) seen. */
  migrations: number;
  converged: { converged: number; total: number } | undefined;
  /** Newest last. */
  events: readonly string[];
}

/** The slot table of a status; an empty one if there is none or it does not decode. */
export function tableOf(status: ObservedStatus | undefined): SlotTable {
  if (!status) return emptyTable();
  try {
    return tableFromStatus(status);
  } catch {
    return emptyTable();
  }
}

/**
 * The grid scaled down by `f` (2 or 4): each cell stands for an f×f block of the 128×128 grid,
 * shown as migrating if any of its slots migrates, else in the colour most of its slots have.
 * Lines of `128/f` cells, two grid rows per line as in {@link renderAnsiGrid}.
 */
export function renderScaledGrid(p: SlotPicture, f: number, color: boolean): string[] {
  const side = GRID_SIDE / f;
  const cell = (bx: number, by: number): number => {
    const counts = new Map<number, number>();
    for (let y = by * f; y < (by + 1) * f; y++) {
      for (let x = bx * f; x < (bx + 1) * f; x++) {
        const e = p.cells[y * GRID_SIDE + x]!;
        if (p.legend[e]!.kind === "migrating") return e;
        counts.set(e, (counts.get(e) ?? 0) + 1);
      }
    }
    let best = 0;
    let bestN = -1;
    for (const [e, n] of counts) if (n > bestN) [best, bestN] = [e, n];
    return best;
  };
  const lines: string[] = [];
  if (!color) {
    for (let by = 0; by < side; by++) {
      let line = "";
      for (let bx = 0; bx < side; bx++) line += p.legend[cell(bx, by)]!.symbol;
      lines.push(line);
    }
    return lines;
  }
  for (let by = 0; by < side; by += 2) {
    let line = "";
    for (let bx = 0; bx < side; bx++) {
      line += `${fg(p.legend[cell(bx, by)]!.ansi)}${bg(p.legend[cell(bx, by + 1)]!.ansi)}▀`;
    }
    lines.push(line + RESET);
  }
  return lines;
}

/** The frame for a terminal of `rows` lines. */
export function renderFrame(s: DashboardState, rows: number, color: boolean): string {
  const table = tableOf(s.status);
  const shardsInStatus = s.status?.shards.map((x) => x.name) ?? [];
  const picture = pictureOf(
    table,
    shardsInStatus,
    new Map(s.status?.shards.map((x) => [x.name, x.state]) ?? []),
  );
  const header = [
    `slotmap demo — ${s.phase}   (${(s.elapsedMs / 1000).toFixed(0)} s)`,
    `generation ${table.generation}, ${s.migrations} handoffs so far, ` +
      `${s.converged ? `${s.converged.converged}/${s.converged.total} ConfigMaps up to date` : "no Secrets yet"}`,
    "",
  ];
  const legend = shardLines(s, picture, color);
  const events = ["", ...s.events.slice(-6)];
  const budget = rows - header.length - legend.length - events.length - 2;
  // The largest grid that fits: full (64 lines in colour), then 1/2 and 1/4 scale.
  const full = color ? GRID_SIDE / 2 : GRID_SIDE;
  let grid: string[];
  if (budget >= full) grid = color ? renderAnsiGrid(picture) : renderPlainGrid(picture);
  else if (budget >= full / 2) grid = renderScaledGrid(picture, 2, color);
  else grid = renderScaledGrid(picture, 4, color);
  return [...header, ...grid, "", ...legend, ...events].join("\n");
}

function shardLines(s: DashboardState, p: SlotPicture, color: boolean): string[] {
  const entries = shownLegend(p);
  const names = new Set(entries.map((e) => e.label));
  // Shard processes not in the status (just started, or gone from it) still get a line.
  const extra = [...new Set([...s.reconciles.keys(), ...s.processes.keys()])]
    .filter((n) => !names.has(n))
    .sort();
  const width = Math.max(10, ...entries.map((e) => e.label.length), ...extra.map((n) => n.length));
  const line = (swatch: string, label: string, slots: string, rest: string) =>
    `${swatch} ${label.padEnd(width)} ${slots.padStart(12)}  ${rest}`;
  const out = entries.map((e) => {
    const swatch = color ? `${fg(e.ansi)}██${RESET}` : `${e.symbol} `;
    const slots = `${e.count} slots`;
    if (e.kind !== "shard") return line(swatch, e.label, slots, e.note);
    const st = s.status?.shards.find((x) => x.name === e.label);
    const proc = s.processes.get(e.label) ?? "";
    const rec = s.reconciles.get(e.label) ?? 0;
    return line(
      swatch,
      e.label,
      slots,
      `${(st?.state ?? "").padEnd(7)} ${proc.padEnd(8)} ${String(rec).padStart(6)} reconciles` +
        (st?.observedGeneration !== undefined ? `  acked ${st.observedGeneration}` : ""),
    );
  });
  for (const n of extra) {
    out.push(
      line(
        "  ",
        n,
        "-",
        `${(s.processes.get(n) ?? "").padEnd(16)} ${String(s.reconciles.get(n)).padStart(6)} reconciles`,
      ),
    );
  }
  return out;
}

/** One plain progress line (non-terminal output). */
export function progressLine(s: DashboardState): string {
  const shards = (s.status?.shards ?? [])
    .map((x) => `${x.name}=${x.state}/${countRanges(x.slots)}/${s.reconciles.get(x.name) ?? 0}`)
    .join(" ");
  const conv = s.converged ? ` converged ${s.converged.converged}/${s.converged.total}` : "";
  return (
    `[${(s.elapsedMs / 1000).toFixed(0).padStart(4)} s] ${s.phase}: generation ${s.status?.assignmentGeneration ?? 0}` +
    ` handoffs ${s.migrations}${conv} shards(state/slots/reconciles) ${shards || "-"}`
  );
}

/** Redraws the frame on a terminal; prints progress lines elsewhere. */
export class Dashboard {
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = 0;
  private lastPhase = "";

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty: boolean,
    private readonly state: () => DashboardState,
  ) {}

  /** Starts refreshing (every 500 ms on a terminal, a line every 5 s or on phase change otherwise). */
  start(): void {
    if (this.tty) this.out.write("\x1b[?25l\x1b[2J"); // hide the cursor, clear once
    this.timer = setInterval(() => this.draw(), this.tty ? 500 : 250);
    this.draw();
  }

  /** Draws now. */
  draw(): void {
    const s = this.state();
    if (this.tty) {
      const frame = renderFrame(s, this.out.rows ?? 60, true);
      // Home, then each line cleared to its end: no flicker, no scrolling.
      this.out.write(`\x1b[H${frame.split("\n").join("\x1b[K\n")}\x1b[K\x1b[J`);
      return;
    }
    const now = Date.now();
    if (s.phase !== this.lastPhase || now - this.lastPlain >= 5000) {
      this.lastPhase = s.phase;
      this.lastPlain = now;
      this.out.write(`${progressLine(s)}\n`);
    }
  }

  /** Stops refreshing after a last frame; restores the cursor. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.draw();
    if (this.tty) this.out.write("\x1b[?25h\n");
  }
}
