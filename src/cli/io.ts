/**
 * The process boundary of the CLI: output streams, environment and exit codes. Commands write
 * through a {@link CliIO} so tests run them in-process with captured output.
 */

/** A place to write text: process.stdout, process.stderr, or a capture in tests. */
export interface TextSink {
  write(text: string): unknown;
  /** Whether the sink is a terminal (colours, progress bars redrawn in place). */
  readonly isTTY?: boolean;
  /** Terminal width in characters, when known. */
  readonly columns?: number;
}

/** Everything a command may touch besides the API server. */
export interface CliIO {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** Environment (KUBECONFIG, NO_COLOR, HOME). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Clock; tests may advance it. */
  now(): number;
  /** Sleeps; aborted by `signal`. Tests may replace it. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Exit codes, as kubectl uses them. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

/**
 * A failure to report as `error: <message>` and exit 1 (the API server said no, an object is
 * missing, a wait timed out).
 */
export class CliError extends Error {
  readonly exitCode: number = EXIT.error;
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

/** A bad command line: reported as `error: <message>`, exit 2. */
export class UsageError extends CliError {
  override readonly exitCode: number = EXIT.usage;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A {@link CliIO} over the real process. */
export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const t = setTimeout(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, ms);
        const onAbort = () => {
          clearTimeout(t);
          reject(signal?.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
  };
}
