/**
 * A sharded controller runtime: list+watch of the SlotMap's resources, routing by slot, a work
 * queue that never runs one key twice at once, and reconciles gated by the shard member.
 *
 * Memory: only objects of owned slots are kept (plus, per key waiting to reconcile a deletion,
 * its slot). Objects of other slots are dropped as they stream by. When slots are gained, their
 * objects are fetched by a paged re-list of each resource that keeps only the gained slots
 * (measured in bench/scenarios/shard-memory.ts: no per-object cost for objects of other shards;
 * the price is one list per resource per gain, and gains happen only when shards join, leave or
 * re-acquire their Lease).
 */
import { performance } from "node:perf_hooks";
import { withFence } from "../api/fence.js";
import { EventRecorder } from "../kube/events.js";
import { isStatus, KubeHttp, type KubeObject } from "../kube/http.js";
import { Reflector } from "../kube/reflector.js";
import { KeyError, type KubeObjectLike } from "../slots/keys.js";
import type { SlotRange } from "../slots/types.js";
import { type RuntimePlace, ShardRuntime } from "./core/runtime.js";
import type { GroupResourceRef, ResolvedResource } from "./discovery.js";
import type { ShardLogger } from "./logger.js";
import type { ShardMember } from "./membership.js";
import type { ResourceRule, SlotRules } from "./rules.js";
import { type BackoffOptions, WorkQueue } from "./workqueue.js";

/**
 * What a reconciler is asked to do: bring the root object `key` to its desired state. `T` types
 * the root object (`startController<V1Secret>`): a view of the JSON the API server sent, not
 * checked at run time (client-node models' `Date` fields, such as creationTimestamp, hold strings).
 */
export interface ReconcileRequest<T extends KubeObjectLike = KubeObject> {
  /** `group/Kind/namespace/name` of the root object (its sharding key unless it has a hash-key). */
  readonly key: string;
  /** Namespace of the root object ("" for cluster-scoped). */
  readonly namespace: string;
  readonly name: string;
  /** The slot the object is in; this shard owns it for the duration of the reconcile. */
  readonly slot: number;
  /** The root resource. */
  readonly resource: ResolvedResource;
  /**
   * The object as last seen by the watch, or undefined when it was deleted. Read-only: it is the
   * cached copy. May lag behind the API server; write with its resourceVersion as precondition.
   */
  readonly object: T | undefined;
  /**
   * Aborted when the shard must stop this reconcile (fenced, shutting down with abort, handoff
   * timeout). Check it before every write and pass it to requests.
   */
  readonly signal: AbortSignal;
  /**
   * Fencing token of this reconcile: the resourceVersion of the newest SlotMap version this shard
   * had applied when the reconcile started (then its generation and the SlotMap uid, for reading;
   * docs/fencing.md). Newer owners of the slot always carry a greater token.
   */
  readonly fence: string;
  /**
   * A copy of `obj` with this reconcile's fencing token in its `slotmap.dev/fence` annotation.
   * Write every update of a sharded object through it: with the shipped `fencing.slotmap.dev` admission
   * policy bound to the resource, the API server refuses the write when a newer owner of the slot
   * has written the object since (a shard frozen past its Lease cannot land a late update).
   */
  fenced<O extends KubeObjectLike>(obj: O): O;
  /**
   * Cached objects of the controlled resources whose controller is this object (optionally of one
   * resource; `C` types them, unchecked).
   */
  controlled<C extends KubeObjectLike = KubeObject>(resource?: GroupResourceRef): C[];
  /** Writes that carry this reconcile's `signal` and fencing token, under a precondition. */
  readonly write: ReconcileWriter;
  /**
   * Records an Event about the root object (`kubectl describe` shows it), reported by this shard's
   * Lease holder; repeats are aggregated (count). Best effort: never throws.
   */
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

/**
 * The writes of one reconcile. Each carries the reconcile's `signal` (aborted when the shard must
 * stop), stamps its fencing token (`fenced`) and fails with an {@link ApiError} 409 instead of
 * overwriting a newer version. Paths are API paths, e.g. `/api/v1/namespaces/ns/configmaps`.
 */
export interface ReconcileWriter {
  /** POST `obj` to a collection path. An existing object is a 409 (AlreadyExists). */
  create<O extends KubeObjectLike>(collectionPath: string, obj: O): Promise<O>;
  /**
   * PUT `obj` to its path. `obj.metadata.resourceVersion` is required: the write applies only to
   * that version (409 Conflict otherwise), so a stale cache never overwrites a newer object.
   *
   * @throws TypeError when `obj.metadata.resourceVersion` is missing.
   */
  update<O extends KubeObjectLike>(path: string, obj: O): Promise<O>;
  /**
   * JSON merge patch of the object at `path`. With `resourceVersion` it applies only to that
   * version (409 Conflict otherwise).
   */
  patch<O extends KubeObjectLike = KubeObject>(
    path: string,
    patch: Record<string, unknown>,
    options?: { resourceVersion?: string | undefined },
  ): Promise<O>;
}

/** What a reconcile returns: nothing (done) or a request to run again later. */
export type ReconcileResult = undefined | { requeueAfterMs?: number | undefined };

/**
 * A reconciler: an async function of the request. Throwing requeues the key with exponential
 * backoff; `{ requeueAfterMs }` requeues it after that delay.
 */
export type Reconciler<T extends KubeObjectLike = KubeObject> = (
  request: ReconcileRequest<T>,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets a plain `async (req) => { ... }` be a Reconciler.
) => Promise<ReconcileResult | void>;

/** One finished reconcile, for audit logs (`onReconcile`). */
export interface ReconcileRecord {
  readonly shard: string;
  /** Lease holderIdentity at the start. */
  readonly identity: string | undefined;
  readonly key: string;
  readonly slot: number;
  /** Assignment generation applied at the start. */
  readonly generation: number;
  /** Wall clock (Date.now()) at the start and end, ms since the epoch. */
  readonly start: number;
  readonly end: number;
  /** resourceVersion of the root object handed to the reconciler (undefined: deleted). */
  readonly resourceVersion: string | undefined;
  /** `ok`, `requeue` (asked to run again), `error` (threw; retried with backoff), `aborted` (its signal fired). */
  readonly outcome: "ok" | "requeue" | "error" | "aborted";
  readonly error?: string | undefined;
}

/** Options of {@link startController}. `T` types the root objects (unchecked). */
export interface ControllerOptions<T extends KubeObjectLike = KubeObject> {
  /** The shard's membership; the runtime asks it before every reconcile. */
  member: ShardMember;
  reconcile: Reconciler<T>;
  /**
   * Which of the SlotMap's resources to watch (roots and controlled). Default: all of them. A
   * resource the SlotMap does not list is an error.
   */
  resources?: readonly GroupResourceRef[] | undefined;
  /** Reconciles running at once (distinct keys). Default 4. */
  concurrency?: number | undefined;
  /** Aborting it stops the controller (queued keys are dropped; in-flight ones finish). */
  signal?: AbortSignal | undefined;
  /**
   * Where reconcile failures (warn), start-up problems and watch errors go. Default: the member's
   * logger (`createShardMember({ logger })`), so one logger option covers both.
   */
  logger?: ShardLogger | undefined;
  /** Called after every reconcile (one audit line per reconcile). Must not throw. */
  onReconcile?: ((record: ReconcileRecord) => void) | undefined;
  /** Backoff of failed keys. Default 10 ms doubling up to 5 minutes. */
  backoff?: BackoffOptions | undefined;
  /** Keep `metadata.managedFields` in cached objects (default: dropped, they are large and rarely used). */
  keepManagedFields?: boolean | undefined;
  /**
   * Items per list page. Default: adaptive, about 4 MiB per page (500 items first, then up to
   * 10,000 small objects, fewer large ones); a fixed size sets every page.
   */
  pageSize?: number | undefined;
  /**
   * Which objects to keep in memory. `"owned"` (default): only those of owned slots (and of slots
   * migrating here); a gained slot's objects are listed again when it arrives, which at 100k
   * objects takes seconds (the whole resource is listed: a list cannot select by slot). `"all"`:
   * every object of the watched resources, as an unsharded informer keeps them; a gained slot is
   * reconciled from the cache at once, for memory that grows with all objects rather than with
   * this shard's share (docs/benchmarks.md measures both).
   */
  cache?: "owned" | "all" | undefined;
  /** `reportingComponent` of the Events reconcilers record (`req.event`). Default `slotmap-shard`. */
  eventComponent?: string | undefined;
}

/** Stamps an object with a fencing token ({@link withFence}), or leaves it as it is. */
export type Stamp = <O extends { metadata?: { annotations?: Record<string, string> } }>(obj: O) => O;

/**
 * The {@link ReconcileWriter} of one reconcile: writes through `http`, each stamped by `stamp`
 * and aborted by `signal`. Internal (the label-based baseline of bench/ writes through it too,
 * with an identity stamp).
 */
export function reconcileWriter(http: KubeHttp, stamp: Stamp, signal?: AbortSignal): ReconcileWriter {
  return {
    create: (path, o) => http.request("POST", path, { body: stamp(o), signal }),
    update: (path, o) => {
      const rv = (o.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion;
      if (typeof rv !== "string" || rv === "") {
        throw new TypeError(
          `update ${path}: metadata.resourceVersion is required (the write's precondition); got ${JSON.stringify(rv) ?? "nothing"}`,
        );
      }
      return http.request("PUT", path, { body: stamp(o), signal });
    },
    patch: (path, p, opts) => {
      const rv = opts?.resourceVersion;
      const metadata = {
        ...((p.metadata ?? {}) as Record<string, unknown>),
        ...(rv !== undefined ? { resourceVersion: rv } : {}),
      };
      const body = stamp({ ...p, metadata } as { metadata?: { annotations?: Record<string, string> } });
      return http.request("PATCH", path, { body, contentType: "application/merge-patch+json", signal });
    },
  };
}

/** Counters and sizes, for metrics and benchmarks. */
export interface ControllerStats {
  /** Root objects cached (of owned and importing slots; of every slot with `cache: "all"`). */
  roots: number;
  /** Controlled objects cached (owned slots only). */
  controlled: number;
  /** Deleted roots waiting for their reconcile. */
  tombstones: number;
  /**
   * Roots of gained slots held back until their controlled objects are listed (reconciled then,
   * so the reconciler never sees a controlled object missing that is only not cached yet).
   */
  held: number;
  queued: number;
  processing: number;
  waiting: number;
  reconciles: number;
  reconcileErrors: number;
  /** Keys dropped because the slot could not start (not owned, fenced, stopping). */
  skipped: number;
  /** Re-lists run after slots were gained. */
  gainLists: number;
  /** Objects received by those re-lists. */
  gainListedObjects: number;
}

/** A running sharded controller. */
export interface ShardedController<T extends KubeObjectLike = KubeObject> {
  /** Resolves once every watched resource was listed once after the first slots were gained. */
  readonly synced: Promise<void>;
  /** Resolves when the controller has stopped (after `stop()` or the signal). */
  readonly done: Promise<void>;
  /** Stops: drops queued keys, waits for in-flight reconciles, stops watching. */
  stop(): Promise<void>;
  stats(): ControllerStats;
  /** The cached root object of a key, if owned and present. */
  get(key: string): T | undefined;
}

/** One watched resource (driver side: the reflector; the cached objects live in the runtime core). */
interface Watched {
  readonly rule: ResourceRule;
  /** Index of this watch in the runtime core. */
  readonly index: number;
  readonly reflector: Reflector<KubeObject>;
  started: boolean;
  /** The first list completed. */
  firstSync: Promise<void>;
  gainRunning: boolean;
}

const ENTRY_KEY = (rule: ResourceRule, obj: KubeObject): string =>
  `${rule.resource.group}/${rule.resource.kind}/${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;

/** Parses `group/Kind/namespace/name`. */
function splitKey(key: string): { namespace: string; name: string } {
  const parts = key.split("/");
  return { namespace: parts[2] ?? "", name: parts.slice(3).join("/") };
}

/**
 * Starts a sharded controller on a shard member. See the module doc and docs/client.md.
 *
 * @throws RangeError for a bad `concurrency` or `cache`.
 */
export function startController<T extends KubeObjectLike = KubeObject>(
  options: ControllerOptions<T>,
): ShardedController<T> {
  // The cache holds the JSON the API server sent; T is the caller's view of it (unchecked).
  return new Controller(options as unknown as ControllerOptions).handle as unknown as ShardedController<T>;
}

/** Runs a sharded controller until `options.signal` aborts; resolves once it has stopped. */
export function runController<T extends KubeObjectLike = KubeObject>(
  options: ControllerOptions<T>,
): Promise<void> {
  return startController(options).done;
}

class Controller {
  readonly handle: ShardedController;
  readonly #o: ControllerOptions;
  readonly #member: ShardMember;
  readonly #http: KubeHttp;
  readonly #events: EventRecorder;
  readonly #log: ShardLogger;
  readonly #queue: WorkQueue;
  readonly #concurrency: number;

  /** The cache and queue gating of the current rules (undefined while they switch). */
  #rt: ShardRuntime<KubeObject> | undefined;
  #watches: Watched[] = [];
  /** Slots migrating to this shard (the member's last `slotsImporting`). */
  #importing: readonly SlotRange[] = [];
  #rules: SlotRules | undefined;
  #stopping = false;
  readonly #stopController = new AbortController();
  #unsubscribe: (() => void) | undefined;
  #resolveSynced!: () => void;
  #counters = { reconciles: 0, reconcileErrors: 0, skipped: 0, gainLists: 0, gainListedObjects: 0 };

  constructor(o: ControllerOptions) {
    const concurrency = o.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
      throw new RangeError(`concurrency: must be an integer from 1 to 10000; got ${String(o.concurrency)}`);
    }
    if (o.cache !== undefined && o.cache !== "owned" && o.cache !== "all") {
      throw new RangeError(`cache: must be "owned" or "all"; got ${JSON.stringify(o.cache)}`);
    }
    this.#o = o;
    this.#member = o.member;
    this.#concurrency = concurrency;
    this.#log = o.logger ?? o.member.logger;
    this.#queue = new WorkQueue(o.backoff ?? {});
    this.#http = new KubeHttp(o.member.kubeConfig);
    this.#events = new EventRecorder({
      http: this.#http,
      logger: this.#log,
      component: o.eventComponent ?? "slotmap-shard",
    });
    const synced = new Promise<void>((resolve) => {
      this.#resolveSynced = resolve;
    });
    // A shard caching every slot joins once its cache is warm: slots then move to a shard that
    // reconciles them at once, instead of after listing every object.
    if (o.cache === "all" && o.member.deferJoin(synced)) {
      this.#log.info(this.#fields(), "cache all: joining the SlotMap once the first list has synced");
    }
    const done = this.#run();
    done.catch(() => {});
    this.handle = {
      synced,
      done,
      stop: () => {
        this.#stopController.abort();
        return done;
      },
      stats: () => this.#stats(),
      get: (key) => this.#rt?.root(key),
    };
  }

  async #run(): Promise<void> {
    const signal = AbortSignal.any([
      this.#stopController.signal,
      ...(this.#o.signal ? [this.#o.signal] : []),
    ]);
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    this.#unsubscribe = this.#member.subscribe({
      slotsGained: (e) => {
        this.#rt?.slotsGained(e.ranges);
        for (const w of this.#watches) {
          this.#ensureStarted(w);
          void this.#gainRelist(w);
        }
      },
      slotsLost: (e) => this.#rt?.slotsLost(e.ranges),
      slotsImporting: (ranges) => {
        // A warm handoff: list and cache the incoming slots while their source drains them.
        this.#importing = ranges;
        this.#rt?.slotsImporting(ranges);
        for (const w of this.#watches) {
          if (ranges.length > 0) this.#ensureStarted(w);
          if (w.started) void this.#gainRelist(w);
        }
      },
      rulesChanged: (rules) => {
        if (rules !== this.#rules) void this.#setRules(rules);
      },
      namespacesChanged: () => {
        this.#rt?.namespacesChanged();
        for (const w of this.#watches) if (w.started) void this.#gainRelist(w);
      },
    });
    const rules = await Promise.race([this.#member.whenRules(), aborted.then(() => undefined)]);
    if (rules !== undefined && !this.#stopping && !signal.aborted) {
      // A rulesChanged event may have set them already.
      if (this.#rules === undefined) await this.#setRules(rules);
      const workers = Array.from({ length: this.#concurrency }, () => this.#worker());
      await aborted;
      await this.#shutdown();
      await Promise.all(workers);
    } else {
      await this.#shutdown();
    }
  }

  async #shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unsubscribe?.();
    await this.#queue.shutDown();
    await Promise.all(this.#watches.map((w) => w.reflector.stop()));
    this.#resolveSynced(); // nobody should wait forever on a stopped controller
  }

  // ---------------------------------------------------------------- watches

  async #setRules(rules: SlotRules): Promise<void> {
    this.#rules = rules;
    const wanted = this.#o.resources;
    let selected: ResourceRule[] = [...rules.resources];
    if (wanted !== undefined) {
      selected = [];
      for (const [i, ref] of wanted.entries()) {
        const rule = rules.resources.find(
          (r) => r.resource.group === ref.group && r.resource.resource === ref.resource,
        );
        if (rule === undefined) {
          this.#log.error(
            { ...this.#fields(), field: `resources[${i}]`, value: ref },
            `resources[${i}]: ${JSON.stringify(ref)} is not a resource of SlotMap ${this.#member.slotMap}; not watched`,
          );
          continue;
        }
        selected.push(rule);
      }
    }
    // A new rule set restarts every watch: keys and slots may have changed. Everything mapped by
    // the old rules goes before this returns to the event loop (the membership tells the shard
    // machine the new rules right after this call); events of the old watches are dropped.
    const old = this.#watches;
    this.#watches = [];
    this.#rt?.clear();
    this.#rt = undefined;
    await Promise.all(old.map((w) => w.reflector.stop()));
    if (this.#stopping || this.#rules !== rules) return;
    this.#rt = this.#makeRuntime(rules, selected);
    this.#rt.slotsImporting(this.#importing);
    this.#watches = selected.map((rule, index) => this.#makeWatch(rule, index));
    const owned =
      this.#o.cache === "all" || this.#member.ownership.ownedCount() > 0 || this.#importing.length > 0;
    for (const w of this.#watches) if (owned) this.#ensureStarted(w);
    void Promise.all(this.#watches.map((w) => w.firstSync)).then(() => {
      if (this.#rules === rules) this.#resolveSynced();
    });
  }

  /** The runtime core of one rule set: placement by the rules, ownership by the member. */
  #makeRuntime(rules: SlotRules, selected: readonly ResourceRule[]): ShardRuntime<KubeObject> {
    const member = this.#member;
    return new ShardRuntime<KubeObject>(
      {
        owns: (slot) => member.ownsSlot(slot),
        place: (obj, w) => this.#place(rules, selected[w]!, obj),
        selected: (obj) => rules.namespaceSelected(obj.metadata?.namespace ?? ""),
        queue: this.#queue,
      },
      selected,
      { cacheAllSlots: this.#o.cache === "all" },
    );
  }

  #place(rules: SlotRules, rule: ResourceRule, obj: KubeObject): RuntimePlace | undefined {
    try {
      const p = rules.place(obj, rule);
      return p.sharded ? p : undefined;
    } catch (err) {
      if (!(err instanceof KeyError)) throw err;
      this.#log.warn(
        { ...this.#fields(), object: ENTRY_KEY(rule, obj), err: err.message },
        "object ignored: no sharding key",
      );
      return undefined;
    }
  }

  #makeWatch(rule: ResourceRule, index: number): Watched {
    let resolveFirst!: () => void;
    const firstSync = new Promise<void>((resolve) => {
      resolveFirst = resolve;
    });
    const w: Watched = {
      rule,
      index,
      started: false,
      firstSync,
      gainRunning: false,
      reflector: new Reflector<KubeObject>({
        http: this.#http,
        path: rule.resource.path,
        ...(this.#o.pageSize !== undefined ? { pageSize: this.#o.pageSize } : {}),
        ...(rule.labelSelector !== undefined ? { labelSelector: rule.labelSelector } : {}),
        ...(rule.fieldSelector !== undefined ? { fieldSelector: rule.fieldSelector } : {}),
        handler: {
          onListStart: () => {
            // The full list covers every slot owned now; gains during it are re-listed after.
            if (this.#watches.includes(w)) this.#rt?.listStarted(index);
          },
          onEvent: (type, obj, listed) => this.#onEvent(w, type, obj, listed),
          onSynced: () => {
            if (this.#watches.includes(w)) this.#rt?.listSynced(index);
            resolveFirst();
          },
          onError: (err) =>
            this.#log.warn(
              { ...this.#fields(), resource: rule.resource.path, err },
              "watch failed; retrying",
            ),
        },
      }),
    };
    return w;
  }

  #ensureStarted(w: Watched): void {
    if (w.started || this.#stopping) return;
    w.started = true;
    void w.reflector.start().catch(() => {});
  }

  /** Fills in what list items lack and drops what the cache does not need. */
  #prepare(w: Watched, obj: KubeObject): KubeObject {
    obj.apiVersion ??= w.rule.resource.apiVersion;
    obj.kind ??= w.rule.resource.kind;
    if (!this.#o.keepManagedFields && obj.metadata !== undefined) delete obj.metadata.managedFields;
    return obj;
  }

  #onEvent(w: Watched, type: "ADDED" | "MODIFIED" | "DELETED", raw: KubeObject, listed: boolean): void {
    if (!this.#watches.includes(w)) return; // a watch of replaced rules, still stopping
    const obj = this.#prepare(w, raw);
    this.#rt?.observe(w.index, type, ENTRY_KEY(w.rule, obj), obj, obj.metadata?.resourceVersion, listed);
  }

  /**
   * Fetches the objects of gained slots: a paged list of the resource keeping only gained, owned
   * slots. Runs after the reflector's first list (which covers what was owned when it started);
   * repeats while more slots are gained.
   */
  async #gainRelist(w: Watched): Promise<void> {
    if (w.gainRunning) return;
    w.gainRunning = true;
    try {
      await w.firstSync;
      for (;;) {
        const rt = this.#rt;
        if (rt === undefined || this.#stopping || !this.#watches.includes(w)) return;
        const gained = rt.gainListStarted(w.index);
        if (gained === undefined) return;
        try {
          await this.#listGained(rt, w, gained);
          rt.gainListEnded(w.index, gained, true);
        } catch (err) {
          // Try again: the slots are still gained; a later list also sees later changes.
          rt.gainListEnded(w.index, gained, false);
          if (this.#stopping) return;
          this.#log.warn(
            { ...this.#fields(), resource: w.rule.resource.path, err },
            "listing gained slots failed; retrying",
          );
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      w.gainRunning = false;
    }
  }

  async #listGained(rt: ShardRuntime<KubeObject>, w: Watched, gained: Uint8Array): Promise<void> {
    this.#counters.gainLists++;
    const started = performance.now();
    let kept = 0;
    const pages = this.#http.pages<KubeObject>(
      w.rule.resource.path,
      { labelSelector: w.rule.labelSelector, fieldSelector: w.rule.fieldSelector },
      { pageSize: this.#o.pageSize, signal: this.#stopController.signal },
    );
    for await (const page of pages) {
      if (!this.#watches.includes(w)) return; // the rules changed during the list
      for (const raw of page.items) {
        this.#counters.gainListedObjects++;
        const obj = this.#prepare(w, raw);
        // The watch may already have delivered something newer (or a deletion) since the gain.
        if (rt.gainListed(w.index, gained, ENTRY_KEY(w.rule, obj), obj, obj.metadata?.resourceVersion))
          kept++;
      }
      if (this.#stopping) break;
    }
    this.#log.debug(
      {
        ...this.#fields(),
        resource: w.rule.resource.path,
        kept,
        ms: Math.round(performance.now() - started),
      },
      "listed gained slots",
    );
  }

  // ---------------------------------------------------------------- workers

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key);
      } catch (err) {
        this.#log.error({ ...this.#fields(), key, err }, "reconcile runtime error");
      } finally {
        this.#queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const rt = this.#rt;
    const work = rt?.work(key);
    const watch = work === undefined ? undefined : this.#watches[work.watch];
    if (rt === undefined || work === undefined || watch === undefined) {
      this.#queue.forget(key);
      return;
    }
    const slot = work.slot;
    const m = this.#member;
    const identity = m.identity;
    const generation = m.generation;
    const ticket = m.begin(slot, key);
    if (ticket === undefined) {
      // Not ours to start now; a regained slot re-lists and enqueues its objects again.
      this.#counters.skipped++;
      this.#queue.forget(key);
      return;
    }
    const obj = work.object;
    const { namespace, name } = splitKey(key);
    const watches = this.#watches;
    const http = this.#http;
    const events = this.#events;
    const fence: Stamp = (o) => withFence(o, ticket.fence);
    const signal = ticket.signal;
    const request: ReconcileRequest = {
      key,
      namespace,
      name,
      slot,
      resource: watch.rule.resource,
      object: obj,
      signal: ticket.signal,
      fence: ticket.fence,
      fenced: fence,
      write: reconcileWriter(http, fence, signal),
      event: (type, reason, message) =>
        events.record(
          {
            involvedObject: {
              apiVersion: watch.rule.resource.apiVersion,
              kind: watch.rule.resource.kind,
              name,
              namespace: namespace === "" ? undefined : namespace,
              uid: obj?.metadata?.uid ?? "",
            },
            eventType: type,
            reason,
            message,
            reportingInstance: identity ?? m.shard,
          },
          signal,
        ),
      controlled<C extends KubeObjectLike = KubeObject>(resource?: GroupResourceRef): C[] {
        const only =
          resource === undefined
            ? undefined
            : (i: number) => {
                const r = watches[i]?.rule.resource;
                return r?.group === resource.group && r.resource === resource.resource;
              };
        return rt.controlledOf(key, only) as unknown as C[];
      },
    };
    const start = Date.now();
    let outcome: ReconcileRecord["outcome"] = "ok";
    let error: string | undefined;
    this.#counters.reconciles++;
    try {
      const result = await this.#o.reconcile(request);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after >= 0) {
        outcome = "requeue";
        this.#queue.forget(key);
        this.#queue.addAfter(key, after);
      } else {
        this.#queue.forget(key);
        rt.finished(work, true);
      }
    } catch (err) {
      this.#counters.reconcileErrors++;
      outcome = ticket.signal.aborted ? "aborted" : "error";
      error = errText(err);
      const delay = this.#queue.addRateLimited(key);
      this.#log.warn(
        { ...this.#fields(), key, slot, err: error, retryInMs: delay, conflict: isStatus(err, 409) },
        "reconcile failed; retrying with backoff",
      );
    } finally {
      ticket.finish();
      const record: ReconcileRecord = {
        shard: m.shard,
        identity,
        key,
        slot,
        generation,
        start,
        end: Date.now(),
        resourceVersion: obj?.metadata?.resourceVersion,
        outcome,
        error,
      };
      try {
        this.#o.onReconcile?.(record);
      } catch (err) {
        this.#log.error({ ...this.#fields(), err }, "onReconcile hook threw");
      }
    }
  }

  // ---------------------------------------------------------------- misc

  #stats(): ControllerStats {
    const q = this.#queue.stats();
    const sizes = this.#rt?.sizes() ?? { roots: 0, controlled: 0, tombstones: 0, held: 0 };
    return {
      ...sizes,
      queued: q.queued,
      processing: q.processing,
      waiting: q.waiting,
      ...this.#counters,
    };
  }

  #fields(): { slotmap: string; shard: string; generation: number; identity: string | undefined } {
    const m = this.#member;
    return { slotmap: m.slotMap, shard: m.shard, generation: m.generation, identity: m.identity };
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
