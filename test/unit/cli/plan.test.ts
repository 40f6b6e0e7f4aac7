// `plan`: the planner dry run from a live status, with hypothetical changes; nothing written.
import { describe, expect, it } from "vitest";
import type { Simulation } from "../../../src/cli/commands/plan.js";
import { emptyTable, plan, type ShardInfo, tableToStatus } from "../../../src/slots/index.js";
import { FakeClient, run } from "./helpers.js";

/** A SlotMap whose status is the planner's balanced table over `names` (all Ready and acked). */
function balancedSlotMap(names: string[], maxMigratingSlots = 16384): Record<string, unknown> {
  const shards: ShardInfo[] = names.map((name) => ({ name, state: "Ready", weight: 1, ackedGeneration: 0 }));
  const t = plan(emptyTable(), shards, { maxMigratingSlots: 16384 }).table;
  const wire = tableToStatus(t);
  return {
    apiVersion: "slotmap.dev/v1alpha1",
    kind: "SlotMap",
    metadata: { name: "demo" },
    spec: {
      leaseNamespace: "demo-system",
      resources: [{ group: "", resource: "secrets" }],
      policy: { maxMigratingSlots },
    },
    status: {
      ...wire,
      observedGeneration: 1,
      shards: wire.shards.map((s) => ({ ...s, state: "Ready", observedGeneration: t.generation })),
    },
  };
}

function setup(names = ["s-0", "s-1", "s-2"], maxMigratingSlots = 16384) {
  const c = new FakeClient();
  const doc = balancedSlotMap(names, maxMigratingSlots);
  const { status, ...rest } = doc;
  c.addSlotMap(rest);
  c.setStatus("demo", status as Record<string, unknown>);
  return c;
}

async function simulate(argv: string[], c = setup()): Promise<{ sim: Simulation; stderr: string }> {
  const r = await run(["plan", "demo", "-o", "json", ...argv], { client: c });
  expect(r.code, r.stderr).toBe(0);
  return { sim: JSON.parse(r.stdout) as Simulation, stderr: r.stderr };
}

const countsAfter = (sim: Simulation) => Object.fromEntries(sim.result.shards.map((s) => [s.name, s.after]));

describe("plan", () => {
  it("adding a shard: migrations in one step, commits in the next, only the new shard's quota moves", async () => {
    const { sim } = await simulate(["--add-shard", "s-3"]);
    expect(sim.fromGeneration).toBe(1);
    expect(sim.steps).toHaveLength(2);
    const [start, commit] = sim.steps;
    expect(start!.generation).toBe(2);
    expect(start!.started.every((m) => m.to === "s-3")).toBe(true);
    expect(start!.started.reduce((n, m) => n + m.count, 0)).toBe(4096);
    expect(commit!.committed).toEqual(start!.started);
    expect(sim.result).toMatchObject({ generation: 3, balanced: true, quiescent: true, migrations: [] });
    expect(countsAfter(sim)).toEqual({ "s-0": 4096, "s-1": 4096, "s-2": 4096, "s-3": 4096 });
    // Minimal movement: every net move goes to the new shard, 4096 in all.
    expect(sim.moves.every((m) => m.to === "s-3")).toBe(true);
    expect(sim.moves.reduce((n, m) => n + m.count, 0)).toBe(4096);
  });

  it("removing a shard: its slots are released and assigned directly in one step", async () => {
    const { sim } = await simulate(["--remove-shard", "s-2"]);
    expect(sim.steps).toHaveLength(1);
    expect(sim.steps[0]!.released).toEqual([expect.objectContaining({ from: "s-2", to: null })]);
    expect(sim.steps[0]!.direct.reduce((n, m) => n + m.count, 0)).toBe(sim.steps[0]!.released[0]!.count);
    expect(countsAfter(sim)).toEqual({ "s-0": 8192, "s-1": 8192, "s-2": 0 });
    expect(sim.result.shards.find((s) => s.name === "s-2")!.state).toBe("Dead");
  });

  it("--weight 0 drains a shard; weights come from spec.weights over Lease annotations", async () => {
    const { sim } = await simulate(["--weight", "s-0=0"]);
    expect(countsAfter(sim)["s-0"]).toBe(0);
    expect(sim.result.balanced).toBe(true);

    const c = setup();
    c.addLease("demo-system", "s-1", "demo", { "slotmap.dev/weight": "2" });
    const weighted = await simulate([], c);
    expect(countsAfter(weighted.sim)).toEqual({ "s-0": 4096, "s-1": 8192, "s-2": 4096 });
    const raw = c.slotmaps.get("demo")!;
    (raw.spec as { weights?: Record<string, number> }).weights = { "s-1": 1 };
    const overridden = await simulate([], c);
    expect(overridden.sim.steps).toHaveLength(0);
  });

  it("without Lease access it warns and assumes the default weight", async () => {
    const c = setup();
    c.forbidLeases = true;
    const { sim, stderr } = await simulate(["--add-shard", "s-3"], c);
    expect(stderr).toMatch(/^warning: cannot list Leases in namespace demo-system \(forbidden\)/);
    expect(sim.result.balanced).toBe(true);
  });

  it("prints steps, the resulting counts and the net moves as text", async () => {
    const r = await run(["plan", "demo", "--add-shard", "s-3"], { client: setup() });
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain("Dry run for SlotMap demo from assignment generation 1 (nothing is written).");
    expect(out).toContain("Changes: add s-3");
    expect(out).toMatch(/Step 1 → generation 2\n( {2}migrate\s+s-\d → s-3\s+\d+ slots\s+[0-9,-]+\n){3}/);
    expect(out).toMatch(/Step 2 → generation 3\n( {2}commit\s+s-\d → s-3\s+\d+ slots\s+[0-9,-]+\n){3}/);
    expect(out).toContain("Result: generation 3, balanced");
    expect(out).toMatch(/s-3\s+Ready\s+1\s+4096\s+0\s+4096\s+\+4096\s+[0-9,-]+/);
    expect(out).toContain("Net moves (4096 slots change owner):");
  });

  it("a balanced SlotMap without changes has nothing to do", async () => {
    const r = await run(["plan", "demo"], { client: setup() });
    expect(r.stdout).toContain("No steps: the planner has nothing to do.");
    expect(r.stdout).toContain("Net moves: none");
  });

  it("writes nothing", async () => {
    const c = setup();
    const before = structuredClone(c.slotmaps.get("demo"));
    await run(["plan", "demo", "--add-shard", "s-3", "--remove-shard", "s-0"], { client: c });
    expect(c.slotmaps.get("demo")).toEqual(before);
  });

  it("stops at --max-steps when maxMigratingSlots makes many rounds", async () => {
    const { sim } = await simulate(["--add-shard", "s-3", "--max-steps", "3"], setup(undefined, 100));
    expect(sim.steps).toHaveLength(3);
    expect(sim.result.quiescent).toBe(false);
    for (const st of sim.steps) expect(st.started.reduce((n, m) => n + m.count, 0)).toBeLessThanOrEqual(100);
    const all = await simulate(["--add-shard", "s-3", "--max-steps", "1000"], setup(undefined, 100));
    expect(all.sim.result).toMatchObject({ balanced: true, quiescent: true });
  });

  it.each([
    [["--add-shard", "s-1"], 'error: --add-shard "s-1": slotmap demo already has this shard'],
    [
      ["--remove-shard", "s-9"],
      'error: --remove-shard "s-9": no such shard in slotmap demo (shards: s-0, s-1, s-2)',
    ],
    [["--weight", "s-9=2"], 'error: --weight "s-9=2": no such shard in slotmap demo (shards: s-0, s-1, s-2)'],
  ])("rejects %j naming the value", async (argv, message) => {
    const r = await run(["plan", "demo", ...argv], { client: setup() });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${message}\n`);
  });
});
