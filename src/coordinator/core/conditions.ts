/**
 * The Ready, Balanced and Progressing conditions of a SlotMap, from the facts of one decision.
 * Ready and Balanced never stay True while slots sit with a shard nobody renews, while the table
 * is held (a regressed status) or while a drain barrier assigns nothing.
 */
import { CONDITION_BALANCED, CONDITION_PROGRESSING, CONDITION_READY } from "../../api/v1alpha1.js";
import { SLOT_COUNT } from "../../slots/types.js";
import type { ConditionWant } from "./status.js";
import { nameList } from "./status.js";

/** Condition and Event reasons written by the coordinator. */
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
  drainBarrier: "DrainBarrier",
  statusRegressed: "StatusRegressed",
  rulesChanged: "RulesChanged",
  leaseRefused: "LeaseDurationRefused",
  tooManyShards: "TooManyShards",
  foreignLease: "LeaseOutsideNamespace",
  allSlotsCovered: "AllSlotsCovered",
  noReadyShards: "NoReadyShards",
  slotsUnassigned: "SlotsUnassigned",
  balanced: "Balanced",
  migrating: "Migrating",
  shardsNotReady: "ShardsNotReady",
  unbalanced: "Unbalanced",
} as const;

/** What the conditions are computed from. */
export interface ConditionFacts {
  readonly slotMap: string;
  readonly leaseNamespace: string;
  readonly uid: string;
  readonly readyCount: number;
  readonly listedCount: number;
  /** A drain barrier: the generation every live shard must ack, and who has not yet. */
  readonly barrier:
    | { readonly generation: number; readonly waiting: readonly string[]; readonly previousInstance: boolean }
    | undefined;
  /** The status was found regressed in this step (reset written). */
  readonly regressed:
    | {
        readonly statusGeneration: number;
        readonly highestAck: number;
        readonly resetGeneration: number;
        /** Set when a shard's refusal, not an ack above the status, found it. */
        readonly refused?: number | undefined;
      }
    | undefined;
  readonly unassigned: number;
  readonly balanced: boolean;
  readonly migrationPairs: readonly string[];
  readonly migratingSlots: number;
  readonly notReadyOwners: readonly string[];
  /** Shards left out because there are more than the supported number. */
  readonly excluded: number;
  readonly maxShards: number;
  /** Pending handoffs (sorted), and those past the timeout. */
  readonly waits: ReadonlyArray<{ readonly from: string; readonly generation: number }>;
  readonly late: ReadonlyArray<{ readonly from: string; readonly generation: number }>;
  readonly handoffTimeoutSeconds: number;
}

function ready(f: ConditionFacts): ConditionWant {
  const want = (status: "True" | "False", reason: string, message: string): ConditionWant => ({
    type: CONDITION_READY,
    status,
    reason,
    message,
  });
  if (f.regressed !== undefined) {
    const r = f.regressed;
    const why =
      r.refused === undefined
        ? `status.assignmentGeneration ${r.statusGeneration} is below generation ${r.highestAck} that shards acknowledged (a status restored from a backup?)`
        : `a shard refuses the table at generation ${r.refused}: it had applied another table at that generation (a status restored from a backup?)`;
    return want(
      "False",
      REASONS.statusRegressed,
      `${why}: the restored table is not used; every shard drains and slots are assigned anew once every live shard acknowledged reset generation ${r.resetGeneration}`,
    );
  }
  if (f.readyCount === 0) {
    return want(
      "False",
      REASONS.noReadyShards,
      `no shard Lease labelled slotmap.dev/slotmap=${f.slotMap} in namespace ${f.leaseNamespace} is Ready`,
    );
  }
  if (f.barrier !== undefined && f.barrier.waiting.length > 0) {
    const b = f.barrier;
    return b.previousInstance
      ? want(
          "False",
          REASONS.previousInstance,
          `assigning no slot until every live shard acknowledges this SlotMap instance (uid ${f.uid}): some Leases still acknowledge a previous instance`,
        )
      : // Independent of who has acked so far: an ack must not cause a status write.
        want(
          "False",
          REASONS.drainBarrier,
          `assigning no slot until every live shard acknowledges generation ${b.generation} (it has drained): kubectl slotmap get shows the acks`,
        );
  }
  if (f.unassigned > 0) {
    return want(
      "False",
      REASONS.slotsUnassigned,
      `${f.unassigned} slots have no owner: no Ready shard can take them`,
    );
  }
  if (f.notReadyOwners.length > 0) {
    return want(
      "False",
      REASONS.shardsNotReady,
      `slots are owned by shards nobody renews now: ${nameList(f.notReadyOwners)}`,
    );
  }
  return want(
    "True",
    REASONS.allSlotsCovered,
    `every slot has an owner or a migration; ${f.readyCount} of ${f.listedCount} shards Ready`,
  );
}

function balanced(f: ConditionFacts): ConditionWant {
  const want = (status: "True" | "False", reason: string, message: string): ConditionWant => ({
    type: CONDITION_BALANCED,
    status,
    reason,
    message,
  });
  if (f.excluded > 0) {
    return want(
      "False",
      REASONS.tooManyShards,
      `${f.listedCount + f.excluded} shards, at most ${f.maxShards} are supported: ${f.excluded} get no slots`,
    );
  }
  if (f.balanced && f.regressed === undefined) {
    return want(
      "True",
      REASONS.balanced,
      `each of the ${f.readyCount} Ready shards holds its weighted share of the ${SLOT_COUNT} slots`,
    );
  }
  if (f.migrationPairs.length > 0) {
    return want(
      "False",
      REASONS.migrating,
      `${f.migratingSlots} slots migrating (${nameList([...new Set(f.migrationPairs)])})`,
    );
  }
  if (f.unassigned > 0) return want("False", REASONS.slotsUnassigned, `${f.unassigned} slots have no owner`);
  if (f.notReadyOwners.length > 0) {
    return want(
      "False",
      REASONS.shardsNotReady,
      `slots are owned by shards that are not Ready: ${nameList(f.notReadyOwners)}`,
    );
  }
  return want("False", REASONS.unbalanced, "slot counts differ from the weighted targets");
}

const describe = (w: { from: string; generation: number }): string =>
  `${w.from} (generation ${w.generation})`;

function progressing(f: ConditionFacts): ConditionWant {
  if (f.waits.length === 0) {
    return {
      type: CONDITION_PROGRESSING,
      status: "False",
      reason: REASONS.noMigrations,
      message: "no handoff in progress",
    };
  }
  if (f.late.length > 0) {
    return {
      type: CONDITION_PROGRESSING,
      status: "True",
      reason: REASONS.handoffTimeout,
      message: `not acknowledged within ${f.handoffTimeoutSeconds}s: ${nameList(f.late.map(describe))}; their migrating slots wait until the source stops renewing (it exits when a reconcile does not return) and its Lease is taken over`,
    };
  }
  return {
    type: CONDITION_PROGRESSING,
    status: "True",
    reason: REASONS.handoffInProgress,
    message:
      f.waits.length === 1
        ? `waiting for ${f.waits[0]!.from} to acknowledge generation ${f.waits[0]!.generation}`
        : `waiting for acknowledgements: ${nameList(f.waits.map(describe))}`,
  };
}

/** The wanted Ready, Balanced and Progressing conditions. */
export function conditionWants(f: ConditionFacts): ConditionWant[] {
  return [ready(f), balanced(f), progressing(f)];
}
