import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { TAKEOVER_HOLDER } from "../../../src/coordinator/core/index.js";
import {
  CoordinatorDriver,
  LEASES_PATH,
  REASON_LEASE_WRITE_FORBIDDEN,
} from "../../../src/coordinator/driver.js";
import { CoordinatorMetrics } from "../../../src/coordinator/metrics.js";
import { ApiError, type KubeHttp } from "../../../src/kube/http.js";
import { FakeApi, type Obj } from "./fake-api.js";

const SPEC = { leaseNamespace: "ns", resources: [{ resource: "secrets" }] };
const drivers: CoordinatorDriver[] = [];

afterEach(async () => {
  await Promise.all(drivers.splice(0).map((d) => d.stop()));
});

function setup(opts: { orphanAfterMs?: number } = {}) {
  const api = new FakeApi();
  const metrics = new CoordinatorMetrics({ defaultMetrics: false });
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const driver = new CoordinatorDriver({
    http: api as unknown as KubeHttp,
    logger,
    metrics,
    identity: "coord-test",
    orphanAfterMs: opts.orphanAfterMs,
  });
  drivers.push(driver);
  return { api, metrics, logs, driver };
}

function holder(name: string, leaseDurationSeconds = 30): Record<string, unknown> {
  return { holderIdentity: `${name}-1`, leaseDurationSeconds, renewTime: "2025-01-01T00:00:00.000000Z" };
}

/**
 * Shard `name` renews its Lease and acks the SlotMap's current generation, as a shard process does
 * after applying it (the coordinator's drain barrier waits for that before assigning slots).
 */
function renewAndAck(api: FakeApi, name: string, spec: Record<string, unknown> = holder(name)): void {
  const sm = api.slotMaps.get("m")!;
  const generation = status(api).assignmentGeneration ?? 0;
  api.putLease(
    "ns",
    name,
    "m",
    { ...spec, renewTime: new Date().toISOString().replace("Z", "000Z") },
    {
      "slotmap.dev/observed-generation": String(generation),
      "slotmap.dev/slotmap-uid": sm.metadata.uid,
    },
  );
}

function status(
  api: FakeApi,
  name = "m",
): Record<string, unknown> & {
  assignmentGeneration?: number;
  shards?: Array<{ name: string; slots: string; state?: string }>;
  conditions?: Array<{ type: string }>;
} {
  return (api.slotMaps.get(name)?.status ?? {}) as ReturnType<typeof status>;
}

describe("CoordinatorDriver", () => {
  it("steps only once both caches have synced", async () => {
    const { api, driver } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    let open!: () => void;
    api.gate = { collection: LEASES_PATH, open: new Promise<void>((r) => (open = r)) };
    const started = driver.start();
    await sleep(100);
    expect(driver.synced).toBe(false);
    expect(api.writes()).toEqual([]);
    open();
    await started;
    expect(driver.synced).toBe(true);
    // The first write is the drain barrier (generation 1 assigns nothing); once a acked it, a owns
    // everything, in one more write.
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    expect(status(api).shards).toEqual([expect.objectContaining({ name: "a", slots: "" })]);
    renewAndAck(api, "a");
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(2));
    expect(status(api).shards).toEqual([{ name: "a", slots: "0-16383", holderIdentity: "a-1" }]);
    expect(api.writes("PUT", "/status")).toHaveLength(2);
  });

  it("projects the accepted status into one SlotMapShard per Lease after the status write, rewrites only what changed, deletes a departed shard's", async () => {
    const { api, driver } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    api.putLease("other", "stray", "m", holder("stray")); // outside spec.leaseNamespace
    await driver.start();
    await vi.waitFor(() =>
      expect(api.projections.get("ns/m.a")?.spec).toMatchObject({ assignmentGeneration: 1 }),
    );
    await vi.waitFor(() => expect(api.projections.get("other/m.stray")).toBeDefined());
    const uid = api.slotMaps.get("m")!.metadata.uid;
    const a = api.projections.get("ns/m.a")!;
    expect(a.spec).toEqual({
      slotMap: "m",
      slotMapUid: uid,
      shard: "a",
      assignmentGeneration: 1,
      rulesFingerprint: status(api).rulesFingerprint,
      drainBarrier: true,
      entry: { slots: "", holderIdentity: "a-1" },
      migrations: [],
    });
    expect(a.metadata.labels).toEqual({ "slotmap.dev/slotmap": "m" });
    expect((a.metadata as { ownerReferences?: unknown }).ownerReferences).toEqual([
      { apiVersion: "slotmap.dev/v1alpha1", kind: "SlotMap", name: "m", uid },
    ]);
    expect(api.projections.get("other/m.stray")?.spec).toMatchObject({ shard: "stray", drainBarrier: true });
    expect(api.projections.get("other/m.stray")?.spec).not.toHaveProperty("entry");

    // Both ack the barrier: a gets everything; both projections change (a's row, the barrier flag).
    renewAndAck(api, "a");
    api.putLease("other", "stray", "m", holder("stray"), {
      "slotmap.dev/observed-generation": "1",
      "slotmap.dev/slotmap-uid": uid,
    });
    await vi.waitFor(() =>
      expect(api.projections.get("ns/m.a")?.spec).toMatchObject({ assignmentGeneration: 2 }),
    );
    await vi.waitFor(() =>
      expect(api.projections.get("other/m.stray")?.spec).toMatchObject({ drainBarrier: false }),
    );
    expect(api.projections.get("ns/m.a")?.spec).toMatchObject({ entry: { slots: "0-16383" } });
    // Every projection write comes after the status write of the generation it shows.
    const statusPuts = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/status"));
    const projectionWrites = api.writes(undefined, "/slotmapshards");
    for (const w of projectionWrites) {
      const g = (w.body as Obj).spec?.assignmentGeneration;
      const put = statusPuts.find(
        (r) => ((r.body as Obj).status as { assignmentGeneration?: number }).assignmentGeneration === g,
      )!;
      expect(api.requests.indexOf(w)).toBeGreaterThan(api.requests.indexOf(put));
    }
    expect(projectionWrites.map((w) => w.method)).toEqual(["POST", "POST", "PUT", "PUT"]);

    // A renewal changes nothing a shard reads: no write.
    renewAndAck(api, "a");
    await sleep(200);
    expect(api.writes(undefined, "/slotmapshards")).toHaveLength(4);

    // Someone deletes a's projection: it is written again.
    await api.request("DELETE", `/apis/slotmap.dev/v1alpha1/namespaces/ns/slotmapshards/m.a`);
    await vi.waitFor(() =>
      expect(api.projections.get("ns/m.a")?.spec).toMatchObject({ entry: { slots: "0-16383" } }),
    );

    // The stray Lease is deleted: so is its projection, with preconditions.
    await api.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/other/leases/stray");
    await vi.waitFor(() => expect(api.projections.has("other/m.stray")).toBe(false));
    const del = api.writes("DELETE", "/namespaces/other/slotmapshards/m.stray")[0]!;
    expect(del.body).toMatchObject({
      preconditions: { uid: expect.any(String), resourceVersion: expect.any(String) },
    });
  });

  it("on 409 re-reads the SlotMap and steps again: the other writer's change is kept, never overwritten", async () => {
    const { api, driver, metrics } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    await driver.start();
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    renewAndAck(api, "a");
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(2));
    const before = api.writes("PUT", "/m/status").length;
    let externalRv = "";
    api.hook = (method, path) => {
      if (method !== "PUT" || !path.endsWith("/m/status") || externalRv !== "") return;
      // Another client writes the status between the coordinator's read and its write.
      const cur = status(api);
      const conditions = [
        ...(cur.conditions ?? []),
        {
          type: "External",
          status: "True",
          reason: "Other",
          message: "x",
          lastTransitionTime: "2025-01-01T00:00:00Z",
        },
      ];
      externalRv = api.setStatus("m", { ...cur, conditions }).metadata.resourceVersion;
    };
    api.putLease("ns", "b", "m", holder("b")); // makes the coordinator start a handoff a -> b
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(3));
    const puts = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/m/status")).slice(before);
    expect(puts.map((r) => r.status)).toEqual([409, 200]);
    const retried = puts[1]!.body as Obj;
    expect(retried.metadata.resourceVersion).toBe(externalRv);
    // The SlotMap was read again between the conflict and the retry.
    const conflictAt = api.requests.indexOf(puts[0]!);
    const retryAt = api.requests.indexOf(puts[1]!);
    expect(
      api.requests
        .slice(conflictAt, retryAt)
        .some((r) => r.method === "GET" && r.path.endsWith("/slotmaps/m")),
    ).toBe(true);
    expect(status(api).conditions?.map((c) => c.type)).toEqual([
      "Ready",
      "Balanced",
      "Progressing",
      "External",
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'slotmap_api_writes_total{verb="update",resource="slotmaps/status",result="conflict"} 1',
    );
    expect(driver.stats.conflicts).toBe(1);
  });

  it("takes an Expired Lease over with its observed resourceVersion, then deletes it with preconditions", async () => {
    const { api, driver } = setup({ orphanAfterMs: 300 });
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "keep", "m", holder("keep"));
    const lease = api.putLease("ns", "a", "m", holder("a", 1), { "example.com/other": "kept" });
    await driver.start();
    // keep acks the drain barrier; a never renews nor acks: it expires, is taken over and no longer
    // waited for.
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    renewAndAck(api, "keep");
    await vi.waitFor(() => expect(api.writes("PUT", "/leases/a")).toHaveLength(1), {
      timeout: 5000,
      interval: 50,
    });
    const takeover = api.writes("PUT", "/leases/a")[0]!.body as Obj & { spec: Record<string, unknown> };
    expect(takeover.metadata.resourceVersion).toBe(lease.metadata.resourceVersion);
    expect(takeover.metadata.uid).toBe(lease.metadata.uid);
    expect(takeover.metadata.annotations).toEqual({ "example.com/other": "kept" });
    expect(takeover.metadata.labels).toEqual({ "slotmap.dev/slotmap": "m" });
    expect(takeover.spec).toMatchObject({ holderIdentity: TAKEOVER_HOLDER, leaseDurationSeconds: 1 });
    expect(takeover.spec.renewTime).toMatch(/\.\d{6}Z$/);
    await vi.waitFor(() => expect(api.writes("DELETE", "/leases/a")).toHaveLength(1), {
      timeout: 5000,
      interval: 50,
    });
    const [del] = api.writes("DELETE", "/leases/a");
    // Accepted by the fake's precondition check: the uid and the resourceVersion after the takeover.
    expect(del!.status).toBe(200);
    expect((del!.body as { preconditions: unknown }).preconditions).toEqual({
      uid: lease.metadata.uid,
      resourceVersion: expect.not.stringMatching(`^${lease.metadata.resourceVersion}$`),
    });
    await vi.waitFor(() =>
      expect(status(api).shards?.map((s) => [s.name, s.slots])).toEqual([["keep", "0-16383"]]),
    );
    const reasons = [...api.events.values()].map((e) => [
      e.metadata.namespace,
      e.reason,
      (e.involvedObject as Obj).kind,
    ]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ["default", "ShardExpired", "SlotMap"],
        ["default", "OrphanedLease", "SlotMap"],
      ]),
    );
  });

  it("a Lease write RBAC refuses is retried, with one Warning Event on the SlotMap naming the binding to add", async () => {
    const { api, driver } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "keep", "m", holder("keep"));
    api.putLease("ns", "a", "m", holder("a", 1));
    let attempts = 0;
    api.hook = (method, path) => {
      if (method === "PUT" && path.endsWith("/leases/a")) {
        attempts++;
        throw new ApiError(403, "Forbidden", 'leases "a" is forbidden', method, path);
      }
    };
    await driver.start();
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    renewAndAck(api, "keep");
    await vi.waitFor(() => expect(attempts).toBeGreaterThanOrEqual(3), { timeout: 4000, interval: 50 });
    const forbidden = [...api.events.values()].filter((e) => e.reason === REASON_LEASE_WRITE_FORBIDDEN);
    expect(forbidden).toHaveLength(1);
    expect(forbidden[0]).toMatchObject({
      type: "Warning",
      involvedObject: { kind: "SlotMap", name: "m" },
      message: expect.stringContaining(
        "may not take over Lease ns/a (403 Forbidden): bind the ClusterRole slotmap-coordinator-lease-namespace",
      ),
    });
  });

  it("forgets a deleted SlotMap (memory and metric series) and starts over when it is recreated", async () => {
    const { api, driver, metrics, logs } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    await driver.start();
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    await vi.waitFor(async () =>
      expect(await metrics.registry.metrics()).toContain('slotmap_assignment_generation{slotmap="m"} 1'),
    );
    api.deleteSlotMap("m");
    await vi.waitFor(async () => expect(await metrics.registry.metrics()).not.toContain('slotmap="m"'));
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "SlotMap deleted: forgetting it", slotmap: "m" }),
    );
    const again = api.putSlotMap("m", SPEC);
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    expect(api.slotMaps.get("m")!.metadata.uid).toBe(again.metadata.uid);
  });

  it("retries a failed write with backoff on a fresh step", async () => {
    const { api, driver } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    let failures = 0;
    api.hook = (method, path) => {
      if (method === "PUT" && path.endsWith("/status") && failures < 2) {
        failures++;
        throw new ApiError(500, "InternalError", "etcd is sad", method, path);
      }
    };
    await driver.start();
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1), { timeout: 5000 });
    expect(driver.stats.writeErrors).toBe(2);
  });

  it("never runs two steps of one SlotMap at once", async () => {
    const { api, driver } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    let inFlight = 0;
    let maxInFlight = 0;
    api.hook = async (method, path) => {
      if (method !== "PUT" || !path.endsWith("/m/status")) return;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(40);
      inFlight--;
    };
    await driver.start();
    for (const n of ["b", "c", "d", "e"]) {
      api.putLease("ns", n, "m", holder(n));
      await sleep(10);
    }
    await vi.waitFor(() => expect(status(api).shards).toHaveLength(5), { timeout: 5000 });
    expect(api.writes("PUT", "/m/status").length).toBeGreaterThan(1);
    expect(maxInFlight).toBe(1);
  });

  it("stop(): nothing is written afterwards and the SlotMap's series are removed", async () => {
    const { api, driver, metrics } = setup();
    api.putSlotMap("m", SPEC);
    api.putLease("ns", "a", "m", holder("a"));
    await driver.start();
    await vi.waitFor(() => expect(status(api).assignmentGeneration).toBe(1));
    await driver.stop();
    expect(driver.synced).toBe(false);
    const writes = api.writes().length;
    api.putLease("ns", "b", "m", holder("b"));
    await sleep(100);
    expect(api.writes()).toHaveLength(writes);
    expect(await metrics.registry.metrics()).not.toContain('slotmap="m"');
  });
});
