/**
 * Child process of the scale benchmark: N watchers of one SlotMap, each its own watch request on
 * its own HTTP/1.1 connection, as N shard processes would hold them. The measured quantity is the
 * API server's fan-out, so the watches are real; this process only counts what arrives (bytes of
 * the event stream and newline-delimited events, per watcher) and never parses an event.
 *
 * Config (BENCH_CHILD_CONFIG): {@link WatchersConfig}. IPC: sends `{type: "ready", t}` once every
 * watch is open; answers `{type: "stats", id}` with a {@link WatcherTally}.
 */
import type { RequestOptions as HttpsRequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import type { ParentMessage } from "./ipc.js";
import { nowMs } from "./ipc.js";

/** What the harness passes to the watcher process. */
export interface WatchersConfig {
  readonly kubeconfig: string;
  readonly slotMap: string;
  readonly watchers: number;
  /** Watch from this resourceVersion (the current one: no initial ADDED event). */
  readonly resourceVersion: string;
  /** Send `Accept-Encoding: gzip` as fetch-based clients (KubeHttp) do. */
  readonly acceptGzip: boolean;
}

/** Per-watcher counters, in watcher order. */
export interface WatcherTally {
  readonly type: "tally";
  readonly id: number;
  readonly perWatcher: Array<{ events: number; bytes: number; reconnects: number }>;
  /** `content-encoding` of the watch responses seen (`identity` when absent). */
  readonly encodings: Record<string, number>;
  readonly errors: number;
}

interface Watcher {
  events: number;
  bytes: number;
  reconnects: number;
  /** resourceVersion of the last event seen, to resume from after the server ends the watch. */
  resourceVersion: string;
  /** The chunk just received ended a line: the next one starts an event. */
  atLineStart: boolean;
}

const RV = /"resourceVersion":"(\d+)"/;

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BENCH_CHILD_CONFIG ?? "{}") as WatchersConfig;
  const kc = new KubeConfig();
  kc.loadFromFile(cfg.kubeconfig);
  const https: HttpsRequestOptions = {};
  await kc.applyToHTTPSOptions(https);
  const headers: Record<string, string> = { Accept: "application/json" };
  for (const [k, v] of Object.entries(https.headers ?? {}))
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
  if (cfg.acceptGzip) headers["Accept-Encoding"] = "gzip";
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
  const watchers: Watcher[] = Array.from({ length: cfg.watchers }, () => ({
    events: 0,
    bytes: 0,
    reconnects: 0,
    resourceVersion: cfg.resourceVersion,
    atLineStart: true,
  }));
  const encodings: Record<string, number> = {};
  let errors = 0;
  let stopping = false;

  /** Opens watcher `w`'s watch; resolves once the response headers arrived. Re-opens it when it ends. */
  const open = async (w: Watcher): Promise<void> => {
    const url = new URL(`${server}/apis/slotmap.dev/v1alpha1/slotmaps`);
    url.searchParams.set("watch", "true");
    url.searchParams.set("fieldSelector", `metadata.name=${cfg.slotMap}`);
    url.searchParams.set("resourceVersion", w.resourceVersion);
    url.searchParams.set("timeoutSeconds", "3600");
    const res = await request(url, { method: "GET", headers, dispatcher: agent });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new Error(`watch: ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    const enc = String(res.headers["content-encoding"] ?? "identity");
    encodings[enc] = (encodings[enc] ?? 0) + 1;
    res.body.on("data", (chunk: Buffer) => {
      w.bytes += chunk.length;
      if (w.atLineStart) {
        // The head of an event: metadata.resourceVersion comes before managedFields and status.
        const m = RV.exec(chunk.subarray(0, 4096).toString("latin1"));
        if (m) w.resourceVersion = m[1]!;
      }
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) w.events++;
      w.atLineStart = chunk[chunk.length - 1] === 10;
    });
    const reopen = () => {
      if (stopping) return;
      w.reconnects++;
      w.atLineStart = true;
      open(w).catch((err: unknown) => {
        errors++;
        console.error(`watch re-open failed: ${String(err)}`);
      });
    };
    res.body.on("end", reopen);
    res.body.on("error", (err) => {
      errors++;
      console.error(`watch stream error: ${String(err)}`);
      reopen();
    });
  };

  // Open the watches a few at a time: a thousand TLS handshakes at once would stall the API server.
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < watchers.length) await open(watchers[next++]!);
    }),
  );
  process.send?.({ type: "ready", t: nowMs() });

  process.on("message", (raw: unknown) => {
    const msg = raw as ParentMessage;
    if (msg.type === "stats") {
      const tally: WatcherTally = {
        type: "tally",
        id: msg.id,
        perWatcher: watchers.map((w) => ({ events: w.events, bytes: w.bytes, reconnects: w.reconnects })),
        encodings,
        errors,
      };
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
