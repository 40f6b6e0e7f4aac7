/**
 * Wiring of the checksum controller: a shard member, the sharded controller runtime with the
 * checksum reconciler, metrics and health endpoints, one JSON log line per reconcile.
 * `main.ts` runs it as a process; tests run it in-process.
 */
import {
  createShardMember,
  KubeHttp,
  type ReconcileRecord,
  type ShardedController,
  type ShardLogger,
  type ShardMember,
  ShardMetrics,
  shardChecks,
  startController,
} from "slotmap";
import { type KubeConfig, loadKubeConfig, type OpsServer, startOpsServer } from "slotmap/kube";
import type { ChecksumConfig } from "./config.js";
import { checksumReconciler } from "./reconciler.js";

/** Version of the example, in its User-Agent. */
const EXAMPLE_VERSION = "0.1.0";

/** A running checksum controller. */
export interface ChecksumController {
  readonly member: ShardMember;
  readonly controller: ShardedController;
  /** The ops server, when one was configured. */
  readonly ops: OpsServer | undefined;
  /**
   * Graceful stop: drain in-flight reconciles, release the Lease, stop watching. With `fatal`
   * (the process is dying of an error), in-flight reconciles are aborted instead of drained
   * and the release gets at most 5 s.
   */
  stop(options?: { fatal?: boolean }): Promise<void>;
}

/** A logger that can also write the audit line of a reconcile (pino's `info(obj, msg)` is enough). */
export type ChecksumLogger = ShardLogger;

/**
 * Starts the controller.
 *
 * @param kubeConfig - default: from `config.kubeconfig`, else KUBECONFIG / ~/.kube/config / in-cluster.
 */
export async function startChecksumController(
  config: ChecksumConfig,
  logger: ChecksumLogger,
  kubeConfig?: KubeConfig,
): Promise<ChecksumController> {
  const kc = kubeConfig ?? (await loadKubeConfig(config.kubeconfig));
  let metrics: ShardMetrics | undefined;
  // The ops server binds before the member starts: a bad or busy --metrics-address ends the
  // process before it takes a Lease. Its checks see the member once it exists.
  let checks: ReturnType<typeof shardChecks> | undefined;
  const pending = (): string => "shard member not started yet";
  let ops: OpsServer | undefined;
  if (config.metricsAddress !== undefined) {
    ops = await startOpsServer({
      address: config.metricsAddress,
      field: "--metrics-address",
      registry: () => metrics?.registry,
      healthz: { member: () => (checks ? checks.healthz.member!() : undefined) },
      readyz: {
        lease: () => (checks ? checks.readyz.lease!() : pending()),
        informers: () => (checks ? checks.readyz.informers!() : pending()),
      },
    });
    logger.info({ port: ops.port }, "serving /metrics, /healthz and /readyz");
  }
  let member: ShardMember;
  try {
    member = createShardMember({
      kubeConfig: kc,
      slotMap: config.slotMap,
      shard: config.shard,
      leaseNamespace: config.leaseNamespace,
      leaseDurationSeconds: config.leaseDurationSeconds,
      renewDeadlineSeconds: config.renewDeadlineSeconds,
      retryPeriodSeconds: config.retryPeriodSeconds,
      weight: config.weight,
      handoffAbortAfterSeconds: config.handoffAbortAfterSeconds,
      logger,
    });
  } catch (err) {
    await ops?.close();
    throw err;
  }
  const shardMetrics = new ShardMetrics(member);
  metrics = shardMetrics;
  const onReconcile = (r: ReconcileRecord) => {
    shardMetrics.observe(r);
    // The audit line: one per reconcile, on stdout with the other logs.
    logger.info(
      {
        event: "reconcile",
        shard: r.shard,
        identity: r.identity,
        key: r.key,
        slot: r.slot,
        generation: r.generation,
        start: r.start,
        end: r.end,
        resourceVersion: r.resourceVersion,
        outcome: r.outcome,
        ...(r.error === undefined ? {} : { error: r.error }),
      },
      "reconcile",
    );
  };
  const http = new KubeHttp(kc, { userAgent: `checksum-controller/${EXAMPLE_VERSION}` });
  const controller = startController({
    member,
    reconcile: checksumReconciler(http, logger),
    concurrency: config.concurrency,
    cache: config.cache,
    logger,
    onReconcile,
  });
  shardMetrics.attach(controller);
  checks = shardChecks(member, controller);
  let stopping: Promise<void> | undefined;
  return {
    member,
    controller,
    ops,
    stop: (options = {}) => {
      stopping ??= (async () => {
        const timeoutMs = options.fatal
          ? Math.min(5_000, config.stopTimeoutSeconds * 1000)
          : config.stopTimeoutSeconds * 1000;
        await Promise.all([
          member.stop({ timeoutMs, abortInFlight: options.fatal === true }),
          controller.stop(),
        ]);
        await ops?.close();
        await http.close();
      })();
      return stopping;
    },
  };
}
