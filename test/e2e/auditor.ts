/**
 * The end-to-end auditor: decides from the outside whether a run of the sharded checksum
 * controller kept the protocol's promises. Pure: text and records in, a report out; no I/O, no
 * clock. The e2e test and `npm run demo` feed it the shard processes' reconcile log lines, the
 * history of writes to the Secrets (recorded by the driver) and the final Secrets and ConfigMaps.
 *
 * Checks, each reported as a {@link Violation}:
 *
 * - **exclusivity**: no object was reconciled by two different OS processes at overlapping times
 *   (`double-reconcile`), and, stronger, no *slot* was (`slot-overlap`: two processes reconciling
 *   different objects of the same slot at once). Intervals are `[start, end]` of the log lines;
 *   touching ends (`a.end == b.start`) do not overlap. Reconciles of one process never count
 *   against each other: its work queue runs a key once at a time, and the protocol's unit is the
 *   process holding the Lease.
 * - **hashing**: every logged slot equals the slot of the object's key (DESIGN "Which key").
 * - **liveness**: every object was reconciled after its last change: some reconcile with outcome
 *   `ok` read a resourceVersion ≥ the one the last write returned
 *   (`not-reconciled-after-last-change`). Failed reconciles do not count here, but do count for
 *   exclusivity (they may have written).
 * - **final state**: every Secret has its ConfigMap `<secret>-checksum`, controlled by the Secret,
 *   with `data.checksum` = the expected checksum of the Secret's data.
 * - **malformed** log lines: a line that says `"event":"reconcile"` but lacks a field.
 *
 * Pause, as reported in {@link AuditStats.pause}: for a write W of an object, the time from W
 * being *sent* (the driver's clock, just before the request) to the *start* of the first
 * reconcile of that object that read a resourceVersion ≥ W's and succeeded. It is how long the object had a
 * change nobody had started to act on: covers queueing, handoffs, fencing and takeovers. A write
 * overtaken by a later one before any reconcile counts until a reconcile reads the later one.
 */
import { compareResourceVersions as orderResourceVersions } from "../../src/api/resource-version.js";
import { keySlot, objectKey } from "../../src/slots/index.js";

/** One reconcile, as logged by a shard process (one JSON line on its stdout). */
export interface ReconcileRecord {
  /** Name the harness gave the OS process that logged the line (e.g. `shard-0`, `shard-0#2`). */
  process: string;
  /** Shard (Lease) name. */
  shard: string;
  /** Lease holderIdentity of the incarnation that ran it. */
  identity: string;
  /** Object key as logged (`namespace/name` or `group/Kind/namespace/name`). */
  key: string;
  slot: number;
  /** Assignment generation the shard had applied when it started. */
  generation: number;
  /** Epoch milliseconds. */
  start: number;
  /** Epoch milliseconds. */
  end: number;
  /** resourceVersion of the Secret the reconcile read ("" if it saw the Secret deleted). */
  resourceVersion: string;
  /** `ok`, or `requeue`, `error`, `aborted`: only `ok` counts as having acted on a change. */
  outcome: string;
}

/** One write of a Secret by the test driver. */
export interface ObjectWrite {
  /** `namespace/name`. */
  key: string;
  op: "create" | "update";
  /** Epoch ms just before the request was sent. */
  sentAt: number;
  /** Epoch ms when the answer arrived. */
  doneAt: number;
  /** resourceVersion returned by the API server. */
  resourceVersion: string;
}

/** A Secret as it is at the end of the run. */
export interface FinalSecret {
  namespace: string;
  name: string;
  uid?: string | undefined;
  /** `data` as the API returns it (base64 values). */
  data: Record<string, string>;
}

/** A ConfigMap as it is at the end of the run. */
export interface FinalConfigMap {
  namespace: string;
  name: string;
  data: Record<string, string>;
  ownerReferences?: ReadonlyArray<{ kind: string; name: string; uid?: string; controller?: boolean }>;
}

/** One observation of the SlotMap status (optional input, for statistics only). */
export interface SlotMapObservation {
  /** Epoch ms. */
  at: number;
  generation: number;
  migrations: ReadonlyArray<{ from: string; to: string; generation: number }>;
}

/** Everything the auditor looks at. */
export interface AuditInput {
  reconciles: readonly ReconcileRecord[];
  writes: readonly ObjectWrite[];
  /** Final state; leave out both to skip the final-state check. */
  finalSecrets?: readonly FinalSecret[];
  finalConfigMaps?: readonly FinalConfigMap[];
  /** Malformed lines found while parsing (see {@link parseReconcileLog}). */
  malformed?: readonly MalformedLine[];
  slotMapHistory?: readonly SlotMapObservation[];
  /** Restricts the liveness and final-state checks to these namespaces (default: every namespace written). */
  namespaces?: readonly string[];
  /** Expected checksum of a Secret's `data` (base64 values), e.g. `secretChecksum` of ./checksum.ts. */
  checksumOf: (data: Record<string, string>) => string;
  /** Name of the ConfigMap of a Secret; default `<secret>-checksum`. */
  configMapNameOf?: (secretName: string) => string;
}

/** A reconcile as shown in a violation. */
export type ReconcileRef = Pick<
  ReconcileRecord,
  "process" | "shard" | "identity" | "key" | "slot" | "generation" | "start" | "end"
>;

/** A line of a log that claims to be a reconcile record but is not a valid one. */
export interface MalformedLine {
  process: string;
  line: number;
  problem: string;
  text: string;
}

/** Something the run must not have done. */
export type Violation =
  | { kind: "double-reconcile"; key: string; slot: number; a: ReconcileRef; b: ReconcileRef }
  | { kind: "slot-overlap"; slot: number; a: ReconcileRef; b: ReconcileRef }
  | { kind: "wrong-slot"; key: string; logged: number; expected: number; reconcile: ReconcileRef }
  | {
      kind: "not-reconciled-after-last-change";
      key: string;
      lastWrite: ObjectWrite;
      lastReconcile: ReconcileRef | undefined;
      lastResourceVersion: string | undefined;
    }
  | { kind: "missing-configmap"; key: string; configMap: string }
  | { kind: "wrong-checksum"; key: string; configMap: string; expected: string; actual: string | undefined }
  | { kind: "configmap-not-controlled"; key: string; configMap: string; owners: string }
  | { kind: "malformed-log-line"; process: string; line: number; problem: string; text: string };

/** Longest pause and distribution (see the module comment for the definition). */
export interface PauseStats {
  /** Writes whose pause could be measured. */
  count: number;
  maxMs: number;
  /** The write with the longest pause. */
  max: { key: string; op: ObjectWrite["op"]; sentAt: number; reconcileStart: number } | undefined;
  p50Ms: number;
  p99Ms: number;
}

/** Figures of a run. */
export interface AuditStats {
  reconciles: number;
  /** Reconciles per shard name. */
  perShard: Record<string, number>;
  /** Reconciles per OS process (harness name). */
  perProcess: Record<string, number>;
  /** Reconciles per outcome (`ok`, `error`, `requeue`, `aborted`). */
  outcomes: Record<string, number>;
  /** Distinct Lease holder identities seen (incarnations). */
  identities: number;
  /** Objects with at least one reconcile. */
  objectsReconciled: number;
  /** Distinct assignment generations seen in reconcile lines. */
  generationsInLogs: number;
  /**
   * Handoffs seen in the logs: per slot, how often the process reconciling it changed from one
   * reconcile to the next (in start order), summed over slots.
   */
  slotOwnerChanges: number;
  /** Slots whose owner changed at least once. */
  slotsHandedOff: number;
  /** From the SlotMap history, when given: distinct assignment generations observed. */
  generationsObserved: number;
  /** From the SlotMap history, when given: distinct migrations (from, to, generation) observed. */
  migrationsObserved: number;
  writes: number;
  /** Pause over every write. */
  pause: PauseStats;
  /** Pause over updates only (leaves out the initial backlog of creations). */
  updatePause: PauseStats;
  /** Pairs of overlapping reconciles of the same object by different processes. */
  doubleReconciles: number;
  /** Pairs of overlapping reconciles of the same slot (different objects) by different processes. */
  slotOverlaps: number;
  /** Secrets checked in the final state. */
  secrets: number;
  /** Secrets whose ConfigMap is right. */
  converged: number;
}

/** What {@link audit} returns. */
export interface AuditReport {
  ok: boolean;
  violations: Violation[];
  stats: AuditStats;
}

/** The fields of a reconcile line, with their expected types. */
const FIELDS = {
  shard: "string",
  identity: "string",
  key: "string",
  slot: "number",
  generation: "number",
  start: "time",
  end: "time",
} as const;

/** Epoch ms of a logged time: a number of ms, or an RFC 3339 string. */
function timeOf(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string") {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/**
 * Parses the stdout of one shard process: JSON lines, of which those with `"event":"reconcile"`
 * are reconcile records; other lines (logs, non-JSON) are ignored. A reconcile line missing a
 * field, or with a field of the wrong type, is returned in `malformed`, naming the field; a
 * missing `identity` is one too (a reconcile without a Lease holder must not happen).
 * `resourceVersion` may be absent (the object was seen deleted); `outcome` defaults to `ok`.
 */
export function parseReconcileLog(
  text: string,
  process: string,
): { records: ReconcileRecord[]; malformed: MalformedLine[] } {
  const records: ReconcileRecord[] = [];
  const malformed: MalformedLine[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    // Cheap filter first: most lines are logs; a torn last line (process killed) is not JSON.
    if (!line.startsWith("{") || !line.includes('"reconcile"')) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) return; // the last line may be cut short by SIGKILL
      malformed.push({ process, line: i + 1, problem: "not valid JSON", text: line.slice(0, 300) });
      return;
    }
    if (typeof obj !== "object" || obj === null) return;
    const o = obj as Record<string, unknown>;
    if (o.event !== "reconcile") return;
    for (const [field, type] of Object.entries(FIELDS)) {
      const v = o[field];
      const ok =
        type === "time"
          ? timeOf(v) !== undefined
          : type === "number"
            ? typeof v === "number" && Number.isFinite(v)
            : typeof v === type;
      if (!ok) {
        malformed.push({
          process,
          line: i + 1,
          problem: `field ${field}: ${JSON.stringify(v) ?? "missing"}: must be ${type === "time" ? "epoch ms or an RFC 3339 time" : `a ${type}`}`,
          text: line.slice(0, 300),
        });
        return;
      }
    }
    records.push({
      process,
      shard: o.shard as string,
      identity: o.identity as string,
      key: o.key as string,
      slot: o.slot as number,
      generation: o.generation as number,
      start: timeOf(o.start)!,
      end: timeOf(o.end)!,
      // Absent when the reconcile saw the object deleted.
      resourceVersion: typeof o.resourceVersion === "string" ? o.resourceVersion : "",
      outcome: typeof o.outcome === "string" ? o.outcome : "ok",
    });
  });
  return { records, malformed };
}

/**
 * `namespace/name` of a logged key: `namespace/name`, or a DESIGN key `group/Kind/namespace/name`.
 * Undefined for anything else.
 */
export function objectName(key: string): { namespace: string; name: string } | undefined {
  const parts = key.split("/");
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  if (parts.length === 4 && parts[2] && parts[3]) return { namespace: parts[2], name: parts[3] };
  return undefined;
}

/** The slot of a Secret (core group, kind Secret), as DESIGN defines it. */
export function secretSlot(namespace: string, name: string): number {
  return keySlot(objectKey("", "Secret", namespace, name));
}

/**
 * Compares two resourceVersions: numerically when both are decimal (etcd revisions, as every
 * Kubernetes API server backed by etcd returns them), else only equality is known (0 or NaN).
 */
export function compareResourceVersions(a: string, b: string): number {
  return orderResourceVersions(a, b) ?? (a === b ? 0 : Number.NaN);
}

/** Appends `value` to the list of `key` in `map`. */
function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function ref(r: ReconcileRecord): ReconcileRef {
  return {
    process: r.process,
    shard: r.shard,
    identity: r.identity,
    key: r.key,
    slot: r.slot,
    generation: r.generation,
    start: r.start,
    end: r.end,
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function pauseStats(items: ReadonlyArray<{ w: ObjectWrite; start: number }>): PauseStats {
  const pauses = items.map((x) => x.start - x.w.sentAt).sort((a, b) => a - b);
  let max: PauseStats["max"];
  let maxMs = 0;
  for (const x of items) {
    const p = x.start - x.w.sentAt;
    if (max === undefined || p > maxMs) {
      maxMs = p;
      max = { key: x.w.key, op: x.w.op, sentAt: x.w.sentAt, reconcileStart: x.start };
    }
  }
  return { count: items.length, maxMs, max, p50Ms: percentile(pauses, 50), p99Ms: percentile(pauses, 99) };
}

/** Overlap checks: per slot, each reconcile against the still-open ones of other processes. */
function overlaps(
  records: readonly ReconcileRecord[],
  violations: Violation[],
): { double: number; slot: number } {
  const bySlot = new Map<number, ReconcileRecord[]>();
  for (const r of records) {
    pushTo(bySlot, r.slot, r);
  }
  let double = 0;
  let slot = 0;
  for (const [s, list] of bySlot) {
    list.sort((a, b) => a.start - b.start || a.end - b.end);
    const open: ReconcileRecord[] = [];
    for (const r of list) {
      // Drop intervals that ended at or before this start: touching ends do not overlap.
      for (let i = open.length - 1; i >= 0; i--) if (open[i]!.end <= r.start) open.splice(i, 1);
      for (const o of open) {
        if (o.process === r.process) continue;
        if (o.key === r.key) {
          double++;
          violations.push({ kind: "double-reconcile", key: r.key, slot: s, a: ref(o), b: ref(r) });
        } else {
          slot++;
          violations.push({ kind: "slot-overlap", slot: s, a: ref(o), b: ref(r) });
        }
      }
      open.push(r);
    }
  }
  return { double, slot };
}

/** Runs every check; see the module comment. */
export function audit(input: AuditInput): AuditReport {
  const violations: Violation[] = [];
  for (const m of input.malformed ?? []) violations.push({ kind: "malformed-log-line", ...m });

  // Normalise keys to namespace/name; a key that is neither form still takes part in the
  // overlap checks under its logged text.
  const records = input.reconciles.map((r) => {
    const n = objectName(r.key);
    return n ? { ...r, key: `${n.namespace}/${n.name}` } : r;
  });

  for (const r of records) {
    const n = objectName(r.key);
    if (!n) continue;
    const expected = secretSlot(n.namespace, n.name);
    if (expected !== r.slot) {
      violations.push({ kind: "wrong-slot", key: r.key, logged: r.slot, expected, reconcile: ref(r) });
    }
  }

  const { double, slot: slotOverlaps } = overlaps(records, violations);

  // Reconciles per object, in start order.
  const byKey = new Map<string, ReconcileRecord[]>();
  for (const r of records) {
    pushTo(byKey, r.key, r);
  }
  for (const list of byKey.values()) list.sort((a, b) => a.start - b.start);

  const namespaces = input.namespaces ? new Set(input.namespaces) : undefined;
  const inScope = (key: string) => {
    const n = objectName(key);
    return n !== undefined && (namespaces === undefined || namespaces.has(n.namespace));
  };

  // Liveness and pauses.
  const writesByKey = new Map<string, ObjectWrite[]>();
  for (const w of input.writes) {
    if (!inScope(w.key)) continue;
    pushTo(writesByKey, w.key, w);
  }
  const measured: Array<{ w: ObjectWrite; start: number }> = [];
  for (const [key, writes] of writesByKey) {
    writes.sort((a, b) => a.sentAt - b.sentAt);
    // Only completed reconciles act on a change; failed ones are retried.
    const recs = (byKey.get(key) ?? []).filter((x) => x.outcome === "ok");
    for (const w of writes) {
      // First reconcile (by start) that saw this write or a later one.
      const r = recs.find(
        (x) => x.start >= w.sentAt && compareResourceVersions(x.resourceVersion, w.resourceVersion) >= 0,
      );
      if (r) measured.push({ w, start: r.start });
    }
    const last = writes[writes.length - 1]!;
    const seen = recs.some((x) => compareResourceVersions(x.resourceVersion, last.resourceVersion) >= 0);
    if (!seen) {
      const all = byKey.get(key) ?? [];
      const lastRec = all[all.length - 1];
      violations.push({
        kind: "not-reconciled-after-last-change",
        key,
        lastWrite: last,
        lastReconcile: lastRec ? ref(lastRec) : undefined,
        lastResourceVersion: lastRec?.resourceVersion,
      });
    }
  }

  // Final state.
  let secrets = 0;
  let converged = 0;
  if (input.finalSecrets) {
    const cmName = input.configMapNameOf ?? ((s: string) => `${s}-checksum`);
    const cms = new Map((input.finalConfigMaps ?? []).map((c) => [`${c.namespace}/${c.name}`, c]));
    for (const s of input.finalSecrets) {
      const key = `${s.namespace}/${s.name}`;
      if (namespaces !== undefined && !namespaces.has(s.namespace)) continue;
      secrets++;
      const name = cmName(s.name);
      const cm = cms.get(`${s.namespace}/${name}`);
      if (!cm) {
        violations.push({ kind: "missing-configmap", key, configMap: name });
        continue;
      }
      let ok = true;
      const expected = input.checksumOf(s.data);
      const actual = cm.data.checksum;
      if (actual !== expected) {
        ok = false;
        violations.push({ kind: "wrong-checksum", key, configMap: name, expected, actual });
      }
      const owners = cm.ownerReferences ?? [];
      const controller = owners.find((o) => o.controller === true);
      const controlled =
        controller !== undefined &&
        controller.kind === "Secret" &&
        controller.name === s.name &&
        (s.uid === undefined || controller.uid === undefined || controller.uid === s.uid);
      if (!controlled) {
        ok = false;
        violations.push({
          kind: "configmap-not-controlled",
          key,
          configMap: name,
          owners: JSON.stringify(owners),
        });
      }
      if (ok) converged++;
    }
  }

  // Statistics.
  const perShard: Record<string, number> = {};
  const perProcess: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  const identities = new Set<string>();
  const generations = new Set<number>();
  for (const r of records) {
    perShard[r.shard] = (perShard[r.shard] ?? 0) + 1;
    perProcess[r.process] = (perProcess[r.process] ?? 0) + 1;
    outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    identities.add(r.identity);
    generations.add(r.generation);
  }
  let slotOwnerChanges = 0;
  let slotsHandedOff = 0;
  const bySlot = new Map<number, ReconcileRecord[]>();
  for (const r of records) {
    pushTo(bySlot, r.slot, r);
  }
  for (const list of bySlot.values()) {
    list.sort((a, b) => a.start - b.start);
    let changes = 0;
    for (let i = 1; i < list.length; i++) if (list[i]!.process !== list[i - 1]!.process) changes++;
    slotOwnerChanges += changes;
    if (changes > 0) slotsHandedOff++;
  }
  const history = input.slotMapHistory ?? [];
  const migrations = new Set<string>();
  for (const h of history) for (const m of h.migrations) migrations.add(`${m.from}>${m.to}@${m.generation}`);

  const stats: AuditStats = {
    reconciles: records.length,
    perShard,
    perProcess,
    outcomes,
    identities: identities.size,
    objectsReconciled: byKey.size,
    generationsInLogs: generations.size,
    slotOwnerChanges,
    slotsHandedOff,
    generationsObserved: new Set(history.map((h) => h.generation)).size,
    migrationsObserved: migrations.size,
    writes: input.writes.length,
    pause: pauseStats(measured),
    updatePause: pauseStats(measured.filter((x) => x.w.op === "update")),
    doubleReconciles: double,
    slotOverlaps,
    secrets,
    converged,
  };
  return { ok: violations.length === 0, violations, stats };
}

/** One line per violation, for test failures and the demo (at most `limit`, then a count). */
export function formatViolations(violations: readonly Violation[], limit = 20): string {
  const t = (ms: number) => new Date(ms).toISOString().slice(11, 23);
  const r = (x: ReconcileRef) =>
    `${x.process} (${x.identity}, gen ${x.generation}) ${x.key} [${t(x.start)}, ${t(x.end)}]`;
  const lines = violations.slice(0, limit).map((v) => {
    switch (v.kind) {
      case "double-reconcile":
        return `double reconcile of ${v.key} (slot ${v.slot}): ${r(v.a)} and ${r(v.b)}`;
      case "slot-overlap":
        return `slot ${v.slot} reconciled by two processes at once: ${r(v.a)} and ${r(v.b)}`;
      case "wrong-slot":
        return `${v.key} logged with slot ${v.logged}, its slot is ${v.expected}: ${r(v.reconcile)}`;
      case "not-reconciled-after-last-change":
        return `${v.key} not reconciled after its last ${v.lastWrite.op} (resourceVersion ${v.lastWrite.resourceVersion} at ${t(v.lastWrite.sentAt)}); last reconcile ${v.lastReconcile ? `${r(v.lastReconcile)} read ${v.lastResourceVersion}` : "never"}`;
      case "missing-configmap":
        return `${v.key}: ConfigMap ${v.configMap} missing`;
      case "wrong-checksum":
        return `${v.key}: ConfigMap ${v.configMap} has checksum ${JSON.stringify(v.actual)}, expected ${v.expected}`;
      case "configmap-not-controlled":
        return `${v.key}: ConfigMap ${v.configMap} is not controlled by the Secret (ownerReferences ${v.owners})`;
      case "malformed-log-line":
        return `${v.process} line ${v.line}: ${v.problem}: ${v.text}`;
    }
    return "";
  });
  if (violations.length > limit) lines.push(`... and ${violations.length - limit} more`);
  return lines.join("\n");
}

/** The summary line of a run: converged objects and double reconciles (the demo's last line). */
export function summaryLine(report: AuditReport, durationMs: number): string {
  const s = report.stats;
  return (
    `${report.ok ? "PASS" : "FAIL"}: ${s.converged}/${s.secrets} objects converged, ` +
    `${s.doubleReconciles} double reconciles, ${s.slotOverlaps} slot overlaps, ` +
    `${report.violations.length} violations; ${s.reconciles} reconciles, ` +
    `${s.slotOwnerChanges} slot handoffs seen, ${s.migrationsObserved} migrations, ` +
    `longest pause ${(s.pause.maxMs / 1000).toFixed(1)} s (updates ${(s.updatePause.maxMs / 1000).toFixed(1)} s), ` +
    `${(durationMs / 1000).toFixed(0)} s`
  );
}
