/**
 * Per-shard projections (docs/design-decisions.md "Per-shard projections"): which `SlotMapShard`
 * objects to write or delete after a step. Pure, like the step.
 *
 * The rules that keep the Trust table's promises:
 * - Only a status the step accepted is projected (it passed the regression checks), and only in a
 *   step that writes no status: a step that writes one projects it in the next step, once the
 *   write has succeeded. A projection therefore never shows a table that was not written, and the
 *   fencing order holds (a new owner's projection is written after the status that grants, which
 *   is written after the source's ack, which follows the source's releasing projection).
 * - Every live Lease gets one, in its own namespace (a drain barrier waits for Leases outside
 *   `spec.leaseNamespace` too), and every shard the table lists (its process may still run).
 * - A projection is rewritten only when what it tells the shard changed ({@link sameProjection}),
 *   and at every drain barrier (whose generation every live shard must acknowledge).
 */

import { ackedGeneration, refusedGeneration } from "../../api/lease.js";
import {
  type ProjectableStatus,
  type ProjectionSpec,
  parseProjectionSpec,
  projectionName,
  projector,
  sameProjection,
} from "../../api/projection.js";
import type { ParseResult } from "../../api/v1alpha1.js";
import { leaseAnnotations } from "./leases.js";
import { memoByObject } from "./memo.js";

/** A SlotMapShard as the I/O layer observed it (labelled for the SlotMap). */
export interface ObservedProjection {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  /** Its raw `spec` (validated here: a malformed one is rewritten). */
  readonly spec: unknown;
}

/** A projection to create (no resourceVersion) or replace (at that resourceVersion). */
export interface WriteProjectionAction {
  readonly type: "writeProjection";
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: string | undefined;
  readonly spec: ProjectionSpec;
}

/** A projection no shard needs any more (its Lease is gone and the table does not list it). */
export interface DeleteProjectionAction {
  readonly type: "deleteProjection";
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
}

export type ProjectionAction = WriteProjectionAction | DeleteProjectionAction;

/** What {@link projectionActions} needs. */
export interface ProjectionInput {
  readonly slotMap: { readonly name: string; readonly uid: string };
  /** The status the step accepted (`StepResult.projectable`); undefined: project nothing. */
  readonly status: ProjectableStatus | undefined;
  /** Whether the step's actions write the status (then its projections come in the next step). */
  readonly writesStatus: boolean;
  /** `spec.leaseNamespace`: where shards the table lists get theirs. */
  readonly leaseNamespace: string;
  /**
   * Every Lease labelled for the SlotMap, in any namespace, with its annotations: the generation it
   * acknowledges and the one it refuses for this SlotMap instance are read from them.
   */
  readonly leases: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly annotations?: Readonly<Record<string, string>> | undefined;
  }>;
  readonly observed: readonly ObservedProjection[];
}

/** The writes and deletes that make the projections match the accepted status. */
export function projectionActions(input: ProjectionInput): ProjectionAction[] {
  const { status } = input;
  if (status === undefined || input.writesStatus) return [];
  const shards = wantedShards(input, status);
  const observed = new Map(input.observed.map((p) => [`${p.namespace}/${p.name}`, p]));
  const out: ProjectionAction[] = [];
  const projectOf = projector(status, input.slotMap);
  const awaited = awaitedAcks(status);
  for (const { namespace, shard, ack, refused } of shards.values()) {
    const name = projectionName(input.slotMap.name, shard);
    const want = projectOf(shard);
    const have = observed.get(`${namespace}/${name}`);
    const shardState = { ack, refused, awaited: awaited.get(shard) ?? 0 };
    if (have !== undefined && upToDate(have.spec, want, shardState)) continue;
    out.push({
      type: "writeProjection",
      namespace,
      name,
      resourceVersion: have?.resourceVersion,
      spec: want,
    });
  }
  for (const [key, p] of observed) {
    if (shards.has(key)) continue;
    out.push({
      type: "deleteProjection",
      namespace: p.namespace,
      name: p.name,
      uid: p.uid,
      resourceVersion: p.resourceVersion,
    });
  }
  return out;
}

/**
 * Whether an observed projection already tells its shard what `want` does. A drain barrier waits
 * for every live shard's ack of its own generation, so under a barrier the generation must match
 * too: two barriers in a row have the same content, and a shard can only ack the generation its
 * projection shows (the simulator found a barrier that never passed without this).
 */
function upToDate(
  observed: unknown,
  want: ProjectionSpec,
  shard: { readonly ack: number; readonly refused: number; readonly awaited: number },
): boolean {
  const { ack, refused, awaited } = shard;
  const parsed = parsedSpec(observed);
  if (!parsed.ok || !sameProjection(parsed.value, want)) return false;
  // A migration from the shard waits for its ack of the migration's generation: the projection
  // must show at least that one, even when the shard's row came back to what it was (gains and
  // losses that cancel out across generations never projected; found by the simulator).
  if (parsed.value.assignmentGeneration < awaited) return false;
  // Below what the shard acknowledged: set back (a backup restored), and the shard refuses it.
  // The content may be right (the same table came back), so only the generation tells.
  if (parsed.value.assignmentGeneration < ack) return false;
  // The shard refuses this generation (it applied another table at it, then saw a backup): only a
  // higher one brings it back. The step resets the table when the status has none higher; when it
  // has, the same content at the status's generation does (P8: the status moved on for other
  // shards, and this one owned nothing for ever).
  if (refused > 0 && refused >= parsed.value.assignmentGeneration && want.assignmentGeneration > refused)
    return false;
  return !want.drainBarrier || parsed.value.assignmentGeneration === want.assignmentGeneration;
}

/** Per source shard, the highest generation a migration from it waits for its ack of. */
function awaitedAcks(status: ProjectableStatus): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of status.migrations) out.set(m.from, Math.max(m.generation, out.get(m.from) ?? 0));
  return out;
}

/**
 * Parses of observed specs, by object: a cached projection object is immutable until replaced, and
 * a step re-reads all of them (1000 zod parses a step at 1000 shards otherwise).
 */
const parsedObject = memoByObject(parseProjectionSpec);

function parsedSpec(spec: unknown): ParseResult<ProjectionSpec> {
  return typeof spec === "object" && spec !== null ? parsedObject(spec) : parseProjectionSpec(spec);
}

interface WantedShard {
  readonly namespace: string;
  readonly shard: string;
  readonly ack: number;
  readonly refused: number;
}

/** `<namespace>/<projection name>` → the shard each projection is for. */
function wantedShards(input: ProjectionInput, status: ProjectableStatus): Map<string, WantedShard> {
  const wanted = new Map<string, WantedShard>();
  const add = (namespace: string, shard: string, ack: number, refused: number): void => {
    const key = `${namespace}/${projectionName(input.slotMap.name, shard)}`;
    const was = wanted.get(key);
    wanted.set(key, {
      namespace,
      shard,
      ack: Math.max(ack, was?.ack ?? 0),
      refused: Math.max(refused, was?.refused ?? 0),
    });
  };
  const uid = input.slotMap.uid;
  for (const l of input.leases) {
    const parsed = leaseAnnotations(l.annotations);
    add(l.namespace, l.name, ackedGeneration(parsed, uid), refusedGeneration(parsed, uid));
  }
  for (const e of status.shards) add(input.leaseNamespace, e.name, 0, 0);
  return wanted;
}
