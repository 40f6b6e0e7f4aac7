/**
 * The rebalance benchmark: slot-based (slotmap) vs per-object label sharding (the baseline in
 * bench/label-baseline), side by side on one local API server, with the same example reconciler.
 *
 * Per object count N, on a fresh control plane, each approach in turn (slot-based first: its
 * shards watch Secrets cluster-wide, so the baseline's objects must not exist yet):
 * 1. start the controller process (slotmap coordinator / baseline sharder) and 3 shards;
 * 2. create N small Secrets; every shard's reconciler creates the ConfigMaps;
 * 3. churn: update min(N, 1000) Secrets, to count watch events per shard in steady state;
 * 4. rebalance 3→4 (a shard joins), 4→3 (it leaves gracefully), then, after growing to 10
 *    shards unmeasured, 10→11.
 * Then, on another fresh control plane, slot-based again with the controller's `cache: "all"`
 * ("slot-all": every shard caches every object, so a gained slot needs no list).
 *
 * Each rebalance is one measurement window. API writes come from the API server's
 * `apiserver_request_total` (diffed over the window, minus the background Lease renewals measured
 * in a quiet period just before), LISTs from the same metric and
 * `apiserver_storage_list_returned_objects_total`, watch traffic from
 * `apiserver_watch_cache_events_dispatched_total` and from each shard's own tally of what it
 * received, process figures from /proc, and the controller's (coordinator / sharder) memory after
 * a full GC through the V8 inspector, at 0 objects, after the creates and after the last
 * rebalance. Shards report, with timestamps, when they gain and lose objects (label) or slots
 * (slot-based) and when each reconcile ends; the harness derives the moved objects, when each was
 * picked up and reconciled by its new owner, and its pause with no active owner.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { keySlot, objectKey, parseSlotRanges, SLOT_COUNT } from "../../src/slots/index.js";
import { type ControlPlane, startControlPlane } from "../../test/support/controlplane.js";
import { HashRing } from "../label-baseline/protocol.js";
import type { LabelShardConfig } from "../label-baseline/shard.js";
import type { SharderConfig } from "../label-baseline/sharder.js";
import type { Row, RunOptions } from "../lib.js";
import {
  type ApiSnapshot,
  diffCounts,
  diffWrites,
  formatWrites,
  snapshotFromMetrics,
  totalWrites,
  type WritesByResource,
} from "./apimetrics.js";
import { compileEntries } from "./build.js";
import { Child, type GcMemory } from "./children.js";
import { fit2, percentiles } from "./fit.js";
import { type ChildMessage, type ChildStats, nowMs } from "./ipc.js";
import { connectKube, installCrds, type Kube, runPool, sleep, waitUntil } from "./kube.js";
import { type ProcSample, trySampleProc } from "./proc.js";
import type { SlotShardConfig } from "./slot-shard.js";

const REPO = resolve(import.meta.dirname, "../..");
/** The processes the benchmark starts, compiled once per run (see build.ts). */
const ENTRIES = [
  "src/coordinator/main.ts",
  "bench/support/slot-shard.ts",
  "bench/label-baseline/shard.ts",
  "bench/label-baseline/sharder.ts",
] as const;
let compiled: ((entry: string) => string) | undefined;
function entry(path: (typeof ENTRIES)[number]): string {
  compiled ??= compileEntries(ENTRIES);
  return compiled(path);
}
const RESULTS_DIR = join(REPO, "bench/results");
const SLOTMAP = "bench";
const RING = "bench";

/**
 * Which implementation a run measures: slotmap with the controller's default cache (objects of
 * owned slots), slotmap with `cache: "all"`, or the label-based baseline.
 */
export type ApproachName = "slot" | "slot-all" | "label";

/** Whether an approach is slotmap (either cache). */
const isSlot = (a: ApproachName): boolean => a !== "label";

/** One measured rebalance. */
export interface TransitionResult {
  approach: ApproachName;
  objects: number;
  /** e.g. `3→4`. */
  transition: string;
  /** Root objects (Secrets) whose owner changed. */
  moved: number;
  /** API writes in the window by resource, as counted by the API server. */
  writesRaw: WritesByResource;
  /** Background writes per second (Lease renewals) measured just before, by resource. */
  backgroundPerSecond: WritesByResource;
  /** writesRaw minus background × window length, by resource (≥ 0). */
  writesNet: WritesByResource;
  writesNetTotal: number;
  windowMs: number;
  /**
   * Trigger → the new assignment applied by the shards, as they report it: slot-based, the last
   * slot gain of the committing generation; label-based, the last moved object arriving in its
   * new shard's watch.
   */
  commitMs: number;
  /** Slot-based: trigger → the harness's own watch saw the committed SlotMap status. */
  commitSeenMs?: number;
  /** Slot-based: trigger → the coordinator decided the committing generation (its log's clock). */
  commitDecidedMs?: number;
  /** Trigger → every moved object reconciled by its new owner. */
  reconciledMs: number;
  /** Per moved object: time between losing its old owner and being picked up by the new one. */
  pauseMs: { p50: number; p99: number; max: number; missing: number };
  /**
   * Per moved object: from losing its old owner to the end of the first reconcile by the new one
   * (the pause plus the new owner fetching the object and working through its queue).
   */
  handoffMs: { p50: number; p99: number; max: number; missing: number };
  /** LIST requests the API server served in the window, by resource (pages count one each). */
  apiLists: Record<string, number>;
  /** Objects the API server returned from LISTs in the window, by resource. */
  apiListedObjects: Record<string, number>;
  /** Bytes of Secret and ConfigMap list responses the shards received in the window, summed. */
  shardListBytes: number;
  /** CPU seconds of the controller process (coordinator / sharder) in the window. */
  controllerCpuSeconds: number;
  controllerRssBytes: number;
  /**
   * CPU seconds of each shard alive after the transition, and of the API server (etcd included),
   * up to the last moved object's reconcile (sampled within 250 ms after it): from the trigger,
   * except that a joiner counts from its spawn (its start-up, and with `cache: "all"` its first
   * list, come before its trigger, Ready).
   */
  handoffCpuSeconds: { shards: Record<string, number>; apiServer: number };
  /** Watch events the API server delivered (summed over watchers), by resource, in the window. */
  watchEvents: Record<string, number>;
  /**
   * Watch events (lines) and bytes of Secrets + ConfigMaps each shard received in the window,
   * and the bytes of its Secret + ConfigMap list responses (as received: gzip-compressed).
   */
  shardWatch: Array<{ shard: string; events: number; bytes: number; listBytes: number }>;
  /** writesNet without the reconciler's failed ConfigMap creates (`configmaps 409`). */
  protocolWritesTotal: number;
  shardsAfter: number;
  /** What the trigger is: `shard Ready` (joins) or `SIGTERM` (leaves). */
  trigger: string;
}

/** Per approach and object count: setup, steady state and memory figures. */
export interface ApproachResult {
  approach: ApproachName;
  objects: number;
  createSeconds: number;
  /** Initial reconcile of all objects done, seconds after the creates started. */
  initialSyncSeconds: number;
  transitions: TransitionResult[];
  /** Secret watch events (and bytes) received per shard for `updates` updates of Secrets (3 shards). */
  churn: { updates: number; secretEventsPerShard: number; secretBytesPerShard: number; shards: number };
  /** /proc RSS (no GC) of the controller process at the start (0 objects) and after the last rebalance. */
  controllerRss: { zeroObjects: number; nObjects: number };
  /**
   * Controller (coordinator / sharder) memory after a full GC: with 3 shards and 0 objects, after
   * the N objects were created and reconciled, and after the last rebalance (11 shards).
   */
  controllerMemory: { zeroObjects: GcMemory; created: GcMemory; end: GcMemory } | undefined;
  shardMemory: {
    /** Per root object (Secret + its ConfigMap), least squares over shards at 3 and 10 shards. */
    rssPerOwned: number;
    rssPerNonOwned: number;
    heapPerOwned: number;
    heapPerNonOwned: number;
    samples: Array<{ shards: number; owned: number; nonOwned: number; rss: number; heap: number }>;
    baseRss: number;
    baseHeap: number;
  };
}

interface SlotEvent {
  shard: string;
  t: number;
  kind: "gained" | "lost";
  ranges: Array<{ start: number; end: number }>;
  /** Assignment generation the shard applied. */
  generation: number | undefined;
}

/** Events reported by children during one measurement window. */
class WindowLog {
  readonly gained = new Map<string, Map<string, number>>();
  readonly lost = new Map<string, Map<string, number>>();
  /** key → reconcile end times by shard. */
  readonly reconciled = new Map<string, Array<[string, number]>>();
  readonly slots: SlotEvent[] = [];
  readonly lostAll = new Map<string, number>();

  addKeyTime(map: Map<string, Map<string, number>>, shard: string, key: string, t: number): void {
    let m = map.get(shard);
    if (!m) {
      m = new Map();
      map.set(shard, m);
    }
    if (!m.has(key)) m.set(key, t);
  }
}

/** The API server's metrics now. */
async function apiSnapshot(kube: Kube): Promise<ApiSnapshot> {
  const t = nowMs();
  return snapshotFromMetrics(await kube.getText("/metrics"), t);
}

function nonLeaseWrites(w: WritesByResource): number {
  let n = 0;
  for (const [k, v] of Object.entries(w)) if (k !== "leases" && k !== "events") n += v;
  return n;
}

/** LIST requests (pages) of the sharded resources: a shard fetching objects of gained slots. */
function objectLists(s: ApiSnapshot): number {
  return (s.lists.secrets ?? 0) + (s.lists.configmaps ?? 0);
}

/**
 * Waits until no write other than Lease renewals (and Events), and no LIST of Secrets or
 * ConfigMaps, reaches the API server for `quietMs`; returns the last snapshot. (A shard may
 * still be listing after its last reconcile: its reads belong to the window that caused them.)
 */
async function quiesce(kube: Kube, quietMs = 1500, timeoutMs = 1_800_000): Promise<ApiSnapshot> {
  const deadline = performance.now() + timeoutMs;
  let last = await apiSnapshot(kube);
  let since = performance.now();
  for (;;) {
    await sleep(500);
    const s = await apiSnapshot(kube);
    if (nonLeaseWrites(s.writes) !== nonLeaseWrites(last.writes) || objectLists(s) !== objectLists(last))
      since = performance.now();
    last = s;
    if (performance.now() - since >= quietMs) return last;
    if (performance.now() > deadline) throw new Error("API writes did not quiesce");
  }
}

function slotOfKey(key: string): number {
  const slash = key.indexOf("/");
  return keySlot(objectKey("", "Secret", key.slice(0, slash), key.slice(slash + 1)));
}

function labelRingKey(key: string): string {
  const slash = key.indexOf("/");
  return `/Secret/${key.slice(0, slash)}/${key.slice(slash + 1)}`;
}

interface SlotMapStatusLite {
  assignmentGeneration?: number;
  shards?: Array<{ name: string; slots?: string; state?: string; observedGeneration?: number }>;
  migrations?: unknown[];
  unassignedSlots?: string;
}

/** Shared machinery of both approaches; subclasses provide the processes and the notion of owner. */
abstract class ApproachRun {
  abstract readonly name: ApproachName;
  readonly shards = new Map<string, Child>();
  controller: Child | undefined;
  readonly keys: string[] = [];
  readonly reconciledEver = new Set<string>();
  window = new WindowLog();
  windowStart = 0;
  readonly logDir: string;

  constructor(
    readonly kube: Kube,
    readonly cp: ControlPlane,
    readonly objects: number,
    readonly log: (m: string) => void,
    runDir: string,
  ) {
    this.logDir = join(runDir, this.constructor.name);
    mkdirSync(this.logDir, { recursive: true });
  }

  abstract get namespace(): string;
  abstract setup(): Promise<void>;
  abstract startShard(name: string): Child;
  /** Owner of each key now (as far as the protocol's state says). */
  abstract owners(): Map<string, string>;
  /** Whether the assignment is complete for exactly these shards; returns when (ms) it became so. */
  abstract committedAt(shards: readonly string[]): number | undefined;
  /** Time the new owner picked up `key` (undefined: not seen). */
  abstract gainTime(key: string, shard: string): number | undefined;
  /** Time the old owner let go of `key`. */
  abstract lostTime(key: string, shard: string): number | undefined;
  /**
   * When the assignment for `shards` was applied (see {@link TransitionResult.commitMs}), seen and
   * decided; call after the window's reports are in. `seenAt`: what {@link committedAt} returned.
   */
  commitTimes(
    _shards: readonly string[],
    seenAt: number,
  ): { applied: number; seen?: number; decided?: number } {
    return { applied: seenAt };
  }

  shardName(i: number): string {
    return `${this.name}-${i}`;
  }

  onMessage(child: Child, msg: ChildMessage): void {
    if (msg.type === "report") {
      for (const [k, t] of msg.gained) this.window.addKeyTime(this.window.gained, child.name, k, t);
      for (const [k, t] of msg.lost) this.window.addKeyTime(this.window.lost, child.name, k, t);
      for (const [k, t] of msg.reconciled) {
        this.reconciledEver.add(k);
        let a = this.window.reconciled.get(k);
        if (!a) {
          a = [];
          this.window.reconciled.set(k, a);
        }
        a.push([child.name, t]);
      }
      for (const s of msg.slots) {
        this.window.slots.push({
          shard: child.name,
          t: s.t,
          kind: s.kind,
          ranges: parseSlotRanges(s.ranges),
          generation: s.generation,
        });
      }
      this.onReport(child, msg);
    } else if (msg.type === "lostAll") {
      if (!this.window.lostAll.has(child.name)) this.window.lostAll.set(child.name, msg.t);
    } else if (msg.type === "fatal") {
      this.log(`${child.name}: FATAL ${msg.message}`);
    }
  }

  /** Hook for subclasses (label ownership tracking). */
  onReport(_child: Child, _msg: Extract<ChildMessage, { type: "report" }>): void {}

  /** Clears the window's event log (the owner tracking of subclasses is kept). */
  newWindow(): void {
    this.window = new WindowLog();
    this.windowStart = nowMs();
  }

  liveShardNames(): string[] {
    return [...this.shards.keys()];
  }

  /** Namespace of the shard Leases. */
  abstract get leaseNamespace(): string;
  /** Shard Lease name → when the harness first saw it held (non-empty holderIdentity). */
  readonly leaseHeldAt = new Map<string, number>();
  private leaseReflector: Reflector<KubeObject> | undefined;

  /**
   * Watches the shard Leases: a shard is Ready, for the coordinator or sharder, once its Lease is
   * held, which may be before the (freshly started, busy) shard process reports it.
   */
  async watchLeases(): Promise<void> {
    this.leaseReflector = new Reflector<KubeObject>({
      http: this.kube.http,
      path: `/apis/coordination.k8s.io/v1/namespaces/${this.leaseNamespace}/leases`,
      handler: {
        onEvent: (type, obj) => {
          const name = obj.metadata?.name;
          const holder = (obj as { spec?: { holderIdentity?: string | null } }).spec?.holderIdentity;
          if (type !== "DELETED" && name && holder && !this.leaseHeldAt.has(name))
            this.leaseHeldAt.set(name, nowMs());
        },
      },
    });
    await this.leaseReflector.start();
  }

  /**
   * Starts a shard; resolves with the time it became Ready: the earlier of its own report (Lease
   * acquired) and the harness seeing its Lease held.
   */
  async addShard(name: string): Promise<number> {
    const child = this.startShard(name);
    this.shards.set(name, child);
    const reported = await child.ready(120_000);
    const seen = await waitUntil(`Lease ${name} seen held`, () => this.leaseHeldAt.get(name), 30_000, 5);
    return Math.min(reported, seen);
  }

  async removeShard(name: string): Promise<number> {
    const child = this.shards.get(name);
    if (!child) throw new Error(`no shard ${name}`);
    const t = nowMs();
    this.shards.delete(name);
    await child.stop();
    return t;
  }

  async waitCommitted(shards: readonly string[], timeoutMs: number): Promise<number> {
    return waitUntil(
      `${this.name}: assignment committed to ${shards.length} shards`,
      () => this.committedAt(shards),
      timeoutMs,
      // Times come from event timestamps, not from this poll; the poll only has to notice.
      200,
      (m) => this.log(`${m}: ${this.describe(shards)}`),
    );
  }

  /** What is still missing for {@link committedAt}, for progress lines. */
  abstract describe(shards: readonly string[]): string;

  async shardStats(
    gc: boolean,
  ): Promise<Array<{ name: string; stats: ChildStats; proc: ProcSample | undefined }>> {
    const out = [];
    for (const [name, child] of this.shards) {
      const stats = await child.stats(gc);
      out.push({ name, stats, proc: child.sample() });
    }
    return out;
  }

  async createObjects(): Promise<number> {
    const ns = this.namespace;
    const t0 = performance.now();
    const names = Array.from({ length: this.objects }, (_, i) => `s-${String(i).padStart(6, "0")}`);
    let done = 0;
    await runPool(names, 24, async (name) => {
      await this.kube.http.request("POST", `/api/v1/namespaces/${ns}/secrets`, {
        body: {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name, namespace: ns },
          data: { v: Buffer.from(`value-${name}`).toString("base64") },
        },
      });
      this.keys.push(`${ns}/${name}`);
      if (++done % 10_000 === 0) this.log(`${this.name}: created ${done}/${this.objects}`);
    });
    return (performance.now() - t0) / 1000;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.shards.values()].map((c) => c.stop()));
    this.shards.clear();
    await this.controller?.stop();
    await this.leaseReflector?.stop();
  }
}

class SlotRun extends ApproachRun {
  /** "slot-all": the shards run with `cache: "all"`. */
  name: "slot" | "slot-all" = "slot";
  private status: SlotMapStatusLite | undefined;
  /** SlotMap statuses seen in the window, with the time they were seen. */
  private history: Array<{ t: number; status: SlotMapStatusLite }> = [];
  private reflector: Reflector<KubeObject> | undefined;
  private slotOf = new Map<string, number>();

  get namespace(): string {
    return "bench-slot";
  }

  get leaseNamespace(): string {
    return "bench-slot-system";
  }

  async setup(): Promise<void> {
    const http = this.kube.http;
    for (const ns of [this.namespace, "bench-slot-system"]) {
      await http.request("POST", "/api/v1/namespaces", {
        body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
      });
    }
    await http.request("POST", "/apis/slotmap.dev/v1alpha1/slotmaps", {
      body: {
        apiVersion: "slotmap.dev/v1alpha1",
        kind: "SlotMap",
        metadata: { name: SLOTMAP },
        spec: {
          leaseNamespace: "bench-slot-system",
          resources: [
            { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
          ],
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": this.namespace } },
          policy: { maxMigratingSlots: 16384, handoffTimeoutSeconds: 30 },
        },
      },
    });
    this.reflector = new Reflector<KubeObject>({
      http,
      path: "/apis/slotmap.dev/v1alpha1/slotmaps",
      fieldSelector: `metadata.name=${SLOTMAP}`,
      handler: {
        onEvent: (type, obj) => {
          if (type === "DELETED") return;
          const status = (obj as { status?: SlotMapStatusLite }).status;
          if (!status) return;
          this.status = status;
          this.history.push({ t: nowMs(), status });
        },
      },
    });
    await this.reflector.start();
    this.controller = new Child("coordinator", {
      entry: entry("src/coordinator/main.ts"),
      args: [
        "--kubeconfig",
        this.cp.kubeconfig,
        "--leader-elect",
        "false",
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
        "--identity",
        "bench-coordinator",
      ],
      logDir: this.logDir,
      inspect: true,
    });
  }

  startShard(name: string): Child {
    const config: SlotShardConfig = {
      kubeconfig: this.cp.kubeconfig,
      slotMap: SLOTMAP,
      shard: name,
      leaseNamespace: "bench-slot-system",
      concurrency: 4,
      cache: this.name === "slot-all" ? "all" : "owned",
    };
    return new Child(name, {
      entry: entry("bench/support/slot-shard.ts"),
      config,
      logDir: this.logDir,
      onMessage: (c, m) => this.onMessage(c, m),
    });
  }

  override newWindow(): void {
    super.newWindow();
    this.history = this.status ? [{ t: this.windowStart, status: this.status }] : [];
  }

  private slot(key: string): number {
    let s = this.slotOf.get(key);
    if (s === undefined) {
      s = slotOfKey(key);
      this.slotOf.set(key, s);
    }
    return s;
  }

  /** Slot → owner from a status (undefined: migrating or unassigned). */
  private table(status: SlotMapStatusLite | undefined): Array<string | undefined> {
    const owner: Array<string | undefined> = new Array(SLOT_COUNT).fill(undefined);
    for (const e of status?.shards ?? []) {
      if (!e.slots) continue;
      for (const r of parseSlotRanges(e.slots)) for (let s = r.start; s <= r.end; s++) owner[s] = e.name;
    }
    return owner;
  }

  owners(): Map<string, string> {
    const t = this.table(this.status);
    const out = new Map<string, string>();
    for (const k of this.keys) {
      const o = t[this.slot(k)];
      if (o !== undefined) out.set(k, o);
    }
    return out;
  }

  private isCommitted(status: SlotMapStatusLite, shards: readonly string[]): boolean {
    if ((status.migrations ?? []).length > 0 || (status.unassignedSlots ?? "") !== "") return false;
    const owning = new Set((status.shards ?? []).filter((e) => (e.slots ?? "") !== "").map((e) => e.name));
    return owning.size === shards.length && shards.every((s) => owning.has(s));
  }

  describe(): string {
    const s = this.status;
    return s === undefined
      ? "no SlotMap status yet"
      : `generation ${s.assignmentGeneration}, ${(s.migrations ?? []).length} migrations, unassigned "${s.unassignedSlots ?? ""}", shards ${(s.shards ?? []).map((e) => `${e.name}:${e.state}:${e.slots}`).join(" ")}`;
  }

  committedAt(shards: readonly string[]): number | undefined {
    for (const h of this.history) if (this.isCommitted(h.status, shards)) return h.t;
    return undefined;
  }

  override commitTimes(
    shards: readonly string[],
    seenAt: number,
  ): { applied: number; seen?: number; decided?: number } {
    const g = this.history.find((h) => this.isCommitted(h.status, shards))?.status.assignmentGeneration;
    if (g === undefined) return { applied: seenAt, seen: seenAt };
    let applied: number | undefined;
    for (const e of this.window.slots) {
      if (e.kind === "gained" && e.generation !== undefined && e.generation <= g && e.t >= this.windowStart)
        applied = Math.max(applied ?? 0, e.t);
    }
    const decided = this.coordinatorDecision(g);
    return { applied: applied ?? seenAt, seen: seenAt, ...(decided !== undefined ? { decided } : {}) };
  }

  /** When the coordinator decided generation `g`: its log line `new assignment generation`. */
  private coordinatorDecision(g: number): number | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.logDir, "coordinator.log"), "utf8");
    } catch {
      return undefined;
    }
    let t: number | undefined;
    for (const line of text.split("\n")) {
      if (!line.startsWith("{") || !line.includes('"new assignment generation"')) continue;
      const rec = JSON.parse(line) as { time?: number; generation?: number };
      if (rec.generation === g && typeof rec.time === "number") t = rec.time;
    }
    return t;
  }

  private firstSlotEvent(shard: string, kind: "gained" | "lost", slot: number): number | undefined {
    for (const e of this.window.slots) {
      if (e.shard !== shard || e.kind !== kind) continue;
      if (e.ranges.some((r) => r.start <= slot && slot <= r.end)) return e.t;
    }
    return undefined;
  }

  gainTime(key: string, shard: string): number | undefined {
    return this.firstSlotEvent(shard, "gained", this.slot(key));
  }

  lostTime(key: string, shard: string): number | undefined {
    return this.firstSlotEvent(shard, "lost", this.slot(key)) ?? this.window.lostAll.get(shard);
  }

  override async stopAll(): Promise<void> {
    await super.stopAll();
    await this.reflector?.stop();
  }
}

class LabelRun extends ApproachRun {
  readonly name = "label" as const;
  /** key → shard that reported gaining it last (and has not let go). */
  readonly owner = new Map<string, string>();
  private desiredCache: { shards: string; desired: Map<string, string> } | undefined;

  get namespace(): string {
    return "bench-label";
  }

  get leaseNamespace(): string {
    return "bench-label-system";
  }

  async setup(): Promise<void> {
    const http = this.kube.http;
    for (const ns of [this.namespace, "bench-label-system"]) {
      await http.request("POST", "/api/v1/namespaces", {
        body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
      });
    }
    const config: SharderConfig = {
      kubeconfig: this.cp.kubeconfig,
      ring: RING,
      leaseNamespace: "bench-label-system",
      namespace: this.namespace,
      syncPeriodMs: 5 * 60_000,
      patchConcurrency: 100,
    };
    this.controller = new Child("sharder", {
      entry: entry("bench/label-baseline/sharder.ts"),
      config,
      logDir: this.logDir,
      onMessage: (c, m) => this.onMessage(c, m),
      inspect: true,
    });
    await this.controller.ready(60_000);
  }

  startShard(name: string): Child {
    const config: LabelShardConfig = {
      kubeconfig: this.cp.kubeconfig,
      ring: RING,
      shard: name,
      leaseNamespace: "bench-label-system",
      namespace: this.namespace,
      workers: 4,
      leaseDurationSeconds: 15,
      retryPeriodMs: 2000,
    };
    return new Child(name, {
      entry: entry("bench/label-baseline/shard.ts"),
      config,
      logDir: this.logDir,
      onMessage: (c, m) => this.onMessage(c, m),
    });
  }

  override onReport(child: Child, msg: Extract<ChildMessage, { type: "report" }>): void {
    for (const [k] of msg.gained) this.owner.set(k, child.name);
    for (const [k] of msg.lost) if (this.owner.get(k) === child.name) this.owner.delete(k);
  }

  owners(): Map<string, string> {
    return new Map(this.owner);
  }

  private desired(shards: readonly string[]): Map<string, string> {
    const id = `${[...shards].sort().join(",")}#${this.keys.length}`;
    if (this.desiredCache?.shards !== id) {
      const ring = new HashRing(shards);
      const desired = new Map<string, string>();
      for (const k of this.keys) desired.set(k, ring.hash(labelRingKey(k)));
      this.desiredCache = { shards: id, desired };
    }
    return this.desiredCache.desired;
  }

  /** Owners the ring prescribes for these shards (what `owners()` converges to). */
  expectedOwners(shards: readonly string[]): Map<string, string> {
    return this.desired(shards);
  }

  describe(shards: readonly string[]): string {
    const desired = this.desired(shards);
    let wrong = 0;
    let example = "";
    for (const k of this.keys) {
      if (this.owner.get(k) !== desired.get(k)) {
        wrong++;
        example ||= `${k}: owner ${this.owner.get(k)}, ring says ${desired.get(k)}`;
      }
    }
    return `${wrong} of ${this.keys.length} objects not with their ring owner (e.g. ${example})`;
  }

  committedAt(shards: readonly string[]): number | undefined {
    const desired = this.desired(shards);
    let last = this.windowStart;
    for (const k of this.keys) {
      const want = desired.get(k)!;
      if (this.owner.get(k) !== want) return undefined;
      const g = this.window.gained.get(want)?.get(k);
      if (g !== undefined && g > last) last = g;
    }
    return last;
  }

  gainTime(key: string, shard: string): number | undefined {
    return this.window.gained.get(shard)?.get(key);
  }

  lostTime(key: string, shard: string): number | undefined {
    return this.window.lost.get(shard)?.get(key) ?? this.window.lostAll.get(shard);
  }
}

/** CPU seconds so far of every live shard and of the API server. */
function handoffCpu(run: ApproachRun): { shards: Map<string, number>; apiServer: number } {
  const shards = new Map<string, number>();
  for (const [name, c] of run.shards) {
    const s = c.sample();
    if (s !== undefined) shards.set(name, s.cpuSeconds);
  }
  return { shards, apiServer: trySampleProc(run.cp.pid)?.cpuSeconds ?? Number.NaN };
}

function cpuBetween(
  a: ReturnType<typeof handoffCpu>,
  b: ReturnType<typeof handoffCpu>,
  shards: readonly string[],
): TransitionResult["handoffCpuSeconds"] {
  const out: Record<string, number> = {};
  for (const name of shards) out[name] = (b.shards.get(name) ?? Number.NaN) - (a.shards.get(name) ?? 0);
  return { shards: out, apiServer: b.apiServer - a.apiServer };
}

/** Measures one join (`add`) or graceful leave (`remove`) of shard `name`. */
async function measureTransition(
  run: ApproachRun,
  action: "add" | "remove",
  name: string,
  opts: RunOptions,
): Promise<TransitionResult> {
  const before = run.liveShardNames();
  const after = action === "add" ? [...before, name] : before.filter((s) => s !== name);
  const label = `${before.length}→${after.length}`;
  const kube = run.kube;
  await run.waitCommitted(before, 600_000);
  await quiesce(kube);
  // Background: Lease renewals (and acks) of the idle system.
  const bgMs = opts.quick ? 2000 : 4000;
  const b0 = await apiSnapshot(kube);
  await sleep(bgMs);
  const b1 = await apiSnapshot(kube);
  const bgSeconds = (b1.t - b0.t) / 1000;
  const backgroundPerSecond: WritesByResource = {};
  for (const [k, v] of Object.entries(diffWrites(b0.writes, b1.writes)))
    backgroundPerSecond[k] = v / bgSeconds;

  for (const c of run.shards.values()) c.send({ type: "resetCounters" });
  const ownersBefore = run.owners();
  run.newWindow();
  const s0 = await apiSnapshot(kube);
  const p0 = run.controller?.sample();
  const cpu0 = handoffCpu(run);
  opts.log(`${run.name} ${run.objects}: ${label} (${action} ${name})`);
  let base: number;
  if (action === "add") base = await run.addShard(name);
  else base = await run.removeShard(name);
  const committed = await run.waitCommitted(after, 1_800_000);
  const ownersAfter = run instanceof LabelRun ? run.expectedOwners(after) : run.owners();
  const moved: string[] = [];
  for (const k of run.keys) if (ownersBefore.get(k) !== ownersAfter.get(k)) moved.push(k);
  opts.log(
    `${run.name} ${run.objects}: ${label}: ${moved.length} objects moved; committed +${Math.round(committed - base)} ms`,
  );

  // Every moved object reconciled by its new owner (after it picked the object up).
  const firstReconcile = (k: string): number | undefined => {
    const owner = ownersAfter.get(k)!;
    const g = run.gainTime(k, owner) ?? run.windowStart;
    let best: number | undefined;
    for (const [shard, t] of run.window.reconciled.get(k) ?? []) {
      if (shard === owner && t >= g && (best === undefined || t < best)) best = t;
    }
    return best;
  };
  let lastReconciled = base;
  await waitUntil(
    `${run.name}: moved objects reconciled by their new owners`,
    () => {
      let last = base;
      for (const k of moved) {
        const t = firstReconcile(k);
        if (t === undefined) return undefined;
        if (t > last) last = t;
      }
      lastReconciled = last;
      return true;
    },
    1_800_000,
    250,
    opts.log,
  );
  const cpu1 = handoffCpu(run);
  const s1 = await quiesce(kube);
  const p1 = run.controller?.sample();
  // Every report of the window has arrived by now (children flush every 100 ms).
  const commit = run.commitTimes(after, committed);
  const stats = await run.shardStats(false);
  const shardWatch = stats.map((x) => ({
    shard: x.name,
    events: (x.stats.watch.events.secrets ?? 0) + (x.stats.watch.events.configmaps ?? 0),
    bytes: (x.stats.watch.bytes.secrets ?? 0) + (x.stats.watch.bytes.configmaps ?? 0),
    listBytes: (x.stats.watch.listBytes.secrets ?? 0) + (x.stats.watch.listBytes.configmaps ?? 0),
  }));
  const shardListBytes = stats.reduce(
    (a, x) => a + (x.stats.watch.listBytes.secrets ?? 0) + (x.stats.watch.listBytes.configmaps ?? 0),
    0,
  );

  const windowMs = s1.t - s0.t;
  const writesRaw = diffWrites(s0.writes, s1.writes);
  const writesNet: WritesByResource = {};
  for (const [k, v] of Object.entries(writesRaw)) {
    const net = Math.max(0, Math.round(v - (backgroundPerSecond[k] ?? 0) * (windowMs / 1000)));
    if (net > 0) writesNet[k] = net;
  }
  const pauses: number[] = [];
  const handoffs: number[] = [];
  for (const k of moved) {
    const from = ownersBefore.get(k);
    const to = ownersAfter.get(k)!;
    const lost = from === undefined ? undefined : run.lostTime(k, from);
    const gained = run.gainTime(k, to);
    const reconciled = firstReconcile(k);
    if (lost !== undefined && gained !== undefined) pauses.push(Math.max(0, gained - lost));
    if (lost !== undefined && reconciled !== undefined) handoffs.push(Math.max(0, reconciled - lost));
  }
  return {
    approach: run.name,
    objects: run.objects,
    transition: label,
    moved: moved.length,
    writesRaw,
    backgroundPerSecond,
    writesNet,
    writesNetTotal: totalWrites(writesNet),
    windowMs,
    commitMs: commit.applied - base,
    ...(commit.seen !== undefined ? { commitSeenMs: commit.seen - base } : {}),
    ...(commit.decided !== undefined ? { commitDecidedMs: commit.decided - base } : {}),
    reconciledMs: lastReconciled - base,
    pauseMs: { ...percentiles(pauses), missing: moved.length - pauses.length },
    handoffMs: { ...percentiles(handoffs), missing: moved.length - handoffs.length },
    apiLists: diffCounts(s0.lists, s1.lists),
    apiListedObjects: diffCounts(s0.listedObjects, s1.listedObjects),
    shardListBytes,
    controllerCpuSeconds: p0 && p1 ? p1.cpuSeconds - p0.cpuSeconds : Number.NaN,
    controllerRssBytes: p1?.rssBytes ?? Number.NaN,
    handoffCpuSeconds: cpuBetween(cpu0, cpu1, after),
    watchEvents: diffCounts(s0.watchEvents, s1.watchEvents),
    shardWatch,
    protocolWritesTotal: totalWrites(writesNet) - (writesNet["configmaps 409"] ?? 0),
    shardsAfter: after.length,
    trigger: action === "add" ? "shard Ready" : "SIGTERM",
  };
}

/** Runs one approach end to end at one object count. */
async function runApproach(run: ApproachRun, opts: RunOptions): Promise<ApproachResult> {
  const N = run.objects;
  await run.setup();
  await run.watchLeases();
  for (let i = 0; i < 3; i++) await run.addShard(run.shardName(i));
  await run.waitCommitted(run.liveShardNames(), 120_000);
  await sleep(2000);
  const zero = await run.shardStats(true);
  const baseRss = zero.reduce((a, s) => a + (s.proc?.rssBytes ?? s.stats.memory.rss), 0) / zero.length;
  const baseHeap = zero.reduce((a, s) => a + s.stats.memory.heapUsed, 0) / zero.length;
  const ctrlZero = run.controller?.sample()?.rssBytes ?? Number.NaN;
  const memZero = await run.controller?.gcMemory();

  opts.log(`${run.name} ${N}: creating ${N} Secrets`);
  const t0 = performance.now();
  const createSeconds = await run.createObjects();
  await waitUntil(
    `${run.name}: initial reconcile of ${N} objects`,
    () => (run.reconciledEver.size >= N ? true : undefined),
    3_600_000,
    250,
    opts.log,
  );
  const initialSyncSeconds = (performance.now() - t0) / 1000;
  opts.log(
    `${run.name} ${N}: created in ${createSeconds.toFixed(1)} s, all reconciled after ${initialSyncSeconds.toFixed(1)} s`,
  );
  await run.waitCommitted(run.liveShardNames(), 600_000);
  await quiesce(run.kube);
  const memCreated = await run.controller?.gcMemory();

  const samples: ApproachResult["shardMemory"]["samples"] = [];
  const memorySample = async () => {
    for (const s of await run.shardStats(true)) {
      const owned = s.stats.ownedObjects;
      samples.push({
        shards: run.shards.size,
        owned,
        nonOwned: isSlot(run.name) ? N - owned : 0,
        rss: (s.proc?.rssBytes ?? s.stats.memory.rss) - baseRss,
        heap: s.stats.memory.heapUsed - baseHeap,
      });
    }
  };
  await memorySample();

  // Churn: updates of existing Secrets, to count the watch events each shard receives.
  const updates = Math.min(N, 1000);
  for (const c of run.shards.values()) c.send({ type: "resetCounters" });
  run.newWindow();
  await runPool(run.keys.slice(0, updates), 16, async (k) => {
    const [ns, name] = k.split("/");
    await run.kube.http.request("PATCH", `/api/v1/namespaces/${ns}/secrets/${name}`, {
      body: { metadata: { annotations: { "bench.slotmap.dev/touched": String(Date.now()) } } },
      contentType: "application/merge-patch+json",
    });
  });
  await waitUntil(
    `${run.name}: churned objects reconciled`,
    () => (run.keys.slice(0, updates).every((k) => run.window.reconciled.has(k)) ? true : undefined),
    300_000,
    100,
  );
  await sleep(1000);
  const churnStats = await run.shardStats(false);
  const churn = {
    updates,
    shards: churnStats.length,
    secretEventsPerShard:
      churnStats.reduce((a, x) => a + (x.stats.watch.events.secrets ?? 0), 0) / churnStats.length,
    secretBytesPerShard:
      churnStats.reduce((a, x) => a + (x.stats.watch.bytes.secrets ?? 0), 0) / churnStats.length,
  };

  const transitions: TransitionResult[] = [];
  transitions.push(await measureTransition(run, "add", run.shardName(3), opts));
  transitions.push(await measureTransition(run, "remove", run.shardName(3), opts));
  opts.log(`${run.name} ${N}: growing to 10 shards (not measured)`);
  for (let i = 4; i <= 10; i++) await run.addShard(run.shardName(i));
  await run.waitCommitted(run.liveShardNames(), 1_800_000);
  await quiesce(run.kube);
  await sleep(2000);
  await memorySample();
  transitions.push(await measureTransition(run, "add", run.shardName(11), opts));
  const ctrlN = run.controller?.sample()?.rssBytes ?? Number.NaN;
  const memEnd = await run.controller?.gcMemory();

  const rssFit = fit2(samples.map((s) => ({ x1: s.owned, x2: s.nonOwned, y: s.rss })));
  const heapFit = fit2(samples.map((s) => ({ x1: s.owned, x2: s.nonOwned, y: s.heap })));
  await run.stopAll();
  return {
    approach: run.name,
    objects: N,
    createSeconds,
    initialSyncSeconds,
    transitions,
    churn,
    controllerRss: { zeroObjects: ctrlZero, nObjects: ctrlN },
    controllerMemory:
      memZero && memCreated && memEnd
        ? { zeroObjects: memZero, created: memCreated, end: memEnd }
        : undefined,
    shardMemory: {
      rssPerOwned: rssFit.a,
      rssPerNonOwned: rssFit.b,
      heapPerOwned: heapFit.a,
      heapPerNonOwned: heapFit.b,
      samples,
      baseRss,
      baseHeap,
    },
  };
}

const APPROACHES: readonly ApproachName[] = ["slot", "slot-all", "label"];

/**
 * `SLOTMAP_BENCH_APPROACHES` (comma-separated, e.g. `slot,slot-all`): run only these approaches,
 * for profiling one of them; unset runs all three.
 */
export function approachesFromEnv(raw: string | undefined): ApproachName[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const names = raw.split(",").map((x) => x.trim());
  for (const n of names) {
    if (!(APPROACHES as readonly string[]).includes(n)) {
      throw new Error(
        `SLOTMAP_BENCH_APPROACHES: ${JSON.stringify(n)} is not one of ${APPROACHES.join(", ")}; got ${JSON.stringify(raw)}`,
      );
    }
  }
  return names as ApproachName[];
}

/** Runs the approaches at one object count on a fresh control plane, one after the other. */
export async function runAtSize(
  objects: number,
  opts: RunOptions,
  approaches: readonly ApproachName[] = ["slot", "label"],
): Promise<ApproachResult[]> {
  const runDir = mkdtempSync(join(tmpdir(), `slotmap-rebalance-${objects}-`));
  opts.log(`${objects} objects: logs in ${runDir}`);
  const cp = await startControlPlane({ controllers: false, logFile: join(runDir, "controlplane.log") });
  const kube = connectKube(cp.kubeconfig, 64);
  const out: ApproachResult[] = [];
  try {
    installCrds(cp);
    for (const a of approaches) {
      let run: ApproachRun;
      if (a === "label") run = new LabelRun(kube, cp, objects, opts.log, runDir);
      else {
        const slotRun = new SlotRun(kube, cp, objects, opts.log, runDir);
        slotRun.name = a;
        run = slotRun;
      }
      try {
        out.push(await runApproach(run, opts));
      } finally {
        await run.stopAll().catch(() => {});
      }
    }
  } finally {
    await kube.close();
    await cp.stop();
  }
  return out;
}

const MiB = 2 ** 20;

/** Table rows for results at one or more object counts. */
export function rowsFor(results: readonly ApproachResult[]): Row[] {
  const rows: Row[] = [];
  const sizes = [...new Set(results.map((r) => r.objects))].sort((a, b) => a - b);
  const k = (n: number) => (n >= 1000 ? `${n / 1000}k` : n === 0 ? "0" : String(n));
  for (const n of sizes) {
    const slot = results.find((r) => r.objects === n && r.approach === "slot");
    const slotAll = results.find((r) => r.objects === n && r.approach === "slot-all");
    const label = results.find((r) => r.objects === n && r.approach === "label");
    const transitions = (slot ?? slotAll ?? label)?.transitions.map((t) => t.transition) ?? [];
    for (const tr of transitions) {
      const l = label?.transitions.find((t) => t.transition === tr);
      const slots = [slot, slotAll].flatMap((r) => r?.transitions.find((t) => t.transition === tr) ?? []);
      const pre = `${k(n)} ${tr}`;
      const both = (
        metric: string,
        unit: string,
        get: (t: TransitionResult) => number,
        extra: {
          target?: number;
          note?: (t: TransitionResult) => string;
          p99?: (t: TransitionResult) => number;
          /** Leave the row out when nothing moved (per-object figures). */
          perObject?: boolean;
        } = {},
      ) => {
        if (extra.perObject && (slots[0] ?? l)?.moved === 0) return;
        for (const s of slots) {
          const v = get(s);
          rows.push({
            metric: `${pre} ${metric}, ${s.approach}`,
            unit,
            median: v,
            ...(extra.p99 ? { p99: extra.p99(s) } : {}),
            ...(extra.target !== undefined ? { target: extra.target } : {}),
            ...(l ? { ratio: v / get(l), baseline: "label" } : {}),
            note: extra.note?.(s) ?? "",
          });
        }
        if (l) {
          rows.push({
            metric: `${pre} ${metric}, label`,
            unit,
            median: get(l),
            ...(extra.p99 ? { p99: extra.p99(l) } : {}),
            note: extra.note?.(l) ?? "",
          });
        }
      };
      both("API writes (net of idle renewals)", "writes", (t) => t.writesNetTotal, {
        note: (t) =>
          `${t.moved} Secrets moved; ${formatWrites(t.writesNet)}; raw ${totalWrites(t.writesRaw)} in ${(t.windowMs / 1000).toFixed(1)} s`,
      });
      both("API writes excl. reconciler's ConfigMap 409s", "writes", (t) => t.protocolWritesTotal, {
        note: () => "minus `configmaps 409`: new owner's create of a ConfigMap it had not cached yet",
      });
      both("all assigned after trigger", "ms", (t) => t.commitMs, {
        target: 1000,
        note: (t) =>
          isSlot(t.approach)
            ? `trigger: ${t.trigger}; last slot gain applied by a shard; coordinator decided +${t.commitDecidedMs?.toFixed(0) ?? "?"} ms, harness saw the SlotMap +${t.commitSeenMs?.toFixed(0) ?? "?"} ms`
            : `trigger: ${t.trigger}; last moved object in its new shard's watch`,
      });
      both("all moved objects reconciled by new owner", "ms", (t) => t.reconciledMs, {
        note: (t) => `after ${t.trigger}`,
        perObject: true,
      });
      both("per-object pause p99 (no active owner)", "ms", (t) => t.pauseMs.p99, {
        target: 1000,
        perObject: true,
        note: (t) =>
          `p50 ${t.pauseMs.p50.toFixed(0)} ms, max ${t.pauseMs.max.toFixed(0)} ms${t.pauseMs.missing ? `, ${t.pauseMs.missing} unmatched` : ""}`,
      });
      both("per-object lost → reconciled by new owner, p99", "ms", (t) => t.handoffMs.p99, {
        perObject: true,
        note: (t) =>
          `p50 ${t.handoffMs.p50.toFixed(0)} ms, max ${t.handoffMs.max.toFixed(0)} ms${t.handoffMs.missing ? `, ${t.handoffMs.missing} unmatched` : ""}`,
      });
      both(
        "shards' CPU to the last moved object reconciled",
        "s",
        (t) => Object.values(t.handoffCpuSeconds.shards).reduce((a, x) => a + x, 0),
        {
          perObject: true,
          note: (t) =>
            `from ${t.trigger === "SIGTERM" ? "the SIGTERM" : "the joiner's spawn"}; per shard ${Object.values(
              t.handoffCpuSeconds.shards,
            )
              .map((x) => x.toFixed(2))
              .join(" / ")} s; API server (etcd included) ${t.handoffCpuSeconds.apiServer.toFixed(2)} s`,
        },
      );
      both("controller CPU in window", "s", (t) => t.controllerCpuSeconds, {
        note: (t) =>
          `${isSlot(t.approach) ? "coordinator" : "sharder"}; RSS ${(t.controllerRssBytes / MiB).toFixed(1)} MiB`,
      });
      both(
        "object watch events per shard (mean)",
        "events",
        (t) => t.shardWatch.reduce((a, x) => a + x.events, 0) / Math.max(1, t.shardWatch.length),
        {
          note: (t) =>
            `max ${Math.max(0, ...t.shardWatch.map((x) => x.events))}, ${(t.shardWatch.reduce((a, x) => a + x.bytes, 0) / Math.max(1, t.shardWatch.length) / 1024).toFixed(0)} KiB/shard; ` +
            `apiserver dispatched: secrets ${t.watchEvents.secrets ?? 0}, configmaps ${t.watchEvents.configmaps ?? 0}, slotmaps ${t.watchEvents.slotmaps ?? 0}, leases ${t.watchEvents.leases ?? 0}`,
        },
      );
      both(
        "Secrets + ConfigMaps returned by LISTs",
        "objects",
        (t) => (t.apiListedObjects.secrets ?? 0) + (t.apiListedObjects.configmaps ?? 0),
        {
          note: (t) =>
            `API server: ${(t.apiLists.secrets ?? 0) + (t.apiLists.configmaps ?? 0)} LIST requests (pages); shards received ${(t.shardListBytes / MiB).toFixed(1)} MiB of lists`,
        },
      );
    }
    const zero = results.find((r) => r.objects === 0 && r.approach === "slot");
    for (const r of [slot, slotAll, label]) {
      if (!r) continue;
      const name = r.approach;
      const who = isSlot(name) ? "coordinator" : "sharder";
      const mem = r.controllerMemory;
      const ref = isSlot(name) && n > 0 ? zero?.controllerMemory?.end : undefined;
      const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
      rows.push({
        metric: `${k(n)} ${who} RSS after the last rebalance (no GC), ${name}`,
        unit: "MiB",
        median: r.controllerRss.nObjects / MiB,
        note: `/proc VmRSS as found; ${mib(r.controllerRss.zeroObjects)} in this run before any object existed`,
      });
      if (mem !== undefined) {
        rows.push({
          metric: `${k(n)} ${who} RSS after a full GC, after the last rebalance, ${name}`,
          unit: "MiB",
          median: mem.end.rss / MiB,
          note: `at 0 objects ${mib(mem.zeroObjects.rss)}, after the creates ${mib(mem.created.rss)}${ref ? `; 0-object run ${mib(ref.rss)}` : ""}`,
        });
        rows.push({
          metric: `${k(n)} ${who} V8 heap used after a full GC, after the last rebalance, ${name}`,
          unit: "MiB",
          median: mem.end.heapUsed / MiB,
          note: `at 0 objects ${mib(mem.zeroObjects.heapUsed)}, after the creates ${mib(mem.created.heapUsed)}${ref ? `; 0-object run ${mib(ref.heapUsed)}` : ""}`,
        });
        if (ref !== undefined) {
          // ±5% is two-sided; the runner checks an upper bound, so the row is |change|.
          const change = (mem.end.rss / ref.rss - 1) * 100;
          rows.push({
            metric: `${k(n)} coordinator RSS after GC vs the 0-object run, |change|, ${name}`,
            unit: "%",
            median: Math.abs(change),
            target: 5,
            note: `${change >= 0 ? "+" : ""}${change.toFixed(1)}%: ${mib(mem.end.rss)} vs ${mib(ref.rss)} after the same steps; heap ${mib(mem.end.heapUsed)} vs ${mib(ref.heapUsed)}`,
          });
        }
      }
      if (n === 0) continue;
      const m = r.shardMemory;
      rows.push({
        metric: `${k(n)} shard heap per owned object, ${name}`,
        unit: "B",
        median: m.heapPerOwned,
        note: `RSS ${m.rssPerOwned.toFixed(0)} B; Secret + ConfigMap; fit over ${m.samples.length} shard samples at 3 and 10 shards`,
      });
      if (isSlot(name)) {
        rows.push({
          metric: `${k(n)} shard heap per non-owned object, ${name}`,
          unit: "B",
          median: m.heapPerNonOwned,
          note: `RSS ${m.rssPerNonOwned.toFixed(0)} B`,
        });
      }
      if (r.churn.updates > 0) {
        rows.push({
          metric: `${k(n)} Secret watch events per shard per update, ${name}`,
          unit: "events",
          median: r.churn.secretEventsPerShard / r.churn.updates,
          note: `${r.churn.updates} updates, ${r.churn.shards} shards; ${(r.churn.secretBytesPerShard / r.churn.updates).toFixed(0)} B per update per shard`,
        });
      }
      rows.push({
        metric: `${k(n)} create ${n} Secrets + initial reconcile, ${name}`,
        unit: "s",
        median: r.initialSyncSeconds,
        note: `creates took ${r.createSeconds.toFixed(1)} s at 24 in flight`,
      });
    }
  }
  return rows;
}

/** Runs the given sizes, writes the detailed JSON next to the runner's, returns the rows. */
export async function runRebalanceScenario(
  name: string,
  sizes: readonly number[],
  opts: RunOptions,
): Promise<Row[]> {
  const results: ApproachResult[] = [];
  const only = approachesFromEnv(process.env.SLOTMAP_BENCH_APPROACHES);
  /** The approaches of `wanted` that SLOTMAP_BENCH_APPROACHES selects, on one control plane. */
  const runSelected = async (n: number, wanted: readonly ApproachName[]): Promise<ApproachResult[]> => {
    const picked = wanted.filter((a) => only === undefined || only.includes(a));
    return picked.length === 0 ? [] : runAtSize(n, opts, picked);
  };
  // The same steps with no objects: the reference for "flat in object count" (writes, RSS).
  results.push(...(await runSelected(0, ["slot"])));
  for (const n of sizes) {
    results.push(...(await runSelected(n, ["slot", "label"])));
    // `cache: "all"` on a control plane of its own: the first run's objects stay in etcd, and a
    // shard caching every slot would list them too.
    results.push(...(await runSelected(n, ["slot-all"])));
  }
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = join(RESULTS_DIR, `${name}-detail-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify({ scenario: name, results }, null, 2)}\n`);
  opts.log(`details: ${file}`);
  return rowsFor(results);
}
