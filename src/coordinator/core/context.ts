/**
 * What every phase of a coordinator step shares: the output collector, memos of derived values of
 * immutable inputs, and small helpers. No decisions live here.
 */
import { type FieldError, formatFieldError, renderValue } from "../../api/errors.js";
import { microTime } from "../../api/lease.js";
import { parseSlotMapStatus, type SlotMapSpec, type SlotMapStatus, slotTableOf } from "../../api/v1alpha1.js";
import { type PlanResult, plan } from "../../slots/planner.js";
import { countSlots } from "../../slots/ranges.js";
import { freeRanges, makeTable, ownedCounts } from "../../slots/table.js";
import {
  type Migration,
  NO_OWNER,
  type ShardInfo,
  type ShardState,
  SLOT_COUNT,
  type SlotRange,
  type SlotTable,
  type StatusTable,
} from "../../slots/types.js";
import { REASONS } from "./conditions.js";
import type { ShardObservation, StatusShardHint } from "./leases.js";
import { capMessage } from "./status.js";
import {
  type CoordinatorAction,
  type HandoffObservation,
  type LogRecord,
  type ObjectRef,
  type SlotMapMetrics,
  TAKEOVER_HOLDER,
} from "./types.js";

/** Structured log fields. */
export type Fields = Record<string, string | number | boolean>;

export function byKey<T>(entries: Iterable<[string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out[k] = v;
  return out;
}

/** Collects the outputs of one step. */
export class Output {
  readonly actions: CoordinatorAction[] = [];
  readonly events: CoordinatorAction[] = [];
  readonly logs: LogRecord[] = [];
  /** Problem keys active in this step (become `memory.reported`). */
  readonly active = new Set<string>();

  constructor(
    private readonly slotMap: string,
    private readonly identity: string,
    private readonly reported: ReadonlySet<string>,
  ) {}

  log(level: LogRecord["level"], msg: string, fields: Fields = {}): void {
    this.logs.push({ level, msg, fields: { slotmap: this.slotMap, ...fields } });
  }

  /** Runs `first` only if the problem `key` was not already active in the previous step. */
  report(key: string, first: () => void): void {
    this.active.add(key);
    if (!this.reported.has(key)) first();
  }

  event(involvedObject: ObjectRef, eventType: "Normal" | "Warning", reason: string, message: string): void {
    this.events.push({
      type: "event",
      involvedObject,
      eventType,
      reason,
      message: capMessage(message),
      reportingInstance: this.identity,
    });
  }

  all(): CoordinatorAction[] {
    return [...this.actions, ...this.events];
  }
}

export type StatusRead =
  | { ok: true; status: SlotMapStatus; table: SlotTable }
  | { ok: false; errors: FieldError[] };

// Memos. Statuses are memoised per SlotMap uid by resourceVersion and content (the API server
// never reuses a resourceVersion, but hand-made test inputs may), so a step that only observes
// Lease renewals (the common case) skips the O(16384) parse, plan, counts and encoding, in
// production as in the simulator. Slot tables are immutable, so what is derived from them is kept
// per table object in a WeakMap: nothing outlives its table.
const statusMemo = new Map<
  string,
  { raw: unknown; resourceVersion: string; text: string; read: StatusRead }
>();
/** More SlotMaps than any coordinator serves: past it the memo starts over (deleted SlotMaps). */
const STATUS_MEMO_MAX = 256;

interface TableMemo {
  counts?: Map<string, number>;
  ranges?: Map<string, SlotRange[]>;
  wire?: StatusTable;
  unassigned?: number;
  plan?: { key: string; result: PlanResult };
}
const tableMemo = new WeakMap<SlotTable, TableMemo>();

export function memoOf(table: SlotTable): TableMemo {
  let m = tableMemo.get(table);
  if (m === undefined) {
    m = {};
    tableMemo.set(table, m);
  }
  return m;
}

/** `ownedCounts`, once per table (read-only: shared between steps). */
export function countsOf(table: SlotTable): Map<string, number> {
  const m = memoOf(table);
  m.counts ??= ownedCounts(table);
  return m.counts;
}

/** Number of free slots, once per table. */
export function unassignedOf(table: SlotTable): number {
  const m = memoOf(table);
  m.unassigned ??= countSlots(freeRanges(table));
  return m.unassigned;
}

/**
 * `plan()`, reused when the same table is planned with the same policy and equivalent shard infos:
 * the planner reads an ack only as "acked >= the generation of a migration from that shard", so an
 * ack is keyed by how many of the shard's migrations it covers (a new ack that commits nothing
 * does not miss the memo).
 */
export function planOf(
  table: SlotTable,
  infos: readonly ShardInfo[],
  policy: { maxMigratingSlots: number },
): PlanResult {
  const m = memoOf(table);
  const covered = (i: ShardInfo): number | string => {
    const a = i.ackedGeneration;
    if (!Number.isSafeInteger(a) || a < 0) return String(a);
    let n = 0;
    for (const mg of table.migrations) if (mg.from === i.name && mg.generation <= a) n++;
    return n;
  };
  const key = JSON.stringify([
    policy.maxMigratingSlots,
    infos.map((i) => [i.name, i.state, i.weight, covered(i)]),
  ]);
  if (m.plan?.key !== key) m.plan = { key, result: plan(table, infos, policy) };
  return m.plan.result;
}

/** `parseStatus`, memoised per SlotMap uid and resourceVersion. */
export function readStatus(raw: unknown, uid: string, resourceVersion: string): StatusRead {
  const hit = statusMemo.get(uid);
  // The informer hands the same object until it changes: identity is the cheap check.
  if (hit !== undefined && hit.raw === raw && hit.resourceVersion === resourceVersion) return hit.read;
  const text = JSON.stringify(raw ?? null);
  if (hit !== undefined && hit.resourceVersion === resourceVersion && hit.text === text) {
    hit.raw = raw;
    return hit.read;
  }
  const read = parseStatus(raw);
  if (statusMemo.size >= STATUS_MEMO_MAX) statusMemo.clear();
  statusMemo.set(uid, { raw, resourceVersion, text, read });
  return read;
}

export function parseStatus(raw: unknown): StatusRead {
  // A new SlotMap has no status: the same as an empty one (generation 0, nothing assigned).
  const parsed = parseSlotMapStatus(raw ?? {});
  if (!parsed.ok) return parsed;
  // The parse checked the slot table with tableFromStatus; this is that table, not a second build.
  return { ok: true, status: parsed.value, table: slotTableOf(parsed.value) };
}

/** What the observed status says about each shard it names. */
export function statusHints(status: SlotMapStatus, table: SlotTable): Map<string, StatusShardHint> {
  const entries = new Map(status.shards.map((s) => [s.name, s]));
  const counts = countsOf(table);
  const inMigration = new Set<string>();
  for (const m of table.migrations) {
    inMigration.add(m.from);
    inMigration.add(m.to);
  }
  const hints = new Map<string, StatusShardHint>();
  for (const name of table.shards) {
    const e = entries.get(name);
    hints.set(name, {
      state: e?.state,
      holderIdentity: e?.holderIdentity,
      involved: (counts.get(name) ?? 0) > 0 || inMigration.has(name),
    });
  }
  return hints;
}

/**
 * Fences replaced incarnations in the table: their owned slots become free, and migrations from
 * them are committed (nobody runs those slots: the old process was fenced by Lease expiry), to
 * `to` when it is Ready, else free. The generation is left to the caller.
 */
export function fenceIncarnations(
  table: SlotTable,
  replaced: ReadonlySet<string>,
  ready: ReadonlySet<string>,
  committed: Migration[],
  released: Array<{ from: string; slots: number }>,
): SlotTable {
  const owner = table.owner.slice();
  const index = new Map(table.shards.map((n, i) => [n, i]));
  const releasedCount = new Map<string, number>();
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = owner[s]!;
    if (o === NO_OWNER) continue;
    const name = table.shards[o]!;
    if (replaced.has(name)) {
      owner[s] = NO_OWNER;
      releasedCount.set(name, (releasedCount.get(name) ?? 0) + 1);
    }
  }
  for (const [from, slots] of [...releasedCount].sort()) released.push({ from, slots });
  const keep: Migration[] = [];
  for (const m of table.migrations) {
    if (!replaced.has(m.from)) {
      keep.push(m);
      continue;
    }
    committed.push(m);
    if (ready.has(m.to)) {
      const to = index.get(m.to)!;
      for (const r of m.slots) owner.fill(to, r.start, r.end + 1);
    }
  }
  return makeTable(table.generation, table.shards, owner, keep);
}

export function metricsOf(
  slotMap: string,
  specValid: boolean,
  statusValid: boolean,
  table: SlotTable | undefined,
  listed: ReadonlyArray<{ name: string; state: ShardState }>,
  handoffsTimedOut: number,
  handoffs: HandoffObservation[],
  shardsOverLimit: number,
): SlotMapMetrics {
  const shardsByState: Record<ShardState, number> = { Ready: 0, Expired: 0, Dead: 0 };
  for (const s of listed) shardsByState[s.state]++;
  const counts = table !== undefined ? countsOf(table) : new Map<string, number>();
  let migratingSlots = 0;
  for (const m of table?.migrations ?? []) migratingSlots += countSlots(m.slots);
  return {
    slotMap,
    specValid,
    statusValid,
    assignmentGeneration: table?.generation ?? 0,
    shardsByState,
    slotsPerShard: listed.map((s) => ({ shard: s.name, slots: counts.get(s.name) ?? 0 })),
    migrationsInFlight: table?.migrations.length ?? 0,
    migratingSlots,
    unassignedSlots: table !== undefined ? unassignedOf(table) : 0,
    handoffsTimedOut,
    handoffs,
    shardsOverLimit,
  };
}

export function minDeadline(values: Iterable<number | undefined>): number | undefined {
  let min: number | undefined;
  for (const v of values) if (v !== undefined && (min === undefined || v < min)) min = v;
  return min;
}

export function reportAnnotationErrors(out: Output, o: ShardObservation): void {
  const lease = o.lease;
  if (lease === undefined) return;
  for (const e of o.annotationErrors) {
    const key = `annotation\u0000${lease.metadata.uid}\u0000${e.field}\u0000${renderValue(e.value)}`;
    out.report(key, () => {
      const ref: ObjectRef = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        name: lease.metadata.name,
        uid: lease.metadata.uid,
        resourceVersion: lease.metadata.resourceVersion,
        ...(lease.metadata.namespace !== undefined ? { namespace: lease.metadata.namespace } : {}),
      };
      out.event(ref, "Warning", REASONS.invalidAnnotation, `shard ${o.name}: ${formatFieldError(e)}`);
      out.log("warn", "malformed shard Lease annotation", {
        shard: o.name,
        field: e.field,
        value: renderValue(e.value),
        error: e.message,
      });
    });
  }
}

/** Takeovers of Expired Leases and deletions of orphaned ones (independent of the slot table). */
export function leaseActions(
  out: Output,
  observations: readonly ShardObservation[],
  spec: SlotMapSpec,
  slotMapRef: ObjectRef,
  wall: Date,
  orphanAfterMs: number,
): void {
  for (const o of observations) {
    const lease = o.lease;
    if (lease === undefined) continue;
    const namespace = lease.metadata.namespace ?? spec.leaseNamespace;
    const where = { namespace, name: lease.metadata.name, uid: lease.metadata.uid };
    if (o.takeoverDue) {
      const t = microTime(wall);
      out.actions.push({
        type: "takeOverLease",
        ...where,
        resourceVersion: lease.metadata.resourceVersion,
        spec: {
          holderIdentity: TAKEOVER_HOLDER,
          acquireTime: t,
          renewTime: t,
          leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1,
          leaseDurationSeconds: o.memory.leaseDurationMs / 1000,
        },
      });
      out.report(`takeover\u0000${lease.metadata.uid}\u0000${lease.metadata.resourceVersion}`, () => {
        const seconds = o.memory.leaseDurationMs / 1000;
        out.event(
          slotMapRef,
          "Warning",
          REASONS.shardExpired,
          `shard ${o.name}: Lease held by ${o.holder} was not renewed for ${seconds}s of the coordinator's clock; taking it over`,
        );
        out.log("warn", "shard Lease expired: taking it over", {
          shard: o.name,
          holder: o.holder,
          leaseDurationSeconds: seconds,
        });
      });
    }
    if (o.deleteDue) {
      out.actions.push({ type: "deleteLease", ...where, resourceVersion: lease.metadata.resourceVersion });
      out.report(`delete\u0000${lease.metadata.uid}`, () => {
        out.event(
          slotMapRef,
          "Normal",
          REASONS.orphanedLease,
          `shard ${o.name}: deleting its Lease, Dead for ${orphanAfterMs / 1000}s of the coordinator's clock`,
        );
        out.log("info", "deleting orphaned shard Lease", { shard: o.name });
      });
    }
  }
}
