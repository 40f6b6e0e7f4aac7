/**
 * The checksum controller as a process: `tsx examples/checksum-controller/main.ts --shard checksums-0`.
 * See README.md in this directory. SIGTERM/SIGINT: stop starting reconciles, drain, release the
 * shard Lease, exit 0. Logs are JSON lines on stdout (pino), including one `event: "reconcile"`
 * line per reconcile.
 */
import { CommanderError } from "commander";
import { pino } from "pino";
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
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
  const app = await startChecksumController(config, logger);
  logger.info({ slotmap: config.slotMap, shard: config.shard }, "checksum controller started");
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, "second signal: exiting without waiting");
        process.exit(1);
      }
      logger.info({ signal }, "stopping: draining in-flight reconciles, then releasing the shard Lease");
      void app.stop().then(resolve);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  logger.info({}, "stopped");
  return 0;
}

main().then(
  (code) => {
    // Exit now: idle keep-alive sockets must not hold a stopped controller up.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(
      `checksum-controller: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
