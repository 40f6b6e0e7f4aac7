/**
 * Wiring of the checksum controller: a shard member, the sharded controller runtime with the
 * checksum reconciler, metrics and health endpoints, one JSON log line per reconcile.
 * `main.ts` runs it as a process; tests run it in-process.
 */
import { KubeConfig } from "@kubernetes/client-node";
import {
  createShardMember,
  type ReconcileRecord,
  type ShardedController,
  type ShardLogger,
  type ShardMember,
  startController,
} from "../../src/client/index.js";
import { ShardMetrics } from "../../src/client/metrics.js";
import { KubeHttp } from "../../src/kube/http.js";
import { type OpsServer, startOpsServer } from "../../src/kube/ops-server.js";
import type { ChecksumConfig } from "./config.js";
import { checksumReconciler } from "./reconciler.js";

/** A running checksum controller. */
export interface ChecksumController {
  readonly member: ShardMember;
  readonly controller: ShardedController;
  /** The ops server, when one was configured. */
  readonly ops: OpsServer | undefined;
  /** Graceful stop: drain in-flight reconciles, release the Lease, stop watching. */
  stop(): Promise<void>;
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
  const kc = kubeConfig ?? loadKubeConfig(config.kubeconfig);
  const member = createShardMember({
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
  const metrics = new ShardMetrics(member);
  const onReconcile = (r: ReconcileRecord) => {
    metrics.observe(r);
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
  const controller = startController({
    member,
    reconcile: checksumReconciler(new KubeHttp(kc), logger),
    concurrency: config.concurrency,
    logger,
    onReconcile,
  });
  metrics.attach(controller);
  let synced = false;
  void controller.synced.then(() => {
    synced = true;
  });
  let ops: OpsServer | undefined;
  if (config.metricsAddress !== undefined) {
    ops = await startOpsServer({
      address: config.metricsAddress,
      registry: metrics.registry,
      healthz: {
        member: () => (member.status().phase === "stopped" ? "stopped" : undefined),
      },
      readyz: {
        lease: () => {
          const phase = member.status().phase;
          return phase === "active" ? undefined : `shard Lease phase is ${phase}`;
        },
        informers: () => (synced ? undefined : "watches not synced yet"),
      },
    });
    logger.info({ port: ops.port }, "serving /metrics, /healthz and /readyz");
  }
  let stopping: Promise<void> | undefined;
  return {
    member,
    controller,
    ops,
    stop: () => {
      stopping ??= (async () => {
        const timeoutMs = config.stopTimeoutSeconds * 1000;
        await Promise.all([member.stop({ timeoutMs }), controller.stop()]);
        await ops?.close();
      })();
      return stopping;
    },
  };
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}
