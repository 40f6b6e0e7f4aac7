import { describe, expect, it } from "vitest";
import {
  acksOfGeneration,
  apiWatchCounters,
  combineStreams,
  conditionOf,
  coordinatorStepCounters,
  derive,
  describeStatus,
  diffCoordinatorSteps,
  diffStreams,
  diffWatchers,
  gaugeValue,
  growth,
  holderIdentity,
  jsonBytes,
  leaseAck,
  logLinesBetween,
  migrationSources,
  newLease,
  projectableOf,
  projectionLag,
  releasedLease,
  renewedLease,
  type ScaleStatus,
  settledOn,
  shardsWithSlots,
  sumWatchers,
  sumWrites,
  watchEventBytes,
  writeCause,
  writesByVerb,
} from "../../../bench/support/scale-model.js";
import { parseShardLeaseAnnotations } from "../../../src/api/lease.js";
import { projectionName, projectStatus } from "../../../src/api/projection.js";

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function lease() {
  return newLease({
    name: "scale-7",
    namespace: "scale-system",
    slotMap: "scale",
    holder: holderIdentity("scale-7", "a1b2c3d4"),
    leaseDurationSeconds: 45,
    nowMs: T0,
  });
}

describe("emulated shard Leases", () => {
  it("a new Lease is held, labelled for the SlotMap, with MicroTime stamps and no ack", () => {
    const l = lease();
    expect(l.metadata.labels).toEqual({ "slotmap.dev/slotmap": "scale" });
    expect(l.spec.holderIdentity).toBe("scale-7-a1b2c3d4-1");
    expect(l.spec.renewTime).toBe("2026-01-02T03:04:05.678000Z");
    expect(l.spec.acquireTime).toBe(l.spec.renewTime);
    expect(l.spec.leaseDurationSeconds).toBe(45);
    expect(leaseAck(l, "uid-1")).toBe(0);
  });

  it("a renewal with an ack writes annotations the coordinator parses, keeps the resourceVersion", () => {
    const current = { ...lease(), metadata: { ...lease().metadata, resourceVersion: "41" } };
    const renewed = renewedLease(current, T0 + 15_000, { uid: "uid-1", generation: 12 });
    expect(renewed.metadata.resourceVersion).toBe("41");
    expect(renewed.spec.renewTime).toBe("2026-01-02T03:04:20.678000Z");
    expect(renewed.spec.holderIdentity).toBe(current.spec.holderIdentity);
    const parsed = parseShardLeaseAnnotations(renewed.metadata.annotations);
    expect(parsed).toMatchObject({ observedGeneration: 12, slotmapUid: "uid-1", errors: [] });
    expect(leaseAck(renewed, "uid-1")).toBe(12);
    expect(leaseAck(renewed, "uid-2")).toBe(0);
    // A plain renewal keeps the ack it had.
    expect(leaseAck(renewedLease(renewed, T0 + 30_000), "uid-1")).toBe(12);
  });

  it("a graceful release clears the holder and names it in the release marker", () => {
    const released = releasedLease(renewedLease(lease(), T0, { uid: "u", generation: 3 }), T0 + 1000);
    expect(released.spec.holderIdentity).toBe("");
    expect(released.metadata.annotations?.["slotmap.dev/released-by"]).toBe("scale-7-a1b2c3d4-1");
    expect(leaseAck(released, "u")).toBe(3);
    expect(() => releasedLease(released, T0)).toThrow(/scale-7: not held/);
  });
});

const STATUS: ScaleStatus = {
  assignmentGeneration: 5,
  shards: [
    { name: "a", slots: "0-8191", holderIdentity: "a-x-1" },
    { name: "b", slots: "8192-16383", holderIdentity: "b-x-1" },
    { name: "c", slots: "", holderIdentity: "c-x-1" },
  ],
  conditions: [
    { type: "Ready", status: "True", reason: "AllShardsReady" },
    { type: "Balanced", status: "False", reason: "TooManyShards", message: "1100 shards" },
  ],
};

describe("status reading", () => {
  it("settled means no migration, nothing unassigned and exactly the expected shards own slots", () => {
    expect([...shardsWithSlots(STATUS)]).toEqual(["a", "b"]);
    expect(settledOn(STATUS, new Set(["a", "b"]))).toBe(true);
    expect(settledOn(STATUS, new Set(["a", "b", "c"]))).toBe(false);
    expect(settledOn(STATUS, new Set(["a"]))).toBe(false);
    expect(settledOn({ ...STATUS, migrations: [{}] }, new Set(["a", "b"]))).toBe(false);
    expect(settledOn({ ...STATUS, unassignedSlots: "5" }, new Set(["a", "b"]))).toBe(false);
    expect(settledOn(undefined, new Set())).toBe(false);
    expect(conditionOf(STATUS, "Balanced")?.reason).toBe("TooManyShards");
    expect(conditionOf(STATUS, "Progressing")).toBeUndefined();
  });

  it("describes a write and names its cause against the previous one", () => {
    const d = describeStatus(STATUS, 12.4);
    expect(d).toMatchObject({ atMs: 12, generation: 5, migrations: 0, shardsListed: 3 });
    expect(d.statusBytes).toBe(jsonBytes(STATUS));
    expect(d.conditions).toBe("Ready=True/AllShardsReady Balanced=False/TooManyShards");
    expect(writeCause(undefined, d)).toBe("generation 5");
    expect(writeCause(d, { ...d, generation: 6 })).toBe("generation 6");
    expect(writeCause(d, { ...d, conditions: "Ready=True" })).toBe("conditions: Ready=True");
    expect(writeCause(d, { ...d, shardsListed: 2 })).toBe("shards listed 3 → 2");
    expect(writeCause(d, { ...d })).toBe("other (shard state or holder)");
  });

  it("counts UTF-8 bytes, not characters", () => {
    expect(jsonBytes({ a: "→" })).toBe(JSON.stringify({ a: "→" }).length + 2);
  });

  it("a whole-object watch event is the object framed as {type, object} and a newline", () => {
    const obj = { metadata: { name: "scale" }, status: STATUS };
    expect(watchEventBytes(obj)).toBe(`{"type":"MODIFIED","object":${JSON.stringify(obj)}}\n`.length);
  });
});

describe("projections", () => {
  const slotMap = { name: "scale", uid: "uid-1" };
  const moving: ScaleStatus = {
    ...STATUS,
    assignmentGeneration: 6,
    shards: [
      { name: "a", slots: "0-4095", holderIdentity: "a-x-1" },
      { name: "b", slots: "8192-16383", holderIdentity: "b-x-1" },
      { name: "c", holderIdentity: "c-x-1" },
    ],
    migrations: [{ slots: "4096-8191", from: "a", to: "c", generation: 6 }],
  };

  it("reads a status as the coordinator projects it, defaults filled in", () => {
    const p = projectableOf(moving);
    expect(p.shards[2]).toEqual({ name: "c", slots: "", holderIdentity: "c-x-1" });
    expect(p.migrations).toEqual([{ slots: "4096-8191", from: "a", to: "c", generation: 6 }]);
    expect(projectableOf({}).assignmentGeneration).toBe(0);
  });

  it("a shard lags until its projection says what the status says, whatever generation it carries", () => {
    const before = projectableOf(STATUS);
    const after = projectableOf(moving);
    // The coordinator rewrote a and c (their content changed); b's projection still carries g5.
    const seen = {
      a: projectStatus(after, slotMap, "a"),
      b: projectStatus(before, slotMap, "b"),
      c: projectStatus(before, slotMap, "c"),
    };
    const shards = Object.entries(seen).map(([name, projection]) => ({ name, projection }));
    expect(projectionLag(moving, slotMap, shards)).toEqual(["c"]);
    expect(projectionLag(moving, slotMap, [...shards, { name: "d", projection: undefined }])).toEqual([
      "c",
      "d",
    ]);
    seen.c = projectStatus(after, slotMap, "c");
    expect(
      projectionLag(
        moving,
        slotMap,
        Object.entries(seen).map(([name, projection]) => ({ name, projection })),
      ),
    ).toEqual([]);
    // Another SlotMap instance, or none seen yet: every shard lags.
    expect(projectionLag(moving, { name: "scale", uid: "uid-2" }, shards)).toHaveLength(3);
    expect(projectionLag(undefined, slotMap, shards)).toHaveLength(3);
    expect(projectionName("scale", "scale-7")).toBe("scale.scale-7");
  });
});

describe("acks of a generation", () => {
  const acks = [
    { name: "a", generation: 4, t: 1010 },
    { name: "b", generation: 5, t: 1100 },
    { name: "c", generation: 5, t: 1250 },
    { name: "a", generation: 5, t: 1300 },
    { name: "d", generation: 6, t: 1900 },
    { name: "b", generation: 6, t: 1950 },
  ];

  it("times each shard's first ack of the generation or later, sources apart", () => {
    const status: ScaleStatus = {
      migrations: [
        { from: "a", to: "e" },
        { from: "c", to: "e" },
        { from: "a", to: "f" },
      ],
    };
    const sources = migrationSources(status);
    expect([...sources]).toEqual(["a", "c"]);
    expect(acksOfGeneration(5, 1000, sources, acks, 900)).toEqual({
      generation: 5,
      atMs: 100,
      sources: 2,
      sourceFirstMs: 250,
      sourceLastMs: 300,
      allLastMs: 900,
      acks: 4,
    });
  });

  it("reports NaN when no source acked", () => {
    const g = acksOfGeneration(7, 1000, new Set(["a"]), acks, 1000);
    expect(g.acks).toBe(0);
    expect(g.sourceFirstMs).toBeNaN();
    expect(g.allLastMs).toBeNaN();
  });
});

describe("watch figures", () => {
  const before = [
    { events: 1, bytes: 100, reconnects: 0 },
    { events: 1, bytes: 100, reconnects: 0 },
  ];
  const after = [
    { events: 3, bytes: 2100, reconnects: 0 },
    { events: 4, bytes: 3100, reconnects: 1 },
  ];

  it("diffs and sums per-watcher tallies, with the fewest and most events per watcher", () => {
    const t = sumWatchers(diffWatchers(before, after));
    expect(t).toEqual({ events: 5, bytes: 5000, minEvents: 2, maxEvents: 3, reconnects: 1, watchers: 2 });
    expect(() => diffWatchers(before, after.slice(1))).toThrow(/differ in length/);
    expect(sumWatchers([])).toMatchObject({ events: 0, minEvents: 0, watchers: 0 });
  });

  it("derives bytes per event, the event ÷ status ratio and the fan-out per write", () => {
    const d = derive({ watch: sumWatchers(diffWatchers(before, after)), statusBytesMean: 800, watchers: 2 });
    expect(d.eventBytes).toBe(1000);
    expect(d.eventOverStatus).toBe(1.25);
    expect(d.bytesAllWatchers).toBe(5000);
    expect(d.bytesPerWrite).toBe(2000);
    expect(derive({ watch: sumWatchers([]), statusBytesMean: 1, watchers: 0 }).eventBytes).toBeNaN();
  });

  it("diffs and sums each stream of a watcher process, and what each watcher received in all", () => {
    const b = {
      projection: [
        { events: 0, bytes: 0, reconnects: 0 },
        { events: 1, bytes: 900, reconnects: 0 },
      ],
      metadata: before,
    };
    const a = {
      projection: [
        { events: 0, bytes: 0, reconnects: 0 },
        { events: 3, bytes: 3300, reconnects: 0 },
      ],
      metadata: after,
      spec: [
        { events: 1, bytes: 5000, reconnects: 0 },
        { events: 0, bytes: 0, reconnects: 0 },
      ],
    };
    expect(combineStreams(a)).toEqual([
      { events: 4, bytes: 7100, reconnects: 0 },
      { events: 7, bytes: 6400, reconnects: 1 },
    ]);
    const d = diffStreams(b, a);
    expect(d.byKind.projection).toMatchObject({ events: 2, bytes: 2400, minEvents: 0, maxEvents: 2 });
    expect(d.byKind.metadata).toMatchObject({ events: 5, bytes: 5000 });
    // A stream kind that appears only after (the spec GETs) counts from zero.
    expect(d.byKind.spec).toMatchObject({ events: 1, bytes: 5000 });
    expect(d.total).toEqual({
      events: 8,
      bytes: 12_400,
      minEvents: 3,
      maxEvents: 5,
      reconnects: 1,
      watchers: 2,
    });
  });

  it("in projection mode the SlotMap event a shard receives is its metadata; the whole event comes from the object", () => {
    const projection = { events: 2, bytes: 2400, minEvents: 0, maxEvents: 2, reconnects: 0, watchers: 2 };
    const metadata = { events: 4, bytes: 3600, minEvents: 2, maxEvents: 2, reconnects: 0, watchers: 2 };
    const d = derive({
      mode: "projection",
      watch: sumWatchers([]),
      streams: { projection, metadata },
      slotMapEventBytes: 1000,
      statusBytesMean: 800,
      watchers: 2,
    });
    expect(d.eventBytes).toBe(900);
    expect(d.projectionEventBytes).toBe(1200);
    expect(d.slotMapEventBytes).toBe(1000);
    expect(d.eventOverStatus).toBe(1.25);
    expect(d.bytesPerWrite).toBe(1800);
  });

  it("growth is the largest shard count's figure over the smallest's", () => {
    expect(
      growth(
        new Map([
          [1000, 90],
          [100, 10],
          [300, 30],
        ]),
      ),
    ).toEqual({ from: 100, to: 1000, factor: 9 });
    expect(growth(new Map([[100, 0]])).factor).toBeNaN();
    expect(growth(new Map()).factor).toBeNaN();
  });
});

const API_METRICS = `# TYPE apiserver_watch_events_total counter
apiserver_watch_events_total{group="slotmap.dev",kind="SlotMap",version="v1alpha1"} 2002
apiserver_watch_events_total{group="coordination.k8s.io",kind="Lease",version="v1"} 99
apiserver_watch_events_sizes_bucket{group="slotmap.dev",kind="SlotMap",version="v1alpha1",le="1024"} 0
apiserver_watch_events_sizes_sum{group="slotmap.dev",kind="SlotMap",version="v1alpha1"} 1.2e+08
apiserver_watch_events_sizes_count{group="slotmap.dev",kind="SlotMap",version="v1alpha1"} 2002
apiserver_watch_events_sizes_sum{group="coordination.k8s.io",kind="Lease",version="v1"} 50000
`;

const REQUEST_METRICS = `# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="slotmap.dev",resource="slotmapshards",scope="namespace",subresource="",verb="POST",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",group="slotmap.dev",resource="slotmapshards",scope="namespace",subresource="",verb="PUT",version="v1alpha1"} 40
apiserver_request_total{code="409",component="apiserver",group="slotmap.dev",resource="slotmapshards",scope="namespace",subresource="",verb="PUT",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",group="slotmap.dev",resource="slotmapshards",scope="namespace",subresource="",verb="DELETE",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",group="slotmap.dev",resource="slotmapshards",scope="namespace",subresource="",verb="WATCH",version="v1alpha1"} 9
apiserver_request_total{code="200",component="apiserver",group="slotmap.dev",resource="slotmaps",scope="cluster",subresource="status",verb="PUT",version="v1alpha1"} 5
`;

const STEPS = (
  count: number,
  sum: number,
  le01: number,
  le1: number,
  lag: number,
) => `# TYPE slotmap_coordinator_step_duration_seconds histogram
slotmap_coordinator_step_duration_seconds_bucket{le="0.05"} ${le01 - 1}
slotmap_coordinator_step_duration_seconds_bucket{le="0.1"} ${le01}
slotmap_coordinator_step_duration_seconds_bucket{le="1"} ${le1}
slotmap_coordinator_step_duration_seconds_bucket{le="+Inf"} ${count}
slotmap_coordinator_step_duration_seconds_sum ${sum}
slotmap_coordinator_step_duration_seconds_count ${count}
nodejs_eventloop_lag_max_seconds ${lag}
`;

describe("metrics and logs", () => {
  it("reads the coordinator's steps, slow ones apart, and diffs two scrapes", () => {
    expect(coordinatorStepCounters(STEPS(10, 2.5, 7, 9, 0.1))).toEqual({
      count: 10,
      seconds: 2.5,
      over100ms: 3,
      over1s: 1,
    });
    const d = diffCoordinatorSteps(STEPS(10, 2.5, 7, 9, 0.1), STEPS(30, 4, 20, 28, 1.5));
    expect(d).toMatchObject({ count: 20, over100ms: 7, over1s: 1, eventLoopLagMaxSeconds: 1.5 });
    expect(d.seconds).toBeCloseTo(1.5, 9);
    expect(coordinatorStepCounters("")).toEqual({ count: 0, seconds: 0, over100ms: 0, over1s: 0 });
  });

  it("counts one resource's writes by verb, failed ones apart", () => {
    const w = writesByVerb(REQUEST_METRICS, "slotmapshards");
    expect(w).toEqual({ POST: 3, PUT: 40, "PUT 409": 2, DELETE: 1 });
    expect(sumWrites(w)).toEqual({ ok: 44, failed: 2 });
    expect(writesByVerb(REQUEST_METRICS, "slotmaps")).toEqual({});
  });

  it("reads the API server's watch counters of one kind", () => {
    const slotmaps = { kind: "SlotMap", resource: "slotmaps" };
    expect(apiWatchCounters(API_METRICS, slotmaps)).toEqual({ events: 2002, bytes: 1.2e8 });
    expect(apiWatchCounters(API_METRICS, { kind: "Secret", resource: "secrets" })).toEqual({
      events: 0,
      bytes: 0,
    });
    // Newer API servers label by resource instead of kind.
    const byResource = API_METRICS.replace(/kind="SlotMap"/g, 'resource="slotmaps"');
    expect(apiWatchCounters(byResource, slotmaps)).toEqual({ events: 2002, bytes: 1.2e8 });
  });

  it("reads a gauge with and without labels", () => {
    const text = `# HELP slotmap_shards_over_limit x
slotmap_shards_over_limit{slotmap="scale"} 76
slotmap_shards_over_limit{slotmap="other"} 0
process_open_fds 12
`;
    expect(gaugeValue(text, "slotmap_shards_over_limit", { slotmap: "scale" })).toBe(76);
    expect(gaugeValue(text, "slotmap_shards_over_limit")).toBe(76);
    expect(gaugeValue(text, "process_open_fds")).toBe(12);
    expect(gaugeValue(text, "slotmap_missing")).toBeUndefined();
  });

  it("counts pino log lines in a time range by message", () => {
    const log = [
      JSON.stringify({ level: 30, time: 1000, msg: "slots assigned" }),
      JSON.stringify({ level: 50, time: 2000, msg: "too many shards: the excess gets no slots" }),
      JSON.stringify({ level: 30, time: 2500, msg: "slots assigned" }),
      JSON.stringify({ level: 30, time: 2600 }),
      "plain text",
      JSON.stringify({ level: 30, time: 3000, msg: "slots assigned" }),
      "",
    ].join("\n");
    expect(logLinesBetween(log, 2000, 3000)).toEqual({
      "too many shards: the excess gets no slots": 1,
      "slots assigned": 1,
      "(no msg)": 1,
      "(not JSON)": 1,
    });
  });
});
