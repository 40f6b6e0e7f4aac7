/**
 * The slot core of slotmap: hashing, key rules, the slot range codec, the slot table and the
 * planner. Pure: no I/O. Importing it instantiates xxhash-wasm once (top-level await).
 */
export { keySlot, xxh64, xxh64Bytes, xxh64Hex } from "./hash.js";
export {
  groupOfApiVersion,
  HASH_KEY_ANNOTATION,
  KeyError,
  type KubeObjectLike,
  type OwnerReferenceLike,
  objectKey,
  objectSlot,
  type ShardingKey,
  shardingKey,
} from "./keys.js";
export { type PlacementResource, placementFingerprint } from "./placement.js";
export { computeTargets, PlanInputError, type PlanResult, plan } from "./planner.js";
export {
  countSlots,
  formatSlotRanges,
  maskFromRanges,
  normalizeRanges,
  parseSlotRanges,
  rangesContain,
  rangesFromMask,
  rangesFromSlots,
  SlotRangeError,
} from "./ranges.js";
export {
  compareMigrations,
  diffTables,
  emptyTable,
  freeRanges,
  makeTable,
  migrationOf,
  ownedCounts,
  ownedRanges,
  ownerOf,
  ownershipMask,
  rangesByShard,
  type SlotMove,
  SlotTableError,
  sameAssignment,
  tableFromStatus,
  tableInvariantErrors,
  tablesEqual,
  tableToStatus,
} from "./table.js";
export * from "./types.js";
