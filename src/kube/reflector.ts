import { backoffDelay } from "../runtime/backoff.js";
import {
  ApiError,
  type KubeHttp,
  type KubeObject,
  METADATA_ACCEPT,
  METADATA_LIST_ACCEPT,
  type Query,
} from "./http.js";

/**
 * List-then-watch of one collection, streaming events to a handler without caching objects.
 * client-node's informer keeps every object in memory; a shard must keep only what it owns,
 * so it consumes this stream and decides per object what to remember.
 */

/** Event types delivered to a {@link ReflectorHandler}. */
export type ReflectorEventType = "ADDED" | "MODIFIED" | "DELETED";

/** Receives the stream. Calls are serialised: one at a time, in API server order. */
export interface ReflectorHandler<T extends KubeObject> {
  /** A (re)list begins. Objects not delivered again before {@link onSynced} no longer exist. */
  onListStart?(): void;
  /** An object: from a list page (`ADDED`, `listed` true) or a watch event. */
  onEvent(type: ReflectorEventType, obj: T, listed: boolean): void;
  /** The list is complete and the watch is starting from `resourceVersion`. */
  onSynced?(resourceVersion: string): void;
  /** A recoverable error (the reflector retries after a backoff). */
  onError?(err: unknown): void;
}

/** Options of {@link Reflector}. */
export interface ReflectorOptions<T extends KubeObject> {
  http: KubeHttp;
  /** Collection path, e.g. `/api/v1/namespaces/ns/secrets` or `/api/v1/secrets`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Items per list page; default adaptive (about 4 MiB per page, {@link KubeHttp.pages}). Pages
   * are handed over one by one to bound memory.
   */
  pageSize?: number;
  handler: ReflectorHandler<T>;
  /** Server-side watch timeout, below client-node's 30 s inactivity timeout. Default 25. */
  watchTimeoutSeconds?: number;
  /**
   * Stream only metadata (PartialObjectMetadata, as client-go's metadata informers): the objects
   * handed over have `metadata` and no spec or status.
   */
  metadataOnly?: boolean;
}

/** Counters for metrics and benchmarks. */
export interface ReflectorStats {
  lists: number;
  listedObjects: number;
  watchEvents: number;
  bookmarks: number;
  errors: number;
}

const MAX_BACKOFF_MS = 30_000;

/** Streams a collection: list (paged), then watch from the list's resourceVersion; relists on 410 Gone. */
export class Reflector<T extends KubeObject> {
  readonly stats: ReflectorStats = { lists: 0, listedObjects: 0, watchEvents: 0, bookmarks: 0, errors: 0 };
  private stopped = false;
  /** Aborted by stop(): cancels the list or watch request in flight. */
  private readonly stopping = new AbortController();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private syncedOnce: Promise<void>;
  private resolveSynced!: () => void;
  private rejectSynced!: (err: Error) => void;
  private resourceVersion: string | undefined;

  constructor(private readonly opts: ReflectorOptions<T>) {
    this.syncedOnce = new Promise((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // stop() before the first list rejects start(); don't report that as unhandled when
    // nobody awaits start().
    this.syncedOnce.catch(() => {});
  }

  /**
   * Starts the loop; resolves once the first list was delivered. Errors do not reject it (they
   * go to `onError` and are retried); it rejects only if {@link stop} comes first.
   */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.syncedOnce;
  }

  /** Stops watching; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.rejectSynced(new Error(`reflector for ${this.opts.path} stopped before its first list completed`));
    this.stopping.abort();
    this.wake?.();
    await this.loop;
  }

  /** The last resourceVersion seen (list or event or bookmark). */
  get lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const gone = await this.watchOnce();
        if (gone) needList = true;
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        this.stats.errors++;
        this.opts.handler.onError?.(err);
        if (err instanceof ApiError && err.statusCode === 410) needList = true;
        failures++;
        await this.sleep(backoffDelay(failures - 1, 200, MAX_BACKOFF_MS));
      }
    }
  }

  private selectorQuery(): Query {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private async list(): Promise<void> {
    const { http, path, handler } = this.opts;
    this.stats.lists++;
    handler.onListStart?.();
    let rv: string | undefined;
    const pages = http.pages<T>(path, this.selectorQuery(), {
      pageSize: this.opts.pageSize,
      signal: this.stopping.signal,
      ...(this.opts.metadataOnly ? { accept: METADATA_LIST_ACCEPT } : {}),
    });
    for await (const page of pages) {
      for (const item of page.items) {
        this.stats.listedObjects++;
        handler.onEvent("ADDED", item, true);
      }
      rv = page.metadata.resourceVersion;
      if (this.stopped) break;
    }
    if (this.stopped) return; // a partial list is not a sync
    this.resourceVersion = rv;
    handler.onSynced?.(rv ?? "");
    this.resolveSynced();
  }

  /**
   * One watch connection from the last resourceVersion; resolves true when that version is too
   * old (410 Gone: relist needed), false when the watch ended normally or was stopped. Other
   * errors reject, naming the collection; the caller backs off.
   */
  private async watchOnce(): Promise<boolean> {
    const { http, path, handler } = this.opts;
    const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 25;
    if (this.stopped) return false;
    try {
      const events = http.watch<T>(
        path,
        {
          ...this.selectorQuery(),
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        // The server ends the watch after timeoutSeconds; past that plus a margin the
        // connection is presumed dead.
        {
          signal: this.stopping.signal,
          deadlineMs: (timeoutSeconds + 15) * 1000,
          ...(this.opts.metadataOnly ? { accept: METADATA_ACCEPT } : {}),
        },
      );
      for await (const { type, object } of events) {
        if (this.stopped) return false;
        if (type === "BOOKMARK") {
          this.stats.bookmarks++;
          this.resourceVersion = (object as KubeObject).metadata?.resourceVersion ?? this.resourceVersion;
          continue;
        }
        if (type === "ERROR") {
          const status = object as { code?: number; reason?: string; message?: string };
          if (status.code === 410) return true;
          throw new ApiError(
            status.code ?? 500,
            status.reason ?? "WatchError",
            status.message ?? JSON.stringify(object),
            "WATCH",
            path,
          );
        }
        if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") continue;
        this.stats.watchEvents++;
        handler.onEvent(type, object, false);
        // Advanced only after the handler returned: if it threw, the event is seen again
        // when the watch resumes after the backoff.
        this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
      }
      return false;
    } catch (err) {
      if (this.stopped) return false;
      if (err instanceof ApiError && err.statusCode === 410) return true;
      throw err;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
