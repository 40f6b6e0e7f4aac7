/**
 * The planner: a pure function (table, shard states and weights, policy) → next table.
 *
 * One call does one step of the handoff protocol for every shard at once:
 * 1. Commit migrations whose `from` acknowledged their generation (or is Dead or unknown): the
 *    slots join `to` if it is Ready, else they become free.
 * 2. Release slots owned by Dead or unknown shards (nobody can still be running them).
 * 3. Compute targets: 16384 slots split over Ready shards by weight, largest remainder, ties by name.
 * 4. Allocate in-flight slots (pending migrations): keep their `to` while it still needs slots,
 *    retarget the rest (keeping `from` and `generation`: nobody owns them either way).
 * 5. Assign free slots directly to Ready shards below target.
 * 6. Rebalance: Ready shards above target start migrations of their surplus to shards below
 *    target, at most `maxMigratingSlots` slots migrating in total.
 *
 * Slot choice keeps shards contiguous without moving more than the surplus: free and surplus slots
 * first go to a shard owning (or about to own) the adjacent slot, which shifts a boundary and
 * creates no new range; a donor then prefers to give whole small ranges (it loses a fragment);
 * otherwise it gives the tail of its last range, to the recipient whose need fits it best.
 *
 * Internally shards are indices into the sorted list of all names; per-slot state lives in typed
 * arrays, so planning 1000 shards takes a few milliseconds.
 */
import { castDraft, produce } from "immer";
import { compareMigrations } from "./table.js";
import {
  MAX_SLOT,
  type Migration,
  NO_OWNER,
  type PlanPolicy,
  type ShardInfo,
  SLOT_COUNT,
  type SlotRange,
  type SlotTable,
} from "./types.js";

/** Outcome of one planning step. */
export interface PlanResult {
  /** The next table: generation = input + 1 when changed, else the input table itself. */
  table: SlotTable;
  /** Whether owners or migrations changed (then `table.generation` was incremented). */
  changed: boolean;
  /** Input migrations that were finished: `from` acked (or is Dead or unknown). */
  committed: Migration[];
  /** New migrations, each with generation = `table.generation`. */
  started: Migration[];
  /** Free slots assigned to a Ready shard in this step (no handoff needed). */
  direct: Array<{ slots: SlotRange[]; to: string }>;
  /** Slots taken from Dead or unknown shards (they became free, and possibly `direct`ly reassigned). */
  released: Array<{ slots: SlotRange[]; from: string }>;
  /**
   * Pending migrations whose `to` changed (split or moved to another Ready shard because the old
   * `to` is no longer Ready or no longer needs them), as they are in the new table; their
   * `generation` is the original one, since `from` still has to acknowledge it.
   */
  retargeted: Migration[];
  /** Slot quota of every Ready shard (0 for weight 0). */
  targets: ReadonlyMap<string, number>;
  /** Every slot owned by a Ready shard, every Ready shard at its target, no migrations. */
  balanced: boolean;
}

/** An invalid planner input (a programming error in the caller, not a cluster state). */
export class PlanInputError extends Error {
  readonly field: string;
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = "PlanInputError";
    this.field = field;
  }
}

function validate(shards: readonly ShardInfo[], policy: PlanPolicy): void {
  const seen = new Set<string>();
  shards.forEach((s, i) => {
    if (typeof s.name !== "string" || s.name === "")
      throw new PlanInputError(`shards[${i}].name`, "empty name");
    if (seen.has(s.name))
      throw new PlanInputError(`shards[${i}].name`, `duplicate shard ${JSON.stringify(s.name)}`);
    seen.add(s.name);
    if (s.state !== "Ready" && s.state !== "Expired" && s.state !== "Dead") {
      throw new PlanInputError(`shards[${i}].state`, `unknown state ${JSON.stringify(s.state)}`);
    }
    if (typeof s.weight !== "number" || !Number.isFinite(s.weight) || s.weight < 0) {
      throw new PlanInputError(`shards[${i}].weight`, `expected a finite number >= 0, got ${s.weight}`);
    }
    if (!Number.isSafeInteger(s.ackedGeneration) || s.ackedGeneration < 0) {
      throw new PlanInputError(
        `shards[${i}].ackedGeneration`,
        `expected an integer >= 0, got ${s.ackedGeneration}`,
      );
    }
  });
  const max = policy.maxMigratingSlots;
  if (
    typeof max !== "number" ||
    Number.isNaN(max) ||
    max < 0 ||
    (Number.isFinite(max) && !Number.isInteger(max))
  ) {
    throw new PlanInputError("policy.maxMigratingSlots", `expected an integer >= 0, got ${max}`);
  }
}

/**
 * Slot quota per Ready shard: 16384 split by weight with the largest-remainder method, ties broken
 * by name. Weight 0 gets 0. When no Ready shard has weight > 0 every quota is 0.
 */
export function computeTargets(shards: readonly ShardInfo[]): Map<string, number> {
  const ready = shards.filter((s) => s.state === "Ready").sort((a, b) => (a.name < b.name ? -1 : 1));
  // Scale by the largest weight first: with huge finite weights (1e308) the plain sum overflows to
  // Infinity and every share becomes NaN; scaled weights are in [0, 1] and sum to at most n.
  const maxWeight = ready.reduce((acc, s) => Math.max(acc, s.weight), 0);
  const scaled = ready.map((s) => (maxWeight > 0 ? s.weight / maxWeight : 0));
  const total = scaled.reduce((acc, w) => acc + w, 0);
  const out = new Map<string, number>();
  if (!(total > 0)) {
    for (const s of ready) out.set(s.name, 0);
    return out;
  }
  const parts = scaled.map((w, i) => {
    const exact = (SLOT_COUNT * w) / total;
    const base = Math.floor(exact);
    return { i, base, rem: w > 0 ? exact - base : -1 };
  });
  let left = SLOT_COUNT - parts.reduce((acc, p) => acc + p.base, 0);
  const order = parts.filter((p) => p.rem >= 0).sort((a, b) => b.rem - a.rem || a.i - b.i);
  // `left` < number of positive weights in exact arithmetic; the loop guards against float drift.
  for (let k = 0; left > 0 && order.length > 0; k = (k + 1) % order.length, left--) order[k]!.base++;
  for (const p of parts) out.set(ready[p.i]!.name, p.base);
  return out;
}

/** Collects ascending slots into canonical ranges. */
class RangeBuilder {
  readonly ranges: SlotRange[] = [];
  add(slot: number): void {
    const last = this.ranges[this.ranges.length - 1];
    if (last !== undefined && last.end + 1 === slot)
      this.ranges[this.ranges.length - 1] = { start: last.start, end: slot };
    else this.ranges.push({ start: slot, end: slot });
  }
}

function groupedMap<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/**
 * Plans the next table. Pure and deterministic: the same input gives the same output, and a
 * balanced table with nothing to do comes back as the same object with `changed: false`.
 * See the module comment and docs/dev/core-contract.md for the rules.
 *
 * @throws PlanInputError for duplicate shard names, a negative or non-finite weight, an unknown
 *   state, or a bad `maxMigratingSlots`.
 */
export function plan(table: SlotTable, shards: readonly ShardInfo[], policy: PlanPolicy): PlanResult {
  validate(shards, policy);
  const info = new Map(shards.map((s) => [s.name, s]));
  const names = [...new Set([...table.shards, ...shards.map((s) => s.name)])].sort();
  const N = names.length;
  const index = new Map(names.map((n, i) => [n, i]));
  const ready = new Uint8Array(N);
  const alive = new Uint8Array(N); // known and not Dead: may still be running its slots
  names.forEach((n, i) => {
    const st = info.get(n)?.state;
    ready[i] = st === "Ready" ? 1 : 0;
    alive[i] = st === "Ready" || st === "Expired" ? 1 : 0;
  });
  const oldToNew = table.shards.map((n) => index.get(n)!);

  // --- 1. commit -----------------------------------------------------------------------------
  const cur = new Int32Array(SLOT_COUNT).fill(-1); // owner after commit and release, -1 none
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = table.owner[s]!;
    if (o !== NO_OWNER) cur[s] = oldToNew[o]!;
  }
  const releasedBy = new Map<number, RangeBuilder>();
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = cur[s]!;
    if (o >= 0 && !alive[o]) {
      groupedMap(releasedBy, o, () => new RangeBuilder()).add(s);
      cur[s] = -1;
    }
  }
  const committed: Migration[] = [];
  const pending: Array<{ m: Migration; from: number; to: number }> = [];
  const migOf = new Int32Array(SLOT_COUNT).fill(-1); // pending migration index of in-flight slots
  for (const m of table.migrations) {
    const from = info.get(m.from);
    const finished = from === undefined || from.state === "Dead" || from.ackedGeneration >= m.generation;
    const to = index.get(m.to)!;
    if (finished) {
      committed.push(m);
      if (ready[to]) for (const r of m.slots) cur.fill(to, r.start, r.end + 1);
    } else {
      const k = pending.length;
      pending.push({ m, from: index.get(m.from)!, to });
      for (const r of m.slots) migOf.fill(k, r.start, r.end + 1);
    }
  }

  // --- 3. targets ----------------------------------------------------------------------------
  const targetsByName = computeTargets(shards);
  const target = new Int32Array(N);
  for (const [n, t] of targetsByName) target[index.get(n)!] = t;
  const recipients: number[] = [];
  for (let i = 0; i < N; i++) if (ready[i] && target[i]! > 0) recipients.push(i);

  // dest: the shard a slot ends up with (owner, or target of its migration); -1 undecided.
  // need: target - slots ending up there; < 0 is a surplus. Only meaningful for Ready shards.
  const dest = new Int32Array(SLOT_COUNT).fill(-1);
  const need = new Int32Array(N);
  for (let i = 0; i < N; i++) need[i] = target[i]!;
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = cur[s]!;
    if (o >= 0) {
      dest[s] = o;
      need[o]!--;
    }
  }
  const wants = (r: number, exclude: number): boolean =>
    r >= 0 && r !== exclude && ready[r] === 1 && need[r]! > 0;

  // Best fit: the smallest need that takes `len` whole, else the largest need; ties by index.
  const pickRecipient = (len: number, exclude: number): number => {
    let fit = -1;
    let big = -1;
    for (const r of recipients) {
      const n = need[r]!;
      if (n <= 0 || r === exclude) continue;
      if (n >= len && (fit < 0 || n < need[fit]!)) fit = r;
      if (big < 0 || n > need[big]!) big = r;
    }
    return fit >= 0 ? fit : big;
  };

  // --- 4. in-flight slots keep their `to` while it needs them --------------------------------
  for (const p of pending) {
    if (!wants(p.to, p.from)) continue;
    for (const r of p.m.slots) {
      for (let s = r.start; s <= r.end && need[p.to]! > 0; s++) {
        dest[s] = p.to;
        need[p.to]!--;
      }
    }
  }

  // --- 5. free and unallocated in-flight slots, by adjacency first ---------------------------
  const assignRange = (a: number, b: number, r: number): void => {
    dest.fill(r, a, b + 1);
    need[r]! -= b - a + 1;
  };
  const leftovers: Array<{ a: number; b: number; exclude: number }> = [];
  for (let s = 0; s < SLOT_COUNT; ) {
    if (dest[s] !== -1) {
      s++;
      continue;
    }
    const g = migOf[s]!;
    let b = s;
    while (b + 1 < SLOT_COUNT && dest[b + 1] === -1 && migOf[b + 1] === g) b++;
    const exclude = g >= 0 ? pending[g]!.from : -1;
    let a = s;
    s = b + 1;
    if (a > 0) {
      const r = dest[a - 1]!;
      if (wants(r, exclude)) {
        const k = Math.min(b - a + 1, need[r]!);
        assignRange(a, a + k - 1, r);
        a += k;
      }
    }
    if (a <= b && b < MAX_SLOT) {
      const r = dest[b + 1]!;
      if (wants(r, exclude)) {
        const k = Math.min(b - a + 1, need[r]!);
        assignRange(b - k + 1, b, r);
        b -= k;
      }
    }
    if (a <= b) leftovers.push({ a, b, exclude });
  }
  for (const piece of leftovers) {
    let { a, b } = piece;
    while (a <= b) {
      let r = a > 0 ? dest[a - 1]! : -1;
      if (!wants(r, piece.exclude)) r = b < MAX_SLOT ? dest[b + 1]! : -1;
      if (!wants(r, piece.exclude)) r = pickRecipient(b - a + 1, piece.exclude);
      if (r < 0) break;
      const k = Math.min(b - a + 1, need[r]!);
      if (b < MAX_SLOT && dest[b + 1] === r && !(a > 0 && dest[a - 1] === r)) {
        assignRange(b - k + 1, b, r);
        b -= k;
      } else {
        assignRange(a, a + k - 1, r);
        a += k;
      }
    }
  }

  // --- 6. rebalance: donors give their surplus ----------------------------------------------
  let inFlight = 0;
  for (const p of pending) for (const r of p.m.slots) inFlight += r.end - r.start + 1;
  let budget = Math.max(0, policy.maxMigratingSlots - inFlight);
  const isDonor = (d: number): boolean => ready[d] === 1 && need[d]! < 0;
  if (budget > 0 && recipients.some((r) => need[r]! > 0)) {
    // Runs of slots a donor owns and keeps so far; runs only shrink from their ends.
    const runStart: number[] = [];
    const runEnd: number[] = [];
    const runOwner: number[] = [];
    const runAt = new Int32Array(SLOT_COUNT).fill(-1);
    const donorRuns = new Map<number, number[]>();
    for (let s = 0; s < SLOT_COUNT; ) {
      const d = cur[s]!;
      if (d < 0 || dest[s] !== d || !isDonor(d)) {
        s++;
        continue;
      }
      let e = s;
      while (e + 1 < SLOT_COUNT && cur[e + 1] === d && dest[e + 1] === d) e++;
      const id = runStart.length;
      runStart.push(s);
      runEnd.push(e);
      runOwner.push(d);
      runAt.fill(id, s, e + 1);
      groupedMap(donorRuns, d, () => []).push(id);
      s = e + 1;
    }
    const runLen = (id: number): number => runEnd[id]! - runStart[id]! + 1;
    const move = (a: number, b: number, d: number, r: number): void => {
      const k = b - a + 1;
      dest.fill(r, a, b + 1);
      need[r]! -= k;
      need[d]! += k;
      budget -= k;
    };
    const givePrefix = (id: number, r: number): number => {
      const d = runOwner[id]!;
      const k = Math.min(-need[d]!, need[r]!, runLen(id), budget);
      if (k <= 0) return 0;
      move(runStart[id]!, runStart[id]! + k - 1, d, r);
      runStart[id]! += k;
      return k;
    };
    const giveSuffix = (id: number, r: number): number => {
      const d = runOwner[id]!;
      const k = Math.min(-need[d]!, need[r]!, runLen(id), budget);
      if (k <= 0) return 0;
      move(runEnd[id]! - k + 1, runEnd[id]!, d, r);
      runEnd[id]! -= k;
      return k;
    };
    // Grow recipient r's block [a, b] into donor runs on either side while both want to.
    const extend = (a: number, b: number, r: number): void => {
      for (;;) {
        let moved = 0;
        if (b < MAX_SLOT) {
          const id = runAt[b + 1]!;
          if (id >= 0 && runStart[id] === b + 1 && runLen(id) > 0 && isDonor(runOwner[id]!)) {
            const k = givePrefix(id, r);
            b += k;
            moved += k;
          }
        }
        if (a > 0) {
          const id = runAt[a - 1]!;
          if (id >= 0 && runEnd[id] === a - 1 && runLen(id) > 0 && isDonor(runOwner[id]!)) {
            const k = giveSuffix(id, r);
            a -= k;
            moved += k;
          }
        }
        if (moved === 0 || need[r]! <= 0 || budget <= 0) return;
      }
    };

    // Boundary shifts: a donor run next to a recipient's block moves the boundary.
    for (let id = 0; id < runStart.length && budget > 0; id++) {
      const d = runOwner[id]!;
      if (!isDonor(d)) continue;
      const left = runStart[id]! > 0 ? dest[runStart[id]! - 1]! : -1;
      if (wants(left, -1)) extend(runStart[id]!, runStart[id]! - 1, left);
      if (runLen(id) <= 0 || !isDonor(d)) continue;
      const right = runEnd[id]! < MAX_SLOT ? dest[runEnd[id]! + 1]! : -1;
      if (wants(right, -1)) extend(runEnd[id]! + 1, runEnd[id]!, right);
    }

    // Remaining surplus: whole small runs first (the donor loses a fragment), else the tail of
    // its last run; to the recipient whose need fits best.
    for (const [d, ids] of donorRuns) {
      while (isDonor(d) && budget > 0) {
        const k = Math.min(-need[d]!, budget);
        let pick = -1;
        for (const id of ids) {
          const len = runLen(id);
          if (len > 0 && len <= k && (pick < 0 || len < runLen(pick))) pick = id;
        }
        if (pick < 0) {
          for (let j = ids.length - 1; j >= 0; j--) {
            if (runLen(ids[j]!) > 0) {
              pick = ids[j]!;
              break;
            }
          }
        }
        if (pick < 0) break;
        const len = Math.min(runLen(pick), k);
        let r = -1;
        const left = runStart[pick]! > 0 ? dest[runStart[pick]! - 1]! : -1;
        const right = runEnd[pick]! < MAX_SLOT ? dest[runEnd[pick]! + 1]! : -1;
        if (wants(right, -1)) r = right;
        else if (wants(left, -1) && len === runLen(pick)) r = left;
        else r = pickRecipient(len, -1);
        if (r < 0) break;
        const end = runEnd[pick]!;
        const moved = giveSuffix(pick, r);
        if (moved <= 0) break;
        extend(end - moved + 1, end, r);
      }
    }
  }

  // --- output --------------------------------------------------------------------------------
  const nextGeneration = table.generation + 1;
  const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  const migGroups = new Map<string, { from: number; to: number; generation: number; b: RangeBuilder }>();
  const directBy = new Map<number, RangeBuilder>();
  for (let s = 0; s < SLOT_COUNT; s++) {
    const g = migOf[s]!;
    const d = dest[s]!;
    if (g >= 0) {
      const p = pending[g]!;
      const to = d >= 0 ? d : p.to;
      const key = `${p.from},${to},${p.m.generation}`;
      groupedMap(migGroups, key, () => ({
        from: p.from,
        to,
        generation: p.m.generation,
        b: new RangeBuilder(),
      })).b.add(s);
    } else if (cur[s]! >= 0) {
      const o = cur[s]!;
      if (d === o) owner[s] = o;
      else {
        groupedMap(migGroups, `${o},${d},${nextGeneration}`, () => ({
          from: o,
          to: d,
          generation: nextGeneration,
          b: new RangeBuilder(),
        })).b.add(s);
      }
    } else if (d >= 0) {
      owner[s] = d;
      groupedMap(directBy, d, () => new RangeBuilder()).add(s);
    }
  }
  const oldByKey = new Map(table.migrations.map((m) => [`${m.from}\u0000${m.to}\u0000${m.generation}`, m]));
  const migrations: Migration[] = [...migGroups.values()]
    .map((g) => {
      const m: Migration = {
        slots: g.b.ranges,
        from: names[g.from]!,
        to: names[g.to]!,
        generation: g.generation,
      };
      // Reuse an identical input migration object (structural sharing, and `retargeted` detection).
      const old = oldByKey.get(`${m.from}\u0000${m.to}\u0000${m.generation}`);
      return old !== undefined && sameRanges(old.slots, m.slots) ? old : m;
    })
    .sort(compareMigrations);

  const usedNames = new Set<string>(shards.map((s) => s.name));
  for (const m of migrations) {
    usedNames.add(m.from);
    usedNames.add(m.to);
  }
  const ownedBalance = new Int32Array(N);
  let free = 0;
  let ownedByNonReady = 0;
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = owner[s]!;
    if (o === NO_OWNER) free++;
    else {
      ownedBalance[o]!++;
      usedNames.add(names[o]!);
      if (!ready[o]) ownedByNonReady++;
    }
  }
  const balanced =
    recipients.length > 0 &&
    migrations.length === 0 &&
    free === 0 &&
    ownedByNonReady === 0 &&
    recipients.every((r) => ownedBalance[r] === target[r]) &&
    names.every((_, i) => !ready[i] || ownedBalance[i] === target[i]);

  const base = {
    targets: targetsByName as ReadonlyMap<string, number>,
    balanced,
  };
  const changed = !sameOwners(table, owner, names) || !sameMigrations(table.migrations, migrations);
  if (!changed) {
    return {
      ...base,
      table,
      changed: false,
      committed: [],
      started: [],
      direct: [],
      released: [],
      retargeted: [],
    };
  }

  // Shards of the new table: every input shard plus every name still owning or migrating slots.
  const tableShards = names.filter((n) => usedNames.has(n));
  const tableIndex = new Map(tableShards.map((n, i) => [n, i]));
  const remap = names.map((n) => tableIndex.get(n) ?? NO_OWNER);
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = owner[s]!;
    if (o !== NO_OWNER) owner[s] = remap[o]!;
  }
  const next = produce(table, (draft) => {
    draft.generation = nextGeneration;
    draft.shards = tableShards;
    draft.owner = owner;
    draft.migrations = castDraft(migrations);
  });
  const oldSet = new Set(table.migrations);
  return {
    ...base,
    table: next,
    changed: true,
    committed,
    started: next.migrations.filter((m) => m.generation === nextGeneration),
    direct: [...directBy.entries()].map(([k, b]) => ({ slots: b.ranges, to: names[k]! })),
    released: [...releasedBy.entries()].map(([k, b]) => ({ slots: b.ranges, from: names[k]! })),
    retargeted: next.migrations.filter((m) => m.generation !== nextGeneration && !oldSet.has(m)),
  };
}

function sameRanges(a: readonly SlotRange[], b: readonly SlotRange[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.start !== b[i]!.start || a[i]!.end !== b[i]!.end) return false;
  }
  return true;
}

function sameOwners(table: SlotTable, owner: Uint16Array, names: readonly string[]): boolean {
  for (let s = 0; s < SLOT_COUNT; s++) {
    const a = table.owner[s]!;
    const b = owner[s]!;
    if ((a === NO_OWNER) !== (b === NO_OWNER)) return false;
    if (a !== NO_OWNER && table.shards[a] !== names[b]) return false;
  }
  return true;
}

function sameMigrations(a: readonly Migration[], b: readonly Migration[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x !== y &&
      (x.from !== y.from || x.to !== y.to || x.generation !== y.generation || !sameRanges(x.slots, y.slots))
    )
      return false;
  }
  return true;
}
