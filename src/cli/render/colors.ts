/**
 * Colours of the slot grid: ANSI 256-colour codes for the terminal and the same colours as
 * `#rrggbb` for SVG, so both pictures of a SlotMap look alike.
 */
import { formatSlotRanges, NO_OWNER, SLOT_COUNT, type SlotTable } from "../../slots/index.js";

/** Shard colours, ANSI 256 codes chosen to be distinct on dark and light backgrounds; no reds. */
export const SHARD_PALETTE: readonly number[] = [
  33, 41, 214, 141, 44, 227, 22, 176, 25, 137, 109, 148, 61, 30, 180, 95,
];
/** Slots in a migration (owned by nobody until the old owner acks): red. */
export const MIGRATING_COLOR = 196;
/** Slots nobody owns and nothing migrates: grey. */
export const UNASSIGNED_COLOR = 240;
/** Plain-text symbols of shards when colours are off. */
export const SHARD_SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
export const MIGRATING_SYMBOL = "~";
export const UNASSIGNED_SYMBOL = ".";

/** `#rrggbb` of an xterm 256-colour code. */
export function ansiToHex(code: number): string {
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`invalid ANSI colour ${code}`);
  const basic = [
    "000000",
    "800000",
    "008000",
    "808000",
    "000080",
    "800080",
    "008080",
    "c0c0c0",
    "808080",
    "ff0000",
    "00ff00",
    "ffff00",
    "0000ff",
    "ff00ff",
    "00ffff",
    "ffffff",
  ];
  if (code < 16) return `#${basic[code]}`;
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  if (code >= 232) {
    const v = 8 + 10 * (code - 232);
    return `#${hex(v)}${hex(v)}${hex(v)}`;
  }
  const levels = [0, 95, 135, 175, 215, 255];
  const c = code - 16;
  return `#${hex(levels[Math.floor(c / 36)]!)}${hex(levels[Math.floor(c / 6) % 6]!)}${hex(levels[c % 6]!)}`;
}

/** What a grid shows: per slot the index of a legend entry (see {@link shownLegend} for display). */
export interface SlotPicture {
  /** Length 16384; index into `legend`. */
  cells: Uint16Array;
  legend: LegendEntry[];
}

/** One colour of the picture. */
export interface LegendEntry {
  /** Shard name, or "migrating" / "unassigned". */
  label: string;
  kind: "shard" | "migrating" | "unassigned";
  ansi: number;
  symbol: string;
  /** Slots shown in this colour. */
  count: number;
  /** Extra text: shard state, migration directions. */
  note: string;
}

/**
 * Builds the picture of a table: one legend entry per shard (in `shardOrder`, then any other
 * shard of the table, sorted), then migrating and unassigned when present.
 */
export function pictureOf(
  t: SlotTable,
  shardOrder: readonly string[] = [],
  notes: ReadonlyMap<string, string> = new Map(),
): SlotPicture {
  const names = [...new Set([...shardOrder, ...t.shards])];
  const legend: LegendEntry[] = names.map((label, i) => ({
    label,
    kind: "shard",
    ansi: SHARD_PALETTE[i % SHARD_PALETTE.length]!,
    symbol: SHARD_SYMBOLS[i % SHARD_SYMBOLS.length]!,
    count: 0,
    note: notes.get(label) ?? "",
  }));
  const byTableIndex = t.shards.map((n) => names.indexOf(n));
  const migrating = legend.length;
  const unassigned = legend.length + 1;
  legend.push(
    {
      label: "migrating",
      kind: "migrating",
      ansi: MIGRATING_COLOR,
      symbol: MIGRATING_SYMBOL,
      count: 0,
      note: t.migrations.map((m) => `${m.from} → ${m.to} ${formatSlotRanges(m.slots)}`).join("; "),
    },
    {
      label: "unassigned",
      kind: "unassigned",
      ansi: UNASSIGNED_COLOR,
      symbol: UNASSIGNED_SYMBOL,
      count: 0,
      note: "",
    },
  );
  const cells = new Uint16Array(SLOT_COUNT).fill(unassigned);
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = t.owner[s]!;
    if (o !== NO_OWNER) cells[s] = byTableIndex[o]!;
  }
  for (const m of t.migrations) for (const r of m.slots) cells.fill(migrating, r.start, r.end + 1);
  for (const c of cells) legend[c]!.count++;
  return { cells, legend };
}

/**
 * The legend entries to show: every shard (even with 0 slots: it is part of the SlotMap), and
 * migrating / unassigned only when some slot is.
 */
export function shownLegend(p: SlotPicture): LegendEntry[] {
  return p.legend.filter((e) => e.kind === "shard" || e.count > 0);
}
