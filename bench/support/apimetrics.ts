/**
 * API writes as counted by the API server itself: `apiserver_request_total` from its `/metrics`,
 * diffed between two scrapes. The benchmark's write figures come from here, not from counters in
 * the processes under test, so a write nobody meant to make is still counted.
 */

/** Verbs of `apiserver_request_total` that change state. */
export const WRITE_VERBS: ReadonlySet<string> = new Set([
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "DELETECOLLECTION",
  "APPLY",
  "UPDATE",
  "CREATE",
]);

/** One sample of `apiserver_request_total`. */
export interface RequestSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/**
 * Parses the samples of one metric (`name{labels} value`) out of a Prometheus text exposition.
 * Other metrics, comments and malformed lines are skipped.
 */
export function parseSamples(text: string, name: string): RequestSample[] {
  const out: RequestSample[] = [];
  const prefix = `${name}{`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const m = /^[^{]+\{(.*)\}\s+(\S+)(?:\s+-?\d+)?$/.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of m[1]!.matchAll(LABEL)) labels[l[1]!] = unescapeLabel(l[2]!);
    const value = Number(m[2]);
    if (!Number.isFinite(value)) continue;
    out.push({ labels, value });
  }
  return out;
}

/** The `apiserver_request_total` samples of a `/metrics` text. */
export function parseRequestTotals(text: string): RequestSample[] {
  return parseSamples(text, "apiserver_request_total");
}

/** Sum of a metric's samples by the value of one label (e.g. watch events by `kind`). */
export function sumBy(samples: readonly RequestSample[], label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const k = s.labels[label] ?? "";
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

/** What one scrape of the API server's `/metrics` yields for the benchmark. */
export interface ApiSnapshot {
  /** Wall-clock time of the scrape, ms. */
  readonly t: number;
  readonly writes: WritesByResource;
  /**
   * Watch events the watch cache delivered, summed over watchers, by resource
   * (`apiserver_watch_cache_events_dispatched_total`: one per event per watcher whose selector
   * matched, so a label-selected watch counts only its own objects).
   */
  readonly watchEvents: Record<string, number>;
  /** LIST requests served, by resource (each page of a paged list counts once). */
  readonly lists: Record<string, number>;
  /** Objects returned by LISTs, by resource (see {@link listedObjects}). */
  readonly listedObjects: Record<string, number>;
}

/** Builds an {@link ApiSnapshot} from a `/metrics` text. */
export function snapshotFromMetrics(text: string, t: number): ApiSnapshot {
  const requests = parseRequestTotals(text);
  return {
    t,
    writes: writesByResource(requests),
    watchEvents: sumBy(parseSamples(text, "apiserver_watch_cache_events_dispatched_total"), "resource"),
    lists: sumBy(
      requests.filter((s) => s.labels.verb === "LIST"),
      "resource",
    ),
    listedObjects: listedObjects(text),
  };
}

/**
 * Objects returned by LISTs, by resource: `apiserver_storage_list_returned_objects_total`, summed
 * over its `storage` label (`watchcache` or `etcd`).
 */
export function listedObjects(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of parseSamples(text, "apiserver_storage_list_returned_objects_total")) {
    const r = s.labels.resource ?? "";
    if (r !== "") out[r] = (out[r] ?? 0) + s.value;
  }
  return out;
}

/** `after − before` of a per-key counter map (keys missing before count as 0). */
export function diffCounts(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/**
 * Name of a resource for the breakdown: `leases`, `slotmaps/status`, `secrets`, …; failed
 * requests get their code appended (`configmaps 409`): they count as writes too, the API server
 * did the work of admitting them.
 */
function resourceName(labels: Readonly<Record<string, string>>): string {
  const r = labels.resource ?? "";
  const sub = labels.subresource ?? "";
  const code = labels.code ?? "";
  const name = sub ? `${r}/${sub}` : r || "(none)";
  return code.startsWith("2") || code === "" ? name : `${name} ${code}`;
}

/** Write requests by resource (`resource[/subresource]`, plus the code if not 2xx), summed over verbs and scopes. */
export type WritesByResource = Record<string, number>;

/** Sums write samples by resource. */
export function writesByResource(samples: readonly RequestSample[]): WritesByResource {
  const out: WritesByResource = {};
  for (const s of samples) {
    if (!WRITE_VERBS.has(s.labels.verb ?? "")) continue;
    const key = resourceName(s.labels);
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/**
 * `after − before` per resource, leaving out resources that did not change. A counter that went
 * down (API server restart) is an error: the diff would be meaningless.
 */
export function diffWrites(before: WritesByResource, after: WritesByResource): WritesByResource {
  const out: WritesByResource = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d < 0)
      throw new Error(`apiserver_request_total for ${k} went down (${before[k]} → ${v}): restarted?`);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** Sum over resources. */
export function totalWrites(w: WritesByResource): number {
  let n = 0;
  for (const v of Object.values(w)) n += v;
  return n;
}

/** `leases: 12, slotmaps/status: 3` sorted by count, for notes. */
export function formatWrites(w: WritesByResource): string {
  const entries = Object.entries(w).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.length === 0 ? "none" : entries.map(([k, v]) => `${k} ${v}`).join(", ");
}
