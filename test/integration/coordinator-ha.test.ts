// Two coordinator replicas as separate OS processes with leader election on a real API server:
// the leader is killed with SIGKILL in the middle of a handoff and the standby finishes it from
// the SlotMap status alone. Every status version is watched and checked: no slot is ever in two
// places, and no slot leaves a migration without its source's ack.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeHttp } from "../../src/kube/http.js";
import { freshNamespace, waitFor } from "../support/cluster.js";
import {
  CoordinatorProcess,
  counts,
  deleteSlotMap,
  ensureCrd,
  type FakeShard,
  fetchText,
  metricValue,
  newHttp,
  SlotMapFixture,
  type StatusObserver,
  type Tracked,
} from "./coordinator-harness.js";

let http: KubeHttp;
let electionNs: string;
const processes: CoordinatorProcess[] = [];
const shards: FakeShard[] = [];
const observers: StatusObserver[] = [];
const slotMaps: string[] = [];
let leaderPort: number | undefined;
const track: Tracked = { shards, observers, slotMaps, metricsPort: () => leaderPort };

beforeAll(async () => {
  await ensureCrd();
  http = newHttp();
  electionNs = await freshNamespace("coord-election");
});

afterAll(async () => {
  for (const p of processes) p.kill("SIGKILL");
  for (const s of shards) s.stopRenewing();
  await Promise.all(observers.map((o) => o.stop()));
  await Promise.all(slotMaps.map((n) => deleteSlotMap(http, n)));
});

function replica(identity: string): CoordinatorProcess {
  const p = new CoordinatorProcess([
    "--leader-elect=true",
    "--leader-elect-resource-namespace",
    electionNs,
    "--leader-elect-lease-duration",
    "3s",
    "--leader-elect-renew-deadline",
    "2s",
    "--leader-elect-retry-period",
    "500ms",
    "--metrics-bind-address",
    "127.0.0.1:0",
    "--health-probe-bind-address",
    "127.0.0.1:0",
    "--orphan-after",
    "2",
    "--identity",
    identity,
  ]);
  processes.push(p);
  return p;
}

async function electionHolder(): Promise<string | null | undefined> {
  const lease = await http.request<{ spec: { holderIdentity?: string | null } }>(
    "GET",
    `/apis/coordination.k8s.io/v1/namespaces/${electionNs}/leases/slotmap-coordinator`,
  );
  return lease.spec.holderIdentity;
}

describe("coordinator replicas with leader election", () => {
  it("the standby finishes a handoff whose leader was killed, with no slot ever in two places", async () => {
    const first = replica("coord-1");
    await waitFor(() => first.hasLog("became leader: starting the coordinator"), {
      timeoutMs: 30_000,
      description: `coord-1 to lead\n${first.tail()}`,
    });
    const second = replica("coord-2");
    await waitFor(
      () => second.hasLog("another replica leads: standing by") && second.probePort !== undefined,
      {
        timeoutMs: 30_000,
        description: `coord-2 to stand by\n${second.tail()}`,
      },
    );
    leaderPort = first.metricsPort;
    // The standby is ready (standing by) and exports leader 0.
    expect((await fetchText(second.probePort!, "/readyz")).status).toBe(200);
    expect(
      metricValue((await fetchText(second.metricsPort!, "/metrics")).text, "slotmap_coordinator_leader"),
    ).toBe(0);

    const t = await SlotMapFixture.create(http, track, "ha", ["a", "b", "c"]);
    let s = await t.settle();
    const g = s.assignmentGeneration;
    expect(metricValue(await t.metrics(), "slotmap_assignment_generation", { slotmap: t.name })).toBe(g);

    await t.join("d");
    s = await t.until((x) => x.migrations.length === 3, "handoffs to d started by coord-1");
    expect(s.assignmentGeneration).toBe(g + 1);
    // stdout may trail the status the watch saw: wait for the line rather than expect it now.
    await waitFor(() => first.logs.some((l) => l.msg === "handoffs started" && l.slotmap === t.name), {
      timeoutMs: 10_000,
      description: `coord-1 to log the handoffs it started\n${first.tail()}`,
    });

    first.kill("SIGKILL");
    const killedAt = Date.now();
    expect(await first.exit).toMatchObject({ signal: "SIGKILL" });
    // The sources ack while nobody leads; one of them only after the new leader took over.
    await t.shards.a!.ack(g + 1, t.uid);
    await t.shards.b!.ack(g + 1, t.uid);
    await waitFor(() => second.hasLog("became leader: starting the coordinator"), {
      timeoutMs: 30_000,
      description: `coord-2 to take over\n${second.tail()}`,
    });
    const tookOverAfter = Date.now() - killedAt;
    leaderPort = second.metricsPort;
    s = await t.until((x) => x.migrations.length === 1, "a's and b's handoffs committed by coord-2");
    expect(s.migrations[0]).toMatchObject({ from: "c", to: "d", generation: g + 1 });
    await t.shards.c!.ack(g + 1, t.uid);
    s = await t.until((x) => x.migrations.length === 0, "c's handoff committed");
    expect(counts(s)).toEqual({ a: 4096, b: 4096, c: 4096, d: 4096 });
    console.log(`[coordinator-ha] standby leading ${tookOverAfter} ms after the leader was killed`);

    // The log line is read from the process's stdout, which may trail the status the watch saw.
    await waitFor(
      () =>
        second.logs.some(
          (l) => l.msg === "handoffs committed" && l.slotmap === t.name && l.sources === "c" && l.count === 1,
        ),
      { timeoutMs: 10_000, description: `coord-2 to log c's commit\n${second.tail()}` },
    );
    const text = await t.metrics();
    expect(metricValue(text, "slotmap_coordinator_leader")).toBe(1);
    expect(metricValue(text, "slotmap_assignment_generation", { slotmap: t.name })).toBe(
      s.assignmentGeneration,
    );
    expect(metricValue(text, "slotmap_shards", { slotmap: t.name, state: "Ready" })).toBe(4);
    expect(t.observer.versions.length).toBeGreaterThan(3);
    t.expectNoViolations();

    // SIGTERM: the leader stops, releases its Lease and exits 0.
    second.kill("SIGTERM");
    expect(await second.exit).toEqual({ code: 0, signal: null });
    expect(second.hasLog("stopped")).toBe(true);
    expect(await electionHolder()).toBeFalsy();
  });
});
