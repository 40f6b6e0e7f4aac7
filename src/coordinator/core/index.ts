/**
 * The sans-I/O coordinator core: a pure, deterministic decision step per SlotMap. The I/O layer
 * (Kubernetes watches and writes) and the simulator drive it the same way; see
 * docs/dev/coordinator-core.md.
 */

export { microTime } from "../../api/lease.js";
export { REASONS } from "./conditions.js";
export { type AckFacts, COORDINATOR_GUARDS, type CoordinatorGuards, type GrantFacts } from "./guards.js";
export type { ShardObservation, StatusShardHint } from "./leases.js";
export { type OrphanMemory, type OrphanSweep, type OrphanSweepInput, sweepOrphans } from "./orphans.js";
export {
  type DeleteProjectionAction,
  type ObservedProjection,
  type ProjectionAction,
  type ProjectionInput,
  projectionActions,
  type WriteProjectionAction,
} from "./projections.js";
export { metaTime } from "./status.js";
export {
  DEFAULT_COMMIT_BATCH_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_OBSERVATION_GAP_MS,
  step,
} from "./step.js";
export {
  type CoordinatorAction,
  type CoordinatorConfig,
  CoordinatorInputError,
  type CoreMemory,
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_ORPHAN_AFTER_MS,
  type DeleteLeaseAction,
  type EventAction,
  type HandoffMemory,
  type HandoffObservation,
  type LogRecord,
  type ObjectRef,
  type ObservedLease,
  type ObservedSlotMap,
  type ShardMemory,
  type SlotMapMetrics,
  type StepInput,
  type StepResult,
  TAKEOVER_HOLDER,
  type TakeOverLeaseAction,
  type UpdateStatusAction,
} from "./types.js";
