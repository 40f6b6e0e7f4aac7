/**
 * The invariants the simulator checks after every step (see docs/verification.md):
 *
 * - safety: at most one process has a reconcile ACTIVE on any slot (between `reconcileStarted` and
 *   `reconcileFinished`), and on any object (a reconcile may work on objects that follow its root,
 *   and a sharding-rule change moves such objects between slots);
 * - generation: assignment generations written per SlotMap uid never go back, move by at most one
 *   per write, and an unchanged generation means an unchanged assignment; a shard never applies an
 *   older generation of the same uid;
 * - ack: an ack written into a Lease is never regressed while the Lease is held by the same
 *   process, taken over or released (only a new holder's acquire may clear it);
 * - dead: a status never grants slots to a shard that is not Ready, nor to an incarnation whose
 *   takeover the writing coordinator had observed; Dead shards own nothing and receive nothing;
 * - status: every status written is valid (schema and table consistency);
 * - fence: a reconcile's fencing token is greater than that of every reconcile another process
 *   started earlier on the same slot (so the API server would refuse the earlier one's late
 *   writes), and a process's own tokens never go down;
 * - cache: a reconcile starts with every controlled object of its root cached (the runtime holds a
 *   gained root until its controlled objects are listed; checked where reconciles start, in
 *   simulation.ts);
 * - projection: every SlotMapShard projection the coordinator writes shows a status that was
 *   already written (for that SlotMap instance): never a table the status does not have yet;
 * - liveness: checked by the settle phase (simulation.ts).
 */
import { ANNOTATION_OBSERVED_GENERATION, ANNOTATION_SLOTMAP_UID } from "../../src/api/lease.js";
import { parseSlotMapStatus, type SlotMapStatus } from "../../src/api/v1alpha1.js";
import { TAKEOVER_HOLDER } from "../../src/coordinator/core/types.js";
import { formatSlotRanges } from "../../src/slots/ranges.js";
import { sameAssignment, tableFromStatus, tableInvariantErrors } from "../../src/slots/table.js";
import { NO_OWNER, SLOT_COUNT, type SlotTable } from "../../src/slots/types.js";

/** Names of the checked invariants (the `invariant` of a {@link Violation}). */
export type InvariantName =
  | "safety"
  | "liveness"
  | "generation"
  | "ack"
  | "dead"
  | "status"
  | "fence"
  | "cache"
  | "projection"
  | "core";

/** An invariant failed: the simulation stops and fast-check shrinks the command list. */
export class Violation extends Error {
  readonly invariant: InvariantName;

  constructor(invariant: InvariantName, message: string) {
    super(`[${invariant}] ${message}`);
    this.name = "Violation";
    this.invariant = invariant;
  }
}

/**
 * Tracks ACTIVE reconciles per slot and process. A process may run several keys of one slot at
 * once; two processes (whatever their shard) never may.
 */
export class SafetyTracker {
  readonly #active = new Map<number, Map<number, number>>();

  /** @param describe - names a process in messages (shard, identity). */
  constructor(private readonly describe: (procId: number) => string) {}

  start(procId: number, slot: number, now: number): void {
    let m = this.#active.get(slot);
    if (m === undefined) {
      m = new Map();
      this.#active.set(slot, m);
    }
    for (const [other, n] of m) {
      if (other !== procId && n > 0) {
        throw new Violation(
          "safety",
          `slot ${slot} is ACTIVE on two processes at T=${now.toFixed(3)}ms: ${this.describe(other)} and ${this.describe(procId)}`,
        );
      }
    }
    m.set(procId, (m.get(procId) ?? 0) + 1);
  }

  finish(procId: number, slot: number): void {
    const m = this.#active.get(slot);
    const n = m?.get(procId) ?? 0;
    if (m === undefined || n <= 0)
      throw new Violation("core", `simulator: finish without start (slot ${slot})`);
    if (n === 1) {
      m.delete(procId);
      if (m.size === 0) this.#active.delete(slot);
    } else m.set(procId, n - 1);
  }

  /** Number of slots with an ACTIVE reconcile (for statistics). */
  activeSlots(): number {
    return this.#active.size;
  }
}

/**
 * Tracks ACTIVE reconciles per object: a reconcile works on its root and, under some rules, on
 * the objects that follow it (property-tests/sim/rules.ts). Two processes never may work on one
 * object at once, whatever slot each of them reached it through (a sharding-rule change moves
 * objects between slots).
 */
export class ObjectTracker {
  readonly #active = new Map<number, Map<number, number>>();

  constructor(private readonly describe: (procId: number) => string) {}

  start(procId: number, objects: readonly number[], now: number): void {
    for (const o of objects) {
      for (const [other, n] of this.#active.get(o) ?? []) {
        if (other !== procId && n > 0) {
          throw new Violation(
            "safety",
            `object k${o} is ACTIVE on two processes at T=${now.toFixed(3)}ms: ${this.describe(other)} and ${this.describe(procId)}`,
          );
        }
      }
    }
    for (const o of objects) {
      let m = this.#active.get(o);
      if (m === undefined) {
        m = new Map();
        this.#active.set(o, m);
      }
      m.set(procId, (m.get(procId) ?? 0) + 1);
    }
  }

  finish(procId: number, objects: readonly number[]): void {
    for (const o of objects) {
      const m = this.#active.get(o);
      const n = m?.get(procId) ?? 0;
      if (m === undefined || n <= 0)
        throw new Violation("core", `simulator: finish without start (object k${o})`);
      if (n === 1) {
        m.delete(procId);
        if (m.size === 0) this.#active.delete(o);
      } else m.set(procId, n - 1);
    }
  }
}

/**
 * The newest fencing token started per slot, with its process: what the fencing admission policy
 * would have stored on the slot's objects (docs/fencing.md). Tokens compare as plain strings, as
 * the policy compares them.
 */
export class FenceTracker {
  readonly #last = new Map<number, { procId: number; token: string }>();

  constructor(private readonly describe: (procId: number) => string) {}

  start(procId: number, slot: number, token: string, now: number): void {
    const last = this.#last.get(slot);
    if (last !== undefined) {
      const ok = last.procId === procId ? token >= last.token : token > last.token;
      if (!ok) {
        throw new Violation(
          "fence",
          `slot ${slot} at T=${now.toFixed(3)}ms: ${this.describe(procId)} starts with fencing token ${token}, not above ${last.token} of ${this.describe(last.procId)}'s earlier reconcile`,
        );
      }
    }
    if (last === undefined || token > last.token) this.#last.set(slot, { procId, token });
  }
}

/** The ack a Lease carries: (SlotMap uid, generation), or undefined without a complete one. */
export function ackOf(
  annotations: Readonly<Record<string, string>> | undefined,
): { uid: string; generation: number } | undefined {
  const g = annotations?.[ANNOTATION_OBSERVED_GENERATION];
  const uid = annotations?.[ANNOTATION_SLOTMAP_UID];
  if (g === undefined || uid === undefined) return undefined;
  return { uid, generation: Number(g) };
}

/** The Lease fields the ack check reads. */
export interface LeaseLike {
  readonly metadata: { readonly uid: string; readonly annotations?: Readonly<Record<string, string>> };
  readonly spec?: { readonly holderIdentity?: string | null | undefined } | null | undefined;
}

function holderOf(l: LeaseLike): string {
  return l.spec?.holderIdentity ?? "";
}

/**
 * "No ack lost": from one version of a Lease to the next, the ack for a SlotMap uid does not go
 * down or vanish, unless the new version is a new holder's acquire (a new process's claim about
 * itself: it clears the previous process's ack).
 */
export function checkLeaseTransition(prev: LeaseLike | null, next: LeaseLike | null, name: string): void {
  if (prev === null || next === null || prev.metadata.uid !== next.metadata.uid) return;
  const h = holderOf(next);
  const newAcquire = h !== "" && h !== TAKEOVER_HOLDER && h !== holderOf(prev);
  if (newAcquire) return;
  const a = ackOf(prev.metadata.annotations);
  if (a === undefined) return;
  const b = ackOf(next.metadata.annotations);
  if (b === undefined || (b.uid === a.uid && b.generation < a.generation)) {
    throw new Violation(
      "ack",
      `Lease ${name}: ack ${a.uid}@${a.generation} regressed to ${b === undefined ? "none" : `${b.uid}@${b.generation}`} (holder ${JSON.stringify(holderOf(prev))} -> ${JSON.stringify(h)})`,
    );
  }
}

/** A status that passed the checks, with its table. */
export interface CheckedStatus {
  readonly status: SlotMapStatus;
  readonly table: SlotTable;
}

const checkedCache = new WeakMap<object, CheckedStatus>();

/** Parses and validates a written status; throws a `status` violation when it is invalid. */
export function checkedStatus(raw: unknown): CheckedStatus {
  if (typeof raw === "object" && raw !== null) {
    const hit = checkedCache.get(raw);
    if (hit !== undefined) return hit;
  }
  const parsed = parseSlotMapStatus(raw);
  if (!parsed.ok) throw new Violation("status", `invalid status written: ${JSON.stringify(parsed.errors)}`);
  let table: SlotTable;
  try {
    table = tableFromStatus(parsed.value);
  } catch (e) {
    throw new Violation("status", `inconsistent status written: ${(e as Error).message}`);
  }
  const errors = tableInvariantErrors(table);
  if (errors.length > 0) throw new Violation("status", `inconsistent table written: ${errors.join("; ")}`);
  const out = { status: parsed.value, table };
  if (typeof raw === "object" && raw !== null) checkedCache.set(raw, out);
  return out;
}

function ownerName(t: SlotTable, slot: number): string | undefined {
  const o = t.owner[slot]!;
  return o === NO_OWNER ? undefined : t.shards[o];
}

function migrationKey(m: SlotTable["migrations"][number]): string {
  return `${m.from}>${m.to}@${m.generation}:${formatSlotRanges(m.slots)}`;
}

/** The table assigns nothing: no owner, no migration (a new SlotMap, a reset). */
export function assignsNothing(t: SlotTable): boolean {
  return t.migrations.length === 0 && t.owner.every((o) => o === NO_OWNER);
}

/** Shards that own slots in `next` that they did not own in `prev`. */
export function gainingOwners(prev: SlotTable | undefined, next: SlotTable): Set<string> {
  const gained = new Set<string>();
  for (let s = 0; s < SLOT_COUNT; s++) {
    const n = ownerName(next, s);
    if (n !== undefined && (prev === undefined || ownerName(prev, s) !== n)) gained.add(n);
  }
  return gained;
}

/** Targets of migrations in `next` that are not in `prev` (new or retargeted). */
export function newMigrationTargets(prev: SlotTable | undefined, next: SlotTable): Set<string> {
  const before = new Set((prev?.migrations ?? []).map(migrationKey));
  const out = new Set<string>();
  for (const m of next.migrations) if (!before.has(migrationKey(m))) out.add(m.to);
  return out;
}

/** A status entry's state: the status omits it when Ready (undefined: not listed). */
export function stateOf(e: { readonly state?: string | undefined } | undefined): string | undefined {
  return e === undefined ? undefined : (e.state ?? "Ready");
}

/** Shards and migrations of a status, for messages. */
export function summary(s: SlotMapStatus | undefined): string {
  if (s === undefined) return "none";
  const shards = s.shards.map((e) => `${e.name}:${stateOf(e)}:${e.holderIdentity ?? "-"}:[${e.slots}]`);
  const migrations = s.migrations.map((m) => `${m.from}->${m.to}@${m.generation}:[${m.slots}]`);
  return `g${s.assignmentGeneration} {${shards.join(" ")}} migrations {${migrations.join(" ")}} unassigned [${s.unassignedSlots}]`;
}

/** The highest acks for the SlotMap's uid a coordinator saw when it decided a write. */
export interface ObservedAcks {
  /** In any observed Lease: a reset must jump above it. */
  readonly all: number;
  /** In Leases the coordinator had seen renewing: a status below it must not be planned on. */
  readonly confirmed: number;
}

/** A takeover applied by the API server: Lease `name`, taken from `holder`, at `rv`. */
export interface TakeoverRecord {
  readonly holder: string;
  readonly rv: number;
  /** The Lease instance taken over (a Lease re-created by a person may reuse a holder string). */
  readonly leaseUid: string;
}

/** Checks on every status write the API server applies (generation, dead, status). */
export class StatusWriteChecks {
  /** New or retargeted migrations whose `to` is not Ready (a planner remnant; statistics). */
  migrationsToNotReady = 0;
  /** Highest assignment generation written, per SlotMap uid (since the last person's edit). */
  readonly #maxGeneration = new Map<string, number>();

  /**
   * A person wrote a status (an edit, a restore): the threat, not a coordinator's violation. The
   * coordinator's writes are judged against it from now on (a generation set back is the new floor:
   * whether the coordinator then resets or plans on it is what the other checks and safety judge).
   */
  personWrote(uid: string, status: unknown): void {
    const g = (status as { assignmentGeneration?: number } | undefined)?.assignmentGeneration ?? 0;
    this.#maxGeneration.set(uid, g);
  }

  /**
   * @param prev - the status being replaced (same uid; undefined for a new SlotMap)
   * @param observedLeaseRvs - resourceVersion of each Lease in the writer's observation
   * @param takeovers - takeovers applied so far, by Lease name
   * @param observedAck - the highest ack for `uid` in the writer's observation of the Leases (of
   *   all of them, and of those it had seen renewing)
   */
  check(
    uid: string,
    prevRaw: unknown,
    nextRaw: unknown,
    observedLeaseRvs: ReadonlyMap<string, number>,
    takeovers: ReadonlyMap<string, readonly TakeoverRecord[]>,
    observedAck: ObservedAcks = { all: 0, confirmed: 0 },
  ): CheckedStatus {
    const next = checkedStatus(nextRaw);
    const prev = prevRaw === undefined ? undefined : checkedStatus(prevRaw);
    const g = next.table.generation;
    const max = this.#maxGeneration.get(uid) ?? 0;
    // A reset (a status below the shards' acks): a generation above every ack that assigns nothing.
    const reset = g > (prev?.table.generation ?? 0) + 1 && assignsNothing(next.table) && g > observedAck.all;
    if (g < max) {
      throw new Violation("generation", `SlotMap ${uid}: generation ${g} written after ${max}`);
    }
    if (prev !== undefined) {
      const pg = prev.table.generation;
      if (g !== pg && g !== pg + 1 && !reset) {
        throw new Violation(
          "generation",
          `SlotMap ${uid}: generation jumps from ${pg} to ${g} in one write (the writer saw acks up to ${observedAck.all}); after: ${summary(next.status)}`,
        );
      }
      if (observedAck.confirmed > pg && !reset && !sameAssignment(prev.table, next.table)) {
        throw new Violation(
          "generation",
          `SlotMap ${uid}: generation ${g} planned on a status at ${pg} while the writer saw generation ${observedAck.confirmed} acknowledged by a Lease seen renewing (a regressed status must be reset, not planned on)`,
        );
      }
      if (g === pg) {
        const holders = (s: SlotMapStatus): string =>
          JSON.stringify(
            s.shards.filter((e) => e.slots !== "").map((e) => [e.name, e.holderIdentity ?? null]),
          );
        if (!sameAssignment(prev.table, next.table) || holders(prev.status) !== holders(next.status)) {
          throw new Violation(
            "generation",
            `SlotMap ${uid}: assignment changed without a new generation ${g}; before: ${summary(prev.status)}; after: ${summary(next.status)}`,
          );
        }
      }
    } else if (g > 1 && !reset) {
      throw new Violation("generation", `SlotMap ${uid}: first status written has generation ${g}`);
    }
    this.#maxGeneration.set(uid, Math.max(max, g));

    const entries = new Map(next.status.shards.map((e) => [e.name, e]));
    for (const e of next.status.shards) {
      if (stateOf(e) === "Dead" && e.slots !== "") {
        throw new Violation("dead", `generation ${g}: Dead shard ${e.name} owns ${e.slots}`);
      }
    }
    // Migrations to a shard that is not Ready are not grants (nobody owns their slots, and their
    // commit frees them); the planner may leave a remnant pointing at a shard that died when no
    // Ready shard but the source needs it. Counted, not a violation (docs/verification.md).
    for (const name of newMigrationTargets(prev?.table, next.table)) {
      if (stateOf(entries.get(name)) !== "Ready") this.migrationsToNotReady += 1;
    }
    for (const name of gainingOwners(prev?.table, next.table)) {
      const e = entries.get(name);
      if (e === undefined || stateOf(e) !== "Ready") {
        throw new Violation(
          "dead",
          `generation ${g}: shard ${name} (${stateOf(e) ?? "unlisted"}) receives slots; before: ${summary(prev?.status)}; after: ${summary(next.status)}`,
        );
      }
      const seen = observedLeaseRvs.get(name);
      for (const t of takeovers.get(name) ?? []) {
        if (t.holder === e.holderIdentity && seen !== undefined && seen >= t.rv) {
          throw new Violation(
            "dead",
            `generation ${g}: slots granted to ${name}/${t.holder}, whose Lease the writer had seen taken over (rv ${t.rv})`,
          );
        }
      }
    }
    return next;
  }
}
