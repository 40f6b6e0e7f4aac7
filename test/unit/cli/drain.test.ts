// `drain`: the weight write (conditional, retried on conflict) and the wait, against an in-memory
// API whose "coordinator" runs the real planner one step per poll.
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../../src/kube/http.js";
import {
  emptyTable,
  plan,
  type ShardInfo,
  type StatusTable,
  tableFromStatus,
  tableToStatus,
} from "../../../src/slots/index.js";
import { FakeClient, run, stripAnsi, testIO } from "./helpers.js";

const NAMES = ["s-0", "s-1", "s-2"];

function setup(): FakeClient {
  const c = new FakeClient();
  const shards: ShardInfo[] = NAMES.map((name) => ({ name, state: "Ready", weight: 1, ackedGeneration: 0 }));
  const t = plan(emptyTable(), shards, { maxMigratingSlots: 16384 }).table;
  c.addSlotMap({
    apiVersion: "slotmap.dev/v1alpha1",
    kind: "SlotMap",
    metadata: { name: "demo" },
    spec: { leaseNamespace: "demo-system", resources: [{ resource: "secrets" }] },
  });
  writeStatus(c, tableToStatus(t), 1);
  for (const n of NAMES) c.addLease("demo-system", n, "demo");
  return c;
}

function writeStatus(c: FakeClient, wire: StatusTable, observedGeneration: number): void {
  c.setStatus("demo", {
    ...wire,
    observedGeneration,
    shards: wire.shards.map((s) => ({ ...s, state: "Ready", observedGeneration: wire.assignmentGeneration })),
  });
}

/** One coordinator step per poll: plan with the current weights, every shard acking at once. */
function coordinate(c: FakeClient, weightOf: (obj: KubeObject, shard: string) => number): void {
  c.onGetSlotMap = () => {
    const obj = c.slotmaps.get("demo")!;
    const t = tableFromStatus(obj.status as unknown as StatusTable);
    const shards: ShardInfo[] = NAMES.map((name) => ({
      name,
      state: "Ready",
      weight: weightOf(obj, name),
      ackedGeneration: t.generation,
    }));
    const r = plan(t, shards, { maxMigratingSlots: 16384 });
    writeStatus(c, tableToStatus(r.table), obj.metadata?.generation ?? 1);
  };
}

const specWeight = (obj: KubeObject, shard: string) =>
  (obj.spec as { weights?: Record<string, number> }).weights?.[shard] ?? 1;

describe("drain", () => {
  it("sets spec.weights to 0 and waits until the shard owns nothing, with plain progress lines", async () => {
    const c = setup();
    coordinate(c, specWeight);
    const r = await run(["drain", "s-2", "--slotmap", "demo"], { client: c });
    expect(r.code, r.stderr).toBe(0);
    expect((c.slotmaps.get("demo")!.spec as { weights: unknown }).weights).toEqual({ "s-2": 0 });
    expect(c.slotmaps.get("demo")!.metadata?.generation).toBe(2);
    // One merge patch of the one weight, conditional on the version it read.
    expect(c.patches[0]).toEqual({
      kind: "SlotMap",
      name: "demo",
      patch: { metadata: { resourceVersion: expect.any(String) }, spec: { weights: { "s-2": 0 } } },
    });
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe('slotmap demo: spec.weights["s-2"] set to 0');
    // Poll 1: migrations started (5461 left, all migrating); poll 2: committed.
    expect(lines.slice(1)).toEqual([
      "s-2: 5461 slots left (5461 migrating), generation 2",
      "s-2: 0 slots left, generation 3",
    ]);
    expect(r.stdout).toBe("shard s-2 drained: it owns no slots of slotmap demo (generation 3)\n");
  });

  it("draws a progress bar on a terminal", async () => {
    const c = setup();
    coordinate(c, specWeight);
    const io = testIO({ tty: true });
    const r = await run(["drain", "s-2", "--slotmap", "demo"], { client: c, io });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("\r\x1b[2K[");
    const frames = r.stderr.split("\r\x1b[2K").slice(1).map(stripAnsi);
    expect(frames[0]).toMatch(/^\[░+\]\s+0% s-2: 5461 slots left/);
    expect(frames.at(-1)).toMatch(/^\[█+\] 100% s-2: 0 slots left, generation 3\n$/);
  });

  it("times out naming what is left, and that no coordinator saw the change", async () => {
    const c = setup();
    const r = await run(["drain", "s-2", "--slotmap", "demo", "--timeout", "5s"], { client: c });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /error: timed out after 5s waiting for shard s-2 to drain: 5461 slots left \(0 migrating\); the coordinator has not processed generation 2 of the spec yet/,
    );
  });

  it("retries a conflicting update on a fresh read, and gives up after 5 conflicts", async () => {
    const c = setup();
    c.conflicts = 2;
    const ok = await run(["drain", "s-2", "--slotmap", "demo", "--no-wait"], { client: c });
    expect(ok.code, ok.stderr).toBe(0);
    expect((c.slotmaps.get("demo")!.spec as { weights: unknown }).weights).toEqual({ "s-2": 0 });
    const d = setup();
    d.conflicts = 5;
    const bad = await run(["drain", "s-2", "--slotmap", "demo"], { client: d });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: PATCH .*409 Conflict/);
    expect((d.slotmaps.get("demo")!.spec as { weights?: unknown }).weights).toBeUndefined();
  });

  it("--via lease sets the Lease annotation with a conditional update", async () => {
    const c = setup();
    const leaseWeight = (_obj: KubeObject, shard: string) =>
      Number(c.leases.get(`demo-system/${shard}`)!.metadata?.annotations?.["slotmap.dev/weight"] ?? 1);
    coordinate(c, leaseWeight);
    const rvBefore = c.leases.get("demo-system/s-1")!.metadata?.resourceVersion;
    const r = await run(["drain", "s-1", "--slotmap", "demo", "--via", "lease"], { client: c });
    expect(r.code, r.stderr).toBe(0);
    const lease = c.leases.get("demo-system/s-1")!;
    expect(lease.metadata?.annotations).toEqual({ "slotmap.dev/weight": "0" });
    expect(lease.metadata?.resourceVersion).not.toBe(rvBefore);
    expect(lease.spec).toEqual({ holderIdentity: "s-1-pod" });
    expect(c.patches).toEqual([
      {
        kind: "Lease",
        name: "demo-system/s-1",
        patch: { metadata: { resourceVersion: rvBefore, annotations: { "slotmap.dev/weight": "0" } } },
      },
    ]);
    expect(r.stderr).toContain('lease demo-system/s-1: slotmap.dev/weight set to "0"');
    expect(r.stdout).toContain("shard s-1 drained");
  });

  it("--via lease refuses when spec.weights would override the annotation", async () => {
    const c = setup();
    (c.slotmaps.get("demo")!.spec as Record<string, unknown>).weights = { "s-1": 1 };
    const r = await run(["drain", "s-1", "--slotmap", "demo", "--via", "lease"], { client: c });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: slotmap demo has spec.weights["s-1"] = 1, which overrides the Lease annotation; drain with --via spec, or remove that entry\n',
    );
  });

  it("names an unknown shard, a missing Lease and a missing SlotMap", async () => {
    const c = setup();
    let r = await run(["drain", "s-9", "--slotmap", "demo"], { client: c });
    expect(r).toMatchObject({
      code: 1,
      stderr: 'error: shard "s-9" is not in slotmap demo (shards: s-0, s-1, s-2)\n',
    });
    c.leases.delete("demo-system/s-0");
    r = await run(["drain", "s-0", "--slotmap", "demo", "--via", "lease"], { client: c });
    expect(r).toMatchObject({ code: 1, stderr: "error: lease demo-system/s-0 not found\n" });
    r = await run(["drain", "s-0", "--slotmap", "other"], { client: c });
    expect(r).toMatchObject({ code: 1, stderr: 'error: slotmap "other" not found\n' });
  });
});
