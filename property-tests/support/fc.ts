/**
 * fast-check settings shared by every property test.
 *
 * - Runs: {@link DEFAULT_NUM_RUNS} per property unless the property asks for fewer (expensive
 *   planner properties say why); `FC_NUM_RUNS=<n>` overrides both.
 * - Replay: a failure prints its seed and counterexample path and the line to replay it,
 *   `FC_SEED=<seed> FC_PATH=<path> npm run test:property` (optionally narrowed with `-- -t <name>`).
 *   With `FC_SEED` every property runs from that seed; with `FC_PATH` as well, each property
 *   replays that path. The path is only meaningful for the property that failed: another property
 *   either runs the one input the path leads to (and passes), or, when the path does not exist in
 *   its input space, is skipped with a note instead of failing spuriously.
 */
import fc from "fast-check";
import { expect, it, type TestContext } from "vitest";

/** Runs per property when neither the property nor `FC_NUM_RUNS` says otherwise. */
export const DEFAULT_NUM_RUNS = 1000;

function envInt(name: string, min: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${name}: expected an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Options of one property. */
export interface PropertyOptions {
  /**
   * Runs when `FC_NUM_RUNS` is not set; default {@link DEFAULT_NUM_RUNS}. Give fewer only for
   * expensive properties, with a comment saying why.
   */
  numRuns?: number;
}

/**
 * The fast-check parameters for one property: runs, and the seed and path to replay from the
 * environment.
 *
 * @throws Error naming the variable for a malformed `FC_NUM_RUNS`, `FC_SEED` or `FC_PATH`.
 */
export function fcParams<Ts>(opts: PropertyOptions = {}): fc.Parameters<Ts> {
  const numRuns = envInt("FC_NUM_RUNS", 1) ?? opts.numRuns ?? DEFAULT_NUM_RUNS;
  // Seeds are 32-bit integers and may be negative.
  const seed = envInt("FC_SEED", -(2 ** 31));
  const path = process.env.FC_PATH ?? "";
  if (path !== "" && !/^\d+(:\d+)*$/.test(path)) {
    throw new Error(`FC_PATH: expected a counterexample path like "12:0:3", got ${JSON.stringify(path)}`);
  }
  if (path !== "" && seed === undefined) {
    throw new Error("FC_PATH: a path is replayed from a seed; set FC_SEED too (both are printed on failure)");
  }
  const params: fc.Parameters<Ts> = { numRuns };
  if (seed !== undefined) params.seed = seed;
  if (path !== "") {
    params.path = path;
    params.endOnFailure = true;
  }
  return params;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Checks `property` with {@link fcParams}. On failure throws an error with fast-check's report
 * (counterexample, seed, path) preceded by the command that replays it.
 *
 * @param ctx - the vitest test context, used to skip the test when replaying a path that does not
 *   exist for this property (it belongs to another one).
 */
export function assertProperty<Ts>(
  property: fc.IProperty<Ts>,
  opts: PropertyOptions = {},
  ctx?: TestContext,
): void {
  const params = fcParams<Ts>(opts);
  let details: fc.RunDetails<Ts>;
  try {
    details = fc.check(property, params);
  } catch (e) {
    if (params.path !== undefined && e instanceof Error && e.message.startsWith("Unable to replay")) {
      ctx?.skip(`FC_PATH=${params.path} does not exist for this property: it belongs to another one`);
    }
    throw e;
  }
  if (!details.failed) return;
  const testName = expect.getState().currentTestName ?? "";
  const filter = testName === "" ? "" : ` -- -t ${shellQuote(escapeRegExp(testName))}`;
  const replay = `FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ""} npm run test:property`;
  throw new Error(`Replay with: ${replay}${filter}\n\n${fc.defaultReportMessage(details) ?? ""}`, {
    cause: details.errorInstance,
  });
}

/**
 * Declares a vitest test that checks the property built by `build` (built inside the test, so an
 * arbitrary that throws fails that test only).
 */
export function itProp<Ts>(
  name: string,
  build: () => fc.IProperty<Ts>,
  opts: PropertyOptions = {},
  timeoutMs?: number,
): void {
  it(name, (ctx) => assertProperty(build(), opts, ctx), timeoutMs);
}
