// src/kube against a real API server: the raw JSON client (requests, errors, paging, watch)
// and the list+watch Reflector (paged list, ordered events, bookmarks, relist after 410 Gone,
// errors that name the request, stop).
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ApiError,
  FIRST_PAGE_LIMIT,
  HANDOVER_ITEMS,
  isStatus,
  KubeHttp,
  type KubeList,
  type KubeObject,
  MAX_PAGE_LIMIT,
  type RequestOptions,
} from "../../src/kube/http.js";
import { Reflector, type ReflectorEventType, type ReflectorHandler } from "../../src/kube/reflector.js";
import {
  compactEtcd,
  compactSkipReason,
  freshNamespace,
  kubeConfig,
  testerSkipReason,
  waitFor,
} from "../support/cluster.js";
import { UNCACHED_RESOURCE } from "../support/controlplane.js";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** A KubeHttp that records its requests and can rewrite a list answer, to observe paging. */
class RecordingHttp extends KubeHttp {
  readonly requests: { method: Method; path: string; query: RequestOptions["query"] }[] = [];
  /** Called on every list answer; may change it (e.g. make its resourceVersion stale). */
  rewriteList: ((list: KubeList<unknown>) => void) | undefined;

  protected override async requestSized<T>(
    method: Method,
    path: string,
    opts: RequestOptions = {},
  ): Promise<{ body: T; bytes: number }> {
    this.requests.push({ method, path, query: opts.query });
    const res = await super.requestSized<T>(method, path, opts);
    const list = res.body as KubeList<unknown> | undefined;
    if (method === "GET" && Array.isArray(list?.items) && list && this.rewriteList) this.rewriteList(list);
    return res;
  }
}

interface Recorded {
  kind: "listStart" | "synced" | "error" | ReflectorEventType;
  name?: string;
  listed?: boolean;
  value?: string;
  error?: unknown;
}

/** A handler that records everything, in order. */
function recorder(onEvent?: (type: ReflectorEventType, obj: KubeObject) => void): {
  log: Recorded[];
  handler: ReflectorHandler<KubeObject>;
  events: () => Recorded[];
  errors: () => unknown[];
} {
  const log: Recorded[] = [];
  return {
    log,
    handler: {
      onListStart: () => log.push({ kind: "listStart" }),
      onEvent: (type, obj, listed) => {
        onEvent?.(type, obj);
        log.push({ kind: type, name: obj.metadata?.name ?? "", listed });
      },
      onSynced: (rv) => log.push({ kind: "synced", value: rv }),
      onError: (error) => log.push({ kind: "error", error }),
    },
    events: () => log.filter((r) => r.kind === "ADDED" || r.kind === "MODIFIED" || r.kind === "DELETED"),
    errors: () => log.filter((r) => r.kind === "error").map((r) => r.error),
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail("the request should have been rejected"),
    (e: unknown) => e,
  );
}

const cmPath = (ns: string, name?: string) => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ""}`;

function configMap(name: string, labels: Record<string, string> = {}, data: Record<string, string> = {}) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, labels }, data };
}

/** Creates ConfigMaps `names` in `ns`, eight requests at a time. */
async function createConfigMaps(
  ns: string,
  names: readonly string[],
  labels: Record<string, string>,
  data: Record<string, string> = {},
): Promise<void> {
  await Promise.all(
    Array.from({ length: 8 }, async (_, k) => {
      for (let i = k; i < names.length; i += 8) {
        await http.request("POST", cmPath(ns), { body: configMap(names[i]!, labels, data) });
      }
    }),
  );
}

let http: KubeHttp;
const reflectors: Reflector<KubeObject>[] = [];

/** A reflector stopped after the test, pass or fail. */
function reflector(opts: ConstructorParameters<typeof Reflector<KubeObject>>[0]): Reflector<KubeObject> {
  const r = new Reflector<KubeObject>(opts);
  reflectors.push(r);
  return r;
}

beforeAll(() => {
  http = new KubeHttp(kubeConfig());
});

afterEach(async () => {
  await Promise.all(reflectors.splice(0).map((r) => r.stop()));
});

describe("KubeHttp", () => {
  it("creates, reads, patches and replaces objects; errors name method, path, status and reason", async () => {
    const ns = await freshNamespace("http");
    const created = await http.request<KubeObject>("POST", cmPath(ns), {
      body: configMap("a", {}, { k: "1" }),
    });
    expect(created.metadata?.uid).toBeTruthy();

    const patched = await http.request<KubeObject & { data: Record<string, string> }>(
      "PATCH",
      cmPath(ns, "a"),
      { contentType: "application/merge-patch+json", body: { data: { k: "2", j: "x" } } },
    );
    expect(patched.data).toEqual({ k: "2", j: "x" });

    // A replace at the version read before the patch is refused.
    const stale = await rejection(http.request("PUT", cmPath(ns, "a"), { body: created }));
    expect(isStatus(stale, 409)).toBe(true);
    expect(isStatus(stale, 404)).toBe(false);

    const missing = await rejection(http.request("GET", cmPath(ns, "missing")));
    expect(missing).toBeInstanceOf(ApiError);
    expect(missing).toMatchObject({
      statusCode: 404,
      reason: "NotFound",
      method: "GET",
      path: cmPath(ns, "missing"),
    });
    expect((missing as ApiError).message).toBe(
      `GET ${cmPath(ns, "missing")}: 404 NotFound: configmaps "missing" not found`,
    );

    // Validation errors keep the API server's message, which names the field and the value.
    const invalid = await rejection(http.request("POST", cmPath(ns), { body: configMap("Not_A_Name") }));
    expect(invalid).toMatchObject({ statusCode: 422, reason: "Invalid" });
    expect((invalid as ApiError).message).toContain('metadata.name: Invalid value: "Not_A_Name"');

    await http.request("DELETE", cmPath(ns, "a"));
    expect(isStatus(await rejection(http.request("GET", cmPath(ns, "a"))), 404)).toBe(true);
  });

  it("names the server when the connection fails", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.SLOTMAP_TEST_KUBECONFIG ?? "");
    const cluster = kc.getCurrentCluster()!;
    // Port 1 on loopback: nothing listens there.
    kc.loadFromOptions({
      clusters: [{ ...cluster, server: "https://127.0.0.1:1" }],
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    const err = await rejection(new KubeHttp(kc).request("GET", "/api/v1/namespaces"));
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ApiError);
    expect((err as Error).message).toMatch(
      /^GET https:\/\/127\.0\.0\.1:1\/api\/v1\/namespaces: request failed: .+/,
    );
  });

  it("lists every page of a collection with a label selector", async () => {
    const ns = await freshNamespace("pages");
    const names = Array.from({ length: 23 }, (_, i) => `cm-${String(i).padStart(2, "0")}`);
    for (const name of names) await http.request("POST", cmPath(ns), { body: configMap(name, { set: "a" }) });
    await http.request("POST", cmPath(ns), { body: configMap("other", { set: "b" }) });

    const rec = new RecordingHttp(kubeConfig());
    const list = await rec.listAll<KubeObject>(cmPath(ns), { labelSelector: "set=a" }, 5);
    expect(list.items.map((o) => o.metadata?.name)).toEqual(names);
    expect(list.metadata.resourceVersion).toMatch(/^\d+$/);
    // 23 items in pages of 5: five requests, each one continuing the previous.
    expect(rec.requests).toHaveLength(5);
    expect(rec.requests.every((r) => r.query?.limit === 5 && r.query.labelSelector === "set=a")).toBe(true);
    expect(rec.requests[0]?.query?.continue).toBeUndefined();
    expect(rec.requests.slice(1).every((r) => typeof r.query?.continue === "string")).toBe(true);
  });

  it("asks for the next page before handing a page over, and drops it when the consumer stops", async () => {
    const ns = await freshNamespace("ahead");
    const names = Array.from({ length: 12 }, (_, i) => `cm-${String(i).padStart(2, "0")}`);
    await createConfigMaps(ns, names, { set: "a" });
    const rec = new RecordingHttp(kubeConfig());
    const pages = rec.pages<KubeObject>(cmPath(ns), { labelSelector: "set=a" }, { pageSize: 5 });
    const first = await pages.next();
    expect(first.done).toBe(false);
    // Page 2 is on its way while the consumer holds page 1.
    expect(rec.requests).toHaveLength(2);
    expect(rec.requests[1]?.query?.continue).toEqual(expect.any(String));
    // Stopping early aborts the page fetched ahead; its failure is not reported anywhere.
    await pages.return(undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(rec.requests).toHaveLength(2);
    // A full iteration still yields every object once, in order.
    const rec2 = new RecordingHttp(kubeConfig());
    const seen: string[] = [];
    for await (const page of rec2.pages<KubeObject>(cmPath(ns), { labelSelector: "set=a" }, { pageSize: 5 }))
      for (const o of page.items) seen.push(o.metadata?.name ?? "");
    expect(seen).toEqual(names);
    expect(rec2.requests).toHaveLength(3);
  });

  it("adapts the page size to the bytes per item and lists every object exactly once", async () => {
    const ns = await freshNamespace("adaptive");
    // 600 small objects: the first page asks for 500, the next for as many as fill 4 MiB.
    const names = Array.from({ length: 600 }, (_, i) => `cm-${String(i).padStart(3, "0")}`);
    await createConfigMaps(ns, names, { set: "a" });
    const rec = new RecordingHttp(kubeConfig());
    const list = await rec.listAll<KubeObject>(cmPath(ns), { labelSelector: "set=a" });
    expect(list.items.map((o) => o.metadata?.name)).toEqual(names);
    expect(rec.requests.map((r) => r.query?.limit)).toEqual([FIRST_PAGE_LIMIT, MAX_PAGE_LIMIT]);
    expect(rec.requests[1]?.query?.continue).toEqual(expect.any(String));
    // A page larger than HANDOVER_ITEMS is handed over in parts, from one request.
    const rec1 = new RecordingHttp(kubeConfig());
    const parts: number[] = [];
    for await (const page of rec1.pages<KubeObject>(
      cmPath(ns),
      { labelSelector: "set=a" },
      { pageSize: 600 },
    ))
      parts.push(page.items.length);
    expect(parts).toEqual([HANDOVER_ITEMS, 600 - HANDOVER_ITEMS]);
    expect(rec1.requests).toHaveLength(1);

    // Larger objects (about 2 KB each) under a 100 KB budget: 500 first, then about 50 a page.
    const ns2 = await freshNamespace("adaptive");
    const pad = "x".repeat(2000);
    await createConfigMaps(ns2, names, { set: "c" }, { pad });
    const rec2 = new RecordingHttp(kubeConfig());
    const seen: string[] = [];
    for await (const page of rec2.pages<KubeObject>(
      cmPath(ns2),
      { labelSelector: "set=c" },
      { pageBytes: 100_000 },
    )) {
      for (const o of page.items) seen.push(o.metadata?.name ?? "");
    }
    expect(seen).toEqual(names);
    const limits = rec2.requests.map((r) => Number(r.query?.limit));
    expect(limits[0]).toBe(FIRST_PAGE_LIMIT);
    expect(limits.length).toBeGreaterThanOrEqual(3);
    expect(limits.slice(1).every((l) => l >= 30 && l <= 60)).toBe(true);
  });

  it("watches from a resourceVersion and yields events in order", async () => {
    const ns = await freshNamespace("watch");
    const list = await http.listAll<KubeObject>(cmPath(ns));
    const abort = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const ev of http.watch<KubeObject>(
        cmPath(ns),
        { resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 30 },
        { signal: abort.signal },
      )) {
        seen.push(`${ev.type} ${ev.object.metadata?.name}`);
        if (seen.length === 3) return; // leaving the loop closes the connection
      }
    })();
    await http.request("POST", cmPath(ns), { body: configMap("w") });
    await http.request("PATCH", cmPath(ns, "w"), {
      contentType: "application/merge-patch+json",
      body: { data: { a: "b" } },
    });
    await http.request("DELETE", cmPath(ns, "w"));
    await done;
    expect(seen).toEqual(["ADDED w", "MODIFIED w", "DELETED w"]);
  });
});

describe("Reflector", () => {
  it("lists in pages, then delivers add, modify and delete events in order", async () => {
    const ns = await freshNamespace("reflect");
    for (let i = 0; i < 12; i++) {
      await http.request("POST", cmPath(ns), { body: configMap(`pre-${i}`, { app: "x" }) });
    }
    await http.request("POST", cmPath(ns), { body: configMap("unlabelled") });

    const rec = new RecordingHttp(kubeConfig());
    const r = recorder();
    const refl = reflector({
      http: rec,
      path: cmPath(ns),
      labelSelector: "app=x",
      pageSize: 5,
      handler: r.handler,
    });
    await refl.start();

    expect(r.log[0]).toEqual({ kind: "listStart" });
    expect(r.events()).toHaveLength(12);
    expect(r.events().every((e) => e.kind === "ADDED" && e.listed === true)).toBe(true);
    const synced = r.log[13];
    expect(synced?.kind).toBe("synced");
    expect(synced?.value).toMatch(/^\d+$/);
    expect(refl.lastResourceVersion).toBe(synced?.value);
    expect(rec.requests.filter((q) => q.method === "GET")).toHaveLength(3); // 5 + 5 + 2
    expect(refl.stats).toMatchObject({ lists: 1, listedObjects: 12, errors: 0 });

    const patch = (name: string, data: Record<string, string>) =>
      http.request("PATCH", cmPath(ns, name), {
        contentType: "application/merge-patch+json",
        body: { data },
      });
    await http.request("POST", cmPath(ns), { body: configMap("a", { app: "x" }) });
    await http.request("POST", cmPath(ns), { body: configMap("b", { app: "x" }) });
    await http.request("POST", cmPath(ns), { body: configMap("ignored") }); // not selected
    await patch("a", { v: "1" });
    await patch("pre-3", { v: "1" });
    await http.request("DELETE", cmPath(ns, "b"));
    await patch("a", { v: "2" });
    await http.request("DELETE", cmPath(ns, "pre-0"));

    const expected = [
      ["ADDED", "a"],
      ["ADDED", "b"],
      ["MODIFIED", "a"],
      ["MODIFIED", "pre-3"],
      ["DELETED", "b"],
      ["MODIFIED", "a"],
      ["DELETED", "pre-0"],
    ];
    const watched = () => r.events().filter((e) => e.listed === false);
    await waitFor(() => watched().length >= expected.length, { description: "7 watch events" });
    expect(watched().map((e) => [e.kind, e.name])).toEqual(expected);
    expect(refl.stats).toMatchObject({ lists: 1, watchEvents: 7, errors: 0 });
    expect(r.errors()).toEqual([]);
  });

  it("takes bookmarks and survives watch timeouts without losing events", async () => {
    const ns = await freshNamespace("bookmark");
    const elsewhere = await freshNamespace("bookmark-other");
    const r = recorder();
    // A bookmark comes about 2 s before the server-side timeout; the watch then reconnects.
    const refl = reflector({ http, path: cmPath(ns), watchTimeoutSeconds: 4, handler: r.handler });
    await refl.start();
    const listed = refl.lastResourceVersion;

    // A write to another namespace moves the cache's resourceVersion but sends this watch no event.
    // The API server sends a watch a bookmark only for a resourceVersion reached after the watch
    // started, so keep writing until one comes: over HTTP/1.1 the watch opens a new connection
    // and a single write made right after start() usually lands before the watch exists.
    let noise = 0;
    await waitFor(
      async () => {
        if (refl.stats.bookmarks >= 1) return true;
        await http.request("POST", cmPath(elsewhere), { body: configMap(`noise-${noise++}`) });
        return false;
      },
      { timeoutMs: 20_000, intervalMs: 500, description: "a bookmark" },
    );
    expect(r.events()).toEqual([]);
    expect(refl.lastResourceVersion).not.toBe(listed);

    // After at least one reconnect (4 s timeout), events still arrive, each exactly once.
    await new Promise((res) => setTimeout(res, 5_000));
    await http.request("POST", cmPath(ns), { body: configMap("after-reconnect") });
    await waitFor(() => r.events().length >= 1, { description: "the event after the reconnect" });
    await new Promise((res) => setTimeout(res, 500));
    expect(r.events()).toEqual([{ kind: "ADDED", name: "after-reconnect", listed: false }]);
    expect(refl.stats.lists).toBe(1);
    expect(r.errors()).toEqual([]);
  });

  it.skipIf(compactSkipReason() !== undefined)(
    "relists when its resourceVersion was compacted away (410 Gone), then keeps watching",
    async () => {
      // PodTemplates: the local control plane serves them without watch cache, so a watch
      // reads etcd's history, which compaction removes (cached resources replay the cache).
      const ns = await freshNamespace("gone");
      const ptPath = `/api/v1/namespaces/${ns}/${UNCACHED_RESOURCE}`;
      const podTemplate = (name: string) => ({
        apiVersion: "v1",
        kind: "PodTemplate",
        metadata: { name },
        template: { spec: { containers: [{ name: "c", image: "example.invalid/c" }] } },
      });
      const old = (await http.listAll<KubeObject>(ptPath)).metadata.resourceVersion ?? "";
      await http.request("POST", ptPath, { body: podTemplate("one") });
      await http.request("POST", ptPath, { body: podTemplate("two") });

      compactEtcd();
      await waitFor(
        async () => {
          for await (const ev of http.watch<{ code?: number }>(ptPath, {
            resourceVersion: old,
            timeoutSeconds: 1,
          })) {
            return ev.type === "ERROR" && ev.object.code === 410;
          }
          return false;
        },
        { description: `a watch from resourceVersion ${old} to get 410 Gone after compaction` },
      );

      // The reflector's first list claims that old version, as after a long disconnection.
      const rec = new RecordingHttp(kubeConfig());
      let rewritten = 0;
      rec.rewriteList = (list) => {
        if (rewritten++ === 0) list.metadata.resourceVersion = old;
      };
      const r = recorder();
      const refl = reflector({ http: rec, path: ptPath, handler: r.handler });
      await refl.start();
      await waitFor(() => r.log.filter((e) => e.kind === "synced").length >= 2, {
        description: "the relist after 410 Gone",
      });

      const kinds = r.log.map((e) => (e.kind === "ADDED" ? `${e.kind} ${e.name}` : e.kind));
      expect(kinds).toEqual([
        "listStart",
        "ADDED one",
        "ADDED two",
        "synced",
        "listStart",
        "ADDED one",
        "ADDED two",
        "synced",
      ]);
      // 410 is the normal way to learn that a relist is needed: not an error.
      expect(r.errors()).toEqual([]);
      expect(refl.lastResourceVersion).not.toBe(old);

      await http.request("POST", ptPath, { body: podTemplate("three") });
      await waitFor(() => r.events().some((e) => e.name === "three"), {
        description: "the event after the relist",
      });
      expect(r.events().filter((e) => !e.listed)).toEqual([{ kind: "ADDED", name: "three", listed: false }]);
      expect(refl.stats.lists).toBe(2);
    },
  );

  it("redelivers an event whose handler threw, after reporting the error", async () => {
    const ns = await freshNamespace("throw");
    let thrown = false;
    const boom = new Error("handler bug");
    const r = recorder((type) => {
      if (type === "MODIFIED" && !thrown) {
        thrown = true;
        throw boom;
      }
    });
    const refl = reflector({ http, path: cmPath(ns), handler: r.handler });
    await refl.start();
    await http.request("POST", cmPath(ns), { body: configMap("x") });
    await http.request("PATCH", cmPath(ns, "x"), {
      contentType: "application/merge-patch+json",
      body: { data: { a: "1" } },
    });
    await http.request("DELETE", cmPath(ns, "x"));
    await waitFor(() => r.events().some((e) => e.kind === "DELETED"), { description: "the delete event" });
    expect(r.errors()).toEqual([boom]);
    expect(r.events().map((e) => e.kind)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    expect(refl.stats.lists).toBe(1);
  });

  it("stops promptly mid-watch and delivers nothing afterwards", async () => {
    const ns = await freshNamespace("stop");
    const r = recorder();
    const refl = reflector({ http, path: cmPath(ns), handler: r.handler });
    await refl.start();
    await refl.stop();
    await http.request("POST", cmPath(ns), { body: configMap("late") });
    await new Promise((res) => setTimeout(res, 500));
    expect(r.events()).toEqual([]);
    expect(r.errors()).toEqual([]);
  });

  describe.skipIf(testerSkipReason() !== undefined)("errors (non-admin identity)", () => {
    it("reports a forbidden list naming the request, retries, and rejects start() on stop()", async () => {
      const ns = await freshNamespace("forbidden");
      const r = recorder();
      const refl = reflector({
        http: new KubeHttp(kubeConfig("tester")),
        path: cmPath(ns),
        handler: r.handler,
      });
      const started = refl.start();
      await waitFor(() => r.errors().length >= 2, { description: "two failed lists (a retry)" });
      const err = r.errors()[0];
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ statusCode: 403, reason: "Forbidden", method: "GET", path: cmPath(ns) });
      expect((err as ApiError).message).toMatch(
        new RegExp(`^GET ${cmPath(ns)}: 403 Forbidden: .*cannot list resource "configmaps"`),
      );
      expect(refl.stats.errors).toBeGreaterThanOrEqual(2);

      await refl.stop();
      await expect(started).rejects.toThrow(
        `reflector for ${cmPath(ns)} stopped before its first list completed`,
      );
    });

    it("reports a forbidden watch naming the request", async () => {
      const ns = await freshNamespace("nowatch");
      await http.request("POST", `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
        body: {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "Role",
          metadata: { name: "list-only" },
          rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list"] }],
        },
      });
      const tester = new KubeHttp(kubeConfig("tester"));
      const who = await tester.request<{ status: { userInfo: { username: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
      );
      await http.request("POST", `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
        body: {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "list-only" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "list-only" },
          subjects: [
            { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: who.status.userInfo.username },
          ],
        },
      });
      await waitFor(
        async () => {
          await tester.request("GET", cmPath(ns));
          return true;
        },
        { timeoutMs: 15_000, description: "the RoleBinding to allow list" },
      );

      const r = recorder();
      const refl = reflector({ http: tester, path: cmPath(ns), handler: r.handler });
      await refl.start(); // the list is allowed
      await waitFor(() => r.errors().length >= 1, { description: "the failed watch" });
      const err = r.errors()[0];
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ statusCode: 403, path: cmPath(ns) });
      expect((err as ApiError).message).toMatch(/cannot watch resource "configmaps"/);
    });
  });
});
