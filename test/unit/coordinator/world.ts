/**
 * A tiny in-memory stand-in for the API server for coordinator core tests: one SlotMap, its shard
 * Leases, resourceVersion preconditions, and the I/O layer's job of applying actions. Every status
 * the coordinator writes is validated (schema, table consistency) and checked against the handoff
 * safety rule, so every test also checks those.
 */
import { expect } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  parseSlotMapStatus,
  type SlotMapStatus,
} from "../../../src/api/index.js";
import {
  type CoordinatorAction,
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

export class World {
  private rv = 100;
  private uidSeq = 0;
  slotMap: SlotMapObj;
  readonly leases = new Map<string, LeaseObj>();
  memory: CoreMemory | undefined;
  now = 1_000;
  readonly events: EventAction[] = [];
  readonly logs: LogRecord[] = [];
  readonly statusWrites: SlotMapStatus[] = [];
  orphanAfterMs: number | undefined;
  leaseDurationSeconds = 10;

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

  /** The observation the I/O layer would hand to the core (deep copies: the core must not care). */
  observe(): { slotMap: ObservedSlotMap; leases: ObservedLease[] } {
    return {
      slotMap: structuredClone(this.slotMap),
      leases: [...this.leases.values()].map((l) => structuredClone(l)),
    };
  }

  /** Runs one step on the current observation and applies its actions like the I/O layer would. */
  step(opts: { apply?: boolean } = {}): StepOutcome {
    const obs = this.observe();
    const result = step(this.memory, {
      slotMap: obs.slotMap,
      leases: obs.leases,
      now: this.now,
      wallTime: this.wall(),
      config: {
        identity: "coordinator-0",
        ...(this.orphanAfterMs !== undefined ? { orphanAfterMs: this.orphanAfterMs } : {}),
      },
    });
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
        return true;
      }
      case "takeOverLease": {
        const l = this.leases.get(a.name);
        if (!l || l.metadata.uid !== a.uid || l.metadata.resourceVersion !== a.resourceVersion) return false;
        expect(a.namespace).toBe(l.metadata.namespace);
        l.spec = { ...l.spec, ...a.spec };
        l.metadata.resourceVersion = this.nextRv();
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
    if (after.generation === before.generation) {
      // Same generation: owners and migrations unchanged (only states, acks, conditions may change).
      expect(sameAssignment(before, after)).toBe(true);
    } else {
      expect(after.generation).toBe(before.generation + 1);
    }
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
      if (is === undefined && was !== undefined && !fenced(was)) {
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

  // --- shards -------------------------------------------------------------------------------------

  join(name: string, holder = `${name}-1`, annotations: Record<string, string> = {}): LeaseObj {
    this.uidSeq += 1;
    const t = new Date(WALL0 + this.now).toISOString();
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
    return lease;
  }

  lease(name: string): LeaseObj {
    const l = this.leases.get(name);
    if (!l) throw new Error(`no lease ${name}`);
    return l;
  }

  renew(...names: string[]): void {
    for (const n of names) {
      const l = this.lease(n);
      l.spec.renewTime = new Date(WALL0 + this.now).toISOString();
      l.metadata.resourceVersion = this.nextRv();
    }
  }

  /** A new process acquires the Lease (as a shard would after expiry or a takeover). */
  reacquire(name: string, holder: string): void {
    const l = this.lease(name);
    const t = new Date(WALL0 + this.now).toISOString();
    l.spec = {
      ...l.spec,
      holderIdentity: holder,
      acquireTime: t,
      renewTime: t,
      leaseTransitions: (l.spec.leaseTransitions ?? 0) + 1,
    };
    l.metadata.resourceVersion = this.nextRv();
  }

  release(name: string): void {
    const l = this.lease(name);
    l.spec = { ...l.spec, holderIdentity: null };
    l.metadata.resourceVersion = this.nextRv();
  }

  annotate(name: string, annotations: Record<string, string>): void {
    const l = this.lease(name);
    l.metadata.annotations = { ...l.metadata.annotations, ...annotations };
    l.metadata.resourceVersion = this.nextRv();
  }

  ack(name: string, generation = this.status().assignmentGeneration, uid = this.slotMap.metadata.uid): void {
    this.annotate(name, {
      [ANNOTATION_OBSERVED_GENERATION]: String(generation),
      [ANNOTATION_SLOTMAP_UID]: uid,
    });
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

  /** Steps until a step has no actions (acking after each step when `ack`); returns the step count. */
  settle(opts: { ack?: boolean; max?: number } = {}): number {
    for (let i = 1; i <= (opts.max ?? 20); i++) {
      const r = this.step();
      expect(r.conflicts).toEqual([]);
      if (r.actions.length === 0) return i;
      if (opts.ack) this.ackAll();
    }
    throw new Error("did not settle");
  }

  advance(ms: number): void {
    this.now += ms;
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

  /** Someone else writes the status (e.g. a corrupted one). */
  writeStatusRaw(status: unknown): void {
    this.slotMap = {
      ...this.slotMap,
      status,
      metadata: { ...this.slotMap.metadata, resourceVersion: this.nextRv() },
    };
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
