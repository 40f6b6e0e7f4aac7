/**
 * Deterministic simulation of slotmap: the REAL coordinator core (`step`) and the REAL shard
 * machine (`ShardMachine`) driven against a model of the API server (apiserver.ts), with a
 * network that delays, drops, duplicates and reorders messages, drifting per-process clocks,
 * crashes, pauses, failovers, and a runtime that starts and finishes reconciles.
 *
 * The simulator plays every I/O layer: it turns effects and actions into requests, decides when
 * each request is applied and each reply and watch event arrives, ticks machines at their
 * `nextWakeAt`, steps the coordinator at its `nextStepAt` or when its observation changed, and
 * runs the sharded controller runtime (work queue, `mayStart` before each reconcile, aborts).
 *
 * Invariants are checked as things happen (invariants.ts); `settle()` checks liveness. The model,
 * its assumptions and its limits are described in docs/verification.md.
 */
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  ackedGeneration,
  effectiveWeight,
  LABEL_SLOTMAP,
  parseShardLeaseAnnotations,
} from "../../src/api/lease.js";
import {
  type ProjectableStatus,
  type ProjectionSpec,
  parseProjectionSpec,
  projectionName,
  projectStatus,
  sameProjection,
} from "../../src/api/projection.js";
import { LIMITS, parseSlotMapStatus, type SlotMapStatus } from "../../src/api/v1alpha1.js";
import { readProjection } from "../../src/client/core/projection.js";
import type { ShardMachine } from "../../src/client/core/shard-machine.js";
import type {
  LeaseObject,
  LeaseWriteResult,
  ShardEffect,
  ShardInput,
  WriteLeaseEffect,
} from "../../src/client/core/types.js";
import type { CoordinatorGuards } from "../../src/coordinator/core/guards.js";
import { type ProjectionAction, projectionActions } from "../../src/coordinator/core/projections.js";
import { step } from "../../src/coordinator/core/step.js";
import type {
  CoordinatorAction,
  CoreMemory,
  StepInput,
  StepResult,
} from "../../src/coordinator/core/types.js";
import { ownedCounts } from "../../src/slots/table.js";
import { SLOT_COUNT } from "../../src/slots/types.js";
import {
  ApiServer,
  LEASE_PREFIX,
  NS,
  type ObservedAcks,
  PROJ_PREFIX,
  projKey,
  type SimLease,
  type SimObject,
  type SimProjection,
  type SimSlotMap,
  type SimSpec,
  SLOTMAP_NAME,
  SM_KEY,
  type Version,
  type WriteOutcome,
} from "./apiserver.js";
import { ProcessClock } from "./clock.js";
import {
  type Command,
  type CommandKind,
  FAULT_KINDS,
  isPinned,
  kindOf,
  type ScenarioSeed,
} from "./commands.js";
import {
  checkedStatus,
  FenceTracker,
  ObjectTracker,
  SafetyTracker,
  stateOf,
  summary,
  Violation,
} from "./invariants.js";
import {
  coordinatorGuards,
  type Mutation,
  type ProjectionMutation,
  projectedStatus,
  shardMachineClass,
  splitMutations,
} from "./mutations.js";
import { Rng } from "./rng.js";
import {
  inScope,
  objectsOf,
  RESOURCES_A,
  RESOURCES_B,
  rootOf,
  rulesOf,
  SELECTOR,
  type SimRules,
} from "./rules.js";
import { type RuntimeMutation, SimRuntime } from "./runtime.js";

/** Wall-clock epoch of real time 0 (only written into objects). */
const WALL0 = Date.parse("2030-01-01T00:00:00.000Z");

/** One fault command in this many runs, by `faultLevel`. */
const FAULT_DIVISORS: readonly number[] = [1, 3, 8];

/** Name of the rogue Lease (see the `rogue` command). */
const ROGUE = "rogue";

/** The kubelet's terminationGracePeriodSeconds: SIGKILL this long after SIGTERM. */
const TERMINATION_GRACE_MS = 30_000;

/** A tool that keeps touching a Lease does so this often. */
const TOUCH_EVERY_MS = 4000;

/** Slots on the boundaries of balanced tables for 1..5 shards: where handoffs happen. */
export const BOUNDARY_SLOTS: readonly number[] = [
  0, 3276, 3277, 4095, 4096, 5461, 5462, 6553, 6554, 8191, 8192, 9830, 9831, 10922, 10923, 12287, 12288,
  13107, 13108, 16383,
];

export { MUTATIONS, type Mutation } from "./mutations.js";

/** Everything that defines a scenario besides its commands. */
export interface SimOptions extends ScenarioSeed {
  /** Lease timing of every shard (client-go defaults). */
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  writeTimeoutMs: number;
  /** The coordinator I/O layer abandons a write after this long (its clock) and steps again. */
  coordinatorWriteTimeoutMs: number;
  /** The coordinator handles a watch event this long after it arrives (unless paused). */
  coordinatorReactMs: number;
  handoffTimeoutSeconds: number;
  /** Clock rates are drawn from [1 - drift, 1 + drift]. */
  drift: number;
  /** Wall clocks are offset from real time by up to ± this (only renewTime/acquireTime see it). */
  wallSkewMs: number;
  /** An aborted reconcile finishes within this long (real time) of the abort. */
  abortLatencyMs: number;
  /** A process paused while it has reconciles in flight resumes within this long (see docs). */
  pauseCapWithWorkMs: number;
  /** Liveness bound: the settle phase must converge within this much simulated time. */
  settleLimitMs: number;
  mutations: readonly Mutation[];
  /**
   * Let duplicated watch deliveries also carry versions the process never saw (a re-list served
   * by a lagging API server cache). Off by default: see docs/verification.md (a known finding).
   */
  staleReads: boolean;
  /**
   * Let people forge the pending ack on the Lease of the very holder the slots are granted to. Off
   * by default: no core can tell such an ack from the holder's own; admission (only a shard's own
   * ServiceAccount may write its Lease) is what answers it (docs/verification.md).
   */
  forgeGrantedAcks: boolean;
  /**
   * Let a stuck reconcile ignore its process's fence too. Off by default: the shard machine only
   * escalates (exits) while it holds its Lease, so a process fenced by a lost Lease keeps such a
   * reconcile running after its slots moved (docs/verification.md, a finding).
   */
  stuckIgnoresFence: boolean;
  /** Command kinds that run as a time step instead (to measure the other threats past a finding). */
  without: readonly CommandKind[];
  /** Re-run every coordinator step on unfrozen copies and require the same result (memo check). */
  checkMemo: boolean;
  /**
   * Check the projection invariant (every projection the coordinator writes shows a status
   * already written). Off only to see what else catches a projection mutation.
   */
  checkProjections: boolean;
  /** Keep the last lines of a trace for failure reports. */
  trace: boolean;
}

/** Timing and fault defaults (docs/verification.md states them). */
export const DEFAULT_TIMING = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  writeTimeoutMs: 2_000,
  coordinatorWriteTimeoutMs: 2_000,
  coordinatorReactMs: 50,
  handoffTimeoutSeconds: 30,
  drift: 0.01,
  wallSkewMs: 8_000,
  abortLatencyMs: 500,
  pauseCapWithWorkMs: 3_000,
  settleLimitMs: 300_000,
} as const;

/** Full options from what fast-check chose. */
export function simOptions(seed: ScenarioSeed, extra: Partial<SimOptions> = {}): SimOptions {
  return {
    ...seed,
    ...DEFAULT_TIMING,
    mutations: [],
    staleReads: false,
    forgeGrantedAcks: false,
    stuckIgnoresFence: false,
    without: [],
    checkMemo: false,
    checkProjections: true,
    trace: false,
    ...extra,
  };
}

interface Reconcile {
  readonly key: number;
  readonly slot: number;
  /** The objects it works on (its root, and under placement B the object that follows it). */
  readonly objects: readonly number[];
  /** Real time by which an aborted reconcile finishes. */
  abortAt: number | undefined;
  /** Never returns, ignores aborts: it ends only with its process. */
  stuck: boolean;
}

interface Proc {
  readonly id: number;
  readonly clock: ProcessClock;
  alive: boolean;
  paused: boolean;
  resumeAt: number | undefined;
  /** Network partition: until this real time nothing reaches or leaves the process. */
  cutUntil: number;
  /** Stalled watch: until this real time no watch event reaches the process (requests still flow). */
  watchStallUntil: number;
  /**
   * Until this real time no Lease watch event reaches the process while its SlotMap watch flows
   * (the coordinator's Lease view lags its SlotMap view).
   */
  leaseStallUntil: number;
  /** Watch key → index in the object's history last delivered (-1: none). */
  readonly cursors: Map<string, number>;
  /** Watch key → the first index this process listed or was delivered (older versions it never saw). */
  readonly firstSeen: Map<string, number>;
  /** Watch key → when the stream delivers its next pending version (absent: nothing pending). */
  readonly streamDue: Map<string, number>;
}

interface ShardProc extends Proc {
  readonly kind: "shard";
  readonly name: string;
  readonly machine: ShardMachine;
  /** The `weight` option of this process (undefined: not set, the default 1). */
  readonly weight: number | undefined;
  /** Root keys to reconcile, filled and drained by the runtime core. */
  readonly queue: Set<number>;
  /** The real runtime core over the simulated objects. */
  readonly runtime: SimRuntime;
  /** When the controlled watch's gain list lands (placement B), if one is due. */
  gainAt: number | undefined;
  readonly inFlight: Map<number, Reconcile>;
  wakeReal: number | undefined;
  /** SIGTERM was sent: the kubelet kills the process at this real time if it is still running. */
  killAt: number | undefined;
  /** Newest (uid, generation) the machine applied; an older one of the same uid is a violation. */
  appliedUid: string | undefined;
  appliedGeneration: number;
  /** Acks reported by the machine, per uid. */
  readonly acked: Map<string, number>;
  /** The sharding rules the runtime applies (undefined: none resolved yet, nothing runs). */
  rules: SimRules | undefined;
  /** Rules being resolved (discovery), applied at `at` real time. */
  resolving: { readonly rules: SimRules; readonly at: number } | undefined;
  /** The SlotMap uid its SlotMap watch (metadata only) shows now; undefined: not seen, or deleted. */
  smUid: string | undefined;
  /** membership.ts `#goneUids`: the last 16 SlotMap uids seen deleted or replaced, ignored after. */
  goneUids: readonly string[];
  /** The SlotMap (uid, metadata.generation) whose spec it read last. */
  specOf: { readonly uid: string; readonly generation: number } | undefined;
  /** `spec.policy.handoffTimeoutSeconds` of the spec read last (fed with every projection). */
  handoffTimeoutSeconds: number | undefined;
}

interface CoordProc extends Proc {
  readonly kind: "coordinator";
  memory: CoreMemory | undefined;
  nextStepAt: number | undefined;
  /** Real time at which the observation last changed without a step since; undefined: clean. */
  dirtyAt: number | undefined;
  sm: SimSlotMap | null;
  readonly leases: Map<string, SimLease>;
  /** The SlotMapShard projections it observes (watch, and its own writes), by object name. */
  readonly projections: Map<string, SimProjection>;
  /** driver.ts `deletedProjections`: uids its cache saw deleted; an answer about one is not cached. */
  deletedProjections: readonly string[];
  /** Request id → timeout (local clock): the step's writes (the next step waits for them). */
  readonly pending: Map<number, number>;
  /** What the projections must show (driver.ts `setProjection`); undefined: nothing. */
  job: ProjectionJob | undefined;
  /** The job of the step whose writes are in flight: set once they all succeeded. */
  stepJob: { readonly job: ProjectionJob | undefined; failed: boolean } | undefined;
  /** The projection loop's writes in flight (id → timeout, local clock); steps do not wait for them. */
  readonly projecting: Map<number, number>;
  /** A write of the loop's round failed (then it retries after a backoff). */
  roundFailed: boolean;
  /** The loop was kicked during its round: it runs again after it. */
  projectionKicked: boolean;
  /** Real time of the loop's next round (a kick: now; a failure: the backoff). */
  projectAt: number | undefined;
  projectionFailures: number;
}

/** What the projections must show (driver.ts `ProjectionJob`): the step's view, not the loop's. */
interface ProjectionJob {
  readonly slotMap: { readonly name: string; readonly uid: string };
  readonly status: ProjectableStatus;
  readonly leaseNamespace: string;
  readonly leases: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly annotations: Readonly<Record<string, string>> | undefined;
  }>;
}

/** A write on its way to the API server; applied at `dueAt` unless a command intervenes. */
type Request = { dueAt: number } & (
  | {
      readonly id: number;
      readonly kind: "lease";
      readonly from: ShardProc;
      readonly effect: WriteLeaseEffect;
    }
  | {
      readonly id: number;
      readonly kind: "coord";
      readonly from: CoordProc;
      readonly action: CoordinatorAction | ProjectionAction;
      readonly observed: ReadonlyMap<string, number>;
      readonly observedAck: ObservedAcks;
      /** A write of the projection loop (not of a step). */
      readonly loop: boolean;
    }
);

/** A reply on its way back; delivered at `dueAt` (or later, while its receiver cannot receive). */
type Reply = { dueAt: number } & (
  | {
      readonly kind: "lease";
      readonly to: ShardProc;
      readonly writeId: number;
      readonly result: LeaseWriteResult;
    }
  | {
      readonly kind: "coord";
      readonly to: CoordProc;
      readonly reqId: number;
      /** "error": a 5xx or a connection reset (the write may or may not have landed). */
      readonly outcome: WriteOutcome | "error";
      /** A projection loop's write: the projection written (null: deleted), on success. */
      readonly loop?: { readonly name: string; readonly written: SimProjection | null | undefined };
    }
);

/** Counters of one run. */
export interface SimStats {
  steps: number;
  coordinatorSteps: number;
  statusWrites: number;
  conflicts: number;
  reconcilesStarted: number;
  /** Reconciles started while faults were on (the command phase). */
  faultPhaseStarts: number;
  startsRefused: number;
  generation: number;
  crashes: number;
  pauses: number;
  /** Processes that exited on `escalate` (a reconcile on lost slots outlived the handoff timeout). */
  escalations: number;
  /** Reconciles made to never return. */
  stuck: number;
  /** Writes by people and tools to Leases and the status (threats). */
  personWrites: number;
  /** Coordinator writes that reset a regressed status (a generation jump assigning nothing). */
  resets: number;
  /** Projection writes and deletes the coordinator applied. */
  projectionWrites: number;
  /** Projections shards refused as set back below what they applied (restored, or stale writes). */
  projectionRegressions: number;
  /** Rogue Leases the operator deleted in a settle because they held a drain barrier. */
  rogueRemovals: number;
  failovers: number;
  takeovers: number;
  /** New or retargeted migrations to a shard that was not Ready (planner remnants, not grants). */
  migrationsToNotReady: number;
  /** Coordinator steps that returned a `nextStepAt` not after `now` (float rounding; see docs). */
  coordinatorSpins: number;
  /** Simulated time the last settle phase needed to converge. */
  settleMs: number;
  /** Simulated time at the end. */
  simulatedMs: number;
}

interface Timer {
  readonly at: number;
  readonly fire: () => void;
  readonly id: string;
}

export class Simulation {
  readonly opts: SimOptions;
  readonly server = new ApiServer();
  readonly rng: Rng;
  readonly keySlots: readonly number[];
  readonly names: readonly string[];
  readonly safety: SafetyTracker;
  readonly fences: FenceTracker;
  readonly objects: ObjectTracker;
  /** Real time, ms. */
  now = 0;
  readonly shards: ShardProc[] = [];
  coordinator: CoordProc;
  requests: Request[] = [];
  replies: Reply[] = [];
  readonly stats: SimStats = {
    steps: 0,
    coordinatorSteps: 0,
    statusWrites: 0,
    conflicts: 0,
    reconcilesStarted: 0,
    faultPhaseStarts: 0,
    startsRefused: 0,
    generation: 0,
    crashes: 0,
    pauses: 0,
    escalations: 0,
    stuck: 0,
    personWrites: 0,
    resets: 0,
    projectionWrites: 0,
    projectionRegressions: 0,
    rogueRemovals: 0,
    failovers: 0,
    takeovers: 0,
    migrationsToNotReady: 0,
    coordinatorSpins: 0,
    settleMs: 0,
    simulatedMs: 0,
  };
  readonly #trace: string[] = [];
  #procSeq = 0;
  #reqSeq = 0;
  #spec: SimSpec;
  #lastFire = "";
  #settling = false;
  readonly #Machine: ReturnType<typeof shardMachineClass>;
  readonly #guards: CoordinatorGuards;
  readonly #runtimeMutations: RuntimeMutation[];
  readonly #projectionMutations: ProjectionMutation[];
  #sameFire = 0;
  /** Leases a tool keeps touching (labels), and when it touches next. */
  readonly #touched = new Set<string>();
  #touchAt: number | undefined;
  /** Garbage collections due: the projections owned by a deleted SlotMap instance (ownerReferences). */
  #gc: Array<{ readonly uid: string; readonly at: number }> = [];
  #personSeq = 0;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.server.checkProjections = opts.checkProjections;
    this.rng = new Rng(opts.seed);
    const mutations = splitMutations(opts.mutations);
    this.#Machine = shardMachineClass(mutations.shard);
    this.#guards = coordinatorGuards(mutations.coordinator);
    this.#runtimeMutations = mutations.runtime;
    this.#projectionMutations = mutations.projection;
    this.keySlots = [...new Set([...BOUNDARY_SLOTS, ...opts.keySlots])].sort((a, b) => a - b);
    this.names = Array.from({ length: opts.shardPool }, (_, i) => `s${i}`);
    this.safety = new SafetyTracker((id) => this.#describe(id));
    this.fences = new FenceTracker((id) => this.#describe(id));
    this.objects = new ObjectTracker((id) => this.#describe(id));
    this.#spec = {
      leaseNamespace: NS,
      resources: RESOURCES_A,
      policy: {
        maxMigratingSlots: opts.maxMigratingSlots,
        handoffTimeoutSeconds: opts.handoffTimeoutSeconds,
      },
    };
    this.server.createSlotMap(this.#spec);
    this.coordinator = this.#newCoordinator();
    for (let i = 0; i < Math.min(opts.initialShards, this.names.length); i++)
      this.#join(this.names[i]!, undefined);
  }

  // ================================================================== trace and reporting

  log(line: string): void {
    if (!this.opts.trace) return;
    this.#trace.push(`T=${this.now.toFixed(1)} ${line}`);
    const cap = process.env.SIMDEBUG ? 100_000 : 400;
    if (this.#trace.length > cap) this.#trace.splice(0, this.#trace.length - cap);
  }

  /** The last trace lines (with `trace: true`). */
  trace(): readonly string[] {
    return this.#trace;
  }

  #describe(id: number): string {
    const p = this.shards.find((s) => s.id === id);
    if (p === undefined) return `process #${id}`;
    const m = p.machine;
    return `${p.name}#${p.id} (identity ${m.identity() ?? "-"}, phase ${m.phase()}, generation ${m.ownership.generation}${p.paused ? ", paused" : ""}${p.alive ? "" : ", dead"})`;
  }

  // ================================================================== processes

  #clock(): ProcessClock {
    const rate = 1 + this.rng.range(-this.opts.drift, this.opts.drift);
    const base = 1_000_000 + this.rng.int(1_000_000_000);
    const wall = this.rng.range(-this.opts.wallSkewMs, this.opts.wallSkewMs);
    return new ProcessClock(this.now, base, rate, wall);
  }

  /** What every process starts with: running, reachable, nothing seen yet. */
  #procBase(id: number, clock: ProcessClock): Proc {
    return {
      id,
      clock,
      alive: true,
      paused: false,
      resumeAt: undefined,
      cutUntil: 0,
      watchStallUntil: 0,
      leaseStallUntil: 0,
      cursors: new Map(),
      firstSeen: new Map(),
      streamDue: new Map(),
    };
  }

  #newCoordinator(): CoordProc {
    const c: CoordProc = {
      ...this.#procBase(++this.#procSeq, this.#clock()),
      kind: "coordinator",
      memory: undefined,
      nextStepAt: undefined,
      dirtyAt: this.now,
      sm: null,
      leases: new Map(),
      deletedProjections: [],
      projections: new Map(),
      pending: new Map(),
      job: undefined,
      stepJob: undefined,
      projecting: new Map(),
      roundFailed: false,
      projectionKicked: false,
      projectAt: undefined,
      projectionFailures: 0,
    };
    this.#coordinatorRelist(c);
    return c;
  }

  #join(name: string, weight: number | undefined): ShardProc {
    const id = ++this.#procSeq;
    const clock = this.#clock();
    const salt = (this.rng.int(0xffffffff) >>> 0).toString(16).padStart(8, "0");
    const machine: ShardMachine = new this.#Machine({
      slotmap: SLOTMAP_NAME,
      shard: name,
      leaseNamespace: NS,
      holderIdentityPrefix: `${name}-p${id}`,
      incarnationSalt: salt,
      leaseDurationMs: this.opts.leaseDurationMs,
      renewDeadlineMs: this.opts.renewDeadlineMs,
      retryPeriodMs: this.opts.retryPeriodMs,
      writeTimeoutMs: this.opts.writeTimeoutMs,
      ...(weight !== undefined ? { weight } : {}),
      wallClockOffsetMs: WALL0 + clock.wallOffsetMs + clock.startReal - clock.base,
    });
    const queue = new Set<number>();
    const p: ShardProc = {
      ...this.#procBase(id, clock),
      kind: "shard",
      name,
      machine,
      weight,
      queue,
      // One process in four caches every slot (the controller's `cache: "all"`), chosen from the
      // salt so that the random stream, and so every recorded seed, stays the same.
      runtime: new SimRuntime(
        this.keySlots,
        (slot) => machine.ownsSlot(slot),
        queue,
        this.#runtimeMutations,
        Number.parseInt(salt.slice(-1), 16) % 4 === 0,
      ),
      gainAt: undefined,
      inFlight: new Map(),
      wakeReal: undefined,
      killAt: undefined,
      appliedUid: undefined,
      appliedGeneration: 0,
      acked: new Map(),
      rules: undefined,
      resolving: undefined,
      smUid: undefined,
      goneUids: [],
      specOf: undefined,
      handoffTimeoutSeconds: undefined,
    };
    this.shards.push(p);
    this.log(`join ${name}#${id} weight=${weight ?? "-"}${p.runtime.cachesAllSlots ? " cache=all" : ""}`);
    // Initial GET of the Lease (404 → null), of the SlotMap and of its projection (404: nothing yet).
    const lv = this.server.versions(LEASE_PREFIX + name);
    this.#setCursor(p, LEASE_PREFIX + name, lv.length - 1);
    this.#handle(p, { type: "leaseObserved", now: this.#local(p), lease: this.#leaseObj(lv.at(-1)) });
    for (const key of [SM_KEY, projKey(name)]) {
      const h = this.server.versions(key);
      this.#setCursor(p, key, h.length - 1);
      const v = h.at(-1);
      if (v?.obj) this.#deliverShard(p, key, v);
    }
    return p;
  }

  #local(p: Proc): number {
    return p.clock.local(this.now);
  }

  #leaseObj(v: Version<SimObject> | undefined): LeaseObject | null {
    return (v?.obj ?? null) as LeaseObject | null;
  }

  #liveShards(): ShardProc[] {
    return this.shards.filter((p) => p.alive && !p.paused);
  }

  /** The grace period after SIGTERM ended: the kubelet kills the process (a stuck drain ends). */
  #sigkill(p: ShardProc): void {
    p.killAt = undefined;
    if (!p.alive) return;
    this.stats.crashes += 1;
    this.log(`SIGKILL ${p.name}#${p.id} (termination grace period over)`);
    this.#kill(p);
  }

  #kill(p: ShardProc): void {
    if (!p.alive) return;
    for (const r of p.inFlight.values()) {
      this.safety.finish(p.id, r.slot);
      this.objects.finish(p.id, r.objects);
    }
    p.inFlight.clear();
    p.resolving = undefined;
    p.runtime.clear();
    p.queue.clear();
    p.gainAt = undefined;
    p.alive = false;
    p.paused = false;
    p.resumeAt = undefined;
    p.wakeReal = undefined;
  }

  // ================================================================== shard I/O layer and runtime

  #handle(p: ShardProc, input: ShardInput): void {
    const effects = p.machine.handle(input);
    const uid = p.machine.ownership.uid;
    const g = p.machine.ownership.generation;
    if (uid !== undefined && uid === p.appliedUid && g < p.appliedGeneration) {
      throw new Violation(
        "generation",
        `${this.#describe(p.id)} applied generation ${g} of ${uid} after ${p.appliedGeneration}`,
      );
    }
    if (uid !== undefined) {
      p.appliedUid = uid;
      p.appliedGeneration = g;
    }
    for (const e of effects) this.#effect(p, e);
    const w = p.alive ? p.machine.nextWakeAt() : undefined;
    p.wakeReal = w === undefined ? undefined : p.clock.realAt(w);
  }

  #effect(p: ShardProc, e: ShardEffect): void {
    // An exited process sends nothing more (its requests already sent may still land).
    if (!p.alive && e.type !== "log") return;
    switch (e.type) {
      case "writeLease":
        this.requests.push({ id: ++this.#reqSeq, kind: "lease", from: p, effect: e, dueAt: this.#due() });
        return;
      case "slotsGained":
        if (p.runtime.gained(e.ranges)) p.gainAt ??= this.#listDue();
        return;
      case "slotsLost":
        p.runtime.lost(e.ranges);
        return;
      case "abortInFlight":
        for (const name of e.keys) {
          const r = p.inFlight.get(Number(name.slice(1)));
          if (r !== undefined && r.abortAt === undefined && !r.stuck) {
            r.abortAt = this.now + this.rng.next() * this.opts.abortLatencyMs;
          }
        }
        return;
      case "acked": {
        const prev = p.acked.get(e.uid) ?? 0;
        if (e.generation < prev) {
          throw new Violation("ack", `${this.#describe(p.id)} acked ${e.uid}@${e.generation} after ${prev}`);
        }
        p.acked.set(e.uid, e.generation);
        this.log(`${p.name}#${p.id} acked ${e.generation}`);
        return;
      }
      case "stopped":
        this.log(`${p.name}#${p.id} stopped`);
        this.#kill(p);
        return;
      case "escalate":
        // The real process exits (membership.ts: process.exit), ending the stuck reconciles with it.
        this.stats.escalations += 1;
        this.log(`${p.name}#${p.id} escalate: exits (stuck ${e.keys.join(",")})`);
        this.#kill(p);
        return;
      case "fenced":
        this.log(`${p.name}#${p.id} fenced (${e.reason})`);
        if (!this.opts.stuckIgnoresFence) this.#unstick(p);
        return;
      case "unfenced":
        this.log(`${p.name}#${p.id} unfenced`);
        return;
      case "log":
        if (e.msg.startsWith("SlotMap status went back")) {
          this.stats.projectionRegressions += 1;
          this.log(`${p.name}#${p.id} refuses a regressed projection ${JSON.stringify(e.fields)}`);
        }
        return;
    }
  }

  #deliverShard(p: ShardProc, key: string, v: Version<SimObject>): void {
    if (key === SM_KEY) this.#shardSlotMap(p, v as Version<SimSlotMap>);
    else if (key.startsWith(PROJ_PREFIX)) this.#shardProjection(p, v as Version<SimProjection>);
    else this.#handle(p, { type: "leaseObserved", now: this.#local(p), lease: this.#leaseObj(v) });
  }

  /**
   * The shard's SlotMap watch, as membership.ts handles it: metadata only (the status is not
   * read). A deletion, or another uid than the one it shows (a new instance), deletes that
   * instance for the machine; a new (uid, generation) reads the spec (a GET of the current object,
   * here without latency) for the rules and the handoff timeout. The projection it has is fed
   * again on a new uid (a projection of the new instance may have come first and been ignored)
   * and after a spec read (for the timeout).
   */
  #shardSlotMap(p: ShardProc, v: Version<SimSlotMap>): void {
    const sm = v.obj;
    if (sm === null) {
      this.#shardSlotMapDeleted(p, v.uid);
      return;
    }
    const uid = sm.metadata.uid;
    if (p.goneUids.includes(uid)) return;
    const changed = p.smUid !== uid;
    if (p.smUid !== undefined && changed) this.#shardSlotMapDeleted(p, undefined);
    p.smUid = uid;
    if (changed) this.#refeedProjection(p);
    if (p.specOf?.uid === uid && p.specOf.generation === sm.metadata.generation) return;
    p.specOf = { uid, generation: sm.metadata.generation };
    const current = this.server.slotMap();
    if (current === null || current.metadata.uid !== uid || p.smUid !== uid || !p.alive) return;
    p.handoffTimeoutSeconds = current.spec.policy.handoffTimeoutSeconds;
    this.#observeRules(p, current.spec);
    this.#refeedProjection(p);
  }

  /** membership.ts `#onSlotMapDeleted`: instance `uid` (default: the one seen) is gone. */
  #shardSlotMapDeleted(p: ShardProc, deleted: string | undefined): void {
    const uid = deleted ?? p.smUid;
    if (uid === undefined) return;
    if (!p.goneUids.includes(uid)) p.goneUids = [...p.goneUids.slice(-15), uid];
    if (uid === p.smUid) p.smUid = undefined;
    if (p.specOf?.uid === uid) p.specOf = undefined;
    this.log(`${p.name}#${p.id} SlotMap ${uid} deleted${deleted === undefined ? " (another uid seen)" : ""}`);
    this.#handle(p, { type: "slotMapDeleted", now: this.#local(p), uid });
    if (p.alive) p.runtime.importing([]);
  }

  /** The projection the shard's watch delivered last, read again. */
  #refeedProjection(p: ShardProc): void {
    const cursor = p.cursors.get(projKey(p.name)) ?? -1;
    const last = cursor >= 0 ? this.server.versions(projKey(p.name))[cursor] : undefined;
    if (last?.obj) this.#shardProjection(p, last as Version<SimProjection>);
  }

  /**
   * The shard's own projection, read as membership.ts reads it (`readProjection`, for the SlotMap
   * instance its SlotMap watch shows): fed to the machine, then the slots migrating towards it
   * reported to the runtime. A deleted projection carries nothing: the shard keeps what it applied.
   */
  #shardProjection(p: ShardProc, v: Version<SimProjection>): void {
    const obj = v.obj;
    if (obj === null || !p.alive) return;
    const reading = readProjection(
      { spec: obj.spec, resourceVersion: obj.metadata.resourceVersion },
      {
        now: this.#local(p),
        slotMap: SLOTMAP_NAME,
        shard: p.name,
        slotMapUid: p.smUid,
        handoffTimeoutSeconds: p.handoffTimeoutSeconds,
      },
    );
    if (!reading.ok) {
      this.log(`${p.name}#${p.id} ignores projection rv ${obj.metadata.resourceVersion}: ${reading.reason}`);
      return;
    }
    this.#handle(p, reading.input);
    // As membership.ts: after the machine's gains of this projection, the slots still migrating here.
    if (p.alive && p.runtime.importing(reading.importing)) p.gainAt ??= this.#listDue();
  }

  /**
   * Assumption (docs/verification.md): a fence stops even a reconcile that ignored its handoff, as
   * work in flight stops within `abortLatencyMs` of a fence. Without it (`stuckIgnoresFence`) a
   * process that lost its Lease keeps a stuck reconcile for ever: the shard machine escalates only
   * while it holds its Lease (a finding).
   */
  #unstick(p: ShardProc): void {
    for (const r of p.inFlight.values()) {
      if (!r.stuck) continue;
      r.stuck = false;
      r.abortAt = this.now + this.rng.next() * this.opts.abortLatencyMs;
      this.log(`${p.name}#${p.id} k${r.key} stops on the fence`);
    }
  }

  #start(p: ShardProc, key: number): void {
    if (!p.alive || p.paused || p.inFlight.has(key)) return;
    p.queue.delete(key);
    const work = p.runtime.work(key);
    if (p.rules === undefined || work === undefined) return;
    const slot = work.slot;
    const now = this.#local(p);
    if (!p.machine.mayStart(slot, now)) {
      this.stats.startsRefused += 1;
      return;
    }
    const objects = work.objects;
    const expected = objectsOf(p.rules, key, this.keySlots.length);
    if (objects.join() !== expected.join()) {
      throw new Violation(
        "cache",
        `${this.#describe(p.id)} starts k${key} with objects ${objects.join(",")} cached, not ${expected.join(",")}: a reconcile would act on a controlled object it cannot see`,
      );
    }
    this.safety.start(p.id, slot, this.now);
    this.objects.start(p.id, objects, this.now);
    this.fences.start(p.id, slot, p.machine.ownership.fence(), this.now);
    this.stats.reconcilesStarted += 1;
    if (!this.#settling) this.stats.faultPhaseStarts += 1;
    p.inFlight.set(key, { key, slot, objects, abortAt: undefined, stuck: false });
    this.log(`${p.name}#${p.id} start k${key} slot ${slot}`);
    this.#handle(p, { type: "reconcileStarted", now, slot, key: `k${key}` });
  }

  #finish(p: ShardProc, key: number): void {
    const r = p.inFlight.get(key);
    if (r === undefined || r.stuck || p.paused || !p.alive) return;
    p.inFlight.delete(key);
    this.safety.finish(p.id, r.slot);
    this.objects.finish(p.id, r.objects);
    this.log(`${p.name}#${p.id} finish k${key}`);
    this.#handle(p, { type: "reconcileFinished", now: this.#local(p), slot: r.slot, key: `k${key}` });
  }

  /** An event of object `key` reaches the runtime: it enqueues the object's root if it owns it. */
  #enqueue(p: ShardProc, key: number): void {
    p.runtime.touch(key);
  }

  /**
   * When a list of the controlled resource lands: usually a message latency, 1 in 8 times 2..16 s
   * (a large resource, a slow API server), so a handoff may commit before it.
   */
  #listDue(): number {
    return this.now + (this.rng.int(8) === 0 ? 2000 + this.rng.int(14_000) : this.#latency());
  }

  /** The controlled watch's gain list of `p` lands (placement B). */
  #controlledGains(p: ShardProc): void {
    p.gainAt = undefined;
    if (p.alive && !p.paused) p.runtime.listControlledGains();
  }

  /**
   * The runtime saw a spec: rules other than those it applies (or is resolving) are resolved
   * after a discovery delay, usually a message latency, 1 in 8 times 2..16 s (failed discovery).
   */
  #observeRules(p: ShardProc, spec: SimSpec): void {
    const want = rulesOf(spec);
    const current = p.resolving?.rules ?? p.rules;
    if (current?.key === want.key) return;
    const slow = this.rng.int(8) === 0;
    p.resolving = { rules: want, at: this.now + (slow ? 2000 + this.rng.int(14_000) : this.#latency()) };
  }

  /**
   * Resolved: as membership.ts does, in one synchronous block the runtime drops everything mapped
   * by the old rules and maps by the new ones (re-listing what it owns), then reports them to the
   * machine. In-flight reconciles keep the objects they started with.
   */
  #applyRules(p: ShardProc): void {
    const r = p.resolving;
    if (r === undefined || !p.alive || p.paused) return;
    p.resolving = undefined;
    p.rules = r.rules;
    this.log(`${p.name}#${p.id} applies rules ${r.rules.key} (${r.rules.fingerprint})`);
    p.runtime.apply(r.rules);
    this.#handle(p, { type: "rulesApplied", now: this.#local(p), fingerprint: r.rules.fingerprint });
  }

  // ================================================================== coordinator I/O layer

  /**
   * The new leader's Lease list was taken before its SlotMap list (up to 2 versions back per Lease)
   * and its Lease watches lag 2..21 s: a Lease view older than its SlotMap view.
   */
  #staleLeaseList(c: CoordProc, a: number): void {
    for (const key of this.server.leaseKeys()) {
      const h = this.server.versions(key);
      const i = Math.max(0, h.length - 1 - (a % 3));
      this.#setCursor(c, key, i);
      this.#deliverCoordinator(c, key, h[i]);
    }
    c.leaseStallUntil = this.now + 2000 + (a % 20) * 1000;
    this.log(`coordinator#${c.id} Lease list older than its SlotMap list; Lease watches lag`);
  }

  #coordinatorRelist(c: CoordProc): void {
    const sv = this.server.versions(SM_KEY);
    this.#setCursor(c, SM_KEY, sv.length - 1);
    this.#deliverCoordinator(c, SM_KEY, sv.at(-1));
    for (const key of [...this.server.leaseKeys(), ...this.server.projectionKeys()]) {
      const lv = this.server.versions(key);
      this.#setCursor(c, key, lv.length - 1);
      this.#deliverCoordinator(c, key, lv.at(-1));
    }
  }

  #deliverCoordinator(c: CoordProc, key: string, v: Version<SimObject> | undefined): void {
    if (key.startsWith(PROJ_PREFIX)) {
      if (v !== undefined)
        this.#cacheProjection(c, key.slice(PROJ_PREFIX.length), v.obj as SimProjection | null, v.uid);
    } else if (key === SM_KEY) {
      const sm = (v?.obj ?? null) as SimSlotMap | null;
      if (sm === null || (c.sm !== null && c.sm.metadata.uid !== sm.metadata.uid)) {
        // Deleted (or replaced): the I/O layer drops the memory of that SlotMap.
        c.memory = undefined;
        c.nextStepAt = undefined;
      }
      // Deleted: its worker goes, and its projection loop with it (the garbage collector deletes
      // the projections; the next instance's coordinator writes its own).
      if (sm === null) c.job = undefined;
      c.sm = sm;
    } else {
      const name = key.slice(LEASE_PREFIX.length);
      const l = (v?.obj ?? null) as SimLease | null;
      if (l === null) c.leases.delete(name);
      else c.leases.set(name, l);
    }
    c.dirtyAt ??= this.now;
  }

  /**
   * The coordinator's projection cache, as driver.ts keeps it (`ObjectCache`): an object replaces
   * the cached one only if newer (a late event, a late write answer or a duplicate never takes it
   * back); a deletion removes only the instance (uid) it names.
   */
  #cacheProjection(c: CoordProc, name: string, obj: SimProjection | null, uid: string): void {
    const cur = c.projections.get(name);
    if (obj === null) {
      if (cur !== undefined && cur.metadata.uid === uid) {
        c.projections.delete(name);
        c.deletedProjections = [...c.deletedProjections.slice(-1023), uid];
      }
    } else if (
      cur === undefined ||
      Number(obj.metadata.resourceVersion) > Number(cur.metadata.resourceVersion)
    ) {
      c.projections.set(name, obj);
    }
  }

  /** Steps the coordinator when its observation changed or a deadline passed (and it may). */
  #coordinatorStep(): void {
    const c = this.coordinator;
    if (!c.alive || c.paused || c.sm === null || c.pending.size > 0) return;
    const now = this.#local(c);
    const due = c.nextStepAt !== undefined && now >= c.nextStepAt;
    if (c.dirtyAt === undefined && !due) return;
    let r: StepResult;
    const input: StepInput = {
      slotMap: c.sm,
      leases: [...c.leases.values()],
      now,
      wallTime: new Date(WALL0 + this.now + c.clock.wallOffsetMs).toISOString(),
      config: { identity: `coordinator-${c.id}` },
    };
    try {
      r = step(c.memory, input, this.#guards);
    } catch (e) {
      throw new Violation("core", `coordinator step threw: ${(e as Error).stack ?? String(e)}`);
    }
    if (this.opts.checkMemo) {
      // The same step on unfrozen copies (no memo applies) must decide exactly the same.
      const plain = step(
        c.memory === undefined ? undefined : structuredClone(c.memory),
        {
          ...input,
          slotMap: structuredClone(c.sm),
          leases: structuredClone(input.leases),
        },
        this.#guards,
      );
      if (JSON.stringify(plain) !== JSON.stringify(r)) {
        throw new Violation(
          "core",
          "the memoised coordinator step decided differently from an unmemoised one",
        );
      }
    }
    this.stats.coordinatorSteps += 1;
    if (process.env.SIMDEBUG) {
      for (const l of r.logs) this.log(`DEBUG core#${c.id} ${l.level} ${l.msg} ${JSON.stringify(l.fields)}`);
      const acks = [...c.leases.values()].map(
        (l) => `${l.metadata.name}:${JSON.stringify(l.metadata.annotations)}`,
      );
      this.log(`DEBUG core#${c.id} saw uid ${c.sm.metadata.uid} leases ${acks.join(" ")}`);
    }
    c.memory = r.memory;
    c.nextStepAt = r.nextStepAt;
    if (r.nextStepAt !== undefined && r.nextStepAt <= now) {
      // A deadline computed as `t + d` can round to <= now while `now - t >= d` is still false: the
      // step asks to be stepped again at once. A real clock moves on; so does ours (1 µs). Counted.
      this.stats.coordinatorSpins += 1;
      c.nextStepAt = now + 0.001;
    }
    c.dirtyAt = undefined;
    const observed = new Map([...c.leases].map(([n, l]) => [n, Number(l.metadata.resourceVersion)]));
    // The acks the writer saw: all of them (a reset must jump above each), and those of Leases it
    // had seen renewing (a status below one of those must not be planned on; DESIGN rule 6).
    const observedAck = { all: 0, confirmed: 0 };
    for (const l of c.leases.values()) {
      const a = ackedGeneration(parseShardLeaseAnnotations(l.metadata.annotations), c.sm.metadata.uid);
      observedAck.all = Math.max(observedAck.all, a);
      if (r.memory.shards[l.metadata.name]?.confirmed === true)
        observedAck.confirmed = Math.max(observedAck.confirmed, a);
    }
    for (const a of r.actions) {
      if (a.type === "event") continue;
      const id = this.#send(c, a, observed, observedAck, false);
      c.pending.set(id, now + this.opts.coordinatorWriteTimeoutMs);
    }
    this.#afterStep(c, r);
  }

  #send(
    c: CoordProc,
    a: Exclude<CoordinatorAction, { type: "event" }> | ProjectionAction,
    observed: ReadonlyMap<string, number>,
    observedAck: ObservedAcks,
    loop: boolean,
  ): number {
    const id = ++this.#reqSeq;
    this.requests.push({
      id,
      kind: "coord",
      from: c,
      action: a,
      observed,
      observedAck,
      loop,
      dueAt: this.#due(),
    });
    this.log(
      `coordinator#${c.id} r${id} ${a.type}${a.type === "updateStatus" ? ` g=${a.status.assignmentGeneration}` : a.type === "writeProjection" ? ` ${a.name} g=${a.spec.assignmentGeneration}${a.resourceVersion === undefined ? " (create)" : ` at rv ${a.resourceVersion}`}` : ` ${a.name}`}`,
    );
    return id;
  }

  /**
   * driver.ts `setProjection` after a step: a step that writes a status leaves the job as it is
   * (its projections follow in the next step, on the written status); one that stood by no status
   * stops the loop; otherwise the status it stood by is the new job, once every write of the step
   * succeeded (a conflict or a failure drops it: the next step decides again).
   */
  #afterStep(c: CoordProc, r: StepResult): void {
    const sm = c.sm!;
    const writesStatus = r.actions.some((a) => a.type === "updateStatus");
    const job = (status: ProjectableStatus): ProjectionJob => ({
      slotMap: { name: sm.metadata.name, uid: sm.metadata.uid },
      status,
      leaseNamespace: sm.spec.leaseNamespace,
      leases: [...c.leases.values()].map((l) => ({
        namespace: l.metadata.namespace,
        name: l.metadata.name,
        annotations: l.metadata.annotations,
      })),
    });
    if (this.#projectionMutations.length > 0) {
      // A mutated I/O layer: it projects at once, whatever the step writes.
      const observed = parseSlotMapStatus(sm.status);
      const m = projectedStatus(this.#projectionMutations, r, observed.ok ? observed.value : undefined);
      if (m !== undefined) {
        this.#setJob(c, job(m));
        return;
      }
    }
    if (writesStatus) return;
    const next = r.projectable === undefined ? undefined : job(r.projectable);
    if (c.pending.size === 0) this.#setJob(c, next);
    else c.stepJob = { job: next, failed: false };
  }

  #setJob(c: CoordProc, job: ProjectionJob | undefined): void {
    c.job = job;
    if (job === undefined) return;
    if (c.projecting.size > 0) c.projectionKicked = true;
    else c.projectAt ??= this.now;
  }

  /** A step's write came back (or timed out): the step's job is set when all of them succeeded. */
  #stepWriteDone(c: CoordProc, ok: boolean): void {
    const s = c.stepJob;
    if (s === undefined) return;
    if (!ok) s.failed = true;
    if (c.pending.size > 0) return;
    c.stepJob = undefined;
    if (!s.failed) this.#setJob(c, s.job);
  }

  /**
   * One round of driver.ts `projectLoop`: the writes and deletes that make the projections the
   * coordinator observes match the job (`projectionActions`), all sent at once; the next round
   * runs when they all came back, if the loop was kicked meanwhile or a write failed (backoff).
   */
  #projectRound(c: CoordProc): void {
    c.projectAt = undefined;
    const job = c.job;
    if (!c.alive || c.paused || c.projecting.size > 0 || job === undefined) return;
    if (process.env.SIMDEBUG) {
      const seen = [...c.projections.values()].map(
        (p) =>
          `${p.metadata.name}@${p.metadata.resourceVersion}:g${(p.spec as ProjectionSpec).assignmentGeneration}`,
      );
      this.log(
        `DEBUG coordinator#${c.id} projects g${job.status.assignmentGeneration} over ${seen.join(" ")}`,
      );
    }
    const actions = projectionActions({
      ...job,
      writesStatus: false,
      observed: [...c.projections.values()].map((p) => ({
        namespace: p.metadata.namespace,
        name: p.metadata.name,
        uid: p.metadata.uid,
        resourceVersion: p.metadata.resourceVersion,
        spec: p.spec,
      })),
    });
    c.roundFailed = false;
    const timeout = this.#local(c) + this.opts.coordinatorWriteTimeoutMs;
    for (const a of actions)
      c.projecting.set(this.#send(c, a, new Map(), { all: 0, confirmed: 0 }, true), timeout);
  }

  /** A write of the loop came back (undefined: timed out). */
  #projectionDone(c: CoordProc, id: number, reply: Extract<Reply, { kind: "coord" }> | undefined): void {
    if (!c.projecting.delete(id)) return;
    if (reply?.loop !== undefined) {
      const { name, written } = reply.loop;
      if (reply.outcome === "ok") {
        // driver.ts caches its own write at once (a create must not be sent twice).
        if (written === null) {
          const cur = c.projections.get(name);
          if (cur !== undefined) this.#cacheProjection(c, name, null, cur.metadata.uid);
        } else if (written !== undefined) {
          if (process.env.SIMDEBUG && !c.projections.has(name) && this.server.projection(name) === null)
            this.log(
              `DEBUG coordinator#${c.id} caches its write of ${name} (rv ${written.metadata.resourceVersion}), deleted since`,
            );
          // driver.ts putAnswered: not an instance its watch showed deleted meanwhile.
          if (!c.deletedProjections.includes(written.metadata.uid))
            this.#cacheProjection(c, name, written, written.metadata.uid);
        }
      } else {
        // 409 (or an error): the object is re-read (a change, which steps the coordinator).
        // (A 404 removes whatever is cached: driver.ts removes by name, whatever the instance.)
        const current = this.server.projection(name);
        if (current === null) c.projections.delete(name);
        else this.#cacheProjection(c, name, current, current.metadata.uid);
        c.roundFailed = c.roundFailed || reply.outcome !== "conflict";
      }
      c.dirtyAt ??= this.now;
    } else c.roundFailed = true;
    if (c.projecting.size > 0) return;
    if (c.roundFailed) {
      const delay = Math.min(30_000, 200 * 2 ** Math.min(c.projectionFailures, 8));
      c.projectionFailures += 1;
      c.projectAt = this.now + delay;
    } else {
      c.projectionFailures = 0;
      if (c.projectionKicked) c.projectAt ??= this.now;
    }
    c.projectionKicked = false;
  }

  // ================================================================== network

  #apply(req: Request, reply: "deliver" | "lose" | "error"): void {
    let r: Reply;
    if (req.kind === "lease") {
      const result = this.server.writeLease(req.effect);
      this.log(
        `apply r${req.id} ${req.from.name}#${req.from.id} ${req.effect.kind} rv=${req.effect.resourceVersion} -> ${result.outcome}`,
      );
      r = {
        kind: "lease",
        to: req.from,
        writeId: req.effect.writeId,
        result: reply === "error" ? { outcome: "error", message: "simulated: reply lost, 503" } : result,
        dueAt: this.#due(),
      };
    } else {
      const before = this.server.slotMap()?.status?.assignmentGeneration ?? 0;
      const outcome = this.server.coordinatorWrite(req.action, req.observed, req.observedAck);
      let loop: { name: string; written: SimProjection | null | undefined } | undefined;
      if (req.action.type === "writeProjection" || req.action.type === "deleteProjection") {
        this.log(
          `apply coordinator#${req.from.id} r${req.id} ${req.action.type} ${req.action.name} -> ${outcome}`,
        );
        if (outcome === "ok") this.stats.projectionWrites += 1;
        const ok = outcome === "ok" && reply !== "error";
        const written =
          req.action.type === "deleteProjection" ? null : this.server.projection(req.action.name);
        loop = { name: req.action.name, written: ok ? written : undefined };
      }
      if (
        req.action.type === "updateStatus" &&
        outcome === "ok" &&
        req.action.status.assignmentGeneration > before + 1
      ) {
        this.stats.resets += 1;
        this.log(`coordinator#${req.from.id} reset to ${req.action.status.assignmentGeneration}`);
      }
      if (req.action.type === "takeOverLease" && outcome === "ok") this.stats.takeovers += 1;
      this.log(`apply coordinator#${req.from.id} ${req.action.type} -> ${outcome}`);
      // An error reply (5xx after the write landed): the I/O layer re-reads and steps again, as after a 409.
      r = {
        kind: "coord",
        to: req.from,
        reqId: req.id,
        outcome: reply === "error" ? "error" : outcome,
        ...(loop !== undefined ? { loop } : {}),
        dueAt: this.#due(),
      };
    }
    if (reply !== "lose") this.replies.push(r);
  }

  /** A request lost before the API server: with `error`, the client gets an error reply. */
  #dropRequest(req: Request, error: boolean): void {
    if (!error) return;
    if (req.kind === "lease") {
      this.replies.push({
        kind: "lease",
        to: req.from,
        writeId: req.effect.writeId,
        result: { outcome: "error", message: "simulated: connection reset" },
        dueAt: this.#due(),
      });
    } else {
      const a = req.action;
      const loop =
        a.type === "writeProjection" || a.type === "deleteProjection"
          ? { name: a.name, written: undefined }
          : undefined;
      this.replies.push({
        kind: "coord",
        to: req.from,
        reqId: req.id,
        outcome: "error",
        ...(loop !== undefined ? { loop } : {}),
        dueAt: this.#due(),
      });
    }
  }

  /** Network latency: mostly a few ms, sometimes up to 1 s, rarely up to 5 s. */
  #latency(): number {
    const x = this.rng.next();
    if (x < 0.9) return 1 + this.rng.next() * 30;
    if (x < 0.99) return 30 + this.rng.next() * 970;
    return 1000 + this.rng.next() * 4000;
  }

  #due(): number {
    return this.now + this.#latency();
  }

  /**
   * When a blocked process can receive again (end of its pause and partition; with a watch key,
   * also of its watch stalls).
   */
  #unblockedAt(p: Proc, watchKey?: string): number {
    const watch = watchKey === undefined ? 0 : p.watchStallUntil;
    const lease = watchKey?.startsWith(LEASE_PREFIX) ? p.leaseStallUntil : 0;
    return Math.max(this.now, p.resumeAt ?? this.now, p.cutUntil, watch, lease);
  }

  /** Watch keys of a process. */
  #watchKeys(p: ShardProc | CoordProc): string[] {
    return p.kind === "coordinator"
      ? [SM_KEY, ...this.server.leaseKeys(), ...this.server.projectionKeys()]
      : [SM_KEY, LEASE_PREFIX + p.name, projKey(p.name)];
  }

  /** Gives every stream with undelivered versions a delivery time. */
  #armStreams(): void {
    const procs: Array<ShardProc | CoordProc> = this.shards.filter((p) => p.alive);
    if (this.coordinator.alive) procs.push(this.coordinator);
    for (const p of procs) {
      for (const key of this.#watchKeys(p)) {
        if (p.streamDue.has(key)) continue;
        if ((p.cursors.get(key) ?? -1) < this.server.versions(key).length - 1)
          p.streamDue.set(key, this.#due());
      }
    }
  }

  /** A stream's delivery time came: the next version (or, 1 in 4, the newest: coalesced). */
  #fireStream(p: ShardProc | CoordProc, key: string): void {
    p.streamDue.delete(key);
    const last = this.server.versions(key).length - 1;
    const cursor = p.cursors.get(key) ?? -1;
    if (cursor >= last) return;
    if (!this.#watching(p, key)) {
      p.streamDue.set(key, this.#unblockedAt(p, key) + this.#latency());
      return;
    }
    this.#deliverWatch(p, key, this.rng.next() < 0.25 ? last : cursor + 1, true);
  }

  #fireRequest(req: Request): void {
    const i = this.requests.indexOf(req);
    if (i >= 0) this.requests.splice(i, 1);
    if (this.#reaches(req)) this.#apply(req, "deliver");
  }

  #fireReply(r: Reply): void {
    if (!r.to.alive) {
      this.replies.splice(this.replies.indexOf(r), 1);
      return;
    }
    if (!this.#deliverable(r)) {
      r.dueAt = this.#unblockedAt(r.to) + this.#latency();
      return;
    }
    this.replies.splice(this.replies.indexOf(r), 1);
    this.#deliverReply(r);
  }

  #deliverable(r: Reply): boolean {
    return r.to.alive && !r.to.paused && this.now >= r.to.cutUntil;
  }

  /** Whether watch events can reach `p` now (of `key`, when given). */
  #watching(p: Proc, key?: string): boolean {
    return (
      p.alive &&
      !p.paused &&
      this.now >= p.cutUntil &&
      this.now >= p.watchStallUntil &&
      (key === undefined || !key.startsWith(LEASE_PREFIX) || this.now >= p.leaseStallUntil)
    );
  }

  /** Whether a request of `p` reaches the API server now (else it is lost in the partition). */
  #reaches(req: Request): boolean {
    return this.now >= req.from.cutUntil;
  }

  #deliverReply(r: Reply): void {
    if (r.kind === "lease") {
      if (process.env.SIMDEBUG) {
        const st = r.to.machine.snapshot();
        this.log(
          `DEBUG reply w${r.writeId} ${r.result.outcome} cur=${r.result.outcome === "conflict" ? r.result.current?.metadata.resourceVersion : r.result.outcome === "ok" ? r.result.lease.metadata.resourceVersion : "-"} holder=${r.result.outcome === "conflict" ? r.result.current?.spec?.holderIdentity : ""} machine lease rv=${st.lock.lease?.metadata.resourceVersion} max=${st.lock.maxResourceVersion} write=${st.lock.write?.id} id=${st.lock.identity}`,
        );
      }
      this.#handle(r.to, {
        type: "leaseWriteResult",
        now: this.#local(r.to),
        writeId: r.writeId,
        result: r.result,
      });
    } else {
      const c = r.to;
      if (r.loop !== undefined) {
        this.#projectionDone(c, r.reqId, r);
        return;
      }
      if (!c.pending.delete(r.reqId)) return; // timed out already
      if (r.outcome !== "ok") {
        // 409 (or an error): re-read everything and step again.
        this.#coordinatorRelist(c);
      }
      this.#stepWriteDone(c, r.outcome === "ok");
    }
  }

  /** Reply list cleanup: replies to dead processes are never delivered. */
  #pruneReplies(): void {
    if (this.replies.some((r) => !r.to.alive)) this.replies = this.replies.filter((r) => r.to.alive);
  }

  /** Watch streams with undelivered versions that can be delivered now: [process, key]. */
  #pendingWatches(): Array<[ShardProc | CoordProc, string]> {
    const out: Array<[ShardProc | CoordProc, string]> = [];
    const procs: Array<ShardProc | CoordProc> = [this.coordinator, ...this.#liveShards()];
    for (const p of procs) {
      if (!this.#watching(p)) continue;
      for (const key of this.#watchKeys(p)) {
        if (!this.#watching(p, key)) continue;
        if ((p.cursors.get(key) ?? -1) < this.server.versions(key).length - 1) out.push([p, key]);
      }
    }
    return out;
  }

  #deliverWatch(p: ShardProc | CoordProc, key: string, index: number, advanceCursor: boolean): void {
    const v = this.server.versions(key)[index];
    if (v === undefined) return;
    if (advanceCursor) {
      this.#setCursor(p, key, index);
      p.streamDue.delete(key);
    }
    if (p.kind === "coordinator") this.#deliverCoordinator(p, key, v);
    else this.#deliverShard(p, key, v);
  }

  #setCursor(p: Proc, key: string, index: number): void {
    p.cursors.set(key, index);
    if (!p.firstSeen.has(key)) p.firstSeen.set(key, Math.max(index, 0));
  }

  #relist(p: ShardProc | CoordProc): void {
    if (p.kind === "coordinator") {
      this.#coordinatorRelist(p);
      return;
    }
    for (const key of [SM_KEY, LEASE_PREFIX + p.name, projKey(p.name)]) {
      const h = this.server.versions(key);
      if (h.length === 0) continue;
      this.#deliverWatch(p, key, h.length - 1, true);
    }
  }

  /** Delivers every request, reply and watch event (newest versions) that can be delivered. */
  flush(): void {
    for (let round = 0; round < 4; round++) {
      const reqs = this.requests;
      this.requests = [];
      for (const r of reqs) if (this.#reaches(r)) this.#apply(r, "deliver");
      // (requests of a cut-off process are lost)
      this.#pruneReplies();
      const replies = this.replies;
      this.replies = [];
      for (const r of replies) {
        if (this.#deliverable(r)) this.#deliverReply(r);
        else if (r.to.alive) this.replies.push(r);
      }
      for (const [p, key] of this.#pendingWatches()) {
        this.#deliverWatch(p, key, this.server.versions(key).length - 1, true);
      }
      if (this.requests.length === 0 && !this.replies.some((r) => this.#deliverable(r))) break;
    }
  }

  // ================================================================== time

  #timers(): Timer[] {
    const out: Timer[] = [];
    this.#armStreams();
    for (const r of this.requests)
      out.push({ at: r.dueAt, id: `req${r.id}`, fire: () => this.#fireRequest(r) });
    for (const r of this.replies) {
      out.push({ at: r.dueAt, id: `reply${r.kind}${r.to.id}`, fire: () => this.#fireReply(r) });
    }
    const procs: Array<ShardProc | CoordProc> = this.shards.filter((p) => p.alive);
    if (this.coordinator.alive) procs.push(this.coordinator);
    for (const p of procs) {
      for (const [key, at] of p.streamDue)
        out.push({ at, id: `watch${p.id}${key}`, fire: () => this.#fireStream(p, key) });
    }
    for (const p of this.shards) {
      if (!p.alive) continue;
      if (p.killAt !== undefined)
        out.push({ at: p.killAt, id: `sigkill${p.id}`, fire: () => this.#sigkill(p) });
      if (p.paused) {
        if (p.resumeAt !== undefined)
          out.push({ at: p.resumeAt, id: `resume${p.id}`, fire: () => this.#resume(p) });
        continue;
      }
      if (p.resolving !== undefined)
        out.push({ at: p.resolving.at, id: `rules${p.id}`, fire: () => this.#applyRules(p) });
      if (p.gainAt !== undefined)
        out.push({ at: p.gainAt, id: `gain${p.id}`, fire: () => this.#controlledGains(p) });
      if (p.wakeReal !== undefined) {
        out.push({
          at: p.wakeReal,
          id: `tick${p.id}`,
          fire: () => this.#handle(p, { type: "tick", now: this.#local(p) }),
        });
      }
      for (const r of p.inFlight.values()) {
        if (r.abortAt !== undefined) {
          out.push({ at: r.abortAt, id: `abort${p.id}/${r.key}`, fire: () => this.#finish(p, r.key) });
        }
      }
    }
    if (this.#touchAt !== undefined)
      out.push({ at: this.#touchAt, id: "touch", fire: () => this.#touchTool() });
    for (const g of this.#gc) out.push({ at: g.at, id: `gc${g.uid}`, fire: () => this.#collect(g) });
    const c = this.coordinator;
    if (c.alive) {
      if (c.paused) {
        if (c.resumeAt !== undefined)
          out.push({ at: c.resumeAt, id: "cresume", fire: () => this.#resume(c) });
      } else if (c.pending.size > 0) {
        let first: [number, number] | undefined;
        for (const [id, at] of c.pending) if (first === undefined || at < first[1]) first = [id, at];
        const [id, at] = first!;
        out.push({
          at: c.clock.realAt(at),
          id: `ctimeout${id}`,
          fire: () => {
            c.pending.delete(id);
            c.dirtyAt ??= this.now;
            this.#stepWriteDone(c, false);
          },
        });
      } else if (c.sm !== null) {
        if (c.nextStepAt !== undefined) {
          out.push({ at: c.clock.realAt(c.nextStepAt), id: "cstep", fire: () => this.#coordinatorStep() });
        }
        if (c.dirtyAt !== undefined) {
          out.push({
            at: c.dirtyAt + this.opts.coordinatorReactMs,
            id: "creact",
            fire: () => this.#coordinatorStep(),
          });
        }
      }
      if (!c.paused) {
        // The projection loop runs beside the steps.
        let first: [number, number] | undefined;
        for (const [id, at] of c.projecting) if (first === undefined || at < first[1]) first = [id, at];
        if (first !== undefined) {
          const [id, at] = first;
          out.push({
            at: c.clock.realAt(at),
            id: `ptimeout${id}`,
            fire: () => this.#projectionDone(c, id, undefined),
          });
        }
        if (c.projectAt !== undefined)
          out.push({ at: c.projectAt, id: "project", fire: () => this.#projectRound(c) });
      }
    }
    return out;
  }

  /** Lets real time pass until `target`, firing every timer due on the way in order. */
  advanceTo(target: number): void {
    for (let guard = 0; ; guard++) {
      if (guard > 1_000_000) throw new Violation("core", "simulator: timers do not advance");
      let next: Timer | undefined;
      for (const t of this.#timers()) if (next === undefined || t.at < next.at) next = t;
      if (next === undefined || next.at > target) break;
      if (next.at > this.now) this.now = next.at;
      const fireKey = `${next.id}@${this.now}`;
      if (fireKey === this.#lastFire) {
        this.#sameFire += 1;
        if (this.#sameFire > 50) {
          throw new Violation("core", `timer ${next.id} fires repeatedly at T=${this.now} without progress`);
        }
      } else {
        this.#lastFire = fireKey;
        this.#sameFire = 0;
      }
      next.fire();
    }
    if (target > this.now) this.now = target;
  }

  #resume(p: ShardProc | CoordProc): void {
    if (!p.paused) return;
    p.paused = false;
    p.resumeAt = undefined;
    this.log(`resume ${p.kind === "shard" ? `${p.name}#${p.id}` : "coordinator"}`);
    if (p.kind === "shard") this.#handle(p, { type: "tick", now: this.#local(p) });
    else p.dirtyAt ??= this.now;
  }

  // ================================================================== commands

  /** Runs one command of the random stream. */
  exec(cmd: Command): void {
    this.stats.steps += 1;
    let kind = kindOf(cmd);
    const [, a, b] = cmd;
    if (
      FAULT_KINDS.has(kind) &&
      !isPinned(cmd) &&
      this.opts.faultLevel > 0 &&
      (a + b) % FAULT_DIVISORS[this.opts.faultLevel]! !== 0
    ) {
      kind = "advance";
    }
    if (this.opts.without.includes(kind)) kind = "advance";
    this.#exec(kind, a, b);
  }

  #pick<T>(xs: readonly T[], i: number): T | undefined {
    return xs.length === 0 ? undefined : xs[i % xs.length];
  }

  #exec(kind: CommandKind, a: number, b: number): void {
    switch (kind) {
      case "advance":
        this.advanceTo(this.now + 1 + (a % 500));
        return;
      case "advanceLong":
        this.advanceTo(this.now + 1000 + (a % 20_000));
        return;
      case "watch":
      case "watchSkip": {
        const w = this.#pick(this.#pendingWatches(), a);
        if (w === undefined) return;
        const [p, key] = w;
        const last = this.server.versions(key).length - 1;
        this.#deliverWatch(p, key, kind === "watch" ? (p.cursors.get(key) ?? -1) + 1 : last, true);
        return;
      }
      case "watchDup": {
        const streams: Array<[ShardProc | CoordProc, string, number]> = [];
        const c = this.coordinator;
        if (this.#watching(c))
          for (const [k, i] of c.cursors) if (i >= 0 && this.#watching(c, k)) streams.push([c, k, i]);
        for (const p of this.#liveShards()) {
          if (this.#watching(p)) for (const [k, i] of p.cursors) if (i >= 0) streams.push([p, k, i]);
        }
        const s = this.#pick(streams, a);
        if (s === undefined) return;
        // A late duplicate of a version this process already saw (one of the last three), or with
        // `staleReads` any older version (a lagging API server cache).
        const [p, key, cursor] = s;
        const lowest = this.opts.staleReads ? 0 : (p.firstSeen.get(key) ?? cursor);
        const index = Math.max(lowest, cursor - (b % 3));
        this.#deliverWatch(p, key, index, false);
        // An informer whose cache went back (a re-list served by a lagging cache) watches on from
        // there, so the newer versions come again: a projection or a SlotMap (deleted and
        // re-created) may change no more. (A Lease view that went back is put right by the next
        // renewal; replaying its versions would show renewals nobody made.)
        if (!key.startsWith(LEASE_PREFIX)) p.cursors.set(key, index);
        return;
      }
      case "relist": {
        const procs: Array<ShardProc | CoordProc> = this.#liveShards().filter((x) => this.#watching(x));
        if (this.#watching(this.coordinator)) procs.push(this.coordinator);
        const p = this.#pick(procs, a);
        if (p !== undefined) this.#relist(p);
        return;
      }
      case "request":
      case "requestDrop":
      case "requestLoseReply":
      case "requestDup": {
        if (this.requests.length === 0) return;
        const i = a % this.requests.length;
        const req = this.requests[i]!;
        if (kind !== "requestDup") this.requests.splice(i, 1);
        if (!this.#reaches(req)) return; // lost in a partition
        if (kind === "request") this.#apply(req, "deliver");
        else if (kind === "requestDrop") this.#dropRequest(req, b % 2 === 0);
        else if (kind === "requestLoseReply") this.#apply(req, b % 2 === 0 ? "error" : "lose");
        else this.#apply(req, "deliver");
        return;
      }
      case "reply":
      case "replyDrop": {
        this.#pruneReplies();
        const ok = this.replies.filter((r) => this.#deliverable(r));
        const r = this.#pick(ok, a);
        if (r === undefined) return;
        this.replies.splice(this.replies.indexOf(r), 1);
        if (kind === "reply") this.#deliverReply(r);
        return;
      }
      case "delay": {
        // One message (request, reply or watch stream) is held up 1..20 s more.
        const ms = 1000 + (b % 20) * 1000;
        const n = this.requests.length + this.replies.length;
        const streams: Array<[Proc, string]> = [];
        for (const p of [this.coordinator, ...this.shards])
          for (const k of p.streamDue.keys()) streams.push([p, k]);
        const i = a % Math.max(1, n + streams.length);
        if (i < this.requests.length) this.requests[i]!.dueAt += ms;
        else if (i < n) this.replies[i - this.requests.length]!.dueAt += ms;
        else if (streams.length > 0) {
          const [p, k] = streams[i - n]!;
          p.streamDue.set(k, p.streamDue.get(k)! + ms);
        }
        return;
      }
      case "coordinatorStep":
        this.#coordinatorStep();
        return;
      case "trigger": {
        for (let i = 0; i < 4; i++) {
          const key = (a + i) % this.keySlots.length;
          for (const p of this.shards) if (p.alive) this.#enqueue(p, key);
        }
        return;
      }
      case "start": {
        const p = this.#pick(
          this.#liveShards().filter((s) => s.queue.size > 0),
          a,
        );
        if (p === undefined) return;
        const key = this.#pick([...p.queue], b);
        if (key !== undefined) this.#start(p, key);
        return;
      }
      case "finish": {
        const all: Array<[ShardProc, number]> = [];
        for (const p of this.#liveShards()) for (const k of p.inFlight.keys()) all.push([p, k]);
        const f = this.#pick(all, a);
        if (f !== undefined) this.#finish(f[0], f[1]);
        return;
      }
      case "flush":
        this.flush();
        this.#coordinatorStep();
        return;
      case "join": {
        const name = this.names[a % this.names.length]!;
        // b % 8 === 7: a standby process of a shard name that already runs (both race for its Lease).
        if (b % 8 !== 7 && this.#liveShards().some((p) => p.name === name)) return;
        if (this.shards.filter((p) => p.alive).length >= 2 * this.names.length) return;
        this.#join(name, b % 8 === 0 ? 0 : b % 8 === 1 ? 2 : undefined);
        return;
      }
      case "leave": {
        const p = this.#pick(this.#liveShards(), a);
        if (p === undefined) return;
        this.log(`leave ${p.name}#${p.id}`);
        p.killAt ??= this.now + TERMINATION_GRACE_MS;
        this.#handle(p, { type: "shutdown", now: this.#local(p), abortInFlight: b % 2 === 0 });
        return;
      }
      case "crash": {
        const p = this.#pick(
          this.shards.filter((s) => s.alive),
          a,
        );
        if (p === undefined) return;
        this.stats.crashes += 1;
        this.log(`crash ${p.name}#${p.id}`);
        this.#kill(p);
        return;
      }
      case "pause": {
        const p = this.#pick(this.#liveShards(), a);
        if (p === undefined) return;
        let ms = 500 + (b % 60) * 1000;
        // Documented assumption: work in flight ends within the margin after the fence, so a process
        // is not frozen with reconciles in flight for longer than that (docs/verification.md).
        if (p.inFlight.size > 0) ms = Math.min(ms, this.opts.pauseCapWithWorkMs);
        p.paused = true;
        p.resumeAt = this.now + ms;
        this.stats.pauses += 1;
        this.log(`pause ${p.name}#${p.id} for ${ms}ms`);
        return;
      }
      case "resume": {
        const procs: Array<ShardProc | CoordProc> = this.shards.filter((s) => s.alive && s.paused);
        if (this.coordinator.paused) procs.push(this.coordinator);
        const p = this.#pick(procs, a);
        if (p !== undefined) this.#resume(p);
        return;
      }
      case "weight": {
        const name = this.names[a % this.names.length]!;
        const weights = { ...(this.#spec.weights ?? {}) };
        if (b % 5 === 4) delete weights[name];
        else weights[name] = b % 4;
        this.#spec = { ...this.#spec, weights };
        this.server.updateSpec(this.#spec);
        this.log(`spec.weights ${JSON.stringify(weights)}`);
        return;
      }
      case "failover": {
        this.stats.failovers += 1;
        this.coordinator.alive = false;
        this.coordinator = this.#newCoordinator();
        this.log(`coordinator failover -> #${this.coordinator.id}`);
        if (b % 2 === 1) this.#staleLeaseList(this.coordinator, a);
        return;
      }
      case "partition": {
        // The coordinator one time in three, else a shard.
        const p = a % 3 === 0 ? this.coordinator : (this.#pick(this.#liveShards(), a) ?? this.coordinator);
        const ms = 2000 + (b % 38) * 1000;
        const watchOnly = b % 2 === 0;
        if (watchOnly) p.watchStallUntil = this.now + ms;
        else p.cutUntil = this.now + ms;
        this.log(
          `${watchOnly ? "watch stall" : "partition"} ${p.kind === "shard" ? `${p.name}#${p.id}` : "coordinator"} for ${ms}ms`,
        );
        return;
      }
      case "coordinatorPause": {
        const c = this.coordinator;
        if (c.paused) return;
        c.paused = true;
        c.resumeAt = this.now + 1000 + (a % 60) * 1000;
        this.log(`pause coordinator until ${c.resumeAt}`);
        return;
      }
      case "slotMap": {
        if (this.server.slotMap() === null) {
          this.server.createSlotMap(this.#spec);
          this.log("SlotMap created");
        } else if (a % 8 === 0) {
          const uid = this.server.slotMap()!.metadata.uid;
          this.server.deleteSlotMap();
          // The garbage collector deletes its projections (their ownerReference) a moment later.
          this.#gc.push({ uid, at: this.now + 500 + (b % 10) * 500 });
          this.log("SlotMap deleted");
        }
        return;
      }
      case "stuck": {
        const all: Array<[ShardProc, Reconcile]> = [];
        for (const p of this.shards)
          if (p.alive)
            for (const r of p.inFlight.values()) if (!r.stuck && r.abortAt === undefined) all.push([p, r]);
        const f = this.#pick(all, a);
        if (f === undefined) return;
        f[1].stuck = true;
        this.stats.stuck += 1;
        this.log(`${f[0].name}#${f[0].id} k${f[1].key} stuck (never returns)`);
        return;
      }
      case "leaseEdit":
        this.#leaseEdit(a, b);
        return;
      case "rogue":
        this.#rogue(a, b);
        return;
      case "statusEdit":
        this.#statusEdit(a, b);
        return;
      case "specEdit":
        this.#specEdit(a, b);
        return;
      case "leaseLag": {
        const ms = 2000 + (b % 38) * 1000;
        this.coordinator.leaseStallUntil = this.now + ms;
        this.log(`coordinator Lease watches stall for ${ms}ms (SlotMap watch flows)`);
        return;
      }
      case "projectionEdit":
        this.#projectionEdit(a, b);
        return;
    }
  }

  // ================================================================== people and tools

  /** A person's or a tool's write to the Lease of shard `name` (see the `leaseEdit` command). */
  #leaseEdit(a: number, b: number): void {
    const name = [...this.names, ROGUE][a % (this.names.length + 1)]!;
    const cur = this.server.lease(name);
    const variant = b % 8;
    if (variant === 7) {
      // A tool (a labeller, a backup agent) keeps touching it from now on, through the settle too.
      this.#touched.add(name);
      this.#touchAt ??= this.now + TOUCH_EVERY_MS;
      this.log(`tool keeps touching Lease ${name}`);
      return;
    }
    if (cur === null) return;
    const sm = this.server.slotMap();
    const uid = sm?.metadata.uid ?? "sm-uid-none";
    const status = sm?.status as SlotMapStatus | undefined;
    let what: string;
    let next: SimLease | null;
    const annotated = (extra: Record<string, string>): SimLease => ({
      ...cur,
      metadata: { ...cur.metadata, annotations: { ...cur.metadata.annotations, ...extra } },
    });
    switch (variant) {
      case 0:
        what = "deleted";
        next = null;
        break;
      case 1:
        what = "holder cleared";
        next = { ...cur, spec: { ...cur.spec, holderIdentity: null } };
        break;
      case 2:
        what = "holder set to person";
        // A string no process ever used (a reused one would be an incarnation the coordinator had
        // fenced coming back, which only a person typing the same value twice produces).
        next = { ...cur, spec: { ...cur.spec, holderIdentity: `person-${++this.#personSeq}` } };
        break;
      case 3:
        what = "touched";
        next = annotated({ "example.com/touched": String(b) });
        break;
      case 4:
        what = "future ack forged";
        next = annotated({ [ANNOTATION_OBSERVED_GENERATION]: "99999999999", [ANNOTATION_SLOTMAP_UID]: uid });
        break;
      case 5:
        what = "foreign ack forged";
        next = annotated({
          [ANNOTATION_OBSERVED_GENERATION]: String(status?.assignmentGeneration ?? 1),
          [ANNOTATION_SLOTMAP_UID]: "sm-uid-foreign",
        });
        break;
      default: {
        // The generation a pending migration from this shard waits for, and this SlotMap's uid.
        const granted = status?.shards.find((e) => e.name === name)?.holderIdentity;
        if (cur.spec.holderIdentity === granted && !this.opts.forgeGrantedAcks) return;
        const pending = status?.migrations.filter((m) => m.from === name).map((m) => m.generation) ?? [];
        const g = pending.length > 0 ? Math.max(...pending) : (status?.assignmentGeneration ?? 1);
        what = `pending ack ${g} forged`;
        next = annotated({ [ANNOTATION_OBSERVED_GENERATION]: String(g), [ANNOTATION_SLOTMAP_UID]: uid });
      }
    }
    this.server.personWriteLease(name, () => next);
    this.log(`person: Lease ${name} ${what}`);
  }

  /**
   * The garbage collector deletes the projections a deleted SlotMap instance owned (their
   * ownerReference names it: the spec's slotMapUid here, restored copies included).
   */
  #collect(g: { readonly uid: string; readonly at: number }): void {
    this.#gc = this.#gc.filter((x) => x !== g);
    const gone: string[] = [];
    for (const key of this.server.projectionKeys()) {
      const name = key.slice(PROJ_PREFIX.length);
      const p = this.server.projection(name);
      if ((p?.spec as ProjectionSpec | undefined)?.slotMapUid !== g.uid) continue;
      this.server.collectProjection(name);
      gone.push(name);
    }
    if (gone.length > 0) this.log(`garbage collector: projections of ${g.uid} deleted (${gone.join(", ")})`);
  }

  /** A tool touches every Lease it keeps touching (labels only: no renewal). */
  #touchTool(): void {
    for (const name of this.#touched) {
      const cur = this.server.lease(name);
      if (cur === null) continue;
      this.server.personWriteLease(name, () => ({
        ...cur,
        metadata: {
          ...cur.metadata,
          labels: { ...cur.metadata.labels, "example.com/scanned": String(Math.floor(this.now)) },
        },
      }));
    }
    this.#touchAt = this.now + TOUCH_EVERY_MS;
  }

  /** The rogue Lease (see the `rogue` command). */
  #rogue(a: number, b: number): void {
    const cur = this.server.lease(ROGUE);
    const wall = new Date(WALL0 + this.now).toISOString().replace("Z", "000Z");
    if (cur === null) {
      const seconds = b % 2 === 1 ? 3600 : 15;
      this.server.personWriteLease(ROGUE, () => ({
        metadata: {
          name: ROGUE,
          namespace: NS,
          uid: "",
          resourceVersion: "",
          labels: { [LABEL_SLOTMAP]: SLOTMAP_NAME },
          annotations: { [ANNOTATION_WEIGHT]: String(LIMITS.maxWeight) },
        },
        // A holder string of its own each time: a Lease re-created with the holder its deleted
        // predecessor was granted slots under inherits them (a finding, docs/verification.md).
        spec: {
          holderIdentity: `rogue-${++this.#personSeq}`,
          leaseDurationSeconds: seconds,
          acquireTime: wall,
          renewTime: wall,
        },
      }));
      this.log(`person: rogue Lease created (${seconds}s)`);
      return;
    }
    if (a % 4 === 0) {
      this.server.personWriteLease(ROGUE, () => null);
      this.log("person: rogue Lease deleted");
      return;
    }
    // Renewed by a process that reconciles nothing.
    this.server.personWriteLease(ROGUE, () => ({ ...cur, spec: { ...cur.spec, renewTime: wall } }));
    this.log("person: rogue Lease renewed");
  }

  /** A person or a tool deletes or restores projections (see the `projectionEdit` command). */
  #projectionEdit(a: number, b: number): void {
    const names = this.server.projectionKeys().map((k) => k.slice(PROJ_PREFIX.length));
    const existing = names.filter((n) => this.server.projection(n) !== null);
    const specOf = (v: Version<SimObject>): ProjectionSpec => (v.obj as SimProjection).spec as ProjectionSpec;
    switch (b % 5) {
      case 0: {
        const name = this.#pick(existing, a);
        if (name === undefined) return;
        this.server.personWriteProjection(name, null);
        this.log(`person: projection ${name} deleted`);
        return;
      }
      case 1:
      case 2: {
        const name = this.#pick(names, a);
        if (name === undefined) return;
        const h = this.server.versions(PROJ_PREFIX + name);
        const current = h.at(-1)?.obj ?? null;
        const older = h.filter((v) => v.obj !== null && v.obj !== current).slice(-30);
        const v = older[older.length - 1 - (Math.floor(b / 5) % Math.max(1, older.length))];
        if (v === undefined) return;
        this.server.personWriteProjection(name, specOf(v));
        this.log(
          `person: projection ${name} restored from a backup (rv ${v.rv}, generation ${specOf(v).assignmentGeneration}, uid ${specOf(v).slotMapUid})`,
        );
        return;
      }
      case 3: {
        for (const name of existing) this.server.personWriteProjection(name, null);
        if (existing.length > 0) this.log(`person: every projection deleted (${existing.join(", ")})`);
        return;
      }
      default: {
        // A backup of the namespace taken just after one of the last 30 projection writes.
        const rvs = names
          .flatMap((n) => this.server.versions(PROJ_PREFIX + n).map((v) => v.rv))
          .sort((x, y) => x - y)
          .slice(-30);
        const at = rvs[rvs.length - 1 - (a % Math.max(1, rvs.length))];
        if (at === undefined) return;
        const restored: string[] = [];
        for (const name of names) {
          const v = this.server
            .versions(PROJ_PREFIX + name)
            .filter((x) => x.rv <= at)
            .at(-1);
          if (v?.obj == null) continue;
          this.server.personWriteProjection(name, specOf(v));
          restored.push(`${name}@g${specOf(v).assignmentGeneration}`);
        }
        this.log(`person: projections restored from a backup at rv ${at}: ${restored.join(" ")}`);
      }
    }
  }

  /** A person sets the status generation back, or restores an older status (see `statusEdit`). */
  #statusEdit(a: number, b: number): void {
    const sm = this.server.slotMap();
    const status = sm?.status as SlotMapStatus | undefined;
    if (sm === null || status === undefined) return;
    if (b % 2 === 0) {
      // kubectl patch --subresource=status: assignmentGeneration set back (kept valid: not below a
      // pending migration's generation, which the schema requires).
      const floor = Math.max(1, ...status.migrations.map((m) => m.generation));
      const g = Math.max(floor, a % Math.max(1, status.assignmentGeneration));
      if (g >= status.assignmentGeneration) return;
      this.server.personWriteStatus({ ...status, assignmentGeneration: g });
      this.log(`person: status.assignmentGeneration set back from ${status.assignmentGeneration} to ${g}`);
      return;
    }
    // A backup restore: an older status of the same SlotMap instance, written with a newer resourceVersion.
    const older = this.server
      .versions(SM_KEY)
      .filter((v) => v.uid === sm.metadata.uid && (v.obj as SimSlotMap | null)?.status !== undefined)
      .map((v) => (v.obj as SimSlotMap).status as SlotMapStatus)
      .filter((st) => st.assignmentGeneration < status.assignmentGeneration)
      .slice(-30);
    // a = 0 restores the newest older status (the previous generation), the likeliest backup.
    const restored = older[older.length - 1 - (a % Math.max(1, older.length))];
    if (restored === undefined) return;
    this.server.personWriteStatus(restored);
    this.log(
      `person: status restored from a backup at generation ${restored.assignmentGeneration} (was ${status.assignmentGeneration})`,
    );
  }

  /**
   * A person edits spec.policy, switches the placement in spec.resources or the namespace
   * selector (rules.ts), or tries to move spec.leaseNamespace (rejected).
   */
  #specEdit(a: number, b: number): void {
    const policy = { ...this.#spec.policy };
    switch (b % 6) {
      case 3: {
        const resources = this.#spec.resources === RESOURCES_A ? RESOURCES_B : RESOURCES_A;
        this.#spec = { ...this.#spec, resources };
        this.server.updateSpec(this.#spec);
        this.log(`person: spec.resources → placement ${rulesOf(this.#spec).key}`);
        return;
      }
      case 4: {
        const { namespaceSelector, ...rest } = this.#spec;
        this.#spec = namespaceSelector === undefined ? { ...rest, namespaceSelector: SELECTOR } : rest;
        this.server.updateSpec(this.#spec);
        this.log(`person: spec.namespaceSelector ${namespaceSelector === undefined ? "set" : "removed"}`);
        return;
      }
      case 0:
        policy.maxMigratingSlots = [16384, 4096, 1000, 100][a % 4]!;
        break;
      case 1:
        policy.handoffTimeoutSeconds = [30, 10, 60, 120][a % 4]!;
        break;
      case 2:
        policy.maxLeaseDurationSeconds = [60, 15, 30, 120][a % 4]!;
        break;
      default: {
        const ok = this.server.updateSpec({ ...this.#spec, leaseNamespace: "elsewhere" });
        this.log(`person: spec.leaseNamespace change ${ok ? "ACCEPTED" : "rejected (immutable)"}`);
        if (ok) throw new Violation("core", "simulator: the API server accepted a leaseNamespace change");
        return;
      }
    }
    this.#spec = { ...this.#spec, policy };
    this.server.updateSpec(this.#spec);
    this.log(`person: spec.policy ${JSON.stringify(policy)}`);
  }

  // ================================================================== liveness

  /** Why the cluster has not converged, or undefined when it has (cheap checks only). */
  #notConverged(): string | undefined {
    const sm = this.server.slotMap();
    if (sm === null) return "no SlotMap";
    if (sm.status === undefined) return "no status";
    const { status, table } = checkedStatus(sm.status);
    if (table.migrations.length > 0) return `${table.migrations.length} migrations pending`;
    if (status.unassignedSlots !== "") return `unassigned slots ${status.unassignedSlots}`;
    const listing = this.#liveShards().find((p) => p.gainAt !== undefined);
    if (listing !== undefined) return `${this.#describe(listing.id)} is still listing gained slots`;
    const counts = ownedCounts(table);
    const ready = status.shards.filter((e) => stateOf(e) === "Ready");
    const projected = this.#projectionsOff(sm, status);
    if (typeof projected === "string") return projected;
    for (const [name, n] of counts) {
      if (n === 0) continue;
      const e = status.shards.find((x) => x.name === name);
      if (e === undefined || stateOf(e) !== "Ready")
        return `${name} owns ${n} slots but is ${stateOf(e) ?? "unlisted"}`;
      const lease = this.server.lease(name);
      if (lease?.spec.holderIdentity !== e.holderIdentity)
        return `${name}: Lease holder is not the granted one`;
      const p = this.#liveShards().find((x) => x.name === name && x.machine.identity() === e.holderIdentity);
      if (p === undefined) return `${name}: no live process holds identity ${e.holderIdentity}`;
      if (p.machine.phase() !== "active") return `${name}: process is ${p.machine.phase()}`;
      // Its projection's generation: that of the status where what it reads last changed.
      const g = projected.get(name)!;
      if (p.machine.ownership.uid !== sm.metadata.uid || p.machine.ownership.generation !== g)
        return `${name}: has not applied its projection (generation ${g} of ${sm.metadata.uid})`;
      if (p.machine.snapshot().regressedAt !== undefined)
        return `${name}: owns nothing under a projection set back (generation ${g})`;
      if (status.rulesFingerprint !== undefined && p.rules?.fingerprint !== status.rulesFingerprint)
        return `${name}: applies rules ${p.rules?.fingerprint ?? "none"}, the table ${status.rulesFingerprint}`;
    }
    // Every shard with a live process takes part: one of its processes holds the Lease, is active,
    // and the status lists it Ready with that holder.
    for (const name of new Set(this.#liveShards().map((p) => p.name))) {
      const procs = this.#liveShards().filter((p) => p.name === name);
      if (procs.every((p) => p.machine.phase() === "draining")) continue;
      const holder = this.server.lease(name)?.spec.holderIdentity;
      const p = procs.find((x) => x.machine.identity() === holder && x.machine.phase() === "active");
      if (p === undefined) return `${name}: no live process holds its Lease and is active`;
      const e = status.shards.find((x) => x.name === name);
      if (e === undefined || stateOf(e) !== "Ready" || e.holderIdentity !== holder)
        return `${name}: not Ready for ${holder}`;
    }
    const weights = new Map(
      ready.map((e) => {
        const lease = this.server.lease(e.name);
        const lw = parseShardLeaseAnnotations(lease?.metadata.annotations).weight;
        return [e.name, effectiveWeight(sm.spec, e.name, lw)] as const;
      }),
    );
    let sum = 0;
    for (const w of weights.values()) sum += w;
    if (sum === 0) return "no Ready shard with weight > 0";
    for (const [name, w] of weights) {
      const want = (SLOT_COUNT * w) / sum;
      const have = counts.get(name) ?? 0;
      if (Math.abs(have - want) >= 1 + 1e-9)
        return `unbalanced: ${name} has ${have} slots, target ${want.toFixed(2)}`;
    }
    return undefined;
  }

  /**
   * Liveness of the projections: every shard the table lists and every live Lease has its
   * projection, showing the final status (`sameProjection`, for this SlotMap instance), and no
   * other projection is left. Returns why not, or each shard's projected generation.
   */
  #projectionsOff(sm: SimSlotMap, status: SlotMapStatus): string | Map<string, number> {
    const shards = new Set(status.shards.map((e) => e.name));
    for (const key of this.server.leaseKeys()) {
      const name = key.slice(LEASE_PREFIX.length);
      if (this.server.lease(name) !== null) shards.add(name);
    }
    const slotMap = { name: sm.metadata.name, uid: sm.metadata.uid };
    const out = new Map<string, number>();
    for (const shard of shards) {
      const obj = this.server.projection(projectionName(SLOTMAP_NAME, shard));
      if (obj === null) return `no projection for ${shard}`;
      const parsed = parseProjectionSpec(obj.spec);
      if (!parsed.ok || !sameProjection(parsed.value, projectStatus(status, slotMap, shard)))
        return `the projection of ${shard} does not show the status`;
      out.set(shard, parsed.value.assignmentGeneration);
    }
    const wanted = new Set([...shards].map((n) => projectionName(SLOTMAP_NAME, n)));
    for (const key of this.server.projectionKeys()) {
      const name = key.slice(PROJ_PREFIX.length);
      if (!wanted.has(name) && this.server.projection(name) !== null)
        return `projection ${name} left over (no Lease, not listed)`;
    }
    return out;
  }

  /** Expensive final check: each owner's machine owns exactly its slots of the table. */
  #checkOwnershipMasks(): void {
    const sm = this.server.slotMap()!;
    const { status, table } = checkedStatus(sm.status);
    for (let s = 0; s < SLOT_COUNT; s++) {
      const o = table.owner[s]!;
      const name = table.shards[o];
      const e = status.shards.find((x) => x.name === name);
      for (const p of this.#liveShards()) {
        const should = p.name === name && p.machine.identity() === e?.holderIdentity;
        if (p.machine.ownsSlot(s) !== should) {
          throw new Violation(
            "liveness",
            `after settling, ${this.#describe(p.id)} ${should ? "does not own" : "owns"} slot ${s} (status: ${name})`,
          );
        }
      }
    }
    this.#checkRuntimeCaches();
  }

  /**
   * After settling, each live runtime caches exactly the roots of the slots its machine owns (of
   * every slot, with `cache: "all"`), each with its controlled objects: no gain (or warm import)
   * left an owned object out, none kept a lost one.
   */
  #checkRuntimeCaches(): void {
    for (const p of this.#liveShards()) {
      const rules = p.rules;
      if (rules === undefined) continue;
      for (let k = 0; k < this.keySlots.length; k++) {
        const isRoot = rootOf(rules, k) === k && inScope(rules, k);
        const should = isRoot && (p.runtime.cachesAllSlots || p.machine.ownsSlot(this.keySlots[k]!));
        const work = p.runtime.work(k);
        const objects = should ? objectsOf(rules, k, this.keySlots.length) : [];
        if ((work?.objects ?? []).join() !== objects.join()) {
          throw new Violation(
            "cache",
            `after settling, ${this.#describe(p.id)} caches k${k} with [${work?.objects.join(",") ?? ""}], not [${objects.join(",")}] (slot ${this.keySlots[k]})`,
          );
        }
      }
    }
  }

  /**
   * A rogue Lease that never renews and never acknowledges holds a drain barrier for its whole
   * declared duration (the barrier waits for every live Lease, refused or not: a finding, see
   * docs/verification.md). After 60 s of the settle with the barrier waiting, the operator deletes
   * it, as the LeaseDurationRefused Warning tells them to. Counted.
   */
  #operatorRemovesBlockingRogue(settleStart: number): void {
    if (this.now - settleStart < 60_000 || this.server.lease(ROGUE) === null) return;
    const ready = (this.server.slotMap()?.status as SlotMapStatus | undefined)?.conditions.find(
      (c) => c.type === "Ready",
    );
    if (ready?.reason !== "DrainBarrier" && ready?.reason !== "PreviousInstanceDraining") return;
    this.server.personWriteLease(ROGUE, () => null);
    this.stats.rogueRemovals += 1;
    this.log("operator: rogue Lease deleted (it held a drain barrier)");
  }

  /** Makes sure some live shard can take slots (weight > 0), as an operator would. */
  #ensureCapacity(): void {
    const alive = this.#liveShards().filter((p) => p.machine.phase() !== "draining");
    // Whichever of a shard's processes ends up holding its Lease, its weight is positive.
    const positive = (name: string): boolean => {
      const w = this.#spec.weights?.[name];
      if (w !== undefined) return w > 0;
      // A process without a weight option leaves the Lease's annotation alone (e.g. a 0 left there).
      const annotated = parseShardLeaseAnnotations(this.server.lease(name)?.metadata.annotations).weight;
      return alive.filter((p) => p.name === name).every((p) => (p.weight ?? annotated) > 0);
    };
    if (alive.some((p) => positive(p.name))) return;
    let p = alive[0];
    if (p === undefined) {
      const free =
        this.names.find((n) => !this.shards.some((s) => s.alive && s.name === n)) ?? this.names[0]!;
      p = this.#join(free, undefined);
    }
    this.#spec = { ...this.#spec, weights: { ...(this.#spec.weights ?? {}), [p.name]: 1 } };
    this.server.updateSpec(this.#spec);
  }

  /**
   * The fault-free phase: every paused process resumes, the network delivers everything promptly,
   * reconciles keep starting and finish quickly. Asserts that within `settleLimitMs` of simulated
   * time every slot is owned by a Ready shard whose live process owns it, balanced ±1 by weight,
   * and that it stays so.
   *
   * @returns the simulated time it took to converge
   */
  settle(): number {
    this.#settling = true;
    try {
      return this.#settle();
    } finally {
      this.#settling = false;
    }
  }

  #settle(): number {
    const start = this.now;
    for (const p of this.shards) if (p.alive && p.paused) this.#resume(p);
    if (this.coordinator.paused) this.#resume(this.coordinator);
    for (const p of [...this.shards, this.coordinator]) {
      p.cutUntil = 0;
      p.watchStallUntil = 0;
      p.leaseStallUntil = 0;
    }
    if (this.server.slotMap() === null) this.server.createSlotMap(this.#spec);
    this.#ensureCapacity();
    let convergedAt: number | undefined;
    let convergedGeneration = -1;
    let why: string | undefined = "not checked";
    const tickMs = 250;
    while (this.now - start <= this.opts.settleLimitMs) {
      this.flush();
      this.#coordinatorStep();
      this.flush();
      for (const p of this.#liveShards()) for (const k of [...p.inFlight.keys()]) this.#finish(p, k);
      for (let i = 0; i < 2; i++) {
        const key = this.rng.int(this.keySlots.length);
        for (const p of this.#liveShards()) this.#enqueue(p, key);
      }
      for (const p of this.#liveShards()) for (const k of [...p.queue].slice(0, 3)) this.#start(p, k);
      this.advanceTo(this.now + tickMs);
      this.#operatorRemovesBlockingRogue(start);
      // A process may still exit in the settle (escalate: a stuck reconcile on a moved slot).
      this.#ensureCapacity();
      why = this.#notConverged();
      // Converged means: it holds for 10 s in a row at one generation (a renewal that was failing
      // when the faults stopped may still fence a shard for a moment).
      if (why !== undefined) {
        convergedAt = undefined;
        continue;
      }
      const g = checkedStatus(this.server.slotMap()!.status).table.generation;
      if (convergedAt === undefined || g !== convergedGeneration) {
        convergedAt = this.now;
        convergedGeneration = g;
      } else if (this.now - convergedAt >= 10_000) {
        this.#checkOwnershipMasks();
        this.stats.settleMs = convergedAt - start;
        return convergedAt - start;
      }
    }
    throw new Violation(
      "liveness",
      `not converged within ${this.opts.settleLimitMs / 1000}s of fault-free time: ${why}; ${this.describeWorld()}`,
    );
  }

  /** The SlotMap status, Leases and processes, for failure messages. */
  describeWorld(): string {
    const sm = this.server.slotMap();
    const st = sm?.status;
    const leases = this.names.map((n) => {
      const l = this.server.lease(n);
      return l === null
        ? `${n}:absent`
        : `${n}:${l.spec.holderIdentity || "-"}:${JSON.stringify(l.metadata.annotations)}`;
    });
    const procs = this.shards.filter((p) => p.alive).map((p) => this.#describe(p.id));
    return `status ${st === undefined ? "none" : summary(st)} (uid ${sm?.metadata.uid ?? "-"}, conditions ${JSON.stringify(st?.conditions.map((c) => [c.type, c.status, c.reason]))}); leases ${leases.join(" ")}; processes ${procs.join(", ")}`;
  }

  /** Counters so far. */
  result(): SimStats {
    const sm = this.server.slotMap();
    this.stats.statusWrites = this.server.statusWrites;
    this.stats.conflicts = this.server.conflicts;
    this.stats.migrationsToNotReady = this.server.migrationsToNotReady;
    this.stats.personWrites = this.server.personWrites;
    this.stats.generation = sm?.status?.assignmentGeneration ?? 0;
    this.stats.simulatedMs = this.now;
    return { ...this.stats };
  }
}

/** Outcome of one scenario. */
export interface ScenarioResult {
  readonly stats: SimStats;
  /** Command index at which a violation was found (commands.length: in the final settle). */
  readonly failedAt?: number;
}

/**
 * Runs a scenario: a warm-up settle (a balanced cluster to start from), the commands (faults),
 * then the final settle (liveness). Throws a {@link Violation} on the first broken invariant, with
 * `commandIndex` set.
 */
export function runScenario(opts: SimOptions, commands: readonly Command[]): SimStats {
  const sim = new Simulation(opts);
  let i = -1;
  try {
    sim.settle();
    for (i = 0; i < commands.length; i++) sim.exec(commands[i]!);
    sim.settle();
  } catch (e) {
    if (e instanceof Violation) {
      Object.assign(e, { commandIndex: i, stats: sim.result(), trace: sim.trace() });
    }
    throw e;
  }
  return sim.result();
}
