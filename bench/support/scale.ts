/**
 * The scale benchmark (issue 17): what a SlotMap costs the API server and its watchers at
 * hundreds to a thousand shards, and how the coordinator behaves past the supported shard count.
 *
 * Per shard count N, on a fresh local control plane (tools/testenv: kube-apiserver + etcd in one
 * process): the real coordinator (the production entry point, compiled, as a child process);
 * N emulated shards (bench/support/scale-shards.ts: hand-made Leases renewed every 15 s that ack
 * their own projection, a `SlotMapShard` the coordinator writes); N watchers, one per shard
 * (bench/support/scale-watchers.ts, one watch connection per stream, counting the bytes and events
 * they receive), each watching what a real shard watches: its own projection, and the SlotMap
 * metadata-only. Once the table is balanced and quiet:
 * 1. idle: 5 s with nothing changing (background Lease renewals, any status write);
 * 2. join: one more shard's Lease appears; the window ends once the table is settled on N + 1
 *    shards, every Lease acked the last generation and no status write came for 3 s;
 * 3. leave: that shard releases its Lease gracefully (holderIdentity cleared, release marker);
 *    the window ends once the shard is gone from the status (the coordinator deletes the Dead
 *    Lease after `--orphan-after 5` s) and all is quiet as above.
 * Unless `SLOTMAP_BENCH_SCALE_COMPARE=0`, the same join and leave again (another shard) with the
 * watchers replaced by N watchers of the whole SlotMap, as shards watched it before projections:
 * both watch designs side by side in one run, on the same table and coordinator.
 * "Quiet" also means every projection says what the status says and every held Lease acked its
 * projection.
 * With `overLimit`, after the leave: the watchers are stopped and 100 more Leases appear (N + 100
 * shards, past the supported 1024); the refusal is observed for 30 s (status writes, coordinator
 * log lines, the Warning Event, the Balanced condition, the metric, /readyz), then one listed
 * shard leaves to show that the existing table keeps working.
 *
 * Writes and watch traffic as the API server counts them come from its `/metrics`
 * (`apiserver_request_total`, `apiserver_watch_events_total`, `apiserver_watch_events_sizes`, for
 * SlotMaps and SlotMapShards), the watchers' own counts are the client side, process figures come
 * from /proc.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type ControlPlane, startControlPlane } from "../../test/support/controlplane.js";
import type { Row, RunOptions } from "../lib.js";
import { diffCounts, diffWrites, snapshotFromMetrics, type WritesByResource } from "./apimetrics.js";
import { compileEntries } from "./build.js";
import { Child } from "./children.js";
import { nowMs } from "./ipc.js";
import { connectKube, installCrds, type Kube, sleep, waitUntil } from "./kube.js";
import { sampleProc } from "./proc.js";
import {
  type ApiWatchCounters,
  acksOfGeneration,
  apiWatchCounters,
  conditionOf,
  derive,
  describeStatus,
  diffCoordinatorSteps,
  diffStreams,
  type GenerationAcks,
  gaugeValue,
  jsonBytes,
  logLinesBetween,
  migrationSources,
  type ProjectionFigures,
  projectionName,
  type ScaleStatus,
  type StatusWriteRecord,
  settledOn,
  shardsWithSlots,
  sumWrites,
  type WatchMode,
  type WatchTotals,
  type WindowFigures,
  watchEventBytes,
  writeCause,
  writesByVerb,
} from "./scale-model.js";
import { ShardFleet } from "./scale-shards.js";
import type { WatchersConfig, WatcherTally } from "./scale-watchers.js";

const REPO = resolve(import.meta.dirname, "../..");
const RESULTS_DIR = join(REPO, "bench/results");
const ENTRIES = ["src/coordinator/main.ts", "bench/support/scale-watchers.ts"] as const;
const SLOTMAP = "scale";
const SLOTMAP_RESOURCE = { kind: "SlotMap", resource: "slotmaps" } as const;
const PROJECTION_RESOURCE = { kind: "SlotMapShard", resource: "slotmapshards" } as const;
const LEASE_NS = "scale-system";
/** The longest Lease the default policy accepts (`maxLeaseDurationSeconds` 60): the most slack. */
const LEASE_DURATION_S = 60;
const RENEW_EVERY_MS = 15_000;
/** A window closes after this long without a status write (and with every ack written). */
const QUIET_MS = 3000;
/** The coordinator deletes a Dead shard's Lease after this long (`--orphan-after`). */
const ORPHAN_AFTER_S = 5;

let compiled: ((entry: string) => string) | undefined;
function entry(path: (typeof ENTRIES)[number]): string {
  compiled ??= compileEntries(ENTRIES);
  return compiled(path);
}

/** A shard name as a StatefulSet names its pods: `scale-17`. */
export function shardName(i: number): string {
  return `${SLOTMAP}-${i}`;
}

/** The refusal past the supported shard count, as observed. */
export interface OverLimitResult {
  shards: number;
  /** Trigger (the extra Leases created) → the status lists the most it can; ms. */
  settledMs: number;
  shardsListed: number;
  shardsWithSlots: number;
  /** Status writes from the trigger until settled, by code (e.g. `slotmaps/status 422`). */
  writesUntilSettled: WritesByResource;
  observeMs: number;
  /** In the observation period: status writes by code, and coordinator log lines by message. */
  statusWritesObserved: WritesByResource;
  logLinesObserved: Record<string, number>;
  /** Coordinator log lines from the trigger to the end of the observation, by message. */
  logLinesTotal: Record<string, number>;
  events: Array<{ type: string; reason: string; count: number; message: string }>;
  balanced: { status: string; reason?: string; message?: string } | undefined;
  ready: { status: string; reason?: string; message?: string } | undefined;
  metricShardsOverLimit: number | undefined;
  readyz: { code: number; body: string };
  healthz: { code: number; body: string };
  /** A listed shard leaves while over the limit: does the table still follow? */
  leave: {
    shard: string;
    settledMs: number | undefined;
    statusWrites: WritesByResource;
    shardsListedAfter: number;
    shardsWithSlotsAfter: number;
  };
}

/** Everything measured at one shard count. */
export interface SizeResult {
  shards: number;
  watchers: number;
  /** SlotMap created → table balanced on N shards, with how many generations and writes. */
  setup: { leasesCreatedMs: number; balancedMs: number; generations: number; statusWrites: number };
  idle: {
    seconds: number;
    statusWrites: number;
    leaseWritesPerSecond: number;
    /** The emulated shards' own Lease writes per second (the rest: coordinator, control plane). */
    fleetWritesPerSecond: number;
    apiserverCpuPerSecond: number;
    coordinatorCpuPerSecond: number;
  };
  /** With watchers of what a shard watches now: its projection and the SlotMap's metadata. */
  join: WindowFigures;
  leave: WindowFigures;
  /** The same join and leave (another shard) with N watchers of the whole SlotMap instead. */
  wholeJoin?: WindowFigures;
  wholeLeave?: WindowFigures;
  /** Content-encoding of the watch responses (identity unless the API server compressed them). */
  watchEncodings: Record<string, number>;
  watcherErrors: number;
  fleet: { acks: number; renewals: number; conflicts: number; errors: number; projectionsIgnored: number };
  /** Coordinator log lines of the whole run by message (takeovers, conflicts, … show here). */
  coordinatorLog: Record<string, number>;
  overLimit?: OverLimitResult;
}

/** The watcher child process and its tallies. */
class Watchers {
  private nextId = 1;
  private readonly pending = new Map<number, (t: WatcherTally) => void>();

  constructor(readonly child: Child) {
    child.proc.on("message", (raw: unknown) => {
      const msg = raw as { type?: string; id?: number };
      if (msg.type === "tally" && msg.id !== undefined) {
        this.pending.get(msg.id)?.(raw as WatcherTally);
        this.pending.delete(msg.id);
      }
    });
  }

  tally(timeoutMs = 60_000): Promise<WatcherTally> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("watchers: no tally within timeout")), timeoutMs);
      this.pending.set(id, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
      this.child.send({ type: "stats", id, gc: false });
    });
  }
}

/** What one N-shard run holds. */
interface SizeContext {
  readonly n: number;
  readonly cp: ControlPlane;
  readonly kube: Kube;
  readonly fleet: ShardFleet;
  readonly coordinator: Child;
  readonly logDir: string;
  readonly log: (m: string) => void;
  /** The coordinator's `/metrics` port and its `/healthz`, `/readyz` port. */
  metricsPort: number | undefined;
  probePort: number | undefined;
  watchers: Watchers | undefined;
  /** What the current watchers watch. */
  watchMode: WatchMode;
  /** Index of the next shard name to use for a new Lease. */
  nextShard: number;
}

async function metricsText(kube: Kube): Promise<string> {
  return kube.getText("/metrics");
}

/** `slotmaps/status` writes (any code) in a write breakdown. */
function statusWritesOf(w: WritesByResource): { ok: number; failed: number } {
  let ok = 0;
  let failed = 0;
  for (const [k, v] of Object.entries(w)) {
    if (k === "slotmaps/status") ok += v;
    else if (k.startsWith("slotmaps/status ")) failed += v;
  }
  return { ok, failed };
}

/** Status writes so far, for quiet detection. */
async function statusWriteCount(kube: Kube): Promise<number> {
  const s = statusWritesOf(snapshotFromMetrics(await metricsText(kube), 0).writes);
  return s.ok + s.failed;
}

/**
 * Waits until no status write for QUIET_MS, every projection says what the status says and every
 * held Lease acked its projection.
 */
async function quiet(ctx: SizeContext, timeoutMs = 600_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = await statusWriteCount(ctx.kube);
  let since = performance.now();
  for (;;) {
    await sleep(500);
    const c = await statusWriteCount(ctx.kube);
    if (c !== last || !ctx.fleet.acksComplete()) since = performance.now();
    last = c;
    if (performance.now() - since >= QUIET_MS) return;
    if (performance.now() > deadline) {
      const lagging = ctx.fleet.lagging();
      throw new Error(
        `status writes, projections or acks did not quiesce: ${lagging.length} shards without their projection of the latest status or its ack (${lagging.slice(0, 5).join(", ")}${lagging.length > 5 ? ", …" : ""})`,
      );
    }
  }
}

/** Samples the RSS of the control plane and the coordinator every 250 ms; returns the maxima on stop. */
function rssSampler(pids: readonly number[]): () => number[] {
  const max = pids.map(() => 0);
  const tick = () => {
    pids.forEach((pid, i) => {
      try {
        max[i] = Math.max(max[i]!, sampleProc(pid).rssBytes);
      } catch {
        // exited
      }
    });
  };
  tick();
  const timer = setInterval(tick, 250);
  return () => {
    clearInterval(timer);
    tick();
    return max;
  };
}

/** Every distinct status write the fleet's watch saw since index `from`, with its cause. */
function writesSince(
  fleet: ShardFleet,
  from: number,
  t0: number,
): Array<StatusWriteRecord & { cause: string }> {
  const out: Array<StatusWriteRecord & { cause: string }> = [];
  let prev: StatusWriteRecord | undefined =
    from > 0 ? describeStatus(fleet.seen[from - 1]!.status, 0) : undefined;
  let prevRv = from > 0 ? fleet.seen[from - 1]!.object.metadata?.resourceVersion : undefined;
  for (const s of fleet.seen.slice(from)) {
    const rv = s.object.metadata?.resourceVersion;
    if (rv !== undefined && rv === prevRv) continue; // a re-list, not a write
    prevRv = rv;
    const rec = describeStatus(s.status, s.t - t0);
    out.push({ ...rec, cause: writeCause(prev, rec) });
    prev = rec;
  }
  return out;
}

/** One measured join or leave. */
async function measureWindow(
  ctx: SizeContext,
  kind: "join" | "leave",
  trigger: () => Promise<unknown>,
  done: (status: ScaleStatus | undefined) => boolean,
  closed: (status: ScaleStatus | undefined) => boolean = done,
): Promise<WindowFigures> {
  const { kube, fleet, cp, coordinator } = ctx;
  const watchers = ctx.watchers;
  if (watchers === undefined) throw new Error("measureWindow: watchers not started");
  const shardsBefore = fleet.liveNames().length;
  const seenFrom = fleet.seen.length;
  const projectionsFrom = fleet.projectionLog.length;
  fleet.ackLog.splice(0);
  const m0 = await metricsText(kube);
  const w0 = await watchers.tally();
  const a0 = sampleProc(cp.pid);
  const c0 = coordinator.sample();
  const g0 = fleet.status?.assignmentGeneration ?? 0;
  const k0 = await opsGet(ctx.metricsPort, "/metrics", Number.POSITIVE_INFINITY);
  const stopRss = rssSampler([cp.pid, coordinator.pid ?? -1]);
  const t0 = nowMs();
  await trigger();
  await waitUntil(
    `${kind} at ${ctx.n}: table settled`,
    () => (done(fleet.status) ? true : undefined),
    600_000,
    100,
    ctx.log,
  );
  const settledAt = fleet.seen.slice(seenFrom).find((s) => done(s.status))?.t ?? nowMs();
  await waitUntil(
    `${kind} at ${ctx.n}: window closed`,
    () => (closed(fleet.status) ? true : undefined),
    600_000,
    100,
    ctx.log,
  );
  await quiet(ctx);
  const t1 = nowMs();
  const [aMax, cMax] = stopRss();
  const k1 = await opsGet(ctx.metricsPort, "/metrics", Number.POSITIVE_INFINITY);
  const m1 = await metricsText(kube);
  const w1 = await watchers.tally();
  const a1 = sampleProc(cp.pid);
  const c1 = coordinator.sample();
  const writes = diffWrites(snapshotFromMetrics(m0, 0).writes, snapshotFromMetrics(m1, 0).writes);
  const sw = statusWritesOf(writes);
  const api0 = apiWatchCounters(m0, SLOTMAP_RESOURCE);
  const api1 = apiWatchCounters(m1, SLOTMAP_RESOURCE);
  const apiP0 = apiWatchCounters(m0, PROJECTION_RESOURCE);
  const apiP1 = apiWatchCounters(m1, PROJECTION_RESOURCE);
  const latest = fleet.latest;
  const windowWrites = writesSince(fleet, seenFrom, t0);
  const streams = diffStreams(w0.streams, w1.streams);
  return {
    kind,
    mode: ctx.watchMode,
    shards: shardsBefore,
    watchers: streams.total.watchers,
    durationMs: t1 - t0,
    settledMs: settledAt - t0,
    statusWrites: sw.ok,
    statusWritesFailed: sw.failed,
    generations: (fleet.status?.assignmentGeneration ?? 0) - g0,
    statusBytes: jsonBytes(latest?.status),
    statusBytesMax: Math.max(0, ...windowWrites.map((w) => w.statusBytes)),
    statusBytesMean:
      windowWrites.length === 0
        ? Number.NaN
        : windowWrites.reduce((n, w) => n + w.statusBytes, 0) / windowWrites.length,
    objectBytes: jsonBytes(latest?.object),
    slotMapEventBytes: watchEventBytes(latest?.object),
    watch: streams.total,
    streams: streams.byKind,
    apiWatch: { events: api1.events - api0.events, bytes: api1.bytes - api0.bytes } as ApiWatchCounters,
    apiWatchProjections: { events: apiP1.events - apiP0.events, bytes: apiP1.bytes - apiP0.bytes },
    projectionWrites: diffCounts(writesByVerb(m0, "slotmapshards"), writesByVerb(m1, "slotmapshards")),
    projections: projectionFigures(fleet, projectionsFrom),
    leaseWrites: writes.leases ?? 0,
    apiserverCpuSeconds: a1.cpuSeconds - a0.cpuSeconds,
    apiserverRssBytes: a1.rssBytes,
    apiserverRssMaxBytes: aMax ?? 0,
    coordinatorCpuSeconds: (c1?.cpuSeconds ?? Number.NaN) - (c0?.cpuSeconds ?? Number.NaN),
    coordinatorRssBytes: c1?.rssBytes ?? Number.NaN,
    coordinatorRssMaxBytes: cMax ?? 0,
    ...(k0.code === 200 && k1.code === 200
      ? { coordinatorSteps: diffCoordinatorSteps(k0.body, k1.body) }
      : {}),
    writes: windowWrites,
    acks: generationAcks(fleet, seenFrom, t0),
  };
}

/** The projection writes the fleet's watch saw since index `from`. */
function projectionFigures(fleet: ShardFleet, from: number): ProjectionFigures {
  const seen = fleet.projectionLog.slice(from);
  const written = seen.filter((p) => p.type !== "DELETED");
  return {
    events: seen.length,
    shards: new Set(seen.map((p) => p.shard)).size,
    bytesMean: written.length === 0 ? Number.NaN : written.reduce((n, p) => n + p.bytes, 0) / written.length,
    bytesMax: Math.max(0, ...written.map((p) => p.bytes)),
    settledBytesMean: fleet.projectionBytesMean(),
  };
}

/** For each new generation the fleet saw since index `from`: how its acks arrived. */
function generationAcks(fleet: ShardFleet, from: number, t0: number): GenerationAcks[] {
  const out: GenerationAcks[] = [];
  let last = from > 0 ? (fleet.seen[from - 1]!.status.assignmentGeneration ?? 0) : 0;
  for (const s of fleet.seen.slice(from)) {
    const g = s.status.assignmentGeneration ?? 0;
    if (g <= last) continue;
    last = g;
    out.push(acksOfGeneration(g, s.t, migrationSources(s.status), fleet.ackLog, t0));
  }
  return out;
}

/** A port of the coordinator, from its log line `metrics server listening` or `health probe server listening`. */
function portFromLog(
  logFile: string,
  msg: "metrics server listening" | "health probe server listening",
): number | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    if (!line.includes(`"${msg}"`)) continue;
    const port = (JSON.parse(line) as { port?: unknown }).port;
    if (typeof port === "number") return port;
  }
  return undefined;
}

/** GET of one of the coordinator's servers; the body is cut at `maxBody` characters. */
async function opsGet(
  port: number | undefined,
  path: string,
  maxBody = 2000,
): Promise<{ code: number; body: string }> {
  if (port === undefined) return { code: 0, body: "ops port unknown" };
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { code: res.status, body: (await res.text()).trim().slice(0, maxBody) };
  } catch (err) {
    return { code: 0, body: String(err) };
  }
}

function coordinatorLog(ctx: SizeContext): string {
  try {
    return readFileSync(join(ctx.logDir, "coordinator.log"), "utf8");
  } catch {
    return "";
  }
}

/** Past the supported shard count: 100 more Leases, then observe the refusal and a leave. */
async function measureOverLimit(
  ctx: SizeContext,
  extra: number,
  observeMs: number,
): Promise<OverLimitResult> {
  const { kube, fleet } = ctx;
  const first = ctx.nextShard; // the joiners before joined and left (their Leases are deleted by now)
  const names = Array.from({ length: extra }, (_, i) => shardName(first + i));
  const total = fleet.liveNames().length + extra;
  const m0 = await metricsText(kube);
  const t0 = nowMs();
  ctx.log(`over the limit: adding ${extra} Leases (${total} shards)`);
  await fleet.add(names);
  const listedMost = (s: ScaleStatus | undefined) =>
    s !== undefined &&
    (s.migrations ?? []).length === 0 &&
    conditionOf(s, "Balanced")?.reason === "TooManyShards" &&
    (s.shards ?? []).length > 0;
  let settledMs = Number.NaN;
  try {
    await waitUntil(
      "over the limit: table settled with TooManyShards",
      () => (listedMost(fleet.status) ? true : undefined),
      300_000,
      200,
      ctx.log,
    );
    settledMs = nowMs() - t0;
    await quiet(ctx, 120_000);
  } catch (err) {
    ctx.log(`over the limit: ${String(err)} (observing anyway)`);
  }
  const m1 = await metricsText(kube);
  const tA = nowMs();
  await sleep(observeMs);
  const tB = nowMs();
  const m2 = await metricsText(kube);
  const log = coordinatorLog(ctx);
  const onlyStatus = (w: WritesByResource) =>
    Object.fromEntries(Object.entries(w).filter(([k]) => k.startsWith("slotmaps/status")));
  const events = await kube.http.request<{
    items: Array<{
      type?: string;
      reason?: string;
      count?: number;
      series?: { count?: number };
      message?: string;
      note?: string;
    }>;
  }>("GET", "/api/v1/events", { query: { fieldSelector: "reason=TooManyShards" } });
  const metrics = await opsGet(ctx.metricsPort, "/metrics", Number.POSITIVE_INFINITY);
  const status = fleet.status;
  const result: Omit<OverLimitResult, "leave"> = {
    shards: total,
    settledMs,
    shardsListed: (status?.shards ?? []).length,
    shardsWithSlots: shardsWithSlots(status).size,
    writesUntilSettled: onlyStatus(
      diffWrites(snapshotFromMetrics(m0, 0).writes, snapshotFromMetrics(m1, 0).writes),
    ),
    observeMs: tB - tA,
    statusWritesObserved: onlyStatus(
      diffWrites(snapshotFromMetrics(m1, 0).writes, snapshotFromMetrics(m2, 0).writes),
    ),
    logLinesObserved: logLinesBetween(log, tA, tB),
    logLinesTotal: logLinesBetween(log, t0, tB),
    events: events.items.map((e) => ({
      type: e.type ?? "",
      reason: e.reason ?? "",
      count: e.count ?? e.series?.count ?? 1,
      message: e.message ?? e.note ?? "",
    })),
    balanced: conditionOf(status, "Balanced"),
    ready: conditionOf(status, "Ready"),
    metricShardsOverLimit:
      metrics.code === 200 ? gaugeValue(metrics.body, "slotmap_shards_over_limit") : undefined,
    readyz: await opsGet(ctx.probePort, "/readyz"),
    healthz: await opsGet(ctx.probePort, "/healthz"),
  };
  // The existing table keeps working: a listed shard with slots leaves.
  const victim = [...shardsWithSlots(status)].sort()[0] ?? shardName(0);
  ctx.log(`over the limit: ${victim} leaves`);
  const m3 = await metricsText(kube);
  const tL = nowMs();
  const seenFrom = fleet.seen.length;
  await fleet.release(victim);
  const gone = (s: ScaleStatus | undefined) =>
    s !== undefined && !shardsWithSlots(s).has(victim) && (s.migrations ?? []).length === 0;
  let leaveMs: number | undefined;
  try {
    await waitUntil(
      `over the limit: ${victim}'s slots reassigned`,
      () => (gone(fleet.status) ? true : undefined),
      120_000,
      100,
      ctx.log,
    );
    leaveMs = (fleet.seen.slice(seenFrom).find((s) => gone(s.status))?.t ?? nowMs()) - tL;
    await quiet(ctx, 120_000);
  } catch (err) {
    ctx.log(`over the limit: ${String(err)}`);
  }
  const m4 = await metricsText(kube);
  return {
    ...result,
    leave: {
      shard: victim,
      settledMs: leaveMs,
      statusWrites: onlyStatus(
        diffWrites(snapshotFromMetrics(m3, 0).writes, snapshotFromMetrics(m4, 0).writes),
      ),
      shardsListedAfter: (fleet.status?.shards ?? []).length,
      shardsWithSlotsAfter: shardsWithSlots(fleet.status).size,
    },
  };
}

/** Idle figures over `ms`: background writes and CPU with nothing changing. */
async function measureIdle(ctx: SizeContext, ms: number): Promise<SizeResult["idle"]> {
  const m0 = await metricsText(ctx.kube);
  const a0 = sampleProc(ctx.cp.pid);
  const c0 = ctx.coordinator.sample();
  const f0 = ctx.fleet.stats.acks + ctx.fleet.stats.renewals;
  const t0 = nowMs();
  await sleep(ms);
  const f1 = ctx.fleet.stats.acks + ctx.fleet.stats.renewals;
  const seconds = (nowMs() - t0) / 1000;
  const m1 = await metricsText(ctx.kube);
  const a1 = sampleProc(ctx.cp.pid);
  const c1 = ctx.coordinator.sample();
  const w = diffWrites(snapshotFromMetrics(m0, 0).writes, snapshotFromMetrics(m1, 0).writes);
  const sw = statusWritesOf(w);
  return {
    seconds,
    statusWrites: sw.ok + sw.failed,
    leaseWritesPerSecond: (w.leases ?? 0) / seconds,
    fleetWritesPerSecond: (f1 - f0) / seconds,
    apiserverCpuPerSecond: (a1.cpuSeconds - a0.cpuSeconds) / seconds,
    coordinatorCpuPerSecond: ((c1?.cpuSeconds ?? 0) - (c0?.cpuSeconds ?? 0)) / seconds,
  };
}

/** One shard count, on a fresh control plane. */
export async function runSize(
  n: number,
  opts: RunOptions,
  overLimit: { extra: number; observeMs: number } | undefined,
): Promise<SizeResult> {
  const log = (m: string) => opts.log(`[${n}] ${m}`);
  const runDir = mkdtempSync(join(tmpdir(), `slotmap-bench-scale-${n}-`));
  const logDir = join(runDir, "logs");
  mkdirSync(logDir, { recursive: true });
  log(`logs in ${logDir}`);
  const cp = await startControlPlane({ logFile: join(logDir, "controlplane.log") });
  const kube = connectKube(cp.kubeconfig, 64);
  let coordinator: Child | undefined;
  let watcherChild: Child | undefined;
  const fleet = new ShardFleet({
    http: kube.http,
    namespace: LEASE_NS,
    slotMap: SLOTMAP,
    leaseDurationSeconds: LEASE_DURATION_S,
    renewEveryMs: RENEW_EVERY_MS,
    concurrency: 64,
    log,
  });
  try {
    installCrds(cp);
    await kube.http.request("POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: LEASE_NS } },
    });
    // The Leases exist before the SlotMap: the coordinator's first generations then see all of
    // them (the set-up is not measured; this only keeps it short).
    const tLeases = nowMs();
    await fleet.add(Array.from({ length: n }, (_, i) => shardName(i)));
    const leasesCreatedMs = nowMs() - tLeases;
    log(`${n} Leases created in ${(leasesCreatedMs / 1000).toFixed(1)} s`);
    coordinator = new Child("coordinator", {
      entry: entry("src/coordinator/main.ts"),
      args: [
        "--kubeconfig",
        cp.kubeconfig,
        "--leader-elect",
        "false",
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--health-probe-bind-address",
        "127.0.0.1:0",
        "--identity",
        "bench-coordinator",
        "--orphan-after",
        String(ORPHAN_AFTER_S),
      ],
      logDir,
      directLog: true,
    });
    await fleet.start();
    const ctx: SizeContext = {
      n,
      cp,
      kube,
      fleet,
      coordinator,
      logDir,
      log,
      metricsPort: undefined,
      probePort: undefined,
      watchers: undefined,
      watchMode: "projection",
      nextShard: n,
    };
    const m0 = await metricsText(kube);
    const tCreate = nowMs();
    await kube.http.request("POST", "/apis/slotmap.dev/v1alpha1/slotmaps", {
      body: {
        apiVersion: "slotmap.dev/v1alpha1",
        kind: "SlotMap",
        metadata: { name: SLOTMAP },
        spec: {
          leaseNamespace: LEASE_NS,
          resources: [{ group: "", resource: "secrets" }],
          policy: { maxMigratingSlots: 16384, handoffTimeoutSeconds: 30 },
        },
      },
    });
    const all = new Set(fleet.liveNames());
    await waitUntil(
      `${n} shards balanced`,
      () => (settledOn(fleet.status, all) ? true : undefined),
      900_000,
      200,
      log,
    );
    const balancedMs = nowMs() - tCreate;
    await quiet(ctx);
    const m1 = await metricsText(kube);
    const setupWrites = statusWritesOf(
      diffWrites(snapshotFromMetrics(m0, 0).writes, snapshotFromMetrics(m1, 0).writes),
    );
    const setup = {
      leasesCreatedMs,
      balancedMs,
      generations: fleet.status?.assignmentGeneration ?? 0,
      statusWrites: setupWrites.ok + setupWrites.failed,
    };
    log(
      `balanced in ${(balancedMs / 1000).toFixed(1)} s: generation ${setup.generations}, ${setup.statusWrites} status writes`,
    );
    ctx.metricsPort = portFromLog(join(logDir, "coordinator.log"), "metrics server listening");
    ctx.probePort = portFromLog(join(logDir, "coordinator.log"), "health probe server listening");
    fleet.seen.splice(0, Math.max(0, fleet.seen.length - 1)); // keep the latest only
    fleet.projectionLog.splice(0);

    // One watcher per shard, watching what the shard watches: its projection and the SlotMap's
    // metadata.
    const latest = fleet.latest?.object;
    const watcherConfig: WatchersConfig = {
      kubeconfig: cp.kubeconfig,
      slotMap: SLOTMAP,
      mode: "projection",
      watchers: n,
      resourceVersion: latest?.metadata?.resourceVersion ?? "0",
      projections: [...all].map((shard) => ({ namespace: LEASE_NS, name: projectionName(SLOTMAP, shard) })),
      projectionResourceVersion: fleet.projectionResourceVersion ?? "0",
      specGeneration: (latest?.metadata as { generation?: number } | undefined)?.generation ?? 0,
      acceptGzip: true,
    };
    watcherChild = new Child("watchers", {
      entry: entry("bench/support/scale-watchers.ts"),
      config: watcherConfig,
      logDir,
      directLog: true,
    });
    await watcherChild.ready(300_000);
    ctx.watchers = new Watchers(watcherChild);
    log(`${n} watchers open (projection and SlotMap metadata each)`);
    const idle = await measureIdle(ctx, 5000);

    /** One join of a new shard, then its leave, with the current watchers. */
    const joinAndLeave = async (): Promise<[WindowFigures, WindowFigures]> => {
      const joiner = shardName(ctx.nextShard++);
      const joinWindow = await measureWindow(
        ctx,
        "join",
        () => fleet.add([joiner]),
        (s) => settledOn(s, new Set([...all, joiner])),
      );
      log(`${ctx.watchMode} watchers: ${windowSummary(joinWindow)}`);
      const leaveWindow = await measureWindow(
        ctx,
        "leave",
        () => fleet.release(joiner),
        (s) => settledOn(s, all),
        // The window includes the coordinator deleting the Dead Lease and dropping it from the status.
        (s) => settledOn(s, all) && !(s?.shards ?? []).some((e) => e.name === joiner),
      );
      log(`${ctx.watchMode} watchers: ${windowSummary(leaveWindow)}`);
      return [joinWindow, leaveWindow];
    };
    const [joinWindow, leave] = await joinAndLeave();
    const final = await ctx.watchers.tally();
    fleet.seen.splice(0, Math.max(0, fleet.seen.length - 1));
    fleet.projectionLog.splice(0);

    // The same with watchers of the whole SlotMap, as shards watched it before projections.
    let whole: [WindowFigures, WindowFigures] | undefined;
    if (compareWhole(process.env[COMPARE_ENV])) {
      await watcherChild.stop();
      const wholeConfig: WatchersConfig = {
        kubeconfig: cp.kubeconfig,
        slotMap: SLOTMAP,
        mode: "slotmap",
        watchers: n,
        resourceVersion: fleet.latest?.object.metadata?.resourceVersion ?? "0",
        acceptGzip: true,
      };
      watcherChild = new Child("watchers-whole", {
        entry: entry("bench/support/scale-watchers.ts"),
        config: wholeConfig,
        logDir,
        directLog: true,
      });
      await watcherChild.ready(300_000);
      ctx.watchers = new Watchers(watcherChild);
      ctx.watchMode = "slotmap";
      log(`${n} watchers of the whole SlotMap open`);
      whole = await joinAndLeave();
      fleet.seen.splice(0, Math.max(0, fleet.seen.length - 1));
      fleet.projectionLog.splice(0);
    }

    let over: OverLimitResult | undefined;
    if (overLimit !== undefined) {
      // The refusal is about the coordinator and the status writes, not the fan-out: the watchers
      // are stopped so that 1100 shards fit on the machine.
      await watcherChild.stop();
      over = await measureOverLimit(ctx, overLimit.extra, overLimit.observeMs);
    }
    return {
      shards: n,
      watchers: n,
      setup,
      idle,
      join: joinWindow,
      leave,
      ...(whole ? { wholeJoin: whole[0], wholeLeave: whole[1] } : {}),
      watchEncodings: final.encodings,
      watcherErrors: final.errors,
      fleet: { ...fleet.stats },
      coordinatorLog: logLinesBetween(coordinatorLog(ctx), 0, Number.POSITIVE_INFINITY),
      ...(over ? { overLimit: over } : {}),
    };
  } finally {
    await watcherChild?.stop(5000);
    await fleet.stop();
    await coordinator?.stop(10_000);
    await kube.close();
    await cp.stop();
  }
}

/** The coordinator's steps in a window, e.g. `412 steps, 3.1 s (5 over 100 ms, 0 over 1 s), event loop lag max 0.2 s`. */
function stepsNote(w: WindowFigures): string {
  const s = w.coordinatorSteps;
  if (s === undefined) return "steps: –";
  return `${s.count} steps, ${s.seconds.toFixed(2)} s (${s.over100ms} over 100 ms, ${s.over1s} over 1 s), event loop lag max ${s.eventLoopLagMaxSeconds.toFixed(2)} s`;
}

/** One line for the log: writes, generations, bytes per stream. */
function windowSummary(w: WindowFigures): string {
  const streams = Object.entries(w.streams ?? {})
    .map(([k, t]) => `${k} ${(t.bytes / 1e6).toFixed(2)} MB in ${t.events} events`)
    .join(", ");
  const pw = sumWrites(w.projectionWrites ?? {});
  return `${w.kind}: ${w.statusWrites} status writes (first +${w.writes[0]?.atMs ?? "–"} ms), ${w.generations} generations, ${pw.ok} projection writes (${pw.failed} failed), ${(w.watch.bytes / 1e6).toFixed(2)} MB to ${w.watchers} watchers (${streams}); coordinator ${w.coordinatorCpuSeconds.toFixed(2)} CPU-s, ${stepsNote(w)}`;
}

/** How the sources' acks arrived per generation, e.g. `g3: 17 sources acked +120…+2300 ms (all +2900)`. */
function ackNote(w: WindowFigures): string {
  return w.acks
    .filter((a) => a.sources > 0)
    .map(
      (a) =>
        `g${a.generation}: ${a.sources} sources acked +${a.sourceFirstMs}…+${a.sourceLastMs} ms (all ${a.acks} +${a.allLastMs} ms)`,
    )
    .join("; ");
}

const MB = 1e6;
const KiB = 1024;

/** `x MB in n events (min–max per watcher)` of one stream. */
function streamNote(kind: string, t: WatchTotals | undefined): string {
  if (t === undefined) return `${kind}: –`;
  const each = t.events > 0 ? ` (${(t.bytes / t.events).toFixed(0)} B each)` : "";
  return `${kind} ${(t.bytes / MB).toFixed(3)} MB in ${t.events} events${each}, ${t.minEvents}–${t.maxEvents} per watcher`;
}

/** Table rows of the results (targets from issue 17 on the 1000-shard figures). */
export function rowsFor(results: readonly SizeResult[]): Row[] {
  const rows: Row[] = [];
  const largest = Math.max(...results.map((r) => r.shards));
  const target = (n: number, t: number) => (n === largest && largest >= 1000 ? t : undefined);
  for (const r of results) {
    const n = r.shards;
    const pairs: Array<[WindowFigures, WindowFigures | undefined]> = [
      [r.join, r.wholeJoin],
      [r.leave, r.wholeLeave],
    ];
    for (const [w, whole] of pairs) {
      const d = derive(w);
      const tag = `${n} shards, ${w.kind}`;
      const pw = sumWrites(w.projectionWrites ?? {});
      const p = w.projections;
      rows.push({
        metric: `${tag}: status writes`,
        unit: "writes",
        median: w.statusWrites + w.statusWritesFailed,
        ...(w.kind === "join" ? { target: target(n, 3) } : {}),
        note: `${w.generations} generations; ${w.writes.map((x) => `${x.cause} @+${x.atMs} ms`).join("; ")}; ${ackNote(w)}`,
      });
      rows.push({
        metric: `${tag}: projection writes`,
        unit: "writes",
        median: pw.ok + pw.failed,
        note: `by verb ${JSON.stringify(w.projectionWrites ?? {})}; seen: ${p?.events ?? 0} events for ${p?.shards ?? 0} shards, ${(p?.bytesMean ?? Number.NaN).toFixed(0)} B each (max ${p?.bytesMax ?? 0}); all projections ${(p?.settledBytesMean ?? Number.NaN).toFixed(0)} B mean`,
      });
      rows.push({
        metric: `${tag}: watch traffic, all ${w.watchers} watchers (projection + SlotMap metadata)`,
        unit: "MB",
        median: w.watch.bytes / MB,
        ...(w.kind === "join" ? { target: target(n, 200) } : {}),
        ...(whole !== undefined && whole.watch.bytes > 0
          ? {
              ratio: w.watch.bytes / whole.watch.bytes,
              baseline: `${whole.watchers} watchers of the whole SlotMap, the same ${w.kind} (another shard) in this run`,
            }
          : {}),
        note: `${streamNote("projection", w.streams?.projection)}; ${streamNote("metadata", w.streams?.metadata)}; spec GETs ${w.streams?.spec?.events ?? 0} (${((w.streams?.spec?.bytes ?? 0) / MB).toFixed(3)} MB); API server counted SlotMap ${(w.apiWatch.bytes / MB).toFixed(3)} MB in ${w.apiWatch.events} events, SlotMapShard ${((w.apiWatchProjections?.bytes ?? 0) / MB).toFixed(3)} MB in ${w.apiWatchProjections?.events ?? 0}`,
      });
      rows.push({
        metric: `${tag}: SlotMap watch event ÷ status size`,
        unit: "ratio",
        median: whole !== undefined ? derive(whole).eventOverStatus : d.eventOverStatus,
        target: target(n, 1.2),
        note: `${whole !== undefined ? "measured by the whole-SlotMap watchers" : "from the object's JSON"}: event ${((whole !== undefined ? derive(whole).eventBytes : d.slotMapEventBytes) / KiB).toFixed(1)} KiB, status ${(w.statusBytesMean / KiB).toFixed(1)} KiB (mean of the window's writes; ${(w.statusBytes / KiB).toFixed(1)} KiB settled), object ${(w.objectBytes / KiB).toFixed(1)} KiB; a shard's metadata event ${d.eventBytes.toFixed(0)} B, projection event ${d.projectionEventBytes.toFixed(0)} B`,
      });
      rows.push({
        metric: `${tag}: API server CPU`,
        unit: "s",
        median: w.apiserverCpuSeconds,
        ...(whole !== undefined
          ? { ratio: w.apiserverCpuSeconds / whole.apiserverCpuSeconds, baseline: "whole-SlotMap watchers" }
          : {}),
        note: `${(w.durationMs / 1000).toFixed(1)} s window (idle ${r.idle.apiserverCpuPerSecond.toFixed(2)} CPU-s/s); RSS ${(w.apiserverRssBytes / MB).toFixed(0)} MB, max ${(w.apiserverRssMaxBytes / MB).toFixed(0)} MB; ${w.leaseWrites} Lease writes`,
      });
      rows.push({
        metric: `${tag}: coordinator CPU`,
        unit: "s",
        median: w.coordinatorCpuSeconds,
        note: `RSS ${(w.coordinatorRssBytes / MB).toFixed(0)} MB, max ${(w.coordinatorRssMaxBytes / MB).toFixed(0)} MB; settled after ${w.settledMs.toFixed(0)} ms; ${stepsNote(w)}`,
      });
      if (whole !== undefined) {
        const dw = derive(whole);
        rows.push({
          metric: `${tag}, whole-SlotMap watchers: watch traffic, all ${whole.watchers} watchers`,
          unit: "MB",
          median: whole.watch.bytes / MB,
          note: `${whole.watch.events} events of ${dw.eventBytes.toFixed(0)} B (${whole.watch.minEvents}–${whole.watch.maxEvents} per watcher); ${whole.statusWrites + whole.statusWritesFailed} status writes, ${sumWrites(whole.projectionWrites ?? {}).ok} projection writes; API server CPU ${whole.apiserverCpuSeconds.toFixed(2)} s, RSS max ${(whole.apiserverRssMaxBytes / MB).toFixed(0)} MB`,
        });
      }
    }
  }
  if (results.length >= 2) {
    const first = results[0]!;
    const last = results[results.length - 1]!;
    const wholeGrowth =
      first.wholeJoin !== undefined && last.wholeJoin !== undefined
        ? `; whole-SlotMap watchers ×${(last.wholeJoin.watch.bytes / first.wholeJoin.watch.bytes).toFixed(1)}`
        : "";
    rows.push({
      metric: `join watch traffic growth ${first.shards}→${last.shards} shards`,
      unit: "×",
      median: last.join.watch.bytes / first.join.watch.bytes,
      ...(first.shards <= 100 && last.shards >= 1000 ? { target: 15 } : {}),
      note: `shard count ×${(last.shards / first.shards).toFixed(0)}; linear = ×${(last.shards / first.shards).toFixed(0)}, quadratic = ×${((last.shards / first.shards) ** 2).toFixed(0)}${wholeGrowth}`,
    });
  }
  for (const r of results) {
    const o = r.overLimit;
    if (o === undefined) continue;
    const puts = Object.values(o.statusWritesObserved).reduce((a, b) => a + b, 0);
    const lines = Object.values(o.logLinesObserved).reduce((a, b) => a + b, 0);
    rows.push({
      metric: `${o.shards} shards: status writes in ${(o.observeMs / 1000).toFixed(0)} s after settling`,
      unit: "writes",
      median: puts,
      note: `until settled: ${JSON.stringify(o.writesUntilSettled)}; listed ${o.shardsListed}, with slots ${o.shardsWithSlots}`,
    });
    rows.push({
      metric: `${o.shards} shards: coordinator log lines in ${(o.observeMs / 1000).toFixed(0)} s`,
      unit: "lines",
      median: lines,
      note: `since the trigger: ${JSON.stringify(o.logLinesTotal)}`,
    });
    rows.push({
      metric: `${o.shards} shards: refusal signals`,
      unit: "",
      median: o.metricShardsOverLimit ?? Number.NaN,
      note: `slotmap_shards_over_limit; Balanced=${o.balanced?.status}/${o.balanced?.reason}; events ${o.events.map((e) => `${e.type} ${e.reason} ×${e.count}`).join(", ") || "none"}; /readyz ${o.readyz.code}`,
    });
    rows.push({
      metric: `${o.shards} shards: a listed shard leaves`,
      unit: "ms",
      median: o.leave.settledMs ?? Number.NaN,
      note: `${JSON.stringify(o.leave.statusWrites)}; after: listed ${o.leave.shardsListedAfter}, with slots ${o.leave.shardsWithSlotsAfter}`,
    });
  }
  return rows;
}

/**
 * Environment variable: `0` skips the second join and leave with watchers of the whole SlotMap
 * (the watch design before projections), which otherwise runs at every shard count.
 */
export const COMPARE_ENV = "SLOTMAP_BENCH_SCALE_COMPARE";

/** Whether to run the whole-SlotMap comparison (`SLOTMAP_BENCH_SCALE_COMPARE`, default on). */
export function compareWhole(env: string | undefined): boolean {
  const v = (env ?? "").trim().toLowerCase();
  if (v === "" || v === "1" || v === "true" || v === "yes") return true;
  if (v === "0" || v === "false" || v === "no") return false;
  throw new Error(`${COMPARE_ENV}=${JSON.stringify(env)}: must be 0 or 1`);
}

/** Environment variable: comma-separated shard counts to run instead of the defaults. */
export const SIZES_ENV = "SLOTMAP_BENCH_SCALE_SIZES";

/** Shard counts of a run: `SLOTMAP_BENCH_SCALE_SIZES` when set, else 100/300/1000 (quick: 20/50). */
export function scaleSizes(quick: boolean, env: string | undefined): number[] {
  if (env === undefined || env.trim() === "") return quick ? [20, 50] : [100, 300, 1000];
  const sizes = env.split(",").map((v) => Number(v.trim()));
  for (const n of sizes) {
    if (!Number.isInteger(n) || n < 1 || n > 5000)
      throw new Error(`${SIZES_ENV}=${JSON.stringify(env)}: each entry must be a shard count from 1 to 5000`);
  }
  return sizes;
}

/**
 * `npm run bench -- scale [--quick]`: 100, 300, 1000 shards, then 1100 past the limit after the
 * 1000 (quick: 20 and 50, no over-limit part). The detail file is rewritten after each shard
 * count, so a run stopped halfway keeps what it measured.
 */
export async function runScaleScenario(opts: RunOptions): Promise<Row[]> {
  const sizes = scaleSizes(opts.quick, process.env[SIZES_ENV]);
  const results: SizeResult[] = [];
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = join(RESULTS_DIR, `scale-detail-${stamp}.json`);
  for (const n of sizes) {
    const over = !opts.quick && n >= 1000 ? { extra: 100, observeMs: 30_000 } : undefined;
    results.push(await runSize(n, opts, over));
    writeFileSync(file, `${JSON.stringify({ scenario: "scale", quick: opts.quick, results }, null, 2)}\n`);
    opts.log(`details: ${file}`);
  }
  return rowsFor(results);
}
