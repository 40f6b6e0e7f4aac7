/**
 * Benchmark toolkit shared by the scenarios in bench/scenarios/ and the runner bench/run.ts.
 *
 * A scenario is a module `bench/scenarios/<name>.ts` whose default export is a {@link Scenario};
 * the runner discovers every file there, so adding a benchmark is adding a file. Timings come
 * from {@link measure}: warmup, then many batches timed with `process.hrtime.bigint()`, reported as
 * the median and p99 of per-op times over batches. Bodies measured together are interleaved batch
 * by batch, so a load spike from another process on the (shared) machine hits all of them alike
 * and their ratio stays meaningful.
 */

/** Options the runner passes to every scenario. */
export interface RunOptions {
  /** Fewer batches and shorter warmup: a smoke run, figures are rougher. */
  readonly quick: boolean;
  /** Progress line on stderr (the table goes to stdout). */
  readonly log: (message: string) => void;
}

/** One result line. Timings are per operation; `target` is an upper bound checked on `median`. */
export interface Row {
  /** What was measured, e.g. `keySlot, 40–60 byte keys`. */
  readonly metric: string;
  /** Unit of `median`, `p99` and `target`: `ns/op`, `ms`, `KiB`, … */
  readonly unit: string;
  readonly median: number;
  /** 99th percentile over batches (timings only). */
  readonly p99?: number;
  /** Upper bound the median must stay under (same unit). */
  readonly target?: number;
  /** `median / baseline median`, measured in the same run. */
  readonly ratio?: number;
  /** What `ratio` compares against. */
  readonly baseline?: string;
  /** Context: sizes, counts, caveats. */
  readonly note?: string;
}

/** A registered benchmark. */
export interface Scenario {
  /** Name used on the command line; equal to the file name without `.ts`. */
  readonly name: string;
  readonly description: string;
  /** Heavy scenarios (a control plane, minutes of runtime) run only when named or with `--all`. */
  readonly heavy?: boolean;
  run(opts: RunOptions): Promise<Row[]> | Row[];
}

/** Per-op timing statistics of one body, in nanoseconds. */
export interface Timing {
  readonly median: number;
  readonly p99: number;
  readonly min: number;
  readonly batches: number;
  readonly opsPerBatch: number;
}

/**
 * A measured body: performs `ops` operations and returns a value derived from their results, which
 * is kept in a sink so the JIT cannot drop the work. Write each body as its own function literal
 * with the loop inside: a loop calling a passed-in callback would share one polymorphic call site.
 */
export type Body = (ops: number) => number;

/** Options of {@link measure}. */
export interface MeasureOptions {
  /** Timed batches per body. Default 200. */
  batches?: number;
  /** Ops per batch are doubled during warmup until a batch takes at least this long. Default 1 ms. */
  minBatchNs?: number;
  /** Untimed running of every body before measuring, per body. Default 300 ms. */
  warmupNs?: number;
}

let sink = 0;

/** Keeps a value observable so the work producing it is not eliminated. */
export function consume(value: number): void {
  sink = (sink + value) | 0;
}

/** The sink's value (printed nowhere; exported so it is observably used). */
export function sinkValue(): number {
  return sink;
}

const now = (): bigint => process.hrtime.bigint();

function timeBatch(body: Body, ops: number): number {
  const t0 = now();
  consume(body(ops));
  return Number(now() - t0);
}

/** The `q`-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError("quantile of no values");
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Measures bodies interleaved: warmup and calibration per body, then `batches` rounds in which
 * every body runs one batch (rotating the order each round). Returns per-op ns by body name.
 */
export function measure<K extends string>(
  bodies: Record<K, Body>,
  opts: MeasureOptions = {},
): Record<K, Timing> {
  const batches = opts.batches ?? 200;
  const minBatchNs = opts.minBatchNs ?? 1e6;
  const warmupNs = opts.warmupNs ?? 3e8;
  const names = Object.keys(bodies) as K[];
  const ops = {} as Record<K, number>;
  for (const name of names) {
    const body = bodies[name];
    // Warm up and calibrate together: double the ops per batch while a batch is shorter than
    // minBatchNs, for the whole warmup. Calibrating on the first (cold, unoptimised) calls alone
    // would settle on batches far too small once the code is optimised.
    let n = 1;
    const until = now() + BigInt(Math.round(warmupNs));
    do {
      if (timeBatch(body, n) < minBatchNs && n < 2 ** 30) n *= 2;
    } while (now() < until);
    ops[name] = n;
  }
  const samples = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let b = 0; b < batches; b++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(b + j) % names.length]!;
      samples[name].push(timeBatch(bodies[name], ops[name]) / ops[name]);
    }
  }
  const out = {} as Record<K, Timing>;
  for (const name of names) {
    const sorted = samples[name].sort((a, b) => a - b);
    out[name] = {
      median: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      min: sorted[0]!,
      batches,
      opsPerBatch: ops[name],
    };
  }
  return out;
}

/** Deterministic PRNG (mulberry32): same seed, same benchmark inputs on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
