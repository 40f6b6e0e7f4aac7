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
 * The phases below share one {@link PlanState}: shards are indexed, finished migrations commit
 * and Dead shards release (`commitAndRelease`), targets are computed (`setTargets`), in-flight
 * slots keep their recipient (`keepInFlight`), free slots go to neighbours first (`assignFree`),
 * donors give their surplus within the budget (`rebalance`), and the table is built (`output`).
 *
 * @throws PlanInputError for duplicate shard names, a negative or non-finite weight, an unknown
 *   state, or a bad `maxMigratingSlots`.
 */
export function plan(table: SlotTable, shards: readonly ShardInfo[], policy: PlanPolicy): PlanResult {
  validate(shards, policy);
  const st = indexShards(table, shards);
  commitAndRelease(st);
  setTargets(st);
  keepInFlight(st);
  assignFree(st);
  rebalance(st, policy.maxMigratingSlots);
  return output(st);
}

/** Everything the phases read and write; shard indices are positions in `names`. */
interface PlanState {
  readonly table: SlotTable;
  readonly shards: readonly ShardInfo[];
  readonly info: ReadonlyMap<string, ShardInfo>;
  /** Every shard of the table or the input, sorted. */
  readonly names: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  readonly ready: Uint8Array;
  /** Known and not Dead: may still be running its slots. */
  readonly alive: Uint8Array;
  /** Owner of each slot after commit and release; -1 none. */
  readonly cur: Int32Array;
  readonly releasedBy: Map<number, RangeBuilder>;
  readonly committed: Migration[];
  readonly pending: Array<{ m: Migration; from: number; to: number }>;
  /** Pending migration index of in-flight slots; -1 none. */
  readonly migOf: Int32Array;
  targetsByName: Map<string, number>;
  readonly target: Int32Array;
  /** Ready shards with a target above 0. */
  readonly recipients: number[];
  /** The shard a slot ends up with (owner, or target of its migration); -1 undecided. */
  readonly dest: Int32Array;
  /** target - slots ending up there; < 0 is a surplus. Only meaningful for Ready shards. */
  readonly need: Int32Array;
}

function indexShards(table: SlotTable, shards: readonly ShardInfo[]): PlanState {
  const info = new Map(shards.map((s) => [s.name, s]));
  const names = [...new Set([...table.shards, ...shards.map((s) => s.name)])].sort();
  const N = names.length;
  const ready = new Uint8Array(N);
  const alive = new Uint8Array(N);
  names.forEach((n, i) => {
    const state = info.get(n)?.state;
    ready[i] = state === "Ready" ? 1 : 0;
    alive[i] = state === "Ready" || state === "Expired" ? 1 : 0;
  });
  return {
    table,
    shards,
    info,
    names,
    index: new Map(names.map((n, i) => [n, i])),
    ready,
    alive,
    cur: new Int32Array(SLOT_COUNT).fill(-1),
    releasedBy: new Map(),
    committed: [],
    pending: [],
    migOf: new Int32Array(SLOT_COUNT).fill(-1),
    targetsByName: new Map(),
    target: new Int32Array(N),
    recipients: [],
    dest: new Int32Array(SLOT_COUNT).fill(-1),
    need: new Int32Array(N),
  };
}

/** Phase 1: owners after Dead shards release their slots and finished migrations commit. */
function commitAndRelease(st: PlanState): void {
  const { table, cur, alive, info, index, ready } = st;
  const oldToNew = table.shards.map((n) => index.get(n)!);
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = table.owner[s]!;
    if (o !== NO_OWNER) cur[s] = oldToNew[o]!;
  }
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = cur[s]!;
    if (o >= 0 && !alive[o]) {
      groupedMap(st.releasedBy, o, () => new RangeBuilder()).add(s);
      cur[s] = -1;
    }
  }
  for (const m of table.migrations) {
    const from = info.get(m.from);
    const finished = from === undefined || from.state === "Dead" || from.ackedGeneration >= m.generation;
    const to = index.get(m.to)!;
    if (finished) {
      st.committed.push(m);
      if (ready[to]) for (const r of m.slots) cur.fill(to, r.start, r.end + 1);
    } else {
      const k = st.pending.length;
      st.pending.push({ m, from: index.get(m.from)!, to });
      for (const r of m.slots) st.migOf.fill(k, r.start, r.end + 1);
    }
  }
}

/** Phase 2: weighted targets; every owned slot counts against its owner's need. */
function setTargets(st: PlanState): void {
  st.targetsByName = computeTargets(st.shards);
  for (const [n, t] of st.targetsByName) st.target[st.index.get(n)!] = t;
  for (let i = 0; i < st.names.length; i++) {
    if (st.ready[i] && st.target[i]! > 0) st.recipients.push(i);
    st.need[i] = st.target[i]!;
  }
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = st.cur[s]!;
    if (o >= 0) {
      st.dest[s] = o;
      st.need[o]!--;
    }
  }
}

/** Whether shard `r` is Ready, not `exclude`, and still needs slots. */
function wants(st: PlanState, r: number, exclude: number): boolean {
  return r >= 0 && r !== exclude && st.ready[r] === 1 && st.need[r]! > 0;
}

/** Best fit: the smallest need that takes `len` whole, else the largest need; ties by index. */
function pickRecipient(st: PlanState, len: number, exclude: number): number {
  let fit = -1;
  let big = -1;
  for (const r of st.recipients) {
    const n = st.need[r]!;
    if (n <= 0 || r === exclude) continue;
    if (n >= len && (fit < 0 || n < st.need[fit]!)) fit = r;
    if (big < 0 || n > st.need[big]!) big = r;
  }
  return fit >= 0 ? fit : big;
}

/** Phase 3: in-flight slots keep their `to` while it needs them. */
function keepInFlight(st: PlanState): void {
  for (const p of st.pending) {
    if (!wants(st, p.to, p.from)) continue;
    for (const r of p.m.slots) {
      for (let s = r.start; s <= r.end && st.need[p.to]! > 0; s++) {
        st.dest[s] = p.to;
        st.need[p.to]!--;
      }
    }
  }
}

function assignRange(st: PlanState, a: number, b: number, r: number): void {
  st.dest.fill(r, a, b + 1);
  st.need[r]! -= b - a + 1;
}

/** Phase 4: free and unallocated in-flight slots, to a neighbour first, then by best fit. */
function assignFree(st: PlanState): void {
  const { dest, migOf, need } = st;
  const leftovers: Array<{ a: number; b: number; exclude: number }> = [];
  for (let s = 0; s < SLOT_COUNT; ) {
    if (dest[s] !== -1) {
      s++;
      continue;
    }
    const g = migOf[s]!;
    let b = s;
    while (b + 1 < SLOT_COUNT && dest[b + 1] === -1 && migOf[b + 1] === g) b++;
    const exclude = g >= 0 ? st.pending[g]!.from : -1;
    let a = s;
    s = b + 1;
    if (a > 0) {
      const r = dest[a - 1]!;
      if (wants(st, r, exclude)) {
        const k = Math.min(b - a + 1, need[r]!);
        assignRange(st, a, a + k - 1, r);
        a += k;
      }
    }
    if (a <= b && b < MAX_SLOT) {
      const r = dest[b + 1]!;
      if (wants(st, r, exclude)) {
        const k = Math.min(b - a + 1, need[r]!);
        assignRange(st, b - k + 1, b, r);
        b -= k;
      }
    }
    if (a <= b) leftovers.push({ a, b, exclude });
  }
  for (const piece of leftovers) {
    let { a, b } = piece;
    while (a <= b) {
      let r = a > 0 ? dest[a - 1]! : -1;
      if (!wants(st, r, piece.exclude)) r = b < MAX_SLOT ? dest[b + 1]! : -1;
      if (!wants(st, r, piece.exclude)) r = pickRecipient(st, b - a + 1, piece.exclude);
      if (r < 0) break;
      const k = Math.min(b - a + 1, need[r]!);
      if (b < MAX_SLOT && dest[b + 1] === r && !(a > 0 && dest[a - 1] === r)) {
        assignRange(st, b - k + 1, b, r);
        b -= k;
      } else {
        assignRange(st, a, a + k - 1, r);
        a += k;
      }
    }
  }
}

/** Phase 5: donors (Ready, over target) give their surplus to recipients, within the budget. */
function rebalance(st: PlanState, maxMigratingSlots: number): void {
  let inFlight = 0;
  for (const p of st.pending) for (const r of p.m.slots) inFlight += r.end - r.start + 1;
  const budget = Math.max(0, maxMigratingSlots - inFlight);
  if (budget <= 0 || !st.recipients.some((r) => st.need[r]! > 0)) return;
  const runs = new DonorRuns(st, budget);
  runs.shiftBoundaries();
  runs.giveRemaining();
}

/**
 * Runs of slots a donor owns and keeps so far (they only shrink from their ends), and the moves
 * out of them: boundary shifts next to a recipient's block first, then whole small runs or tails.
 */
class DonorRuns {
  readonly #st: PlanState;
  #budget: number;
  readonly #start: number[] = [];
  readonly #end: number[] = [];
  readonly #owner: number[] = [];
  readonly #at = new Int32Array(SLOT_COUNT).fill(-1);
  readonly #byDonor = new Map<number, number[]>();

  constructor(st: PlanState, budget: number) {
    this.#st = st;
    this.#budget = budget;
    const { cur, dest } = st;
    for (let s = 0; s < SLOT_COUNT; ) {
      const d = cur[s]!;
      if (d < 0 || dest[s] !== d || !this.#isDonor(d)) {
        s++;
        continue;
      }
      let e = s;
      while (e + 1 < SLOT_COUNT && cur[e + 1] === d && dest[e + 1] === d) e++;
      const id = this.#start.length;
      this.#start.push(s);
      this.#end.push(e);
      this.#owner.push(d);
      this.#at.fill(id, s, e + 1);
      groupedMap(this.#byDonor, d, () => []).push(id);
      s = e + 1;
    }
  }

  #isDonor(d: number): boolean {
    return this.#st.ready[d] === 1 && this.#st.need[d]! < 0;
  }

  #len(id: number): number {
    return this.#end[id]! - this.#start[id]! + 1;
  }

  #move(a: number, b: number, d: number, r: number): void {
    const k = b - a + 1;
    this.#st.dest.fill(r, a, b + 1);
    this.#st.need[r]! -= k;
    this.#st.need[d]! += k;
    this.#budget -= k;
  }

  #amount(id: number, r: number): number {
    return Math.min(-this.#st.need[this.#owner[id]!]!, this.#st.need[r]!, this.#len(id), this.#budget);
  }

  #givePrefix(id: number, r: number): number {
    const k = this.#amount(id, r);
    if (k <= 0) return 0;
    this.#move(this.#start[id]!, this.#start[id]! + k - 1, this.#owner[id]!, r);
    this.#start[id]! += k;
    return k;
  }

  #giveSuffix(id: number, r: number): number {
    const k = this.#amount(id, r);
    if (k <= 0) return 0;
    this.#move(this.#end[id]! - k + 1, this.#end[id]!, this.#owner[id]!, r);
    this.#end[id]! -= k;
    return k;
  }

  /** Grows recipient r's block [a, b] into donor runs on either side while both want to. */
  #extend(a: number, b: number, r: number): void {
    for (;;) {
      let moved = 0;
      if (b < MAX_SLOT) {
        const id = this.#at[b + 1]!;
        if (id >= 0 && this.#start[id] === b + 1 && this.#len(id) > 0 && this.#isDonor(this.#owner[id]!)) {
          const k = this.#givePrefix(id, r);
          b += k;
          moved += k;
        }
      }
      if (a > 0) {
        const id = this.#at[a - 1]!;
        if (id >= 0 && this.#end[id] === a - 1 && this.#len(id) > 0 && this.#isDonor(this.#owner[id]!)) {
          const k = this.#giveSuffix(id, r);
          a -= k;
          moved += k;
        }
      }
      if (moved === 0 || this.#st.need[r]! <= 0 || this.#budget <= 0) return;
    }
  }

  /** A donor run next to a recipient's block moves the boundary. */
  shiftBoundaries(): void {
    const { dest } = this.#st;
    for (let id = 0; id < this.#start.length && this.#budget > 0; id++) {
      const d = this.#owner[id]!;
      if (!this.#isDonor(d)) continue;
      const left = this.#start[id]! > 0 ? dest[this.#start[id]! - 1]! : -1;
      if (wants(this.#st, left, -1)) this.#extend(this.#start[id]!, this.#start[id]! - 1, left);
      if (this.#len(id) <= 0 || !this.#isDonor(d)) continue;
      const right = this.#end[id]! < MAX_SLOT ? dest[this.#end[id]! + 1]! : -1;
      if (wants(this.#st, right, -1)) this.#extend(this.#end[id]! + 1, this.#end[id]!, right);
    }
  }

  /**
   * Remaining surplus: whole small runs first (the donor loses a fragment), else the tail of its
   * last run; to the neighbour that wants it, else the recipient whose need fits best.
   */
  giveRemaining(): void {
    const { dest } = this.#st;
    for (const [d, ids] of this.#byDonor) {
      while (this.#isDonor(d) && this.#budget > 0) {
        const k = Math.min(-this.#st.need[d]!, this.#budget);
        const pick = this.#pickRun(ids, k);
        if (pick < 0) break;
        const len = Math.min(this.#len(pick), k);
        let r = -1;
        const left = this.#start[pick]! > 0 ? dest[this.#start[pick]! - 1]! : -1;
        const right = this.#end[pick]! < MAX_SLOT ? dest[this.#end[pick]! + 1]! : -1;
        if (wants(this.#st, right, -1)) r = right;
        else if (wants(this.#st, left, -1) && len === this.#len(pick)) r = left;
        else r = pickRecipient(this.#st, len, -1);
        if (r < 0) break;
        const end = this.#end[pick]!;
        const moved = this.#giveSuffix(pick, r);
        if (moved <= 0) break;
        this.#extend(end - moved + 1, end, r);
      }
    }
  }

  /** The smallest non-empty run that fits `k` whole, else the donor's last non-empty run. */
  #pickRun(ids: readonly number[], k: number): number {
    let pick = -1;
    for (const id of ids) {
      const len = this.#len(id);
      if (len > 0 && len <= k && (pick < 0 || len < this.#len(pick))) pick = id;
    }
    if (pick >= 0) return pick;
    for (let j = ids.length - 1; j >= 0; j--) if (this.#len(ids[j]!) > 0) return ids[j]!;
    return -1;
  }
}

/** Phase 6: the next table (owners, migrations grouped by source, target and generation). */
function output(st: PlanState): PlanResult {
  const { table, names, cur, dest, migOf, pending } = st;
  const nextGeneration = table.generation + 1;
  const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  const migGroups = new Map<string, { from: number; to: number; generation: number; b: RangeBuilder }>();
  const directBy = new Map<number, RangeBuilder>();
  const group = (from: number, to: number, generation: number) =>
    groupedMap(migGroups, `${from},${to},${generation}`, () => ({
      from,
      to,
      generation,
      b: new RangeBuilder(),
    }));
  for (let s = 0; s < SLOT_COUNT; s++) {
    const g = migOf[s]!;
    const d = dest[s]!;
    if (g >= 0) {
      const p = pending[g]!;
      group(p.from, d >= 0 ? d : p.to, p.m.generation).b.add(s);
    } else if (cur[s]! >= 0) {
      const o = cur[s]!;
      if (d === o) owner[s] = o;
      else group(o, d, nextGeneration).b.add(s);
    } else if (d >= 0) {
      owner[s] = d;
      groupedMap(directBy, d, () => new RangeBuilder()).add(s);
    }
  }
  const migrations = migrationsOf(table, names, migGroups);
  const balanced = isBalanced(st, owner, migrations);
  const base = { targets: st.targetsByName as ReadonlyMap<string, number>, balanced: balanced.balanced };
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
  const tableShards = names.filter((n) => balanced.usedNames.has(n));
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
    committed: st.committed,
    started: next.migrations.filter((m) => m.generation === nextGeneration),
    direct: [...directBy.entries()].map(([k, b]) => ({ slots: b.ranges, to: names[k]! })),
    released: [...st.releasedBy.entries()].map(([k, b]) => ({ slots: b.ranges, from: names[k]! })),
    retargeted: next.migrations.filter((m) => m.generation !== nextGeneration && !oldSet.has(m)),
  };
}

function migrationsOf(
  table: SlotTable,
  names: readonly string[],
  groups: ReadonlyMap<string, { from: number; to: number; generation: number; b: RangeBuilder }>,
): Migration[] {
  const oldByKey = new Map(table.migrations.map((m) => [`${m.from}\u0000${m.to}\u0000${m.generation}`, m]));
  return [...groups.values()]
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
}

/** Whether the new table is balanced, and the names it still involves. */
function isBalanced(
  st: PlanState,
  owner: Uint16Array,
  migrations: readonly Migration[],
): { balanced: boolean; usedNames: Set<string> } {
  const { names, ready, target, recipients } = st;
  const usedNames = new Set<string>(st.shards.map((s) => s.name));
  for (const m of migrations) {
    usedNames.add(m.from);
    usedNames.add(m.to);
  }
  const ownedBalance = new Int32Array(names.length);
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
  return { balanced, usedNames };
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
