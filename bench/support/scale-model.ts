/**
 * Pure parts of the scale benchmark (bench/support/scale.ts): the emulated shards' Lease bodies
 * (create, renew and ack, graceful release), what a SlotMap status says about the table, and the
 * figures derived from one measurement window. Everything here is a function of its arguments, so
 * test/unit/bench/scale-model.test.ts covers it without an API server.
 */
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_RELEASED_BY,
  ANNOTATION_SLOTMAP_UID,
  LABEL_SLOTMAP,
  microTime,
} from "../../src/api/lease.js";
import {
  type ProjectableStatus,
  type ProjectionSpec,
  projectionName,
  projectStatus,
  sameProjection,
} from "../../src/api/projection.js";
import { parseRequestTotals, parseSamples, WRITE_VERBS } from "./apimetrics.js";

/** The Lease fields the emulated shards read and write. */
export interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** An ack: the generation a shard has applied, for one SlotMap instance. */
export interface Ack {
  readonly uid: string;
  readonly generation: number;
}

/**
 * The Lease a shard creates when it starts: held by `holder`, labelled for the SlotMap, no ack
 * yet (as {@link ../../src/client/core/shard-machine.ts}'s first acquire writes it).
 */
export function newLease(o: {
  name: string;
  namespace: string;
  slotMap: string;
  holder: string;
  leaseDurationSeconds: number;
  nowMs: number;
}): LeaseObject {
  const t = microTime(o.nowMs);
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: o.name, namespace: o.namespace, labels: { [LABEL_SLOTMAP]: o.slotMap } },
    spec: {
      holderIdentity: o.holder,
      leaseDurationSeconds: o.leaseDurationSeconds,
      acquireTime: t,
      renewTime: t,
      leaseTransitions: 0,
    },
  };
}

/**
 * The renewal of `current` at `nowMs` (same holder, new renewTime), carrying `ack` when given: a
 * real shard writes its ack with a renewal, in one PUT. The resourceVersion is kept, so the write
 * is preconditioned on the Lease the shard last saw.
 */
export function renewedLease(current: LeaseObject, nowMs: number, ack?: Ack): LeaseObject {
  const annotations = { ...(current.metadata.annotations ?? {}) };
  if (ack !== undefined) {
    annotations[ANNOTATION_OBSERVED_GENERATION] = String(ack.generation);
    annotations[ANNOTATION_SLOTMAP_UID] = ack.uid;
  }
  return {
    ...current,
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { ...current.metadata, annotations },
    spec: { ...current.spec, renewTime: microTime(nowMs) },
  };
}

/**
 * A graceful release: holderIdentity cleared and the release marker naming the holder that let go
 * (DESIGN "Trust", rule 3: only then is the shard Dead at once).
 */
export function releasedLease(current: LeaseObject, nowMs: number): LeaseObject {
  const holder = current.spec.holderIdentity;
  if (!holder) throw new Error(`Lease ${current.metadata.name}: not held, nothing to release`);
  return {
    ...current,
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      ...current.metadata,
      annotations: { ...(current.metadata.annotations ?? {}), [ANNOTATION_RELEASED_BY]: holder },
    },
    spec: { ...current.spec, holderIdentity: "", renewTime: microTime(nowMs) },
  };
}

/** The generation a Lease acknowledges for SlotMap `uid` (0: none, or for another instance). */
export function leaseAck(lease: LeaseObject, uid: string): number {
  const a = lease.metadata.annotations ?? {};
  if (a[ANNOTATION_SLOTMAP_UID] !== uid) return 0;
  const g = Number(a[ANNOTATION_OBSERVED_GENERATION]);
  return Number.isSafeInteger(g) && g >= 0 ? g : 0;
}

/** A shard's holder identity as the real shard builds it: `<pod>-<salt>-<incarnation>`. */
export function holderIdentity(shard: string, salt: string, incarnation = 1): string {
  return `${shard}-${salt}-${incarnation}`;
}

/** The SlotMap status fields the benchmark reads (v0.2 format; older fields are ignored). */
export interface ScaleStatus {
  assignmentGeneration?: number;
  rulesFingerprint?: string;
  shards?: Array<{ name: string; slots?: string; holderIdentity?: string; state?: string }>;
  migrations?: Array<{ slots?: string; from?: string; to?: string; generation?: number }>;
  unassignedSlots?: string;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
}

/** Names of the shards the status assigns slots to. */
export function shardsWithSlots(status: ScaleStatus | undefined): Set<string> {
  return new Set((status?.shards ?? []).filter((s) => (s.slots ?? "") !== "").map((s) => s.name));
}

/**
 * Whether the table is settled on `expected`: no migration in flight, nothing unassigned, and
 * every expected shard holds slots (and no other shard does).
 */
export function settledOn(status: ScaleStatus | undefined, expected: ReadonlySet<string>): boolean {
  if (status === undefined) return false;
  if ((status.migrations ?? []).length > 0 || (status.unassignedSlots ?? "") !== "") return false;
  const owning = shardsWithSlots(status);
  if (owning.size !== expected.size) return false;
  for (const s of expected) if (!owning.has(s)) return false;
  return true;
}

/** The status as the coordinator projects it (fields the API server defaults read as their defaults). */
export function projectableOf(status: ScaleStatus): ProjectableStatus {
  return {
    assignmentGeneration: status.assignmentGeneration ?? 0,
    ...(status.rulesFingerprint !== undefined ? { rulesFingerprint: status.rulesFingerprint } : {}),
    shards: (status.shards ?? []).map((e) => ({
      name: e.name,
      slots: e.slots ?? "",
      ...(e.holderIdentity !== undefined ? { holderIdentity: e.holderIdentity } : {}),
    })),
    migrations: (status.migrations ?? []).map((m) => ({
      slots: m.slots ?? "",
      from: m.from ?? "",
      to: m.to ?? "",
      generation: m.generation ?? 0,
    })),
  };
}

/**
 * The shards whose projection does not (yet) tell what `status` tells them: missing, or different
 * content ({@link sameProjection}: the generation a projection carries is that of its last change,
 * so it is not compared). The coordinator writes projections after the status write it accepted,
 * so a window is closed only once this is empty for every held Lease.
 */
export function projectionLag(
  status: ScaleStatus | undefined,
  slotMap: { readonly name: string; readonly uid: string | undefined },
  shards: Iterable<{ readonly name: string; readonly projection: ProjectionSpec | undefined }>,
): string[] {
  const lagging: string[] = [];
  if (status === undefined || slotMap.uid === undefined) {
    for (const s of shards) lagging.push(s.name);
    return lagging;
  }
  const projectable = projectableOf(status);
  const uid = { name: slotMap.name, uid: slotMap.uid };
  for (const s of shards) {
    if (s.projection === undefined || !sameProjection(s.projection, projectStatus(projectable, uid, s.name)))
      lagging.push(s.name);
  }
  return lagging;
}

/** The object name of shard `shard`'s projection (re-exported for the harness and its watchers). */
export { projectionName };

/** A condition of the status by type, or undefined. */
export function conditionOf(
  status: ScaleStatus | undefined,
  type: string,
): { status: string; reason?: string; message?: string } | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** UTF-8 byte length of the JSON of a value (what it costs on the wire, without whitespace). */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value ?? null));
}

/**
 * Bytes of the watch event that carries `object` to a watcher of the whole object:
 * `{"type":"MODIFIED","object":…}` and its newline, as the API server frames JSON watch events.
 */
export function watchEventBytes(object: unknown): number {
  return jsonBytes({ type: "MODIFIED", object }) + 1;
}

/** What one status write looked like, for explaining where a window's writes came from. */
export interface StatusWriteRecord {
  /** ms after the window's trigger. */
  readonly atMs: number;
  readonly generation: number;
  readonly statusBytes: number;
  readonly migrations: number;
  readonly shardsListed: number;
  /** `type=status/reason` of each condition, e.g. `Balanced=False/Rebalancing`. */
  readonly conditions: string;
}

/** {@link StatusWriteRecord} of a status seen `atMs` after the trigger. */
export function describeStatus(status: ScaleStatus, atMs: number): StatusWriteRecord {
  return {
    atMs: Math.round(atMs),
    generation: status.assignmentGeneration ?? 0,
    statusBytes: jsonBytes(status),
    migrations: (status.migrations ?? []).length,
    shardsListed: (status.shards ?? []).length,
    conditions: (status.conditions ?? [])
      .map((c) => `${c.type}=${c.status}${c.reason ? `/${c.reason}` : ""}`)
      .join(" "),
  };
}

/**
 * Why a status write happened, from the write before it: a new generation (`generation g`), a
 * change of conditions only, of the shard list only (a shard listed or dropped, a state or holder
 * change), or `other`.
 */
export function writeCause(prev: StatusWriteRecord | undefined, next: StatusWriteRecord): string {
  if (prev === undefined) return next.generation > 0 ? `generation ${next.generation}` : "first status";
  if (next.generation !== prev.generation) return `generation ${next.generation}`;
  if (next.conditions !== prev.conditions) return `conditions: ${next.conditions}`;
  if (next.shardsListed !== prev.shardsListed)
    return `shards listed ${prev.shardsListed} → ${next.shardsListed}`;
  return "other (shard state or holder)";
}

/**
 * What each emulated shard's watcher watches: its own projection plus the SlotMap's metadata (a
 * shard since per-shard projections), or the whole SlotMap (a shard before them; kept to compare
 * both side by side in one run).
 */
export type WatchMode = "projection" | "slotmap";

/**
 * One watcher's streams: `slotmap` the whole SlotMap (slotmap mode); `projection` its
 * SlotMapShard, `metadata` the SlotMap as PartialObjectMetadata, `spec` the GETs of the whole
 * SlotMap a shard makes when `metadata.generation` moves (projection mode; events = GETs).
 */
export type StreamKind = "slotmap" | "projection" | "metadata" | "spec";

/** Counters of one stream of one watcher. */
export interface StreamCounters {
  events: number;
  bytes: number;
  reconnects: number;
}

/** Per-watcher counters of each stream kind a watcher process holds (arrays in watcher order). */
export type StreamTally = Partial<Record<StreamKind, StreamCounters[]>>;

/** Per watcher, the sum of its streams (what one shard receives). */
export function combineStreams(tally: StreamTally): StreamCounters[] {
  const out: StreamCounters[] = [];
  for (const perWatcher of Object.values(tally)) {
    perWatcher.forEach((c, i) => {
      out[i] ??= { events: 0, bytes: 0, reconnects: 0 };
      const o = out[i]!;
      o.events += c.events;
      o.bytes += c.bytes;
      o.reconnects += c.reconnects;
    });
  }
  return out;
}

/** `after − before` of two stream tallies of the same watcher process, summed per kind. */
export function diffStreams(
  before: StreamTally,
  after: StreamTally,
): { total: WatchTotals; byKind: Partial<Record<StreamKind, WatchTotals>> } {
  const byKind: Partial<Record<StreamKind, WatchTotals>> = {};
  const diffed: StreamTally = {};
  for (const [kind, a] of Object.entries(after) as Array<[StreamKind, StreamCounters[]]>) {
    const d = diffWatchers(before[kind] ?? a.map(() => ({ events: 0, bytes: 0, reconnects: 0 })), a);
    diffed[kind] = d;
    byKind[kind] = sumWatchers(d);
  }
  return { total: sumWatchers(combineStreams(diffed)), byKind };
}

/** Watch traffic counted by the watcher process, summed over its watchers. */
export interface WatchTotals {
  events: number;
  bytes: number;
  /** Fewest and most events one watcher received (every watcher should see every event). */
  minEvents: number;
  maxEvents: number;
  reconnects: number;
  watchers: number;
}

/** Per-watcher counters → {@link WatchTotals}. */
export function sumWatchers(
  perWatcher: ReadonlyArray<{ events: number; bytes: number; reconnects: number }>,
): WatchTotals {
  let events = 0;
  let bytes = 0;
  let reconnects = 0;
  let minEvents = Number.POSITIVE_INFINITY;
  let maxEvents = 0;
  for (const w of perWatcher) {
    events += w.events;
    bytes += w.bytes;
    reconnects += w.reconnects;
    minEvents = Math.min(minEvents, w.events);
    maxEvents = Math.max(maxEvents, w.events);
  }
  return {
    events,
    bytes,
    minEvents: perWatcher.length === 0 ? 0 : minEvents,
    maxEvents,
    reconnects,
    watchers: perWatcher.length,
  };
}

/** `after − before` of two per-watcher tallies taken from the same watcher process. */
export function diffWatchers(
  before: ReadonlyArray<{ events: number; bytes: number; reconnects: number }>,
  after: ReadonlyArray<{ events: number; bytes: number; reconnects: number }>,
): Array<{ events: number; bytes: number; reconnects: number }> {
  if (before.length !== after.length)
    throw new Error(`watcher tallies differ in length (${before.length} vs ${after.length})`);
  return after.map((a, i) => ({
    events: a.events - before[i]!.events,
    bytes: a.bytes - before[i]!.bytes,
    reconnects: a.reconnects - before[i]!.reconnects,
  }));
}

/** Watch traffic of one resource kind as the API server counts it (summed over all its watchers). */
export interface ApiWatchCounters {
  /** `apiserver_watch_events_total` for the kind. */
  events: number;
  /** `apiserver_watch_events_sizes_sum` for the kind: bytes of the encoded events sent. */
  bytes: number;
}

/**
 * {@link ApiWatchCounters} of one resource from a `/metrics` text. Older API servers label these
 * metrics with the `kind` (`SlotMap`), newer ones with the `resource` (`slotmaps`): either matches.
 */
export function apiWatchCounters(
  metricsText: string,
  which: { kind: string; resource: string },
): ApiWatchCounters {
  const sum = (name: string) =>
    parseSamples(metricsText, name)
      .filter((s) => s.labels.kind === which.kind || s.labels.resource === which.resource)
      .reduce((n, s) => n + s.value, 0);
  return { events: sum("apiserver_watch_events_total"), bytes: sum("apiserver_watch_events_sizes_sum") };
}

/**
 * Write requests to one resource by verb as the API server counts them (`apiserver_request_total`):
 * `PUT`, `POST`, `DELETE`, …, with the code appended when not 2xx (`PUT 409`).
 */
export function writesByVerb(metricsText: string, resource: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of parseRequestTotals(metricsText)) {
    if (s.labels.resource !== resource || (s.labels.subresource ?? "") !== "") continue;
    const verb = s.labels.verb ?? "";
    if (!WRITE_VERBS.has(verb)) continue;
    const code = s.labels.code ?? "";
    const key = code === "" || code.startsWith("2") ? verb : `${verb} ${code}`;
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/** Sum of a by-verb breakdown, split into answered (2xx) and failed requests. */
export function sumWrites(byVerb: Readonly<Record<string, number>>): { ok: number; failed: number } {
  let ok = 0;
  let failed = 0;
  for (const [k, v] of Object.entries(byVerb)) {
    if (k.includes(" ")) failed += v;
    else ok += v;
  }
  return { ok, failed };
}

/** Value of a gauge (sum over its series matching `labels`), or undefined when absent. */
export function gaugeValue(
  metricsText: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const matching = [
    ...parseSamples(metricsText, name),
    // A series without labels is written `name value`, which parseSamples (name{...}) skips.
    ...metricsText
      .split("\n")
      .filter((l) => l.startsWith(`${name} `))
      .map((l) => ({ labels: {} as Record<string, string>, value: Number(l.slice(name.length + 1).trim()) })),
  ].filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matching.length === 0) return undefined;
  return matching.reduce((n, s) => n + s.value, 0);
}

/**
 * Log lines of a pino JSON log (one object per line with `time` in ms) in `[fromMs, toMs)`, by
 * message. Lines that are not JSON objects count under `(not JSON)`.
 */
export function logLinesBetween(text: string, fromMs: number, toMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let rec: { time?: unknown; msg?: unknown };
    try {
      rec = JSON.parse(line) as { time?: unknown; msg?: unknown };
    } catch {
      out["(not JSON)"] = (out["(not JSON)"] ?? 0) + 1;
      continue;
    }
    if (typeof rec.time !== "number" || rec.time < fromMs || rec.time >= toMs) continue;
    const msg = typeof rec.msg === "string" ? rec.msg : "(no msg)";
    out[msg] = (out[msg] ?? 0) + 1;
  }
  return out;
}

/** An emulated shard's ack, as written (the PUT answered). */
export interface AckRecord {
  readonly name: string;
  readonly generation: number;
  /** Wall-clock ms. */
  readonly t: number;
}

/** How the acks of one generation arrived: what decides how many commits a handoff takes. */
export interface GenerationAcks {
  readonly generation: number;
  /** The status write of the generation, ms after the window's trigger (as the harness saw it). */
  readonly atMs: number;
  /** Shards that are the source of a pending migration in that status. */
  readonly sources: number;
  /** First and last ack of a source, and last ack of any shard, ms after the status write. */
  readonly sourceFirstMs: number;
  readonly sourceLastMs: number;
  readonly allLastMs: number;
  readonly acks: number;
}

/**
 * The acks of generation `generation` (status seen at `atT`) among `acks`: each shard's first ack
 * of that generation or later; times relative to `atT`. NaN where none arrived.
 */
export function acksOfGeneration(
  generation: number,
  atT: number,
  sources: ReadonlySet<string>,
  acks: readonly AckRecord[],
  t0: number,
): GenerationAcks {
  const first = new Map<string, number>();
  for (const a of acks) {
    if (a.generation < generation || first.has(a.name)) continue;
    first.set(a.name, a.t - atT);
  }
  const all = [...first.values()];
  const src = [...first].filter(([n]) => sources.has(n)).map(([, t]) => t);
  const min = (v: number[]) => (v.length === 0 ? Number.NaN : Math.min(...v));
  const max = (v: number[]) => (v.length === 0 ? Number.NaN : Math.max(...v));
  return {
    generation,
    atMs: Math.round(atT - t0),
    sources: sources.size,
    sourceFirstMs: Math.round(min(src)),
    sourceLastMs: Math.round(max(src)),
    allLastMs: Math.round(max(all)),
    acks: all.length,
  };
}

/** Sources (`from`) of the pending migrations of a status. */
export function migrationSources(status: ScaleStatus): Set<string> {
  return new Set((status.migrations ?? []).map((m) => m.from ?? "").filter((n) => n !== ""));
}

/** Projection writes of a window as the emulator's watch of every SlotMapShard saw them. */
export interface ProjectionFigures {
  /** Watch events: one per create, update or delete. */
  readonly events: number;
  /** Distinct projections written (shards whose projection changed). */
  readonly shards: number;
  /** Mean and largest JSON bytes of the objects written (what one watch event carries). */
  readonly bytesMean: number;
  readonly bytesMax: number;
  /** Mean JSON bytes of every projection at the end of the window, written or not. */
  readonly settledBytesMean: number;
}

/** The figures of one join or leave window at one shard count. */
export interface WindowFigures {
  readonly kind: "join" | "leave";
  /**
   * What the watchers watched; absent in results from before projections, which are `slotmap`
   * (the whole SlotMap, one stream).
   */
  readonly mode?: WatchMode;
  /** Shard count before the change. */
  readonly shards: number;
  readonly watchers: number;
  /** Trigger → table settled, then quiet; ms. */
  readonly durationMs: number;
  /** Trigger → the settled table seen by the harness (for a leave: the slots reassigned); ms. */
  readonly settledMs: number;
  /** Successful and failed `slotmaps/status` writes (by code). */
  readonly statusWrites: number;
  readonly statusWritesFailed: number;
  readonly generations: number;
  /** JSON bytes of `status` at the end of the window, and the largest seen in it. */
  readonly statusBytes: number;
  readonly statusBytesMax: number;
  /** Mean JSON bytes of `status` over the window's writes: what each watch event carried. */
  readonly statusBytesMean: number;
  /** JSON bytes of the whole SlotMap (metadata with managedFields, spec, status) at the end. */
  readonly objectBytes: number;
  /**
   * Bytes of one whole-SlotMap watch event at the end ({@link watchEventBytes} of the object):
   * what a watcher of the whole SlotMap receives per status write (absent in older results).
   */
  readonly slotMapEventBytes?: number;
  /** Watch events and bytes received by the N watchers, all their streams together (client side). */
  readonly watch: WatchTotals;
  /** The same by stream kind (absent in older results: one `slotmap` stream, `watch`). */
  readonly streams?: Partial<Record<StreamKind, WatchTotals>>;
  /** SlotMap watch traffic as the API server counts it, over all SlotMap watchers (N + 2). */
  readonly apiWatch: ApiWatchCounters;
  /** SlotMapShard watch traffic as the API server counts it (N watchers + the emulator's one). */
  readonly apiWatchProjections?: ApiWatchCounters;
  /** SlotMapShard writes the API server counted, by verb (`PUT 409`: failed). */
  readonly projectionWrites?: Readonly<Record<string, number>>;
  /** The same writes as the emulator's watch saw them, with their sizes. */
  readonly projections?: ProjectionFigures;
  readonly leaseWrites: number;
  readonly apiserverCpuSeconds: number;
  readonly apiserverRssBytes: number;
  readonly apiserverRssMaxBytes: number;
  readonly coordinatorCpuSeconds: number;
  readonly coordinatorRssBytes: number;
  readonly coordinatorRssMaxBytes: number;
  /** The coordinator's own step metrics over the window (absent in older results). */
  readonly coordinatorSteps?: CoordinatorSteps;
  /** Every status write in the window, in order, with its cause. */
  readonly writes: ReadonlyArray<StatusWriteRecord & { cause: string }>;
  /** Per new generation in the window: how its acks arrived. */
  readonly acks: readonly GenerationAcks[];
}

/**
 * The coordinator's steps over a window, from its `/metrics`
 * (`slotmap_coordinator_step_duration_seconds`, `nodejs_eventloop_lag_max_seconds`).
 */
export interface CoordinatorSteps {
  readonly count: number;
  /** Sum of the steps' durations (planning and the step's API writes). */
  readonly seconds: number;
  /** Steps that took more than 100 ms and more than 1 s. */
  readonly over100ms: number;
  readonly over1s: number;
  /** The event loop's largest delay at the end of the window (prom-client resets it per scrape). */
  readonly eventLoopLagMaxSeconds: number;
}

/** The cumulative step counters of one coordinator `/metrics` text. */
export function coordinatorStepCounters(
  metricsText: string,
): Omit<CoordinatorSteps, "eventLoopLagMaxSeconds"> {
  const name = "slotmap_coordinator_step_duration_seconds";
  const count = gaugeValue(metricsText, `${name}_count`) ?? 0;
  const le = (v: string) => gaugeValue(metricsText, `${name}_bucket`, { le: v }) ?? 0;
  return {
    count,
    seconds: gaugeValue(metricsText, `${name}_sum`) ?? 0,
    over100ms: count - le("0.1"),
    over1s: count - le("1"),
  };
}

/** `after − before` of two coordinator scrapes; the event loop lag is the `after` one's. */
export function diffCoordinatorSteps(before: string, after: string): CoordinatorSteps {
  const a = coordinatorStepCounters(before);
  const b = coordinatorStepCounters(after);
  return {
    count: b.count - a.count,
    seconds: b.seconds - a.seconds,
    over100ms: b.over100ms - a.over100ms,
    over1s: b.over1s - a.over1s,
    eventLoopLagMaxSeconds: gaugeValue(after, "nodejs_eventloop_lag_max_seconds") ?? Number.NaN,
  };
}

/** Figures computed from a window: sizes per event, ratios. */
export interface DerivedFigures {
  /**
   * Bytes one watcher receives per SlotMap watch event: the whole object (slotmap mode) or its
   * metadata (projection mode); NaN when no events.
   */
  readonly eventBytes: number;
  /**
   * Bytes of one whole-SlotMap watch event: measured in slotmap mode, else from the object at the
   * end of the window ({@link WindowFigures.slotMapEventBytes}).
   */
  readonly slotMapEventBytes: number;
  /** slotMapEventBytes ÷ statusBytesMean (each event carries one of the window's statuses). */
  readonly eventOverStatus: number;
  /** Bytes per projection watch event, client side (NaN when none: slotmap mode, or none written). */
  readonly projectionEventBytes: number;
  /** Bytes delivered to all N watchers in the window, every stream. */
  readonly bytesAllWatchers: number;
  /** Bytes all N watchers receive in SlotMap events for one status write (eventBytes × N). */
  readonly bytesPerWrite: number;
}

const perEvent = (t: WatchTotals | undefined): number =>
  t !== undefined && t.events > 0 ? t.bytes / t.events : Number.NaN;

/** Derives per-event sizes and ratios from a window's raw figures. */
export function derive(
  w: Pick<WindowFigures, "watch" | "statusBytesMean" | "watchers"> &
    Partial<Pick<WindowFigures, "mode" | "streams" | "slotMapEventBytes">>,
): DerivedFigures {
  const mode = w.mode ?? "slotmap";
  const slotMapStream = w.streams?.slotmap ?? (w.streams === undefined ? w.watch : undefined);
  const eventBytes = perEvent(mode === "slotmap" ? slotMapStream : w.streams?.metadata);
  const slotMapEventBytes = mode === "slotmap" ? eventBytes : (w.slotMapEventBytes ?? Number.NaN);
  return {
    eventBytes,
    slotMapEventBytes,
    eventOverStatus: w.statusBytesMean > 0 ? slotMapEventBytes / w.statusBytesMean : Number.NaN,
    projectionEventBytes: perEvent(w.streams?.projection),
    bytesAllWatchers: w.watch.bytes,
    bytesPerWrite: eventBytes * w.watchers,
  };
}

/**
 * Growth of a figure from the smallest to the largest shard count, e.g. traffic per join from 100
 * to 1000 shards; NaN when either end is missing or zero.
 */
export function growth(byShards: ReadonlyMap<number, number>): { from: number; to: number; factor: number } {
  const sizes = [...byShards.keys()].sort((a, b) => a - b);
  const from = sizes[0] ?? Number.NaN;
  const to = sizes[sizes.length - 1] ?? Number.NaN;
  const a = byShards.get(from);
  const b = byShards.get(to);
  return { from, to, factor: a !== undefined && b !== undefined && a > 0 ? b / a : Number.NaN };
}
