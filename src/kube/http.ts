import { HttpMethod, type KubeConfig, RequestContext } from "@kubernetes/client-node";
import { type Dispatcher, fetch } from "undici";

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
}

/** Thin REST client bound to a KubeConfig's current context. */
export class KubeHttp {
  // client-node builds a new connection pool for every request (a TLS handshake each time);
  // the first one is kept so requests and watches share keep-alive connections.
  private dispatcher: Dispatcher | undefined;

  constructor(readonly kc: KubeConfig) {}

  private pool(ctx: RequestContext): Dispatcher | undefined {
    this.dispatcher ??= ctx.getDispatcher();
    return this.dispatcher;
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
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: "application/json" };
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = opts.contentType ?? "application/json";
      body = JSON.stringify(opts.body);
    }
    const res = await this.send(method, url, {
      headers,
      body,
      dispatcher: this.pool(ctx),
      signal: opts.signal,
    });
    const text = await res.text();
    if (res.status < 200 || res.status > 299) throw errorFromAnswer(res, text, method, url);
    return (text ? JSON.parse(text) : undefined) as T;
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
    opts: { signal?: AbortSignal; deadlineMs?: number } = {},
  ): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    url.searchParams.set("watch", "true");
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.kc.applySecurityAuthentication(ctx);
    const local = new AbortController();
    const timer =
      opts.deadlineMs === undefined ? undefined : setTimeout(() => local.abort(), opts.deadlineMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, local.signal]) : local.signal;
    try {
      const res = await this.send("GET", url, {
        headers: { ...ctx.getHeaders(), Accept: "application/json" },
        dispatcher: this.pool(ctx),
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
      dispatcher: Dispatcher | undefined;
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

  /** Lists every page of a collection; returns the items and the list's resourceVersion. */
  async listAll<T>(path: string, query: Query = {}, pageSize = 500): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.request<KubeList<T>>("GET", path, {
        query: { ...query, limit: pageSize, continue: cont },
      });
      items.push(...page.items);
      resourceVersion = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont);
    return { metadata: { resourceVersion }, items };
  }
}
