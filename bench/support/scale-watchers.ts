/**
 * Child process of the scale benchmark: N watchers, one per emulated shard, each watch its own
 * request on its own HTTP/1.1 connection, as N shard processes would hold them. The measured
 * quantity is the API server's fan-out, so the watches are real; this process counts what arrives
 * (bytes of each event stream and newline-delimited events, per watcher and stream).
 *
 * Two modes ({@link WatchMode}):
 * - `projection`, what a shard watches since per-shard projections (src/client/membership.ts):
 *   its own `SlotMapShard` (`fieldSelector=metadata.name=<projection>` in its Lease's namespace),
 *   and the SlotMap metadata-only (`Accept: …;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`) for
 *   its uid, deletion and `metadata.generation`; when that generation moves, one GET of the whole
 *   SlotMap (the spec), counted as the `spec` stream. These events are small and parsed.
 * - `slotmap`, what a shard watched before: the whole SlotMap (`fieldSelector=metadata.name=…`).
 *   Its events are large and never parsed (only the resourceVersion at the head of each event is
 *   read, to resume a watch the server ended).
 *
 * Config (BENCH_CHILD_CONFIG): {@link WatchersConfig}. IPC: sends `{type: "ready", t}` once every
 * watch is open; answers `{type: "stats", id}` with a {@link WatcherTally}.
 */
import type { RequestOptions as HttpsRequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { METADATA_ACCEPT } from "../../src/kube/http.js";
import type { ParentMessage } from "./ipc.js";
import { nowMs } from "./ipc.js";
import type { StreamCounters, StreamKind, StreamTally, WatchMode } from "./scale-model.js";

/** What the harness passes to the watcher process. */
export interface WatchersConfig {
  readonly kubeconfig: string;
  readonly slotMap: string;
  readonly mode: WatchMode;
  readonly watchers: number;
  /** Watch the SlotMap from this resourceVersion (the current one: no initial ADDED event). */
  readonly resourceVersion: string;
  /** Projection mode: each watcher's projection (namespace, name), in watcher order. */
  readonly projections?: ReadonlyArray<{ readonly namespace: string; readonly name: string }>;
  /** Projection mode: watch the projections from this resourceVersion (one the API server served). */
  readonly projectionResourceVersion?: string;
  /** Projection mode: the SlotMap's `metadata.generation` when the watches open. */
  readonly specGeneration?: number;
  /** Send `Accept-Encoding: gzip` as fetch-based clients (KubeHttp) do. */
  readonly acceptGzip: boolean;
}

/** Per-stream, per-watcher counters (arrays in watcher order). */
export interface WatcherTally {
  readonly type: "tally";
  readonly id: number;
  readonly streams: StreamTally;
  /** `content-encoding` of the watch responses seen (`identity` when absent). */
  readonly encodings: Record<string, number>;
  readonly errors: number;
}

interface Stream extends StreamCounters {
  readonly kind: Exclude<StreamKind, "spec">;
  readonly path: string;
  readonly fieldSelector: string;
  readonly accept: string;
  /** resourceVersion of the last event seen, to resume from after the server ends the watch. */
  resourceVersion: string;
  /** The chunk just received ended a line: the next one starts an event. */
  atLineStart: boolean;
  /** Small events, parsed (projection mode); a whole SlotMap's events are only counted. */
  readonly parsed: boolean;
  /** Parsed streams: the start of the current line. */
  partial: Buffer[];
  /** Called with each complete event of a parsed stream. */
  readonly onEvent: ((event: WatchEvent) => void) | undefined;
}

interface WatchEvent {
  type?: string;
  object?: { metadata?: { resourceVersion?: string; generation?: number } };
}

const RV = /"resourceVersion":"(\d+)"/;
const zero = (): StreamCounters => ({ events: 0, bytes: 0, reconnects: 0 });

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BENCH_CHILD_CONFIG ?? "{}") as WatchersConfig;
  const kc = new KubeConfig();
  kc.loadFromFile(cfg.kubeconfig);
  const https: HttpsRequestOptions = {};
  await kc.applyToHTTPSOptions(https);
  const baseHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(https.headers ?? {}))
    if (v !== undefined) baseHeaders[k] = Array.isArray(v) ? v.join(", ") : String(v);
  if (cfg.acceptGzip) baseHeaders["Accept-Encoding"] = "gzip";
  const agent = new Agent({
    allowH2: false,
    // One connection per watch: nothing else uses this pool.
    connections: null,
    connect: {
      ...(https.ca === undefined ? {} : { ca: https.ca as string | Buffer }),
      ...(https.cert === undefined ? {} : { cert: https.cert as string | Buffer }),
      ...(https.key === undefined ? {} : { key: https.key as string | Buffer }),
      rejectUnauthorized: https.rejectUnauthorized !== false,
    },
  });
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error(`${cfg.kubeconfig}: no current cluster`);
  const slotMaps = "/apis/slotmap.dev/v1alpha1/slotmaps";
  const bySlotMapName = `metadata.name=${cfg.slotMap}`;
  const encodings: Record<string, number> = {};
  let errors = 0;
  let stopping = false;

  const newStream = (
    kind: Stream["kind"],
    path: string,
    fieldSelector: string,
    accept: string,
    resourceVersion: string,
    onEvent?: (event: WatchEvent) => void,
  ): Stream => ({
    kind,
    path,
    fieldSelector,
    accept,
    resourceVersion,
    atLineStart: true,
    parsed: kind !== "slotmap",
    partial: [],
    onEvent,
    ...zero(),
  });

  /** One GET of the whole SlotMap, counted into `c`. */
  const getSpec = async (c: StreamCounters): Promise<void> => {
    try {
      const res = await request(new URL(`${server}${slotMaps}/${cfg.slotMap}`), {
        method: "GET",
        headers: { ...baseHeaders, Accept: "application/json" },
        dispatcher: agent,
      });
      for await (const chunk of res.body) c.bytes += (chunk as Buffer).length;
      c.events++;
    } catch (err) {
      errors++;
      console.error(`spec GET failed: ${String(err)}`);
    }
  };

  // Streams per watcher, and the spec GETs of projection mode.
  const streams: Stream[] = [];
  const tallies: Partial<Record<StreamKind, StreamCounters[]>> = {};
  if (cfg.mode === "slotmap") {
    const st: StreamCounters[] = [];
    tallies.slotmap = st;
    for (let i = 0; i < cfg.watchers; i++) {
      const s = newStream("slotmap", slotMaps, bySlotMapName, "application/json", cfg.resourceVersion);
      streams.push(s);
      st.push(s);
    }
  } else {
    const projections = cfg.projections ?? [];
    if (projections.length !== cfg.watchers)
      throw new Error(`projection mode: ${projections.length} projections for ${cfg.watchers} watchers`);
    const pt: StreamCounters[] = [];
    const mt: StreamCounters[] = [];
    const st: StreamCounters[] = [];
    Object.assign(tallies, { projection: pt, metadata: mt, spec: st });
    for (let i = 0; i < cfg.watchers; i++) {
      const p = projections[i]!;
      const spec = zero();
      let generation = cfg.specGeneration ?? 0;
      const proj = newStream(
        "projection",
        `/apis/slotmap.dev/v1alpha1/namespaces/${p.namespace}/slotmapshards`,
        `metadata.name=${p.name}`,
        "application/json",
        cfg.projectionResourceVersion ?? cfg.resourceVersion,
      );
      const meta = newStream(
        "metadata",
        slotMaps,
        bySlotMapName,
        METADATA_ACCEPT,
        cfg.resourceVersion,
        (e) => {
          const g = e.object?.metadata?.generation;
          if (e.type === "MODIFIED" && typeof g === "number" && g > generation) {
            generation = g;
            // The spec moved: the shard reads the whole SlotMap once.
            void getSpec(spec);
          }
        },
      );
      streams.push(proj, meta);
      pt.push(proj);
      mt.push(meta);
      st.push(spec);
    }
  }

  /** Feeds a chunk of a parsed stream: complete lines are events. */
  const parseChunk = (s: Stream, chunk: Buffer): void => {
    let start = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
      s.events++;
      s.partial.push(chunk.subarray(start, i));
      const line = Buffer.concat(s.partial).toString("utf8");
      s.partial = [];
      start = i + 1;
      try {
        const e = JSON.parse(line) as WatchEvent;
        const rv = e.object?.metadata?.resourceVersion;
        if (rv !== undefined && e.type !== "ERROR") s.resourceVersion = rv;
        if (e.type === "ERROR") {
          errors++;
          console.error(`${s.kind} watch ERROR event: ${line.slice(0, 300)}`);
        }
        s.onEvent?.(e);
      } catch (err) {
        errors++;
        console.error(`${s.kind} watch: unparsable event: ${String(err)}`);
      }
    }
    if (start < chunk.length) s.partial.push(chunk.subarray(start));
  };

  /** Opens stream `s`; resolves once the response headers arrived. Re-opens it when it ends. */
  const open = async (s: Stream): Promise<void> => {
    const url = new URL(`${server}${s.path}`);
    url.searchParams.set("watch", "true");
    url.searchParams.set("fieldSelector", s.fieldSelector);
    url.searchParams.set("resourceVersion", s.resourceVersion);
    url.searchParams.set("timeoutSeconds", "3600");
    const res = await request(url, {
      method: "GET",
      headers: { ...baseHeaders, Accept: s.accept },
      dispatcher: agent,
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new Error(`${s.kind} watch: ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    const enc = String(res.headers["content-encoding"] ?? "identity");
    encodings[enc] = (encodings[enc] ?? 0) + 1;
    res.body.on("data", (chunk: Buffer) => {
      s.bytes += chunk.length;
      if (s.parsed) {
        parseChunk(s, chunk);
        return;
      }
      if (s.atLineStart) {
        // The head of an event: metadata.resourceVersion comes before managedFields and status.
        const m = RV.exec(chunk.subarray(0, 4096).toString("latin1"));
        if (m) s.resourceVersion = m[1]!;
      }
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) s.events++;
      s.atLineStart = chunk[chunk.length - 1] === 10;
    });
    const reopen = () => {
      if (stopping) return;
      s.reconnects++;
      s.atLineStart = true;
      s.partial = [];
      open(s).catch((err: unknown) => {
        errors++;
        console.error(`watch re-open failed: ${String(err)}`);
      });
    };
    res.body.on("end", reopen);
    res.body.on("error", (err) => {
      if (stopping) return;
      errors++;
      console.error(`watch stream error: ${String(err)}`);
      reopen();
    });
  };

  // Open the watches a few at a time: a thousand TLS handshakes at once would stall the API server.
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < streams.length) await open(streams[next++]!);
    }),
  );
  process.send?.({ type: "ready", t: nowMs() });

  const snapshot = (): StreamTally =>
    Object.fromEntries(
      Object.entries(tallies).map(([kind, perWatcher]) => [
        kind,
        perWatcher.map((c) => ({ events: c.events, bytes: c.bytes, reconnects: c.reconnects })),
      ]),
    ) as StreamTally;
  process.on("message", (raw: unknown) => {
    const msg = raw as ParentMessage;
    if (msg.type === "stats") {
      const tally: WatcherTally = { type: "tally", id: msg.id, streams: snapshot(), encodings, errors };
      process.send?.(tally);
    } else if (msg.type === "stop") {
      stopping = true;
      void agent.destroy().finally(() => process.exit(0));
    }
  });
  process.on("SIGTERM", () => {
    stopping = true;
    void agent.destroy().finally(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
