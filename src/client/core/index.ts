/**
 * The sans-I/O shard core: Lease membership, self-fencing, slot ownership and handoff acks as a
 * pure state machine. See docs/dev/shard-core.md.
 */
export {
  checkLeaseTimings,
  parseShardMachineOptions,
  ShardConfigError,
  type ShardMachineConfig,
  type ShardMachineOptions,
  ShardMachineOptionsSchema,
} from "./config.js";
export { applyMask, fillMask, Ownership, type OwnershipSource } from "./ownership.js";
export { type ProjectionReading, readProjection } from "./projection.js";
export {
  type Ack,
  microTime,
  ShardMachine,
  type ShardMachineState,
  type ShardWriteTag,
} from "./shard-machine.js";
export type * from "./types.js";
