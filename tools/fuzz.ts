/**
 * Long fuzzing campaigns of the handoff protocol (issue 7, docs/verification.md):
 *
 *   npm run fuzz -- --steps 1000000 --seed 42
 *   npm run fuzz -- --mutation ackBeforeDrain --steps 200000
 *   npm run fuzz -- --seed 42 --batch 3 --path 17:4:0      # replay a printed failure
 *
 * A campaign is a series of fast-check batches (`--runs-per-batch` scenarios each, batch b seeded
 * `seed + b`) until `--steps` commands ran. Each scenario is a whole simulated cluster history of
 * up to `--max-commands` commands between two settle phases (simulation.ts). On the first
 * violation fast-check shrinks the command list; the tool prints the shrunk scenario, the trace
 * leading to the violation and the command line that replays it, and exits 1.
 *
 * Exit codes: 0 no violation (or, with `--expect-violation`, a violation was found), 1 violation
 * (or none found with `--expect-violation`), 2 bad arguments.
 */
import { parseArgs } from "node:util";
import fc from "fast-check";
import {
  COMMAND_WEIGHTS,
  type Command,
  type CommandKind,
  type ScenarioSeed,
} from "../property-tests/sim/commands.js";
import { type Counters, explain, newCounters, simProperty } from "../property-tests/sim/run.js";
import { MUTATIONS, type Mutation, type SimOptions } from "../property-tests/sim/simulation.js";

const USAGE = `usage: npm run fuzz -- [--steps N] [--seed S] [--mutation NAME]... [--max-commands N]
                        [--runs-per-batch N] [--batch B --path P] [--stale-reads] [--expect-violation]
                        [--large] [--forge-granted-acks] [--stuck-ignores-fence] [--without KIND]...
                        [--shrink-seconds N]
                        [--json]
mutations: ${MUTATIONS.join(", ")}`;

/** Parsed command line. */
interface FuzzArgs {
  steps: number;
  seed: number;
  mutations: Mutation[];
  maxCommands: number;
  runsPerBatch: number;
  batch: number | undefined;
  path: string | undefined;
  staleReads: boolean;
  /** The large scenario class: 20+ shards, 1000+ keys. */
  large: boolean;
  forgeGrantedAcks: boolean;
  stuckIgnoresFence: boolean;
  /** Command kinds replaced by a time step (e.g. a threat whose finding is known). */
  without: CommandKind[];
  expectViolation: boolean;
  shrinkSeconds: number;
  json: boolean;
}

/** A bad command line; the message names the flag and the value. */
export class UsageError extends Error {}

function intFlag(name: string, raw: string | undefined, min: number, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw.replaceAll("_", ""));
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/**
 * Parses `npm run fuzz` arguments.
 *
 * @throws UsageError naming the flag and the value (an empty message for `--help`).
 */
export function parseFuzzArgs(argv: readonly string[]): FuzzArgs {
  let values: ReturnType<typeof parse>["values"];
  function parse(a: readonly string[]) {
    return parseArgs({
      args: [...a],
      strict: true,
      allowPositionals: false,
      options: {
        steps: { type: "string" },
        seed: { type: "string" },
        mutation: { type: "string", multiple: true },
        "max-commands": { type: "string" },
        "runs-per-batch": { type: "string" },
        batch: { type: "string" },
        path: { type: "string" },
        "stale-reads": { type: "boolean" },
        large: { type: "boolean" },
        "forge-granted-acks": { type: "boolean" },
        "stuck-ignores-fence": { type: "boolean" },
        without: { type: "string", multiple: true },
        "expect-violation": { type: "boolean" },
        "shrink-seconds": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  }
  try {
    values = parse(argv).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) throw new UsageError("");
  const mutations: Mutation[] = [];
  for (const m of values.mutation ?? []) {
    if (!(MUTATIONS as readonly string[]).includes(m)) {
      throw new UsageError(
        `--mutation: unknown mutation ${JSON.stringify(m)} (known: ${MUTATIONS.join(", ")})`,
      );
    }
    mutations.push(m as Mutation);
  }
  const without: CommandKind[] = [];
  for (const k of values.without ?? []) {
    if (!Object.hasOwn(COMMAND_WEIGHTS, k)) {
      throw new UsageError(
        `--without: unknown command kind ${JSON.stringify(k)} (known: ${Object.keys(COMMAND_WEIGHTS).join(", ")})`,
      );
    }
    without.push(k as CommandKind);
  }
  // Seeds are 32-bit integers like fast-check's (a negative one is written --seed=-5).
  const seed = intFlag("seed", values.seed, -(2 ** 31), Date.now() % 2 ** 31);
  const path = values.path;
  if (path !== undefined && !/^\d+(:\d+)*$/.test(path)) {
    throw new UsageError(`--path: expected a counterexample path like "12:0:3", got ${JSON.stringify(path)}`);
  }
  if (path !== undefined && (values.batch === undefined || values.seed === undefined)) {
    throw new UsageError(
      "--path: a path is replayed from a seed and batch; give --seed and --batch too (both are printed on failure)",
    );
  }
  return {
    steps: intFlag("steps", values.steps, 1, 100_000),
    seed,
    mutations,
    maxCommands: intFlag("max-commands", values["max-commands"], 1, 1500),
    runsPerBatch: intFlag("runs-per-batch", values["runs-per-batch"], 1, 20),
    batch: values.batch === undefined ? undefined : intFlag("batch", values.batch, 0, 0),
    path,
    staleReads: values["stale-reads"] ?? false,
    large: values.large ?? false,
    forgeGrantedAcks: values["forge-granted-acks"] ?? false,
    stuckIgnoresFence: values["stuck-ignores-fence"] ?? false,
    without,
    expectViolation: values["expect-violation"] ?? false,
    shrinkSeconds: intFlag("shrink-seconds", values["shrink-seconds"], 0, 120),
    json: values.json ?? false,
  };
}

function replayLine(a: FuzzArgs, batch: number, path: string): string {
  const m = a.mutations.map((x) => ` --mutation ${x}`).join("");
  const flags = [
    a.staleReads ? " --stale-reads" : "",
    a.large ? " --large" : "",
    a.forgeGrantedAcks ? " --forge-granted-acks" : "",
    a.stuckIgnoresFence ? " --stuck-ignores-fence" : "",
    ...a.without.map((k) => ` --without ${k}`),
  ].join("");
  const extra = `${flags}${a.maxCommands !== 1500 ? ` --max-commands ${a.maxCommands}` : ""}`;
  return `npm run fuzz -- --seed ${a.seed} --batch ${batch} --runs-per-batch ${a.runsPerBatch} --path ${path}${m}${extra}`;
}

/** Simulator options from the command line. */
function simExtra(a: FuzzArgs): Partial<SimOptions> {
  return {
    staleReads: a.staleReads,
    forgeGrantedAcks: a.forgeGrantedAcks,
    stuckIgnoresFence: a.stuckIgnoresFence,
    without: a.without,
  };
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

/** Outcome of a campaign. */
interface CampaignResult {
  counters: Counters;
  elapsedMs: number;
  violation?: { invariant: string; message: string; batch: number; path: string; replay: string };
}

function campaign(a: FuzzArgs): CampaignResult {
  const counters = newCounters();
  const t0 = performance.now();
  let lastReport = t0;
  const onRun = (): void => {
    const now = performance.now();
    if (now - lastReport < 10_000) return;
    lastReport = now;
    const s = (now - t0) / 1000;
    process.stderr.write(
      `  ${fmt(counters.steps)} steps, ${fmt(counters.runs)} scenarios, ${s.toFixed(0)} s, ${fmt(Math.round(counters.steps / s))} steps/s\n`,
    );
  };
  const firstBatch = a.batch ?? 0;
  for (let b = firstBatch; a.path !== undefined ? b === firstBatch : counters.steps < a.steps; b++) {
    const property = simProperty({
      maxCommands: a.maxCommands,
      mutations: a.mutations,
      counters,
      onRun,
      large: a.large,
      extra: simExtra(a),
    });
    // Search without shrinking: a failing scenario may take a whole settle limit of simulated
    // time per run, so shrinking is a separate phase with a time budget.
    const params: fc.Parameters<[ScenarioSeed, Command[]]> = {
      seed: a.seed + b,
      numRuns: a.runsPerBatch,
      endOnFailure: true,
    };
    if (a.path !== undefined) params.path = a.path;
    const found = fc.check(property, params);
    if (!found.failed) continue;
    let details = found;
    const stepsToFailure = counters.stepsToFailure ?? counters.steps;
    if (a.shrinkSeconds > 0 && a.path === undefined) {
      process.stderr.write(
        `violation after ${fmt(stepsToFailure)} steps; shrinking for up to ${a.shrinkSeconds} s\n`,
      );
      const shrunk = fc.check(
        simProperty({
          maxCommands: a.maxCommands,
          mutations: a.mutations,
          large: a.large,
          extra: simExtra(a),
        }),
        {
          seed: a.seed + b,
          numRuns: a.runsPerBatch,
          path: found.counterexamplePath ?? "",
          interruptAfterTimeLimit: a.shrinkSeconds * 1000,
        },
      );
      if (shrunk.failed && shrunk.counterexample !== null) details = shrunk;
    }
    const path = details.counterexamplePath ?? "";
    const err = details.errorInstance as { invariant?: string; message?: string } | undefined;
    const [scenario, commands] = details.counterexample ?? [];
    const story =
      scenario === undefined || commands === undefined
        ? ""
        : explain(scenario, commands, a.mutations, 40, simExtra(a));
    process.stderr.write(
      `\nVIOLATION after ${fmt(stepsToFailure)} steps (batch ${b}):\n` +
        `shrunk to ${commands?.length ?? "?"} commands: ${JSON.stringify(commands)}\n` +
        `scenario: ${JSON.stringify(scenario)}\n\n${story}\n\n`,
    );
    return {
      counters,
      elapsedMs: performance.now() - t0,
      violation: {
        invariant: err?.invariant ?? "error",
        message: err?.message ?? String(details.errorInstance),
        batch: b,
        path,
        replay: replayLine(a, b, path),
      },
    };
  }
  return { counters, elapsedMs: performance.now() - t0 };
}

function main(): number {
  let a: FuzzArgs;
  try {
    a = parseFuzzArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message !== "") process.stderr.write(`fuzz: ${e.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    return e.message === "" ? 0 : 2;
  }
  const label = `${a.mutations.length > 0 ? `mutations ${a.mutations.join("+")}` : "unmutated protocol"}${a.large ? " (large class)" : ""}`;
  process.stderr.write(
    `fuzz: ${label}, seed ${a.seed}, ${a.path !== undefined ? `replaying batch ${a.batch} path ${a.path}` : `${fmt(a.steps)} steps`}, ≤ ${a.maxCommands} commands per scenario\n`,
  );
  const r = campaign(a);
  const s = r.elapsedMs / 1000;
  const c = r.counters;
  const summary = {
    mutations: a.mutations,
    seed: a.seed,
    steps: c.steps,
    scenarios: c.runs,
    seconds: Number(s.toFixed(1)),
    stepsPerSecond: Math.round(c.steps / s),
    simulatedHours: Number((c.simulatedMs / 3_600_000).toFixed(1)),
    reconciles: c.reconciles,
    statusWrites: c.statusWrites,
    takeovers: c.takeovers,
    resets: c.resets,
    escalations: c.escalations,
    personWrites: c.personWrites,
    longestSettleSeconds: Number((c.maxSettleMs / 1000).toFixed(1)),
    violation: r.violation ?? null,
  };
  if (a.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `${label}: ${fmt(c.steps)} steps in ${fmt(c.runs)} scenarios, ${s.toFixed(1)} s (${fmt(summary.stepsPerSecond)} steps/s), ` +
        `${summary.simulatedHours} simulated hours, ${fmt(c.reconciles)} reconciles, ${fmt(c.statusWrites)} status writes, ` +
        `${fmt(c.takeovers)} takeovers, ${fmt(c.resets)} resets, ${fmt(c.escalations)} escalations, ${fmt(c.personWrites)} people's writes, longest settle ${summary.longestSettleSeconds} s: ` +
        `${r.violation === undefined ? "0 violations" : `VIOLATION [${r.violation.invariant}] after ${fmt(c.stepsToFailure ?? c.steps)} steps\nreplay: ${r.violation.replay}`}\n`,
    );
  }
  const found = r.violation !== undefined;
  return found === a.expectViolation ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main();
