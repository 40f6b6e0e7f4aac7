// The slot table: status round trip, strict status parsing naming the field, diff, invariants,
// and the per-shard ownership views.
import { describe, expect, it } from "vitest";
import {
  diffTables,
  emptyTable,
  freeRanges,
  MAX_SLOT,
  type Migration,
  makeTable,
  migrationOf,
  NO_OWNER,
  ownedCounts,
  ownedRanges,
  ownerOf,
  ownershipMask,
  parseSlotRanges,
  rangesByShard,
  SLOT_COUNT,
  SlotRangeError,
  type SlotTable,
  SlotTableError,
  type StatusTable,
  sameAssignment,
  tableFromStatus,
  tableInvariantErrors,
  tablesEqual,
  tableToStatus,
} from "../../../src/slots/index.js";

/** The example status of DESIGN.md. */
const designStatus = (): StatusTable => ({
  assignmentGeneration: 42,
  shards: [
    { name: "checksums-0", slots: "0-5461" },
    { name: "checksums-1", slots: "5462-10922" },
  ],
  migrations: [{ slots: "10923-16383", from: "checksums-2", to: "checksums-1", generation: 42 }],
  unassignedSlots: "",
});

function tableError(f: () => unknown): SlotTableError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SlotTableError);
    return e as SlotTableError;
  }
  throw new Error("expected a SlotTableError, nothing was thrown");
}

/** A table from owner ranges per shard, e.g. `{ a: "0-99", b: "100-16383" }`. */
function tableOf(
  generation: number,
  owners: Record<string, string>,
  migrations: Migration[] = [],
): SlotTable {
  const shards = Object.keys(owners).sort();
  const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  shards.forEach((name, i) => {
    for (const r of parseSlotRanges(owners[name]!)) owner.fill(i, r.start, r.end + 1);
  });
  return makeTable(generation, shards, owner, migrations);
}

describe("emptyTable", () => {
  it("is generation 0 with every slot free", () => {
    const t = emptyTable();
    expect(t.generation).toBe(0);
    expect(t.shards).toEqual([]);
    expect(t.migrations).toEqual([]);
    expect(t.owner.length).toBe(SLOT_COUNT);
    expect(freeRanges(t)).toEqual([{ start: 0, end: MAX_SLOT }]);
    expect(tableInvariantErrors(t)).toEqual([]);
    expect(tableToStatus(t)).toEqual({
      assignmentGeneration: 0,
      shards: [],
      migrations: [],
      unassignedSlots: "0-16383",
    });
  });
});

describe("tableFromStatus / tableToStatus", () => {
  it("round-trips the DESIGN example, adding migration-only shards", () => {
    const t = tableFromStatus(designStatus());
    expect(t.generation).toBe(42);
    expect(t.shards).toEqual(["checksums-0", "checksums-1", "checksums-2"]);
    expect(ownerOf(t, 0)).toBe("checksums-0");
    expect(ownerOf(t, 5462)).toBe("checksums-1");
    expect(ownerOf(t, 10923)).toBeUndefined();
    expect(migrationOf(t, 16383)).toMatchObject({ from: "checksums-2", to: "checksums-1", generation: 42 });
    expect(migrationOf(t, 0)).toBeUndefined();
    expect(tableInvariantErrors(t)).toEqual([]);
    expect(tableToStatus(t)).toEqual({
      ...designStatus(),
      shards: [...designStatus().shards, { name: "checksums-2", slots: "" }],
    });
  });

  it("canonicalises: shards sorted, ranges merged, same-key migrations merged, holderIdentity ignored", () => {
    const t = tableFromStatus({
      assignmentGeneration: 5,
      shards: [
        { name: "b", slots: "200-299,100-199", holderIdentity: "b-pod-1" },
        { name: "a", slots: "0-49" },
      ],
      migrations: [
        { slots: "60-69", from: "a", to: "b", generation: 4 },
        { slots: "50-59", from: "a", to: "b", generation: 4 },
        { slots: "70-79", from: "a", to: "b", generation: 5 },
      ],
      unassignedSlots: "80-99,300-16383",
    });
    expect(tableToStatus(t)).toEqual({
      assignmentGeneration: 5,
      shards: [
        { name: "a", slots: "0-49" },
        { name: "b", slots: "100-299" },
      ],
      migrations: [
        { slots: "50-69", from: "a", to: "b", generation: 4 },
        { slots: "70-79", from: "a", to: "b", generation: 5 },
      ],
      unassignedSlots: "80-99,300-16383",
    });
  });

  it("accepts an unplanned status at generation 0", () => {
    for (const unassignedSlots of ["", "0-16383"]) {
      const t = tableFromStatus({ assignmentGeneration: 0, shards: [], migrations: [], unassignedSlots });
      expect(freeRanges(t)).toEqual([{ start: 0, end: MAX_SLOT }]);
    }
  });

  it.each<[string, (s: StatusTable) => void, string, RegExp]>([
    [
      "a slot owned twice",
      (s) => {
        s.shards[1]!.slots = "5000-10922";
      },
      "status.shards[1].slots",
      /slot 5000 is also owned by shards\[0\] \("checksums-0"\)/,
    ],
    [
      "a slot owned and migrating",
      (s) => {
        s.migrations[0]!.slots = "10900-16383";
      },
      "status.migrations[0].slots",
      /slot 10900 is migrating but also owned by shards\[1\]/,
    ],
    [
      "a slot in two migrations",
      (s) => {
        s.migrations.push({ slots: "16000", from: "checksums-0", to: "checksums-1", generation: 41 });
      },
      "status.migrations[1].slots",
      /slot 16000 is also in migrations\[0\]/,
    ],
    [
      "duplicate shard names",
      (s) => {
        s.shards.push({ name: "checksums-0", slots: "" });
      },
      "status.shards[2].name",
      /duplicate shard name "checksums-0" \(also shards\[0\]\)/,
    ],
    [
      "an empty shard name",
      (s) => {
        s.shards[0]!.name = "";
      },
      "status.shards[0].name",
      /non-empty string/,
    ],
    [
      "a migration to itself",
      (s) => {
        s.migrations[0]!.to = "checksums-2";
      },
      "status.migrations[0].to",
      /to itself/,
    ],
    [
      "a migration from a future generation",
      (s) => {
        s.migrations[0]!.generation = 43;
      },
      "status.migrations[0].generation",
      /43 is newer than assignmentGeneration 42/,
    ],
    [
      "a migration of no slots",
      (s) => {
        s.migrations[0]!.slots = "";
      },
      "status.migrations[0].slots",
      /at least one slot/,
    ],
    [
      "unassignedSlots omitting a free slot",
      (s) => {
        s.shards[0]!.slots = "1-5461";
      },
      "status.unassignedSlots",
      /omits slot 0/,
    ],
    [
      "unassignedSlots listing an owned slot",
      (s) => {
        s.unassignedSlots = "7";
      },
      "status.unassignedSlots",
      /lists slot 7, which is owned by shards\[0\]/,
    ],
    [
      "a negative generation",
      (s) => {
        s.assignmentGeneration = -1;
      },
      "status.assignmentGeneration",
      /integer >= 0/,
    ],
    [
      "slots assigned at generation 0",
      (s) => {
        s.assignmentGeneration = 0;
        s.migrations = [];
        s.unassignedSlots = "10923-16383";
      },
      "status.assignmentGeneration",
      /nothing planned yet/,
    ],
  ])("rejects %s, naming the field", (_what, mutate, field, reason) => {
    const s = designStatus();
    mutate(s);
    const e = tableError(() => tableFromStatus(s));
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
    expect(e.message).toMatch(reason);
  });

  it("rejects bad range strings with a SlotRangeError naming the field and token", () => {
    const s = designStatus();
    s.shards[1]!.slots = "5462-10922,abc";
    let err: unknown;
    try {
      tableFromStatus(s, "sm.status");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SlotRangeError);
    expect(err).toMatchObject({ field: "sm.status.shards[1].slots", token: "abc" });
  });

  it("uses the given field prefix", () => {
    const s = designStatus();
    s.unassignedSlots = "0";
    expect(tableError(() => tableFromStatus(s, "slotmaps/checksums.status")).field).toBe(
      "slotmaps/checksums.status.unassignedSlots",
    );
  });
});

describe("ownership views", () => {
  const t = tableOf(3, { a: "0-99,200-299", b: "100-199", c: "" }, [
    { slots: [{ start: 300, end: 399 }], from: "c", to: "a", generation: 3 },
  ]);

  it("ownershipMask has 1 exactly where the shard owns the slot", () => {
    const mask = ownershipMask(t, "a");
    expect(mask.length).toBe(SLOT_COUNT);
    const owned: number[] = [];
    mask.forEach((v, s) => {
      if (v) owned.push(s);
    });
    expect(owned.length).toBe(200);
    expect(owned.every((s) => ownerOf(t, s) === "a")).toBe(true);
    expect(ownershipMask(t, "c").every((v) => v === 0)).toBe(true);
    // Migrating slots belong to nobody, not even the migration's `to`.
    expect(ownershipMask(t, "a")[300]).toBe(0);
    expect(ownershipMask(t, "unknown").every((v) => v === 0)).toBe(true);
  });

  it("ownedRanges, rangesByShard, ownedCounts, freeRanges agree", () => {
    expect(ownedRanges(t, "a")).toEqual(parseSlotRanges("0-99,200-299"));
    expect(ownedRanges(t, "nobody")).toEqual([]);
    expect(rangesByShard(t)).toEqual(
      new Map([
        ["a", parseSlotRanges("0-99,200-299")],
        ["b", parseSlotRanges("100-199")],
        ["c", []],
      ]),
    );
    expect(ownedCounts(t)).toEqual(
      new Map([
        ["a", 200],
        ["b", 100],
        ["c", 0],
      ]),
    );
    expect(freeRanges(t)).toEqual(parseSlotRanges("400-16383"));
  });

  it("ownerOf and migrationOf reject non-slots", () => {
    for (const bad of [-1, SLOT_COUNT, 1.5, Number.NaN]) {
      expect(() => ownerOf(t, bad)).toThrow(RangeError);
      expect(() => migrationOf(t, bad)).toThrow(RangeError);
    }
  });
});

describe("diffTables / tablesEqual / sameAssignment", () => {
  it("lists owner changes grouped by (from, to), null first", () => {
    const before = tableOf(1, { a: "0-99", b: "100-199" });
    const after = tableOf(2, { a: "0-49,150-159", c: "100-149,200-209" });
    expect(diffTables(before, after)).toEqual([
      { from: null, to: "c", slots: parseSlotRanges("200-209") },
      { from: "a", to: null, slots: parseSlotRanges("50-99") },
      { from: "b", to: null, slots: parseSlotRanges("160-199") },
      { from: "b", to: "a", slots: parseSlotRanges("150-159") },
      { from: "b", to: "c", slots: parseSlotRanges("100-149") },
    ]);
    expect(diffTables(after, after)).toEqual([]);
  });

  it("compares by shard name, not owner index", () => {
    // Same owners, different shard lists (so different indices).
    const x = tableOf(1, { a: "", b: "0-16383" });
    const y = tableOf(1, { b: "0-16383" });
    expect(diffTables(x, y)).toEqual([]);
    expect(sameAssignment(x, y)).toBe(true);
    expect(tablesEqual(x, y)).toBe(true);
    expect(tablesEqual(x, tableOf(2, { b: "0-16383" }))).toBe(false);
    expect(sameAssignment(x, tableOf(1, { b: "1-16383" }))).toBe(false);
    const m = (generation: number): Migration => ({
      slots: [{ start: 0, end: 0 }],
      from: "a",
      to: "b",
      generation,
    });
    expect(sameAssignment(tableOf(2, { b: "1-16383" }, [m(1)]), tableOf(2, { b: "1-16383" }, [m(2)]))).toBe(
      false,
    );
  });
});

describe("tableInvariantErrors", () => {
  const ok = (): SlotTable => tableFromStatus(designStatus());
  const withParts = (
    parts: Partial<{ generation: number; shards: string[]; owner: Uint16Array; migrations: Migration[] }>,
  ) => {
    const t = ok();
    return makeTable(
      parts.generation ?? t.generation,
      parts.shards ?? [...t.shards],
      parts.owner ?? t.owner.slice(),
      parts.migrations ?? [...t.migrations],
    );
  };
  const mig = (slots: string, from: string, to: string, generation: number): Migration => ({
    slots: parseSlotRanges(slots),
    from,
    to,
    generation,
  });

  it("is empty for a consistent table", () => {
    expect(tableInvariantErrors(ok())).toEqual([]);
  });

  it.each<[string, () => SlotTable, RegExp]>([
    [
      "a slot owned and migrating",
      () => {
        const owner = ok().owner.slice();
        owner[16000] = 0;
        return withParts({ owner });
      },
      /slot 16000 is owned by checksums-0 and migrating/,
    ],
    [
      "a slot in two migrations",
      () =>
        withParts({
          migrations: [
            mig("10923-16383", "checksums-2", "checksums-1", 42),
            mig("16383", "checksums-2", "checksums-1", 41),
          ].sort((a, b) => a.generation - b.generation),
        }),
      /slot 16383 is in migrations\[0\] and migrations\[1\]/,
    ],
    [
      "unsorted shard names",
      () => withParts({ shards: ["checksums-1", "checksums-0", "checksums-2"] }),
      /sorted/,
    ],
    ["duplicate shard names", () => withParts({ shards: ["a", "a", "b"] }), /sorted, unique/],
    [
      "an owner index that is no shard",
      () => {
        const owner = ok().owner.slice();
        owner[5] = 3;
        owner[6] = 3;
        return withParts({ owner });
      },
      /owner\[5\] = 3 is not a shard index/,
    ],
    ["a wrong owner array", () => withParts({ owner: new Uint16Array(10) }), /Uint16Array of length 16384/],
    ["a negative generation", () => withParts({ generation: -1, migrations: [] }), /generation -1/],
    [
      "a migration from a future generation",
      () => withParts({ migrations: [mig("10923-16383", "checksums-2", "checksums-1", 43)] }),
      /generation 43 outside 1..42/,
    ],
    [
      "a migration to itself",
      () => withParts({ migrations: [mig("10923-16383", "checksums-1", "checksums-1", 42)] }),
      /moves slots to the shard they come from/,
    ],
    [
      "a migration of no slots",
      () =>
        withParts({ migrations: [{ slots: [], from: "checksums-2", to: "checksums-1", generation: 42 }] }),
      /moves no slots/,
    ],
    [
      "non-canonical migration ranges",
      () =>
        withParts({
          migrations: [
            {
              slots: [
                { start: 10923, end: 12000 },
                { start: 12001, end: 16383 },
              ],
              from: "checksums-2",
              to: "checksums-1",
              generation: 42,
            },
          ],
        }),
      /not sorted and merged/,
    ],
    [
      "an invalid migration range",
      () =>
        withParts({
          migrations: [
            { slots: [{ start: 16383, end: 10923 }], from: "checksums-2", to: "checksums-1", generation: 42 },
          ],
        }),
      /is not a valid range/,
    ],
    [
      "unsorted migrations",
      () =>
        withParts({
          migrations: [
            mig("11000-16383", "checksums-2", "checksums-1", 42),
            mig("10923-10999", "checksums-1", "checksums-0", 42),
          ],
        }),
      /not after migrations\[0\]/,
    ],
  ])("reports %s", (_what, make, message) => {
    const errors = tableInvariantErrors(make());
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join("\n")).toMatch(message);
  });
});
