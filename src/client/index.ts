/**
 * The slotmap client library: shard membership (Lease acquire/renew, acks, self-fencing) with
 * O(1) ownership lookup, and a sharded controller runtime. See docs/client.md.
 *
 * ```ts
 * const member = createShardMember({ kubeConfig, slotMap: "checksums", shard: podName, logger });
 * const controller = startController({ member, reconcile, concurrency: 4, logger });
 * const stop = (cause) => Promise.all([member.stop({ abortInFlight: cause === "fatal" }), controller.stop()]).then(() => {});
 * process.exit(await untilShutdown({ logger, stop })); // the one shutdown recipe (docs/client.md)
 * ```
 */
export {
  type ControllerOptions,
  type ControllerStats,
  type ReconcileRecord,
  type ReconcileRequest,
  type ReconcileResult,
  type Reconciler,
  runController,
  type ShardedController,
  startController,
} from "./controller.js";
export type {
  FenceReason,
  Ownership,
  OwnershipChangeReason,
  ShardPhase,
} from "./core/index.js";
export {
  DiscoveryError,
  formatGroupResource,
  type GroupResourceRef,
  type ResolvedResource,
  ResourceResolver,
} from "./discovery.js";
export { shardChecks } from "./health.js";
export { type ShardLogger, silentLogger } from "./logger.js";
export {
  createShardMember,
  type ReconcileTicket,
  ShardMember,
  ShardMemberConfigError,
  type ShardMemberListener,
  type ShardMemberOptions,
  type ShardMemberStatus,
  type SlotChange,
  type StopOptions,
} from "./membership.js";
export { ShardMetrics } from "./metrics.js";
export {
  type NamespaceLabels,
  type Placement,
  type ResourceRule,
  SlotRules,
} from "./rules.js";
export {
  type BackoffOptions,
  WorkQueue,
  type WorkQueueOptions,
  type WorkQueueStats,
} from "./workqueue.js";
