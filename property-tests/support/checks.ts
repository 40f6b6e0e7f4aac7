/**
 * Checks of one planning step against DESIGN "The handoff protocol" and the table invariants,
 * collected as messages (one `expect` per step keeps 16384-slot scans cheap).
 */
import {
  countSlots,
  type Migration,
  NO_OWNER,
  type PlanPolicy,
  type PlanResult,
  type ShardInfo,
  SLOT_COUNT,
  type SlotTable,
  tableInvariantErrors,
} from "../../src/slots/index.js";

/** Slots currently in migrations. */
export function migratingSlots(table: SlotTable): number {
  let n = 0;
  for (const m of table.migrations) n += countSlots(m.slots);
  return n;
}

/** For each slot, the index of the migration moving it in `table.migrations`, or -1. */
export function migrationIndexBySlot(table: SlotTable): Int32Array {
  const out = new Int32Array(SLOT_COUNT).fill(-1);
  table.migrations.forEach((m, i) => {
    for (const r of m.slots) out.fill(i, r.start, r.end + 1);
  });
  return out;
}

/**
 * Every violation of the step `prev` → `res` for planner input `shards`:
 * - the new table is consistent (every slot has at most one owner or one migration, never both);
 * - `changed` and `generation` agree, and an unchanged result is the input table itself;
 * - at most `policy.maxMigratingSlots` slots migrate;
 * - safety: a slot leaves a live (Ready or Expired) owner only into a new migration from it, and
 *   an Expired owner loses nothing; a slot gains an owner only if that owner is Ready and the slot
 *   was free, owned by a Dead or unknown shard, or in a migration whose `from` acknowledged its
 *   generation or is Dead or unknown; a pending migration stays pending with the same `from` and
 *   generation (its `to` may change); a migration's `to` is Ready when it is created or moved.
 */
export function stepViolations(
  prev: SlotTable,
  res: PlanResult,
  shards: readonly ShardInfo[],
  policy: PlanPolicy,
): string[] {
  const next = res.table;
  const out = tableInvariantErrors(next).map((e) => `invariant: ${e}`);
  if (res.changed && next.generation !== prev.generation + 1) {
    out.push(`changed but generation ${prev.generation} -> ${next.generation}`);
  }
  if (!res.changed && next !== prev) out.push("unchanged result is not the input table");
  const migrating = migratingSlots(next);
  if (migrating > policy.maxMigratingSlots) {
    out.push(`${migrating} slots migrating > maxMigratingSlots ${policy.maxMigratingSlots}`);
  }

  const info = new Map(shards.map((s) => [s.name, s]));
  const alive = (name: string | undefined): boolean => {
    const st = name === undefined ? undefined : info.get(name)?.state;
    return st === "Ready" || st === "Expired";
  };
  const ready = (name: string | undefined): boolean =>
    name !== undefined && info.get(name)?.state === "Ready";
  const finished = (m: Migration): boolean => {
    const from = info.get(m.from);
    return from === undefined || from.state === "Dead" || from.ackedGeneration >= m.generation;
  };
  // Per-slot work on typed arrays (this runs after every planning step of every run): owners are
  // compared as indices of `next.shards`, with prev's indices translated once.
  const nextIndex = new Map(next.shards.map((n, i) => [n, i]));
  const prevToNext = prev.shards.map((n) => nextIndex.get(n) ?? -2);
  const prevMig = migrationIndexBySlot(prev);
  const nextMig = migrationIndexBySlot(next);
  const prevFinished = prev.migrations.map(finished);
  const add = (s: number, msg: string): void => {
    if (out.length < 20) out.push(`slot ${s}: ${msg}`);
  };
  for (let s = 0; s < SLOT_COUNT; s++) {
    const po = prev.owner[s]!;
    const no = next.owner[s]!;
    const pmi = prevMig[s]!;
    const nmi = nextMig[s]!;
    const same = po === NO_OWNER ? no === NO_OWNER : prevToNext[po] === no;
    if (same && pmi < 0 && nmi < 0) continue; // the common case: nothing happened to this slot
    const p = po === NO_OWNER ? undefined : prev.shards[po];
    const n = no === NO_OWNER ? undefined : next.shards[no];
    const pm = pmi < 0 ? undefined : prev.migrations[pmi];
    const nm = nmi < 0 ? undefined : next.migrations[nmi];
    if (n !== undefined && n !== p) {
      if (!ready(n)) add(s, `gained by ${n}, which is not Ready`);
      if (p !== undefined && alive(p)) add(s, `moved directly from live ${p} to ${n}`);
      if (pm !== undefined && !prevFinished[pmi]) {
        add(s, `joined ${n} while ${pm.from} has not acked generation ${pm.generation}`);
      }
    }
    if (p !== undefined && n !== p && alive(p)) {
      if (!ready(p)) add(s, `taken from ${p}, which is Expired`);
      if (nm === undefined || nm.from !== p || nm.generation !== next.generation) {
        add(s, `left live ${p} without a new migration from it`);
      }
    }
    if (pm !== undefined && !prevFinished[pmi]) {
      if (nm === undefined || nm.from !== pm.from || nm.generation !== pm.generation) {
        add(s, `pending migration from ${pm.from} (generation ${pm.generation}) ended before its ack`);
      }
    }
    if (nm !== undefined && (pm === undefined || nm.to !== pm.to) && !ready(nm.to)) {
      add(s, `migrates to ${nm.to}, which is not Ready`);
    }
  }
  return out;
}
