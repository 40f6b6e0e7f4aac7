// The client library against a real API server, with the real coordinator running in-process:
// shard membership (Lease acquire, acks, self-fencing, release), ownership following the SlotMap
// status, handoffs that wait for in-flight reconciles, and the checksum example controller.
import net from "node:net";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startChecksumController } from "../../examples/checksum-controller/app.js";
import { parseChecksumConfig } from "../../examples/checksum-controller/config.js";
import { secretChecksum } from "../../examples/checksum-controller/reconciler.js";
import { parseSlotMapStatus, type SlotMapStatus } from "../../src/api/index.js";
import { projectionName } from "../../src/api/projection.js";
import {
  createShardMember,
  type ReconcileRequest,
  type ShardedController,
  type ShardLogger,
  type ShardMember,
  type ShardMemberOptions,
  startController,
} from "../../src/client/index.js";
import { parseCoordinatorConfig } from "../../src/coordinator/config.js";
import { TAKEOVER_HOLDER } from "../../src/coordinator/core/types.js";
import { runCoordinator } from "../../src/coordinator/main.js";
import { isStatus, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { keySlot } from "../../src/slots/hash.js";
import { parseSlotRanges } from "../../src/slots/ranges.js";
import { SLOT_COUNT } from "../../src/slots/types.js";
import { freshNamespace, kubeConfig, waitFor } from "../support/cluster.js";
import { kubeConfigVia as viaProxy } from "../support/fault-proxy.js";
import { ensureCrd } from "./coordinator-harness.js";

/** Short timings so that expiry and fencing happen within a test. */
const TIMING = { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 0.5 } as const;

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; acquireTime?: string };
}

let http: KubeHttp;
const coordinatorStop = new AbortController();
let coordinatorDone: Promise<void> | undefined;
/** Log lines of the members and the coordinator, printed when a test fails. */
const logs: string[] = [];
const cleanups: Array<() => Promise<unknown>> = [];

function testLogger(name: string): ShardLogger {
  const line =
    (level: string) =>
    (fields: object, msg: string): void => {
      logs.push(`${new Date().toISOString()} ${name} ${level} ${msg} ${JSON.stringify(fields)}`);
    };
  return { debug: () => {}, info: line("info"), warn: line("warn"), error: line("error") };
}

beforeAll(async () => {
  http = new KubeHttp(kubeConfig());
  await ensureCrd();
  const config = parseCoordinatorConfig(
    [
      "--leader-elect",
      "false",
      "--metrics-bind-address",
      "0",
      "--health-probe-bind-address",
      "0",
      "--identity",
      "it-coordinator",
      "--orphan-after",
      "30",
    ],
    {},
  );
  const coordinatorLog = pino(
    { level: "info" },
    { write: (s: string) => void logs.push(`coordinator ${s.trimEnd()}`) },
  );
  coordinatorDone = runCoordinator(config, {
    signal: coordinatorStop.signal,
    kubeConfig: kubeConfig(),
    logger: coordinatorLog,
  });
});

afterEach(async (ctx) => {
  await Promise.allSettled(cleanups.splice(0).map((c) => c()));
  if (ctx.task.result?.state === "fail") process.stderr.write(`${logs.join("\n")}\n`);
  logs.length = 0;
});

afterAll(async () => {
  coordinatorStop.abort();
  await coordinatorDone;
});

// ---------------------------------------------------------------- helpers

let counter = 0;

/** A SlotMap for secrets (configmaps controlled) with its own lease namespace. */
async function newSlotMap(
  resources?: unknown[],
  extraSpec: Record<string, unknown> = {},
): Promise<{ name: string; leaseNamespace: string }> {
  const leaseNamespace = await freshNamespace("client-leases");
  const name = `client-${process.pid}-${++counter}-${Date.now().toString(36)}`;
  await http.request("POST", "/apis/slotmap.dev/v1alpha1/slotmaps", {
    body: {
      apiVersion: "slotmap.dev/v1alpha1",
      kind: "SlotMap",
      metadata: { name },
      spec: {
        leaseNamespace,
        resources: resources ?? [
          { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
        ],
        policy: { handoffTimeoutSeconds: 60 },
        ...extraSpec,
      },
    },
  });
  cleanups.push(() => http.request("DELETE", `/apis/slotmap.dev/v1alpha1/slotmaps/${name}`).catch(() => {}));
  return { name, leaseNamespace };
}

function member(
  sm: { name: string; leaseNamespace: string },
  shard: string,
  extra: Partial<ShardMemberOptions> = {},
): ShardMember {
  const m = createShardMember({
    kubeConfig: kubeConfig(),
    slotMap: sm.name,
    shard,
    logger: testLogger(shard),
    ...TIMING,
    ...extra,
  });
  cleanups.push(() => m.stop({ timeoutMs: 10_000 }));
  return m;
}

async function slotMapStatus(name: string): Promise<SlotMapStatus | undefined> {
  const o = await http.request<KubeObject>("GET", `/apis/slotmap.dev/v1alpha1/slotmaps/${name}`);
  if (o.status === undefined) return undefined;
  const r = parseSlotMapStatus(o.status);
  if (!r.ok) throw new Error(`invalid status: ${JSON.stringify(r.errors)}`);
  return r.value;
}

/**
 * Whether member `m` applied the projection of the current status: its generation is that of its
 * SlotMapShard (the status generation where its part of the table last changed) and the projection
 * grants what the status grants it.
 */
async function appliedCurrent(smName: string, ns: string, shard: string, m: ShardMember): Promise<boolean> {
  const st = await slotMapStatus(smName);
  let p: KubeObject;
  try {
    p = await http.request<KubeObject>(
      "GET",
      `/apis/slotmap.dev/v1alpha1/namespaces/${ns}/slotmapshards/${projectionName(smName, shard)}`,
    );
  } catch (err) {
    if (isStatus(err, 404)) return false;
    throw err;
  }
  const spec = p.spec as { assignmentGeneration: number; entry?: { slots: string } } | undefined;
  const row = st?.shards.find((e) => e.name === shard);
  return spec?.assignmentGeneration === m.generation && (spec.entry?.slots ?? "") === (row?.slots ?? "");
}

function getLease(ns: string, name: string): Promise<Lease> {
  return http.request<Lease>("GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`);
}

/** Slots of a shard in a status (parsed), as a Set. */
function slotsOf(status: SlotMapStatus | undefined, shard: string): Set<number> {
  const out = new Set<number>();
  const e = status?.shards.find((s) => s.name === shard);
  for (const r of parseSlotRanges(e?.slots ?? "")) for (let s = r.start; s <= r.end; s++) out.add(s);
  return out;
}

function ownedSet(m: ShardMember): Set<number> {
  const out = new Set<number>();
  for (let s = 0; s < SLOT_COUNT; s++) if (m.ownsSlot(s)) out.add(s);
  return out;
}

/** A Secret name in `ns` whose slot satisfies `pred`. */
function secretNameWhere(ns: string, prefix: string, pred: (slot: number) => boolean): string {
  for (let i = 0; ; i++) {
    const name = `${prefix}-${i}`;
    if (pred(keySlot(`/Secret/${ns}/${name}`))) return name;
  }
}

async function createSecret(ns: string, name: string, data: Record<string, string>): Promise<KubeObject> {
  return http.request<KubeObject>("POST", `/api/v1/namespaces/${ns}/secrets`, {
    body: {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
    },
  });
}

/** A ConfigMap `<secret>-cm` whose controller owner is `secret` (a controlled resource). */
async function createControlledConfigMap(ns: string, secret: KubeObject): Promise<KubeObject> {
  return http.request<KubeObject>("POST", `/api/v1/namespaces/${ns}/configmaps`, {
    body: {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: `${secret.metadata?.name}-cm`,
        ownerReferences: [
          {
            apiVersion: "v1",
            kind: "Secret",
            name: secret.metadata?.name,
            uid: secret.metadata?.uid,
            controller: true,
          },
        ],
      },
    },
  });
}

/** 40 Secrets `<prefix>-<i>` in `ns`, each controlling a ConfigMap; returns their controller keys. */
async function secretsWithConfigMaps(ns: string, prefix: string): Promise<string[]> {
  const names = Array.from({ length: 40 }, (_, i) => `${prefix}-${i}`);
  const secrets = await Promise.all(names.map((n) => createSecret(ns, n, { v: n })));
  await Promise.all(secrets.map((sec) => createControlledConfigMap(ns, sec)));
  return names.map((n) => `/Secret/${ns}/${n}`);
}

/** Waits until no migration is pending, `shard` holds slots and member `m` applied that status. */
async function handedOffTo(smName: string, shard: string, m: ShardMember): Promise<void> {
  await waitFor(
    async () => {
      const st = await slotMapStatus(smName);
      return (
        st?.migrations.length === 0 &&
        slotsOf(st, shard).size > 0 &&
        (await appliedCurrent(smName, m.status().leaseNamespace ?? "", shard, m))
      );
    },
    { description: `the handoff to ${shard}` },
  );
}

/** A promise the test resolves by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

// ---------------------------------------------------------------- tests

describe("shard membership", () => {
  it("acquires its Lease; ownership follows the status the coordinator writes; acks reach the Lease", async () => {
    const sm = await newSlotMap();
    const a = member(sm, "shard-a");
    await a.ready;
    const lease = await getLease(sm.leaseNamespace, "shard-a");
    expect(lease.spec?.holderIdentity).toBe(a.identity);
    expect(lease.spec?.leaseDurationSeconds).toBe(4);
    expect(lease.metadata?.labels?.["slotmap.dev/slotmap"]).toBe(sm.name);

    // Alone: the coordinator grants every slot to shard-a.
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const s1 = await slotMapStatus(sm.name);
    expect(slotsOf(s1, "shard-a").size).toBe(SLOT_COUNT);
    expect(s1?.shards.find((s) => s.name === "shard-a")?.holderIdentity).toBe(a.identity);

    // A second shard: slots are split; the two never own the same slot, and together own all.
    const b = member(sm, "shard-b");
    await b.ready;
    await waitFor(
      async () => {
        const st = await slotMapStatus(sm.name);
        return (
          st !== undefined &&
          st.migrations.length === 0 &&
          slotsOf(st, "shard-b").size > 0 &&
          (await appliedCurrent(sm.name, sm.leaseNamespace, "shard-a", a)) &&
          (await appliedCurrent(sm.name, sm.leaseNamespace, "shard-b", b))
        );
      },
      { timeoutMs: 60_000, description: "the handoff to shard-b to complete" },
    );
    const st = await slotMapStatus(sm.name);
    const ownA = ownedSet(a);
    const ownB = ownedSet(b);
    expect(ownA).toEqual(slotsOf(st, "shard-a"));
    expect(ownB).toEqual(slotsOf(st, "shard-b"));
    expect(ownA.size + ownB.size).toBe(SLOT_COUNT);
    expect([...ownA].some((s) => ownB.has(s))).toBe(false);
    expect(Math.abs(ownA.size - ownB.size)).toBeLessThanOrEqual(1);

    // Both acknowledged what they applied in their Leases (for this SlotMap instance): the generation
    // of their projection, where their part of the table last changed.
    for (const [m, name] of [
      [a, "shard-a"],
      [b, "shard-b"],
    ] as const) {
      await waitFor(
        async () => {
          const l = await getLease(sm.leaseNamespace, name);
          return (
            l.metadata?.annotations?.["slotmap.dev/observed-generation"] === String(m.generation) &&
            l.metadata?.annotations?.["slotmap.dev/slotmap-uid"] === m.status().slotMapUid
          );
        },
        { description: `${name}'s ack in its Lease` },
      );
    }

    // owns(obj) hashes by the SlotMap's rules: a Secret by its key, a ConfigMap by its controller.
    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "x", namespace: "ns" } };
    const slot = keySlot("/Secret/ns/x");
    expect(a.slotOf(secret)).toBe(slot);
    expect(a.owns(secret)).toBe(ownA.has(slot));
    expect(b.owns(secret)).toBe(ownB.has(slot));
    const cm = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "x-checksum",
        namespace: "ns",
        ownerReferences: [{ apiVersion: "v1", kind: "Secret", name: "x", uid: "u", controller: true }],
      },
    };
    expect(a.slotOf(cm)).toBe(slot);
    expect(a.slotOf({ ...cm, metadata: { ...cm.metadata, ownerReferences: [] } })).toBeUndefined();
    expect(
      a.owns({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x", namespace: "ns" } }),
    ).toBe(false);
  });
});

/** A TCP proxy to the API server that the test can cut (every connection dropped, new ones refused). */
async function tcpProxy(
  target: URL,
): Promise<{ port: number; cut(): void; heal(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("acks", () => {
  it("only an awaited ack is written at once: a joiner's acquire carries none, a source acks its handoff before its next renewal", async () => {
    // A renew cadence far longer than a handoff, so that an ack written at once and one that
    // waits for the cadence are told apart.
    const SLOW = { leaseDurationSeconds: 12, renewDeadlineSeconds: 10, retryPeriodSeconds: 6 } as const;
    const sm = await newSlotMap();
    const versions: Array<{ t: number; name: string; holder: string; ack: string | undefined }> = [];
    const leases = new Reflector<Lease>({
      http,
      path: `/apis/coordination.k8s.io/v1/namespaces/${sm.leaseNamespace}/leases`,
      handler: {
        onEvent: (type, l) => {
          if (type === "DELETED") return;
          versions.push({
            t: performance.now(),
            name: l.metadata?.name ?? "",
            holder: l.spec?.holderIdentity ?? "",
            ack: l.metadata?.annotations?.["slotmap.dev/observed-generation"],
          });
        },
      },
    });
    await leases.start();
    cleanups.push(() => leases.stop());

    const a = member(sm, "shard-a", SLOW);
    await a.ready;
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    // Settle: shard-a's acks of the first generations are written (a drain barrier waits for them).
    await waitFor(async () => (await ackOf(sm.leaseNamespace, "shard-a")) === a.generation, {
      timeoutMs: 20_000,
      description: "shard-a's ack of the table that gives it every slot",
    });

    // Start shard-b right after a renewal of shard-a, so that its next one is 6 s away.
    const seen = versions.length;
    await waitFor(() => versions.slice(seen).some((v) => v.name === "shard-a"), {
      timeoutMs: 15_000,
      description: "a renewal of shard-a",
    });
    const b = member(sm, "shard-b", SLOW);
    await b.ready;
    const joined = performance.now();
    await waitFor(
      async () => {
        const st = await slotMapStatus(sm.name);
        return st !== undefined && st.migrations.length === 0 && slotsOf(st, "shard-b").size > 0;
      },
      { timeoutMs: 30_000, description: "the handoff to shard-b to be committed" },
    );
    const committedAfter = performance.now() - joined;

    // The joiner's acquire carried no ack: nobody waited for one, and a fresh Lease with an ack
    // would be held by the coordinator until seen renewing.
    const acquire = versions.find((v) => v.name === "shard-b" && v.holder === b.identity);
    expect(acquire).toBeDefined();
    expect(acquire?.ack).toBeUndefined();
    // The source wrote its ack of the handoff at once, not at its 6 s cadence.
    expect(committedAfter).toBeLessThan(4_000);
  });
});

async function ackOf(ns: string, shard: string): Promise<number> {
  const l = await getLease(ns, shard);
  return Number(l.metadata?.annotations?.["slotmap.dev/observed-generation"] ?? 0);
}

describe("handoff", () => {
  it("acknowledges lost slots only after the in-flight reconcile on them finished", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-handoff");
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });

    // One Secret in each half of the table: whichever half moves to shard-b, one of them is in it.
    const low = secretNameWhere(ns, "low", (s) => s < 4096);
    const high = secretNameWhere(ns, "high", (s) => s >= 12288);
    const blocked = gate();
    const started = new Map<string, ReconcileRequest>();
    const finished = new Set<string>();
    const ctrl = startController({
      member: a,
      concurrency: 4,
      logger: testLogger("ctrl-a"),
      reconcile: async (req) => {
        if (req.namespace !== ns) return;
        started.set(req.key, req);
        await blocked.promise;
        finished.add(req.key);
      },
    });
    cleanups.push(async () => {
      blocked.open();
      await ctrl.stop();
    });
    await createSecret(ns, low, { v: "1" });
    await createSecret(ns, high, { v: "1" });
    await waitFor(() => started.size === 2, { description: "both reconciles to start (and block)" });

    const b = member(sm, "shard-b");
    await b.ready;
    const st = await waitFor(
      async () => {
        const s = await slotMapStatus(sm.name);
        return s?.migrations.some((m) => m.from === "shard-a" && m.to === "shard-b") ? s : undefined;
      },
      { description: "a migration from shard-a to shard-b" },
    );
    const migration = st.migrations.find((m) => m.from === "shard-a")!;
    const moving = new Set<number>();
    for (const r of parseSlotRanges(migration.slots)) for (let s = r.start; s <= r.end; s++) moving.add(s);
    const held = [...started.values()].find((r) => moving.has(r.slot));
    expect(held, "a blocked reconcile in the migrating slots").toBeDefined();
    const slot = held!.slot;

    // shard-a applied the generation: it no longer owns the slot and may not start it, but the
    // reconcile keeps running, so it does not ack; nobody owns the slot meanwhile.
    await waitFor(() => a.generation >= migration.generation, {
      description: "shard-a to apply the migration",
    });
    expect(a.ownsSlot(slot)).toBe(false);
    expect(a.mayStart(slot)).toBe(false);
    await sleep(2_000); // several renew periods: acks would have been written by now
    expect(await ackOf(sm.leaseNamespace, "shard-a")).toBeLessThan(migration.generation);
    expect(b.ownsSlot(slot)).toBe(false);
    expect((await slotMapStatus(sm.name))?.migrations.some((m) => m.from === "shard-a")).toBe(true);
    expect(held!.signal.aborted).toBe(false);
    expect(finished.size).toBe(0);

    blocked.open();
    await waitFor(async () => (await ackOf(sm.leaseNamespace, "shard-a")) >= migration.generation, {
      description: "shard-a to ack once the reconcile finished",
    });
    expect(finished.has(held!.key)).toBe(true);
    await waitFor(() => b.ownsSlot(slot), { description: "shard-b to own the slot" });
    expect(a.ownsSlot(slot)).toBe(false);
  });
});

describe("the reconcile author's toolkit", () => {
  it("req.write stamps the fencing token, carries a resourceVersion precondition and the signal; req.event records an Event on the root", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-writer");
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const cms = `/api/v1/namespaces/${ns}/configmaps`;
    const results: Array<Record<string, unknown>> = [];
    const ctrl = startController({
      member: a,
      logger: testLogger("ctrl-writer"),
      reconcile: async (req) => {
        if (req.namespace !== ns || results.length > 0) return;
        const made = await req.write.create(cms, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `${req.name}-w` },
          data: { v: "1" },
        });
        const rv = (made.metadata as unknown as { resourceVersion: string }).resourceVersion;
        const updated = await req.write.update(`${cms}/${req.name}-w`, { ...made, data: { v: "2" } });
        // The first version is stale now: its precondition fails instead of overwriting.
        const stale = await req.write
          .update(`${cms}/${req.name}-w`, { ...made, data: { v: "3" } })
          .catch((e) => e);
        const stalePatch = await req.write
          .patch(`${cms}/${req.name}-w`, { data: { v: "4" } }, { resourceVersion: rv })
          .catch((e) => e);
        const patched = await req.write.patch(`${cms}/${req.name}-w`, { data: { v: "5" } });
        const missing = await Promise.resolve()
          .then(() => req.write.update(`${cms}/${req.name}-w`, { metadata: { name: `${req.name}-w` } }))
          .catch((e) => e);
        await req.event("Normal", "ChecksumWritten", `wrote ${req.name}-w`);
        results.push({ made, updated, stale, stalePatch, patched, missing, fence: req.fence });
      },
    });
    cleanups.push(() => ctrl.stop());
    await createSecret(ns, "writer", { v: "1" });
    await waitFor(() => results.length === 1, { description: "the reconcile to write" });
    const r = results[0]!;
    const ann = (o: unknown) => (o as KubeObject).metadata?.annotations ?? {};
    expect(ann(r.made)["slotmap.dev/fence"]).toBe(r.fence);
    expect(ann(r.updated)["slotmap.dev/fence"]).toBe(r.fence);
    expect(ann(r.patched)["slotmap.dev/fence"]).toBe(r.fence);
    expect((r.updated as { data: Record<string, string> }).data.v).toBe("2");
    expect(isStatus(r.stale, 409)).toBe(true);
    expect(isStatus(r.stalePatch, 409)).toBe(true);
    expect((r.patched as { data: Record<string, string> }).data.v).toBe("5");
    expect(String(r.missing)).toContain("metadata.resourceVersion is required");
    const events = await waitFor(
      async () => {
        const list = await http.request<{ items: Array<Record<string, unknown>> }>(
          "GET",
          `/api/v1/namespaces/${ns}/events`,
        );
        const e = list.items.find((x) => x.reason === "ChecksumWritten");
        return e;
      },
      { description: "the Event" },
    );
    expect(events).toMatchObject({
      type: "Normal",
      message: "wrote writer-w",
      involvedObject: { kind: "Secret", name: "writer", namespace: ns },
      reportingComponent: "slotmap-shard",
    });
  });
});

describe("server-side selectors", () => {
  it("a resource's labelSelector is applied to every list and watch: other objects are never cached nor reconciled", async () => {
    const sm = await newSlotMap([{ group: "", resource: "configmaps", labelSelector: "app=demo" }]);
    const ns = await freshNamespace("client-selector");
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const seen = new Set<string>();
    const ctrl = startController({
      member: a,
      logger: testLogger("ctrl-selector"),
      reconcile: async (req) => {
        if (req.namespace === ns) seen.add(req.name);
      },
    });
    cleanups.push(() => ctrl.stop());
    for (let i = 0; i < 6; i++) {
      await http.request("POST", `/api/v1/namespaces/${ns}/configmaps`, {
        body: {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `cm-${i}`, labels: i % 2 === 0 ? { app: "demo" } : { app: "other" } },
        },
      });
    }
    await waitFor(() => seen.size === 3, { description: "the 3 app=demo ConfigMaps reconciled" });
    await sleep(1_000);
    expect([...seen].sort()).toEqual(["cm-0", "cm-2", "cm-4"]);
    const cached = [0, 1, 2, 3, 4, 5].filter((i) => ctrl.get(`/ConfigMap/${ns}/cm-${i}`) !== undefined);
    expect(cached).toEqual([0, 2, 4]);
  });
});

describe("self-fencing", () => {
  it("stops starting and aborts in-flight reconciles at once when its Lease is taken over", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-fence");
    const a = member(sm, "shard-a");
    const fences: string[] = [];
    a.subscribe({ fenced: (reason) => fences.push(reason) });
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const firstIdentity = a.identity;

    let running: ReconcileRequest | undefined;
    const ctrl = startController({
      member: a,
      logger: testLogger("ctrl-a"),
      reconcile: async (req) => {
        if (req.namespace !== ns || running !== undefined) return;
        running = req;
        // Honours its signal, as a reconciler must.
        await new Promise<void>((resolve) =>
          req.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
      },
    });
    cleanups.push(() => ctrl.stop());
    await createSecret(ns, "s", { v: "1" });
    await waitFor(() => running, { description: "the reconcile to start" });

    // Someone else takes the Lease (a resourceVersion precondition, as any taker must use).
    const lease = await getLease(sm.leaseNamespace, "shard-a");
    await http.request("PUT", `/apis/coordination.k8s.io/v1/namespaces/${sm.leaseNamespace}/leases/shard-a`, {
      body: { ...lease, spec: { ...lease.spec, holderIdentity: "intruder" } },
    });
    await waitFor(() => fences.includes("leaseLost"), { description: "shard-a to fence itself" });
    expect(running!.signal.aborted).toBe(true);
    expect(a.status().ownedSlots).toBe(0);
    expect(a.mayStart(running!.slot)).toBe(false);

    // The intruder never renews: after a lease duration shard-a acquires again, as a new
    // incarnation, and the coordinator grants the slots to that new identity.
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, {
      timeoutMs: 60_000,
      description: "shard-a to own the slots again",
    });
    expect(a.identity).toBeDefined();
    expect(a.identity).not.toBe(firstIdentity);
    const st = await slotMapStatus(sm.name);
    expect(st?.shards.find((s) => s.name === "shard-a")?.holderIdentity).toBe(a.identity);
  });

  it("fences itself when it cannot renew within renewDeadline, before the coordinator takes over", async () => {
    const sm = await newSlotMap();
    const proxy = await tcpProxy(new URL(kubeConfig().getCurrentCluster()!.server));
    cleanups.push(() => proxy.close());
    const a = member(sm, "shard-a", { kubeConfig: viaProxy(kubeConfig(), proxy.port) });
    const fenced: Array<{ reason: string; leaseHolder: Promise<string | undefined> }> = [];
    a.subscribe({
      fenced: (reason) =>
        fenced.push({
          reason,
          // Read right after the fence, without the proxy: the coordinator has not taken over yet.
          leaseHolder: getLease(sm.leaseNamespace, "shard-a").then((l) => l.spec?.holderIdentity),
        }),
    });
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const identity = a.identity;

    proxy.cut(); // the API server is unreachable for shard-a from now on
    const f = await waitFor(() => fenced.find((x) => x.reason === "renewDeadline"), {
      timeoutMs: 15_000,
      description: "shard-a to fence itself",
    });
    expect(a.status().ownedSlots).toBe(0);
    expect(a.mayStart(0)).toBe(false);
    expect(await f.leaseHolder).toBe(identity);

    // The coordinator takes the expired Lease over; once reachable again, shard-a acquires it at
    // once (the takeover marker counts as free) as a new incarnation and gets the slots back.
    await waitFor(
      async () => (await getLease(sm.leaseNamespace, "shard-a")).spec?.holderIdentity === TAKEOVER_HOLDER,
      {
        description: "the coordinator to take the Lease over",
      },
    );
    proxy.heal();
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, {
      timeoutMs: 90_000,
      description: "shard-a to own the slots again",
    });
    expect(a.identity).not.toBe(identity);
  });

  it("re-acquires at once a Lease the coordinator took over (the marker counts as free)", async () => {
    const sm = await newSlotMap();
    // A Lease left behind by a dead process and taken over by the coordinator: free to acquire.
    await http.request("POST", `/apis/coordination.k8s.io/v1/namespaces/${sm.leaseNamespace}/leases`, {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "shard-a", labels: { "slotmap.dev/slotmap": sm.name } },
        spec: { holderIdentity: TAKEOVER_HOLDER, leaseDurationSeconds: 3600 },
      },
    });
    const a = member(sm, "shard-a");
    const t0 = Date.now();
    await a.ready;
    // Far sooner than the Lease's own hour-long duration.
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect((await getLease(sm.leaseNamespace, "shard-a")).spec?.holderIdentity).toBe(a.identity);
  });
});

describe("graceful stop", () => {
  it("waits for the in-flight reconcile, acks, then releases the Lease; the slots move at once", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-stop");
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const blocked = gate();
    let running: ReconcileRequest | undefined;
    const ctrl = startController({
      member: a,
      logger: testLogger("ctrl-a"),
      reconcile: async (req) => {
        if (req.namespace !== ns) return;
        running = req;
        await blocked.promise;
      },
    });
    cleanups.push(async () => {
      blocked.open();
      await ctrl.stop();
    });
    await createSecret(ns, "s", { v: "1" });
    await waitFor(() => running, { description: "the reconcile to start" });
    const identity = a.identity;

    let stopped = false;
    const stopping = a.stop().then(() => {
      stopped = true;
    });
    expect(a.mayStart(running!.slot)).toBe(false); // at once
    await sleep(1_500);
    expect(stopped).toBe(false);
    expect((await getLease(sm.leaseNamespace, "shard-a")).spec?.holderIdentity).toBe(identity);

    const b = member(sm, "shard-b");
    await b.ready;
    blocked.open();
    await stopping;
    const lease = await getLease(sm.leaseNamespace, "shard-a");
    expect(lease.spec?.holderIdentity ?? "").toBe("");
    // The release carries the newest ack.
    expect(Number(lease.metadata?.annotations?.["slotmap.dev/observed-generation"])).toBeGreaterThanOrEqual(
      1,
    );
    // Released means Dead at once: shard-b gets every slot without waiting for an expiry.
    await waitFor(() => b.status().ownedSlots === SLOT_COUNT, { description: "shard-b to own all slots" });
  });
});

describe("the checksum controller", () => {
  it("keeps a checksum ConfigMap for ~100 Secrets with 2 shards, follows updates, never reconciles a key on both at once", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-checksum");
    const N = 100;
    const names = Array.from({ length: N }, (_, i) => `secret-${i}`);
    for (let i = 0; i < N; i += 20) {
      await Promise.all(names.slice(i, i + 20).map((n) => createSecret(ns, n, { value: n })));
    }

    const records: Array<Record<string, unknown>> = [];
    const start = async (shard: string) => {
      const config = parseChecksumConfig(
        ["--shard", shard, "--slotmap", sm.name, "--metrics-address", "off", "--concurrency", "4"],
        {
          SLOTMAP_LEASE_DURATION: String(TIMING.leaseDurationSeconds),
          SLOTMAP_RENEW_DEADLINE: String(TIMING.renewDeadlineSeconds),
          SLOTMAP_RETRY_PERIOD: String(TIMING.retryPeriodSeconds),
        },
      );
      const log = testLogger(shard);
      const logger: ShardLogger = {
        ...log,
        info: (fields, msg) => {
          if ((fields as { event?: string }).event === "reconcile")
            records.push(fields as Record<string, unknown>);
          else log.info(fields, msg);
        },
      };
      const app = await startChecksumController(config, logger, kubeConfig());
      cleanups.push(() => app.stop());
      return app;
    };
    const [c0, c1] = await Promise.all([start("checksums-0"), start("checksums-1")]);

    const expected = async (): Promise<Map<string, string>> => {
      const list = await http.listAll<KubeObject & { data?: Record<string, string> }>(
        `/api/v1/namespaces/${ns}/secrets`,
      );
      return new Map(list.items.map((s) => [s.metadata!.name!, secretChecksum(s.data)]));
    };
    const converged = async (): Promise<boolean> => {
      const want = await expected();
      const cms = await http.listAll<KubeObject & { data?: Record<string, string> }>(
        `/api/v1/namespaces/${ns}/configmaps`,
      );
      const got = new Map(cms.items.map((c) => [c.metadata!.name!, c]));
      for (const [name, sum] of want) {
        const cm = got.get(`${name}-checksum`);
        if (cm?.data?.checksum !== sum) return false;
      }
      return true;
    };
    await waitFor(converged, {
      timeoutMs: 90_000,
      intervalMs: 500,
      description: "every Secret to have its checksum ConfigMap",
    });

    // Owned by the Secret (controller reference with its uid), so it follows it to its shard.
    const secret0 = await http.request<KubeObject>("GET", `/api/v1/namespaces/${ns}/secrets/secret-0`);
    const cm0 = await http.request<KubeObject & { metadata: { ownerReferences?: unknown[] } }>(
      "GET",
      `/api/v1/namespaces/${ns}/configmaps/secret-0-checksum`,
    );
    expect(cm0.metadata.ownerReferences).toEqual([
      { apiVersion: "v1", kind: "Secret", name: "secret-0", uid: secret0.metadata?.uid, controller: true },
    ]);

    // Both shards did part of the work, and each cached only the Secrets of its own slots.
    const mine = (shard: string) =>
      records.filter((r) => r.shard === shard && String(r.key).includes(`/${ns}/`));
    expect(mine("checksums-0").length).toBeGreaterThan(0);
    expect(mine("checksums-1").length).toBeGreaterThan(0);
    for (const n of names) {
      const key = `/Secret/${ns}/${n}`;
      const holders = [c0, c1].filter((c) => c.controller.get(key) !== undefined);
      expect(holders, key).toHaveLength(1);
      expect(holders[0]!.member.ownsSlot(keySlot(key))).toBe(true);
    }

    // Updates are followed.
    for (const n of names.slice(0, 10)) {
      const s = await http.request<KubeObject & { data?: Record<string, string> }>(
        "GET",
        `/api/v1/namespaces/${ns}/secrets/${n}`,
      );
      await http.request("PUT", `/api/v1/namespaces/${ns}/secrets/${n}`, {
        body: { ...s, data: { ...s.data, extra: Buffer.from("changed").toString("base64") } },
      });
    }
    // A ConfigMap edited by hand is put back (its change maps back to its Secret).
    const cm5 = await http.request<KubeObject & { data?: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${ns}/configmaps/secret-50-checksum`,
    );
    await http.request("PUT", `/api/v1/namespaces/${ns}/configmaps/secret-50-checksum`, {
      body: { ...cm5, data: { checksum: "tampered" } },
    });
    await waitFor(converged, {
      timeoutMs: 60_000,
      intervalMs: 500,
      description: "checksums to follow the updates",
    });

    // Audit: one line per reconcile with everything the e2e auditor needs; per key, reconciles on
    // different shards never overlap in time.
    const rec = records[0]!;
    for (const field of [
      "shard",
      "identity",
      "key",
      "slot",
      "generation",
      "start",
      "end",
      "resourceVersion",
    ]) {
      expect(rec, field).toHaveProperty(field);
    }
    const byKey = new Map<string, Array<Record<string, unknown>>>();
    for (const r of records) {
      const list = byKey.get(String(r.key)) ?? [];
      list.push(r);
      byKey.set(String(r.key), list);
    }
    for (const [key, list] of byKey) {
      for (const x of list) {
        for (const y of list) {
          if (x.shard === y.shard) continue;
          const overlap = Number(x.start) < Number(y.end) && Number(y.start) < Number(x.end);
          expect(overlap, `${key}: ${JSON.stringify(x)} overlaps ${JSON.stringify(y)}`).toBe(false);
        }
      }
    }
  });
});

describe("the sharded controller runtime", () => {
  it("moves objects with their slots: the loser drops them, the gainer re-lists and reconciles them", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-move");
    const keys = await secretsWithConfigMaps(ns, "s");

    // A reconcile that does not see its ConfigMap would re-create it: the runtime holds a gained
    // root until the controlled resource has listed its slot (first list and gain re-lists alike).
    const cold: string[] = [];
    const recorder = () => {
      const seen: string[] = [];
      const reconcile = async (req: ReconcileRequest) => {
        if (req.namespace !== ns) return;
        seen.push(req.key);
        if (req.object !== undefined && req.controlled().length !== 1) cold.push(req.key);
      };
      return { seen, reconcile };
    };
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const ra = recorder();
    const ca: ShardedController = startController({
      member: a,
      reconcile: ra.reconcile,
      logger: testLogger("ctrl-a"),
    });
    cleanups.push(() => ca.stop());
    await waitFor(() => keys.every((k) => ra.seen.includes(k)), {
      description: "shard-a to reconcile every Secret",
    });
    expect(keys.every((k) => ca.get(k) !== undefined)).toBe(true);

    const b = member(sm, "shard-b");
    const rb = recorder();
    const cb = startController({ member: b, reconcile: rb.reconcile, logger: testLogger("ctrl-b") });
    cleanups.push(() => cb.stop());
    await handedOffTo(sm.name, "shard-b", b);
    const toB = keys.filter((k) => b.ownsSlot(keySlot(k)));
    const stayA = keys.filter((k) => a.ownsSlot(keySlot(k)));
    expect(toB.length).toBeGreaterThan(0);
    expect(toB.length + stayA.length).toBe(keys.length);
    await waitFor(() => toB.every((k) => rb.seen.includes(k)), {
      description: "shard-b to reconcile its Secrets",
    });
    expect(rb.seen.filter((k) => !toB.includes(k))).toEqual([]);
    expect(toB.every((k) => ca.get(k) === undefined && cb.get(k) !== undefined)).toBe(true);
    expect(stayA.every((k) => ca.get(k) !== undefined && cb.get(k) === undefined)).toBe(true);

    // shard-b leaves: shard-a gains its slots back while running and fetches them by a re-list.
    const listsBefore = ca.stats().gainLists;
    ra.seen.length = 0;
    await Promise.all([b.stop(), cb.stop()]);
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, {
      description: "shard-a to own all slots again",
    });
    await waitFor(() => toB.every((k) => ra.seen.includes(k)), {
      description: "shard-a to reconcile the regained Secrets",
    });
    expect(ca.stats().gainLists).toBeGreaterThan(listsBefore);
    expect(keys.every((k) => ca.get(k) !== undefined)).toBe(true);
    expect(cold).toEqual([]);
    expect(ca.stats().held).toBe(0);

    // A deletion reaches the reconciler (object undefined) and leaves the cache.
    const deleted: Array<{ key: string; object: unknown }> = [];
    const cd = startController({
      member: a,
      reconcile: async (req) => {
        if (req.namespace === ns) deleted.push({ key: req.key, object: req.object });
      },
    });
    cleanups.push(() => cd.stop());
    await waitFor(() => deleted.length >= keys.length, { description: "a second controller to sync" });
    await http.request("DELETE", `/api/v1/namespaces/${ns}/secrets/s-0`);
    await waitFor(() => deleted.some((d) => d.key === keys[0] && d.object === undefined), {
      description: "the deletion to be reconciled",
    });
    expect(cd.get(keys[0]!)).toBeUndefined();
    expect(cd.stats().tombstones).toBe(0);
  });

  it('cache: "all" keeps every slot\'s objects: slots moving back are reconciled from the cache, never re-listed', async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-cacheall");
    const keys = await secretsWithConfigMaps(ns, "c");
    const seenA: string[] = [];
    const cold: string[] = [];
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const ca = startController({
      member: a,
      cache: "all",
      reconcile: async (req) => {
        if (req.namespace !== ns) return;
        // Reconciles only what it owns, whatever it caches.
        if (!a.ownsSlot(keySlot(req.key))) cold.push(`not owned: ${req.key}`);
        seenA.push(req.key);
        if (req.object !== undefined && req.controlled().length !== 1) cold.push(req.key);
      },
      logger: testLogger("ctrl-a"),
    });
    cleanups.push(() => ca.stop());
    await waitFor(() => keys.every((k) => seenA.includes(k)), {
      description: "shard-a to reconcile every Secret",
    });

    const b = member(sm, "shard-b");
    const cb = startController({
      member: b,
      cache: "all",
      reconcile: async () => {},
      logger: testLogger("ctrl-b"),
    });
    cleanups.push(() => cb.stop());
    // shard-b joins (takes its Lease) only once its cache is warm: at its first gain it has every Secret.
    const rootsAtGain: number[] = [];
    b.subscribe({ slotsGained: () => rootsAtGain.push(cb.stats().roots) });
    let syncedAt = Number.POSITIVE_INFINITY;
    void cb.synced.then(() => {
      syncedAt = Date.now();
    });
    await handedOffTo(sm.name, "shard-b", b);
    const toB = keys.filter((k) => b.ownsSlot(keySlot(k)));
    expect(toB.length).toBeGreaterThan(0);
    expect(rootsAtGain[0]).toBeGreaterThanOrEqual(keys.length);
    const acquired = Date.parse((await getLease(sm.leaseNamespace, "shard-b")).spec?.acquireTime ?? "");
    expect(acquired).toBeGreaterThanOrEqual(Math.floor(syncedAt));
    // Both cache every Secret, whoever owns it.
    expect(keys.every((k) => ca.get(k) !== undefined && cb.get(k) !== undefined)).toBe(true);

    // shard-b leaves: shard-a regains its slots and reconciles them from its cache.
    seenA.length = 0;
    await Promise.all([b.stop(), cb.stop()]);
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, {
      description: "shard-a to own all slots again",
    });
    await waitFor(() => toB.every((k) => seenA.includes(k)), {
      description: "shard-a to reconcile the regained Secrets",
    });
    expect(ca.stats().gainLists).toBe(0);
    expect(cb.stats().gainLists).toBe(0);
    expect(cold).toEqual([]);
    expect(ca.stats().held).toBe(0);
  });

  it("rejects a bad cache or concurrency option, naming the option and the value", async () => {
    const a = member(await newSlotMap(), "shard-x");
    const reconcile = async () => {};
    expect(() => startController({ member: a, cache: "everything" as "all", reconcile })).toThrow(
      'cache: must be "owned" or "all"; got "everything"',
    );
    expect(() => startController({ member: a, concurrency: 0, reconcile })).toThrow(
      "concurrency: must be an integer from 1 to 10000; got 0",
    );
  });

  it("warm handoff: a joining shard lists its incoming slots while the source drains, and reconciles them at the commit without a re-list", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-warm");
    const keys = await secretsWithConfigMaps(ns, "w");
    // shard-a reconciles every Secret; then its reconciles block (one per key at once), so the
    // handoff to shard-b cannot commit before the test opens the gate.
    const hold = gate();
    let blocking = false;
    const seenA = new Set<string>();
    const a = member(sm, "shard-a");
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    const ca = startController({
      member: a,
      concurrency: 64,
      reconcile: async (req) => {
        if (req.namespace !== ns) return;
        seenA.add(req.key);
        if (blocking) await hold.promise;
      },
      logger: testLogger("ctrl-a"),
    });
    cleanups.push(() => ca.stop());
    await waitFor(() => keys.every((k) => seenA.has(k)), {
      description: "shard-a to reconcile every Secret",
    });
    blocking = true;
    seenA.clear();
    await Promise.all(
      keys.map((k) =>
        http.request("PATCH", `/api/v1/namespaces/${ns}/secrets/${k.split("/")[3]}`, {
          body: { metadata: { labels: { touched: "1" } } },
          contentType: "application/merge-patch+json",
        }),
      ),
    );
    await waitFor(() => keys.every((k) => seenA.has(k)), { description: "shard-a to block on every Secret" });

    const b = member(sm, "shard-b");
    const events: string[] = [];
    b.subscribe({
      slotsImporting: (r) => events.push(r.length > 0 ? "importing" : "imported"),
      slotsGained: () => events.push("gained"),
    });
    const seenB: string[] = [];
    const cold: string[] = [];
    const cb = startController({
      member: b,
      reconcile: async (req) => {
        if (req.namespace !== ns) return;
        seenB.push(req.key);
        if (req.object !== undefined && req.controlled().length !== 1) cold.push(req.key);
      },
      logger: testLogger("ctrl-b"),
    });
    cleanups.push(() => cb.stop());
    await waitFor(() => events.includes("importing"), { description: "a migration towards shard-b" });
    await cb.synced; // its watches listed the incoming slots, while shard-a still holds them
    expect(b.status().ownedSlots).toBe(0);
    expect(seenB).toEqual([]);
    expect(cb.stats().roots).toBeGreaterThan(0); // cached, not queued
    hold.open();
    await waitFor(() => b.status().ownedSlots > 0, { description: "the commit to shard-b" });
    const toB = keys.filter((k) => b.ownsSlot(keySlot(k)));
    expect(toB.length).toBeGreaterThan(0);
    await waitFor(() => toB.every((k) => seenB.includes(k)), {
      description: "shard-b to reconcile its Secrets",
    });
    expect(events.indexOf("importing")).toBeLessThan(events.indexOf("gained"));
    expect(cb.stats().gainLists).toBe(0); // every incoming slot was cached before the commit
    expect(cold).toEqual([]);
    expect(cb.stats().held).toBe(0);
  });

  it("namespaceSelector: objects of selected namespaces only, one list at start, a re-list when a namespace joins the selection", async () => {
    const team = `t${Date.now().toString(36)}`;
    const sm = await newSlotMap([{ group: "", resource: "secrets" }], {
      namespaceSelector: { matchLabels: { "slotmap-test/team": team } },
    });
    const inNs = await freshNamespace("client-nssel-in");
    const outNs = await freshNamespace("client-nssel-out");
    await http.request("PATCH", `/api/v1/namespaces/${inNs}`, {
      body: { metadata: { labels: { "slotmap-test/team": team } } },
      contentType: "application/merge-patch+json",
    });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => [
        createSecret(inNs, `in-${i}`, { v: "1" }),
        createSecret(outNs, `out-${i}`, { v: "1" }),
      ]).flat(),
    );
    const a = member(sm, "shard-a");
    // The rules reach the runtime once the namespaces' labels are known, so its first list keeps
    // the selected namespaces' objects (and never lists everything again when the labels arrive).
    const selectedAtRules: boolean[] = [];
    a.subscribe({ rulesChanged: (rules) => selectedAtRules.push(rules.namespaceSelected(inNs)) });
    const seen = new Set<string>();
    const ca = startController({
      member: a,
      reconcile: async (req) => {
        if (req.namespace === inNs || req.namespace === outNs) seen.add(req.key);
      },
      logger: testLogger("ctrl-nssel"),
    });
    await waitFor(() => a.status().ownedSlots === SLOT_COUNT, { description: "shard-a to own all slots" });
    expect(selectedAtRules).toEqual([true]);
    cleanups.push(() => ca.stop());
    await ca.synced;
    await waitFor(() => seen.size >= 10, { description: "the selected namespace's Secrets" });
    expect([...seen].every((k) => k.includes(`/${inNs}/`))).toBe(true);
    // The runtime started once the namespaces' labels were known: no second list of everything.
    expect(ca.stats().gainLists).toBe(0);
    // The other namespace joins the selection: its Secrets are fetched and reconciled.
    await http.request("PATCH", `/api/v1/namespaces/${outNs}`, {
      body: { metadata: { labels: { "slotmap-test/team": team } } },
      contentType: "application/merge-patch+json",
    });
    await waitFor(() => seen.size >= 20, { description: "the newly selected namespace's Secrets" });
    expect(ca.stats().gainLists).toBeGreaterThan(0);
  });

  it("logs a failing reconcile to the member's logger when the controller has none of its own", async () => {
    const sm = await newSlotMap();
    const ns = await freshNamespace("client-logs");
    const m = member(sm, "shard-logs");
    const ctrl = startController({
      member: m,
      reconcile: async (req) => {
        if (req.namespace === ns) throw new Error("boom from the reconciler");
      },
    });
    cleanups.push(() => ctrl.stop());
    await createSecret(ns, "fails", { v: "1" });
    await waitFor(
      () =>
        logs.some(
          (l) => l.includes("shard-logs warn reconcile failed") && l.includes("boom from the reconciler"),
        ),
      { description: "the failure in the member's log" },
    );
  });
});
