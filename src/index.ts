/**
 * slotmap: Redis-Cluster-style slot sharding for Kubernetes controllers.
 *
 * The package root (`import … from "slotmap"`). It gathers the public API:
 *
 * - the slot core (`src/slots`, also published alone as `slotmap/slots`): {@link keySlot} and the
 *   other hash functions, the key rules (`shardingKey`, `objectSlot`), the slot range codec, the
 *   slot table and the planner. Pure, no I/O.
 * - the SlotMap API (`src/api`): the `slotmap.dev/v1alpha1` names and constants, the zod schemas
 *   and parsers of the custom resource, and the shard Lease annotation codec.
 *
 * Importing this module instantiates xxhash-wasm once (top-level await in `src/slots/hash.ts`),
 * so `keySlot` is synchronous and ready as soon as the import resolves.
 *
 * The two groups are re-exported with `export *`: a name exported by both would be a TypeScript
 * error here (TS2308) and would silently vanish at runtime, so test/unit/package-root.test.ts
 * checks that every export of both reaches the root.
 *
 * @packageDocumentation
 */

// First: on an unsupported Node.js, fail with a plain message before any dependency is evaluated.
import "./runtime/guard.js";

export * from "./api/index.js";
// Client library: shard membership (Lease renew, ack, self-fence), O(1) ownership lookup and
// the sharded controller runtime.
export * from "./client/index.js";
export * from "./slots/index.js";
