/**
 * The slot grid as an SVG picture: 128×128 cells of 4 px, one `<rect>` per run of equal colour in
 * a row (with a `<title>` naming the shard and slots, shown on hover), and a legend below.
 */
import { formatSlotRanges } from "../../slots/index.js";
import { ansiToHex, type SlotPicture, shownLegend } from "./colors.js";
import { GRID_SIDE } from "./grid.js";

/** Pixels per slot cell. */
export const CELL_PX = 4;

/** Escapes text for XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** Renders the picture as a standalone SVG document. */
export function renderSvg(p: SlotPicture, title: string): string {
  const size = GRID_SIDE * CELL_PX;
  const entries = shownLegend(p);
  const legendTop = size + 24;
  const lineH = 18;
  const height = legendTop + entries.length * lineH + 8;
  const width = Math.max(size, 520);
  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width + 16}" height="${height + 8}" viewBox="-8 -8 ${width + 16} ${height + 8}" font-family="monospace" font-size="12">`,
  );
  out.push(`<title>${xmlEscape(title)}</title>`);
  out.push(`<rect x="-8" y="-8" width="${width + 16}" height="${height + 8}" fill="#ffffff"/>`);
  out.push('<g id="slots" shape-rendering="crispEdges">');
  for (let row = 0; row < GRID_SIDE; row++) {
    let col = 0;
    while (col < GRID_SIDE) {
      const start = row * GRID_SIDE + col;
      const c = p.cells[start]!;
      let end = col;
      while (end + 1 < GRID_SIDE && p.cells[row * GRID_SIDE + end + 1] === c) end++;
      const e = p.legend[c]!;
      const slots = formatSlotRanges([{ start, end: row * GRID_SIDE + end }]);
      out.push(
        `<rect x="${col * CELL_PX}" y="${row * CELL_PX}" width="${(end - col + 1) * CELL_PX}" height="${CELL_PX}" fill="${ansiToHex(e.ansi)}"><title>${xmlEscape(`${e.label}: ${slots}`)}</title></rect>`,
      );
      col = end + 1;
    }
  }
  out.push("</g>");
  out.push('<g id="legend">');
  entries.forEach((e, i) => {
    const y = legendTop + i * lineH;
    const text = `${e.label}  ${e.count} slot${e.count === 1 ? "" : "s"}${e.note ? `  ${e.note}` : ""}`;
    out.push(`<rect x="0" y="${y - 11}" width="12" height="12" fill="${ansiToHex(e.ansi)}"/>`);
    out.push(`<text x="18" y="${y}">${xmlEscape(text)}</text>`);
  });
  out.push("</g>");
  out.push(`<text x="0" y="${size + 14}" fill="#555555">${xmlEscape(title)}</text>`);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
