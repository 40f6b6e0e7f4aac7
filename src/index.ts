/**
 * slotmap: Redis-Cluster-style slot sharding for Kubernetes controllers.
 *
 * The package root (`import … from "slotmap"`) holds what a controller author uses:
 *
 * - shard membership ({@link createShardMember}) and the sharded controller runtime
 *   ({@link startController}), their options, records and errors, {@link ShardMetrics} and the
 *   `/healthz`/`/readyz` checks ({@link shardChecks});
 * - the REST client a reconciler writes with ({@link KubeHttp}, {@link ApiError}, {@link isStatus});
 * - the key rules: which slot an object hashes to ({@link keySlot}, {@link objectSlot},
 *   {@link shardingKey}) and the SlotMap resource's names and types.
 *
 * More lives in subpaths: `slotmap/slots` (slot core: ranges, tables, planner; no I/O),
 * `slotmap/api` (the SlotMap zod schemas, parsers, limits and the Lease annotation codec),
 * `slotmap/kube` (REST client, ops server, kubeconfig loader) and `slotmap/flags` (the
 * flag-and-environment parser of the shipped processes). test/unit/package-root.test.ts pins
 * this list; docs/client.md describes it.
 *
 * ESM only: `require("slotmap")` fails with ERR_REQUIRE_ASYNC_MODULE, because the slot core
 * instantiates xxhash-wasm with a top-level await so that {@link keySlot} is synchronous.
 *
 * @packageDocumentation
 */
// First: on an unsupported Node.js, fail with a plain message before any dependency is evaluated.
import "./runtime/guard.js";

export {
  ANNOTATION_WEIGHT,
  API_VERSION,
  DEFAULT_WEIGHT,
  GROUP,
  KIND,
  LABEL_SLOTMAP,
  type LabelSelector,
  PLURAL,
  type ResourceSpec,
  type ShardStatus,
  type SlotMap,
  type SlotMapSpec,
  type SlotMapStatus,
  VERSION,
} from "./api/index.js";
export {
  type BackoffOptions,
  type ControllerOptions,
  type ControllerStats,
  createShardMember,
  DiscoveryError,
  type FenceReason,
  type GroupResourceRef,
  type Ownership,
  type OwnershipChangeReason,
  type ReconcileRecord,
  type ReconcileRequest,
  type ReconcileResult,
  type Reconciler,
  type ReconcileTicket,
  type ResolvedResource,
  runController,
  type ShardedController,
  type ShardLogger,
  ShardMember,
  ShardMemberConfigError,
  type ShardMemberListener,
  type ShardMemberOptions,
  type ShardMemberStatus,
  ShardMetrics,
  type ShardPhase,
  type SlotChange,
  type SlotRules,
  type StopOptions,
  shardChecks,
  silentLogger,
  startController,
} from "./client/index.js";
export {
  ApiError,
  type ClientIdentity,
  isStatus,
  KubeHttp,
  type KubeObject,
  type RequestOptions,
} from "./kube/http.js";
export {
  type ShutdownCause,
  type ShutdownLogger,
  type ShutdownOptions,
  untilShutdown,
} from "./runtime/shutdown.js";
export {
  HASH_KEY_ANNOTATION,
  KeyError,
  type KubeObjectLike,
  keySlot,
  objectKey,
  objectSlot,
  type ShardingKey,
  SLOT_COUNT,
  shardingKey,
} from "./slots/index.js";
