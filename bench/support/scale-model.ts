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
import { parseSamples } from "./apimetrics.js";

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

/** The figures of one join or leave window at one shard count. */
export interface WindowFigures {
  readonly kind: "join" | "leave";
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
  /** Watch events and bytes received by the N watchers (client side). */
  readonly watch: WatchTotals;
  /** The same traffic as the API server counts it, over all SlotMap watchers (N + 2). */
  readonly apiWatch: ApiWatchCounters;
  readonly leaseWrites: number;
  readonly apiserverCpuSeconds: number;
  readonly apiserverRssBytes: number;
  readonly apiserverRssMaxBytes: number;
  readonly coordinatorCpuSeconds: number;
  readonly coordinatorRssBytes: number;
  readonly coordinatorRssMaxBytes: number;
  /** Every status write in the window, in order, with its cause. */
  readonly writes: ReadonlyArray<StatusWriteRecord & { cause: string }>;
  /** Per new generation in the window: how its acks arrived. */
  readonly acks: readonly GenerationAcks[];
}

/** Figures computed from a window: sizes per event, ratios. */
export interface DerivedFigures {
  /** Bytes per watch event, client side (NaN when no events). */
  readonly eventBytes: number;
  /** eventBytes ÷ statusBytesMean (each event carries one of the window's statuses). */
  readonly eventOverStatus: number;
  /** Bytes delivered to all N watchers in the window. */
  readonly bytesAllWatchers: number;
  /** Bytes all N watchers receive for one status write (eventBytes × N). */
  readonly bytesPerWrite: number;
}

/** Derives per-event size and ratios from a window's raw figures. */
export function derive(w: Pick<WindowFigures, "watch" | "statusBytesMean" | "watchers">): DerivedFigures {
  const eventBytes = w.watch.events > 0 ? w.watch.bytes / w.watch.events : Number.NaN;
  return {
    eventBytes,
    eventOverStatus: w.statusBytesMean > 0 ? eventBytes / w.statusBytesMean : Number.NaN,
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
