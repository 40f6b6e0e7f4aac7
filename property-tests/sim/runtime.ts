/**
 * The simulated shard's runtime: the real {@link ShardRuntime} core (src/client/core/runtime.ts)
 * over the simulated objects, as the controller drives it over the API server's lists and
 * watches. Objects are the integers `0..count-1`, with ids `k<n>`; the rules (./rules.ts) decide
 * their watches and placement:
 *
 * - placement A: one watch of roots, every object in it;
 * - placement B: a watch of roots (even objects) and a watch of controlled objects (odd objects,
 *   each following the even one before it).
 *
 * The roots' lists complete at once; a gain list of the controlled watch lands a message latency
 * later (the simulation schedules it), so a root of a gained slot exists before its controlled
 * object is cached: the gate that holds it (`warm`) is what the `cache` invariant checks. Slots
 * migrating to the shard are listed the same way as they start migrating (a warm handoff), so at
 * the commit their roots are queued from the cache.
 */
import { type RuntimePlace, ShardRuntime } from "../../src/client/core/runtime.js";
import type { SlotRange } from "../../src/slots/types.js";
import { inScope, rootOf, type SimRules } from "./rules.js";

/** Deliberate bugs of the runtime (docs/verification.md, "Mutations"). */
export const RUNTIME_MUTATIONS = ["reconcileCold", "forgetImports"] as const;
export type RuntimeMutation = (typeof RUNTIME_MUTATIONS)[number];

/** `reconcileCold`: queues a gained root before its controlled objects are listed. */
class ColdRuntime<O> extends ShardRuntime<O> {
  protected override warm(): boolean {
    return true;
  }
}

/**
 * `forgetImports`: caches only owned slots' objects, so an incoming slot's objects are dropped as
 * they stream by, and at the commit nothing lists them again.
 */
class ForgetfulImportRuntime<O> extends ShardRuntime<O> {
  readonly #owns: (slot: number) => boolean;
  constructor(
    host: ConstructorParameters<typeof ShardRuntime<O>>[0],
    watches: ConstructorParameters<typeof ShardRuntime<O>>[1],
    options?: ConstructorParameters<typeof ShardRuntime<O>>[2],
  ) {
    super(host, watches, options);
    this.#owns = host.owns;
  }
  protected override holds(slot: number): boolean {
    return this.#owns(slot);
  }
}

const ROOTS = 0;
const CONTROLLED = 1;

const id = (k: number) => `k${k}`;

/** A root and the objects its reconcile works on, as the runtime hands them out. */
export interface SimWork {
  readonly slot: number;
  /** The root first, then the controlled objects the runtime has cached for it. */
  readonly objects: readonly number[];
}

export class SimRuntime {
  readonly #keySlots: readonly number[];
  readonly #owns: (slot: number) => boolean;
  readonly #queue: Set<number>;
  readonly #mutation: RuntimeMutation | undefined;
  readonly #cacheAllSlots: boolean;
  #rules: SimRules | undefined;
  #rt: ShardRuntime<number> | undefined;
  /** The last importing slots (a new rule set's runtime starts with them, as the controller's). */
  #importing: readonly SlotRange[] = [];

  /**
   * @param queue the process's work queue (keys to start), filled and drained by the core
   * @param owns the shard machine's ownership
   * @param cacheAllSlots the controller's `cache: "all"` (gained slots need no gain list)
   */
  constructor(
    keySlots: readonly number[],
    owns: (slot: number) => boolean,
    queue: Set<number>,
    mutations: readonly RuntimeMutation[],
    cacheAllSlots = false,
  ) {
    this.#keySlots = keySlots;
    this.#owns = owns;
    this.#queue = queue;
    this.#mutation = mutations[0];
    this.#cacheAllSlots = cacheAllSlots;
  }

  /** Whether this runtime caches every slot's objects. */
  get cachesAllSlots(): boolean {
    return this.#cacheAllSlots;
  }

  /** New rules: everything mapped by the old ones goes, then each watch lists every object. */
  apply(rules: SimRules): void {
    this.clear();
    this.#rules = rules;
    const host = {
      owns: this.#owns,
      place: (k: number): RuntimePlace | undefined => this.#place(rules, k),
      selected: (k: number) => inScope(rules, k),
      queue: {
        add: (key: string) => this.#queue.add(Number(key.slice(1))),
        remove: (key: string) => this.#queue.delete(Number(key.slice(1))),
      },
    };
    const watches =
      rules.placement === "B" ? [{ controlled: false }, { controlled: true }] : [{ controlled: false }];
    const Runtime =
      this.#mutation === "reconcileCold"
        ? ColdRuntime
        : this.#mutation === "forgetImports"
          ? ForgetfulImportRuntime
          : ShardRuntime;
    this.#rt = new Runtime(host, watches, { cacheAllSlots: this.#cacheAllSlots });
    this.#rt.slotsImporting(this.#importing);
    for (let w = 0; w < watches.length; w++) {
      this.#rt.listStarted(w);
      for (const k of this.#objectsOf(w)) this.#rt.observe(w, "ADDED", id(k), k, undefined, true);
      this.#rt.listSynced(w);
    }
  }

  /**
   * Slots gained: the roots' gain list runs now. Returns whether a controlled watch's gain list is
   * due (the simulation runs {@link listControlledGains} a latency later).
   */
  gained(ranges: readonly SlotRange[]): boolean {
    const rt = this.#rt;
    if (rt === undefined) return false;
    rt.slotsGained(ranges);
    this.#gainList(rt, ROOTS);
    return this.#rules?.placement === "B" && rt.gainPending(CONTROLLED);
  }

  /**
   * The slots migrating to this shard (a warm handoff): like {@link gained}, the roots' list of
   * newly importing slots runs now; returns whether a controlled watch's list is due.
   */
  importing(ranges: readonly SlotRange[]): boolean {
    const rt = this.#rt;
    this.#importing = ranges;
    if (rt === undefined) return false;
    rt.slotsImporting(ranges);
    this.#gainList(rt, ROOTS);
    return this.#rules?.placement === "B" && rt.gainPending(CONTROLLED);
  }

  /** The controlled watch's gain list lands. */
  listControlledGains(): void {
    const rt = this.#rt;
    if (rt !== undefined && this.#rules?.placement === "B") this.#gainList(rt, CONTROLLED);
  }

  lost(ranges: readonly SlotRange[]): void {
    this.#rt?.slotsLost(ranges);
  }

  /** A watch event of object `k` (modified). */
  touch(k: number): void {
    const rules = this.#rules;
    if (rules === undefined || k >= this.#keySlots.length) return;
    this.#rt?.observe(this.#watchOf(rules, k), "MODIFIED", id(k), k, undefined, false);
  }

  /** What a reconcile of root `k` gets, or undefined when the runtime has no such root. */
  work(k: number): SimWork | undefined {
    const rt = this.#rt;
    const w = rt?.work(id(k));
    if (rt === undefined || w === undefined || w.object === undefined) return undefined;
    return { slot: w.slot, objects: [k, ...rt.controlledOf(id(k)).sort((a, b) => a - b)] };
  }

  clear(): void {
    this.#rt?.clear();
    this.#rt = undefined;
    this.#rules = undefined;
  }

  #gainList(rt: ShardRuntime<number>, w: number): void {
    const gained = rt.gainListStarted(w);
    if (gained === undefined) return;
    for (const k of this.#objectsOf(w)) rt.gainListed(w, gained, id(k), k, undefined);
    rt.gainListEnded(w, gained, true);
  }

  #place(rules: SimRules, k: number): RuntimePlace | undefined {
    if (!inScope(rules, k)) return undefined;
    const root = rootOf(rules, k);
    return { slot: this.#keySlots[root]!, rootKey: id(root) };
  }

  #watchOf(rules: SimRules, k: number): number {
    return rules.placement === "B" && k % 2 === 1 ? CONTROLLED : ROOTS;
  }

  *#objectsOf(w: number): Generator<number> {
    const rules = this.#rules;
    if (rules === undefined) return;
    for (let k = 0; k < this.#keySlots.length; k++) if (this.#watchOf(rules, k) === w) yield k;
  }
}
