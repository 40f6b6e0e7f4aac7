import { createHash } from "node:crypto";
import type { RequestOptions as HttpsRequestOptions } from "node:https";
import { setImmediate as nextTurn } from "node:timers/promises";
// Type only: client-node's runtime loads every generated API model (about 1 s and 80 MiB), and
// this module needs nothing from it at run time but the KubeConfig instance it is handed.
import type { KubeConfig } from "@kubernetes/client-node";
import { Agent, type Dispatcher, fetch, ProxyAgent } from "undici";
import { PACKAGE_VERSION } from "../runtime/version.js";

/**
 * A small JSON client for the Kubernetes REST API, authenticated exactly as
 * @kubernetes/client-node does it. Used where slotmap needs precise control that the
 * generated clients hide: raw paths for any resource, resourceVersion preconditions,
 * status codes (409 Conflict, 410 Gone) and paginated lists.
 */

/** An error answer of the API server, with its HTTP status and the `Status` object's reason. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${statusCode} ${reason}: ${message}`);
    this.name = "ApiError";
  }
}

/** Whether `err` is an API answer with the given HTTP status. */
export function isStatus(err: unknown, statusCode: number): err is ApiError {
  return err instanceof ApiError && err.statusCode === statusCode;
}

/** Minimal shape of Kubernetes objects handled here. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** A list answer. */
export interface KubeList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** One event of a watch stream. `BOOKMARK` objects carry only `metadata.resourceVersion`. */
export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** Builds the {@link ApiError} of a non-2xx answer from its `Status` body when there is one. */
function errorFromAnswer(
  res: { status: number; statusText: string },
  text: string,
  method: string,
  url: URL,
) {
  let reason = res.statusText;
  let message = text;
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    reason = status.reason ?? reason;
    message = status.message ?? message;
  } catch {
    // Not a Status object; keep the raw body as the message.
  }
  return new ApiError(res.status, reason, message, method, url.pathname);
}

function parseWatchLine<T>(line: string, url: URL): WatchEvent<T> {
  try {
    return JSON.parse(line) as WatchEvent<T>;
  } catch {
    throw new Error(`watch ${url.pathname}: undecodable event line: ${line.slice(0, 200)}`);
  }
}

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Content type of the body; JSON by default, e.g. `application/merge-patch+json` for PATCH. */
  contentType?: string;
  signal?: AbortSignal;
  /**
   * Abort the request when no complete answer came within this many ms (a stalled connection
   * otherwise waits for undici's 300 s headers timeout); the error names the timeout.
   */
  timeoutMs?: number;
  /**
   * `Accept` header (default `application/json`), e.g. {@link METADATA_LIST_ACCEPT} to list
   * objects as PartialObjectMetadata.
   */
  accept?: string;
}

/** `Accept` of a list that returns only metadata (PartialObjectMetadataList), as client-go's metadata client. */
export const METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
/** `Accept` of a get or watch that returns only metadata (PartialObjectMetadata). */
export const METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/** Who writes: sent as User-Agent and, on writes, as `fieldManager` (managedFields show it). */
export interface ClientIdentity {
  /** `name/version`, e.g. `slotmap-coordinator/0.1.0`. Default {@link DEFAULT_IDENTITY}'s. */
  userAgent?: string;
  /** `fieldManager` of POST, PUT and PATCH requests; default: the User-Agent's name. */
  fieldManager?: string;
}

/**
 * Identity of a KubeHttp made without one: the shard side (the client library's member and
 * controller). The binaries pass their own (`slotmap-coordinator`, `kubectl-slotmap`).
 */
export const DEFAULT_IDENTITY: Required<ClientIdentity> = {
  userAgent: `slotmap-shard/${PACKAGE_VERSION}`,
  fieldManager: "slotmap-shard",
};

/** The connection pool of one set of TLS material, and the fingerprint it was made from. */
interface Transport {
  readonly key: string;
  readonly dispatcher: Dispatcher;
}

/** Headers, credentials and TLS options of the current context, as client-node computes them. */
async function connectionOptions(kc: KubeConfig): Promise<HttpsRequestOptions> {
  const opts: HttpsRequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return opts;
}

/** TLS options for undici from client-node's https options (only what a kubeconfig sets). */
function tlsOptions(o: HttpsRequestOptions) {
  return {
    ...(o.ca === undefined ? {} : { ca: o.ca }),
    ...(o.cert === undefined ? {} : { cert: o.cert }),
    ...(o.key === undefined ? {} : { key: o.key }),
    ...(o.pfx === undefined ? {} : { pfx: o.pfx }),
    ...(o.passphrase === undefined ? {} : { passphrase: o.passphrase }),
    ...(o.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: o.rejectUnauthorized }),
    ...(o.servername === undefined ? {} : { servername: o.servername }),
  };
}

/** A fingerprint of everything a pool is built from: a rotated certificate or CA changes it. */
function transportKey(server: string, proxyUrl: string | undefined, tls: Record<string, unknown>): string {
  const h = createHash("sha256").update(`${server}\n${proxyUrl ?? ""}\n`);
  for (const [k, v] of Object.entries(tls).sort(([a], [b]) => a.localeCompare(b))) {
    h.update(`${k}=`);
    h.update(Buffer.isBuffer(v) ? v : String(v));
    h.update("\n");
  }
  return h.digest("hex");
}

/**
 * A pool speaking HTTP/1.1 only. undici 8 negotiates HTTP/2 by default, and its HTTP/2 idle
 * timeout can destroy a session while a stream has no 'error' listener, an uncaught exception
 * that killed shards (issue 13); HTTP/1.1 against the API server was measured no slower for
 * slotmap's traffic (docs/client.md, "Transport"). TCP keep-alive probes after 30 s, as
 * client-go and client-node do, so a dead peer behind a load balancer is noticed.
 */
function makeDispatcher(proxyUrl: string | undefined, tls: ReturnType<typeof tlsOptions>): Dispatcher {
  const connect = { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000 };
  // Answer headers come within the API server's own request timeout (60 s by default) unless the
  // connection is dead: fail after 70 s instead of undici's 300 s, so a black-holed list retries.
  const pool = { allowH2: false, headersTimeout: 70_000, connect };
  if (proxyUrl === undefined || proxyUrl === "") return new Agent(pool);
  if (!/^https?:/.test(proxyUrl)) {
    throw new Error(
      `kubeconfig proxy-url ${JSON.stringify(proxyUrl)}: only http:// and https:// proxies are supported`,
    );
  }
  return new ProxyAgent({ uri: proxyUrl, requestTls: tls, ...pool });
}

/** Thin REST client bound to a KubeConfig's current context. */
export class KubeHttp {
  /** The pool for the current TLS material; requests and watches share its keep-alive connections. */
  private transport: Transport | undefined;
  readonly identity: Required<ClientIdentity>;

  constructor(
    readonly kc: KubeConfig,
    identity: ClientIdentity = {},
  ) {
    const userAgent = identity.userAgent ?? DEFAULT_IDENTITY.userAgent;
    this.identity = { userAgent, fieldManager: identity.fieldManager ?? userAgent.split("/")[0]! };
  }

  /**
   * Credentials and pool of one request. client-node re-reads certificate, key and CA files on
   * each call (and runs exec plugins as their expiry says), so a rotated file changes the
   * fingerprint: a new pool takes the new material and the old one closes once its requests and
   * watches end.
   */
  private async prepare(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> {
    const o = await connectionOptions(this.kc);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.headers ?? {})) {
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
    }
    if (o.auth) headers.Authorization = `Basic ${Buffer.from(o.auth).toString("base64")}`;
    headers["User-Agent"] = this.identity.userAgent;
    const tls = tlsOptions(o);
    const proxyUrl = this.kc.getCurrentCluster()?.proxyUrl;
    const key = transportKey(this.server, proxyUrl, tls);
    if (this.transport?.key !== key) {
      const old = this.transport;
      this.transport = { key, dispatcher: makeDispatcher(proxyUrl, tls) };
      // Graceful: requests and watches under way finish on the old pool.
      old?.dispatcher.close().catch(() => {});
    }
    return { headers, dispatcher: this.transport.dispatcher };
  }

  /** Closes the connection pool (idle keep-alive sockets otherwise keep a process alive). */
  async close(): Promise<void> {
    const t = this.transport;
    this.transport = undefined;
    await t?.dispatcher.close();
  }

  /** The API server URL of the current context. */
  get server(): string {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster (check current-context)");
    return cluster.server;
  }

  /** Performs a request and returns the decoded JSON answer; non-2xx answers throw {@link ApiError}. */
  async request<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    opts: RequestOptions = {},
  ): Promise<T> {
    return (await this.requestSized<T>(method, path, opts)).body;
  }

  /**
   * {@link request}, also returning the answer's length in UTF-16 code units (≈ bytes of JSON).
   * Every request of this client goes through it (tests override it to record requests).
   */
  protected async requestSized<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    opts: RequestOptions = {},
  ): Promise<{ body: T; bytes: number }> {
    const url = new URL(this.server + path);
    const writes = method === "POST" || method === "PUT" || method === "PATCH";
    const query = writes ? { fieldManager: this.identity.fieldManager, ...opts.query } : opts.query;
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const { headers, dispatcher } = await this.prepare();
    headers.Accept = opts.accept ?? "application/json";
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = opts.contentType ?? "application/json";
      body = JSON.stringify(opts.body);
    }
    const timeout = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const signal =
      timeout && opts.signal ? AbortSignal.any([opts.signal, timeout]) : (timeout ?? opts.signal);
    try {
      const res = await this.send(method, url, { headers, body, dispatcher, signal });
      const text = await res.text();
      if (res.status < 200 || res.status > 299) throw errorFromAnswer(res, text, method, url);
      return { body: (text ? JSON.parse(text) : undefined) as T, bytes: text.length };
    } catch (err) {
      if (timeout?.aborted && !opts.signal?.aborted) {
        throw new Error(`${method} ${url.origin}${url.pathname}: no answer within ${opts.timeoutMs} ms`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * Opens a watch (`?watch=true`) and yields its events in API server order until the server
   * ends the stream (`timeoutSeconds`), `signal` aborts, or `deadlineMs` passes (a guard against
   * a silently dead connection; the iteration then just ends). A non-2xx answer throws
   * {@link ApiError}; `ERROR` events are yielded as they come (their object is a `Status`).
   */
  async *watch<T>(
    path: string,
    query: Query = {},
    opts: { signal?: AbortSignal; deadlineMs?: number; accept?: string | undefined } = {},
  ): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    url.searchParams.set("watch", "true");
    const { headers, dispatcher } = await this.prepare();
    const local = new AbortController();
    const timer =
      opts.deadlineMs === undefined ? undefined : setTimeout(() => local.abort(), opts.deadlineMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, local.signal]) : local.signal;
    try {
      const res = await this.send("GET", url, {
        headers: { ...headers, Accept: opts.accept ?? "application/json" },
        dispatcher,
        signal,
      });
      if (res.status < 200 || res.status > 299) throw errorFromAnswer(res, await res.text(), "GET", url);
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) yield parseWatchLine<T>(line, url);
          nl = buffered.indexOf("\n");
        }
      }
      const rest = (buffered + decoder.decode()).trim();
      if (rest) yield parseWatchLine<T>(rest, url);
    } catch (err) {
      // Our own deadline: the connection was idle for too long; end like a server timeout.
      if (local.signal.aborted && !opts.signal?.aborted) return;
      throw err;
    } finally {
      clearTimeout(timer);
      local.abort(); // releases the connection when the consumer stops iterating early
    }
  }

  /** fetch, with transport failures (refused, TLS, DNS) rethrown naming the request. */
  private async send(
    method: string,
    url: URL,
    init: {
      headers: Record<string, string>;
      body?: string | undefined;
      dispatcher: Dispatcher;
      signal?: AbortSignal | undefined;
    },
  ) {
    try {
      return await fetch(url, {
        method,
        headers: init.headers,
        body: init.body,
        dispatcher: init.dispatcher,
        signal: init.signal,
      });
    } catch (err) {
      if (init.signal?.aborted) throw err; // the caller's abort, not a failure
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`${method} ${url.origin}${url.pathname}: request failed: ${detail}`, { cause: err });
    }
  }

  /**
   * Yields the pages of a list of `path`, one request each (a consistent read: no
   * resourceVersion). With a fixed `pageSize` every request asks for that many items. Without
   * one the page size adapts: the first page asks for {@link FIRST_PAGE_LIMIT} items, each later
   * one for as many as fill about {@link PAGE_BYTES} at the bytes per item seen so far (see
   * {@link nextPageLimit}). Why: every page costs the API server a fixed amount on top of its
   * items, so 500-item pages of small objects spent 7–11 CPU-s of a 200k-object list where
   * 5000-item pages spent 1.5 (docs/benchmarks.md), while a byte budget keeps a page of large
   * objects from holding hundreds of MB at once. A page is yielded in parts of at most
   * {@link HANDOVER_ITEMS} items, one event-loop turn apart, and the next page is requested
   * before a page is handed over (one page ahead).
   */
  async *pages<T>(
    path: string,
    query: Query = {},
    opts: {
      pageSize?: number | undefined;
      /** Bytes an adaptive list aims at per page (default {@link PAGE_BYTES}). */
      pageBytes?: number | undefined;
      signal?: AbortSignal | undefined;
      /** `Accept` of each page request (see {@link RequestOptions.accept}). */
      accept?: string | undefined;
    } = {},
  ): AsyncGenerator<KubeList<T>, void, undefined> {
    let limit = opts.pageSize ?? FIRST_PAGE_LIMIT;
    let items = 0;
    let bytes = 0;
    // Aborts the page fetched ahead when the consumer stops early (or the caller's signal fires).
    const ahead = new AbortController();
    const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, ahead.signal]) : ahead.signal;
    const fetchPage = (cont: string | undefined): Promise<{ body: KubeList<T>; bytes: number }> => {
      const p = this.requestSized<KubeList<T>>("GET", path, {
        query: { ...query, limit, continue: cont },
        signal,
        ...(opts.accept !== undefined ? { accept: opts.accept } : {}),
      });
      p.catch(() => {}); // observed when awaited; a page abandoned by an early stop is not an error
      return p;
    };
    let next: Promise<{ body: KubeList<T>; bytes: number }> | undefined = fetchPage(undefined);
    try {
      while (next !== undefined) {
        const answer: { body: KubeList<T>; bytes: number } = await next;
        const page = answer.body;
        const n = answer.bytes;
        items += page.items.length;
        bytes += n;
        if (opts.pageSize === undefined) limit = nextPageLimit(bytes, items, opts.pageBytes);
        const cont: string | undefined = page.metadata.continue || undefined;
        // The next page is asked for before this one is handed over, so the API server prepares
        // it while the consumer works through this one (client-go's EachListItem buffers pages
        // ahead the same way). One page ahead bounds the memory to two pages.
        next = cont === undefined ? undefined : fetchPage(cont);
        // Handed over in parts of at most HANDOVER_ITEMS, one event-loop turn apart: a consumer
        // that processes a part synchronously (a reflector) then holds the process for as long as
        // a 500-item page did, not for a 10,000-item one (a SlotMap event waits behind it).
        if (page.items.length <= HANDOVER_ITEMS) {
          yield page;
          continue;
        }
        for (let i = 0; i < page.items.length; i += HANDOVER_ITEMS) {
          if (i > 0) await nextTurn();
          yield { ...page, items: page.items.slice(i, i + HANDOVER_ITEMS) };
        }
      }
    } finally {
      if (next !== undefined) ahead.abort();
    }
  }

  /** Lists every page of a collection; returns the items and the list's resourceVersion. */
  async listAll<T>(path: string, query: Query = {}, pageSize?: number): Promise<KubeList<T>> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    for await (const page of this.pages<T>(path, query, { pageSize })) {
      items.push(...page.items);
      resourceVersion = page.metadata.resourceVersion;
    }
    return { metadata: { resourceVersion }, items };
  }
}

/** Items asked for by the first page of an adaptive list (client-go's default page size). */
export const FIRST_PAGE_LIMIT = 500;
/** Bytes an adaptive list aims at per page. */
export const PAGE_BYTES = 4 * 1024 * 1024;
/** Items {@link KubeHttp.pages} hands over at once; a larger page is handed over in parts. */
export const HANDOVER_ITEMS = 500;
/** Bounds of an adaptive page size, in items. */
export const MIN_PAGE_LIMIT = 10;
export const MAX_PAGE_LIMIT = 10_000;

/**
 * The next page's limit of an adaptive list that has received `bytes` for `items` items: as many
 * items as fill {@link PAGE_BYTES}, within {@link MIN_PAGE_LIMIT} … {@link MAX_PAGE_LIMIT}.
 */
export function nextPageLimit(bytes: number, items: number, target = PAGE_BYTES): number {
  if (items <= 0 || bytes <= 0) return FIRST_PAGE_LIMIT;
  const perItem = bytes / items;
  return Math.max(MIN_PAGE_LIMIT, Math.min(MAX_PAGE_LIMIT, Math.floor(target / perItem)));
}
