/**
 * The shard runtime's targeted prune: `slotsLost(ranges)` visits only the lost slots' objects
 * (through its slot index), where `prune()` checks the whole cache. Whatever the history of lists,
 * watch events (objects moving between slots and controllers), gains, imports and losses, a runtime
 * told only the lost ranges ends in the same state as one that checks everything on each loss.
 */
import fc from "fast-check";
import { describe, expect } from "vitest";
import { type RuntimePlace, ShardRuntime } from "../../src/client/core/runtime.js";
import type { SlotRange } from "../../src/slots/index.js";
import { itProp } from "../support/fc.js";

const SLOTS = 6;
const ROOTS = 0;
const CHILDREN = 1;

interface Obj {
  id: string;
  slot: number;
  /** Controlled objects: the root they belong to (their slot is that root's). */
  owner?: string;
  rv: string;
}

type Op =
  | {
      kind: "event";
      watch: number;
      type: "ADDED" | "MODIFIED" | "DELETED";
      n: number;
      slot: number;
      owner: number;
    }
  | { kind: "list"; watch: number; present: boolean[]; slots: number[]; owners: number[] }
  | { kind: "own"; slots: boolean[] }
  | { kind: "import"; slots: boolean[] };

const bools = fc.array(fc.boolean(), { minLength: SLOTS, maxLength: SLOTS });
const slotArb = fc.integer({ min: 0, max: SLOTS - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("event" as const),
      watch: fc.constantFrom(ROOTS, CHILDREN),
      type: fc.constantFrom("ADDED" as const, "MODIFIED" as const, "DELETED" as const),
      n: fc.integer({ min: 0, max: 7 }),
      slot: slotArb,
      owner: fc.integer({ min: 0, max: 7 }),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("list" as const),
      watch: fc.constantFrom(ROOTS, CHILDREN),
      present: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      slots: fc.array(slotArb, { minLength: 8, maxLength: 8 }),
      owners: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 8, maxLength: 8 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant("own" as const), slots: bools }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant("import" as const), slots: bools }), weight: 2 },
);

/** A runtime with its own queue over a shared ownership. */
function runtime(owned: boolean[], cacheAllSlots: boolean) {
  const queue: string[] = [];
  const rt = new ShardRuntime<Obj>(
    {
      owns: (slot) => owned[slot] === true,
      place: (o): RuntimePlace => ({ slot: o.slot, rootKey: o.owner ?? o.id }),
      selected: () => true,
      queue: {
        add: (k) => {
          if (!queue.includes(k)) queue.push(k);
        },
        remove: (k) => {
          const i = queue.indexOf(k);
          if (i >= 0) queue.splice(i, 1);
        },
      },
    },
    [{ controlled: false }, { controlled: true }],
    { cacheAllSlots },
  );
  return { rt, queue };
}

function ranges(mask: readonly boolean[]): SlotRange[] {
  const out: SlotRange[] = [];
  mask.forEach((on, i) => {
    if (on) out.push({ start: i, end: i });
  });
  return out;
}

let rv = 0;
function object(watch: number, n: number, slot: number, owner: number): Obj {
  rv++;
  return watch === ROOTS
    ? { id: `r${n}`, slot, rv: String(rv) }
    : { id: `c${n}`, slot, owner: `r${owner}`, rv: String(rv) };
}

/** Everything a driver can observe of a runtime. */
function observable(r: ReturnType<typeof runtime>) {
  const roots: Record<string, unknown> = {};
  for (let n = 0; n < 8; n++) {
    const k = `r${n}`;
    const w = r.rt.work(k);
    roots[k] = {
      root: r.rt.root(k),
      tombstone: w !== undefined && w.object === undefined,
      controlled: r.rt.controlledOf(k).map((o) => o.id),
    };
  }
  return { queue: [...r.queue], sizes: r.rt.sizes(), roots };
}

describe("ShardRuntime slot index", () => {
  itProp(
    "slotsLost(lost ranges) leaves the runtime as a full prune() does",
    () =>
      fc.property(fc.boolean(), fc.array(op, { maxLength: 60 }), (cacheAll, ops) => {
        const owned: boolean[] = Array.from({ length: SLOTS }, () => false);
        const targeted = runtime(owned, cacheAll);
        const full = runtime(owned, cacheAll);
        const both = (f: (r: ReturnType<typeof runtime>) => void) => {
          f(targeted);
          f(full);
        };
        for (const o of ops) {
          switch (o.kind) {
            case "event": {
              const obj = object(o.watch, o.n, o.slot, o.owner);
              both((r) => r.rt.observe(o.watch, o.type, obj.id, obj, obj.rv, false));
              break;
            }
            case "list": {
              const objs = o.present.flatMap((p, n) =>
                p ? [object(o.watch, n, o.slots[n]!, o.owners[n]!)] : [],
              );
              both((r) => {
                r.rt.listStarted(o.watch);
                for (const x of objs) r.rt.observe(o.watch, "ADDED", x.id, x, x.rv, true);
                r.rt.listSynced(o.watch);
              });
              break;
            }
            case "own": {
              const lost = o.slots.map((on, i) => owned[i] === true && !on);
              const gained = o.slots.map((on, i) => owned[i] !== true && on);
              o.slots.forEach((on, i) => {
                owned[i] = on;
              });
              // The machine reports losses before gains (shard-machine #refreshOwnership).
              if (lost.some(Boolean)) {
                targeted.rt.slotsLost(ranges(lost));
                full.rt.prune();
              }
              if (gained.some(Boolean)) both((r) => r.rt.slotsGained(ranges(gained)));
              break;
            }
            case "import":
              both((r) => r.rt.slotsImporting(ranges(o.slots)));
              break;
          }
          expect(observable(targeted)).toEqual(observable(full));
        }
      }),
    { numRuns: 300 },
  );
});
