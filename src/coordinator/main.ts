#!/usr/bin/env node
// First: on an unsupported Node.js, one line and exit 1 before any dependency is evaluated.
import "../runtime/guard-bin.js";
import { randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { delimiter } from "node:path";
import { fileURLToPath } from "node:url";
// Type only: client-node (about 1 s and 80 MiB of generated models) loads when a kubeconfig is.
import type { KubeConfig } from "@kubernetes/client-node";
import { CommanderError } from "commander";
import { type Logger, pino } from "pino";
import { KubeHttp } from "../kube/http.js";
import { LeaderElector } from "../kube/leader-election.js";
import { type OpsServer, type OpsServerOptions, startOpsServer } from "../kube/ops-server.js";
import { untilShutdown } from "../runtime/shutdown.js";
import { PACKAGE_VERSION } from "../runtime/version.js";
import { ConfigError, type CoordinatorConfig, parseCoordinatorConfig } from "./config.js";
import { CoordinatorDriver } from "./driver.js";
import { CoordinatorMetrics } from "./metrics.js";

/**
 * The `slotmap-coordinator` process: metrics and health-probe servers, optional leader
 * election, and the driver (src/coordinator/driver.ts) while this replica leads. See
 * docs/coordinator.md.
 */

/** The bound ports of the coordinator's two servers; undefined when disabled ("0"). */
export interface CoordinatorPorts {
  /** `/metrics`, on `--metrics-bind-address`. */
  metrics: number | undefined;
  /** `/healthz` and `/readyz`, on `--health-probe-bind-address`. */
  healthProbe: number | undefined;
}

/** Options of {@link runCoordinator}. */
export interface RunOptions {
  /** Aborting it shuts down: stop the driver, release leadership, close the servers. */
  signal: AbortSignal;
  /** Default: pino to stdout at `config.logLevel`. */
  logger?: Logger;
  /** Default: loaded from `config.kubeconfig`, in-cluster, or ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Called once both servers listen (also when either or both are disabled). */
  onListening?: (ports: CoordinatorPorts) => void;
  /** Default: a fresh registry with the default process metrics. */
  metrics?: CoordinatorMetrics;
}

/**
 * Loads the kubeconfig: `--kubeconfig` / `KUBECONFIG` (a path list is merged as kubectl does),
 * else the in-cluster service account when running in a pod, else ~/.kube/config.
 */
export async function loadCoordinatorKubeConfig(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<KubeConfig> {
  const { loadKubeConfig } = await import("../cli/kubeconfig.js");
  if (kubeconfig !== undefined) {
    const files = kubeconfig.split(delimiter).filter((f) => f !== "");
    if (files.length === 1) return loadKubeConfig({ kubeconfig: files[0], env }).kc;
    return loadKubeConfig({ env: { ...env, KUBECONFIG: kubeconfig } }).kc;
  }
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
    const { KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return kc;
  }
  return loadKubeConfig({ env: { ...env, KUBECONFIG: undefined } }).kc;
}

/**
 * Runs the coordinator until `opts.signal` aborts, then shuts down in order: stop the driver
 * (no write starts after that), release the leader Lease (a standby takes over at once instead of
 * after expiry), close the servers. Resolves when done.
 */
export async function runCoordinator(config: CoordinatorConfig, opts: RunOptions): Promise<void> {
  const logger = opts.logger ?? coordinatorLogger(config);
  const kc = opts.kubeConfig ?? (await loadCoordinatorKubeConfig(config.kubeconfig));
  const http = new KubeHttp(kc, { userAgent: `slotmap-coordinator/${PACKAGE_VERSION}` });
  const metrics = opts.metrics ?? new CoordinatorMetrics();
  let driver: CoordinatorDriver | undefined;
  let elector: LeaderElector | undefined;

  const startDriver = (leading?: AbortSignal): void => {
    const d = new CoordinatorDriver({
      http,
      logger,
      metrics,
      identity: config.identity,
      orphanAfterMs: config.orphanAfterSeconds * 1000,
    });
    driver = d;
    leading?.addEventListener(
      "abort",
      () => {
        // Lost (or released) leadership: stop at once; another replica may be leading already.
        if (driver === d) driver = undefined;
        d.stop().catch((err: unknown) => logger.error({ err }, "stopping the driver failed"));
      },
      { once: true },
    );
    d.start().catch((err: unknown) => logger.error({ err }, "driver failed to start"));
  };

  // Bound before leader election or the driver starts: a bad or busy address stops the process
  // before it takes any Lease.
  let servers: CoordinatorServers;
  try {
    servers = await startServers(config, logger, {
      registry: metrics.registry,
      healthz: {
        driver: () => driver?.health(),
      },
      readyz: {
        caches: () => {
          if (elector !== undefined && !elector.isLeader) return undefined; // standing by
          return driver?.synced ? undefined : "SlotMap and Lease caches not synced yet";
        },
        shardLimit: () => driver?.shardLimitProblem(),
      },
    });
  } catch (err) {
    await http.close();
    throw err;
  }
  opts.onListening?.(servers.ports);

  if (config.leaderElect) {
    // A fresh suffix per process: a restarted pod with the same name must not resume a tenure
    // that its previous incarnation may still believe it holds.
    const holder = `${config.identity}_${randomBytes(4).toString("hex")}`;
    elector = new LeaderElector({
      http,
      namespace: config.leaderElectionNamespace,
      name: config.leaderElectionName,
      identity: holder,
      leaseDurationSeconds: config.leaseDurationSeconds,
      renewDeadlineSeconds: config.renewDeadlineSeconds,
      retryPeriodSeconds: config.retryPeriodSeconds,
      onStartedLeading: (signal) => {
        metrics.leader.set(1);
        logger.info({ holder }, "became leader: starting the coordinator");
        startDriver(signal);
      },
      onStoppedLeading: () => {
        metrics.leader.set(0);
        logger.warn({ holder }, "stopped leading: coordinator stopped");
      },
      onNewLeader: (leader) => {
        if (leader !== holder) logger.info({ leader }, "another replica leads: standing by");
      },
      onError: (err) => logger.warn({ err }, "leader election: API call failed; retrying"),
    });
    logger.info(
      { namespace: config.leaderElectionNamespace, name: config.leaderElectionName, holder },
      "leader election started",
    );
    elector.start();
  } else {
    metrics.leader.set(1);
    startDriver();
  }

  if (!opts.signal.aborted) {
    await new Promise<void>((resolve) =>
      opts.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }
  logger.info("shutting down");
  const d = driver;
  driver = undefined;
  await d?.stop();
  await elector?.stop();
  metrics.leader.set(0);
  await servers.close();
  await http.close();
  logger.info("stopped");
}

/** The metrics and health-probe servers of a coordinator. */
interface CoordinatorServers {
  readonly ports: CoordinatorPorts;
  close(): Promise<void>;
}

/**
 * Binds `/metrics` on `--metrics-bind-address` and the probes on `--health-probe-bind-address`
 * (kubebuilder's split: scraping and probing get their own ports, and either can be off with
 * "0"). All or nothing: when the second cannot listen the first is closed again.
 */
async function startServers(
  config: CoordinatorConfig,
  logger: Logger,
  what: Pick<OpsServerOptions, "registry" | "healthz" | "readyz">,
): Promise<CoordinatorServers> {
  const servers: OpsServer[] = [];
  const listen = async (name: string, field: string, address: string, o: Partial<OpsServerOptions>) => {
    if (address === "0") return undefined;
    const server = await startOpsServer({ ...o, address, field });
    servers.push(server);
    logger.info({ address, port: server.port }, `${name} server listening`);
    return server.port;
  };
  const close = async () => {
    await Promise.all(servers.map((s) => s.close()));
  };
  try {
    const metrics = await listen("metrics", "--metrics-bind-address", config.metricsBindAddress, {
      registry: what.registry,
      probes: false,
    });
    const healthProbe = await listen(
      "health probe",
      "--health-probe-bind-address",
      config.healthProbeBindAddress,
      {
        healthz: what.healthz,
        readyz: what.readyz,
      },
    );
    return { ports: { metrics, healthProbe }, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** pino at the configured level, with string level labels (`"level":"info"`, not 30). */
function coordinatorLogger(config: CoordinatorConfig): Logger {
  return pino({
    level: config.logLevel,
    base: { identity: config.identity },
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Entry point: exit code 0 (done or --help), 2 (bad flags or kubeconfig), 1 (failure). */
async function main(argv: readonly string[]): Promise<number> {
  let config: CoordinatorConfig;
  let kc: KubeConfig;
  try {
    config = parseCoordinatorConfig(argv, process.env);
    kc = await loadCoordinatorKubeConfig(config.kubeconfig);
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return 0;
    if (err instanceof ConfigError || err instanceof Error) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = coordinatorLogger(config);
  const ac = new AbortController();
  // The metrics and probe servers bind first inside runCoordinator: a bad or busy address
  // rejects here before leader election or the driver starts.
  const running = runCoordinator(config, { signal: ac.signal, logger, kubeConfig: kc });
  const failed = running.then(
    () => undefined,
    (err: unknown) => err,
  );
  const stopped = untilShutdown({
    logger,
    // Signal or fatal error: stop the driver (no write starts after that), release the leader
    // Lease (bounded by the renew deadline), close the servers.
    stop: async () => {
      ac.abort();
      const err = await failed;
      if (err !== undefined) throw err;
    },
  });
  const first = await Promise.race([failed.then((err) => ({ err })), stopped.then((code) => ({ code }))]);
  if ("code" in first) return first.code;
  if (first.err !== undefined) {
    process.stderr.write(`error: ${first.err instanceof Error ? first.err.message : String(first.err)}\n`);
    return 1;
  }
  return stopped;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
