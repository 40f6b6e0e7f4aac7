// The coordinator against a real kube-apiserver: one in-process coordinator (runCoordinator, no
// leader election) serves every SlotMap of this file; the tests play the shards with Leases they
// renew and ack. Every status version of every SlotMap is watched and checked (schema, table
// invariants, no slot in two places, no move without an ack or a fence).
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CRD_NAME, type SlotMapStatus } from "../../src/api/index.js";
import { parseCoordinatorConfig } from "../../src/coordinator/config.js";
import { TAKEOVER_HOLDER } from "../../src/coordinator/core/index.js";
import { SLOTMAPS_PATH } from "../../src/coordinator/driver.js";
import { runCoordinator } from "../../src/coordinator/main.js";
import { isStatus, type KubeHttp } from "../../src/kube/http.js";
import { SLOT_COUNT } from "../../src/slots/index.js";
import { freshNamespace, kubeConfig, kubectl, waitFor } from "../support/cluster.js";
import {
  conditionOf,
  counts,
  createSlotMap,
  deleteSlotMap,
  ensureCrd,
  eventsFor,
  FakeShard,
  fetchText,
  getSlotMap,
  metricValue,
  newHttp,
  SlotMapFixture,
  type StatusObserver,
  type Tracked,
  uniqueName,
} from "./coordinator-harness.js";

/** `kubectl patch sm <name> --type=merge` of `spec`, as a person would. */
function patchSpec(name: string, spec: Record<string, unknown>) {
  return kubectl(["patch", "sm", name, "--type=merge", "-p", JSON.stringify({ spec })]);
}

let http: KubeHttp;
let ports: { metrics: number; probes: number };
const stopping = new AbortController();
let running: Promise<void>;
const logs: Array<Record<string, unknown>> = [];
const allShards: FakeShard[] = [];
const observers: StatusObserver[] = [];
const slotMaps: string[] = [];

beforeAll(async () => {
  await ensureCrd();
  http = newHttp();
  const config = parseCoordinatorConfig(
    [
      "--leader-elect=false",
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--health-probe-bind-address",
      "127.0.0.1:0",
      "--orphan-after",
      "2",
      "--identity",
      "coordinator-it",
    ],
    {},
  );
  const logger = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line)) });
  ports = await new Promise((resolve, reject) => {
    running = runCoordinator(config, {
      signal: stopping.signal,
      logger,
      kubeConfig: kubeConfig(),
      onListening: ({ metrics, healthProbe }) =>
        metrics !== undefined && healthProbe !== undefined
          ? resolve({ metrics, probes: healthProbe })
          : reject(new Error(`a server is disabled: ${JSON.stringify({ metrics, healthProbe })}`)),
    });
    running.catch(reject);
  });
  await waitFor(async () => (await fetchText(ports.probes, "/readyz")).status === 200, {
    timeoutMs: 30_000,
    description: "coordinator /readyz",
  });
});

afterAll(async () => {
  for (const s of allShards) s.stopRenewing();
  await Promise.all(observers.map((o) => o.stop()));
  stopping.abort();
  await running;
  await Promise.all(slotMaps.map((n) => deleteSlotMap(http, n)));
});

/** Track for cleanup; the metrics of this file's coordinator. */
const track: Tracked = { shards: allShards, observers, slotMaps, metricsPort: () => ports.metrics };
const Setup = {
  create: (
    prefix: string,
    shardNames: string[],
    spec?: Record<string, unknown>,
    annotations?: Record<string, Record<string, string>>,
  ) => SlotMapFixture.create(http, track, prefix, shardNames, spec, annotations),
};

describe("coordinator", () => {
  it("gives the first shard all 16384 slots, then balances three shards within one slot", async () => {
    const t = await Setup.create("first", ["a"]);
    // Drain barrier: generation 1 assigns nothing until every live Lease acknowledged it.
    let s = await t.until((x) => x.assignmentGeneration >= 1, "barrier generation");
    expect(s.assignmentGeneration).toBe(1);
    expect(counts(s)).toEqual({ a: 0 });
    expect(conditionOf(s, "Ready")).toMatchObject({ status: "False", reason: "DrainBarrier" });
    s = await t.settle("first assignment");
    expect(s.assignmentGeneration).toBe(2);
    expect(s.shards).toEqual([
      { name: "a", slots: `0-${SLOT_COUNT - 1}`, holderIdentity: t.shards.a!.holder },
    ]);
    expect(s.unassignedSlots).toBe("");
    expect(conditionOf(s, "Ready")).toMatchObject({ status: "True", reason: "AllSlotsCovered" });
    expect(conditionOf(s, "Balanced")).toMatchObject({ status: "True", reason: "Balanced" });
    expect(conditionOf(s, "Progressing")).toMatchObject({ status: "False", reason: "NoMigrations" });
    let text = await t.metrics();
    expect(metricValue(text, "slotmap_assignment_generation", { slotmap: t.name })).toBe(2);
    expect(metricValue(text, "slotmap_shards", { slotmap: t.name, state: "Ready" })).toBe(1);
    expect(metricValue(text, "slotmap_slots", { slotmap: t.name, shard: "a" })).toBe(SLOT_COUNT);

    await t.join("b");
    await t.join("c");
    s = await t.until((x) => x.shards.length === 3 && x.migrations.length > 0, "handoffs to b and c");
    expect(s.migrations.every((m) => m.from === "a")).toBe(true);
    s = await t.settle();
    const c = counts(s);
    expect(Object.keys(c).sort()).toEqual(["a", "b", "c"]);
    expect(c.a! + c.b! + c.c!).toBe(SLOT_COUNT);
    for (const n of Object.values(c)) expect([5461, 5462]).toContain(n);
    expect(s.readyShards).toBe(3);
    text = await t.metrics();
    expect(metricValue(text, "slotmap_shards", { slotmap: t.name, state: "Ready" })).toBe(3);
    expect(metricValue(text, "slotmap_assignment_generation", { slotmap: t.name })).toBe(
      s.assignmentGeneration,
    );
    expect(metricValue(text, "slotmap_migrating_slots", { slotmap: t.name })).toBe(0);
    t.expectNoViolations();
  });

  it("a fourth shard: only surplus moves, nothing commits before the acks, then commits after them", async () => {
    const t = await Setup.create("join", ["a", "b", "c"]);
    let s = await t.settle();
    const g = s.assignmentGeneration;
    const before = counts(s);
    expect(await t.printed()).toEqual(["3", "3", String(g), "0", "True"]);

    await t.join("d");
    s = await t.until((x) => x.migrations.length > 0, "migrations to d");
    expect(s.assignmentGeneration).toBe(g + 1);
    expect(s.migrations.map((m) => [m.from, m.to, m.generation])).toEqual([
      ["a", "d", g + 1],
      ["b", "d", g + 1],
      ["c", "d", g + 1],
    ]);
    const during = counts(s);
    expect(during).toEqual({ a: 4096, b: 4096, c: 4096, d: 0 });
    const moved = Object.keys(before).reduce((n, k) => n + before[k]! - during[k]!, 0);
    expect(moved).toBe(SLOT_COUNT - 3 * 4096);
    expect(s.migratingSlots).toBe(4096);
    expect(conditionOf(s, "Progressing")).toMatchObject({ status: "True", reason: "HandoffInProgress" });
    expect(conditionOf(s, "Balanced")).toMatchObject({ status: "False", reason: "Migrating" });
    expect(await t.printed()).toEqual(["4", "4", String(g + 1), "4096", "False"]);
    expect(metricValue(await t.metrics(), "slotmap_migrations_in_flight", { slotmap: t.name })).toBe(3);

    // Several seconds of renewals and an ack of an older generation: nothing commits.
    const seen = t.observer.versions.length;
    await t.shards.a!.ack(g, t.uid);
    await sleep(3000);
    for (const v of t.observer.versions.slice(seen)) {
      expect(v.status?.assignmentGeneration).toBe(g + 1);
      expect(v.status?.migrations).toHaveLength(3);
    }
    // The status does not copy acks (a write caused only by an ack would reach every watcher).
    expect(t.latest()?.shards.find((x) => x.name === "a")).not.toHaveProperty("observedGeneration");

    const ackedAt = Date.now();
    await Promise.all(["a", "b", "c"].map((n) => t.shards[n]!.ack(g + 1, t.uid)));
    s = await t.until((x) => x.migrations.length === 0, "handoffs committed");
    const committedAt = t.observer.versions.find(
      (v) => v.status?.migrations.length === 0 && v.at >= ackedAt,
    )?.at;
    console.log(
      `[coordinator] commit latency after the last ack: ${(committedAt ?? Date.now()) - ackedAt} ms`,
    );
    expect(counts(s)).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
    expect(conditionOf(s, "Balanced")).toMatchObject({ status: "True" });
    expect(conditionOf(s, "Progressing")).toMatchObject({ status: "False", reason: "NoMigrations" });
    expect(await t.printed()).toEqual(["4", "4", String(s.assignmentGeneration), "0", "True"]);
    const text = await t.metrics();
    expect(
      metricValue(text, "slotmap_handoff_duration_seconds_count", { slotmap: t.name, outcome: "acked" }),
    ).toBe(3);
    // One line per kind and generation (not per shard), and one commit for the three sources.
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "handoffs committed", slotmap: t.name, count: 3, acked: 3 }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "handoffs started", slotmap: t.name, count: 3, generation: g + 1 }),
    );
    expect(s.assignmentGeneration).toBe(g + 2);
    t.expectNoViolations();
  });

  it("a Lease that stops renewing is taken over, Dead, its slots move, and the Lease is deleted", async () => {
    const t = await Setup.create("expire", ["a", "b"]);
    await t.settle();
    t.shards.b!.stopRenewing();
    await waitFor(async () => (await t.shards.b!.read())?.spec.holderIdentity === TAKEOVER_HOLDER, {
      timeoutMs: 15_000,
      description: "Lease b taken over",
    });
    const s = await t.until(
      (x) => x.shards.find((e) => e.name === "b")?.state === "Dead" && counts(x).a === SLOT_COUNT,
      "b Dead and its slots with a",
    );
    expect(s.migrations).toEqual([]);
    await waitFor(async () => (await t.shards.b!.read()) === undefined, {
      timeoutMs: 15_000,
      description: "orphaned Lease b deleted",
    });
    await t.until((x) => x.shards.every((e) => e.name !== "b"), "b gone from status");
    const reasons = (await eventsFor(http, "default", t.name)).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["ShardExpired", "OrphanedLease"]));
    const text = await t.metrics();
    expect(
      metricValue(text, "slotmap_api_writes_total", { verb: "delete", resource: "leases", result: "ok" }),
    ).toBeGreaterThanOrEqual(1);
    t.expectNoViolations();
  });

  it("weight 0 drains a shard, from the Lease annotation or spec.weights", async () => {
    const t = await Setup.create("drain", ["a", "b", "c"]);
    await t.settle();
    await t.shards.c!.annotate({ "slotmap.dev/weight": "0" });
    await t.until((x) => x.migrations.some((m) => m.from === "c"), "c draining");
    let s = await t.settle("c drained");
    expect(counts(s)).toEqual({ a: 8192, b: 8192, c: 0 });

    await patchSpec(t.name, { weights: { b: 0 } });
    s = await t.until((x) => x.migrations.some((m) => m.from === "b"), "b draining");
    expect(s.observedGeneration).toBe(2);
    s = await t.settle("b drained");
    expect(counts(s)).toEqual({ a: SLOT_COUNT, b: 0, c: 0 });
    t.expectNoViolations();
  });

  it("an invalid spec: Ready=False/InvalidSpec and an Event, while another SlotMap is still served", async () => {
    // The CRD rejects every spec the coordinator would; loosen it for a moment to store one, as an
    // older CRD version or a disabled validation would have.
    const bad = uniqueName("badspec");
    slotMaps.push(bad);
    const goodNs = await freshNamespace("coord-fixed");
    const loosen = await kubectl([
      "patch",
      "crd",
      CRD_NAME,
      "--type=json",
      "-p",
      JSON.stringify([
        {
          op: "remove",
          path: "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/resources/items/properties/resource/pattern",
        },
      ]),
    ]);
    expect(loosen.code, loosen.stderr).toBe(0);
    try {
      await waitFor(
        async () => {
          await createSlotMap(http, bad, {
            leaseNamespace: goodNs,
            resources: [{ resource: "Bad_Resource" }],
          });
          return true;
        },
        { timeoutMs: 15_000, description: "the loosened CRD to accept resource Bad_Resource" },
      );
    } finally {
      await ensureCrd(); // back to the real schema
    }
    const t = await Setup.create("served", ["a"]);
    await t.settle("the other SlotMap served");

    const badStatus = await waitFor(
      async () => {
        const sm = await getSlotMap(http, bad);
        const st = sm.status as SlotMapStatus | undefined;
        return st?.conditions?.some((c) => c.type === "Ready" && c.reason === "InvalidSpec") ? st : undefined;
      },
      { description: "Ready=False/InvalidSpec on the bad SlotMap" },
    );
    const ready = conditionOf(badStatus, "Ready")!;
    expect(ready.status).toBe("False");
    expect(ready.message).toContain("spec.resources[0].resource");
    expect(ready.message).toContain("Bad_Resource");
    const events = await waitFor(async () => {
      const e = await eventsFor(http, "default", bad);
      return e.some((x) => x.reason === "InvalidSpec") ? e : undefined;
    });
    expect(events.find((x) => x.reason === "InvalidSpec")).toMatchObject({
      type: "Warning",
      involvedObject: expect.objectContaining({ kind: "SlotMap", name: bad }),
    });
    const text = await t.metrics();
    expect(metricValue(text, "slotmap_spec_valid", { slotmap: bad })).toBe(0);
    expect(metricValue(text, "slotmap_invalid_input_total", { slotmap: bad, kind: "spec" })).toBe(1);

    // Fixing the spec (validation ratcheting allows the change) brings it back.
    const shard = new FakeShard(http, goodNs, bad, "x");
    allShards.push(shard);
    await shard.join();
    const fix = await patchSpec(bad, { resources: [{ resource: "secrets" }] });
    expect(fix.code, fix.stderr).toBe(0);
    // leaseNamespace is immutable (CEL): moving the Leases would let shards in the new namespace
    // take slots that live shards in the old one still run.
    const move = await patchSpec(bad, { leaseNamespace: "elsewhere" });
    expect(move.code).not.toBe(0);
    expect(move.stderr).toContain("leaseNamespace is immutable");
    const badUid = (await getSlotMap(http, bad)).metadata.uid;
    await waitFor(
      async () => {
        const st = (await getSlotMap(http, bad)).status as SlotMapStatus | undefined;
        // The drain barrier: the shard acknowledges the generation that assigns nothing first.
        if (st !== undefined && st.assignmentGeneration > 0) await shard.ack(st.assignmentGeneration, badUid);
        return st?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      },
      { description: "the fixed SlotMap Ready" },
    );
    t.expectNoViolations();
  });

  it("reports a malformed Lease annotation with an Event and keeps serving", async () => {
    const t = await Setup.create("annot", ["a", "b"], {}, { b: { "slotmap.dev/weight": "lots" } });
    const s = await t.settle("assignment");
    expect(counts(s)).toEqual({ a: 8192, b: 8192 }); // the bad weight counts as the default 1
    const events = await waitFor(async () => {
      const e = await eventsFor(http, t.ns, "b");
      return e.some((x) => x.reason === "InvalidAnnotation") ? e : undefined;
    });
    const e = events.find((x) => x.reason === "InvalidAnnotation")!;
    expect(e.type).toBe("Warning");
    expect(e.message).toContain('metadata.annotations["slotmap.dev/weight"]');
    expect(e.message).toContain('"lots"');
    expect(e.involvedObject).toMatchObject({ kind: "Lease", name: "b", namespace: t.ns });
    // Still served: a third shard joins and is handed slots.
    await t.join("c");
    await t.settle();
    expect(
      metricValue(await t.metrics(), "slotmap_invalid_input_total", { slotmap: t.name, kind: "annotation" }),
    ).toBe(1);
    t.expectNoViolations();
  });

  it("concurrent writers: status and spec changed by others are never overwritten (409 → re-read)", async () => {
    const t = await Setup.create("race", ["a", "b"]);
    await t.settle();
    // The coordinator's status writes answered 409 so far.
    const statusConflicts = async () =>
      metricValue(await t.metrics(), "slotmap_api_writes_total", {
        verb: "update",
        resource: "slotmaps/status",
        result: "conflict",
      }) ?? 0;
    const conflictsBefore = await statusConflicts();

    // Another client writes its own condition as fast as it can, and someone edits the spec,
    // while shards join and leave (the coordinator writes status all along).
    let external = 0;
    let externalConflicts = 0;
    const writerStarted = Date.now();
    let done = false;
    const writer = (async () => {
      while (!done) {
        const sm = await getSlotMap(http, t.name);
        const st = (sm.status ?? {}) as SlotMapStatus;
        const n = external + 1;
        const conditions = (st.conditions ?? []).filter((c) => c.type !== "External");
        conditions.push({
          type: "External",
          status: "True",
          reason: "Writer",
          message: String(n),
          lastTransitionTime: "2025-01-01T00:00:00Z",
        });
        try {
          await http.request("PUT", `${SLOTMAPS_PATH}/${t.name}/status`, {
            body: { ...sm, status: { ...st, conditions } },
          });
          external = n;
        } catch (err) {
          // 409: our read was stale; read again. Anything else is a bug in this test.
          if (!isStatus(err, 409)) throw err;
          externalConflicts++;
        }
      }
    })();
    // Churn until the coordinator has met a conflict at least once (at least 4 rounds, at most
    // 12): how often its status write races the writer's depends on the machine's timing, and a
    // run without a conflict would not test the re-read at all.
    const coordinatorConflicts = async () => (await statusConflicts()) - conflictsBefore;
    let rounds = 0;
    while (rounds < 4 || (rounds < 12 && (await coordinatorConflicts()) === 0)) {
      await patchSpec(t.name, { policy: { handoffTimeoutSeconds: 40 + rounds } });
      await t.join(`x${rounds}`);
      await sleep(300);
      rounds++;
    }
    await t.settle();
    done = true;
    await writer;

    const sm = await waitFor(async () => {
      const o = await getSlotMap(http, t.name);
      const st = o.status as SlotMapStatus;
      return st.observedGeneration === o.metadata.generation ? o : undefined;
    });
    const st = sm.status as SlotMapStatus;
    expect(sm.metadata.generation).toBe(1 + rounds);
    expect(conditionOf(st, "External")?.message).toBe(String(external));
    const joined = Array.from({ length: rounds }, (_, i) => `x${i}`);
    expect(Object.keys(counts(st)).sort()).toEqual(["a", "b", ...joined].sort());
    // Every version after the first External write keeps it, with a message that never goes back.
    const versions = t.observer.versions.filter((v) => v.uid === t.uid && v.status !== undefined);
    const first = versions.findIndex((v) => conditionOf(v.status!, "External") !== undefined);
    expect(first).toBeGreaterThanOrEqual(0);
    let last = 0;
    for (const v of versions.slice(first)) {
      const m = Number(conditionOf(v.status!, "External")?.message);
      expect(m).toBeGreaterThanOrEqual(last);
      last = m;
    }
    const conflicts = await coordinatorConflicts();
    console.log(
      `[coordinator] ${external} external status writes (${externalConflicts} conflicts, ${Date.now() - writerStarted} ms); ${conflicts} coordinator status conflicts in ${rounds} rounds`,
    );
    expect(conflicts).toBeGreaterThan(0);
    t.expectNoViolations();
  });

  it("a deleted SlotMap is forgotten; recreated, it waits for the shards to ack the new instance", async () => {
    const t = await Setup.create("recreate", ["a", "b"]);
    let s = await t.settle();
    await Promise.all(["a", "b"].map((n) => t.shards[n]!.ack(s.assignmentGeneration, t.uid)));
    await waitFor(
      async () =>
        metricValue(await t.metrics(), "slotmap_slots", { slotmap: t.name, shard: "a" }) === 8192 &&
        (await t.shards.a!.read())?.metadata.annotations?.["slotmap.dev/slotmap-uid"] === t.uid,
    );
    await deleteSlotMap(http, t.name);
    await waitFor(
      async () =>
        metricValue(await t.metrics(), "slotmap_assignment_generation", { slotmap: t.name }) === undefined,
      { description: "metric series of the deleted SlotMap removed" },
    );
    expect(metricValue(await t.metrics(), "slotmap_slots", { slotmap: t.name, shard: "a" })).toBeUndefined();

    const sm = await createSlotMap(http, t.name, {
      leaseNamespace: t.ns,
      resources: [{ resource: "secrets" }],
    });
    t.uid = sm.metadata.uid;
    s = await t.until(
      (x) => x.assignmentGeneration === 1 && t.observer.latest()?.uid === t.uid,
      "generation 1",
    );
    expect(s.unassignedSlots).toBe(`0-${SLOT_COUNT - 1}`);
    expect(conditionOf(s, "Ready")).toMatchObject({ status: "False", reason: "PreviousInstanceDraining" });
    await sleep(1500);
    expect(t.latest()?.assignmentGeneration).toBe(1);
    await t.shards.a!.ack(1, t.uid);
    await sleep(500);
    expect(t.latest()?.assignmentGeneration).toBe(1); // b still acks the old instance
    await t.shards.b!.ack(1, t.uid);
    s = await t.until((x) => x.assignmentGeneration === 2, "assignment after both acks");
    expect(counts(s)).toEqual({ a: 8192, b: 8192 });
    expect(s.migrations).toEqual([]);
    expect(conditionOf(s, "Ready")).toMatchObject({ status: "True" });
    t.expectNoViolations();
  });

  it("deletes the Leases of a deleted SlotMap once nobody renews them; a renewing shard keeps its Lease", async () => {
    const t = await Setup.create("orphans", ["a", "b", "c"]);
    await t.settle();
    await deleteSlotMap(http, t.name);
    await t.shards.a!.release(); // a graceful stop: free at once
    t.shards.b!.stopRenewing(); // a crash: waited out for its 2 s duration, then orphan-after
    const deleted = Date.now();
    await waitFor(async () => (await t.shards.a!.read()) === undefined, {
      timeoutMs: 10_000,
      description: "released Lease a deleted (orphan-after 2 s)",
    });
    const aGone = Date.now() - deleted;
    await waitFor(async () => (await t.shards.b!.read()) === undefined, {
      timeoutMs: 20_000,
      description: "unrenewed Lease b deleted after its duration + orphan-after",
    });
    const bGone = Date.now() - deleted;
    expect(bGone).toBeGreaterThanOrEqual(4_000);
    expect(bGone).toBeGreaterThan(aGone);
    expect(await t.shards.c!.read()).toBeDefined(); // c still renews
    console.log(`orphaned Leases deleted: released after ${aGone} ms, unrenewed after ${bGone} ms`);
    t.shards.c!.stopRenewing();
  }, 90_000);

  it("serves /healthz and /readyz on the health-probe port, /metrics on the metrics port", async () => {
    expect(ports.metrics).not.toBe(ports.probes);
    expect(await fetchText(ports.probes, "/healthz")).toMatchObject({
      status: 200,
      text: expect.stringContaining("ok"),
    });
    expect(await fetchText(ports.probes, "/readyz")).toMatchObject({
      status: 200,
      text: expect.stringContaining("[+]caches ok"),
    });
    expect(metricValue((await fetchText(ports.metrics, "/metrics")).text, "slotmap_coordinator_leader")).toBe(
      1,
    );
    // Each port serves only its own endpoints, as kubebuilder's manager does.
    expect((await fetchText(ports.probes, "/metrics")).status).toBe(404);
    expect((await fetchText(ports.metrics, "/readyz")).status).toBe(404);
  });
});
