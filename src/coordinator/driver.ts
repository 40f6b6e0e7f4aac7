import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_REFUSED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  LABEL_SLOTMAP,
} from "../api/lease.js";
import { PROJECTION_KIND, PROJECTION_PLURAL, type ProjectableStatus } from "../api/projection.js";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../api/v1alpha1.js";
import { EventRecorder } from "../kube/events.js";
import { isStatus, type KubeHttp, type KubeObject } from "../kube/http.js";
import { Reflector, type ReflectorHandler } from "../kube/reflector.js";
import { type CacheChange, keyOf, ObjectCache } from "../kube/store.js";
import { backoffDelay } from "../runtime/backoff.js";
import {
  type CoordinatorAction,
  CoordinatorInputError,
  type CoreMemory,
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_ORPHAN_AFTER_MS,
  type DeleteLeaseAction,
  type ObservedLease,
  type ObservedProjection,
  type ObservedSlotMap,
  type OrphanMemory,
  type ProjectionAction,
  projectionActions,
  REASONS,
  type StepResult,
  step,
  sweepOrphans,
} from "./core/index.js";
import type { CoordinatorMetrics } from "./metrics.js";

/**
 * The coordinator's I/O layer: it feeds the sans-I/O core (`./core`, docs/dev/coordinator-core.md)
 * with SlotMaps and shard Leases from two watches and applies the actions it returns.
 *
 * - Memory: only SlotMaps and the Leases labelled `slotmap.dev/slotmap` are cached, never the
 *   sharded objects, so memory grows with SlotMaps and shards only.
 * - One worker per SlotMap: steps are serialised per SlotMap (never two at once for one), run on
 *   every change of the SlotMap or one of its Leases, at the core's `nextStepAt` (one timer per
 *   SlotMap), after a conflict (at once, after re-reading the object) and after a failed write
 *   (with backoff). Nothing is stepped before both caches have synced.
 * - Writes carry the core's preconditions (resourceVersion, uid) and are never retried blindly:
 *   a 409 re-reads the object and re-steps, so a decision is always taken on the newer data.
 */

/** Collection path of SlotMaps (cluster-scoped). */
export const SLOTMAPS_PATH = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
/** Collection path of Leases in all namespaces (watched with a `slotmap.dev/slotmap` selector). */
export const LEASES_PATH = "/apis/coordination.k8s.io/v1/leases";
/** Collection path of SlotMapShard projections in all namespaces (watched with the label). */
export const PROJECTIONS_PATH = `/apis/${GROUP}/${VERSION}/${PROJECTION_PLURAL}`;
/** `source.component` / `reportingComponent` of the coordinator's Events. */
export const EVENT_COMPONENT = "slotmap-coordinator";

const leasePath = (namespace: string, name: string): string =>
  `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases/${encodeURIComponent(name)}`;
const slotMapPath = (name: string): string => `${SLOTMAPS_PATH}/${encodeURIComponent(name)}`;
const projectionsPath = (namespace: string): string =>
  `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PROJECTION_PLURAL}`;
/** Projection writes in flight at once (a drain barrier at 1000 shards rewrites all of them). */
const PROJECTION_WRITE_CONCURRENCY = 8;

/** A step running longer than this makes `/healthz` fail (a wedged worker needs a restart). */
const STUCK_AFTER_MS = 120_000;
const MAX_BACKOFF_MS = 30_000;
/** Conflicts in a row re-stepped at once; beyond that, with backoff (someone keeps racing us). */
const IMMEDIATE_CONFLICT_RETRIES = 3;

/** Options of {@link CoordinatorDriver}. */
export interface DriverOptions {
  http: KubeHttp;
  logger: Logger;
  metrics: CoordinatorMetrics;
  /** This coordinator's identity: `reportingInstance` of its Events. */
  identity: string;
  /** Delete a Dead shard's Lease after this long (default: the core's, 60 s). */
  orphanAfterMs?: number | undefined;
  /** Lease duration assumed for a Lease without one (default: the core's, 15 s). */
  defaultLeaseDurationMs?: number | undefined;
  /** Server-side watch timeout (default: the Reflector's). */
  watchTimeoutSeconds?: number | undefined;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
  /** Wall clock for objects (default `new Date()`). */
  wallTime?: () => Date;
}

/** Counters for tests and logs. */
export interface DriverStats {
  steps: number;
  conflicts: number;
  writeErrors: number;
}

interface Worker {
  readonly name: string;
  memory: CoreMemory | undefined;
  /** uid of the SlotMap instance last stepped. */
  uid: string | undefined;
  /** Another step is wanted (set while one runs: it runs again right after). */
  pending: boolean;
  running: Promise<void> | undefined;
  runningSince: number | undefined;
  timer: NodeJS.Timeout | undefined;
  failures: number;
  /** Consecutive steps that ended in a conflict. */
  conflicts: number;
  /** What the projections were last made to match (status version, Leases, projections seen). */
  projected: string | undefined;
  /** What the projections must show, from the last step that stood by a written status. */
  projection: ProjectionJob | undefined;
  /** The projection loop ({@link CoordinatorDriver.projectLoop}) runs / must run again. */
  projecting: Promise<void> | undefined;
  projectionPending: boolean;
  projectionFailures: number;
  projectionTimer: NodeJS.Timeout | undefined;
  dropped: boolean;
}

type WriteResult = "ok" | "conflict" | "error" | "forbidden";
type Written = "slotmaps/status" | "leases" | "slotmapshards";

/** A status to project and the shards to project it for (see {@link CoordinatorDriver.projectLoop}). */
interface ProjectionJob {
  readonly slotMap: ObservedSlotMap;
  readonly status: ProjectableStatus;
  readonly leaseNamespace: string;
  readonly leases: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    /** The ack and refusal are read from them only when the projections are computed. */
    readonly annotations: Readonly<Record<string, string>> | undefined;
  }>;
  /** Status version, lease namespace and Leases: with the projection cache's version, the skip key. */
  readonly key: string;
}

/** Reason of the Warning Event for a Lease write RBAC refuses (a lease namespace without binding). */
export const REASON_LEASE_WRITE_FORBIDDEN = "LeaseWriteForbidden";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The core's view of a cached SlotMap; undefined if it lacks what every API object has. */
function observedSlotMap(o: KubeObject): ObservedSlotMap | undefined {
  const m = o.metadata;
  if (!m?.name || !m.uid || !m.resourceVersion) return undefined;
  const deletionTimestamp = typeof m.deletionTimestamp === "string" ? m.deletionTimestamp : undefined;
  return {
    metadata: {
      name: m.name,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      generation: m.generation,
      deletionTimestamp,
    },
    spec: o.spec,
    status: o.status,
  };
}

/** The core's view of a cached Lease. */
function observedLease(o: KubeObject): ObservedLease | undefined {
  const m = o.metadata;
  if (!m?.name || !m.uid || !m.resourceVersion) return undefined;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      annotations: m.annotations,
    },
    spec: isRecord(o.spec) ? (o.spec as ObservedLease["spec"]) : undefined,
  };
}

function labelOf(o: KubeObject | undefined): string | undefined {
  return o?.metadata?.labels?.[LABEL_SLOTMAP];
}

/** Keys of cached objects by the value of their `slotmap.dev/slotmap` label. */
class LabelIndex {
  private readonly keys = new Map<string, Set<string>>();

  /** Records a cache change; returns the labels it touched (the SlotMaps to step). */
  update(c: CacheChange<KubeObject>): { was: string | undefined; is: string | undefined } {
    const key = keyOf((c.after ?? c.before)!);
    const was = labelOf(c.before);
    const is = labelOf(c.after);
    if (was !== undefined && was !== is) {
      const set = this.keys.get(was);
      set?.delete(key);
      if (set?.size === 0) this.keys.delete(was);
    }
    if (is !== undefined) {
      let set = this.keys.get(is);
      if (set === undefined) {
        set = new Set();
        this.keys.set(is, set);
      }
      set.add(key);
    }
    return { was, is };
  }

  of(label: string): ReadonlySet<string> {
    return this.keys.get(label) ?? new Set();
  }

  labels(): IterableIterator<[string, Set<string>]> {
    return this.keys.entries();
  }
}

/** Watches SlotMaps and shard Leases and runs the coordinator core for every SlotMap. */
export class CoordinatorDriver {
  /** Counters (steps, conflicts, failed writes). */
  readonly stats: DriverStats = { steps: 0, conflicts: 0, writeErrors: 0 };
  private readonly slotMaps = new ObjectCache<KubeObject>();
  private readonly leases = new ObjectCache<KubeObject>();
  /** SlotMaps with more shards than the supported count, and by how many (for /readyz). */
  private readonly overLimit = new Map<string, number>();
  /** Lease keys by the value of their `slotmap.dev/slotmap` label. */
  private readonly leaseIndex = new LabelIndex();
  /** The shards' SlotMapShard projections, indexed the same way. */
  private readonly projections = new ObjectCache<KubeObject>();
  private readonly projectionIndex = new LabelIndex();
  /** +1 on every change of the projection cache (a cheap "nothing to re-project" test). */
  private projectionVersion = 0;
  /**
   * uids of projections seen deleted (bounded): a late answer about one (our create, a re-read)
   * must not bring it back into the cache, where it would hide that the shard has none.
   */
  private deletedProjections: readonly string[] = [];
  private readonly workers = new Map<string, Worker>();
  private readonly stopping = new AbortController();
  private readonly events: EventRecorder;
  private readonly now: () => number;
  private readonly wallTime: () => Date;
  private readonly log: Logger;
  private reflectors: Reflector<KubeObject>[] = [];
  /** Leases of deleted SlotMaps: when each last changed (core/orphans.ts). */
  private orphans: OrphanMemory = {};
  private orphanTimer: NodeJS.Timeout | undefined;
  private ready = false;
  private stopped = false;

  constructor(private readonly opts: DriverOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.wallTime = opts.wallTime ?? (() => new Date());
    this.log = opts.logger;
    this.events = new EventRecorder({
      http: opts.http,
      logger: opts.logger,
      component: EVENT_COMPONENT,
      onWrite: (verb, result) => opts.metrics?.apiWrites.inc({ verb, resource: "events", result }),
      now: this.wallTime,
    });
  }

  /** Both caches have synced and SlotMaps are being stepped. */
  get synced(): boolean {
    return this.ready && !this.stopped;
  }

  /** A liveness problem (a step wedged for minutes), or undefined when healthy. */
  health(): string | undefined {
    const now = this.now();
    for (const w of this.workers.values()) {
      if (w.runningSince !== undefined && now - w.runningSince > STUCK_AFTER_MS) {
        return `step of SlotMap ${w.name} running for ${Math.round((now - w.runningSince) / 1000)}s`;
      }
    }
    return undefined;
  }

  /**
   * Starts both watches; resolves once both caches synced (then every SlotMap is stepped).
   * Resolves without syncing if {@link stop} comes first.
   */
  async start(): Promise<void> {
    const slotMapHandler: ReflectorHandler<KubeObject> = {
      onListStart: () => this.slotMaps.beginList(),
      onEvent: (type, obj) =>
        this.onSlotMapChange(
          type === "DELETED" ? this.slotMaps.remove(keyOf(obj), obj) : this.slotMaps.put(obj),
        ),
      onSynced: () => {
        for (const c of this.slotMaps.endList()) this.onSlotMapChange(c);
      },
      onError: (err) => this.log.warn({ error: errorText(err) }, "SlotMap watch failed; retrying"),
    };
    const leaseHandler: ReflectorHandler<KubeObject> = {
      onListStart: () => this.leases.beginList(),
      onEvent: (type, obj) =>
        this.onLeaseChange(type === "DELETED" ? this.leases.remove(keyOf(obj), obj) : this.leases.put(obj)),
      onSynced: () => {
        for (const c of this.leases.endList()) this.onLeaseChange(c);
      },
      onError: (err) => this.log.warn({ error: errorText(err) }, "shard Lease watch failed; retrying"),
    };
    const projectionHandler: ReflectorHandler<KubeObject> = {
      onListStart: () => this.projections.beginList(),
      onEvent: (type, obj) =>
        this.onProjectionChange(
          type === "DELETED" ? this.projections.remove(keyOf(obj), obj) : this.projections.put(obj),
        ),
      onSynced: () => {
        for (const c of this.projections.endList()) this.onProjectionChange(c);
      },
      onError: (err) => this.log.warn({ error: errorText(err) }, "SlotMapShard watch failed; retrying"),
    };
    const timeout = this.opts.watchTimeoutSeconds;
    this.reflectors = [
      new Reflector<KubeObject>({
        http: this.opts.http,
        path: SLOTMAPS_PATH,
        handler: slotMapHandler,
        ...(timeout !== undefined ? { watchTimeoutSeconds: timeout } : {}),
      }),
      new Reflector<KubeObject>({
        http: this.opts.http,
        path: LEASES_PATH,
        labelSelector: LABEL_SLOTMAP,
        handler: leaseHandler,
        ...(timeout !== undefined ? { watchTimeoutSeconds: timeout } : {}),
      }),
      new Reflector<KubeObject>({
        http: this.opts.http,
        path: PROJECTIONS_PATH,
        labelSelector: LABEL_SLOTMAP,
        handler: projectionHandler,
        ...(timeout !== undefined ? { watchTimeoutSeconds: timeout } : {}),
      }),
    ];
    try {
      await Promise.all(this.reflectors.map((r) => r.start()));
    } catch (err) {
      if (this.stopped) return;
      throw err;
    }
    if (this.stopped) return;
    this.ready = true;
    this.log.info({ slotmaps: this.slotMaps.size, leases: this.leases.size }, "caches synced");
    for (const sm of this.slotMaps.values()) this.kick(sm.metadata?.name ?? "");
    this.sweepOrphans();
  }

  /**
   * Stops at once: no step starts after this call, writes in flight are aborted, the gauges of
   * every SlotMap are removed (a replica that stopped leading must not export stale values).
   * Resolves when the watches and workers have ended.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    clearTimeout(this.orphanTimer);
    for (const w of this.workers.values()) {
      clearTimeout(w.timer);
      clearTimeout(w.projectionTimer);
      this.opts.metrics.forget(w.name);
    }
    await Promise.all(this.reflectors.map((r) => r.stop()));
    await Promise.all([...this.workers.values()].flatMap((w) => [w.running, w.projecting]));
    this.workers.clear();
  }

  // --- caches ------------------------------------------------------------------------------------

  private onSlotMapChange(c: CacheChange<KubeObject>): void {
    if (c.before === c.after) return;
    const name = (c.after ?? c.before)?.metadata?.name;
    if (name) this.kick(name);
    if (c.after === undefined) this.sweepOrphans(); // its Leases are orphans now
  }

  private onLeaseChange(c: CacheChange<KubeObject>): void {
    if (c.before === c.after) return;
    const { was, is } = this.leaseIndex.update(c);
    if (was !== undefined) this.kick(was);
    if (is !== undefined && is !== was) this.kick(is);
    if (is !== undefined && this.slotMaps.get(is) === undefined) this.sweepOrphans();
  }

  /** A projection changed (ours, or edited, restored or deleted by someone): step its SlotMap. */
  private onProjectionChange(c: CacheChange<KubeObject>): void {
    if (c.before === c.after) return;
    this.projectionVersion++;
    const goneUid = c.after === undefined ? c.before?.metadata?.uid : undefined;
    if (goneUid !== undefined) this.deletedProjections = [...this.deletedProjections.slice(-1023), goneUid];
    const { was, is } = this.projectionIndex.update(c);
    if (was !== undefined) this.kick(was);
    if (is !== undefined && is !== was) this.kick(is);
  }

  /** Caches a projection from an answer (not from the watch) unless it was seen deleted since. */
  private putAnswered(obj: KubeObject): CacheChange<KubeObject> {
    const uid = obj.metadata?.uid;
    if (uid !== undefined && this.deletedProjections.includes(uid))
      return { before: undefined, after: undefined };
    return this.projections.put(obj);
  }

  /**
   * Deletes the Leases of SlotMaps that no longer exist once nobody renews them (core/orphans.ts);
   * runs after the caches synced, when such a Lease changes, and at the sweep's next deadline.
   */
  private sweepOrphans(): void {
    if (!this.ready || this.stopped) return;
    const leases: ObservedLease[] = [];
    for (const [name, keys] of this.leaseIndex.labels()) {
      if (this.slotMaps.get(name) !== undefined) continue;
      for (const key of keys) {
        const raw = this.leases.get(key);
        const lease = raw === undefined ? undefined : observedLease(raw);
        if (lease !== undefined) leases.push(lease);
      }
    }
    const sweep = sweepOrphans({
      leases,
      previous: this.orphans,
      now: this.now(),
      orphanAfterMs: this.opts.orphanAfterMs ?? DEFAULT_ORPHAN_AFTER_MS,
      defaultLeaseDurationMs: this.opts.defaultLeaseDurationMs ?? DEFAULT_LEASE_DURATION_MS,
    });
    this.orphans = sweep.memory;
    for (const d of sweep.deletes) void this.deleteOrphan(d);
    clearTimeout(this.orphanTimer);
    this.orphanTimer =
      sweep.nextAt === undefined
        ? undefined
        : setTimeout(() => this.sweepOrphans(), Math.max(0, sweep.nextAt - this.now()) + 10);
  }

  /** DELETE of a Lease, preconditioned on its uid and resourceVersion. */
  private deleteLease(d: DeleteLeaseAction): Promise<WriteResult> {
    return this.write(
      "delete",
      "leases",
      { shard: d.name, namespace: d.namespace },
      async () => {
        await this.opts.http.request("DELETE", leasePath(d.namespace, d.name), {
          body: {
            apiVersion: "v1",
            kind: "DeleteOptions",
            preconditions: { uid: d.uid, resourceVersion: d.resourceVersion },
          },
          signal: this.stopping.signal,
        });
      },
      () => this.rereadLease(d.namespace, d.name, d.uid),
    );
  }

  private async deleteOrphan(d: DeleteLeaseAction): Promise<void> {
    const r = await this.deleteLease(d);
    if (r === "ok")
      this.log.info(
        { shard: d.name, namespace: d.namespace },
        "deleted the Lease of a deleted SlotMap (unrenewed)",
      );
  }

  /**
   * The Leases labelled with a SlotMap's name: those in its `spec.leaseNamespace` (its shards), and
   * the others (never given slots; the core's drain barrier waits for them).
   */
  private leasesOf(name: string, spec: unknown): { own: KubeObject[]; foreign: KubeObject[] } {
    const ns = isRecord(spec) && typeof spec.leaseNamespace === "string" ? spec.leaseNamespace : undefined;
    const own: KubeObject[] = [];
    const foreign: KubeObject[] = [];
    for (const key of this.leaseIndex.of(name)) {
      const lease = this.leases.get(key);
      if (lease === undefined) continue;
      if (ns !== undefined && lease.metadata?.namespace === ns) own.push(lease);
      else foreign.push(lease);
    }
    return { own, foreign };
  }

  // --- workers -----------------------------------------------------------------------------------

  /** Asks for a step of SlotMap `name` (coalesced; serialised with any running step). */
  private kick(name: string): void {
    if (!this.ready || this.stopped || name === "") return;
    let w = this.workers.get(name);
    if (w === undefined) {
      if (this.slotMaps.get(name) === undefined) return;
      w = {
        name,
        memory: undefined,
        uid: undefined,
        pending: false,
        running: undefined,
        runningSince: undefined,
        timer: undefined,
        failures: 0,
        conflicts: 0,
        projected: undefined,
        projection: undefined,
        projecting: undefined,
        projectionPending: false,
        projectionFailures: 0,
        projectionTimer: undefined,
        dropped: false,
      };
      this.workers.set(name, w);
    }
    w.pending = true;
    w.running ??= this.drain(w);
  }

  private async drain(w: Worker): Promise<void> {
    await null; // lets kick() store `running` before this can finish
    try {
      while (w.pending && !w.dropped && !this.stopped) {
        w.pending = false;
        w.runningSince = this.now();
        try {
          await this.stepOnce(w);
        } catch (err) {
          this.log.error({ slotmap: w.name, error: errorText(err) }, "coordinator step failed; retrying");
          this.retryLater(w, undefined);
        } finally {
          w.runningSince = undefined;
        }
      }
    } finally {
      w.running = undefined;
      if (w.dropped && w.pending) this.kick(w.name);
    }
  }

  /** Forgets a deleted SlotMap: memory, timer and metric series. */
  private drop(w: Worker): void {
    w.dropped = true;
    clearTimeout(w.timer);
    clearTimeout(w.projectionTimer);
    this.workers.delete(w.name);
    this.opts.metrics.forget(w.name);
    this.log.info({ slotmap: w.name, uid: w.uid }, "SlotMap deleted: forgetting it");
  }

  private setTimer(w: Worker, at: number | undefined): void {
    clearTimeout(w.timer);
    w.timer = undefined;
    if (at === undefined || this.stopped || w.dropped) return;
    // +1: timers may fire a little early against performance.now(); the core wants now >= at.
    const delay = Math.max(0, Math.ceil(at - this.now())) + 1;
    w.timer = setTimeout(() => {
      w.timer = undefined;
      this.kick(w.name);
    }, delay);
  }

  private retryLater(w: Worker, nextStepAt: number | undefined): void {
    w.failures++;
    const backoff = backoffDelay(w.failures - 1, 200, MAX_BACKOFF_MS);
    const at = this.now() + backoff;
    this.setTimer(w, nextStepAt !== undefined ? Math.min(nextStepAt, at) : at);
  }

  /**
   * A /readyz problem while a SlotMap has more shards than the supported count (the excess gets no
   * slots until others leave), else undefined.
   */
  shardLimitProblem(): string | undefined {
    if (this.overLimit.size === 0) return undefined;
    const parts = [...this.overLimit].sort().map(([name, n]) => `${name}: ${n} shards over the limit`);
    return `more shards than supported (they get no slots): ${parts.join("; ")}`;
  }

  private async stepOnce(w: Worker): Promise<void> {
    const raw = this.slotMaps.get(w.name);
    if (raw === undefined) {
      this.drop(w);
      return;
    }
    const slotMap = observedSlotMap(raw);
    if (slotMap === undefined) return;
    const { own: leaseObjects, foreign: foreignObjects } = this.leasesOf(w.name, slotMap.spec);
    const observe = (objects: readonly KubeObject[]): ObservedLease[] =>
      objects.map(observedLease).filter((o): o is ObservedLease => o !== undefined);
    const leases = observe(leaseObjects);
    const foreignLeases = observe(foreignObjects);
    if (w.uid !== undefined && w.uid !== slotMap.metadata.uid) {
      // Recreated under the same name: its series start over (the core resets its memory).
      this.opts.metrics.forget(w.name);
    }
    w.uid = slotMap.metadata.uid;
    const started = this.now();
    let result: StepResult;
    try {
      result = step(w.memory, {
        slotMap,
        leases,
        ...(foreignLeases.length > 0 ? { foreignLeases } : {}),
        now: started,
        wallTime: this.wallTime().toISOString(),
        config: {
          identity: this.opts.identity,
          ...(this.opts.orphanAfterMs !== undefined ? { orphanAfterMs: this.opts.orphanAfterMs } : {}),
          ...(this.opts.defaultLeaseDurationMs !== undefined
            ? { defaultLeaseDurationMs: this.opts.defaultLeaseDurationMs }
            : {}),
        },
      });
    } catch (err) {
      if (!(err instanceof CoordinatorInputError)) throw err;
      // A bug in this layer: log it loudly, start from an empty memory (always safe), retry.
      this.log.error({ slotmap: w.name, field: err.field, error: err.message }, "bad input to the core");
      w.memory = undefined;
      this.retryLater(w, undefined);
      return;
    }
    this.stats.steps++;
    w.memory = result.memory;
    for (const r of result.logs) this.log[r.level](r.fields, r.msg);
    this.opts.metrics.publish(result.metrics);
    if (result.metrics.shardsOverLimit > 0) this.overLimit.set(w.name, result.metrics.shardsOverLimit);
    else this.overLimit.delete(w.name);
    const outcome = await this.apply(raw, leaseObjects, result.actions);
    if (this.stopped) return;
    if (!outcome.conflict && !outcome.failed)
      this.setProjection(w, slotMap, result, [...leaseObjects, ...foreignObjects]);
    this.opts.metrics.stepDuration.observe((this.now() - started) / 1000);
    w.conflicts = outcome.conflict ? w.conflicts + 1 : 0;
    if (outcome.conflict && w.conflicts <= IMMEDIATE_CONFLICT_RETRIES) w.pending = true;
    if (outcome.failed || w.conflicts > IMMEDIATE_CONFLICT_RETRIES) {
      this.retryLater(w, result.nextStepAt);
    } else {
      w.failures = 0;
      this.setTimer(w, result.nextStepAt);
    }
  }

  // --- actions -----------------------------------------------------------------------------------

  /** Applies a step's actions in order, each independently of the others' outcome. */
  private async apply(
    slotMap: KubeObject,
    leaseObjects: readonly KubeObject[],
    actions: readonly CoordinatorAction[],
  ): Promise<{ conflict: boolean; failed: boolean }> {
    const leases = new Map(leaseObjects.map((l) => [keyOf(l), l]));
    let conflict = false;
    let failed = false;
    for (const a of actions) {
      if (this.stopped) break;
      let r: WriteResult = "ok";
      switch (a.type) {
        case "updateStatus":
          r = await this.write(
            "update",
            "slotmaps/status",
            { slotmap: a.slotMap.name, resourceVersion: a.slotMap.resourceVersion },
            async () => {
              const updated = await this.opts.http.request<KubeObject>(
                "PUT",
                `${slotMapPath(a.slotMap.name)}/status`,
                {
                  body: {
                    apiVersion: API_VERSION,
                    kind: KIND,
                    metadata: {
                      name: a.slotMap.name,
                      uid: a.slotMap.uid,
                      resourceVersion: a.slotMap.resourceVersion,
                    },
                    spec: slotMap.spec,
                    status: a.status,
                  },
                  signal: this.stopping.signal,
                },
              );
              this.onSlotMapChange(this.slotMaps.refresh(updated));
            },
            () => this.rereadSlotMap(a.slotMap.name, a.slotMap.uid),
          );
          break;
        case "takeOverLease": {
          const current = leases.get(`${a.namespace}/${a.name}`);
          r = await this.write(
            "update",
            "leases",
            { slotmap: labelOf(current) ?? "", shard: a.name, namespace: a.namespace },
            async () => {
              if (current === undefined || current.metadata?.uid !== a.uid) {
                // Not the Lease the step judged: let the re-read and the next step decide.
                throw new StaleObservation();
              }
              const spec = isRecord(current.spec) ? current.spec : {};
              const updated = await this.opts.http.request<KubeObject>(
                "PUT",
                leasePath(a.namespace, a.name),
                {
                  body: {
                    ...current,
                    apiVersion: "coordination.k8s.io/v1",
                    kind: "Lease",
                    metadata: { ...current.metadata, resourceVersion: a.resourceVersion },
                    spec: { ...spec, ...a.spec },
                  },
                  signal: this.stopping.signal,
                },
              );
              this.onLeaseChange(this.leases.refresh(updated));
            },
            () => this.rereadLease(a.namespace, a.name, a.uid),
          );
          break;
        }
        case "deleteLease":
          r = await this.deleteLease(a);
          break;
        case "event": {
          const kind =
            a.reason === REASONS.invalidSpec
              ? "spec"
              : a.reason === REASONS.invalidStatus
                ? "status"
                : a.reason === REASONS.invalidAnnotation
                  ? "annotation"
                  : undefined;
          if (kind !== undefined) {
            this.opts.metrics.invalidInput.inc({ slotmap: slotMap.metadata?.name ?? "", kind });
          }
          await this.events.record(a, this.stopping.signal);
          break;
        }
      }
      if (r === "forbidden") {
        await this.reportForbidden(slotMap, a);
        r = "error";
      }
      if (r === "conflict") conflict = true;
      else if (r === "error") failed = true;
    }
    return { conflict, failed };
  }

  /**
   * Records what the projections must show after a step whose own writes succeeded, and starts
   * the projection loop. Only a status the step stood by and did not rewrite
   * (core/projections.ts): never a table that was not written. A step that stood by none (a reset,
   * an invalid status) stops the loop until one does.
   */
  private setProjection(
    w: Worker,
    slotMap: ObservedSlotMap,
    result: StepResult,
    leaseObjects: readonly KubeObject[],
  ): void {
    const spec = slotMap.spec;
    const leaseNamespace =
      isRecord(spec) && typeof spec.leaseNamespace === "string" ? spec.leaseNamespace : undefined;
    const writesStatus = result.actions.some((a) => a.type === "updateStatus");
    if (writesStatus) return; // its projection follows in the next step, on the written status
    if (leaseNamespace === undefined || result.projectable === undefined) {
      w.projection = undefined;
      return;
    }
    const leases: ProjectionJob["leases"][number][] = [];
    const parts: string[] = [slotMap.metadata.resourceVersion, leaseNamespace];
    for (const l of leaseObjects) {
      const m = l.metadata;
      if (!m?.name || !m.namespace) continue;
      // The ack tells a projection set back below it, the refusal one the shard will not take
      // (core/projections.ts). Their raw annotations go into the key: a renewal changes neither.
      const a = m.annotations;
      leases.push({ namespace: m.namespace, name: m.name, annotations: a });
      parts.push(
        `${m.namespace}/${m.name}/${a?.[ANNOTATION_OBSERVED_GENERATION] ?? ""}/${a?.[ANNOTATION_REFUSED_GENERATION] ?? ""}/${a?.[ANNOTATION_SLOTMAP_UID] ?? ""}`,
      );
    }
    const key = parts.join("\u0000");
    w.projection = { slotMap, status: result.projectable, leaseNamespace, leases, key };
    this.kickProjection(w);
  }

  private kickProjection(w: Worker): void {
    if (this.stopped || w.dropped) return;
    w.projectionPending = true;
    w.projecting ??= this.projectLoop(w).finally(() => {
      w.projecting = undefined;
    });
  }

  /**
   * Writes the shards' projections, a few at a time, apart from the steps: at 1000 shards a drain
   * barrier rewrites 1000 of them, and a step waiting for that would leave the Leases unobserved
   * (the core then takes the gap for a blind period). Runs until the projections match the newest
   * job; most jobs only repeat the last one (renewals) and are skipped by their key.
   */
  private async projectLoop(w: Worker): Promise<void> {
    await null;
    while (w.projectionPending && !this.stopped && !w.dropped) {
      w.projectionPending = false;
      const job = w.projection;
      if (job === undefined) return;
      const key = `${job.key}\u0000${this.projectionVersion}`;
      if (w.projected === key) continue;
      const actions = projectionActions({
        slotMap: { name: job.slotMap.metadata.name, uid: job.slotMap.metadata.uid },
        status: job.status,
        writesStatus: false,
        leaseNamespace: job.leaseNamespace,
        leases: job.leases,
        observed: this.observedProjections(job.slotMap.metadata.name),
      });
      let failed = false;
      let next = 0;
      const writer = async (): Promise<void> => {
        while (next < actions.length && !this.stopped) {
          const r = await this.writeProjection(job.slotMap, actions[next++]!);
          if (r !== "ok" && r !== "conflict") failed = true;
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(PROJECTION_WRITE_CONCURRENCY, actions.length) }, writer),
      );
      // A conflict re-read the projection: the cache changed, so the key differs and the next
      // round (the change kicked a step, whose job kicks this loop) writes from the new view.
      w.projected = failed ? undefined : key;
      if (failed) {
        clearTimeout(w.projectionTimer);
        const delay = backoffDelay(w.projectionFailures++, 200, MAX_BACKOFF_MS);
        w.projectionTimer = setTimeout(() => this.kickProjection(w), delay);
      } else {
        w.projectionFailures = 0;
      }
    }
  }

  private observedProjections(slotMap: string): ObservedProjection[] {
    const observed: ObservedProjection[] = [];
    for (const key of this.projectionIndex.of(slotMap)) {
      const o = this.projections.get(key);
      const m = o?.metadata;
      if (!m?.name || !m.namespace || !m.uid || !m.resourceVersion) continue;
      observed.push({
        namespace: m.namespace,
        name: m.name,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
        spec: o?.spec,
      });
    }
    return observed;
  }

  private writeProjection(slotMap: ObservedSlotMap, a: ProjectionAction): Promise<WriteResult> {
    const { namespace, name } = a;
    const path = `${projectionsPath(namespace)}/${encodeURIComponent(name)}`;
    const fields = { slotmap: slotMap.metadata.name, projection: name, namespace };
    const reread = () => this.rereadProjection(namespace, name);
    if (a.type === "deleteProjection") {
      return this.write(
        "delete",
        "slotmapshards",
        fields,
        async () => {
          await this.opts.http.request("DELETE", path, {
            body: {
              apiVersion: "v1",
              kind: "DeleteOptions",
              preconditions: { uid: a.uid, resourceVersion: a.resourceVersion },
            },
            signal: this.stopping.signal,
          });
          this.onProjectionChange(
            this.projections.remove(`${namespace}/${name}`, { metadata: { name, namespace } }),
          );
        },
        reread,
      );
    }
    const body = {
      apiVersion: API_VERSION,
      kind: PROJECTION_KIND,
      metadata: {
        name,
        namespace,
        labels: { [LABEL_SLOTMAP]: slotMap.metadata.name },
        // Garbage-collected with its SlotMap (a cluster-scoped owner of a namespaced object).
        ownerReferences: [
          { apiVersion: API_VERSION, kind: KIND, name: slotMap.metadata.name, uid: slotMap.metadata.uid },
        ],
        ...(a.resourceVersion !== undefined ? { resourceVersion: a.resourceVersion } : {}),
      },
      spec: a.spec,
    };
    return this.write(
      a.resourceVersion === undefined ? "create" : "update",
      "slotmapshards",
      fields,
      async () => {
        const created = a.resourceVersion === undefined;
        const written = await this.opts.http.request<KubeObject>(
          created ? "POST" : "PUT",
          created ? projectionsPath(namespace) : path,
          { body, signal: this.stopping.signal },
        );
        // A created object is cached at once: the next step must not create it again before the
        // watch shows it (one 409 per join in the scale benchmark).
        this.onProjectionChange(created ? this.putAnswered(written) : this.projections.refresh(written));
      },
      reread,
    );
  }

  private async rereadProjection(namespace: string, name: string): Promise<void> {
    try {
      const obj = await this.opts.http.request<KubeObject>(
        "GET",
        `${projectionsPath(namespace)}/${encodeURIComponent(name)}`,
        { signal: this.stopping.signal },
      );
      // put, not refresh: after a 409 on create the object exists but may not be cached yet.
      this.onProjectionChange(this.putAnswered(obj));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      this.onProjectionChange(
        this.projections.remove(`${namespace}/${name}`, { metadata: { name, namespace } }),
      );
    }
  }

  /**
   * Runs one write, counts it, and sorts its outcome: 409 (and a stale observation) re-read the
   * object and ask for a re-step; 404 on delete is success; 404 otherwise re-reads (gone); any
   * other error asks for a retry with backoff.
   */
  private async write(
    verb: "create" | "update" | "delete",
    resource: Written,
    fields: Record<string, string>,
    send: () => Promise<void>,
    reread: () => Promise<void>,
  ): Promise<WriteResult> {
    try {
      await send();
      this.opts.metrics.apiWrites.inc({ verb, resource, result: "ok" });
      return "ok";
    } catch (err) {
      if (this.stopped) return "error";
      const conflict = isStatus(err, 409) || err instanceof StaleObservation;
      const notFound = isStatus(err, 404);
      this.opts.metrics.apiWrites.inc({
        verb,
        resource,
        result: conflict ? "conflict" : notFound ? "notfound" : "error",
      });
      if (notFound && verb === "delete") return "ok";
      if (conflict || notFound) {
        this.stats.conflicts++;
        this.log.info(
          { ...fields, verb, resource, error: errorText(err) },
          "write rejected by a precondition: re-reading and stepping again",
        );
        try {
          await reread();
        } catch (rereadErr) {
          this.log.warn({ ...fields, error: errorText(rereadErr) }, "re-read failed; relying on the watch");
        }
        return "conflict";
      }
      this.stats.writeErrors++;
      this.log.warn(
        { ...fields, verb, resource, error: errorText(err) },
        "write failed; retrying with backoff",
      );
      return resource === "leases" && isStatus(err, 403) ? "forbidden" : "error";
    }
  }

  /**
   * RBAC refused a Lease write: most likely the lease namespace has no RoleBinding for the
   * coordinator. The write is retried with backoff like any failure; a Warning Event on the SlotMap
   * (one, counted up by the recorder while it repeats) tells the operator what to bind.
   */
  private async reportForbidden(slotMap: KubeObject, a: CoordinatorAction): Promise<void> {
    if (a.type !== "takeOverLease" && a.type !== "deleteLease") return;
    const verb = a.type === "takeOverLease" ? "take over" : "delete";
    await this.events.record(
      {
        involvedObject: {
          apiVersion: API_VERSION,
          kind: KIND,
          name: slotMap.metadata?.name ?? "",
          uid: slotMap.metadata?.uid ?? "",
        },
        eventType: "Warning",
        reason: REASON_LEASE_WRITE_FORBIDDEN,
        message:
          `the coordinator may not ${verb} Lease ${a.namespace}/${a.name} (403 Forbidden): bind the ClusterRole ` +
          `slotmap-coordinator-lease-namespace to its ServiceAccount in namespace ${a.namespace} ` +
          "(docs/operations.md); retrying with backoff",
        reportingInstance: this.opts.identity,
      },
      this.stopping.signal,
    );
  }

  private async rereadSlotMap(name: string, uid: string): Promise<void> {
    try {
      const obj = await this.opts.http.request<KubeObject>("GET", slotMapPath(name), {
        signal: this.stopping.signal,
      });
      this.onSlotMapChange(this.slotMaps.refresh(obj));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      this.onSlotMapChange(this.slotMaps.remove(name, { metadata: { name, uid } }));
    }
  }

  private async rereadLease(namespace: string, name: string, uid: string): Promise<void> {
    try {
      const obj = await this.opts.http.request<KubeObject>("GET", leasePath(namespace, name), {
        signal: this.stopping.signal,
      });
      this.onLeaseChange(this.leases.refresh(obj));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      this.onLeaseChange(this.leases.remove(`${namespace}/${name}`, { metadata: { name, namespace, uid } }));
    }
  }
}

/** The cached Lease is not the one the step judged (it changed meanwhile): treated like a 409. */
class StaleObservation extends Error {
  constructor() {
    super("the Lease changed since the step observed it");
    this.name = "StaleObservation";
  }
}
