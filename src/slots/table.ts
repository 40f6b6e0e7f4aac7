/**
 * The slot table: owner per slot in a `Uint16Array` plus in-flight migrations, and its wire form
 * (`StatusTable`, Redis-style range strings).
 *
 * Tables are immutable values. The plain parts (the table object, `shards`, `migrations`) are
 * frozen; a typed array cannot be frozen, so `owner` is immutable by convention: functions here
 * never write into a table they did not just create, and neither may callers.
 */
import { formatSlotRanges, parseSlotRanges, rangesFromMask } from "./ranges.js";
import {
  MAX_SLOT,
  type Migration,
  NO_OWNER,
  SLOT_COUNT,
  type SlotRange,
  type SlotTable,
  type StatusTable,
} from "./types.js";

/** An inconsistent slot table in a status. `field` is the path of the offending field. */
export class SlotTableError extends Error {
  /** Path of the offending field, e.g. `status.shards[2].slots`. */
  readonly field: string;

  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = "SlotTableError";
    this.field = field;
  }
}

/** Orders migrations by (from, to, generation), the canonical order in a table. */
export function compareMigrations(a: Migration, b: Migration): number {
  if (a.from !== b.from) return a.from < b.from ? -1 : 1;
  if (a.to !== b.to) return a.to < b.to ? -1 : 1;
  return a.generation - b.generation;
}

function freezeMigration(m: Migration): Migration {
  if (Object.isFrozen(m)) return m;
  for (const r of m.slots) Object.freeze(r);
  Object.freeze(m.slots);
  return Object.freeze(m);
}

/**
 * Assembles a table from its parts and freezes the plain parts. The caller hands over `owner`
 * and must not write to it afterwards. No consistency check: see {@link tableInvariantErrors}.
 */
export function makeTable(
  generation: number,
  shards: readonly string[],
  owner: Uint16Array,
  migrations: readonly Migration[],
): SlotTable {
  for (const m of migrations) freezeMigration(m);
  return Object.freeze({
    generation,
    shards: Object.freeze([...shards]),
    owner,
    migrations: Object.freeze([...migrations]),
  });
}

/** A table at generation 0 with every slot free and no shards. */
export function emptyTable(): SlotTable {
  return makeTable(0, [], new Uint16Array(SLOT_COUNT).fill(NO_OWNER), []);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function requireString(v: unknown, field: string): string {
  if (typeof v !== "string" || v === "") {
    throw new SlotTableError(field, `expected a non-empty string, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return v;
}

function requireGeneration(v: unknown, field: string, min: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new SlotTableError(field, `expected an integer >= ${min}, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return v;
}

function parseRanges(v: unknown, field: string): SlotRange[] {
  if (typeof v !== "string") {
    throw new SlotTableError(field, `expected a slot range string, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return parseSlotRanges(v, field);
}

/**
 * Reads the slot table out of a SlotMap status. `holderIdentity` and any other per-shard fields
 * are ignored (the caller reads them from the status). Shards named only as a migration's `from`
 * or `to` are added to `shards`. Migrations with the same (from, to, generation) are merged.
 *
 * A status at `assignmentGeneration: 0` (nothing planned yet) must assign nothing; its
 * `unassignedSlots` may be `""` (never written) or `"0-16383"`. From generation 1 on,
 * `unassignedSlots` must list exactly the slots neither owned nor migrating.
 *
 * This is the one implementation of the status's rules across fields: the zod schema of
 * src/api/v1alpha1.ts checks the shape and then calls this, turning the error into an issue at
 * `field`, so both report the same finding.
 *
 * @param field - path of the status in errors, default `status`.
 * @throws SlotTableError or SlotRangeError naming the field, e.g. `status.shards[2].slots`, for a
 *   malformed or inconsistent status: a slot owned twice, owned and migrating, in two migrations,
 *   duplicate shard names, a migration from a shard to itself or from a future generation, bad
 *   ranges, or `unassignedSlots` that disagrees with the rest.
 */
export function tableFromStatus(status: StatusTable, field = "status"): SlotTable {
  if (!isObject(status)) throw new SlotTableError(field, "expected an object");
  const generation = requireGeneration(status.assignmentGeneration, `${field}.assignmentGeneration`, 0);
  const shardsIn: unknown = status.shards ?? [];
  const migrationsIn: unknown = status.migrations ?? [];
  if (!Array.isArray(shardsIn)) throw new SlotTableError(`${field}.shards`, "expected a list");
  if (!Array.isArray(migrationsIn)) throw new SlotTableError(`${field}.migrations`, "expected a list");
  const shardList: unknown[] = shardsIn;
  const nameAt = (i: number): string => {
    const s = shardList[i];
    return JSON.stringify(isObject(s) ? s.name : undefined);
  };

  // Pass 1: names and ranges, so that the sorted shard list (and owner indices) is known.
  const names = new Map<string, number>(); // name -> index in status.shards
  const shardRanges: SlotRange[][] = [];
  shardList.forEach((s, i) => {
    const f = `${field}.shards[${i}]`;
    if (!isObject(s)) throw new SlotTableError(f, "expected an object");
    const name = requireString(s.name, `${f}.name`);
    const prev = names.get(name);
    if (prev !== undefined) {
      throw new SlotTableError(
        `${f}.name`,
        `duplicate shard name ${JSON.stringify(name)} (also shards[${prev}])`,
      );
    }
    names.set(name, i);
    shardRanges.push(parseRanges(s.slots ?? "", `${f}.slots`));
  });
  const migs: Array<{ slots: SlotRange[]; from: string; to: string; generation: number; index: number }> = [];
  const allNames = new Set(names.keys());
  (migrationsIn as unknown[]).forEach((m, i) => {
    const f = `${field}.migrations[${i}]`;
    if (!isObject(m)) throw new SlotTableError(f, "expected an object");
    const from = requireString(m.from, `${f}.from`);
    const to = requireString(m.to, `${f}.to`);
    if (from === to) throw new SlotTableError(`${f}.to`, `migration from ${JSON.stringify(from)} to itself`);
    const g = requireGeneration(m.generation, `${f}.generation`, 1);
    if (g > generation) {
      throw new SlotTableError(`${f}.generation`, `${g} is newer than assignmentGeneration ${generation}`);
    }
    const slots = parseRanges(m.slots, `${f}.slots`);
    if (slots.length === 0) throw new SlotTableError(`${f}.slots`, "a migration must move at least one slot");
    allNames.add(from);
    allNames.add(to);
    migs.push({ slots, from, to, generation: g, index: i });
  });
  if (allNames.size >= NO_OWNER)
    throw new SlotTableError(`${field}.shards`, `too many shards (max ${NO_OWNER - 1})`);

  const shards = [...allNames].sort();
  const indexOf = new Map(shards.map((n, i) => [n, i]));
  const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  const ownerStatusIndex = new Int32Array(SLOT_COUNT).fill(-1);
  for (const [name, i] of names) {
    const idx = indexOf.get(name)!;
    for (const r of shardRanges[i]!) {
      for (let s = r.start; s <= r.end; s++) {
        const other = ownerStatusIndex[s]!;
        if (other >= 0) {
          const [a, b] = other < i ? [other, i] : [i, other];
          throw new SlotTableError(
            `${field}.shards[${b}].slots`,
            `slot ${s} is also owned by shards[${a}] (${nameAt(a)})`,
          );
        }
        ownerStatusIndex[s] = i;
        owner[s] = idx;
      }
    }
  }

  const migIndex = new Int32Array(SLOT_COUNT).fill(-1);
  for (const m of migs) {
    for (const r of m.slots) {
      for (let s = r.start; s <= r.end; s++) {
        const o = ownerStatusIndex[s]!;
        if (o >= 0) {
          throw new SlotTableError(
            `${field}.migrations[${m.index}].slots`,
            `slot ${s} is migrating but also owned by shards[${o}] (${nameAt(o)})`,
          );
        }
        const other = migIndex[s]!;
        if (other >= 0) {
          throw new SlotTableError(
            `${field}.migrations[${m.index}].slots`,
            `slot ${s} is also in migrations[${other}]`,
          );
        }
        migIndex[s] = m.index;
      }
    }
  }

  const unassignedIn: unknown = status.unassignedSlots ?? "";
  const unassigned = parseRanges(unassignedIn, `${field}.unassignedSlots`);
  const listed = new Uint8Array(SLOT_COUNT);
  for (const r of unassigned) listed.fill(1, r.start, r.end + 1);
  const uf = `${field}.unassignedSlots`;
  if (generation === 0) {
    if (names.size > 0 && shardRanges.some((r) => r.length > 0)) {
      throw new SlotTableError(
        `${field}.assignmentGeneration`,
        "0 (nothing planned yet) but shards own slots; every change of the table increments it",
      );
    }
    if (migs.length > 0) {
      throw new SlotTableError(
        `${field}.assignmentGeneration`,
        "0 (nothing planned yet) but migrations are listed; every change of the table increments it",
      );
    }
    if (unassignedIn !== "" && unassigned.length !== 1) {
      throw new SlotTableError(uf, `must be "" or "0-${MAX_SLOT}" at assignmentGeneration 0`);
    }
    if (unassigned.length === 1 && (unassigned[0]!.start !== 0 || unassigned[0]!.end !== MAX_SLOT)) {
      throw new SlotTableError(uf, `must be "" or "0-${MAX_SLOT}" at assignmentGeneration 0`);
    }
  } else {
    for (let s = 0; s < SLOT_COUNT; s++) {
      const free = ownerStatusIndex[s] === -1 && migIndex[s] === -1;
      if (listed[s] && !free) {
        const o = ownerStatusIndex[s]!;
        throw new SlotTableError(
          uf,
          o >= 0
            ? `lists slot ${s}, which is owned by shards[${o}] (${nameAt(o)})`
            : `lists slot ${s}, which is in migrations[${migIndex[s]}]`,
        );
      }
      if (!listed[s] && free) {
        throw new SlotTableError(uf, `omits slot ${s}, which is neither owned nor migrating`);
      }
    }
  }

  // Canonical migrations: merged by (from, to, generation), sorted.
  const byKey = new Map<string, { from: string; to: string; generation: number; slots: SlotRange[] }>();
  for (const m of migs) {
    const key = JSON.stringify([m.from, m.to, m.generation]);
    const e = byKey.get(key);
    if (e === undefined) byKey.set(key, { from: m.from, to: m.to, generation: m.generation, slots: m.slots });
    else e.slots = [...e.slots, ...m.slots];
  }
  const migrations: Migration[] = [...byKey.values()].map((m) => ({
    slots: rangesOfList(m.slots),
    from: m.from,
    to: m.to,
    generation: m.generation,
  }));
  migrations.sort(compareMigrations);
  return makeTable(generation, shards, owner, migrations);
}

function rangesOfList(ranges: SlotRange[]): SlotRange[] {
  const mask = new Uint8Array(SLOT_COUNT);
  for (const r of ranges) mask.fill(1, r.start, r.end + 1);
  return rangesFromMask(mask);
}

/** Canonical ranges owned by each shard index, in one pass over the owner array. */
function rangesByIndex(table: SlotTable): SlotRange[][] {
  const out: SlotRange[][] = table.shards.map(() => []);
  const { owner } = table;
  let s = 0;
  while (s < SLOT_COUNT) {
    const o = owner[s]!;
    let e = s;
    while (e + 1 < SLOT_COUNT && owner[e + 1] === o) e++;
    if (o !== NO_OWNER) out[o]?.push({ start: s, end: e });
    s = e + 1;
  }
  return out;
}

/** Owned ranges of every shard of the table (including shards owning nothing). */
export function rangesByShard(table: SlotTable): Map<string, SlotRange[]> {
  const byIndex = rangesByIndex(table);
  return new Map(table.shards.map((name, i) => [name, byIndex[i]!]));
}

/** Number of owned slots of every shard of the table (migrating slots count for nobody). */
export function ownedCounts(table: SlotTable): Map<string, number> {
  const counts = new Array<number>(table.shards.length).fill(0);
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = table.owner[s]!;
    if (o !== NO_OWNER) counts[o] = (counts[o] ?? 0) + 1;
  }
  return new Map(table.shards.map((name, i) => [name, counts[i]!]));
}

/**
 * The wire form of a table: one entry per shard of `table.shards` (sorted; `slots` may be `""`),
 * migrations in table order, and `unassignedSlots` = slots neither owned nor migrating. Per-shard
 * fields other than `name` and `slots` (state, observedGeneration, holderIdentity) are the
 * coordinator's to add.
 */
export function tableToStatus(table: SlotTable): StatusTable {
  const byIndex = rangesByIndex(table);
  return {
    assignmentGeneration: table.generation,
    shards: table.shards.map((name, i) => ({ name, slots: formatSlotRanges(byIndex[i]!) })),
    migrations: table.migrations.map((m) => ({
      slots: formatSlotRanges(m.slots),
      from: m.from,
      to: m.to,
      generation: m.generation,
    })),
    unassignedSlots: formatSlotRanges(freeRanges(table)),
  };
}

function shardIndex(table: SlotTable, shard: string): number {
  // Binary search: `shards` is sorted.
  let lo = 0;
  let hi = table.shards.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const name = table.shards[mid]!;
    if (name === shard) return mid;
    if (name < shard) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Canonical ranges owned by `shard` (`[]` for a shard the table does not know). */
export function ownedRanges(table: SlotTable, shard: string): SlotRange[] {
  return rangesFromMask(ownershipMask(table, shard));
}

/**
 * A {@link SLOT_COUNT}-long mask with 1 where `shard` owns the slot: what a shard consults per
 * object (`mask[slot] === 1`), an O(1) lookup.
 */
export function ownershipMask(table: SlotTable, shard: string): Uint8Array {
  const mask = new Uint8Array(SLOT_COUNT);
  const idx = shardIndex(table, shard);
  if (idx < 0) return mask;
  const { owner } = table;
  for (let s = 0; s < SLOT_COUNT; s++) if (owner[s] === idx) mask[s] = 1;
  return mask;
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot > MAX_SLOT) throw new RangeError(`invalid slot ${slot}`);
}

/**
 * The shard owning `slot`, or `undefined` when it is free or migrating.
 *
 * @throws RangeError when `slot` is not an integer in 0..16383.
 */
export function ownerOf(table: SlotTable, slot: number): string | undefined {
  checkSlot(slot);
  const o = table.owner[slot]!;
  return o === NO_OWNER ? undefined : table.shards[o];
}

/**
 * The migration moving `slot`, or `undefined`.
 *
 * @throws RangeError when `slot` is not an integer in 0..16383.
 */
export function migrationOf(table: SlotTable, slot: number): Migration | undefined {
  checkSlot(slot);
  for (const m of table.migrations) {
    for (const r of m.slots) if (slot >= r.start && slot <= r.end) return m;
  }
  return undefined;
}

function migratingMask(table: SlotTable): Uint8Array {
  const mask = new Uint8Array(SLOT_COUNT);
  for (const m of table.migrations) for (const r of m.slots) mask.fill(1, r.start, r.end + 1);
  return mask;
}

/** Canonical ranges of slots that are neither owned nor migrating. */
export function freeRanges(table: SlotTable): SlotRange[] {
  const mask = migratingMask(table);
  const { owner } = table;
  for (let s = 0; s < SLOT_COUNT; s++) mask[s] = owner[s] === NO_OWNER && mask[s] === 0 ? 1 : 0;
  return rangesFromMask(mask);
}

/** Owner changes between two tables: `from`/`to` are `null` for "no owner" (free or migrating). */
export interface SlotMove {
  slots: SlotRange[];
  from: string | null;
  to: string | null;
}

/**
 * Owner changes from `before` to `after`, grouped by (from, to) and sorted by (from, to) with
 * `null` first. Migrations are not compared: a slot entering a migration shows as `from → null`.
 */
export function diffTables(before: SlotTable, after: SlotTable): SlotMove[] {
  const groups = new Map<string, { from: string | null; to: string | null; mask: Uint8Array }>();
  for (let s = 0; s < SLOT_COUNT; s++) {
    const a = before.owner[s]!;
    const b = after.owner[s]!;
    const from = a === NO_OWNER ? null : (before.shards[a] ?? null);
    const to = b === NO_OWNER ? null : (after.shards[b] ?? null);
    if (from === to) continue;
    const key = JSON.stringify([from, to]);
    let g = groups.get(key);
    if (g === undefined) {
      g = { from, to, mask: new Uint8Array(SLOT_COUNT) };
      groups.set(key, g);
    }
    g.mask[s] = 1;
  }
  const cmp = (x: string | null, y: string | null): number =>
    x === y ? 0 : x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
  return [...groups.values()]
    .sort((x, y) => cmp(x.from, y.from) || cmp(x.to, y.to))
    .map((g) => ({ slots: rangesFromMask(g.mask), from: g.from, to: g.to }));
}

/** Whether two tables have the same generation, owners (by name) and migrations. */
export function tablesEqual(a: SlotTable, b: SlotTable): boolean {
  if (a === b) return true;
  if (a.generation !== b.generation) return false;
  return sameAssignment(a, b);
}

/** Whether two tables assign every slot alike (owners by name, and migrations), ignoring generation. */
export function sameAssignment(a: SlotTable, b: SlotTable): boolean {
  for (let s = 0; s < SLOT_COUNT; s++) {
    const x = a.owner[s]!;
    const y = b.owner[s]!;
    const nx = x === NO_OWNER ? undefined : a.shards[x];
    const ny = y === NO_OWNER ? undefined : b.shards[y];
    if (nx !== ny) return false;
  }
  if (a.migrations.length !== b.migrations.length) return false;
  for (let i = 0; i < a.migrations.length; i++) {
    const m = a.migrations[i]!;
    const n = b.migrations[i]!;
    if (m.from !== n.from || m.to !== n.to || m.generation !== n.generation) return false;
    if (formatSlotRanges(m.slots) !== formatSlotRanges(n.slots)) return false;
  }
  return true;
}

/**
 * Every violated table invariant, as a message; `[]` when the table is consistent: generation a
 * non-negative integer; shard names non-empty, unique, sorted; `owner` of length 16384 with valid
 * indices; migrations sorted, canonical ranges, non-empty, `from != to`, generation in
 * 1..table.generation; a migrating slot has no owner and is in one migration only.
 */
export function tableInvariantErrors(table: SlotTable): string[] {
  const errors: string[] = [];
  if (!Number.isSafeInteger(table.generation) || table.generation < 0) {
    errors.push(`generation ${table.generation} is not a non-negative integer`);
  }
  table.shards.forEach((name, i) => {
    if (typeof name !== "string" || name === "") errors.push(`shards[${i}] is not a non-empty string`);
    const prev = table.shards[i - 1];
    if (i > 0 && prev !== undefined && !(prev < name)) {
      errors.push(
        `shards[${i}] ${JSON.stringify(name)} is not after ${JSON.stringify(prev)} (sorted, unique)`,
      );
    }
  });
  if (!(table.owner instanceof Uint16Array) || table.owner.length !== SLOT_COUNT) {
    errors.push(`owner is not a Uint16Array of length ${SLOT_COUNT}`);
    return errors;
  }
  let badOwners = 0;
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = table.owner[s]!;
    if (o !== NO_OWNER && o >= table.shards.length) {
      if (badOwners++ === 0) errors.push(`owner[${s}] = ${o} is not a shard index`);
    }
  }
  if (badOwners > 1) errors.push(`${badOwners - 1} more slots with an owner that is not a shard index`);
  const inMigration = new Int32Array(SLOT_COUNT).fill(-1);
  table.migrations.forEach((m, i) => {
    const where = `migrations[${i}] (${m.from} -> ${m.to})`;
    const prev = table.migrations[i - 1];
    if (prev !== undefined && compareMigrations(prev, m) >= 0) {
      errors.push(`${where} is not after migrations[${i - 1}] in (from, to, generation) order`);
    }
    if (m.from === "" || m.to === "") errors.push(`${where} has an empty shard name`);
    if (m.from === m.to) errors.push(`${where} moves slots to the shard they come from`);
    if (!Number.isSafeInteger(m.generation) || m.generation < 1 || m.generation > table.generation) {
      errors.push(`${where} has generation ${m.generation} outside 1..${table.generation}`);
    }
    if (m.slots.length === 0) errors.push(`${where} moves no slots`);
    m.slots.forEach((r, j) => {
      const ok =
        Number.isInteger(r.start) &&
        Number.isInteger(r.end) &&
        r.start >= 0 &&
        r.end <= MAX_SLOT &&
        r.start <= r.end;
      if (!ok) {
        errors.push(`${where} slots[${j}] ${JSON.stringify(r)} is not a valid range`);
        return;
      }
      const before = m.slots[j - 1];
      if (before !== undefined && r.start <= before.end + 1) {
        errors.push(`${where} slots[${j}] is not sorted and merged after slots[${j - 1}]`);
      }
      for (let s = r.start; s <= r.end; s++) {
        if (table.owner[s] !== NO_OWNER) {
          errors.push(`slot ${s} is owned by ${table.shards[table.owner[s]!]} and migrating in ${where}`);
        }
        const other = inMigration[s]!;
        if (other >= 0) errors.push(`slot ${s} is in migrations[${other}] and migrations[${i}]`);
        inMigration[s] = i;
      }
    });
  });
  return errors;
}
