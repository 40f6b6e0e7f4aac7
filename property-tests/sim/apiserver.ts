/**
 * A model of the Kubernetes API server for the simulator: one SlotMap (with status subresource),
 * the shard Leases and the shards' `SlotMapShard` projections (src/api/projection.ts), a global
 * resourceVersion (etcd revision), optimistic concurrency (409 on a stale resourceVersion,
 * AlreadyExists, 404, delete preconditions), and the full version history of every object, from
 * which watch streams are served (simulation.ts decides what each client sees and when).
 *
 * Objects are deeply frozen: clients receive them by reference, so a core that mutated its input
 * would throw, and the coordinator core may memoise work on a status object's identity.
 *
 * Every applied write goes through the invariant checks (invariants.ts).
 */
import { freeze } from "immer";
import { type ProjectionSpec, projectionName, projectStatus } from "../../src/api/projection.js";
import type { SlotMapStatus } from "../../src/api/v1alpha1.js";
import type { LeaseObject, LeaseWriteResult, WriteLeaseEffect } from "../../src/client/core/types.js";
import type { ProjectionAction } from "../../src/coordinator/core/projections.js";
import { type CoordinatorAction, TAKEOVER_HOLDER } from "../../src/coordinator/core/types.js";
import {
  ackOf,
  checkLeaseTransition,
  type ObservedAcks,
  StatusWriteChecks,
  type TakeoverRecord,
  Violation,
} from "./invariants.js";

export type { ObservedAcks };

/** Namespace of the shard Leases (spec.leaseNamespace). */
export const NS = "sim-system";
/** Name of the simulated SlotMap. */
export const SLOTMAP_NAME = "sim";
/**
 * Watch key of the SlotMap; Leases are watched under their name prefixed by {@link LEASE_PREFIX},
 * projections (SlotMapShard objects) under their object name prefixed by {@link PROJ_PREFIX}.
 */
export const SM_KEY = "sm";
export const LEASE_PREFIX = "lease/";
export const PROJ_PREFIX = "proj/";

/** Watch key of shard `shard`'s projection. */
export function projKey(shard: string): string {
  return PROJ_PREFIX + projectionName(SLOTMAP_NAME, shard);
}

/** A SlotMapShard projection as stored (frozen); `spec` is what its writer sent (unvalidated). */
export interface SimProjection {
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly resourceVersion: string;
  };
  readonly spec: unknown;
}

/** A shard Lease as stored (frozen). */
export interface SimLease {
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly resourceVersion: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly annotations: Readonly<Record<string, string>>;
  };
  readonly spec: {
    readonly holderIdentity?: string | null;
    readonly leaseDurationSeconds?: number | null;
    readonly acquireTime?: string | null;
    readonly renewTime?: string | null;
    readonly leaseTransitions?: number | null;
  };
}

/** The SlotMap spec the simulator writes. */
export interface SimSpec {
  readonly leaseNamespace: string;
  readonly resources: ReadonlyArray<{
    readonly resource: string;
    readonly controlledResources?: ReadonlyArray<{ readonly resource: string }>;
  }>;
  readonly namespaceSelector?: { readonly matchLabels: Readonly<Record<string, string>> };
  readonly policy: {
    readonly maxMigratingSlots: number;
    readonly handoffTimeoutSeconds: number;
    readonly maxLeaseDurationSeconds?: number;
  };
  readonly weights?: Readonly<Record<string, number>>;
}

/** The SlotMap as stored (frozen). */
export interface SimSlotMap {
  readonly metadata: {
    readonly name: string;
    readonly uid: string;
    readonly generation: number;
    readonly resourceVersion: string;
  };
  readonly spec: SimSpec;
  readonly status?: SlotMapStatus;
}

/** One version of an object in its history; `obj` null: deleted (uid: the deleted instance). */
export interface Version<T> {
  readonly rv: number;
  readonly uid: string;
  readonly obj: T | null;
}

/** Any stored object. */
export type SimObject = SimSlotMap | SimLease | SimProjection;

/** Outcome of a coordinator write as its I/O layer sees it. */
export type WriteOutcome = "ok" | "conflict";

/** The version with resourceVersion `rv` of a history (sorted by rv), by binary search. */
function versionAt<T>(h: readonly Version<T>[], rv: number): Version<T> | undefined {
  let lo = 0;
  let hi = h.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const x = h[mid]!;
    if (x.rv === rv) return x;
    if (x.rv < rv) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** Deep freeze (immer's): a core that mutated what the API server sent would throw. */
const deepFreeze = <T>(v: T): T => freeze(v, true);

/** Lease versions written by people or tools (not by a shard process or the coordinator). */
const byPerson = new WeakSet<object>();

/** Each written status's projections, by shard (JSON), computed once. */
const projectedOf = new WeakMap<object, Map<string, string>>();

function projectionJson(sm: SimSlotMap, status: SlotMapStatus, shard: string): string {
  let m = projectedOf.get(status);
  if (m === undefined) {
    m = new Map();
    projectedOf.set(status, m);
  }
  let j = m.get(shard);
  if (j === undefined) {
    j = JSON.stringify(projectStatus(status, { name: sm.metadata.name, uid: sm.metadata.uid }, shard));
    m.set(shard, j);
  }
  return j;
}

export class ApiServer {
  #rv = 1000;
  #uidSeq = 0;
  readonly #slotMap: Version<SimSlotMap>[] = [];
  readonly #leases = new Map<string, Version<SimLease>[]>();
  /** Projection histories, by object name (all in {@link NS}). */
  readonly #projections = new Map<string, Version<SimProjection>[]>();
  /** Acks people wrote into Leases (`<name>\0<uid>@<generation>`). */
  readonly #forged = new Set<string>();
  /** Takeovers applied, by Lease name (for the "dead" invariant). */
  readonly takeovers = new Map<string, TakeoverRecord[]>();
  readonly #statusChecks = new StatusWriteChecks();
  /** Status writes applied (statistics). */
  statusWrites = 0;
  /** Writes rejected by a precondition (statistics). */
  conflicts = 0;
  /** Writes by people and tools (statistics). */
  personWrites = 0;
  /** Projection writes and deletes applied for the coordinator (statistics). */
  projectionWrites = 0;
  /** Check the projection invariant on every coordinator projection write (see #checkProjection). */
  checkProjections = true;
  /** Spec edits the API server rejected (a changed leaseNamespace; statistics). */
  rejectedSpecEdits = 0;

  /** New or retargeted migrations whose target was not Ready (see StatusWriteChecks). */
  get migrationsToNotReady(): number {
    return this.#statusChecks.migrationsToNotReady;
  }

  #nextRv(): number {
    this.#rv += 1;
    return this.#rv;
  }

  /**
   * Version history of a watch key ({@link SM_KEY}, `lease/<name>` or `proj/<name>`); empty if
   * never created.
   */
  versions(key: string): ReadonlyArray<Version<SimObject>> {
    if (key === SM_KEY) return this.#slotMap;
    if (key.startsWith(PROJ_PREFIX)) return this.#projections.get(key.slice(PROJ_PREFIX.length)) ?? [];
    return this.#leases.get(key.slice(LEASE_PREFIX.length)) ?? [];
  }

  /** Watch keys of every Lease that ever existed. */
  leaseKeys(): string[] {
    return [...this.#leases.keys()].map((n) => LEASE_PREFIX + n);
  }

  /** Watch keys of every projection that ever existed. */
  projectionKeys(): string[] {
    return [...this.#projections.keys()].map((n) => PROJ_PREFIX + n);
  }

  /** The current projection named `name` (the object name), or null. */
  projection(name: string): SimProjection | null {
    return this.#projections.get(name)?.at(-1)?.obj ?? null;
  }

  slotMap(): SimSlotMap | null {
    return this.#slotMap.at(-1)?.obj ?? null;
  }

  lease(name: string): SimLease | null {
    return this.#leases.get(name)?.at(-1)?.obj ?? null;
  }

  // ------------------------------------------------------------------ SlotMap (people)

  createSlotMap(spec: SimSpec): SimSlotMap {
    if (this.slotMap() !== null) throw new Error("simulator: SlotMap exists");
    this.#uidSeq += 1;
    const rv = this.#nextRv();
    const obj = deepFreeze<SimSlotMap>({
      metadata: {
        name: SLOTMAP_NAME,
        uid: `sm-uid-${this.#uidSeq}`,
        generation: 1,
        resourceVersion: String(rv),
      },
      spec: structuredClone(spec),
    });
    this.#slotMap.push({ rv, uid: obj.metadata.uid, obj });
    return obj;
  }

  deleteSlotMap(): void {
    const cur = this.slotMap();
    if (cur === null) return;
    this.#slotMap.push({ rv: this.#nextRv(), uid: cur.metadata.uid, obj: null });
  }

  /**
   * A person edits the spec (metadata.generation + 1). A changed `leaseNamespace` is rejected, as
   * the CRD's CEL rule `self == oldSelf` rejects it (the write fails, nothing changes).
   *
   * @returns false when the API server rejected the edit
   */
  updateSpec(spec: SimSpec): boolean {
    const cur = this.slotMap();
    if (cur === null) return false;
    if (spec.leaseNamespace !== cur.spec.leaseNamespace) {
      this.rejectedSpecEdits += 1;
      return false;
    }
    const rv = this.#nextRv();
    const obj = deepFreeze<SimSlotMap>({
      ...cur,
      metadata: { ...cur.metadata, generation: cur.metadata.generation + 1, resourceVersion: String(rv) },
      spec: structuredClone(spec),
    });
    this.#slotMap.push({ rv, uid: obj.metadata.uid, obj });
    return true;
  }

  /**
   * A person or a tool writes the status subresource (an edit, or a restore from a backup): it is
   * not a coordinator write, so the write checks only record it (see StatusWriteChecks.personWrote).
   */
  personWriteStatus(status: SlotMapStatus): boolean {
    const cur = this.slotMap();
    if (cur === null) return false;
    const rv = this.#nextRv();
    const frozen = deepFreeze(structuredClone(status));
    const obj = deepFreeze<SimSlotMap>({
      ...cur,
      metadata: { ...cur.metadata, resourceVersion: String(rv) },
      status: frozen,
    });
    this.#statusChecks.personWrote(cur.metadata.uid, frozen);
    this.#slotMap.push({ rv, uid: obj.metadata.uid, obj });
    this.personWrites += 1;
    return true;
  }

  // ------------------------------------------------------------------ Leases (people and tools)

  /**
   * A person or a tool writes a Lease (kubectl edit/annotate/delete/apply): `edit` returns the new
   * object (metadata.resourceVersion and uid are set here) or null to delete it; a Lease that does
   * not exist is passed as a skeleton with an empty uid (the edit then creates it). The ack
   * invariant does not judge people's writes.
   */
  personWriteLease(name: string, edit: (current: SimLease | null) => SimLease | null): void {
    const cur = this.lease(name);
    const next = edit(cur);
    if (next === null) {
      if (cur === null) return;
      this.#pushLease(name, null, cur.metadata.uid, true);
      this.personWrites += 1;
      return;
    }
    let uid = cur?.metadata.uid;
    if (uid === undefined) {
      this.#uidSeq += 1;
      uid = `lease-uid-${this.#uidSeq}`;
    }
    const rv = this.#nextRv();
    const obj = deepFreeze<SimLease>({
      metadata: { ...next.metadata, name, uid, resourceVersion: String(rv) },
      spec: next.spec,
    });
    this.#pushLease(name, obj, uid, true);
    this.personWrites += 1;
  }

  // ------------------------------------------------------------------ Leases (shard processes)

  #pushLease(name: string, obj: SimLease | null, uid: string, person = false): number {
    let h = this.#leases.get(name);
    if (h === undefined) {
      h = [];
      this.#leases.set(name, h);
    }
    const prev = h.at(-1)?.obj ?? null;
    // "No ack lost" is about the protocol's writes: a person may remove or forge an ack, and the
    // next process write after such an edit restores its own (a forged value the process carried
    // along in its writes is not its ack either).
    const prevAck = ackOf(prev?.metadata.annotations);
    const forged =
      prevAck !== undefined && this.#forged.has(`${name}\u0000${prevAck.uid}@${prevAck.generation}`);
    if (person) {
      const a = ackOf(obj?.metadata.annotations);
      if (a !== undefined) this.#forged.add(`${name}\u0000${a.uid}@${a.generation}`);
    } else if ((prev === null || !byPerson.has(prev)) && !forged) checkLeaseTransition(prev, obj, name);
    const rv = obj === null ? this.#nextRv() : Number(obj.metadata.resourceVersion);
    h.push({ rv, uid, obj });
    if (person && obj !== null) byPerson.add(obj);
    return rv;
  }

  /** POST or PUT of a shard's Lease write, with the API server's preconditions. */
  writeLease(w: WriteLeaseEffect): LeaseWriteResult {
    const name = w.lease.metadata.name;
    const cur = this.lease(name);
    let uid: string;
    if (w.verb === "create") {
      if (cur !== null) return this.#conflict(cur);
      this.#uidSeq += 1;
      uid = `lease-uid-${this.#uidSeq}`;
    } else {
      if (cur === null) return this.#conflict(null);
      if (w.lease.metadata.resourceVersion !== cur.metadata.resourceVersion) return this.#conflict(cur);
      uid = cur.metadata.uid;
    }
    const body = structuredClone(w.lease);
    const rv = this.#nextRv();
    const obj = deepFreeze<SimLease>({
      metadata: {
        name,
        namespace: body.metadata.namespace,
        uid,
        resourceVersion: String(rv),
        labels: { ...(body.metadata.labels ?? {}) },
        annotations: { ...(body.metadata.annotations ?? {}) },
      },
      spec: { ...(body.spec ?? {}) } as SimLease["spec"],
    });
    this.#pushLease(name, obj, uid);
    return { outcome: "ok", lease: structuredClone(obj) as LeaseObject };
  }

  #conflict(cur: SimLease | null): LeaseWriteResult {
    this.conflicts += 1;
    return { outcome: "conflict", current: cur === null ? null : (structuredClone(cur) as LeaseObject) };
  }

  // ------------------------------------------------------------------ projections

  #pushProjection(name: string, spec: unknown, uid: string | undefined): number {
    let h = this.#projections.get(name);
    if (h === undefined) {
      h = [];
      this.#projections.set(name, h);
    }
    if (uid === undefined) {
      this.#uidSeq += 1;
      uid = `proj-uid-${this.#uidSeq}`;
    }
    const rv = this.#nextRv();
    const obj = deepFreeze<SimProjection>({
      metadata: { name, namespace: NS, uid, resourceVersion: String(rv) },
      spec: structuredClone(spec),
    });
    h.push({ rv, uid, obj });
    return rv;
  }

  #deleteProjection(name: string, cur: SimProjection): void {
    this.#projections.get(name)!.push({ rv: this.#nextRv(), uid: cur.metadata.uid, obj: null });
  }

  /**
   * A coordinator's projection write: create (AlreadyExists when it exists), replace at a
   * resourceVersion (409 when stale, 404 when absent), delete with uid and resourceVersion
   * preconditions (404 is success). Another namespace than {@link NS} is a simulator bug (every
   * Lease lives there).
   */
  #projectionWrite(a: ProjectionAction): WriteOutcome {
    if (a.namespace !== NS) throw new Error(`simulator: projection ${a.name} written in ${a.namespace}`);
    const cur = this.projection(a.name);
    if (a.type === "deleteProjection") {
      if (cur === null) return "ok";
      if (cur.metadata.uid !== a.uid || cur.metadata.resourceVersion !== a.resourceVersion) {
        this.conflicts += 1;
        return "conflict";
      }
      this.#deleteProjection(a.name, cur);
      this.projectionWrites += 1;
      return "ok";
    }
    if (
      a.resourceVersion === undefined ? cur !== null : cur?.metadata.resourceVersion !== a.resourceVersion
    ) {
      this.conflicts += 1;
      return "conflict";
    }
    if (this.checkProjections) this.#checkProjection(a.spec);
    this.#pushProjection(a.name, a.spec, cur?.metadata.uid);
    this.projectionWrites += 1;
    return "ok";
  }

  /**
   * The projection invariant: a projection the coordinator writes is the projection of a status
   * already written for its SlotMap instance (by anyone), never of one not (yet) written.
   */
  #checkProjection(spec: ProjectionSpec): void {
    const want = JSON.stringify(spec);
    for (let i = this.#slotMap.length - 1; i >= 0; i--) {
      const sm = this.#slotMap[i]!.obj;
      if (sm === null || sm.metadata.uid !== spec.slotMapUid || sm.status === undefined) continue;
      if (projectionJson(sm, sm.status, spec.shard) === want) return;
    }
    throw new Violation(
      "projection",
      `projection of ${spec.shard} written with generation ${spec.assignmentGeneration} of ${spec.slotMapUid}, a table no status of that SlotMap has shown: ${want}`,
    );
  }

  /** The garbage collector deletes a projection (its owner, a SlotMap instance, was deleted). */
  collectProjection(name: string): void {
    const cur = this.projection(name);
    if (cur !== null) this.#deleteProjection(name, cur);
  }

  /**
   * A person or a tool writes a projection: `spec` null deletes it (nothing when absent); else it
   * is written as is with a new resourceVersion (a restore from a backup: created when absent).
   */
  personWriteProjection(name: string, spec: ProjectionSpec | null): boolean {
    const cur = this.projection(name);
    if (spec === null) {
      if (cur === null) return false;
      this.#deleteProjection(name, cur);
    } else this.#pushProjection(name, spec, cur?.metadata.uid);
    this.personWrites += 1;
    return true;
  }

  // ------------------------------------------------------------------ coordinator writes

  /** Takeovers of the Lease instances (uids) the writer observed. */
  #takeoversOfObserved(observed: ReadonlyMap<string, number>): Map<string, TakeoverRecord[]> {
    const out = new Map<string, TakeoverRecord[]>();
    for (const [name, list] of this.takeovers) {
      const rv = observed.get(name);
      const v = rv === undefined ? undefined : versionAt(this.#leases.get(name) ?? [], rv);
      out.set(
        name,
        list.filter((t) => v !== undefined && t.leaseUid === v.uid),
      );
    }
    return out;
  }

  /**
   * Applies a coordinator action with its preconditions.
   *
   * @param observedLeaseRvs - the Lease resourceVersions in the observation the step was run on
   *   (for the "dead" invariant).
   * @param observedAck - the highest ack for the SlotMap's uid in that observation (for the
   *   "generation" invariant: no plan on a status below an acknowledged generation).
   */
  coordinatorWrite(
    a: CoordinatorAction | ProjectionAction,
    observedLeaseRvs: ReadonlyMap<string, number>,
    observedAck: ObservedAcks = { all: 0, confirmed: 0 },
  ): WriteOutcome {
    switch (a.type) {
      case "writeProjection":
      case "deleteProjection":
        return this.#projectionWrite(a);
      case "updateStatus": {
        const cur = this.slotMap();
        if (
          cur === null ||
          cur.metadata.uid !== a.slotMap.uid ||
          cur.metadata.resourceVersion !== a.slotMap.resourceVersion
        ) {
          this.conflicts += 1;
          return "conflict";
        }
        const status = deepFreeze(structuredClone(a.status));
        this.#statusChecks.check(
          cur.metadata.uid,
          cur.status,
          status,
          observedLeaseRvs,
          this.#takeoversOfObserved(observedLeaseRvs),
          observedAck,
        );
        const rv = this.#nextRv();
        const obj = deepFreeze<SimSlotMap>({
          ...cur,
          metadata: { ...cur.metadata, resourceVersion: String(rv) },
          status,
        });
        this.#slotMap.push({ rv, uid: obj.metadata.uid, obj });
        this.statusWrites += 1;
        return "ok";
      }
      case "takeOverLease": {
        const cur = this.lease(a.name);
        if (
          cur === null ||
          cur.metadata.uid !== a.uid ||
          cur.metadata.resourceVersion !== a.resourceVersion
        ) {
          this.conflicts += 1;
          return "conflict";
        }
        const rv = this.#nextRv();
        const obj = deepFreeze<SimLease>({
          metadata: { ...cur.metadata, resourceVersion: String(rv) },
          spec: { ...cur.spec, ...a.spec },
        });
        this.#pushLease(a.name, obj, cur.metadata.uid);
        let list = this.takeovers.get(a.name);
        if (list === undefined) {
          list = [];
          this.takeovers.set(a.name, list);
        }
        list.push({ holder: cur.spec.holderIdentity ?? "", rv, leaseUid: cur.metadata.uid });
        return "ok";
      }
      case "deleteLease": {
        const cur = this.lease(a.name);
        if (cur === null) return "ok"; // 404 is success
        if (cur.metadata.uid !== a.uid || cur.metadata.resourceVersion !== a.resourceVersion) {
          this.conflicts += 1;
          return "conflict";
        }
        if (cur.spec.holderIdentity !== TAKEOVER_HOLDER && (cur.spec.holderIdentity ?? "") !== "") {
          // The core deletes only Dead (taken over or released) Leases: anything else is a core bug.
          throw new Error(
            `simulator: coordinator deletes Lease ${a.name} held by ${cur.spec.holderIdentity}`,
          );
        }
        this.#pushLease(a.name, null, cur.metadata.uid);
        return "ok";
      }
      case "event":
        return "ok";
    }
  }
}
