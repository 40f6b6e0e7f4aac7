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

import { freeze } from "immer";
import { type FieldError, formatFieldErrors } from "../../api/errors.js";
import type { ProjectableStatus } from "../../api/projection.js";
import { compareResourceVersions } from "../../api/resource-version.js";
import {
  API_VERSION,
  CONDITION_BALANCED,
  CONDITION_PROGRESSING,
  CONDITION_READY,
  type Condition,
  KIND,
  parseSlotMapSpec,
  type SlotMapStatus,
} from "../../api/v1alpha1.js";
import { placementFingerprint } from "../../slots/placement.js";
import { REASONS } from "./conditions.js";
import {
  byKey,
  leaseActions,
  metricsOf,
  minDeadline,
  Output,
  readStatus,
  reportAnnotationErrors,
  type StatusRead,
  statusHints,
} from "./context.js";
import { type Decision, decide, highestAck, resetForRules, resetRegressed } from "./decide.js";
import { COORDINATOR_GUARDS, type CoordinatorGuards } from "./guards.js";
import { observeShards, type ShardObservation } from "./leases.js";
import { type ConditionWant, jsonEqual, mergeConditions, metaTime, parseWallTime } from "./status.js";
import {
  CoordinatorInputError,
  type CoreMemory,
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_ORPHAN_AFTER_MS,
  type ObjectRef,
  type ObservedLease,
  type ShardMemory,
  type StepInput,
  type StepResult,
} from "./types.js";

export { REASONS };

/** Default {@link CoordinatorConfig.maxObservationGapMs}. */
export const DEFAULT_MAX_OBSERVATION_GAP_MS = 5000;
/** Default {@link CoordinatorConfig.heartbeatMs}. */
export const DEFAULT_HEARTBEAT_MS = 1000;
/** Default {@link CoordinatorConfig.commitBatchMs}. */
export const DEFAULT_COMMIT_BATCH_MS = 250;

interface Resolved {
  readonly identity: string;
  readonly orphanAfterMs: number;
  readonly defaultLeaseDurationMs: number;
  readonly maxObservationGapMs: number;
  readonly heartbeatMs: number;
  readonly commitBatchMs: number;
}

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
  const positive = (field: string, fallback: number, allowZero = false): number => {
    const v = cfg[field] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
      throw new CoordinatorInputError(
        `config.${field}`,
        v,
        `expected a finite number ${allowZero ? ">=" : ">"} 0`,
      );
    }
    return v;
  };
  const maxObservationGapMs = positive("maxObservationGapMs", DEFAULT_MAX_OBSERVATION_GAP_MS);
  const heartbeatMs = positive("heartbeatMs", DEFAULT_HEARTBEAT_MS);
  const commitBatchMs = positive("commitBatchMs", DEFAULT_COMMIT_BATCH_MS, true);
  if (heartbeatMs >= maxObservationGapMs) {
    throw new CoordinatorInputError(
      "config.heartbeatMs",
      heartbeatMs,
      `must be below config.maxObservationGapMs (${maxObservationGapMs}): a step on the heartbeat must never look like a blind period`,
    );
  }
  return {
    identity,
    orphanAfterMs,
    defaultLeaseDurationMs,
    maxObservationGapMs,
    heartbeatMs,
    commitBatchMs,
  };
}

/**
 * One decision step for one SlotMap.
 *
 * @param memory - the `memory` returned by the previous step for this SlotMap, or `undefined`
 *   (a new leader, or a SlotMap seen for the first time). Memory of another SlotMap instance
 *   (different uid) is discarded.
 * @param input - the observation, the clocks and the config.
 * @param guards - the safety rules consulted; production always uses the default
 *   {@link COORDINATOR_GUARDS} (the simulator's teeth tests pass broken variants).
 * @returns the actions to apply, logs, metrics, the new memory and when to step again.
 * @throws CoordinatorInputError when the input violates the interface (a bug in the caller):
 *   missing name/uid/resourceVersion, duplicate Lease names, a non-finite or decreasing `now`,
 *   a `wallTime` that is not RFC 3339, or bad config. Cluster data (spec, status, annotations)
 *   never makes it throw.
 */
export function step(
  memory: CoreMemory | undefined,
  input: StepInput,
  guards: CoordinatorGuards = COORDINATOR_GUARDS,
): StepResult {
  const cfg = checkInput(input, memory);
  const wall = parseWallTime(input.wallTime);
  const { now } = input;
  const sm = input.slotMap;
  const { name, uid } = sm.metadata;
  const prev = memory !== undefined && memory.slotMapUid === uid ? memory : undefined;
  const out = new Output(name, cfg.identity, new Set(prev?.reported ?? []));
  if (memory !== undefined && prev === undefined) {
    out.log("info", "SlotMap was deleted and recreated: starting over with empty memory", {
      uid,
      previousUid: memory.slotMapUid,
    });
  }
  const ref: ObjectRef = {
    apiVersion: API_VERSION,
    kind: KIND,
    name,
    uid,
    resourceVersion: sm.metadata.resourceVersion,
  };
  const statusRead = readStatus(sm.status, uid, sm.metadata.resourceVersion);
  const seen = prev?.highestGeneration;
  const highest =
    statusRead.ok && (seen === undefined || statusRead.table.generation > seen.generation)
      ? { generation: statusRead.table.generation, resourceVersion: sm.metadata.resourceVersion }
      : seen;
  const finish = (d: Decision, projectable?: ProjectableStatus): StepResult => {
    const newMemory: CoreMemory = {
      slotMapUid: uid,
      lastStepAt: now,
      shards: byKey<ShardMemory>(d.shards.map((o) => [o.name, o.memory])),
      handoffs: d.handoffs,
      reported: [...out.active].sort(),
      ...(highest !== undefined ? { highestGeneration: highest } : {}),
      ...(foreign.length > 0 ? { foreign: byKey<ShardMemory>(foreign.map((o) => [o.name, o.memory])) } : {}),
    };
    return {
      memory: freeze(newMemory, true),
      actions: out.all(),
      logs: out.logs,
      metrics: d.metrics,
      nextStepAt: d.nextStepAt,
      ...(projectable !== undefined ? { projectable } : {}),
    };
  };

  // Being deleted: nothing to decide. Memory is kept as is (the I/O layer drops it on deletion).
  if (sm.metadata.deletionTimestamp) {
    const base = prev ?? { slotMapUid: uid, lastStepAt: now, shards: {}, handoffs: {}, reported: [] };
    return {
      memory: freeze({ ...base, lastStepAt: now }, true),
      actions: [],
      logs: out.logs,
      metrics: metricsOf(
        name,
        true,
        statusRead.ok,
        statusRead.ok ? statusRead.table : undefined,
        [],
        0,
        [],
        0,
      ),
      nextStepAt: undefined,
    };
  }

  const specRead = parseSlotMapSpec(sm.spec);
  const blind = prev !== undefined && guards.blind(now - prev.lastStepAt, cfg.maxObservationGapMs);
  if (blind) {
    out.log("warn", "no step for longer than the observation gap: every Lease clock restarts", {
      gapMs: now - prev.lastStepAt,
      maxObservationGapMs: cfg.maxObservationGapMs,
    });
  }
  const leases = [...input.leases].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
  const observations = observeShards({
    previous: prev?.shards ?? {},
    leases,
    statusShards: statusRead.ok ? statusHints(statusRead.status, statusRead.table) : new Map(),
    slotMapUid: uid,
    statusGeneration: statusRead.ok ? statusRead.table.generation : Number.MAX_SAFE_INTEGER,
    now,
    blind,
    defaultLeaseDurationMs: cfg.defaultLeaseDurationMs,
    maxLeaseDurationMs: specRead.ok ? specRead.value.policy.maxLeaseDurationSeconds * 1000 : undefined,
    orphanAfterMs: cfg.orphanAfterMs,
    wallMs: wall.getTime(),
    guards,
  });
  for (const o of observations) reportAnnotationErrors(out, o);
  const foreign = observeForeign(input.foreignLeases ?? [], prev, uid, { now, wall, blind, cfg, guards });

  if (!specRead.ok) {
    return finish(invalidSpec(out, sm.metadata, ref, specRead.errors, statusRead, observations, prev, wall));
  }
  const spec = specRead.value;
  if (!statusRead.ok)
    return finish(holdInvalidStatus(out, ref, spec, statusRead.errors, observations, prev, wall, cfg, now));
  const ctx = {
    out,
    foreign,
    meta: sm.metadata,
    ref,
    spec,
    rules: placementFingerprint(spec.resources),
    status: statusRead.status,
    table: statusRead.table,
    observations,
    prev,
    wall,
    now,
    orphanAfterMs: cfg.orphanAfterMs,
    commitBatchMs: cfg.commitBatchMs,
    heartbeatMs: cfg.heartbeatMs,
    guards,
  };
  // Judged only from Leases seen live since our first observation: a new leader whose SlotMap view
  // lags its Lease view would otherwise take a fresh ack for a restore (its reset would 409, but
  // its Warning would be false).
  const confirmed = observations.filter((o) => o.memory.confirmed);
  const ack = highestAck(confirmed);
  if (guards.statusBelowAcks(ack, statusRead.table.generation)) {
    // The reset jumps above every ack, confirmed or not: a Lease not yet seen renewing (Expired, a
    // new leader) may name a generation its process applied, and that number must not be reused.
    return finish(resetRegressed(ctx, Math.max(ack, highestAck(observations))));
  }
  // A newer write set the status below a generation we saw: it was set back (restored), even if
  // our Lease view does not show the acks above it yet (lagging). An older version is only a
  // stale observation: planning on it fails its precondition.
  if (
    seen !== undefined &&
    guards.statusSetBack(
      seen.generation,
      statusRead.table.generation,
      (compareResourceVersions(sm.metadata.resourceVersion, seen.resourceVersion) ?? 0) > 0,
    )
  ) {
    return finish(resetRegressed(ctx, Math.max(seen.generation, highestAck(observations))));
  }
  // A shard refuses the table at the status's generation: restored while our Lease view lagged, we
  // wrote another table at a generation it had applied. Its ack equals ours, so only this tells.
  const refused = Math.max(0, ...confirmed.map((o) => o.refusedGeneration));
  if (guards.refusalResets(refused, statusRead.table.generation)) {
    return finish(resetRegressed(ctx, Math.max(refused, highestAck(observations)), refused));
  }
  if (guards.rulesNeedBarrier(statusRead.status.rulesFingerprint, ctx.rules)) {
    return finish(resetForRules(ctx), statusRead.status);
  }
  return finish(decide(ctx), statusRead.status);
}

/**
 * Observations of the Leases labelled for this SlotMap in other namespaces, named
 * `<namespace>/<name>`, with their own memory: they get nothing, the drain barrier waits for them.
 */
function observeForeign(
  leases: readonly ObservedLease[],
  prev: CoreMemory | undefined,
  uid: string,
  at: { now: number; wall: Date; blind: boolean; cfg: Resolved; guards: CoordinatorGuards },
): ShardObservation[] {
  const { now, blind, cfg } = at;
  if (leases.length === 0) return [];
  const named = leases.map((l) => ({
    ...l,
    metadata: { ...l.metadata, name: `${l.metadata.namespace ?? ""}/${l.metadata.name}` },
  }));
  return observeShards({
    previous: prev?.foreign ?? {},
    leases: named,
    statusShards: new Map(),
    slotMapUid: uid,
    statusGeneration: Number.MAX_SAFE_INTEGER,
    now,
    blind,
    defaultLeaseDurationMs: cfg.defaultLeaseDurationMs,
    maxLeaseDurationMs: undefined,
    orphanAfterMs: Number.POSITIVE_INFINITY,
    wallMs: at.wall.getTime(),
    guards: at.guards,
  });
}

/** An invalid status is held: no table change, a Warning Event once; Leases are still judged. */
function holdInvalidStatus(
  out: Output,
  ref: ObjectRef,
  spec: import("../../api/v1alpha1.js").SlotMapSpec,
  errors: FieldError[],
  observations: readonly ShardObservation[],
  prev: CoreMemory | undefined,
  wall: Date,
  cfg: Resolved,
  now: number,
): Decision {
  const message = formatFieldErrors(errors);
  out.report(`status\u0000${message}`, () => {
    out.event(
      ref,
      "Warning",
      REASONS.invalidStatus,
      `status is invalid, so the slot table is left as it is and no slot moves until it is repaired (see docs/coordinator.md): ${message}`,
    );
    out.log("error", "invalid SlotMap status: holding the slot table", { error: message });
  });
  leaseActions(out, observations, spec, ref, wall, cfg.orphanAfterMs);
  return {
    shards: observations,
    handoffs: prev?.handoffs ?? {},
    metrics: metricsOf(ref.name, true, false, undefined, observations, 0, [], 0),
    nextStepAt: minDeadline([...observations.map((o) => o.deadline), now + cfg.heartbeatMs]),
  };
}

function keptOrUnknown(observed: readonly Condition[], type: string, reason: string): ConditionWant {
  const c = observed.find((x) => x.type === type);
  if (c !== undefined) return { type, status: c.status, reason: c.reason, message: c.message };
  return { type, status: "Unknown", reason, message: "the spec is invalid" };
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
  const listed = statusRead.ok
    ? statusRead.status.shards.map((s) => ({ name: s.name, state: s.state ?? "Ready" }))
    : [];
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
      0,
    ),
    nextStepAt: undefined,
  };
}
