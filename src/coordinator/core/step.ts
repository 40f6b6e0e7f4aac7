/**
 * The coordinator's decision step for one SlotMap: pure and deterministic (no timers, no I/O, no
 * ambient clock). `step(memory, input)` judges the shard Leases, plans the next slot table, and
 * returns the writes that bring the cluster to it, plus logs, metrics and the next wake-up time.
 *
 * API writes are level-triggered: they depend only on the observation (and the clock memory), so
 * re-running a step on an unchanged observation returns the same writes, and a step whose writes
 * are already reflected in the observation returns none. Events, and log lines about problems, are
 * edge-triggered through the memory: each problem is reported once while it lasts.
 *
 * See docs/dev/coordinator-core.md for the interface and how the I/O layer applies actions.
 */

import { type FieldError, formatFieldError, formatFieldErrors, renderValue } from "../../api/errors.js";
import { effectiveWeight, microTime, parseShardLeaseAnnotations } from "../../api/lease.js";
import {
  API_VERSION,
  CONDITION_BALANCED,
  CONDITION_PROGRESSING,
  CONDITION_READY,
  type Condition,
  KIND,
  parseSlotMapSpec,
  parseSlotMapStatus,
  type ShardStatus,
  type SlotMapSpec,
  type SlotMapStatus,
} from "../../api/v1alpha1.js";
import { type PlanResult, plan } from "../../slots/planner.js";
import { countSlots, formatSlotRanges, SlotRangeError } from "../../slots/ranges.js";
import {
  freeRanges,
  makeTable,
  ownedCounts,
  rangesByShard,
  SlotTableError,
  tableFromStatus,
  tableToStatus,
} from "../../slots/table.js";
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
import { observeShards, type ShardObservation, type StatusShardHint } from "./leases.js";
import {
  type ConditionWant,
  capMessage,
  jsonEqual,
  mergeConditions,
  metaTime,
  nameList,
  parseWallTime,
} from "./status.js";
import {
  type CoordinatorAction,
  CoordinatorInputError,
  type CoordinatorMutation,
  type CoreMemory,
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_ORPHAN_AFTER_MS,
  type HandoffMemory,
  type HandoffObservation,
  type LogRecord,
  type ObjectRef,
  type ShardMemory,
  type SlotMapMetrics,
  type StepInput,
  type StepResult,
  TAKEOVER_HOLDER,
} from "./types.js";

/** Event reasons and condition reasons written by the coordinator. */
export const REASONS = {
  invalidSpec: "InvalidSpec",
  invalidStatus: "InvalidStatus",
  invalidAnnotation: "InvalidAnnotation",
  handoffTimeout: "HandoffTimeout",
  handoffInProgress: "HandoffInProgress",
  noMigrations: "NoMigrations",
  shardExpired: "ShardExpired",
  orphanedLease: "OrphanedLease",
  newIncarnation: "NewShardIncarnation",
  previousInstance: "PreviousInstanceDraining",
  allSlotsCovered: "AllSlotsCovered",
  noReadyShards: "NoReadyShards",
  slotsUnassigned: "SlotsUnassigned",
  balanced: "Balanced",
  migrating: "Migrating",
  shardsNotReady: "ShardsNotReady",
  unbalanced: "Unbalanced",
} as const;

type Fields = Record<string, string | number | boolean>;

interface Resolved {
  readonly identity: string;
  readonly orphanAfterMs: number;
  readonly defaultLeaseDurationMs: number;
  readonly mutations: ReadonlySet<CoordinatorMutation>;
}

const NO_MUTATIONS: ReadonlySet<CoordinatorMutation> = new Set();

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function requireText(v: unknown, field: string, allowEmpty = false): string {
  if (typeof v !== "string" || (!allowEmpty && v === "")) {
    throw new CoordinatorInputError(
      field,
      v,
      allowEmpty ? "expected a string" : "expected a non-empty string",
    );
  }
  return v;
}

/** Validates what the I/O layer must always provide; a violation is a bug there, so it throws. */
function checkInput(input: StepInput, previous: CoreMemory | undefined): Resolved {
  if (!isRecord(input)) throw new CoordinatorInputError("input", input, "expected an object");
  const sm: unknown = input.slotMap;
  if (!isRecord(sm) || !isRecord(sm.metadata)) {
    throw new CoordinatorInputError(
      "slotMap.metadata",
      isRecord(sm) ? sm.metadata : sm,
      "expected an object",
    );
  }
  requireText(sm.metadata.name, "slotMap.metadata.name");
  requireText(sm.metadata.uid, "slotMap.metadata.uid");
  requireText(sm.metadata.resourceVersion, "slotMap.metadata.resourceVersion");
  const gen = sm.metadata.generation;
  if (gen !== undefined && !(typeof gen === "number" && Number.isSafeInteger(gen) && gen >= 0)) {
    throw new CoordinatorInputError("slotMap.metadata.generation", gen, "expected an integer >= 0");
  }
  if (!Array.isArray(input.leases))
    throw new CoordinatorInputError("leases", input.leases, "expected a list");
  const names = new Set<string>();
  input.leases.forEach((lease: unknown, i) => {
    const f = `leases[${i}]`;
    if (!isRecord(lease) || !isRecord(lease.metadata)) {
      throw new CoordinatorInputError(`${f}.metadata`, lease, "expected an object");
    }
    const name = requireText(lease.metadata.name, `${f}.metadata.name`);
    requireText(lease.metadata.uid, `${f}.metadata.uid`);
    requireText(lease.metadata.resourceVersion, `${f}.metadata.resourceVersion`);
    if (names.has(name)) throw new CoordinatorInputError(`${f}.metadata.name`, name, "duplicate Lease name");
    names.add(name);
  });
  if (typeof input.now !== "number" || !Number.isFinite(input.now)) {
    throw new CoordinatorInputError("now", input.now, "expected a finite number of milliseconds");
  }
  if (previous !== undefined && input.now < previous.lastStepAt) {
    throw new CoordinatorInputError(
      "now",
      input.now,
      `the coordinator clock must not go backwards (previous step at ${previous.lastStepAt})`,
    );
  }
  const cfg: unknown = input.config;
  if (!isRecord(cfg)) throw new CoordinatorInputError("config", cfg, "expected an object");
  const identity = requireText(cfg.identity, "config.identity");
  const orphanAfterMs = cfg.orphanAfterMs ?? DEFAULT_ORPHAN_AFTER_MS;
  if (typeof orphanAfterMs !== "number" || !Number.isFinite(orphanAfterMs) || orphanAfterMs < 0) {
    throw new CoordinatorInputError("config.orphanAfterMs", orphanAfterMs, "expected a finite number >= 0");
  }
  const defaultLeaseDurationMs = cfg.defaultLeaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
  if (
    typeof defaultLeaseDurationMs !== "number" ||
    !Number.isFinite(defaultLeaseDurationMs) ||
    defaultLeaseDurationMs <= 0
  ) {
    throw new CoordinatorInputError(
      "config.defaultLeaseDurationMs",
      defaultLeaseDurationMs,
      "expected a finite number > 0",
    );
  }
  const mutations = cfg.mutations ?? NO_MUTATIONS;
  if (!(mutations instanceof Set)) {
    throw new CoordinatorInputError("config.mutations", mutations, "expected a Set of mutation names");
  }
  return { identity, orphanAfterMs, defaultLeaseDurationMs, mutations };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function byKey<T>(entries: Iterable<[string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out[k] = v;
  return out;
}

/** Collects the outputs of one step. */
class Output {
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

type StatusRead = { ok: true; status: SlotMapStatus; table: SlotTable } | { ok: false; errors: FieldError[] };

// Memos by object identity. A status the driver passes frozen cannot change, and slot tables are
// immutable, so what is derived from them stays valid: a step that only observes Lease renewals
// (the common case) skips the O(16384) parse, plan, counts and encoding. Unfrozen statuses (the
// I/O layer's informer objects) are not memoised. WeakMaps: nothing outlives its object.
const statusMemo = new WeakMap<object, StatusRead>();

interface TableMemo {
  counts?: Map<string, number>;
  ranges?: Map<string, SlotRange[]>;
  wire?: StatusTable;
  unassigned?: number;
  plan?: { key: string; result: PlanResult };
}
const tableMemo = new WeakMap<SlotTable, TableMemo>();

function memoOf(table: SlotTable): TableMemo {
  let m = tableMemo.get(table);
  if (m === undefined) {
    m = {};
    tableMemo.set(table, m);
  }
  return m;
}

/** `ownedCounts`, once per table (read-only: shared between steps). */
function countsOf(table: SlotTable): Map<string, number> {
  const m = memoOf(table);
  m.counts ??= ownedCounts(table);
  return m.counts;
}

/** Number of free slots, once per table. */
function unassignedOf(table: SlotTable): number {
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
function planOf(
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

function readStatus(raw: unknown): StatusRead {
  if (typeof raw !== "object" || raw === null || !Object.isFrozen(raw)) return parseStatus(raw);
  let r = statusMemo.get(raw);
  if (r === undefined) {
    r = parseStatus(raw);
    statusMemo.set(raw, r);
  }
  return r;
}

function parseStatus(raw: unknown): StatusRead {
  // A new SlotMap has no status: the same as an empty one (generation 0, nothing assigned).
  const parsed = parseSlotMapStatus(raw ?? {});
  if (!parsed.ok) return parsed;
  try {
    return { ok: true, status: parsed.value, table: tableFromStatus(parsed.value) };
  } catch (err) {
    if (err instanceof SlotTableError || err instanceof SlotRangeError) {
      const prefix = `${err.field}: `;
      const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      return { ok: false, errors: [{ field: err.field, value: undefined, message }] };
    }
    throw err;
  }
}

/** What the observed status says about each shard it names. */
function statusHints(status: SlotMapStatus, table: SlotTable): Map<string, StatusShardHint> {
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

function migrationKey(from: string, generation: number): string {
  return `${from}@${generation}`;
}

/**
 * Fences replaced incarnations in the table: their owned slots become free, and migrations from
 * them are committed (nobody runs those slots: the old process was fenced by Lease expiry), to
 * `to` when it is Ready, else free. The generation is left to the caller.
 */
function fenceIncarnations(
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

function metricsOf(
  slotMap: string,
  specValid: boolean,
  statusValid: boolean,
  table: SlotTable | undefined,
  listed: ReadonlyArray<{ name: string; state: ShardState }>,
  handoffsTimedOut: number,
  handoffs: HandoffObservation[],
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
  };
}

function minDeadline(values: Iterable<number | undefined>): number | undefined {
  let min: number | undefined;
  for (const v of values) if (v !== undefined && (min === undefined || v < min)) min = v;
  return min;
}

/**
 * One decision step for one SlotMap.
 *
 * @param memory - the `memory` returned by the previous step for this SlotMap, or `undefined`
 *   (a new leader, or a SlotMap seen for the first time). Memory of another SlotMap instance
 *   (different uid) is discarded.
 * @param input - the observation, the clocks and the config.
 * @returns the actions to apply, logs, metrics, the new memory and when to step again.
 * @throws CoordinatorInputError when the input violates the interface (a bug in the caller):
 *   missing name/uid/resourceVersion, duplicate Lease names, a non-finite or decreasing `now`,
 *   a `wallTime` that is not RFC 3339, or bad config. Cluster data (spec, status, annotations)
 *   never makes it throw.
 */
export function step(memory: CoreMemory | undefined, input: StepInput): StepResult {
  const cfg = checkInput(input, memory);
  const wall = parseWallTime(input.wallTime);
  const { now } = input;
  const sm = input.slotMap;
  const name = sm.metadata.name;
  const uid = sm.metadata.uid;
  const prev = memory !== undefined && memory.slotMapUid === uid ? memory : undefined;
  const out = new Output(name, cfg.identity, new Set(prev?.reported ?? []));
  if (memory !== undefined && prev === undefined) {
    out.log("info", "SlotMap was deleted and recreated: starting over with empty memory", {
      uid,
      previousUid: memory.slotMapUid,
    });
  }
  const slotMapRef: ObjectRef = {
    apiVersion: API_VERSION,
    kind: KIND,
    name,
    uid,
    resourceVersion: sm.metadata.resourceVersion,
  };
  const statusRead = readStatus(sm.status);

  const finish = (parts: {
    shards: readonly ShardObservation[];
    handoffs: Readonly<Record<string, HandoffMemory>>;
    metrics: SlotMapMetrics;
    nextStepAt: number | undefined;
  }): StepResult => {
    const newMemory: CoreMemory = {
      slotMapUid: uid,
      lastStepAt: now,
      shards: byKey<ShardMemory>(parts.shards.map((o) => [o.name, o.memory])),
      handoffs: parts.handoffs,
      reported: [...out.active].sort(),
    };
    return {
      memory: deepFreeze(newMemory),
      actions: out.all(),
      logs: out.logs,
      metrics: parts.metrics,
      nextStepAt: parts.nextStepAt,
    };
  };

  // Being deleted: nothing to decide. Memory is kept as is (the I/O layer drops it on deletion).
  if (sm.metadata.deletionTimestamp) {
    const base = prev ?? { slotMapUid: uid, lastStepAt: now, shards: {}, handoffs: {}, reported: [] };
    return {
      memory: deepFreeze({ ...base, lastStepAt: now }),
      actions: [],
      logs: out.logs,
      metrics: metricsOf(name, true, statusRead.ok, statusRead.ok ? statusRead.table : undefined, [], 0, []),
      nextStepAt: undefined,
    };
  }

  const leases = [...input.leases].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
  const observations = observeShards({
    previous: prev?.shards ?? {},
    leases,
    statusShards: statusRead.ok ? statusHints(statusRead.status, statusRead.table) : new Map(),
    slotMapUid: uid,
    now,
    defaultLeaseDurationMs: cfg.defaultLeaseDurationMs,
    orphanAfterMs: cfg.orphanAfterMs,
    ...(cfg.mutations.size > 0 ? { mutations: cfg.mutations, wallMs: wall.getTime() } : {}),
  });
  for (const o of observations) reportAnnotationErrors(out, o);

  const specRead = parseSlotMapSpec(sm.spec);
  if (!specRead.ok) {
    return finish(
      invalidSpec(out, sm.metadata, slotMapRef, specRead.errors, statusRead, observations, prev, wall),
    );
  }
  const spec = specRead.value;
  if (!statusRead.ok) {
    const message = formatFieldErrors(statusRead.errors);
    out.report(`status\u0000${message}`, () => {
      out.event(
        slotMapRef,
        "Warning",
        REASONS.invalidStatus,
        `status is invalid, so the slot table is left as it is and no slot moves until it is repaired (see docs/dev/coordinator-core.md): ${message}`,
      );
      out.log("error", "invalid SlotMap status: holding the slot table", { error: message });
    });
    leaseActions(out, observations, spec, slotMapRef, wall, cfg.orphanAfterMs);
    return finish({
      shards: observations,
      handoffs: prev?.handoffs ?? {},
      metrics: metricsOf(name, true, false, undefined, observations, 0, []),
      nextStepAt: minDeadline(observations.map((o) => o.deadline)),
    });
  }
  return finish(
    decide(
      out,
      sm.metadata,
      slotMapRef,
      spec,
      statusRead.status,
      statusRead.table,
      observations,
      prev,
      wall,
      now,
      cfg,
    ),
  );
}

function reportAnnotationErrors(out: Output, o: ShardObservation): void {
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
function leaseActions(
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

/** Live shards whose Lease acks another SlotMap uid, while the table assigns nothing at all. */
function previousInstanceShards(
  table: SlotTable,
  observations: readonly ShardObservation[],
  uid: string,
): string[] {
  if (table.migrations.length > 0 || table.owner.some((o) => o !== NO_OWNER)) return [];
  return observations
    .filter((o) => {
      if (!o.realHolder || o.state === "Dead" || o.lease === undefined) return false;
      const acked = parseShardLeaseAnnotations(o.lease.metadata.annotations).slotmapUid;
      return acked !== undefined && acked !== uid;
    })
    .map((o) => o.name);
}

/** The barrier's plan: generation 1 (from 0) that assigns nothing, else no change. */
function assignNothing(table: SlotTable): PlanResult {
  const first = table.generation === 0;
  return {
    table: first ? makeTable(1, table.shards, table.owner.slice(), []) : table,
    changed: first,
    committed: [],
    started: [],
    direct: [],
    released: [],
    retargeted: [],
    targets: new Map(),
    balanced: false,
  };
}

function keptOrUnknown(observed: readonly Condition[], type: string, reason: string): ConditionWant {
  const c = observed.find((x) => x.type === type);
  if (c !== undefined) return { type, status: c.status, reason: c.reason, message: c.message };
  return { type, status: "Unknown", reason, message: "the spec is invalid" };
}

interface Decision {
  shards: readonly ShardObservation[];
  handoffs: Readonly<Record<string, HandoffMemory>>;
  metrics: SlotMapMetrics;
  nextStepAt: number | undefined;
}

/** Invalid spec: Ready=False/InvalidSpec, no table change, no Lease writes (the namespace is unknown). */
function invalidSpec(
  out: Output,
  meta: StepInput["slotMap"]["metadata"],
  slotMapRef: ObjectRef,
  errors: FieldError[],
  statusRead: StatusRead,
  observations: readonly ShardObservation[],
  prev: CoreMemory | undefined,
  wall: Date,
): Decision {
  const message = formatFieldErrors(errors);
  out.report(`spec\u0000${message}`, () => {
    out.event(
      slotMapRef,
      "Warning",
      REASONS.invalidSpec,
      `invalid spec, the slot table is left unchanged: ${message}`,
    );
    out.log("warn", "invalid SlotMap spec: slot table left unchanged", { error: message });
  });
  if (statusRead.ok) {
    const status = statusRead.status;
    const conditions = mergeConditions(
      status.conditions,
      [
        { type: CONDITION_READY, status: "False", reason: REASONS.invalidSpec, message },
        keptOrUnknown(status.conditions, CONDITION_BALANCED, REASONS.invalidSpec),
        keptOrUnknown(status.conditions, CONDITION_PROGRESSING, REASONS.invalidSpec),
      ],
      meta.generation,
      metaTime(wall),
    );
    const desired: SlotMapStatus = {
      ...status,
      ...(meta.generation !== undefined ? { observedGeneration: meta.generation } : {}),
      conditions,
    };
    if (!jsonEqual(desired, status)) {
      out.actions.push({
        type: "updateStatus",
        slotMap: { name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion },
        status: desired,
      });
    }
  } else {
    const statusMessage = formatFieldErrors(statusRead.errors);
    out.report(`status\u0000${statusMessage}`, () => {
      out.event(slotMapRef, "Warning", REASONS.invalidStatus, `status is invalid: ${statusMessage}`);
      out.log("error", "invalid SlotMap status: holding the slot table", { error: statusMessage });
    });
  }
  const listed = statusRead.ok ? statusRead.status.shards.map((s) => ({ name: s.name, state: s.state })) : [];
  return {
    // Clocks keep running (a Lease that renews must not look expired once the spec is fixed).
    shards: observations,
    handoffs: prev?.handoffs ?? {},
    metrics: metricsOf(
      meta.name,
      false,
      statusRead.ok,
      statusRead.ok ? statusRead.table : undefined,
      listed,
      0,
      [],
    ),
    nextStepAt: undefined,
  };
}

/** The normal path: judge, fence, plan, and write what changed. */
function decide(
  out: Output,
  meta: StepInput["slotMap"]["metadata"],
  slotMapRef: ObjectRef,
  spec: SlotMapSpec,
  status: SlotMapStatus,
  table: SlotTable,
  observations: readonly ShardObservation[],
  prev: CoreMemory | undefined,
  wall: Date,
  now: number,
  cfg: Resolved,
): Decision {
  const entries = new Map(status.shards.map((s) => [s.name, s]));
  const ready = new Set(observations.filter((o) => o.state === "Ready").map((o) => o.name));

  // New incarnations: a Ready shard whose Lease holder is not the one its slots were granted to.
  const replaced = observations.filter((o) => {
    const e = entries.get(o.name);
    return o.state === "Ready" && e !== undefined && e.holderIdentity !== o.holder;
  });
  const fencedCommits: Migration[] = [];
  const fencedReleases: Array<{ from: string; slots: number }> = [];
  const pre =
    replaced.length > 0
      ? fenceIncarnations(table, new Set(replaced.map((o) => o.name)), ready, fencedCommits, fencedReleases)
      : table;

  const infos: ShardInfo[] = observations.map((o) => ({
    name: o.name,
    // Mutations (simulator only): an Expired shard planned as Dead; every migration taken as acked.
    state: o.state === "Expired" && cfg.mutations.has("reassignExpired") ? "Dead" : o.state,
    weight: effectiveWeight(spec, o.name, o.leaseWeight),
    ackedGeneration: cfg.mutations.has("commitBeforeAck") ? pre.generation : o.ackedGeneration,
  }));
  // New-uid barrier (SlotMap deleted and recreated): while nothing is assigned and live Leases
  // still ack another instance, their processes may still run reconciles of the old table. Write a
  // generation that assigns nothing and assign only once they ack it (they ack a new uid only after
  // their old reconciles finished) or are Dead.
  // Mutation skipUidCheck (simulator only): acks are taken whatever SlotMap uid they name, so no
  // Lease is seen acking a previous instance either.
  const barrier = cfg.mutations.has("skipUidCheck")
    ? []
    : previousInstanceShards(table, observations, meta.uid);
  const result: PlanResult =
    barrier.length > 0
      ? assignNothing(pre)
      : planOf(pre, infos, { maxMigratingSlots: spec.policy.maxMigratingSlots });
  const bump = result.changed || replaced.length > 0;
  const next = result.changed
    ? result.table
    : bump
      ? makeTable(table.generation + 1, pre.shards, pre.owner, pre.migrations)
      : table;

  // --- handoff clocks, commits and timeouts -----------------------------------------------------
  const prevHandoffs = prev?.handoffs ?? {};
  const handoffs = new Map<string, HandoffMemory>();
  const track = (m: Migration): void => {
    const k = migrationKey(m.from, m.generation);
    if (!handoffs.has(k)) {
      handoffs.set(
        k,
        prevHandoffs[k] ?? {
          from: m.from,
          generation: m.generation,
          since: now,
          timedOut: false,
          committed: false,
        },
      );
    }
  };
  for (const m of table.migrations) track(m);
  for (const m of next.migrations) track(m);

  const acked = new Map(observations.map((o) => [o.name, o.ackedGeneration]));
  const observed: HandoffObservation[] = [];
  const committedKeys = new Set<string>();
  const commits: Array<{ m: Migration; outcome: "acked" | "fenced"; durationMs: number }> = [];
  for (const [m, fenced] of [
    ...fencedCommits.map((m) => [m, true] as const),
    ...result.committed.map((m) => [m, false] as const),
  ]) {
    const k = migrationKey(m.from, m.generation);
    const h = handoffs.get(k)!;
    const outcome = !fenced && (acked.get(m.from) ?? 0) >= m.generation ? "acked" : "fenced";
    const durationMs = now - h.since;
    commits.push({ m, outcome, durationMs });
    if (!h.committed) {
      observed.push({
        from: m.from,
        to: m.to,
        generation: m.generation,
        slots: countSlots(m.slots),
        durationMs,
        outcome,
      });
      committedKeys.add(k);
    }
  }
  for (const k of committedKeys) handoffs.set(k, { ...handoffs.get(k)!, committed: true });

  const timeoutMs = spec.policy.handoffTimeoutSeconds * 1000;
  const timedOut = new Map<string, HandoffMemory>();
  const handoffDeadlines: number[] = [];
  for (const m of next.migrations) {
    const k = migrationKey(m.from, m.generation);
    const h = handoffs.get(k)!;
    if (now - h.since >= timeoutMs) {
      timedOut.set(k, h);
      if (!h.timedOut) {
        handoffs.set(k, { ...h, timedOut: true });
        out.event(
          slotMapRef,
          "Warning",
          REASONS.handoffTimeout,
          `shard ${m.from} did not acknowledge generation ${m.generation} within ${spec.policy.handoffTimeoutSeconds}s; its migrating slots wait until its Lease expires and is taken over`,
        );
        out.log("warn", "handoff timeout: waiting for the source's Lease to expire", {
          shard: m.from,
          to: m.to,
          generation: next.generation,
          migrationGeneration: m.generation,
          timeoutSeconds: spec.policy.handoffTimeoutSeconds,
        });
      }
    } else {
      handoffDeadlines.push(h.since + timeoutMs);
    }
  }

  // --- status ---------------------------------------------------------------------------------
  const memo = memoOf(next);
  memo.ranges ??= rangesByShard(next);
  memo.wire ??= tableToStatus(next);
  const ranges = memo.ranges;
  const wire = memo.wire;
  const migrating = new Set<string>();
  for (const m of next.migrations) {
    migrating.add(m.from);
    migrating.add(m.to);
  }
  const listed = observations.filter(
    (o) => o.lease !== undefined || (ranges.get(o.name)?.length ?? 0) > 0 || migrating.has(o.name),
  );
  const shards: ShardStatus[] = listed.map((o) => {
    const e = entries.get(o.name);
    const entry: ShardStatus = {
      name: o.name,
      state: o.state,
      slots: formatSlotRanges(ranges.get(o.name) ?? []),
    };
    const og = o.lease !== undefined ? o.ackedGeneration : e?.observedGeneration;
    if (og !== undefined) entry.observedGeneration = og;
    // Ready: the holder the slots are granted to now. Otherwise the last grant stands.
    const holder =
      o.state === "Ready" ? o.holder : (e?.holderIdentity ?? (o.realHolder ? o.holder : undefined));
    if (holder !== undefined) entry.holderIdentity = holder;
    return entry;
  });
  const readyCount = listed.filter((o) => o.state === "Ready").length;
  let migratingSlots = 0;
  for (const m of next.migrations) migratingSlots += countSlots(m.slots);
  const unassigned = unassignedOf(next);
  const counts = countsOf(next);
  const notReadyOwners = listed.filter((o) => o.state !== "Ready" && (counts.get(o.name) ?? 0) > 0);

  const wants: ConditionWant[] = [];
  if (readyCount === 0) {
    wants.push({
      type: CONDITION_READY,
      status: "False",
      reason: REASONS.noReadyShards,
      message: `no shard Lease labelled slotmap.dev/slotmap=${meta.name} in namespace ${spec.leaseNamespace} is Ready`,
    });
  } else if (barrier.length > 0) {
    wants.push({
      type: CONDITION_READY,
      status: "False",
      reason: REASONS.previousInstance,
      message: `assigning no slot until ${nameList(barrier)} acknowledge this SlotMap instance (uid ${meta.uid}): their Leases still acknowledge a previous instance`,
    });
  } else if (unassigned > 0) {
    wants.push({
      type: CONDITION_READY,
      status: "False",
      reason: REASONS.slotsUnassigned,
      message: `${unassigned} slots have no owner: every Ready shard has weight 0`,
    });
  } else {
    wants.push({
      type: CONDITION_READY,
      status: "True",
      reason: REASONS.allSlotsCovered,
      message: `every slot has an owner or a migration; ${readyCount} of ${listed.length} shards Ready`,
    });
  }
  if (result.balanced) {
    wants.push({
      type: CONDITION_BALANCED,
      status: "True",
      reason: REASONS.balanced,
      message: `each of the ${readyCount} Ready shards holds its weighted share of the ${SLOT_COUNT} slots`,
    });
  } else if (next.migrations.length > 0) {
    const pairs = next.migrations.map((m) => `${m.from} -> ${m.to}`);
    wants.push({
      type: CONDITION_BALANCED,
      status: "False",
      reason: REASONS.migrating,
      message: `${migratingSlots} slots migrating (${nameList([...new Set(pairs)])})`,
    });
  } else if (unassigned > 0) {
    wants.push({
      type: CONDITION_BALANCED,
      status: "False",
      reason: REASONS.slotsUnassigned,
      message: `${unassigned} slots have no owner`,
    });
  } else if (notReadyOwners.length > 0) {
    wants.push({
      type: CONDITION_BALANCED,
      status: "False",
      reason: REASONS.shardsNotReady,
      message: `slots are owned by shards that are not Ready: ${nameList(notReadyOwners.map((o) => o.name))}`,
    });
  } else {
    wants.push({
      type: CONDITION_BALANCED,
      status: "False",
      reason: REASONS.unbalanced,
      message: "slot counts differ from the weighted targets",
    });
  }
  if (next.migrations.length > 0) {
    const waits = [...new Set(next.migrations.map((m) => migrationKey(m.from, m.generation)))].sort();
    const describe = (k: string): string => {
      const h = handoffs.get(k)!;
      return `${h.from} (generation ${h.generation})`;
    };
    if (timedOut.size > 0) {
      const late = [...timedOut.keys()].sort();
      wants.push({
        type: CONDITION_PROGRESSING,
        status: "True",
        reason: REASONS.handoffTimeout,
        message: `not acknowledged within ${spec.policy.handoffTimeoutSeconds}s: ${nameList(late.map(describe))}; their migrating slots wait until their Lease expires and is taken over`,
      });
    } else {
      const only = waits.length === 1 ? handoffs.get(waits[0]!) : undefined;
      wants.push({
        type: CONDITION_PROGRESSING,
        status: "True",
        reason: REASONS.handoffInProgress,
        message:
          only !== undefined
            ? `waiting for ${only.from} to acknowledge generation ${only.generation}`
            : `waiting for acknowledgements: ${nameList(waits.map(describe))}`,
      });
    }
  } else {
    wants.push({
      type: CONDITION_PROGRESSING,
      status: "False",
      reason: REASONS.noMigrations,
      message: "no handoff in progress",
    });
  }

  const observedGeneration = meta.generation ?? status.observedGeneration;
  const desired: SlotMapStatus = {
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    assignmentGeneration: next.generation,
    shards,
    migrations: wire.migrations,
    unassignedSlots: wire.unassignedSlots,
    shardCount: shards.length,
    readyShards: readyCount,
    migratingSlots,
    conditions: mergeConditions(status.conditions, wants, meta.generation, metaTime(wall)),
  };
  if (!jsonEqual(desired, status)) {
    out.actions.push({
      type: "updateStatus",
      slotMap: { name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion },
      status: desired,
    });
  }
  leaseActions(out, observations, spec, slotMapRef, wall, cfg.orphanAfterMs);

  // --- logs -----------------------------------------------------------------------------------
  for (const o of observations) {
    if (o.previousState === undefined) {
      out.log("info", "shard observed", { shard: o.name, state: o.state, generation: next.generation });
    } else if (o.previousState !== o.state) {
      out.log("info", "shard state changed", {
        shard: o.name,
        from: o.previousState,
        to: o.state,
        generation: next.generation,
      });
    }
  }
  for (const o of replaced) {
    const previousHolder = entries.get(o.name)?.holderIdentity ?? "";
    out.report(`incarnation\u0000${o.name}\u0000${o.holder}`, () => {
      out.event(
        slotMapRef,
        "Normal",
        REASONS.newIncarnation,
        `shard ${o.name}: new holder ${o.holder} replaces ${previousHolder || "(none)"}; its slots are granted anew in generation ${next.generation}`,
      );
    });
    out.log("info", "new shard incarnation: slots of the previous holder are fenced", {
      shard: o.name,
      holder: o.holder,
      previousHolder,
      generation: next.generation,
    });
  }
  if (next !== table) {
    const g = next.generation;
    if (barrier.length > 0) {
      out.log("info", "SlotMap recreated: assigning nothing until shards of the previous instance ack", {
        generation: g,
        shards: barrier.join(","),
      });
    }
    out.log("info", "new assignment generation", {
      generation: g,
      previousGeneration: table.generation,
      started: result.started.length,
      committed: commits.length,
      direct: result.direct.length,
      released: result.released.length + fencedReleases.length,
      retargeted: result.retargeted.length,
      migratingSlots,
      unassignedSlots: unassigned,
    });
    for (const r of fencedReleases) {
      out.log("info", "slots released", {
        shard: r.from,
        slots: r.slots,
        generation: g,
        cause: "new incarnation",
      });
    }
    for (const r of result.released) {
      out.log("info", "slots released", {
        shard: r.from,
        slots: countSlots(r.slots),
        generation: g,
        cause: "dead",
      });
    }
    for (const c of commits) {
      out.log("info", "handoff committed", {
        shard: c.m.from,
        to: c.m.to,
        slots: formatSlotRanges(c.m.slots),
        generation: g,
        migrationGeneration: c.m.generation,
        outcome: c.outcome,
        durationMs: c.durationMs,
      });
    }
    for (const d of result.direct) {
      out.log("info", "slots assigned", { shard: d.to, slots: formatSlotRanges(d.slots), generation: g });
    }
    for (const m of result.started) {
      out.log("info", "handoff started", {
        shard: m.from,
        to: m.to,
        slots: formatSlotRanges(m.slots),
        generation: g,
      });
    }
    for (const m of result.retargeted) {
      out.log("info", "handoff retargeted", {
        shard: m.from,
        to: m.to,
        slots: formatSlotRanges(m.slots),
        generation: g,
        migrationGeneration: m.generation,
      });
    }
  }

  return {
    shards: observations,
    handoffs: byKey(handoffs),
    metrics: metricsOf(meta.name, true, true, next, listed, timedOut.size, observed),
    nextStepAt: minDeadline([...observations.map((o) => o.deadline), ...handoffDeadlines]),
  };
}
