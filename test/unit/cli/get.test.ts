// `get`: the list view and the detailed view of one SlotMap, from status fixtures.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FakeClient, fixture, run } from "./helpers.js";

function client(): FakeClient {
  const c = new FakeClient();
  c.addSlotMap(fixture("with-status.yaml"));
  c.addSlotMap(fixture("minimal.yaml"));
  // The status does not copy acks: `get` joins them in from the shard Leases.
  const ack = (g: number) => ({
    "slotmap.dev/observed-generation": String(g),
    "slotmap.dev/slotmap-uid": "uid-with-status",
  });
  c.addLease("checksums-system", "checksums-0", "with-status", ack(42));
  c.addLease("checksums-system", "checksums-1", "with-status", ack(41));
  c.addLease("checksums-system", "checksums-2", "with-status", ack(40));
  return c;
}

describe("get", () => {
  it("lists SlotMaps with the printer columns", async () => {
    const r = await run(["get"], { client: client() });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+SHARDS\s+READY\s+GENERATION\s+MIGRATING\s+BALANCED\s+AGE$/);
    const row = lines.find((l) => l.startsWith("with-status"))!.split(/\s+/);
    // 3 shards, 2 Ready, generation 42, 5461 migrating, Balanced False, created 5 minutes before the test clock.
    expect(row).toEqual(["with-status", "3", "2", "42", "5461", "False", "5m"]);
    const minimal = lines.find((l) => l.startsWith("minimal"))!.split(/\s+/);
    expect(minimal.slice(1, 6)).toEqual(["0", "0", "0", "0", "-"]);
  });

  it("-o name prints slotmap.slotmap.dev/<name>, for the list and for one", async () => {
    const r = await run(["get", "-o", "name"], { client: client() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split("\n").sort()).toEqual([
      "slotmap.slotmap.dev/minimal",
      "slotmap.slotmap.dev/with-status",
    ]);
    const one = await run(["get", "minimal", "-o", "name"], { client: client() });
    expect(one.stdout).toBe("slotmap.slotmap.dev/minimal\n");
  });

  it("-o wide adds the Lease namespace and the resources", async () => {
    const r = await run(["get", "-o", "wide"], { client: client() });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^NAME\s+SHARDS\s+READY\s+GENERATION\s+MIGRATING\s+BALANCED\s+AGE\s+LEASE-NAMESPACE\s+RESOURCES$/,
    );
    const row = lines.find((l) => l.startsWith("with-status"))!.split(/\s+/);
    expect(row.slice(0, 7)).toEqual(["with-status", "3", "2", "42", "5461", "False", "5m"]);
    expect(row[7]).toBe("checksums-system");
    expect(row[8]).toMatch(/^secrets/);
    const bad = await run(["get", "-o", "table"], { client: client() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      '-o/--output "table": unsupported output format (use json, yaml, name or wide)',
    );
  });

  it("lists a SlotMap with an invalid status with question marks and a warning", async () => {
    const c = client();
    c.setStatus("minimal", { assignmentGeneration: 1, shards: [{ name: "a", state: "Asleep" }] });
    const r = await run(["get"], { client: c });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^minimal\s+\?\s+\?\s+\?\s+\?\s+\?\s+5m$/m);
    expect(r.stdout).toMatch(/^with-status\s+3\s+2\s+42/m);
    expect(r.stderr).toContain(
      'warning: slotmap "minimal" is invalid:\nstatus.shards[0].state: must be one of',
    );
  });

  it("shows one SlotMap: shards, ranges, acks, migrations, conditions", async () => {
    const r = await run(["get", "with-status"], { client: client() });
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain("Assignment generation: 42");
    expect(out).toContain("Slots:                 10923 owned, 5461 migrating, 0 unassigned");
    const shardRow = (name: string) =>
      out
        .split("\n")
        .find((l) => l.startsWith(name))!
        .split(/\s{3,}/);
    expect(shardRow("checksums-0")).toEqual([
      "checksums-0",
      "Ready",
      "5462",
      "0-5461",
      "42/42",
      "checksums-0-pod",
    ]);
    expect(shardRow("checksums-1")).toEqual([
      "checksums-1",
      "Ready",
      "5461",
      "5462-10922",
      "41/42 (behind)",
      "+5461",
      "checksums-1-pod",
    ]);
    expect(shardRow("checksums-2")).toEqual([
      "checksums-2",
      "Expired",
      "0",
      "-",
      "40/42 (behind)",
      "-5461",
      "checksums-2-pod",
    ]);
    expect(out).toMatch(
      /checksums-2 → checksums-1\s+5461\s+10923-16383\s+42\s+waiting for checksums-2 to ack 42 \(acked 40\)/,
    );
    expect(out).toMatch(/Progressing\s+True\s+HandoffInProgress\s+5m\s+waiting for checksums-2/);
  });

  it("judges each ack against the shard's projection: a shard no generation since involved is not behind", async () => {
    const c = client();
    const projection = (shard: string, generation: number, uid = "uid-with-status") => ({
      apiVersion: "slotmap.dev/v1alpha1",
      kind: "SlotMapShard",
      metadata: {
        name: `with-status.${shard}`,
        namespace: "checksums-system",
        labels: { "slotmap.dev/slotmap": "with-status" },
      },
      spec: {
        slotMap: "with-status",
        slotMapUid: uid,
        shard,
        assignmentGeneration: generation,
        drainBarrier: false,
      },
    });
    c.projections.set("checksums-system/with-status.checksums-0", projection("checksums-0", 39));
    c.projections.set("checksums-system/with-status.checksums-1", projection("checksums-1", 41));
    // Of another SlotMap instance: ignored, the shard is judged against the table's generation.
    c.projections.set("checksums-system/with-status.checksums-2", projection("checksums-2", 40, "old-uid"));
    const r = await run(["get", "with-status"], { client: c });
    expect(r.code, r.stderr).toBe(0);
    const ack = (name: string) =>
      r.stdout
        .split("\n")
        .find((l) => l.startsWith(name))!
        .split(/\s{3,}/)[4];
    expect(ack("checksums-0")).toBe("42/39");
    expect(ack("checksums-1")).toBe("41/41");
    expect(ack("checksums-2")).toBe("40/42 (behind)");
  });

  it("says so when there is no status yet", async () => {
    const r = await run(["get", "minimal"], { client: client() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Status:                none yet");
  });

  it("-o yaml and -o json print the object as the server returned it", async () => {
    const c = client();
    const y = await run(["get", "with-status", "-o", "yaml"], { client: c });
    expect(parse(y.stdout)).toEqual(await c.getSlotMap("with-status"));
    const j = await run(["get", "-o", "json"], { client: c });
    const list = JSON.parse(j.stdout);
    expect(list.kind).toBe("List");
    expect(list.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([
      "with-status",
      "minimal",
    ]);
  });
});
