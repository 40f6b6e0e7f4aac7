/**
 * Shard membership with real I/O: drives the sans-I/O {@link ShardMachine} (src/client/core) with
 * watches of the shard's Lease, of its SlotMapShard projection (what it owns: the coordinator
 * projects the status into one small object per shard) and of its SlotMap's metadata (uid,
 * deletion, spec generation; the spec is read when it changes), Lease writes with resourceVersion
 * preconditions, and a timer at the machine's `nextWakeAt`. The machine's clock is
 * `performance.now()` (monotonic); wall time only goes into the Lease's acquireTime/renewTime.
 * The SlotMap's resource rules come from a {@link RulesSource} (discovery, the Namespace watch).
 *
 * A {@link ShardMember} answers "may this process reconcile slot s now?" in O(1), tells the runtime
 * which slots it gained and lost, and tracks in-flight reconciles so that it acknowledges a handoff
 * only after they finished (DESIGN.md "The handoff protocol"; docs/client.md for the guarantees).
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { KubeConfig } from "@kubernetes/client-node";
import { z } from "zod";
import { type FieldError, formatFieldErrors } from "../api/errors.js";
import { PROJECTION_PLURAL, projectionName } from "../api/projection.js";
import {
  GROUP,
  LIMITS,
  PATTERNS,
  PLURAL,
  parseSlotMapSpec,
  parseWith,
  type SlotMapSpec,
  VERSION,
} from "../api/v1alpha1.js";
import { isStatus, KubeHttp, type KubeObject } from "../kube/http.js";
import { Reflector } from "../kube/reflector.js";
import { keyOf, ObjectCache } from "../kube/store.js";
import { backoffDelay } from "../runtime/backoff.js";
import type { KubeObjectLike } from "../slots/keys.js";
import { SLOT_COUNT, type SlotRange } from "../slots/types.js";
import {
  checkLeaseTimings,
  type FenceReason,
  type LeaseObject,
  type LeaseWriteResult,
  Ownership,
  type OwnershipChangeReason,
  parseShardMachineOptions,
  readProjection,
  type ShardEffect,
  type ShardInput,
  ShardMachine,
  type ShardPhase,
  type WriteLeaseEffect,
} from "./core/index.js";
import { type ShardLogger, silentLogger } from "./logger.js";
import type { SlotRules } from "./rules.js";
import { RulesSource } from "./rules-source.js";

/** Options of {@link createShardMember}. */
export interface ShardMemberOptions {
  /** Credentials and API server (e.g. `kc.loadFromDefault()`). */
  kubeConfig: KubeConfig;
  /** Name of the SlotMap this controller is sharded by. */
  slotMap: string;
  /** Name of this shard = name of its Lease (e.g. the StatefulSet pod name). */
  shard: string;
  /**
   * Namespace of the shard Lease. Default: the SlotMap's `spec.leaseNamespace` (the member then
   * waits for the SlotMap to exist). When set and different from the spec, the coordinator will not
   * see the Lease: an error is logged.
   */
  leaseNamespace?: string | undefined;
  /** Start of the Lease's holderIdentity (`<prefix>-<random>-<n>`). Default: `shard`. */
  identityPrefix?: string | undefined;
  /** Lease duration written into the Lease (whole seconds). Default 15. */
  leaseDurationSeconds?: number | undefined;
  /** Stop starting reconciles when the Lease was not renewed for this long. Default 10. */
  renewDeadlineSeconds?: number | undefined;
  /** Renew cadence and retry backoff. Default 2. */
  retryPeriodSeconds?: number | undefined;
  /** Written as `slotmap.dev/weight` (0 drains the shard). Default: leave the annotation alone. */
  weight?: number | undefined;
  /**
   * Abort (AbortSignal) in-flight reconciles of slots being handed off after this long. Default:
   * never; keep it well below the SlotMap's `handoffTimeoutSeconds`.
   */
  handoffAbortAfterSeconds?: number | undefined;
  /** Structured logger (pino works). Default: silent. */
  logger?: ShardLogger | undefined;
  /**
   * Called when a reconcile on slots this shard lost ignored its abort for the SlotMap's
   * `spec.policy.handoffTimeoutSeconds`: the member has stopped renewing its Lease, and the process
   * must end that reconcile by exiting (without releasing: the coordinator fences the shard by Lease
   * expiry, then completes the handoff). Default: log at error and `process.exit(70)`, as a
   * leader that loses its election exits in controller-runtime.
   */
  onEscalate?: ((stuckKeys: readonly string[]) => void) | undefined;
}

/** Receives membership events; every method is optional. Calls are synchronous and in order. */
export interface ShardMemberListener {
  /** These slots may now be reconciled: enqueue every object in them. */
  slotsGained?(event: SlotChange): void;
  /** These slots are no longer ours: drop queued work (in-flight reconciles finish; then the ack). */
  slotsLost?(event: SlotChange): void;
  /**
   * The slots migrating to this shard now (the whole set, after `slotsGained`/`slotsLost` of the
   * same status): their objects may be cached ahead of the commit (a warm handoff), never
   * reconciled until `slotsGained`.
   */
  slotsImporting?(ranges: readonly SlotRange[]): void;
  /** No reconcile may start (renew deadline passed, Lease lost, or released). */
  fenced?(reason: FenceReason): void;
  /** The Lease is held and renewed in time again. */
  unfenced?(identity: string): void;
  /** An assignment generation was acknowledged in the Lease. */
  acked?(uid: string, generation: number): void;
  /** The SlotMap's resource rules changed (spec change, or first resolution). */
  rulesChanged?(rules: SlotRules): void;
  /** A namespace started or stopped matching `spec.namespaceSelector`. */
  namespacesChanged?(): void;
  /** The member stopped (Lease released, or stop timed out). */
  stopped?(): void;
}

/** A change of owned slots. */
export interface SlotChange {
  readonly ranges: readonly SlotRange[];
  /** Assignment generation of the newest projection applied (where this shard's part last changed). */
  readonly generation: number;
  readonly reason: OwnershipChangeReason;
}

/** A started reconcile, from {@link ShardMember.begin}; call `finish()` exactly when it ends. */
export interface ReconcileTicket {
  /** Aborted when the shard is fenced, stops with `abortInFlight`, or a handoff times out. */
  readonly signal: AbortSignal;
  /**
   * The fencing token of this reconcile (`slotmap.dev/fence`, see docs/fencing.md): stamp it on
   * every write to a sharded object so the shipped admission policy refuses the write should this
   * shard lose the slot before the write lands.
   */
  readonly fence: string;
  /** Reports the end of the reconcile (idempotent). */
  finish(): void;
}

/** Options of {@link ShardMember.stop}. */
export interface StopOptions {
  /** Abort in-flight reconciles instead of waiting for them. Default false. */
  abortInFlight?: boolean;
  /**
   * Give up waiting (drain and release) after this long; the Lease then expires instead of
   * being released. Default: wait as long as it takes.
   */
  timeoutMs?: number;
}

/** A summary of the member's state, for logs, metrics and tests. */
export interface ShardMemberStatus {
  phase: ShardPhase | "waitingForSlotMap";
  identity: string | undefined;
  leaseNamespace: string | undefined;
  slotMapUid: string | undefined;
  /** Assignment generation of the newest projection applied (where this shard's part last changed). */
  generation: number;
  ackedGeneration: number;
  ownedSlots: number;
  inFlight: number;
}

const MemberOptionsSchema = z
  .object({
    slotMap: z
      .string()
      .min(1)
      .max(LIMITS.nameLength)
      .regex(PATTERNS.dnsSubdomain, { error: "must be the name of a SlotMap (a DNS-1123 subdomain)" }),
    shard: z
      .string()
      .min(1)
      .max(253)
      .regex(PATTERNS.dnsSubdomain, { error: "must be a Lease name (a DNS-1123 subdomain)" }),
    leaseNamespace: z
      .string()
      .regex(PATTERNS.dnsLabel, { error: "must be a namespace name (a DNS-1123 label)" })
      .max(63)
      .optional(),
    identityPrefix: z.string().min(1).optional(),
    leaseDurationSeconds: z.int({ error: "must be a whole number of seconds" }).min(1).max(3600).default(15),
    renewDeadlineSeconds: z.number().positive().max(3600).default(10),
    retryPeriodSeconds: z.number().positive().max(600).default(2),
    weight: z.int().min(0).max(LIMITS.maxWeight).optional(),
    handoffAbortAfterSeconds: z.number().positive().max(LIMITS.maxHandoffTimeoutSeconds).optional(),
  })
  .superRefine((o, ctx) =>
    // The shard machine checks the same in milliseconds; here in the seconds the user wrote.
    checkLeaseTimings(
      ctx,
      {
        leaseDuration: o.leaseDurationSeconds,
        renewDeadline: o.renewDeadlineSeconds,
        retryPeriod: o.retryPeriodSeconds,
      },
      {
        leaseDuration: "leaseDurationSeconds",
        renewDeadline: "renewDeadlineSeconds",
        retryPeriod: "retryPeriodSeconds",
      },
    ),
  );

/** Invalid member options: the message names each field and value, one line each. */
export class ShardMemberConfigError extends Error {
  /** Every problem found (all of them, not only the first), with its field path and value. */
  readonly errors: readonly FieldError[];

  constructor(message: string, errors: readonly FieldError[] = []) {
    super(message);
    this.name = "ShardMemberConfigError";
    this.errors = errors;
  }
}

const SLOTMAPS_PATH = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
const leasesPath = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
const EMPTY_OWNERSHIP = new Ownership(new Uint8Array(SLOT_COUNT), {
  generation: 0,
  uid: undefined,
  resourceVersion: undefined,
});

type PendingInput = ShardInput extends infer I ? (I extends ShardInput ? Omit<I, "now"> : never) : never;

/**
 * Creates and starts a shard member: it watches the SlotMap and its Lease at once and acquires
 * the Lease as soon as it is free. Await {@link ShardMember.ready} before relying on ownership.
 *
 * @throws ShardMemberConfigError (synchronously) naming the bad option and its value.
 */
export function createShardMember(options: ShardMemberOptions): ShardMember {
  return new ShardMember(options);
}

/** One shard's membership in a SlotMap. See {@link createShardMember}. */
export class ShardMember {
  /** Name of the SlotMap. */
  readonly slotMap: string;
  /** Name of this shard (its Lease). */
  readonly shard: string;
  /** The credentials the member uses (the controller runtime lists with the same). */
  readonly kubeConfig: KubeConfig;
  /** The member's logger (`options.logger`, else silent); the controller runtime logs to it by default. */
  get logger(): ShardLogger {
    return this.#log;
  }
  /**
   * Resolves once the member holds its Lease (renewed in time), has observed the SlotMap and has
   * resolved the SlotMap's resources; rejects if {@link stop} comes first.
   */
  readonly ready: Promise<void>;

  readonly #http: KubeHttp;
  readonly #log: ShardLogger;
  readonly #machineOptions: {
    holderIdentityPrefix: string;
    incarnationSalt: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
    weight: number | undefined;
    handoffAbortAfterMs: number | undefined;
  };
  readonly #leaseNamespaceOption: string | undefined;
  readonly #onEscalate: ((stuckKeys: readonly string[]) => void) | undefined;
  #machine: ShardMachine | undefined;
  #ownership: Ownership = EMPTY_OWNERSHIP;
  #leaseNamespace: string | undefined;

  readonly #listeners = new Set<ShardMemberListener>();
  readonly #inputs: PendingInput[] = [];
  #draining = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #closing = new AbortController();
  #closed = false;

  readonly #slotMapReflector: Reflector<KubeObject>;
  #leaseReflector: Reflector<KubeObject> | undefined;
  /** The Lease watch waits for this ({@link ShardMember.deferJoin}). */
  #joinGate: PromiseLike<unknown> = Promise.resolve();
  /** Whether the Lease watch has started (deferJoin is too late then). */
  #joinStarted = false;
  readonly #rulesSource: RulesSource;

  #slotMapUid: string | undefined;
  /** The last SlotMap uids seen deleted or replaced (bounded): their late events are ignored. */
  #goneUids: readonly string[] = [];
  /** uid and metadata.generation of the SlotMap whose spec was last read (or is being read). */
  #specOf: { uid: string; generation: number | undefined } | undefined;
  #specFailures = 0;
  #specTimer: NodeJS.Timeout | undefined;
  /** `spec.policy.handoffTimeoutSeconds` of the spec last read. */
  #handoffTimeoutSeconds: number | undefined;
  #projectionReflector: Reflector<KubeObject> | undefined;
  readonly #projectionStore = new ObjectCache<KubeObject>();
  /** The importing slots last reported (formatted), to report changes only. */
  #importing = "";
  // The two single-object watches keep their object in a store, whose re-list (Replace semantics)
  // tells a deletion missed while the watch was down: absent after a list means gone.
  readonly #slotMapStore = new ObjectCache<KubeObject>();
  readonly #leaseStore = new ObjectCache<KubeObject>();
  /** placementFingerprint of the spec the current rules were resolved from. */
  #rulesFingerprint: string | undefined;

  readonly #tickets = new Map<string, Set<AbortController>>();
  #resolveReady!: () => void;
  #rejectReady!: (err: Error) => void;
  #readyDone = false;
  #unfencedOnce = false;
  #stopPromise: Promise<void> | undefined;
  #resolveStopped: (() => void) | undefined;

  /** Use {@link createShardMember}. */
  constructor(options: ShardMemberOptions) {
    const r = parseWith(MemberOptionsSchema, {
      slotMap: options.slotMap,
      shard: options.shard,
      leaseNamespace: options.leaseNamespace,
      identityPrefix: options.identityPrefix,
      leaseDurationSeconds: options.leaseDurationSeconds,
      renewDeadlineSeconds: options.renewDeadlineSeconds,
      retryPeriodSeconds: options.retryPeriodSeconds,
      weight: options.weight,
      handoffAbortAfterSeconds: options.handoffAbortAfterSeconds,
    });
    if (!r.ok)
      throw new ShardMemberConfigError(
        `invalid shard member options:\n${formatFieldErrors(r.errors)}`,
        r.errors,
      );
    if (options.kubeConfig === undefined || options.kubeConfig === null) {
      throw new ShardMemberConfigError(
        "invalid shard member options:\nkubeConfig: required field is missing",
      );
    }
    const o = r.value;
    this.slotMap = o.slotMap;
    this.kubeConfig = options.kubeConfig;
    this.shard = o.shard;
    this.#leaseNamespaceOption = o.leaseNamespace;
    this.#log = options.logger ?? silentLogger;
    this.#onEscalate = options.onEscalate;
    this.#machineOptions = {
      holderIdentityPrefix: o.identityPrefix ?? o.shard,
      incarnationSalt: randomBytes(4).toString("hex"),
      leaseDurationMs: o.leaseDurationSeconds * 1000,
      renewDeadlineMs: Math.round(o.renewDeadlineSeconds * 1000),
      retryPeriodMs: Math.round(o.retryPeriodSeconds * 1000),
      weight: o.weight,
      handoffAbortAfterMs:
        o.handoffAbortAfterSeconds === undefined ? undefined : Math.round(o.handoffAbortAfterSeconds * 1000),
    };
    // Validate the machine options now (durations, identity length), with a placeholder namespace
    // when it comes from the SlotMap later, so that a bad option fails here and not at runtime.
    try {
      parseShardMachineOptions(this.#fullMachineOptions(o.leaseNamespace ?? "default"));
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new ShardMemberConfigError(
        msg
          .replace("invalid shard machine options", "invalid shard member options")
          .replace(/renewDeadlineMs/g, "renewDeadlineSeconds (in ms)")
          .replace(/retryPeriodMs/g, "retryPeriodSeconds (in ms)")
          .replace(/leaseDurationMs/g, "leaseDurationSeconds (in ms)")
          .replace(/holderIdentityPrefix/g, "identityPrefix"),
      );
    }

    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // a stop before ready is not an unhandled rejection

    this.#http = new KubeHttp(options.kubeConfig);
    this.#rulesSource = new RulesSource({
      http: this.#http,
      log: this.#log,
      fields: () => this.#fields(),
      onRules: (rules, fingerprint) => this.#onRules(rules, fingerprint),
      onNamespacesChanged: () => this.#emit((l) => l.namespacesChanged?.()),
    });
    if (this.#leaseNamespaceOption !== undefined) this.#startLease(this.#leaseNamespaceOption);
    this.#slotMapReflector = new Reflector<KubeObject>({
      http: this.#http,
      path: SLOTMAPS_PATH,
      fieldSelector: `metadata.name=${this.slotMap}`,
      // Metadata only: the status lists every shard, and each shard reads its own projection.
      metadataOnly: true,
      handler: {
        onListStart: () => this.#slotMapStore.beginList(),
        onEvent: (type, obj) => {
          if (type === "DELETED") {
            this.#slotMapStore.remove(keyOf(obj), obj);
            this.#onSlotMapDeleted(obj);
          } else {
            this.#slotMapStore.put(obj);
            this.#onSlotMap(obj);
          }
        },
        onSynced: () => {
          this.#slotMapStore.endList();
          if (this.#slotMapStore.size === 0) {
            if (this.#slotMapUid !== undefined) this.#onSlotMapDeleted(undefined);
            else {
              this.#log.warn(
                this.#fields(),
                this.#leaseNamespace === undefined
                  ? "SlotMap not found: waiting for it (its spec.leaseNamespace names the Lease namespace)"
                  : "SlotMap not found: owning nothing until it exists",
              );
            }
          }
        },
        onError: (err) => this.#log.warn({ ...this.#fields(), err }, "SlotMap watch failed; retrying"),
      },
    });
    void this.#slotMapReflector.start().catch(() => {});
  }

  // ---------------------------------------------------------------- queries

  /**
   * O(1), allocation-free: whether this shard owns `slot` now (granted to its Lease identity in
   * the newest SlotMap status it applied, and not fenced). Filter informer events with it; use
   * {@link mayStart} (or {@link begin}) right before a reconcile.
   */
  ownsSlot(slot: number): boolean {
    return this.#ownership.ownsSlot(slot);
  }

  /** The live ownership view (never replaced once the Lease namespace is known). */
  get ownership(): Ownership {
    return this.#ownership;
  }

  /**
   * Whether a reconcile of an object in `slot` may start now: owned, the Lease renewed within the
   * renew deadline (checked against the clock now), and no stop requested.
   */
  mayStart(slot: number): boolean {
    return this.#machine?.mayStart(slot, performance.now()) ?? false;
  }

  /**
   * Delays joining (watching and acquiring the shard Lease, so the coordinator sees this shard)
   * until `until` settles; the SlotMap and its rules are read meanwhile. The sharded controller
   * with `cache: "all"` calls it with its first sync, so that a new shard takes slots only with a
   * warm cache. Works only before the Lease watch starts: call it in the tick that created the
   * member.
   *
   * @returns whether the join was deferred (false: the Lease watch had started already)
   */
  deferJoin(until: PromiseLike<unknown>): boolean {
    if (this.#joinStarted || this.#closed) return false;
    const before = this.#joinGate;
    this.#joinGate = Promise.all([before, until]);
    return true;
  }

  /** The SlotMap's resource rules once resolved (undefined before). */
  get rules(): SlotRules | undefined {
    return this.#rulesSource.rules;
  }

  /** Resolves with the resource rules as soon as they are known. */
  whenRules(): Promise<SlotRules> {
    return this.#rulesSource.whenRules();
  }

  /**
   * The slot of an object of one of the SlotMap's resources (by its apiVersion and kind), or
   * undefined when it is not sharded: not a resource of the SlotMap, a controlled object
   * without a controller owner, a namespace outside `spec.namespaceSelector`, an object whose key
   * cannot be determined, or rules not resolved yet.
   */
  slotOf(obj: KubeObjectLike): number | undefined {
    return this.#rulesSource.rules?.slotOf(obj);
  }

  /** Whether this shard owns the object's slot now; false for objects that are not sharded. */
  owns(obj: KubeObjectLike): boolean {
    const slot = this.slotOf(obj);
    return slot !== undefined && this.ownsSlot(slot);
  }

  /** Our Lease holderIdentity while we hold it. */
  get identity(): string | undefined {
    return this.#machine?.identity();
  }

  /**
   * Assignment generation of the newest projection applied: the status generation where this
   * shard's part of the table last changed (0 before any). The shard acknowledges it.
   */
  get generation(): number {
    return this.#ownership.generation;
  }

  /** A summary of the state. */
  status(): ShardMemberStatus {
    const m = this.#machine;
    const i = m?.inspect();
    return {
      phase: m === undefined ? "waitingForSlotMap" : m.phase(),
      identity: i?.identity,
      leaseNamespace: this.#leaseNamespace,
      slotMapUid: this.#slotMapUid,
      generation: i?.generation ?? 0,
      ackedGeneration: m?.ackedGeneration() ?? 0,
      ownedSlots: this.#ownership.ownedCount(),
      inFlight: i?.inFlight ?? 0,
    };
  }

  // ---------------------------------------------------------------- reconcile tracking

  /**
   * Starts a reconcile of `key` (an object in `slot`) if {@link mayStart} allows it, and tracks it
   * until `finish()`: lost slots are acknowledged only after their reconciles finished. Returns
   * undefined (nothing started) when the slot may not start now. The check and the start are one
   * synchronous step, so nothing can fence the shard in between.
   */
  begin(slot: number, key: string): ReconcileTicket | undefined {
    const m = this.#machine;
    if (m === undefined || this.#closed || !m.mayStart(slot, performance.now())) return undefined;
    const controller = new AbortController();
    let set = this.#tickets.get(key);
    if (set === undefined) {
      set = new Set();
      this.#tickets.set(key, set);
    }
    set.add(controller);
    this.#feed({ type: "reconcileStarted", slot, key });
    const fence = m.ownership.fence();
    let finished = false;
    return {
      signal: controller.signal,
      fence,
      finish: () => {
        if (finished) return;
        finished = true;
        const s = this.#tickets.get(key);
        s?.delete(controller);
        if (s?.size === 0) this.#tickets.delete(key);
        this.#feed({ type: "reconcileFinished", slot, key });
      },
    };
  }

  /**
   * Runs `fn` as a tracked reconcile of `key` in `slot` when it may start; returns
   * `{ started: false }` without calling it otherwise. `fn` gets an AbortSignal: honour it (check
   * it before every write) so a fenced shard stops within the safety margin.
   */
  async track<T>(
    slot: number,
    key: string,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<{ started: true; value: T } | { started: false }> {
    const ticket = this.begin(slot, key);
    if (ticket === undefined) return { started: false };
    try {
      return { started: true, value: await fn(ticket.signal) };
    } finally {
      ticket.finish();
    }
  }

  // ---------------------------------------------------------------- events

  /** Registers a listener; returns a function that removes it. */
  subscribe(listener: ShardMemberListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ---------------------------------------------------------------- stop

  /**
   * Graceful stop: no new reconciles from now on; waits for in-flight ones (or aborts them with
   * `abortInFlight`), acknowledges the newest generation, releases the Lease (holderIdentity
   * cleared: the coordinator reassigns the slots at once), then stops watching. Idempotent.
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.#stopPromise ??= this.#stop(options);
    return this.#stopPromise;
  }

  async #stop(options: StopOptions): Promise<void> {
    if (!this.#readyDone) {
      this.#readyDone = true;
      this.#rejectReady(new Error(`shard ${this.shard}: stopped before it was ready`));
    }
    if (this.#machine !== undefined) {
      const stopped = new Promise<void>((resolve) => {
        this.#resolveStopped = resolve;
      });
      this.#feed({ type: "shutdown", abortInFlight: options.abortInFlight === true });
      if (this.#machine.phase() !== "stopped") {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>((resolve) => {
          if (options.timeoutMs !== undefined) timer = setTimeout(() => resolve(true), options.timeoutMs);
        });
        const late = await Promise.race([stopped.then(() => false), timedOut]);
        clearTimeout(timer);
        if (late) {
          this.#log.warn(
            { ...this.#fields(), inFlight: this.#machine.inspect().inFlight, timeoutMs: options.timeoutMs },
            "stop timed out: not releasing the Lease; it will expire",
          );
        }
      }
    }
    await this.#close();
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#closing.abort();
    const rulesStopped = this.#rulesSource.stop();
    // Not released in time (stop timed out): whatever still runs must stop, the Lease will expire.
    for (const set of this.#tickets.values())
      for (const c of set) c.abort(new Error("reconcile aborted: member stopped"));
    clearTimeout(this.#specTimer);
    await Promise.all([
      this.#slotMapReflector.stop(),
      this.#leaseReflector?.stop(),
      this.#projectionReflector?.stop(),
      rulesStopped,
    ]);
    for (const l of [...this.#listeners]) this.#call(() => l.stopped?.());
  }

  // ---------------------------------------------------------------- machine driving

  #fullMachineOptions(leaseNamespace: string) {
    const o = this.#machineOptions;
    return {
      slotmap: this.slotMap,
      shard: this.shard,
      leaseNamespace,
      holderIdentityPrefix: o.holderIdentityPrefix,
      incarnationSalt: o.incarnationSalt,
      leaseDurationMs: o.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs,
      ...(o.weight === undefined ? {} : { weight: o.weight }),
      ...(o.handoffAbortAfterMs === undefined ? {} : { handoffAbortAfterMs: o.handoffAbortAfterMs }),
      wallClockOffsetMs: Date.now() - performance.now(),
    };
  }

  #startLease(namespace: string): void {
    this.#leaseNamespace = namespace;
    this.#machine = new ShardMachine(this.#fullMachineOptions(namespace));
    this.#ownership = this.#machine.ownership;
    if (this.#rulesFingerprint !== undefined)
      this.#feed({ type: "rulesApplied", fingerprint: this.#rulesFingerprint });
    this.#leaseReflector = new Reflector<KubeObject>({
      http: this.#http,
      path: leasesPath(namespace),
      fieldSelector: `metadata.name=${this.shard}`,
      handler: {
        onListStart: () => this.#leaseStore.beginList(),
        onEvent: (type, obj) => {
          if (type === "DELETED") this.#leaseStore.remove(keyOf(obj), obj);
          else this.#leaseStore.put(obj);
          this.#feed({ type: "leaseObserved", lease: type === "DELETED" ? null : (obj as LeaseObject) });
        },
        onSynced: () => {
          // Also when nothing was cached: the machine must learn that the Lease does not exist.
          this.#leaseStore.endList();
          if (this.#leaseStore.size === 0) this.#feed({ type: "leaseObserved", lease: null });
        },
        onError: (err) => this.#log.warn({ ...this.#fields(), err }, "Lease watch failed; retrying"),
      },
    });
    this.#startProjection(namespace);
    const reflector = this.#leaseReflector;
    const start = () => (this.#closed ? undefined : reflector.start());
    // A microtask later: deferJoin, called right after createShardMember, must come first.
    void Promise.resolve()
      .then(() => {
        this.#joinStarted = true;
        return this.#joinGate;
      })
      .then(start, start) // a failed first sync does not keep the shard out for good
      .catch(() => {});
  }

  /** Queues an input; handles queued inputs in order (listeners may feed inputs re-entrantly). */
  #feed(input: PendingInput): void {
    if (this.#machine === undefined || this.#closed) return;
    this.#inputs.push(input);
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let next = this.#inputs.shift(); next !== undefined; next = this.#inputs.shift()) {
        // `now` right before handle: the recorded send time of a write is at or before the real one.
        const effects = this.#machine.handle({ ...next, now: performance.now() } as ShardInput);
        for (const e of effects) this.#perform(e);
      }
    } finally {
      this.#draining = false;
    }
    this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed || this.#machine === undefined) return;
    const at = this.#machine.nextWakeAt();
    if (at === undefined) return;
    // +1 ms: a timer may fire a fraction of a millisecond early relative to performance.now().
    const delay = Math.max(0, Math.ceil(at - performance.now()) + 1);
    this.#timer = setTimeout(() => this.#feed({ type: "tick" }), delay);
  }

  #perform(e: ShardEffect): void {
    switch (e.type) {
      case "writeLease":
        void this.#writeLease(e);
        return;
      case "slotsGained":
        this.#emit((l) => l.slotsGained?.(e));
        return;
      case "slotsLost":
        this.#emit((l) => l.slotsLost?.(e));
        return;
      case "fenced":
        this.#emit((l) => l.fenced?.(e.reason));
        return;
      case "unfenced":
        this.#unfencedOnce = true;
        this.#maybeReady();
        this.#emit((l) => l.unfenced?.(e.identity));
        return;
      case "abortInFlight":
        for (const key of e.keys) {
          for (const c of this.#tickets.get(key) ?? []) c.abort(new Error(`reconcile aborted: ${e.reason}`));
        }
        return;
      case "acked":
        this.#emit((l) => l.acked?.(e.uid, e.generation));
        return;
      case "stopped":
        this.#resolveStopped?.();
        return;
      case "escalate":
        this.#escalated(e.keys, e.sinceMs);
        return;
      case "log":
        this.#log[e.level](e.fields, e.msg);
        return;
    }
  }

  #escalated(keys: readonly string[], sinceMs: number): void {
    const hook = this.#onEscalate;
    if (hook !== undefined) {
      this.#call(() => hook(keys));
      return;
    }
    this.#log.error(
      { ...this.#fields(), keys: keys.slice(0, 10), sinceMs },
      "a reconcile on lost slots ignored its abort past the handoff timeout: exiting without releasing the Lease",
    );
    process.exit(70);
  }

  #emit(fn: (l: ShardMemberListener) => void): void {
    for (const l of [...this.#listeners]) this.#call(() => fn(l));
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ ...this.#fields(), err }, "shard member listener threw");
    }
  }

  async #writeLease(w: WriteLeaseEffect): Promise<void> {
    const ns = this.#leaseNamespace!;
    // Abort at timeoutAt: the machine stops waiting then anyway.
    const remaining = Math.max(1, Math.ceil(w.timeoutAt - performance.now()));
    const signal = AbortSignal.any([AbortSignal.timeout(remaining), this.#closing.signal]);
    const body = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...w.lease };
    let result: LeaseWriteResult;
    try {
      const lease =
        w.verb === "create"
          ? await this.#http.request<LeaseObject>("POST", leasesPath(ns), { body, signal })
          : await this.#http.request<LeaseObject>("PUT", `${leasesPath(ns)}/${this.shard}`, { body, signal });
      result = { outcome: "ok", lease };
    } catch (err) {
      if (isStatus(err, 409) || (w.verb === "update" && isStatus(err, 404))) {
        result = { outcome: "conflict", current: await this.#readLease(signal) };
      } else {
        result = { outcome: "error", message: errText(err) };
      }
    }
    this.#feed({ type: "leaseWriteResult", writeId: w.writeId, result });
  }

  /** The Lease as it is now: null when absent, undefined when it could not be read. */
  async #readLease(signal: AbortSignal): Promise<LeaseObject | null | undefined> {
    try {
      return await this.#http.request<LeaseObject>(
        "GET",
        `${leasesPath(this.#leaseNamespace!)}/${this.shard}`,
        {
          signal,
        },
      );
    } catch (err) {
      return isStatus(err, 404) ? null : undefined;
    }
  }

  // ---------------------------------------------------------------- SlotMap

  /** The SlotMap's metadata changed: a new instance retires the old one; a new spec is read. */
  #onSlotMap(obj: KubeObject): void {
    const uid = obj.metadata?.uid;
    if (typeof uid !== "string" || uid === "") return;
    // A uid that went away never comes back: a late event of it (a lagging re-list, a replay)
    // must not retire the current instance (found by the simulator).
    if (this.#goneUids.includes(uid)) return;
    const changed = this.#slotMapUid !== uid;
    if (this.#slotMapUid !== undefined && changed) this.#onSlotMapDeleted(undefined);
    this.#slotMapUid = uid;
    // Projections are read only for the current instance: the one cached may have come first.
    if (changed) this.#refeedProjection();
    const generation = obj.metadata?.generation;
    if (this.#specOf?.uid !== uid || this.#specOf.generation !== generation) {
      this.#specOf = { uid, generation };
      this.#specFailures = 0;
      void this.#readSpec(uid);
    }
    this.#maybeReady();
  }

  /** GETs the SlotMap for its spec (its metadata watch carries none); retries with backoff. */
  async #readSpec(uid: string): Promise<void> {
    clearTimeout(this.#specTimer);
    let obj: KubeObject;
    try {
      obj = await this.#http.request<KubeObject>(
        "GET",
        `${SLOTMAPS_PATH}/${encodeURIComponent(this.slotMap)}`,
        {
          signal: this.#closing.signal,
        },
      );
    } catch (err) {
      if (this.#closed || this.#specOf?.uid !== uid) return;
      if (isStatus(err, 404)) return; // the watch tells the deletion
      const delay = backoffDelay(this.#specFailures++, 200, 30_000);
      this.#log.warn(
        { ...this.#fields(), err: errText(err), retryInMs: delay },
        "reading the SlotMap spec failed",
      );
      this.#specTimer = setTimeout(() => void this.#readSpec(uid), delay);
      return;
    }
    if (this.#closed || obj.metadata?.uid !== uid || this.#slotMapUid !== uid) return;
    const spec = parseSlotMapSpec(obj.spec);
    if (!spec.ok) {
      this.#log.error(
        { ...this.#fields(), errors: spec.errors },
        `SlotMap spec is invalid; keeping the previous rules:\n${formatFieldErrors(spec.errors)}`,
      );
      return;
    }
    this.#handoffTimeoutSeconds = spec.value.policy.handoffTimeoutSeconds;
    this.#applySpec(spec.value);
    // The projection already applied, again, for its handoff timeout (a stale repeat otherwise).
    this.#refeedProjection();
    this.#maybeReady();
  }

  #refeedProjection(): void {
    const projection = this.#projectionStore.values().next().value;
    if (projection !== undefined) this.#onProjection(projection);
  }

  /** Watches this shard's SlotMapShard projection in the lease namespace. */
  #startProjection(namespace: string): void {
    const name = projectionName(this.slotMap, this.shard);
    this.#projectionReflector = new Reflector<KubeObject>({
      http: this.#http,
      path: `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PROJECTION_PLURAL}`,
      fieldSelector: `metadata.name=${name}`,
      handler: {
        onListStart: () => this.#projectionStore.beginList(),
        onEvent: (type, obj) => {
          if (type === "DELETED") {
            // No information: keep the table applied (slots leave a live shard only after its
            // ack); the coordinator writes the projection again.
            this.#projectionStore.remove(keyOf(obj), obj);
            this.#log.warn(this.#fields(), "SlotMapShard projection deleted: keeping the table applied");
          } else {
            this.#projectionStore.put(obj);
            this.#onProjection(obj);
          }
        },
        onSynced: () => {
          this.#projectionStore.endList();
        },
        onError: (err) =>
          this.#log.warn({ ...this.#fields(), err }, "SlotMapShard projection watch failed; retrying"),
      },
    });
    void this.#projectionReflector.start().catch(() => {});
  }

  #onProjection(obj: KubeObject): void {
    if (this.#machine === undefined) return;
    const reading = readProjection(
      { spec: obj.spec, resourceVersion: obj.metadata?.resourceVersion },
      {
        now: performance.now(),
        slotMap: this.slotMap,
        shard: this.shard,
        slotMapUid: this.#slotMapUid,
        handoffTimeoutSeconds: this.#handoffTimeoutSeconds,
      },
    );
    if (!reading.ok) {
      this.#log.error({ ...this.#fields(), error: reading.reason }, "SlotMapShard projection ignored");
      return;
    }
    this.#feed(reading.input);
    // After the machine's slotsGained of this projection: a committed slot is gained before it
    // stops importing, so its cached objects are kept.
    this.#reportImporting(reading.importing);
    this.#maybeReady();
  }

  #reportImporting(ranges: readonly SlotRange[]): void {
    const key = ranges.map((r) => `${r.start}-${r.end}`).join(",");
    if (key === this.#importing) return;
    this.#importing = key;
    this.#emit((l) => l.slotsImporting?.(ranges));
  }

  #onSlotMapDeleted(obj: KubeObject | undefined): void {
    const uid = obj?.metadata?.uid ?? this.#slotMapUid;
    if (uid === undefined) return;
    if (!this.#goneUids.includes(uid)) this.#goneUids = [...this.#goneUids.slice(-15), uid];
    if (uid === this.#slotMapUid) this.#slotMapUid = undefined;
    if (this.#specOf?.uid === uid) this.#specOf = undefined;
    this.#feed({ type: "slotMapDeleted", uid });
    this.#reportImporting([]);
  }

  #applySpec(spec: SlotMapSpec): void {
    if (this.#leaseNamespace === undefined) {
      this.#startLease(spec.leaseNamespace);
    } else if (spec.leaseNamespace !== this.#leaseNamespace) {
      this.#log.error(
        { ...this.#fields(), specLeaseNamespace: spec.leaseNamespace, leaseNamespace: this.#leaseNamespace },
        "the shard Lease is not in the SlotMap's spec.leaseNamespace: the coordinator will not see this shard",
      );
    }
    this.#rulesSource.applySpec(spec);
  }

  /**
   * New rules, in one synchronous block so no reconcile starts in between: the runtime drops every
   * object it mapped by the old rules, then the machine learns the new ones (and owns nothing while
   * the status names other rules). In-flight reconciles of the old rules hold the machine's ack
   * until they end (docs/design-decisions.md "Sharding-rule changes").
   */
  #onRules(rules: SlotRules, fingerprint: string): void {
    this.#emit((l) => l.rulesChanged?.(rules));
    this.#rulesFingerprint = fingerprint;
    this.#feed({ type: "rulesApplied", fingerprint });
    this.#maybeReady();
  }

  #maybeReady(): void {
    if (this.#readyDone || !this.#unfencedOnce || this.rules === undefined || this.#slotMapUid === undefined)
      return;
    this.#readyDone = true;
    this.#log.info(this.#fields(), "shard member ready");
    this.#resolveReady();
  }

  #fields(): { slotmap: string; shard: string; generation: number; identity: string | undefined } {
    return {
      slotmap: this.slotMap,
      shard: this.shard,
      generation: this.#ownership.generation,
      identity: this.#machine?.identity(),
    };
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
