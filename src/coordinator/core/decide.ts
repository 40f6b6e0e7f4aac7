/**
 * The coordinator's decision for a SlotMap with a valid spec and status, in named phases:
 *
 * 1. `limitShards`: at most {@link LIMITS.shards} shards are planned; the rest get nothing.
 * 2. `fenceStoppedGrants`: grants of incarnations known to have stopped are released or committed.
 * 3. `holdReason`: hold the table while a new observation settles (a Lease not yet seen renewing)
 *    or while a drain barrier waits for live shards to acknowledge a table that assigns nothing.
 * 4. `planNext`: acks batched, then the planner.
 * 5. handoff clocks, commits and timeouts (handoffs.ts).
 * 6. `statusOf`: the compact status and its conditions; written only when it differs.
 * 7. Lease takeovers and deletions, then logs and Events.
 *
 * A status whose generation is below what shards acknowledged (restored from a backup) is never
 * planned on: `resetRegressed` writes a generation far above every ack that assigns nothing, and
 * the drain barrier assigns again once every live shard has acknowledged it.
 */
import { effectiveWeight } from "../../api/lease.js";
import { LIMITS, type ShardStatus, type SlotMapSpec, type SlotMapStatus } from "../../api/v1alpha1.js";
import type { placementFingerprint } from "../../slots/placement.js";
import type { PlanResult } from "../../slots/planner.js";
import { countSlots, formatSlotRanges } from "../../slots/ranges.js";
import { makeTable, rangesByShard, tableToStatus } from "../../slots/table.js";
import { type Migration, NO_OWNER, type ShardInfo, SLOT_COUNT, type SlotTable } from "../../slots/types.js";
import { type ConditionFacts, conditionWants, REASONS } from "./conditions.js";
import {
  byKey,
  countsOf,
  fenceIncarnations,
  leaseActions,
  memoOf,
  metricsOf,
  minDeadline,
  type Output,
  planOf,
  unassignedOf,
} from "./context.js";
import type { CoordinatorGuards } from "./guards.js";
import {
  batchAcks,
  type Commit,
  handoffTimeouts,
  migrationKey,
  observeCommits,
  trackHandoffs,
} from "./handoffs.js";
import type { ShardObservation } from "./leases.js";
import { jsonEqual, mergeConditions, metaTime, nameList } from "./status.js";
import type { CoreMemory, HandoffMemory, ObjectRef, SlotMapMetrics, StepInput } from "./types.js";

/**
 * How far above the highest ack a reset jumps: a shard may have applied generations that no
 * shard acknowledged yet when the status was restored, and the reset generation must be above all
 * of them (docs/design-decisions.md "Regressed status").
 */
export const RESET_JUMP = 1000;

/** What every phase reads. */
export interface DecideContext {
  readonly out: Output;
  readonly meta: StepInput["slotMap"]["metadata"];
  readonly ref: ObjectRef;
  readonly spec: SlotMapSpec;
  /** {@link placementFingerprint} of `spec.resources`. */
  readonly rules: string;
  readonly status: SlotMapStatus;
  readonly table: SlotTable;
  readonly observations: readonly ShardObservation[];
  /** Leases labelled for this SlotMap outside its lease namespace (see `StepInput.foreignLeases`). */
  readonly foreign: readonly ShardObservation[];
  readonly prev: CoreMemory | undefined;
  readonly wall: Date;
  readonly now: number;
  readonly orphanAfterMs: number;
  readonly commitBatchMs: number;
  readonly heartbeatMs: number;
  readonly guards: CoordinatorGuards;
}

/** What a step returns besides the actions and logs collected in `out`. */
export interface Decision {
  shards: readonly ShardObservation[];
  handoffs: Readonly<Record<string, HandoffMemory>>;
  metrics: SlotMapMetrics;
  nextStepAt: number | undefined;
}

// ---------------------------------------------------------------- phase 1: the shard limit

/**
 * The shards that are planned: those the table involves first (they keep what they have), then
 * the others by name, up to the supported count. The rest get no slots and are not listed.
 */
export function limitShards(
  observations: readonly ShardObservation[],
  table: SlotTable,
): { included: ShardObservation[]; excluded: ShardObservation[] } {
  if (observations.length <= LIMITS.shards) return { included: [...observations], excluded: [] };
  const involved = new Set<string>();
  const counts = countsOf(table);
  for (const [name, n] of counts) if (n > 0) involved.add(name);
  for (const m of table.migrations) {
    involved.add(m.from);
    involved.add(m.to);
  }
  const ranked = [...observations].sort(
    (a, b) => Number(involved.has(b.name)) - Number(involved.has(a.name)) || (a.name < b.name ? -1 : 1),
  );
  const keep = new Set(ranked.slice(0, LIMITS.shards).map((o) => o.name));
  return {
    included: observations.filter((o) => keep.has(o.name)),
    excluded: observations.filter((o) => !keep.has(o.name)),
  };
}

// ---------------------------------------------------------------- phase 2: stopped incarnations

interface Fenced {
  readonly table: SlotTable;
  readonly commits: Migration[];
  readonly releases: Array<{ from: string; slots: number }>;
  readonly shards: ShardObservation[];
}

/** Releases the grants of incarnations known to have stopped (their shard has a new holder). */
function fenceStoppedGrants(table: SlotTable, shards: readonly ShardObservation[]): Fenced {
  const stopped = shards.filter((o) => o.previousGrantFenced);
  const commits: Migration[] = [];
  const releases: Array<{ from: string; slots: number }> = [];
  if (stopped.length === 0) return { table, commits, releases, shards: stopped };
  const ready = new Set(shards.filter((o) => o.state === "Ready").map((o) => o.name));
  const names = new Set(stopped.map((o) => o.name));
  return {
    table: fenceIncarnations(table, names, ready, commits, releases),
    commits,
    releases,
    shards: stopped,
  };
}

// ---------------------------------------------------------------- phase 3: holds

/** A drain barrier in force: the generation to acknowledge and who has not. */
export interface Barrier {
  readonly generation: number;
  readonly waiting: string[];
  readonly previousInstance: boolean;
}

function assignsNothing(table: SlotTable): boolean {
  return table.migrations.length === 0 && table.owner.every((o) => o === NO_OWNER);
}

/**
 * While the table assigns nothing (a new or recreated SlotMap, a reset, every shard gone), a live
 * process may still run slots of an earlier table: of a previous SlotMap instance, or of a status
 * that was restored from a backup, or one it applied without acknowledging yet. Slots are assigned
 * only once every live Lease acknowledged the current generation (which it does only after its
 * reconciles finished) or is Dead. Generation 0 first writes generation 1, which assigns nothing.
 */
export function drainBarrier(
  table: SlotTable,
  observations: readonly ShardObservation[],
  uid: string,
  guards: CoordinatorGuards,
  foreign: readonly ShardObservation[] = [],
): Barrier | undefined {
  if (!assignsNothing(table)) return undefined;
  const generation = Math.max(1, table.generation);
  // A foreign Lease is never taken over by us: once unrenewed for its duration it is not waited for.
  // A Lease refused for its duration never had slots from this table, and waiting out a rogue's
  // declared hour would let anyone who can write one Lease stop every shard.
  // Not Dead: a live holder, or one whose incarnation may still run (cleared, replaced or deleted
  // without its release marker, waited out for its declared duration).
  const live = [
    ...observations.filter((o) => o.state !== "Dead" && o.refusedDurationMs === undefined),
    ...foreign.filter((o) => o.realHolder && o.state === "Ready"),
  ];
  const otherUid = (o: ShardObservation): boolean => {
    const acked = o.lease?.metadata.annotations?.["slotmap.dev/slotmap-uid"];
    return acked !== undefined && acked !== uid;
  };
  const waiting = live.filter((o) => guards.barrierWaitsFor(o, generation, uid)).map((o) => o.name);
  return {
    generation,
    waiting,
    previousInstance: waiting.some((n) => otherUid(live.find((o) => o.name === n)!)),
  };
}

/**
 * Live Leases this leader has not yet seen renewing (a new leader, a Lease that reappeared, or
 * after a blind period): their acks may predate what their process runs now (a restored etcd), so
 * nothing moves until each has renewed once or expired.
 */
function unsettled(observations: readonly ShardObservation[], guards: CoordinatorGuards): string[] {
  return observations.filter((o) => guards.mustSettle(o)).map((o) => o.name);
}

/** The planner's result that keeps the table as it is. */
function keep(table: SlotTable): PlanResult {
  return {
    table,
    changed: false,
    committed: [],
    started: [],
    direct: [],
    released: [],
    retargeted: [],
    targets: new Map(),
    balanced: false,
  };
}

// ---------------------------------------------------------------- phase 4: planning

function plannerInfos(
  ctx: DecideContext,
  shards: readonly ShardObservation[],
  table: SlotTable,
): ShardInfo[] {
  const { guards } = ctx;
  return shards.map((o) => ({
    name: o.name,
    state: guards.plannedState(o),
    weight: effectiveWeight(ctx.spec, o.name, o.leaseWeight),
    ackedGeneration: guards.plannedAck(o, table),
  }));
}

// ---------------------------------------------------------------- phase 6: status

function statusEntries(shards: readonly ShardObservation[], next: SlotTable): ShardStatus[] {
  const memo = memoOf(next);
  memo.ranges ??= rangesByShard(next);
  const ranges = memo.ranges;
  const migrating = new Set<string>();
  for (const m of next.migrations) {
    migrating.add(m.from);
    migrating.add(m.to);
  }
  const out: ShardStatus[] = [];
  for (const o of shards) {
    const owned = ranges.get(o.name) ?? [];
    if (o.lease === undefined && owned.length === 0 && !migrating.has(o.name)) continue;
    const entry: ShardStatus = { name: o.name, slots: formatSlotRanges(owned) };
    if (o.state !== "Ready") entry.state = o.state;
    if (o.grantHolder !== undefined) entry.holderIdentity = o.grantHolder;
    out.push(entry);
  }
  return out;
}

interface StatusParts {
  readonly next: SlotTable;
  readonly entries: ShardStatus[];
  readonly facts: ConditionFacts;
  /** While the table is held nothing is decided: the observed conditions stand. */
  readonly keepConditions?: boolean;
  /** Set by a reset (it passes the drain barrier); otherwise the status's fingerprint is kept. */
  readonly rulesFingerprint?: string;
}

function statusOf(ctx: DecideContext, parts: StatusParts): SlotMapStatus {
  const { meta, status, wall } = ctx;
  const memo = memoOf(parts.next);
  memo.wire ??= tableToStatus(parts.next);
  const observedGeneration = meta.generation ?? status.observedGeneration;
  return {
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    assignmentGeneration: parts.next.generation,
    shards: parts.entries,
    migrations: memo.wire.migrations,
    unassignedSlots: memo.wire.unassignedSlots,
    shardCount: parts.entries.length,
    readyShards: parts.facts.readyCount,
    migratingSlots: parts.facts.migratingSlots,
    // A status without one (a first status, or written by v0.2) adopts the spec's; a changed one
    // is kept until a reset passes the barrier (parts.rulesFingerprint).
    rulesFingerprint:
      parts.rulesFingerprint ??
      (ctx.guards.rulesNeedBarrier(status.rulesFingerprint, ctx.rules) ? status.rulesFingerprint : ctx.rules),
    conditions: parts.keepConditions
      ? status.conditions
      : mergeConditions(status.conditions, conditionWants(parts.facts), meta.generation, metaTime(wall)),
  };
}

function writeStatus(ctx: DecideContext, desired: SlotMapStatus): void {
  if (jsonEqual(desired, ctx.status)) return;
  const { meta } = ctx;
  ctx.out.actions.push({
    type: "updateStatus",
    slotMap: { name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion },
    status: desired,
  });
}

function baseFacts(
  ctx: DecideContext,
  next: SlotTable,
  entries: readonly ShardStatus[],
  included: readonly ShardObservation[],
  excluded: number,
): Omit<ConditionFacts, "barrier" | "regressed" | "balanced" | "waits" | "late"> {
  let migratingSlots = 0;
  for (const m of next.migrations) migratingSlots += countSlots(m.slots);
  const counts = countsOf(next);
  const listed = new Set(entries.map((e) => e.name));
  return {
    slotMap: ctx.meta.name,
    leaseNamespace: ctx.spec.leaseNamespace,
    uid: ctx.meta.uid,
    readyCount: included.filter((o) => listed.has(o.name) && o.state === "Ready").length,
    listedCount: entries.length,
    unassigned: unassignedOf(next),
    migrationPairs: next.migrations.map((m) => `${m.from} -> ${m.to}`),
    migratingSlots,
    notReadyOwners: included
      .filter((o) => o.state !== "Ready" && (counts.get(o.name) ?? 0) > 0)
      .map((o) => o.name),
    excluded,
    maxShards: LIMITS.shards,
    handoffTimeoutSeconds: ctx.spec.policy.handoffTimeoutSeconds,
  };
}

// ---------------------------------------------------------------- phase 7: reports

function reportShards(ctx: DecideContext, excluded: readonly ShardObservation[], generation: number): void {
  const { out, ref } = ctx;
  for (const o of ctx.observations) {
    if (o.previousState === undefined) {
      out.log("info", "shard observed", { shard: o.name, state: o.state, generation });
    } else if (o.previousState !== o.state) {
      out.log("info", "shard state changed", {
        shard: o.name,
        from: o.previousState,
        to: o.state,
        generation,
      });
    }
    if (o.refusedDurationMs !== undefined && o.lease !== undefined) {
      const seconds = o.refusedDurationMs / 1000;
      out.report(`refused\u0000${o.lease.metadata.uid}\u0000${seconds}`, () => {
        out.event(
          ref,
          "Warning",
          REASONS.leaseRefused,
          `shard ${o.name}: Lease duration ${seconds}s is above spec.policy.maxLeaseDurationSeconds (${ctx.spec.policy.maxLeaseDurationSeconds}s); it gets no slots`,
        );
        out.log("warn", "shard Lease refused: duration above the policy cap", {
          shard: o.name,
          leaseDurationSeconds: seconds,
          maxLeaseDurationSeconds: ctx.spec.policy.maxLeaseDurationSeconds,
        });
      });
    }
  }
  if (excluded.length > 0) {
    out.report(`limit\u0000${LIMITS.shards}`, () => {
      const total = ctx.observations.length;
      const message = `${total} shards, at most ${LIMITS.shards} are supported: ${excluded.length} get no slots (${nameList(excluded.map((o) => o.name))})`;
      out.event(ref, "Warning", REASONS.tooManyShards, message);
      out.log("error", "too many shards: the excess gets no slots", {
        shards: total,
        maxShards: LIMITS.shards,
        excluded: excluded.length,
      });
    });
  }
}

function reportForeign(ctx: DecideContext): void {
  for (const o of ctx.foreign) {
    if (!o.realHolder || o.state !== "Ready") continue;
    ctx.out.report(`foreign\u0000${o.name}\u0000${o.holder}`, () => {
      ctx.out.event(
        ctx.ref,
        "Warning",
        REASONS.foreignLease,
        `Lease ${o.name} is labelled slotmap.dev/slotmap=${ctx.meta.name} but is outside spec.leaseNamespace ${ctx.spec.leaseNamespace}: it gets no slots, and a drain barrier waits for it to acknowledge or stop renewing`,
      );
      ctx.out.log("warn", "shard Lease outside the lease namespace: it gets no slots", { lease: o.name });
    });
  }
}

function reportIncarnations(ctx: DecideContext, fenced: Fenced, generation: number): void {
  const { out, ref } = ctx;
  const entries = new Map(ctx.status.shards.map((s) => [s.name, s]));
  for (const o of fenced.shards) {
    const previousHolder = entries.get(o.name)?.holderIdentity ?? "";
    out.report(`incarnation\u0000${o.name}\u0000${o.holder}`, () => {
      out.event(
        ref,
        "Normal",
        REASONS.newIncarnation,
        `shard ${o.name}: holder ${previousHolder || "(none)"} stopped (not renewed for a lease duration, released or taken over); its slots are granted anew in generation ${generation}`,
      );
    });
    out.log("info", "shard incarnation stopped: its slots are released", {
      shard: o.name,
      holder: o.holder,
      previousHolder,
      generation,
    });
  }
}

function reportGeneration(
  ctx: DecideContext,
  result: PlanResult,
  fenced: Fenced,
  commits: readonly Commit[],
  next: SlotTable,
  barrier: Barrier | undefined,
): void {
  const { out } = ctx;
  const g = next.generation;
  if (barrier !== undefined) {
    out.log("info", "drain barrier: assigning nothing until every live shard acknowledges", {
      generation: g,
      waiting: barrier.waiting.length,
      shards: nameList(barrier.waiting),
    });
  }
  out.log("info", "new assignment generation", {
    generation: g,
    previousGeneration: ctx.table.generation,
    started: result.started.length,
    committed: commits.length,
    direct: result.direct.length,
    released: result.released.length + fenced.releases.length,
    retargeted: result.retargeted.length,
    migrations: next.migrations.length,
    unassignedSlots: unassignedOf(next),
  });
  for (const r of fenced.releases) {
    out.log("info", "slots released", {
      shard: r.from,
      slots: r.slots,
      generation: g,
      cause: "incarnation stopped",
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
  // One line per kind, not per shard: with hundreds of shards a line each is a log flood.
  if (commits.length > 0) {
    out.log("info", "handoffs committed", {
      generation: g,
      count: commits.length,
      acked: commits.filter((c) => c.outcome === "acked").length,
      sources: nameList([...new Set(commits.map((c) => c.m.from))]),
      slots: commits.reduce((n, c) => n + countSlots(c.m.slots), 0),
      maxDurationMs: Math.max(...commits.map((c) => c.durationMs)),
    });
  }
  if (result.direct.length > 0) {
    out.log("info", "slots assigned", {
      generation: g,
      shards: nameList([...new Set(result.direct.map((d) => d.to))]),
      slots: result.direct.reduce((n, d) => n + countSlots(d.slots), 0),
    });
  }
  if (result.started.length > 0) {
    out.log("info", "handoffs started", {
      generation: g,
      count: result.started.length,
      sources: nameList([...new Set(result.started.map((m) => m.from))]),
      targets: nameList([...new Set(result.started.map((m) => m.to))]),
      slots: result.started.reduce((n, m) => n + countSlots(m.slots), 0),
    });
  }
  if (result.retargeted.length > 0) {
    out.log("info", "handoffs retargeted", { generation: g, count: result.retargeted.length });
  }
}

function reportTimeouts(
  ctx: DecideContext,
  newlyLate: ReadonlyArray<{ m: Migration; h: HandoffMemory }>,
  g: number,
): void {
  const seconds = ctx.spec.policy.handoffTimeoutSeconds;
  for (const { m } of newlyLate) {
    ctx.out.event(
      ctx.ref,
      "Warning",
      REASONS.handoffTimeout,
      `shard ${m.from} did not acknowledge generation ${m.generation} within ${seconds}s; its migrating slots wait until it stops renewing (a shard exits when a reconcile does not return) and its Lease is taken over`,
    );
    ctx.out.log("warn", "handoff timeout: waiting for the source to stop renewing", {
      shard: m.from,
      to: m.to,
      generation: g,
      migrationGeneration: m.generation,
      timeoutSeconds: seconds,
    });
  }
}

// ---------------------------------------------------------------- the decision

/** The normal path: limit, fence, hold or plan, track handoffs, and write what changed. */
export function decide(ctx: DecideContext): Decision {
  const { table, now, observations } = ctx;
  const { included, excluded } = limitShards(observations, table);
  const fenced = fenceStoppedGrants(table, included);
  const pre = fenced.table;

  const barrier = drainBarrier(pre, observations, ctx.meta.uid, ctx.guards, ctx.foreign);
  const settling = unsettled(included, ctx.guards);
  const prevHandoffs = ctx.prev?.handoffs ?? {};
  const batch = batchAcks(
    pre.migrations,
    plannerInfos(ctx, included, pre),
    prevHandoffs,
    now,
    ctx.commitBatchMs,
  );
  let result: PlanResult;
  if (settling.length > 0) result = keep(table);
  else if (pre.generation === 0)
    result = { ...keep(pre), table: makeTable(1, pre.shards, pre.owner, []), changed: true };
  else if (barrier !== undefined && barrier.waiting.length > 0) result = keep(pre);
  else result = planOf(pre, batch.infos, { maxMigratingSlots: ctx.spec.policy.maxMigratingSlots });
  const holding = settling.length > 0;
  const fencedNow = !holding && fenced.shards.length > 0;
  const next = result.changed
    ? result.table
    : fencedNow
      ? makeTable(table.generation + 1, pre.shards, pre.owner, pre.migrations)
      : table;
  const effective = holding ? { ...fenced, commits: [], releases: [], shards: [] } : fenced;

  // Handoff clocks, commits and timeouts.
  const handoffs = trackHandoffs(prevHandoffs, [...table.migrations, ...next.migrations], batch.ackedAt, now);
  const acked = new Map(included.map((o) => [o.name, o.ackedGeneration]));
  const { commits, observed } = observeCommits(effective.commits, result.committed, acked, handoffs, now);
  const timeouts = handoffTimeouts(
    next.migrations,
    handoffs,
    now,
    ctx.spec.policy.handoffTimeoutSeconds * 1000,
  );
  reportTimeouts(ctx, timeouts.newlyLate, next.generation);

  // Status and conditions. While the table is held nothing moves, and the shard entries stay as
  // observed: a stopped incarnation's grants are not fenced yet (a holder changed without a new
  // generation would hand that generation's slots to another incarnation unannounced), and a shard
  // judged Dead keeps its slots until the hold ends (a Dead owner would contradict the table).
  const entries = holding ? [...ctx.status.shards] : statusEntries(included, next);
  const nextBarrier = drainBarrier(next, observations, ctx.meta.uid, ctx.guards, ctx.foreign);
  reportForeign(ctx);
  const waits = [...new Set(next.migrations.map((m) => migrationKey(m.from, m.generation)))]
    .sort()
    .map((k) => handoffs.get(k)!);
  const facts: ConditionFacts = {
    ...baseFacts(ctx, next, entries, included, excluded.length),
    barrier: nextBarrier,
    regressed: undefined,
    balanced: result.balanced,
    waits,
    late: timeouts.late,
  };
  writeStatus(ctx, statusOf(ctx, { next, entries, facts, keepConditions: holding }));
  leaseActions(ctx.out, observations, ctx.spec, ctx.ref, ctx.wall, ctx.orphanAfterMs);

  reportShards(ctx, excluded, next.generation);
  reportIncarnations(ctx, effective, next.generation);
  if (next !== table) reportGeneration(ctx, result, effective, commits, next, nextBarrier);
  if (settling.length > 0) {
    // One line per hold, not per step (the list shrinks as Leases renew).
    ctx.out.report("settling", () =>
      ctx.out.log("info", "holding the slot table until these Leases are seen renewing", {
        shards: nameList(settling),
        generation: table.generation,
      }),
    );
  }

  const listed = new Set(entries.map((e) => e.name));
  return {
    shards: observations,
    handoffs: byKey(handoffs),
    metrics: metricsOf(
      ctx.meta.name,
      true,
      true,
      next,
      included.filter((o) => listed.has(o.name)),
      timeouts.late.length,
      observed,
      excluded.length,
    ),
    nextStepAt: minDeadline([
      ...observations.map((o) => o.deadline),
      ...timeouts.deadlines,
      batch.deadline,
      now + ctx.heartbeatMs,
    ]),
  };
}

// ---------------------------------------------------------------- regressed status

/** The highest ack for this SlotMap instance in any observed Lease. */
export function highestAck(observations: readonly ShardObservation[]): number {
  let max = 0;
  for (const o of observations) if (o.rawAck > max) max = o.rawAck;
  return max;
}

/**
 * The status's generation is below what shards acknowledged: it was restored or edited. Its table
 * is never planned on. Writes a generation {@link RESET_JUMP} above every ack that assigns nothing;
 * the drain barrier then waits for every live shard to acknowledge it before assigning anew.
 */
export function resetRegressed(ctx: DecideContext, ack: number, refused?: number): Decision {
  const { table, out, ref } = ctx;
  const next = emptyTable(table, ack + RESET_JUMP);
  out.report(`regressed\u0000${table.generation}\u0000${ack}`, () => {
    const why =
      refused === undefined
        ? `status.assignmentGeneration ${table.generation} is below generation ${ack} acknowledged by shards (restored from a backup?)`
        : `a shard refuses the table at generation ${refused}: it applied another table at that generation (the status was restored from a backup and a generation reused?)`;
    out.event(
      ref,
      "Warning",
      REASONS.statusRegressed,
      `${why}: the restored table is not used; resetting to generation ${next.generation}, which assigns nothing until every live shard acknowledges it`,
    );
    out.log("error", "SlotMap status regressed: resetting through a drain barrier", {
      statusGeneration: table.generation,
      highestAck: ack,
      generation: next.generation,
    });
  });
  return writeReset(ctx, next, {
    statusGeneration: table.generation,
    highestAck: ack,
    resetGeneration: next.generation,
    refused,
  });
}

/**
 * The placement in spec.resources changed (an object may now be reconciled on another slot): the
 * next generation assigns nothing and carries the new fingerprint; the drain barrier assigns again
 * once every live shard acknowledged it, i.e. finished every reconcile under the old rules. A
 * shard owns nothing while the rules it applies differ from the status's, so none starts under
 * either placement while another may still run the other.
 */
export function resetForRules(ctx: DecideContext): Decision {
  const { table, out, ref, status } = ctx;
  const next = emptyTable(table, table.generation + 1);
  out.report(`rules\u0000${ctx.rules}`, () => {
    out.event(
      ref,
      "Normal",
      REASONS.rulesChanged,
      `the placement in spec.resources changed (fingerprint ${status.rulesFingerprint} → ${ctx.rules}): generation ${next.generation} assigns nothing; every shard drains, and slots are assigned under the new rules once every live shard acknowledged it`,
    );
    out.log("info", "SlotMap rules changed: resetting through a drain barrier", {
      from: status.rulesFingerprint ?? "",
      to: ctx.rules,
      generation: next.generation,
    });
  });
  return writeReset(ctx, next, undefined);
}

/** A table with the same shards that assigns nothing. */
function emptyTable(table: SlotTable, generation: number): SlotTable {
  return makeTable(generation, table.shards, new Uint16Array(SLOT_COUNT).fill(NO_OWNER), []);
}

/** Writes a reset table (assigns nothing, the spec's rules) under the drain barrier. */
function writeReset(ctx: DecideContext, next: SlotTable, regressed: ConditionFacts["regressed"]): Decision {
  const { out, ref, now, observations } = ctx;
  const { included, excluded } = limitShards(observations, ctx.table);
  const entries = statusEntries(included, next);
  const facts: ConditionFacts = {
    ...baseFacts(ctx, next, entries, included, excluded.length),
    barrier: drainBarrier(next, observations, ctx.meta.uid, ctx.guards, ctx.foreign),
    regressed,
    balanced: false,
    waits: [],
    late: [],
  };
  writeStatus(ctx, statusOf(ctx, { next, entries, facts, rulesFingerprint: ctx.rules }));
  leaseActions(out, observations, ctx.spec, ref, ctx.wall, ctx.orphanAfterMs);
  const listed = new Set(entries.map((e) => e.name));
  return {
    shards: observations,
    handoffs: {},
    metrics: {
      ...metricsOf(
        ctx.meta.name,
        true,
        false,
        next,
        included.filter((o) => listed.has(o.name)),
        0,
        [],
        excluded.length,
      ),
    },
    nextStepAt: minDeadline([...observations.map((o) => o.deadline), now + ctx.heartbeatMs]),
  };
}
