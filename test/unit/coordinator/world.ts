/**
 * A tiny in-memory stand-in for the API server for coordinator core tests: one SlotMap, its shard
 * Leases, resourceVersion preconditions, and the I/O layer's job of applying actions. Every status
 * the coordinator writes is validated (schema, table consistency) and checked against the handoff
 * safety rule, so every test also checks those.
 *
 * It also models the shard processes behind the Leases (see {@link Proc}): what each one may still
 * be running, by the client's rules, so that every status write is checked for the property that
 * matters: no slot is ever run by two live processes at once.
 */
import { expect } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_RELEASED_BY,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  parseSlotMapStatus,
  type SlotMapStatus,
} from "../../../src/api/index.js";
import {
  COORDINATOR_GUARDS,
  type CoordinatorAction,
  type CoordinatorConfig,
  type CoordinatorGuards,
  type CoreMemory,
  type EventAction,
  type LogRecord,
  type ObservedLease,
  type ObservedSlotMap,
  type StepResult,
  step,
  TAKEOVER_HOLDER,
} from "../../../src/coordinator/core/index.js";
import {
  NO_OWNER,
  ownerOf,
  SLOT_COUNT,
  type SlotTable,
  sameAssignment,
  tableFromStatus,
  tableInvariantErrors,
} from "../../../src/slots/index.js";

export const NS = "checksums-system";
export const WALL0 = Date.parse("2025-01-02T03:04:05.000Z");

export interface LeaseObj {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface SlotMapObj {
  metadata: { name: string; uid: string; generation: number; resourceVersion: string };
  spec: unknown;
  status?: unknown;
}

export function defaultSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { leaseNamespace: NS, resources: [{ resource: "secrets" }], ...extra };
}

export interface StepOutcome extends StepResult {
  /** Actions rejected by a precondition (409) when applied. */
  conflicts: CoordinatorAction[];
}

/**
 * A shard process (one Lease holder), as the client behaves (src/client/core/shard-machine.ts): it
 * applies a status only if its generation is above the newest it applied (or the SlotMap uid
 * changed), runs the slots a status grants to its own holderIdentity, and drops slots only when it
 * acknowledges a generation (it acks only after draining them). It stops running anything when it
 * releases its Lease, when its Lease is taken over, or when it has not renewed for its lease
 * duration (the client exits then).
 */
interface Proc {
  readonly shard: string;
  readonly holder: string;
  readonly durationMs: number;
  lastRenewAt: number;
  stopped: boolean;
  /** SlotMap uid and generation of the newest status applied (-1 before any). */
  uid: string;
  generation: number;
  /** Statuses applied since the last ack point, oldest first: what it may still run. */
  applied: Array<{ uid: string; generation: number; slots: readonly number[] }>;
}

export class World {
  private rv = 100;
  private uidSeq = 0;
  private renewSeq = 0;
  slotMap: SlotMapObj;
  readonly leases = new Map<string, LeaseObj>();
  memory: CoreMemory | undefined;
  now = 1_000;
  readonly events: EventAction[] = [];
  readonly logs: LogRecord[] = [];
  readonly statusWrites: SlotMapStatus[] = [];
  orphanAfterMs: number | undefined;
  leaseDurationSeconds = 10;
  /** Extra coordinator config for every step (e.g. `commitBatchMs: 0`). */
  config: Partial<CoordinatorConfig> = {};
  /** The step's guards: the production ones unless a teeth test breaks one. */
  guards: CoordinatorGuards = COORDINATOR_GUARDS;
  /** Every process that ever held a Lease (stopped ones included). */
  readonly procs: Proc[] = [];

  constructor(spec: unknown = defaultSpec(), name = "checksums") {
    this.slotMap = { metadata: { name, uid: "uid-1", generation: 1, resourceVersion: this.nextRv() }, spec };
  }

  nextRv(): string {
    this.rv += 1;
    return String(this.rv);
  }

  wall(): string {
    return new Date(WALL0 + this.now).toISOString();
  }

  /** A MicroTime for `now`, distinct on every call (two renewals in one ms are still two). */
  private microNow(): string {
    this.renewSeq = (this.renewSeq + 1) % 1000;
    return this.wall().replace(/Z$/, `${String(this.renewSeq).padStart(3, "0")}Z`);
  }

  /** A lagging Lease watch: while set, the coordinator sees these Leases instead of the current ones. */
  staleLeases: ObservedLease[] | undefined;

  /** The observation the I/O layer would hand to the core (deep copies: the core must not care). */
  observe(): { slotMap: ObservedSlotMap; leases: ObservedLease[] } {
    return {
      slotMap: structuredClone(this.slotMap),
      leases: structuredClone(this.staleLeases ?? [...this.leases.values()]),
    };
  }

  /** Runs one step on the current observation and applies its actions like the I/O layer would. */
  step(opts: { apply?: boolean } = {}): StepOutcome {
    const obs = this.observe();
    const result = step(
      this.memory,
      {
        slotMap: obs.slotMap,
        leases: obs.leases,
        now: this.now,
        wallTime: this.wall(),
        config: {
          identity: "coordinator-0",
          ...(this.orphanAfterMs !== undefined ? { orphanAfterMs: this.orphanAfterMs } : {}),
          ...this.config,
        },
      },
      this.guards,
    );
    this.memory = result.memory;
    this.logs.push(...result.logs);
    const conflicts: CoordinatorAction[] = [];
    if (opts.apply !== false) {
      for (const a of result.actions) if (!this.apply(a)) conflicts.push(a);
    }
    return { ...result, conflicts };
  }

  /** Applies one action with its preconditions; false on a conflict (or a missing object). */
  apply(a: CoordinatorAction): boolean {
    switch (a.type) {
      case "updateStatus": {
        const m = this.slotMap.metadata;
        if (a.slotMap.uid !== m.uid || a.slotMap.resourceVersion !== m.resourceVersion) return false;
        this.checkStatusWrite(a.status);
        this.slotMap = { ...this.slotMap, status: structuredClone(a.status) };
        this.slotMap.metadata = { ...m, resourceVersion: this.nextRv() };
        this.statusWrites.push(a.status);
        this.deliverStatus();
        return true;
      }
      case "takeOverLease": {
        const l = this.leases.get(a.name);
        if (!l || l.metadata.uid !== a.uid || l.metadata.resourceVersion !== a.resourceVersion) return false;
        expect(a.namespace).toBe(l.metadata.namespace);
        const holder = l.spec.holderIdentity;
        l.spec = { ...l.spec, ...a.spec };
        l.metadata.resourceVersion = this.nextRv();
        // The process that held it cannot renew any more; it must already have exited by expiry.
        const p = this.proc(a.name, holder);
        if (p !== undefined) {
          expect(this.alive(p), `takeover of ${a.name} while ${p.holder} may still run`).toBe(false);
          p.stopped = true;
        }
        return true;
      }
      case "deleteLease": {
        const l = this.leases.get(a.name);
        if (!l || l.metadata.uid !== a.uid || l.metadata.resourceVersion !== a.resourceVersion) return false;
        this.leases.delete(a.name);
        return true;
      }
      case "event":
        this.events.push(a);
        return true;
    }
  }

  /** The current status as a table (fails the test if the status is invalid). */
  table(): SlotTable {
    const parsed = parseSlotMapStatus(this.slotMap.status ?? {});
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    return tableFromStatus(parsed.value);
  }

  status(): SlotMapStatus {
    const parsed = parseSlotMapStatus(this.slotMap.status ?? {});
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    return parsed.value;
  }

  shardStatus(name: string): SlotMapStatus["shards"][number] | undefined {
    return this.status().shards.find((s) => s.name === name);
  }

  /** A shard's state in the current status (an entry without `state` is Ready); undefined if unlisted. */
  stateOf(name: string): "Ready" | "Expired" | "Dead" | undefined {
    const e = this.shardStatus(name);
    return e === undefined ? undefined : (e.state ?? "Ready");
  }

  /** Owned slot count per shard in the current status. */
  counts(): Record<string, number> {
    const t = this.table();
    const out: Record<string, number> = {};
    for (const n of t.shards) out[n] = 0;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const o = ownerOf(t, s);
      if (o !== undefined) out[o] = (out[o] ?? 0) + 1;
    }
    return out;
  }

  /**
   * Safety (DESIGN "The handoff protocol"): a slot never goes from one live owner to another in one
   * write, and leaves a migration only after its source acked or was fenced (Dead, gone, or replaced).
   * A generation moves by one, or jumps up to a reset that assigns nothing (a drain barrier).
   */
  private checkStatusWrite(next: SlotMapStatus): void {
    const parsed = parseSlotMapStatus(structuredClone(next));
    expect(parsed.ok ? [] : parsed.errors).toEqual([]);
    const after = tableFromStatus(next);
    expect(tableInvariantErrors(after)).toEqual([]);
    const prevParsed = parseSlotMapStatus(this.slotMap.status ?? {});
    if (this.slotMap.status === undefined || !prevParsed.ok) return;
    const prevStatus = prevParsed.value;
    const before = tableFromStatus(prevStatus);
    const assignsNothing = after.migrations.length === 0 && after.owner.every((o) => o === NO_OWNER);
    if (after.generation === before.generation) {
      // Same generation: owners and migrations unchanged (only states, holders, conditions may change).
      expect(sameAssignment(before, after)).toBe(true);
      return;
    }
    if (after.generation > before.generation + 1 && assignsNothing) return; // a reset: nothing granted
    expect(after.generation).toBe(before.generation + 1);
    const prevEntry = new Map(prevStatus.shards.map((s) => [s.name, s]));
    const nextEntry = new Map(next.shards.map((s) => [s.name, s]));
    const fenced = (shard: string): boolean => {
      const n = nextEntry.get(shard);
      if (n === undefined || n.state === "Dead") return true;
      const p = prevEntry.get(shard);
      return p !== undefined && p.holderIdentity !== n.holderIdentity;
    };
    const acked = (shard: string, generation: number): boolean => {
      const lease = this.leases.get(shard);
      if (!lease) return false;
      const a = lease.metadata.annotations;
      return (
        a[ANNOTATION_SLOTMAP_UID] === this.slotMap.metadata.uid &&
        Number(a[ANNOTATION_OBSERVED_GENERATION]) >= generation
      );
    };
    for (let s = 0; s < SLOT_COUNT; s++) {
      const was = ownerOf(before, s);
      const is = ownerOf(after, s);
      if (is === undefined && was !== undefined && !fenced(was) && !assignsNothing) {
        // A live owner loses a slot only into a migration (it must ack before anyone gets it).
        if (
          !after.migrations.some((x) => x.from === was && x.slots.some((r) => s >= r.start && s <= r.end))
        ) {
          throw new Error(`unsafe write: live shard ${was} loses slot ${s} without a migration`);
        }
      }
      if (is === undefined || is === was) continue;
      if (was !== undefined && !fenced(was)) {
        throw new Error(`unsafe write: slot ${s} moves directly from live shard ${was} to ${is}`);
      }
      const m = before.migrations.find((x) => x.slots.some((r) => s >= r.start && s <= r.end));
      if (m !== undefined && !acked(m.from, m.generation) && !fenced(m.from)) {
        throw new Error(
          `unsafe write: slot ${s} leaves the migration from ${m.from} (generation ${m.generation}) without an ack`,
        );
      }
    }
  }

  // --- shard processes ------------------------------------------------------------------------------

  private proc(shard: string, holder: string | null | undefined): Proc | undefined {
    if (!holder || holder === TAKEOVER_HOLDER) return undefined;
    for (let i = this.procs.length - 1; i >= 0; i--) {
      const p = this.procs[i]!;
      if (p.shard === shard && p.holder === holder) return p;
    }
    return undefined;
  }

  /** Whether a process may still run slots: not stopped, and renewed within its lease duration. */
  alive(p: Proc): boolean {
    return !p.stopped && this.now - p.lastRenewAt < p.durationMs;
  }

  /**
   * What the current status grants, by shard: its holderIdentity and owned slots (undefined when the
   * status is missing or inconsistent: the client ignores it).
   */
  private grants():
    | { uid: string; generation: number; shards: Map<string, { holder?: string; slots: number[] }> }
    | undefined {
    const parsed = parseSlotMapStatus(this.slotMap.status ?? {});
    if (this.slotMap.status === undefined || !parsed.ok) return undefined;
    let t: SlotTable;
    try {
      t = tableFromStatus(parsed.value);
    } catch {
      return undefined;
    }
    const shards = new Map<string, { holder?: string; slots: number[] }>();
    for (const e of parsed.value.shards) {
      shards.set(e.name, {
        ...(e.holderIdentity !== undefined ? { holder: e.holderIdentity } : {}),
        slots: [],
      });
    }
    for (let s = 0; s < SLOT_COUNT; s++) {
      const o = t.owner[s]!;
      if (o !== NO_OWNER) shards.get(t.shards[o]!)?.slots.push(s);
    }
    return { uid: this.slotMap.metadata.uid, generation: parsed.value.assignmentGeneration, shards };
  }

  /** A process applies the current status if it is newer than the newest it applied. */
  private applyTo(p: Proc, g: NonNullable<ReturnType<World["grants"]>>): void {
    if (g.uid === p.uid && g.generation <= p.generation) return; // stale: ignored by the client
    const e = g.shards.get(p.shard);
    p.uid = g.uid;
    p.generation = g.generation;
    p.applied.push({ uid: g.uid, generation: g.generation, slots: e?.holder === p.holder ? e.slots : [] });
  }

  /** Every live process sees the current status (worst case: each one sees every write). */
  private deliverStatus(): void {
    const g = this.grants();
    if (g === undefined) return;
    for (const p of this.procs) if (this.alive(p)) this.applyTo(p, g);
    this.checkNoDoubleRun();
  }

  private startProc(shard: string, holder: string, durationMs: number): void {
    const p: Proc = {
      shard,
      holder,
      durationMs,
      lastRenewAt: this.now,
      stopped: false,
      uid: "",
      generation: -1,
      applied: [],
    };
    this.procs.push(p);
    const g = this.grants();
    if (g !== undefined) this.applyTo(p, g);
  }

  /**
   * No slot is run by two live processes: the property every protocol rule serves. Checked after
   * every status write the processes may have applied.
   */
  checkNoDoubleRun(): void {
    const runner = new Array<string | undefined>(SLOT_COUNT);
    for (const p of this.procs) {
      if (!this.alive(p)) continue;
      for (const a of p.applied) {
        for (const s of a.slots) {
          const other = runner[s];
          if (other !== undefined && other !== p.holder) {
            throw new Error(`unsafe: slot ${s} may be run by ${other} and ${p.holder} at once`);
          }
          runner[s] = p.holder;
        }
      }
    }
  }

  // --- shards -------------------------------------------------------------------------------------

  join(name: string, holder = `${name}-1`, annotations: Record<string, string> = {}): LeaseObj {
    this.uidSeq += 1;
    const t = this.microNow();
    const lease: LeaseObj = {
      metadata: {
        name,
        namespace: NS,
        uid: `lease-uid-${this.uidSeq}`,
        resourceVersion: this.nextRv(),
        labels: { "slotmap.dev/slotmap": this.slotMap.metadata.name },
        annotations: { ...annotations },
      },
      spec: {
        holderIdentity: holder,
        leaseDurationSeconds: this.leaseDurationSeconds,
        acquireTime: t,
        renewTime: t,
        leaseTransitions: 0,
      },
    };
    this.leases.set(name, lease);
    this.startProc(name, holder, this.leaseDurationSeconds * 1000);
    return lease;
  }

  lease(name: string): LeaseObj {
    const l = this.leases.get(name);
    if (!l) throw new Error(`no lease ${name}`);
    return l;
  }

  /** The holder renews (a new renewTime, even within the same millisecond). */
  renew(...names: string[]): void {
    for (const n of names) {
      const l = this.lease(n);
      l.spec.renewTime = this.microNow();
      l.metadata.resourceVersion = this.nextRv();
      const p = this.proc(n, l.spec.holderIdentity);
      // A holder that renews is evidently still running (even if it was late).
      if (p !== undefined && !p.stopped) p.lastRenewAt = this.now;
    }
  }

  /** A new process acquires the Lease (as a shard would after expiry, a takeover, or by hand). */
  reacquire(name: string, holder: string): void {
    const l = this.lease(name);
    const t = this.microNow();
    l.spec = {
      ...l.spec,
      holderIdentity: holder,
      acquireTime: t,
      renewTime: t,
      leaseTransitions: (l.spec.leaseTransitions ?? 0) + 1,
    };
    l.metadata.resourceVersion = this.nextRv();
    this.startProc(name, holder, (l.spec.leaseDurationSeconds ?? this.leaseDurationSeconds) * 1000);
  }

  /** A graceful release: the holder drained, clears holderIdentity and sets the release marker. */
  release(name: string): void {
    const l = this.lease(name);
    const holder = l.spec.holderIdentity;
    l.spec = { ...l.spec, holderIdentity: null };
    if (holder) l.metadata.annotations = { ...l.metadata.annotations, [ANNOTATION_RELEASED_BY]: holder };
    l.metadata.resourceVersion = this.nextRv();
    const p = this.proc(name, holder);
    if (p !== undefined) p.stopped = true;
  }

  /** Someone clears holderIdentity by hand (no release marker): the process may still run. */
  clearHolder(name: string): void {
    const l = this.lease(name);
    l.spec = { ...l.spec, holderIdentity: null };
    l.metadata.resourceVersion = this.nextRv();
  }

  annotate(name: string, annotations: Record<string, string>): void {
    const l = this.lease(name);
    l.metadata.annotations = { ...l.metadata.annotations, ...annotations };
    l.metadata.resourceVersion = this.nextRv();
  }

  /**
   * The holder acks `generation` of SlotMap `uid`. A process acks what it applied, after draining
   * what that status took away: from then on it runs only what that status (and later ones) grant.
   */
  ack(name: string, generation = this.status().assignmentGeneration, uid = this.slotMap.metadata.uid): void {
    this.annotate(name, {
      [ANNOTATION_OBSERVED_GENERATION]: String(generation),
      [ANNOTATION_SLOTMAP_UID]: uid,
    });
    const p = this.proc(name, this.lease(name).spec.holderIdentity);
    if (p === undefined) return;
    let i = p.applied.length - 1;
    while (i >= 0 && !(p.applied[i]!.uid === uid && p.applied[i]!.generation === generation)) i--;
    if (i >= 0) p.applied.splice(0, i);
  }

  weight(name: string, w: string): void {
    this.annotate(name, { [ANNOTATION_WEIGHT]: w });
  }

  /** Every shard whose Lease has a real holder acks the current generation. */
  ackAll(): void {
    for (const [n, l] of this.leases) {
      const h = l.spec.holderIdentity;
      if (h && h !== TAKEOVER_HOLDER) this.ack(n);
    }
  }

  /** Every Lease with a real holder renews. */
  renewAll(): void {
    for (const [n, l] of this.leases) {
      const h = l.spec.holderIdentity;
      if (h && h !== TAKEOVER_HOLDER) this.renew(n);
    }
  }

  /**
   * The drain barrier of an empty table: a step writes the generation that assigns nothing, every
   * live shard renews and acks it, and the next step assigns slots. Returns that step.
   */
  openBarrier(): StepOutcome {
    this.step();
    this.advance(100);
    this.renewAll();
    this.ackAll();
    return this.step();
  }

  /**
   * Steps until a step has no actions (each round: time passes by `everyMs`, live shards renew,
   * and, when `ack`, ack the current generation, and then no migration may be left: acked commits
   * may wait for their batch); returns the step count.
   */
  settle(opts: { ack?: boolean; max?: number; everyMs?: number } = {}): number {
    for (let i = 1; i <= (opts.max ?? 20); i++) {
      const r = this.step();
      expect(r.conflicts).toEqual([]);
      if (r.actions.length === 0 && !(opts.ack && this.status().migrations.length > 0)) return i;
      this.advance(opts.everyMs ?? 100);
      this.renewAll();
      if (opts.ack) this.ackAll();
    }
    throw new Error("did not settle");
  }

  advance(ms: number): void {
    this.now += ms;
  }

  /**
   * Lets `ms` pass the way a running coordinator sees it: a step at least every `everyMs` (the
   * heartbeat), the `renewing` shards renewing before each. Returns the outcome of every step.
   */
  elapse(ms: number, renewing: readonly string[] = [], everyMs = 1000): StepOutcome[] {
    const out: StepOutcome[] = [];
    let left = ms;
    while (left > 0) {
      const d = Math.min(everyMs, left);
      this.advance(d);
      left -= d;
      this.renew(...renewing);
      out.push(this.step());
    }
    return out;
  }

  /** Replaces the SlotMap by a new instance (deleted and recreated): new uid, no status. */
  recreate(uid: string, spec: unknown = this.slotMap.spec): void {
    this.slotMap = {
      metadata: { name: this.slotMap.metadata.name, uid, generation: 1, resourceVersion: this.nextRv() },
      spec,
    };
  }

  setSpec(spec: unknown): void {
    const m = this.slotMap.metadata;
    this.slotMap = {
      ...this.slotMap,
      spec,
      metadata: { ...m, generation: m.generation + 1, resourceVersion: this.nextRv() },
    };
  }

  /** Someone else writes the status (e.g. a corrupted one, or one restored from a backup). */
  writeStatusRaw(status: unknown): void {
    this.slotMap = {
      ...this.slotMap,
      status,
      metadata: { ...this.slotMap.metadata, resourceVersion: this.nextRv() },
    };
    this.deliverStatus();
  }
}

export function actionsOf<T extends CoordinatorAction["type"]>(
  r: { actions: readonly CoordinatorAction[] },
  type: T,
): Array<Extract<CoordinatorAction, { type: T }>> {
  return r.actions.filter((a): a is Extract<CoordinatorAction, { type: T }> => a.type === type);
}

export function condition(
  status: SlotMapStatus,
  type: string,
): SlotMapStatus["conditions"][number] | undefined {
  return status.conditions.find((c) => c.type === type);
}
