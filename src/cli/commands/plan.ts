/**
 * `kubectl slotmap plan <slotmap>`: a dry run of the planner from the live status. Builds the
 * planner's shard list from `status.shards` (weights from `spec.weights` and the shard Leases),
 * applies hypothetical changes (`--add-shard`, `--remove-shard`, `--weight`), then runs plan()
 * step by step, assuming every Ready shard acknowledges each generation, until nothing changes.
 * Nothing is written.
 */
import { ANNOTATION_WEIGHT, DEFAULT_WEIGHT, effectiveWeight, LIMITS } from "../../api/index.js";
import {
  countSlots,
  diffTables,
  formatSlotRanges,
  freeRanges,
  type Migration,
  ownedCounts,
  type PlanResult,
  plan,
  rangesByShard,
  type ShardInfo,
  type SlotRange,
  type SlotTable,
} from "../../slots/index.js";
import type { CommandContext } from "../context.js";
import { align, checkName, type OutputFormat, plural, table, writeStructured } from "../format.js";
import { UsageError } from "../io.js";
import {
  fetchShardLeases,
  fetchSlotMap,
  type LoadedSlotMap,
  type ShardLeaseView,
  shardState,
} from "../model.js";

/** Hypothetical changes to apply before planning. */
export interface PlanChanges {
  add: string[];
  remove: string[];
  weights: Map<string, number>;
}

/** Options of `plan`. */
export interface PlanOptions {
  output?: OutputFormat | undefined;
  addShard: string[];
  removeShard: string[];
  weight: string[];
  maxSteps: number;
}

/** Slots moved in one direction, as printed and in `-o json`. */
export interface MoveOut {
  from: string | null;
  to: string | null;
  slots: string;
  count: number;
}

/** One planner step. */
export interface PlanStep {
  generation: number;
  committed: MoveOut[];
  started: MoveOut[];
  direct: MoveOut[];
  released: MoveOut[];
  retargeted: MoveOut[];
}

/** A shard in the result. */
export interface ShardOutcome {
  name: string;
  state: ShardInfo["state"];
  weight: number;
  /** Slot quota (Ready shards only). */
  target: number | null;
  before: number;
  after: number;
  slots: string;
}

/** The whole dry run. */
export interface Simulation {
  slotmap: string;
  fromGeneration: number;
  changes: { add: string[]; remove: string[]; weights: Record<string, number> };
  steps: PlanStep[];
  result: {
    generation: number;
    balanced: boolean;
    /** The planner had nothing more to do (false when stopped by maxSteps). */
    quiescent: boolean;
    shards: ShardOutcome[];
    /** Migrations still pending at the end (from shards that will not ack, e.g. Expired). */
    migrations: MoveOut[];
    unassigned: string;
  };
  /** Net owner changes from the start to the end (`null`: no owner, i.e. migrating or free). */
  moves: MoveOut[];
}

/** Parses `--weight NAME=W` values. */
export function parseWeightArgs(values: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of values) {
    const eq = v.lastIndexOf("=");
    const name = eq < 0 ? "" : v.slice(0, eq);
    const w = eq < 0 ? "" : v.slice(eq + 1);
    if (eq < 0 || name === "") {
      throw new UsageError(`--weight ${JSON.stringify(v)}: expected NAME=WEIGHT, e.g. checksums-2=0`);
    }
    checkName(name, "--weight shard");
    if (!/^(0|[1-9][0-9]*)$/.test(w) || Number(w) > LIMITS.maxWeight) {
      throw new UsageError(
        `--weight ${JSON.stringify(v)}: weight ${JSON.stringify(w)} must be an integer from 0 to ${LIMITS.maxWeight}`,
      );
    }
    out.set(name, Number(w));
  }
  return out;
}

const move = (from: string | null, to: string | null, slots: readonly SlotRange[]): MoveOut => ({
  from,
  to,
  slots: formatSlotRanges(slots),
  count: countSlots(slots),
});
const migMove = (m: Migration): MoveOut => move(m.from, m.to, m.slots);

function stepOf(r: PlanResult): PlanStep {
  return {
    generation: r.table.generation,
    committed: r.committed.map(migMove),
    started: r.started.map(migMove),
    direct: r.direct.map((d) => move(null, d.to, d.slots)),
    released: r.released.map((d) => move(d.from, null, d.slots)),
    retargeted: r.retargeted.map(migMove),
  };
}

/**
 * The planner's shard list from a SlotMap status and Lease weights (`leaseWeights`: shard →
 * annotation weight; absent shards weigh {@link DEFAULT_WEIGHT}), with `changes` applied.
 *
 * @throws UsageError for a change naming a shard that is unknown (or already known, for add).
 */
export function buildShardInfos(
  l: LoadedSlotMap,
  leases: ReadonlyMap<string, Pick<ShardLeaseView, "weight" | "acked">>,
  changes: PlanChanges,
): ShardInfo[] {
  const infos = new Map<string, ShardInfo>();
  for (const s of l.status?.shards ?? []) {
    const lease = leases.get(s.name);
    infos.set(s.name, {
      name: s.name,
      state: shardState(s),
      weight: effectiveWeight(l.sm.spec, s.name, lease?.weight ?? DEFAULT_WEIGHT),
      ackedGeneration: lease?.acked ?? 0,
    });
  }
  const known = () => [...infos.keys()].join(", ") || "none";
  for (const name of changes.add) {
    checkName(name, "--add-shard");
    if (infos.has(name)) {
      throw new UsageError(`--add-shard ${JSON.stringify(name)}: slotmap ${l.name} already has this shard`);
    }
    infos.set(name, { name, state: "Ready", weight: DEFAULT_WEIGHT, ackedGeneration: 0 });
  }
  for (const name of changes.remove) {
    checkName(name, "--remove-shard");
    if (!infos.has(name) || changes.add.includes(name)) {
      throw new UsageError(
        `--remove-shard ${JSON.stringify(name)}: no such shard in slotmap ${l.name} (shards: ${known()})`,
      );
    }
    // A removed shard is what a graceful shutdown leaves: Lease released, Dead at once.
    infos.set(name, { ...infos.get(name)!, state: "Dead" });
  }
  for (const [name, weight] of changes.weights) {
    const s = infos.get(name);
    if (s === undefined) {
      throw new UsageError(
        `--weight ${JSON.stringify(`${name}=${weight}`)}: no such shard in slotmap ${l.name} (shards: ${known()})`,
      );
    }
    infos.set(name, { ...s, weight });
  }
  return [...infos.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Runs the planner from `l`'s table until it has nothing to do or `maxSteps` steps were made. */
export function simulate(
  l: LoadedSlotMap,
  shards: readonly ShardInfo[],
  changes: PlanChanges,
  maxSteps: number,
): Simulation {
  const start = l.table;
  let t: SlotTable = start;
  let infos = [...shards];
  const steps: PlanStep[] = [];
  const policy = { maxMigratingSlots: l.sm.spec.policy.maxMigratingSlots };
  let last = plan(t, infos, policy);
  while (last.changed && steps.length < maxSteps) {
    steps.push(stepOf(last));
    t = last.table;
    // Assume every Ready shard applies and acknowledges the new generation; Expired shards do not
    // (they are not renewing), so migrations from them stay pending, as they would in the cluster.
    const gen = t.generation;
    infos = infos.map((s) => (s.state === "Ready" ? { ...s, ackedGeneration: gen } : s));
    last = plan(t, infos, policy);
  }
  const before = ownedCounts(start);
  const after = ownedCounts(t);
  const ranges = rangesByShard(t);
  const names = [...new Set([...start.shards, ...t.shards, ...infos.map((s) => s.name)])].sort();
  const info = new Map(infos.map((s) => [s.name, s]));
  return {
    slotmap: l.name,
    fromGeneration: start.generation,
    changes: {
      add: [...changes.add],
      remove: [...changes.remove],
      weights: Object.fromEntries(changes.weights),
    },
    steps,
    result: {
      generation: t.generation,
      balanced: last.balanced,
      quiescent: !last.changed,
      shards: names.map((name) => {
        const s = info.get(name);
        return {
          name,
          state: s?.state ?? "Dead",
          weight: s?.weight ?? 0,
          target: last.targets.get(name) ?? null,
          before: before.get(name) ?? 0,
          after: after.get(name) ?? 0,
          slots: formatSlotRanges(ranges.get(name) ?? []),
        };
      }),
      migrations: t.migrations.map(migMove),
      unassigned: formatSlotRanges(freeRanges(t)),
    },
    moves: diffTables(start, t).map((d) => move(d.from, d.to, d.slots)),
  };
}

const side = (s: string | null) => s ?? "(none)";

/** The text report of a simulation. */
export function formatSimulation(sim: Simulation): string {
  const lines: string[] = [];
  lines.push(
    `Dry run for SlotMap ${sim.slotmap} from assignment generation ${sim.fromGeneration} (nothing is written).`,
  );
  const ch: string[] = [
    ...sim.changes.add.map((n) => `add ${n}`),
    ...sim.changes.remove.map((n) => `remove ${n}`),
    ...Object.entries(sim.changes.weights).map(([n, w]) => `weight ${n}=${w}`),
  ];
  lines.push(`Changes: ${ch.length > 0 ? ch.join(", ") : "none (what the coordinator would do next)"}`);
  lines.push("");
  if (sim.steps.length === 0) {
    lines.push("No steps: the planner has nothing to do.");
  }
  for (const [i, st] of sim.steps.entries()) {
    lines.push(`Step ${i + 1} → generation ${st.generation}`);
    const rows: string[][] = [];
    const add = (verb: string, ms: MoveOut[]) => {
      for (const m of ms)
        rows.push([`  ${verb}`, `${side(m.from)} → ${side(m.to)}`, plural(m.count, "slot"), m.slots]);
    };
    add("commit", st.committed);
    add("release", st.released);
    add("assign", st.direct);
    add("retarget", st.retargeted);
    add("migrate", st.started);
    lines.push(align(rows).trimEnd());
  }
  lines.push("");
  const r = sim.result;
  const status = !r.quiescent
    ? `stopped after ${plural(sim.steps.length, "step")} (raise --max-steps)`
    : r.balanced
      ? "balanced"
      : r.migrations.length > 0
        ? "not balanced: migrations wait for shards that will not ack (Expired)"
        : "not balanced";
  lines.push(`Result: generation ${r.generation}, ${status}`);
  lines.push(
    table(
      ["SHARD", "STATE", "WEIGHT", "TARGET", "BEFORE", "AFTER", "CHANGE", "RANGES"],
      r.shards.map((s) => {
        const d = s.after - s.before;
        return [
          s.name,
          s.state,
          String(s.weight),
          s.target === null ? "-" : String(s.target),
          String(s.before),
          String(s.after),
          d > 0 ? `+${d}` : d < 0 ? String(d) : "0",
          s.slots || "-",
        ];
      }),
    ).trimEnd(),
  );
  for (const m of r.migrations) {
    lines.push(`Pending: ${m.from} → ${m.to} ${plural(m.count, "slot")} ${m.slots}`);
  }
  if (r.unassigned !== "") lines.push(`Unassigned: ${r.unassigned}`);
  lines.push("");
  if (sim.moves.length === 0) {
    lines.push("Net moves: none");
  } else {
    const total = sim.moves.filter((m) => m.to !== null).reduce((n, m) => n + m.count, 0);
    lines.push(`Net moves (${plural(total, "slot")} change owner):`);
    lines.push(
      align(
        sim.moves.map((m) => [" ", `${side(m.from)} → ${side(m.to)}`, plural(m.count, "slot"), m.slots]),
      ).trimEnd(),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Runs `plan`. */
export async function runPlan(ctx: CommandContext, name: string, opts: PlanOptions): Promise<void> {
  const smName = checkName(name, "slotmap");
  const changes: PlanChanges = {
    add: opts.addShard,
    remove: opts.removeShard,
    weights: parseWeightArgs(opts.weight),
  };
  const client = ctx.client();
  const l = await fetchSlotMap(client, smName);
  const ns = l.sm.spec.leaseNamespace;
  const leases = await fetchShardLeases(client, l);
  if (leases.forbidden) {
    ctx.io.stderr.write(
      `warning: cannot list Leases in namespace ${ns} (forbidden): assuming ${ANNOTATION_WEIGHT} ${DEFAULT_WEIGHT} unless spec.weights says otherwise\n`,
    );
  }
  for (const [leaseName, v] of leases.byName) {
    for (const w of v.warnings) ctx.io.stderr.write(`warning: lease ${ns}/${leaseName}: ${w}\n`);
  }
  const infos = buildShardInfos(l, leases.byName, changes);
  const sim = simulate(l, infos, changes, opts.maxSteps);
  if (opts.output !== undefined) {
    writeStructured(ctx.io.stdout, opts.output, sim);
    return;
  }
  ctx.io.stdout.write(formatSimulation(sim));
}
