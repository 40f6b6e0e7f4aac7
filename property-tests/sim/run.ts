/**
 * The simulator as a fast-check property, shared by the property tests and `tools/fuzz.ts`:
 * fast-check generates a scenario (options + command list); a broken invariant throws a
 * {@link Violation}; fast-check then shrinks the command list to a short counterexample and prints
 * the seed and path that replay it.
 */
import fc from "fast-check";
import {
  type Command,
  commandsArb,
  largeScenarioSeedArb,
  type ScenarioSeed,
  scenarioSeedArb,
} from "./commands.js";
import { Violation } from "./invariants.js";
import { type Mutation, runScenario, type SimOptions, type SimStats, simOptions } from "./simulation.js";

/** What a property run counts (across all scenarios it ran). */
export interface Counters {
  /** Scenarios run. */
  runs: number;
  /** Commands executed (the fault phase; settle iterations are not counted). */
  steps: number;
  /** Simulated time, ms. */
  simulatedMs: number;
  /** Longest settle (liveness) phase, simulated ms. */
  maxSettleMs: number;
  reconciles: number;
  statusWrites: number;
  takeovers: number;
  /** Coordinator writes that reset a regressed status. */
  resets: number;
  /** Processes that exited on `escalate`. */
  escalations: number;
  /** Writes by people and tools (threats). */
  personWrites: number;
  /** Projection writes and deletes the coordinator applied. */
  projectionWrites: number;
  /** Projections shards refused as set back below a generation they applied. */
  projectionRegressions: number;
  /** Commands executed up to and including the first failure (undefined while none failed). */
  stepsToFailure: number | undefined;
}

export function newCounters(): Counters {
  return {
    runs: 0,
    steps: 0,
    simulatedMs: 0,
    maxSettleMs: 0,
    reconciles: 0,
    statusWrites: 0,
    takeovers: 0,
    resets: 0,
    escalations: 0,
    personWrites: 0,
    projectionWrites: 0,
    projectionRegressions: 0,
    stepsToFailure: undefined,
  };
}

/** Options of {@link simProperty}. */
export interface SimPropertyOptions {
  /** Longest command list generated (lengths are uniform up to it). */
  maxCommands: number;
  /** Protocol mutations to inject (teeth tests); default none. */
  mutations?: readonly Mutation[];
  /** Counters to update (only until the first failure: shrinking re-runs are not counted). */
  counters?: Counters;
  /** Extra simulator options (e.g. `trace`). */
  extra?: Partial<SimOptions>;
  /** Called after each scenario of the search (progress reports). */
  onRun?: (stats: SimStats) => void;
  /**
   * Commands inserted into every generated list at fixed fractions of its length (a scripted
   * skeleton for rare preconditions; the random commands around it still vary and shrink).
   */
  skeleton?: ReadonlyArray<readonly [fraction: number, command: Command]>;
  /** The large scenario class (20+ shards, 1000+ keys: {@link largeScenarioSeedArb}). */
  large?: boolean;
}

/** `commands` with the skeleton's commands inserted at their fractions of its length. */
export function withSkeleton(
  commands: readonly Command[],
  skeleton: ReadonlyArray<readonly [number, Command]> = [],
): Command[] {
  if (skeleton.length === 0) return [...commands];
  const out: Command[] = [];
  const at = skeleton.map(([f, c]) => [Math.floor(f * commands.length), c] as const);
  for (let i = 0; i <= commands.length; i++) {
    for (const [j, c] of at) if (j === i) out.push(c);
    if (i < commands.length) out.push(commands[i]!);
  }
  return out;
}

function add(c: Counters, s: SimStats): void {
  c.runs += 1;
  c.steps += s.steps;
  c.simulatedMs += s.simulatedMs;
  c.maxSettleMs = Math.max(c.maxSettleMs, s.settleMs);
  c.reconciles += s.reconcilesStarted;
  c.statusWrites += s.statusWrites;
  c.takeovers += s.takeovers;
  c.resets += s.resets;
  c.escalations += s.escalations;
  c.personWrites += s.personWrites;
  c.projectionWrites += s.projectionWrites;
  c.projectionRegressions += s.projectionRegressions;
}

/** The simulation as a property over (scenario, commands). */
export function simProperty(o: SimPropertyOptions): fc.IPropertyWithHooks<[ScenarioSeed, Command[]]> {
  const c = o.counters;
  return fc.property(
    o.large ? largeScenarioSeedArb : scenarioSeedArb,
    commandsArb(o.maxCommands),
    (seed, generated) => {
      const opts = simOptions(seed, { ...o.extra, mutations: o.mutations ?? [] });
      const commands = withSkeleton(generated, o.skeleton);
      try {
        const stats = runScenario(opts, commands);
        if (c !== undefined && c.stepsToFailure === undefined) add(c, stats);
        o.onRun?.(stats);
      } catch (e) {
        if (c !== undefined && c.stepsToFailure === undefined) {
          const at = (e as { commandIndex?: number }).commandIndex ?? commands.length;
          c.runs += 1;
          c.steps += Math.min(at + 1, commands.length);
          c.stepsToFailure = c.steps;
        }
        throw e;
      }
    },
  );
}

/** The invariant a failure broke, from fast-check's error. */
export function brokenInvariant(error: unknown): string | undefined {
  return error instanceof Violation ? error.invariant : undefined;
}

/**
 * Re-runs one scenario with tracing on and returns the violation's message and the last trace
 * lines (for a readable report of a shrunk counterexample).
 */
export function explain(
  seed: ScenarioSeed,
  commands: readonly Command[],
  mutations: readonly Mutation[] = [],
  lines = 60,
  extra: Partial<SimOptions> = {},
): string {
  try {
    runScenario(simOptions(seed, { ...extra, mutations, trace: true }), commands);
    return "no violation on replay";
  } catch (e) {
    const trace = ((e as { trace?: readonly string[] }).trace ?? []).slice(-lines);
    const at = (e as { commandIndex?: number }).commandIndex;
    return `${(e as Error).message}\n(at command ${at ?? "?"} of ${commands.length}; last trace lines:)\n${trace.join("\n")}`;
  }
}
