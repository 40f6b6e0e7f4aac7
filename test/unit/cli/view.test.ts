// `view`: the terminal grid (dimensions, colours, legend) and the SVG picture (well-formed, every
// slot covered exactly once with its owner's colour).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  ansiToHex,
  MIGRATING_COLOR,
  pictureOf,
  SHARD_PALETTE,
  UNASSIGNED_COLOR,
} from "../../../src/cli/render/colors.js";
import { renderAnsiGrid, renderPlainGrid } from "../../../src/cli/render/grid.js";
import { renderSvg, xmlEscape } from "../../../src/cli/render/svg.js";
import { makeTable, NO_OWNER, SLOT_COUNT } from "../../../src/slots/index.js";
import { FakeClient, fixture, run, stripAnsi, testIO } from "./helpers.js";

/** Three owners, a migration and a free range, at slots that land on known grid cells. */
function sampleTable() {
  const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  owner.fill(0, 0, 5000); // a
  owner.fill(1, 5000, 10000); // b
  owner.fill(2, 10000, 15000); // c
  // 15000-15999 migrate c → a; 16000-16383 free
  return makeTable(7, ["a", "b", "c"], owner, [
    { slots: [{ start: 15000, end: 15999 }], from: "c", to: "a", generation: 7 },
  ]);
}

/** ANSI colour pairs per character cell of one grid line: [fg, bg][]. */
function cellsOf(line: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let fg = -1;
  let bg = -1;
  const esc = "\u001b";
  const re = new RegExp(`${esc}\\[38;5;(\\d+)m|${esc}\\[48;5;(\\d+)m|${esc}\\[0m|▀`, "g");
  for (const m of line.matchAll(re)) {
    if (m[1] !== undefined) fg = Number(m[1]);
    else if (m[2] !== undefined) bg = Number(m[2]);
    else if (m[0] === "▀") out.push([fg, bg]);
  }
  return out;
}

describe("terminal grid", () => {
  const p = pictureOf(sampleTable(), ["c", "b", "a"]);

  it("colour mode: 64 lines of 128 half-block cells, upper and lower slot of each cell coloured", () => {
    const lines = renderAnsiGrid(p);
    expect(lines).toHaveLength(64);
    const colorOf = (slot: number): number => {
      if (slot >= 16000) return UNASSIGNED_COLOR;
      if (slot >= 15000) return MIGRATING_COLOR;
      // Legend order is c, b, a: palette colours 0, 1, 2.
      return SHARD_PALETTE[slot < 5000 ? 2 : slot < 10000 ? 1 : 0]!;
    };
    lines.forEach((line, i) => {
      expect(stripAnsi(line)).toBe("▀".repeat(128));
      expect(line.endsWith("\x1b[0m")).toBe(true);
      const cells = cellsOf(line);
      expect(cells).toHaveLength(128);
      cells.forEach(([fg, bg], col) => {
        expect(fg).toBe(colorOf(2 * i * 128 + col));
        expect(bg).toBe(colorOf((2 * i + 1) * 128 + col));
      });
    });
  });

  it("plain mode: 128 lines of 128 symbols", () => {
    const lines = renderPlainGrid(p);
    expect(lines).toHaveLength(128);
    const all = lines.join("");
    expect(all).toHaveLength(SLOT_COUNT);
    expect(all.slice(0, 5000)).toBe("C".repeat(5000)); // a is the third legend entry
    expect(all.slice(15000, 16000)).toBe("~".repeat(1000));
    expect(all.slice(16000)).toBe(".".repeat(384));
  });

  it("the view command prints title, grid and a legend of shard → colour with counts", async () => {
    const c = new FakeClient();
    c.addSlotMap(fixture("with-status.yaml"));
    const io = testIO({ tty: true });
    const r = await run(["view", "with-status"], { client: c, io });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "SlotMap with-status, assignment generation 42 (128 slots per row, 2 rows per line, slot 0 top left)",
    );
    expect(lines.slice(1, 65).every((l) => stripAnsi(l) === "▀".repeat(128))).toBe(true);
    expect(lines[65]).toBe("");
    const legend = lines.slice(66).map(stripAnsi);
    expect(legend).toEqual([
      "██ checksums-0   5462 slots  Ready",
      "██ checksums-1   5461 slots  Ready",
      "██ checksums-2      0 slots  Expired",
      "██ migrating     5461 slots  checksums-2 → checksums-1 10923-16383",
    ]);
    expect(lines[66]).toContain(`\x1b[38;5;${SHARD_PALETTE[0]}m██`);
    expect(lines[69]).toContain(`\x1b[38;5;${MIGRATING_COLOR}m██`);
  });

  it("no colours when stdout is not a terminal or NO_COLOR is set", async () => {
    const c = new FakeClient();
    c.addSlotMap(fixture("with-status.yaml"));
    for (const io of [testIO(), testIO({ tty: true, env: { NO_COLOR: "1" } })]) {
      const r = await run(["view", "with-status"], { client: c, io });
      expect(r.stdout).not.toContain("\x1b[");
      expect(
        r.stdout
          .split("\n")
          .slice(1, 129)
          .every((l) => /^[AB~]{128}$/.test(l)),
      ).toBe(true);
    }
  });
});

/** Minimal XML well-formedness check: balanced tags, quoted attributes, escaped text. */
function checkXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [];
  const token =
    /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<&]*(?:&(?:amp|lt|gt|quot|apos);[^"<&]*)*")*)\s*(\/?)>|([^<]+)/gy;
  let pos = 0;
  for (const m of body.matchAll(token)) {
    expect(m.index, `unexpected text at ${m.index}: ${body.slice(pos, pos + 40)}`).toBe(pos);
    pos = m.index + m[0].length;
    const [, close, name, , selfClose, text] = m;
    if (text !== undefined) {
      expect(text).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
      continue;
    }
    if (close) expect(stack.pop()).toBe(name);
    else if (!selfClose) stack.push(name!);
  }
  expect(pos, `unparsed XML at ${pos}: ${body.slice(pos, pos + 60)}`).toBe(body.length);
  expect(stack).toEqual([]);
}

describe("SVG", () => {
  const p = pictureOf(sampleTable());
  const svg = renderSvg(p, 'SlotMap "x" & <y>');

  it("is well-formed XML with escaped text", () => {
    checkXml(svg);
    expect(svg).toContain("<title>SlotMap &quot;x&quot; &amp; &lt;y&gt;</title>");
    expect(xmlEscape(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
  });

  it("its run-length rects cover all 16384 slots once, each in its owner's colour", () => {
    const grid = svg.slice(svg.indexOf('<g id="slots"'), svg.indexOf("</g>"));
    const covered = new Int32Array(SLOT_COUNT);
    const rect =
      /<rect x="(\d+)" y="(\d+)" width="(\d+)" height="4" fill="(#[0-9a-f]{6})"><title>([^<]*)<\/title><\/rect>/g;
    let rects = 0;
    for (const m of grid.matchAll(rect)) {
      rects++;
      const [x, y, w] = [Number(m[1]), Number(m[2]), Number(m[3])];
      const row = y / 4;
      for (let col = x / 4; col < (x + w) / 4; col++) {
        const slot = row * 128 + col;
        covered[slot]!++;
        const e = p.legend[p.cells[slot]!]!;
        expect(m[4]).toBe(ansiToHex(e.ansi));
        expect(m[5]!.startsWith(`${e.label}: `)).toBe(true);
      }
    }
    expect(covered.every((n) => n === 1)).toBe(true);
    // Run-length: far fewer rects than cells (a row per owner change at most).
    expect(rects).toBeLessThan(300);
  });

  it("has a legend entry per shard plus migrating and unassigned", () => {
    const legend = svg.slice(svg.indexOf('<g id="legend">'));
    const texts = [...legend.matchAll(/<text x="18" y="\d+">([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(texts).toEqual([
      "a  5000 slots",
      "b  5000 slots",
      "c  5000 slots",
      "migrating  1000 slots  c → a 15000-15999",
      "unassigned  384 slots",
    ]);
  });

  it("view --svg writes the file; --svg - writes to stdout", async () => {
    const c = new FakeClient();
    c.addSlotMap(fixture("with-status.yaml"));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-svg-")), "map.svg");
    const r = await run(["view", "with-status", "--svg", file], { client: c });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`wrote ${file} (3 shards, generation 42)\n`);
    const written = fs.readFileSync(file, "utf8");
    checkXml(written);
    const out = await run(["view", "with-status", "--svg", "-"], { client: c });
    expect(out.stdout).toBe(written);
    fs.rmSync(path.dirname(file), { recursive: true });
    const bad = await run(["view", "with-status", "--svg", "/nonexistent-dir/x.svg"], { client: c });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: --svg "\/nonexistent-dir\/x.svg": cannot write: ENOENT/);
  });
});

describe("ansiToHex", () => {
  it("maps the xterm 256-colour cube and grey ramp", () => {
    expect(ansiToHex(16)).toBe("#000000");
    expect(ansiToHex(196)).toBe("#ff0000");
    expect(ansiToHex(33)).toBe("#0087ff");
    expect(ansiToHex(240)).toBe("#585858");
    expect(ansiToHex(15)).toBe("#ffffff");
    expect(() => ansiToHex(256)).toThrow(RangeError);
  });
});
