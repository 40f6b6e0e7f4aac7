/**
 * Kubernetes access for the rebalance benchmark: the project's own {@link KubeHttp} and
 * {@link Reflector}, over one pooled keep-alive connection pool per process.
 *
 * Why not a plain `KubeConfig`: @kubernetes/client-node 2.0.1 builds a new undici Agent inside
 * every `applySecurityAuthentication` call, so each request opens a fresh TLS connection. At 100k
 * objects that costs more than the requests themselves and would measure the TLS handshake rather
 * than the sharding protocol. {@link PooledKubeConfig} keeps client-node's authentication (token,
 * client certificates) and swaps in one shared Agent with the same TLS options.
 */
import { execFileSync } from "node:child_process";
import diagnosticsChannel from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { HttpMethod, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { Agent, type Dispatcher, fetch } from "undici";
import { KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { keySlot } from "../../src/slots/index.js";
import type { ControlPlane } from "../../test/support/controlplane.js";

/**
 * Watch traffic this process received, by resource (`secrets`, `configmaps`, `slotmaps`, …):
 * events are counted as lines of the watch stream (BOOKMARKs included), bytes as received.
 * `listBytes`: bytes of the (non-watch) collection GETs, i.e. list pages, by resource.
 */
export interface WatchTally {
  events: Record<string, number>;
  bytes: Record<string, number>;
  listBytes: Record<string, number>;
}

/** Resource of a watch request path (`/api/v1/namespaces/x/secrets?...`), or undefined if not a watch. */
export function watchedResource(path: string): string | undefined {
  const q = path.indexOf("?");
  if (q < 0 || !/[?&]watch=(true|1)(&|$)/.test(path.slice(q))) return undefined;
  const parts = path.slice(0, q).split("/").filter(Boolean);
  return parts[parts.length - 1];
}

/**
 * Resource of a GET of a collection that is not a watch (`/api/v1/secrets?limit=500`,
 * `/apis/g/v/namespaces/ns/things`), or undefined (a single object, a watch, not an API path).
 */
export function listedResource(path: string): string | undefined {
  const q = path.indexOf("?");
  if (q >= 0 && /[?&]watch=(true|1)(&|$)/.test(path.slice(q))) return undefined;
  const parts = (q < 0 ? path : path.slice(0, q)).split("/").filter(Boolean);
  let rest: string[];
  if (parts[0] === "api" && parts.length >= 2) rest = parts.slice(2);
  else if (parts[0] === "apis" && parts.length >= 3) rest = parts.slice(3);
  else return undefined;
  if (rest.length === 1) return rest[0];
  if (rest.length === 3 && rest[0] === "namespaces") return rest[2];
  return undefined;
}

let tally: WatchTally | undefined;

/**
 * The watch and list traffic of every undici request of this process, counted through undici's
 * diagnostics channel: the library's transport (src/kube/http.ts) and the reflectors on it have a
 * pool of their own, which a handler on {@link PooledKubeConfig}'s pool never saw (the rows read
 * 0). One tally per process; zero it in place.
 */
export function processTally(): WatchTally {
  if (tally !== undefined) return tally;
  const t: WatchTally = { events: {}, bytes: {}, listBytes: {} };
  tally = t;
  diagnosticsChannel.subscribe("undici:request:bodyChunkReceived", (message) => {
    const { request, chunk } = message as { request: { method?: string; path?: string }; chunk: Buffer };
    const path = request.path ?? "";
    const watched = watchedResource(path);
    if (watched !== undefined) {
      let lines = 0;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
      t.events[watched] = (t.events[watched] ?? 0) + lines;
      t.bytes[watched] = (t.bytes[watched] ?? 0) + chunk.length;
      return;
    }
    const listed = request.method === "GET" ? listedResource(path) : undefined;
    if (listed !== undefined) t.listBytes[listed] = (t.listBytes[listed] ?? 0) + chunk.length;
  });
  return t;
}

/** A KubeConfig whose requests share one keep-alive connection pool. */
export class PooledKubeConfig extends KubeConfig {
  private agent: Dispatcher | undefined;
  constructor(private readonly connections = 64) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    this.agent ??= this.makeAgent();
    context.setDispatcher(this.agent);
  }

  private makeAgent(): Dispatcher {
    const cluster = this.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster (check current-context)");
    const user = this.getCurrentUser();
    const ca = cluster.caData
      ? Buffer.from(cluster.caData, "base64")
      : cluster.caFile
        ? readFileSync(cluster.caFile)
        : undefined;
    const cert = user?.certData
      ? Buffer.from(user.certData, "base64")
      : user?.certFile
        ? readFileSync(user.certFile)
        : undefined;
    const key = user?.keyData
      ? Buffer.from(user.keyData, "base64")
      : user?.keyFile
        ? readFileSync(user.keyFile)
        : undefined;
    const agent = new Agent({
      connections: this.connections,
      keepAliveTimeout: 60_000,
      connect: {
        ca,
        cert,
        key,
        rejectUnauthorized: cluster.skipTLSVerify !== true,
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
    });
    return agent;
  }

  /** Closes the pool (pending requests fail). */
  async close(): Promise<void> {
    await this.agent?.close();
  }
}

/** A connected client: the JSON client plus raw text access (for /metrics). */
export interface Kube {
  readonly kc: PooledKubeConfig;
  readonly http: KubeHttp;
  /** GET a path with a custom Accept header (e.g. `/metrics`, metadata-only lists) and return the body. */
  getText(
    path: string,
    query?: Record<string, string | number | undefined>,
    accept?: string,
  ): Promise<string>;
  close(): Promise<void>;
}

/** Loads a kubeconfig file and returns a pooled client for its current context. */
export function connectKube(kubeconfigPath: string, connections = 64): Kube {
  const kc = new PooledKubeConfig(connections);
  kc.loadFromFile(kubeconfigPath);
  const http = new KubeHttp(kc);
  return {
    kc,
    http,
    async getText(path, query = {}, accept) {
      const url = new URL(http.server + path);
      for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
      const ctx = new RequestContext(url.toString(), HttpMethod.GET);
      await kc.applySecurityAuthentication(ctx);
      const headers: Record<string, string> = { ...ctx.getHeaders() };
      if (accept) headers.Accept = accept;
      const res = await fetch(url, { headers, dispatcher: ctx.getDispatcher() });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}: ${text.slice(0, 200)}`);
      return text;
    },
    close: () => kc.close(),
  };
}

/**
 * Runs `fn` over `items` with at most `concurrency` calls in flight; resolves when all are done.
 * The first error rejects after the calls in flight have settled (no new ones are started).
 */
export async function runPool<T>(
  items: Iterable<T>,
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  const it = items[Symbol.iterator]();
  let index = 0;
  let failed: unknown;
  let hasFailed = false;
  const worker = async () => {
    for (;;) {
      if (hasFailed) return;
      const next = it.next();
      if (next.done) return;
      const i = index++;
      try {
        await fn(next.value, i);
      } catch (err) {
        if (!hasFailed) {
          hasFailed = true;
          failed = err;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  if (hasFailed) throw failed;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `fn` every `intervalMs` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 100,
  progress?: (message: string) => void,
): Promise<T> {
  const start = performance.now();
  const deadline = start + timeoutMs;
  let nextReport = start + 30_000;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    const now = performance.now();
    if (now > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    if (progress && now > nextReport) {
      progress(`still waiting for ${what} (${Math.round((now - start) / 1000)} s)`);
      nextReport = now + 30_000;
    }
    await sleep(intervalMs);
  }
}

/** Applies crds/ to a benchmark's control plane and waits until its CRDs are Established. */
export function installCrds(cp: ControlPlane): void {
  const crds = join(resolve(import.meta.dirname, "../.."), "crds");
  execFileSync(cp.kubectlPath, ["--kubeconfig", cp.kubeconfig, "apply", "-f", crds], { stdio: "pipe" });
  execFileSync(
    cp.kubectlPath,
    [
      "--kubeconfig",
      cp.kubeconfig,
      "wait",
      "--for=condition=established",
      "--timeout=60s",
      "crd/slotmaps.slotmap.dev",
      "crd/slotmapshards.slotmap.dev",
    ],
    { stdio: "pipe" },
  );
}

/**
 * Lists each core-group resource whole (`/api/v1/<resource>`, every namespace) and hashes every
 * object's key: what a shard does at the least per listed object; nothing is kept. Returns the
 * number of objects listed. The list-pages benchmark's listers, in its process and in their own.
 */
export async function listAndHash(
  http: KubeHttp,
  resources: readonly string[],
  pageSize?: number,
): Promise<number> {
  let n = 0;
  for (const r of resources) {
    for await (const page of http.pages<KubeObject>(`/api/v1/${r}`, {}, { pageSize })) {
      for (const o of page.items)
        n += keySlot(`/${r}/${o.metadata?.namespace}/${o.metadata?.name}`) >= 0 ? 1 : 0;
    }
  }
  return n;
}
