/**
 * The 16384 slots as a 128×128 grid in a terminal. With colours, each character cell shows two
 * grid rows: '▀' with the upper slot as foreground and the lower as background, so the grid takes
 * 64 lines of 128 columns. Without colours, one symbol per slot on 128 lines.
 */
import { SLOT_COUNT } from "../../slots/index.js";
import { type SlotPicture, shownLegend } from "./colors.js";

/** Slots per grid row (and rows of the grid). */
export const GRID_SIDE = 128;

const fg = (c: number) => `\x1b[38;5;${c}m`;
const bg = (c: number) => `\x1b[48;5;${c}m`;
const RESET = "\x1b[0m";

/** The grid in ANSI 256 colours: 64 lines of 128 '▀' cells, each line ending with a reset. */
export function renderAnsiGrid(p: SlotPicture): string[] {
  const lines: string[] = [];
  for (let row = 0; row < GRID_SIDE; row += 2) {
    let line = "";
    let curFg = -1;
    let curBg = -1;
    for (let col = 0; col < GRID_SIDE; col++) {
      const up = p.legend[p.cells[row * GRID_SIDE + col]!]!.ansi;
      const down = p.legend[p.cells[(row + 1) * GRID_SIDE + col]!]!.ansi;
      // Escapes only where the colour changes: a uniform row is a few bytes, not 128 escapes.
      if (up !== curFg) {
        line += fg(up);
        curFg = up;
      }
      if (down !== curBg) {
        line += bg(down);
        curBg = down;
      }
      line += "▀";
    }
    lines.push(line + RESET);
  }
  return lines;
}

/** The grid in plain text: 128 lines of 128 symbols. */
export function renderPlainGrid(p: SlotPicture): string[] {
  const lines: string[] = [];
  for (let row = 0; row < GRID_SIDE; row++) {
    let line = "";
    for (let col = 0; col < GRID_SIDE; col++) line += p.legend[p.cells[row * GRID_SIDE + col]!]!.symbol;
    lines.push(line);
  }
  return lines;
}

/** Legend lines: a colour swatch (or the symbol) per entry, its label, slot count and note. */
export function renderLegend(p: SlotPicture, color: boolean): string[] {
  const entries = shownLegend(p);
  const width = Math.max(...entries.map((e) => e.label.length));
  return entries.map((e) => {
    const swatch = color ? `${fg(e.ansi)}██${RESET}` : `${e.symbol} `;
    const count = `${e.count} slot${e.count === 1 ? "" : "s"}`;
    return `${swatch} ${e.label.padEnd(width)}  ${count.padStart(11)}${e.note ? `  ${e.note}` : ""}`;
  });
}

/** The whole terminal picture: title, grid, legend. */
export function renderTerminal(p: SlotPicture, title: string, color: boolean): string {
  if (p.cells.length !== SLOT_COUNT) throw new RangeError(`picture has ${p.cells.length} cells`);
  const grid = color ? renderAnsiGrid(p) : renderPlainGrid(p);
  const how = color
    ? "128 slots per row, 2 rows per line, slot 0 top left"
    : "128 slots per line, slot 0 top left";
  const shards = p.legend.filter((e) => e.kind === "shard").length;
  const notes: string[] = [];
  if (!color && shards > 62) notes.push("(more than 62 shards: symbols repeat)");
  if (color && shards > 16) notes.push("(more than 16 shards: colours repeat)");
  return [`${title} (${how})`, ...grid, "", ...renderLegend(p, color), ...notes, ""].join("\n");
}
