/**
 * The one shutdown recipe of a slotmap process (the coordinator, the example shard, and any
 * controller built on the library): SIGTERM or SIGINT stops gracefully (drain, release the
 * Lease) and exits 0; a second signal exits 1 at once; an uncaught exception or unhandled
 * rejection (a socket, stream or emitter error nobody handled) is fatal: it is logged with its
 * stack, the same stop runs with a bound (fence in-flight work, release the Lease while the API
 * server still answers), and the process exits 1. Without this a fatal error killed the process
 * with its Lease held, and its slots waited a full lease duration for a takeover.
 */

/** Where the recipe logs; pino's `Logger` and the client library's `ShardLogger` fit. */
export interface ShutdownLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Why the process stops. */
export type ShutdownCause = "signal" | "fatal";

/** Options of {@link untilShutdown}. */
export interface ShutdownOptions {
  logger: ShutdownLogger;
  /**
   * Stops the process's work. `signal`: drain and release. `fatal`: the process state is
   * suspect, so abort in-flight work (fencing it) and release what can still be released.
   */
  stop: (cause: ShutdownCause) => Promise<void>;
  /** After a fatal error, exit after this long even if `stop` has not finished. Default 10 000. */
  fatalStopTimeoutMs?: number;
  /** Default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
  /** Called to exit at once (second signal); default `process.exit`. Injected by tests. */
  exit?: (code: number) => void;
}

/**
 * Installs the signal and fatal-error handlers and resolves with the exit code once the process
 * has stopped: 0 after a signal and a completed stop, 1 after a fatal error or a failed stop.
 * Call it as soon as the work has started, then `process.exit(await untilShutdown(...))`.
 *
 * ```ts
 * const code = await untilShutdown({
 *   logger,
 *   stop: (cause) => app.stop({ abortInFlight: cause === "fatal" }),
 * });
 * process.exit(code);
 * ```
 */
export function untilShutdown(opts: ShutdownOptions): Promise<number> {
  const { logger } = opts;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  return new Promise<number>((resolve) => {
    let stopping: ShutdownCause | undefined;
    let signalsSeen = 0;
    let fatal = false;
    const finish = (code: number): void => {
      for (const s of signals) process.off(s, onSignal);
      // The fatal handlers stay: an error while exiting must not print a raw crash instead.
      resolve(fatal ? 1 : code);
    };
    const run = (cause: ShutdownCause): void => {
      stopping = cause;
      const bound =
        cause === "fatal"
          ? new Promise<"timeout">((r) =>
              setTimeout(() => r("timeout"), opts.fatalStopTimeoutMs ?? 10_000).unref(),
            )
          : new Promise<never>(() => {});
      Promise.race([opts.stop(cause).then(() => "done" as const), bound]).then(
        (how) => {
          if (how === "timeout")
            logger.error({ cause }, "stop did not finish in time after a fatal error; exiting");
          finish(cause === "fatal" || how === "timeout" ? 1 : 0);
        },
        (err: unknown) => {
          logger.error({ err, cause }, "stop failed");
          finish(1);
        },
      );
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      signalsSeen++;
      if (signalsSeen > 1) {
        logger.warn({ signal }, "second signal: exiting at once");
        exit(1);
        return;
      }
      logger.info({ signal }, "signal received: stopping (drain, then release the Lease)");
      if (stopping === undefined) run("signal");
    };
    const onFatal = (err: unknown, origin: string): void => {
      fatal = true;
      logger.error({ err, origin }, "fatal error: fencing in-flight work, releasing the Lease, exiting 1");
      if (stopping !== "fatal") run("fatal");
    };
    for (const s of signals) process.on(s, onSignal);
    process.on("uncaughtException", (err, origin) => onFatal(err, origin));
    process.on("unhandledRejection", (reason) => onFatal(reason, "unhandledRejection"));
  });
}
