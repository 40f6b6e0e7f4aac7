/**
 * An in-memory stand-in for the parts of the API server the coordinator driver uses: SlotMaps
 * (with the status subresource), Leases in all namespaces, Events; lists, watches from a
 * resourceVersion, resourceVersion and uid preconditions. Structurally a KubeHttp.
 */
import {
  ApiError,
  type KubeObject,
  type Query,
  type RequestOptions,
  type WatchEvent,
} from "../../../src/kube/http.js";

const SLOTMAPS = "/apis/slotmap.dev/v1alpha1/slotmaps";
const ALL_LEASES = "/apis/coordination.k8s.io/v1/leases";
const ALL_PROJECTIONS = "/apis/slotmap.dev/v1alpha1/slotmapshards";
const PROJECTION = /^\/apis\/slotmap\.dev\/v1alpha1\/namespaces\/([^/]+)\/slotmapshards(?:\/([^/]+))?$/;
const LEASE = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases\/([^/]+)$/;
const EVENTS = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/;

export interface Obj extends KubeObject {
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: unknown;
}

export interface Recorded {
  method: string;
  path: string;
  body: unknown;
  /** The answer's HTTP status. */
  status: number;
}

type Hook = (method: string, path: string, body: unknown) => void | Promise<void>;

interface Watcher {
  collection: string;
  push: (e: WatchEvent<Obj>) => void;
}

export class FakeApi {
  private rv = 100;
  private uidSeq = 0;
  readonly slotMaps = new Map<string, Obj>();
  readonly leases = new Map<string, Obj>();
  readonly events = new Map<string, Obj>();
  /** SlotMapShard projections by `<namespace>/<name>`. */
  readonly projections = new Map<string, Obj>();
  readonly requests: Recorded[] = [];
  private readonly history: Array<{ collection: string; event: WatchEvent<Obj> }> = [];
  private readonly watchers = new Set<Watcher>();
  /** Runs before every request is handled (inject concurrent writes or failures). */
  hook: Hook | undefined;
  /** While set, lists of this collection wait for it. */
  gate: { collection: string; open: Promise<void> } | undefined;

  private nextRv(): string {
    this.rv += 1;
    return String(this.rv);
  }

  private emit(collection: string, type: WatchEvent<Obj>["type"], obj: Obj): void {
    const event = { type, object: structuredClone(obj) };
    this.history.push({ collection, event });
    for (const w of this.watchers) if (w.collection === collection) w.push(structuredClone(event));
  }

  // --- direct manipulation by tests -----------------------------------------------------------

  putSlotMap(name: string, spec: Record<string, unknown>, status?: unknown): Obj {
    const old = this.slotMaps.get(name);
    const obj: Obj = {
      apiVersion: "slotmap.dev/v1alpha1",
      kind: "SlotMap",
      metadata: {
        name,
        uid: old?.metadata.uid ?? `sm-uid-${++this.uidSeq}`,
        resourceVersion: this.nextRv(),
        generation: (old?.metadata.generation ?? 0) + 1,
      },
      spec,
      ...(status !== undefined ? { status } : old?.status !== undefined ? { status: old.status } : {}),
    };
    this.slotMaps.set(name, obj);
    this.emit(SLOTMAPS, old ? "MODIFIED" : "ADDED", obj);
    return obj;
  }

  setStatus(name: string, status: unknown): Obj {
    const obj = this.slotMaps.get(name)!;
    obj.status = structuredClone(status);
    obj.metadata.resourceVersion = this.nextRv();
    this.emit(SLOTMAPS, "MODIFIED", obj);
    return obj;
  }

  deleteSlotMap(name: string): void {
    const obj = this.slotMaps.get(name)!;
    this.slotMaps.delete(name);
    obj.metadata.resourceVersion = this.nextRv();
    this.emit(SLOTMAPS, "DELETED", obj);
  }

  putLease(
    namespace: string,
    name: string,
    slotmap: string,
    spec: Record<string, unknown>,
    annotations: Record<string, string> = {},
  ): Obj {
    const key = `${namespace}/${name}`;
    const old = this.leases.get(key);
    const obj: Obj = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name,
        namespace,
        uid: old?.metadata.uid ?? `lease-uid-${++this.uidSeq}`,
        resourceVersion: this.nextRv(),
        labels: { "slotmap.dev/slotmap": slotmap },
        annotations,
      },
      spec,
    };
    this.leases.set(key, obj);
    this.emit(ALL_LEASES, old ? "MODIFIED" : "ADDED", obj);
    return obj;
  }

  // --- KubeHttp ---------------------------------------------------------------------------------

  /** KubeHttp.pages: one page holding the whole list (the reflector's list goes through it). */
  async *pages<T>(path: string, query: RequestOptions["query"] = {}): AsyncGenerator<T, void, undefined> {
    yield await this.request<T>("GET", path, { query });
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    if (method === "GET" && (path === SLOTMAPS || path === ALL_LEASES || path === ALL_PROJECTIONS)) {
      return (await this.list(path, opts.query)) as T;
    }
    await this.hook?.(method, path, opts.body);
    try {
      const out = this.handle(method, path, opts);
      this.requests.push({ method, path, body: structuredClone(opts.body), status: 200 });
      return structuredClone(out) as T;
    } catch (err) {
      this.requests.push({
        method,
        path,
        body: structuredClone(opts.body),
        status: err instanceof ApiError ? err.statusCode : 500,
      });
      throw err;
    }
  }

  private fail(code: number, reason: string, method: string, path: string): never {
    throw new ApiError(code, reason, reason, method, path);
  }

  private handle(method: string, path: string, opts: RequestOptions): unknown {
    const body = opts.body as Obj | undefined;
    if (path.startsWith(`${SLOTMAPS}/`)) {
      const [name, sub] = path.slice(SLOTMAPS.length + 1).split("/");
      const cur = this.slotMaps.get(name!);
      if (!cur) this.fail(404, "NotFound", method, path);
      if (method === "GET") return cur;
      if (method === "PUT" && sub === "status" && body) {
        if (body.metadata.uid !== undefined && body.metadata.uid !== cur.metadata.uid) {
          this.fail(409, "Conflict", method, path);
        }
        if (body.metadata.resourceVersion !== cur.metadata.resourceVersion)
          this.fail(409, "Conflict", method, path);
        return this.setStatus(name!, body.status);
      }
    }
    const lease = LEASE.exec(path);
    if (lease) return this.handleNamespaced(this.leases, ALL_LEASES, method, path, lease[1]!, lease[2], opts);
    const proj = PROJECTION.exec(path);
    if (proj)
      return this.handleNamespaced(this.projections, ALL_PROJECTIONS, method, path, proj[1]!, proj[2], opts);
    const ev = EVENTS.exec(path);
    if (ev) {
      const ns = ev[1]!;
      if (method === "POST" && body) {
        const key = `${ns}/${body.metadata.name}`;
        if (this.events.has(key)) this.fail(409, "AlreadyExists", method, path);
        this.events.set(key, structuredClone(body));
        return body;
      }
      if (method === "PATCH" && ev[2]) {
        const cur = this.events.get(`${ns}/${ev[2]}`);
        if (!cur) this.fail(404, "NotFound", method, path);
        Object.assign(cur, opts.body as object);
        return cur;
      }
    }
    this.fail(405, "MethodNotAllowed", method, path);
  }

  /** Create, read, replace and delete (with preconditions) of a namespaced collection's objects. */
  private handleNamespaced(
    store: Map<string, Obj>,
    collection: string,
    method: string,
    path: string,
    ns: string,
    name: string | undefined,
    opts: RequestOptions,
  ): unknown {
    const body = opts.body as Obj | undefined;
    if (method === "POST" && body && name === undefined) {
      const key = `${ns}/${body.metadata.name}`;
      if (store.has(key)) this.fail(409, "AlreadyExists", method, path);
      const obj: Obj = {
        ...structuredClone(body),
        metadata: {
          ...body.metadata,
          namespace: ns,
          uid: `uid-${++this.uidSeq}`,
          resourceVersion: this.nextRv(),
        },
      };
      store.set(key, obj);
      this.emit(collection, "ADDED", obj);
      return obj;
    }
    const key = `${ns}/${name}`;
    const cur = store.get(key);
    if (!cur) this.fail(404, "NotFound", method, path);
    if (method === "GET") return cur;
    if (method === "PUT" && body) {
      if (body.metadata.resourceVersion !== cur.metadata.resourceVersion)
        this.fail(409, "Conflict", method, path);
      const next: Obj = {
        ...structuredClone(body),
        metadata: { ...body.metadata, namespace: ns, uid: cur.metadata.uid, resourceVersion: this.nextRv() },
      };
      store.set(key, next);
      this.emit(collection, "MODIFIED", next);
      return next;
    }
    if (method === "DELETE") {
      const pre = (opts.body as { preconditions?: { uid?: string; resourceVersion?: string } } | undefined)
        ?.preconditions;
      if (pre?.uid !== undefined && pre.uid !== cur.metadata.uid) this.fail(409, "Conflict", method, path);
      if (pre?.resourceVersion !== undefined && pre.resourceVersion !== cur.metadata.resourceVersion) {
        this.fail(409, "Conflict", method, path);
      }
      store.delete(key);
      this.emit(collection, "DELETED", {
        ...cur,
        metadata: { ...cur.metadata, resourceVersion: this.nextRv() },
      });
      return cur;
    }
    this.fail(405, "MethodNotAllowed", method, path);
  }

  /** A list (the Reflector's), held while {@link gate} names its collection. */
  private async list(path: string, query: Query | undefined): Promise<unknown> {
    if (this.gate?.collection === path) await this.gate.open;
    const source =
      path === SLOTMAPS ? this.slotMaps : path === ALL_PROJECTIONS ? this.projections : this.leases;
    const selector = query?.labelSelector;
    const items = [...source.values()].filter(
      (o) => typeof selector !== "string" || o.metadata.labels?.[selector] !== undefined,
    );
    return { metadata: { resourceVersion: String(this.rv) }, items: structuredClone(items) };
  }

  async *watch<T>(
    path: string,
    query: Query = {},
    opts: { signal?: AbortSignal; deadlineMs?: number } = {},
  ): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const queue: WatchEvent<Obj>[] = [];
    const from = Number(query.resourceVersion ?? 0);
    for (const h of this.history) {
      if (h.collection === path && Number(h.event.object.metadata.resourceVersion) > from) {
        queue.push(structuredClone(h.event));
      }
    }
    let wake: (() => void) | undefined;
    const w: Watcher = {
      collection: path,
      push: (e) => {
        queue.push(e);
        wake?.();
      },
    };
    this.watchers.add(w);
    const selector = query.labelSelector;
    try {
      while (!opts.signal?.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          if (typeof selector === "string" && next.object.metadata.labels?.[selector] === undefined) continue;
          yield next as unknown as WatchEvent<T>;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          opts.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      this.watchers.delete(w);
    }
  }

  writes(method?: string, pathPart?: string): Recorded[] {
    return this.requests.filter(
      (r) =>
        r.method !== "GET" &&
        (method === undefined || r.method === method) &&
        (pathPart === undefined || r.path.includes(pathPart)),
    );
  }
}
