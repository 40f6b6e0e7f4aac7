/**
 * The checksum controller as a process: `tsx examples/checksum-controller/main.ts --shard checksums-0`.
 * See README.md in this directory. Shutdown is the library's one recipe ({@link untilShutdown}):
 * SIGTERM/SIGINT stop starting reconciles, drain, release the shard Lease and exit 0; an
 * unhandled error aborts in-flight reconciles, releases the Lease and exits 1. A bad or busy
 * --metrics-address exits 1 before any Lease is taken. Logs are JSON lines on stdout (pino,
 * string level labels), including one `event: "reconcile"` line per reconcile.
 */
import { CommanderError } from "commander";
import { pino } from "pino";
import { untilShutdown } from "slotmap";
import { startChecksumController } from "./app.js";
import { ConfigError, parseChecksumConfig } from "./config.js";

async function main(): Promise<number> {
  let config: ReturnType<typeof parseChecksumConfig>;
  try {
    config = parseChecksumConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return 0;
    if (err instanceof ConfigError) {
      process.stderr.write(`checksum-controller: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = pino({
    level: config.logLevel,
    base: { pid: process.pid },
    formatters: { level: (label) => ({ level: label }) },
  });
  const starting = startChecksumController(config, logger);
  // Handlers first: a signal or a fatal error during start-up still stops what has started.
  const stopped = untilShutdown({
    logger,
    stop: async (cause) => {
      const app = await starting.catch(() => undefined);
      await app?.stop({ fatal: cause === "fatal" });
    },
  });
  try {
    await starting;
  } catch (err) {
    process.stderr.write(`checksum-controller: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  logger.info({ slotmap: config.slotMap, shard: config.shard }, "checksum controller started");
  const code = await stopped;
  logger.info({ code }, "stopped");
  return code;
}

main().then(
  // Exit now: idle keep-alive sockets must not hold a stopped controller up.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `checksum-controller: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
