/**
 * The random command stream that drives the simulation, and the scenario options, as fast-check
 * arbitraries. A command is a plain tuple `[kind, a, b]`: `kind` picks a {@link CommandKind} by
 * weight, `a` and `b` pick among what exists when the command runs (modulo), so any sub-list of a
 * command list is still a valid scenario and fast-check can shrink a failure to a short one.
 */
import fc from "fast-check";

/** Relative frequency of each command kind. The first one (a harmless time step) is what shrinking moves towards. */
export const COMMAND_WEIGHTS = {
  /**
   * Real time passes 1..500 ms. Timers fire on the way: messages arrive after their latency
   * (mostly a few ms, sometimes up to 5 s), machines tick, leases expire, the coordinator steps.
   */
  advance: 30,
  /** Real time passes 1..21 s. */
  advanceLong: 2,
  /** Deliver the next pending watch event of one (client, object) stream now (ahead of others). */
  watch: 8,
  /** Deliver the newest version, skipping the ones in between (coalesced events). */
  watchSkip: 3,
  /** Re-deliver an already delivered version, possibly older than the newest seen (duplicate / lagging cache). */
  watchDup: 2,
  /** A client re-lists: it sees the current version of everything it watches. */
  relist: 2,
  /** The API server applies one in-flight request now (ahead of others) and sends the reply. */
  request: 6,
  /** A request is lost (not applied); sometimes the client gets an error. */
  requestDrop: 2,
  /** A request is applied but its reply is lost (or replaced by an error). */
  requestLoseReply: 2,
  /** A request is applied and stays in flight: it may be applied again later. */
  requestDup: 2,
  /** One reply reaches its client now (ahead of others). */
  reply: 6,
  /** A reply is lost. */
  replyDrop: 2,
  /** One message (request, reply or watch stream) is held up 1..20 s more. */
  delay: 3,
  /** The coordinator steps if its observation changed or a deadline passed. */
  coordinatorStep: 4,
  /** Objects are created/updated (a burst of 4 keys): every shard owning their slots enqueues them. */
  trigger: 12,
  /** A shard's runtime dequeues a key and starts its reconcile if `mayStart`. */
  start: 25,
  /** An in-flight reconcile finishes. */
  finish: 14,
  /** Calm network for a moment: every request, reply and watch event is delivered. */
  flush: 2,
  /** A shard process starts (a new incarnation; paused older processes of that shard may linger). */
  join: 4,
  /** Graceful shutdown (SIGTERM) of a shard process. */
  leave: 1,
  /** A shard process dies: memory lost, in-flight reconciles end with it. */
  crash: 2,
  /** SIGSTOP: a shard process takes no step for a while; its clock keeps running. */
  pause: 2,
  /** SIGCONT before the pause's end. */
  resume: 1,
  /** A person changes `spec.weights`. */
  weight: 2,
  /** The coordinator leader dies; a new one starts with empty memory from a fresh list. */
  failover: 1,
  /**
   * A process (the coordinator 1 in 3, else a shard) is cut off from the API server for 2..39 s:
   * its requests are lost, replies and watch events wait; or (1 in 2) only its watch streams stall.
   */
  partition: 3,
  /** The coordinator is paused for 1..60 s. */
  coordinatorPause: 1,
  /** The SlotMap is deleted (1 in 8), or created again (a new uid) when absent. */
  slotMap: 1,
  /** An in-flight reconcile never returns (and ignores its abort): it ends only with its process. */
  stuck: 1,
  /**
   * A person or a tool writes a shard's Lease (`a` picks the shard name, or the rogue Lease; `b % 8`
   * the edit): delete; clear the holder (no released-by marker); set the holder to another string;
   * touch a label or annotation; forge a future ack, a foreign ack (another uid), or the pending
   * ack; or start a tool that keeps touching it (through the settle too).
   */
  leaseEdit: 2,
  /**
   * A rogue Lease with the slotmap label (holder `rogue`, weight 1000000, duration 3600 s or 15 s)
   * is created; when present it is renewed by nobody that reconciles, or (1 in 4) deleted.
   */
  rogue: 1,
  /** A person sets status.assignmentGeneration back, or restores an older status (a backup). */
  statusEdit: 1,
  /**
   * A person edits spec.policy (maxMigratingSlots, handoffTimeoutSeconds, maxLeaseDurationSeconds),
   * switches the placement in spec.resources (objects change slot, sim/rules.ts) or the namespace
   * selector, or tries to change spec.leaseNamespace (rejected by the API server, as by the CRD's
   * CEL rule). `b % 6`: 0-2 policy, 3 placement, 4 selector, 5 leaseNamespace.
   */
  specEdit: 1,
  /** The coordinator's Lease watches stall for 2..39 s while its SlotMap watch flows. */
  leaseLag: 1,
  /**
   * A person or a tool writes the shards' SlotMapShard projections (`b % 5`): 0 deletes one (`a`
   * picks it among those that exist); 1-2 restores an older version of one from a backup (`a`
   * picks the projection, `b / 5` the version, most often the newest older one): its old spec
   * with a new resourceVersion; 3 deletes them all; 4 restores them all from a backup taken at a
   * past moment (`a` picks it among the last 30 projection writes).
   */
  projectionEdit: 1,
} as const;

export type CommandKind = keyof typeof COMMAND_WEIGHTS;

/** Kinds that inject a fault (thinned out by `faultLevel`). */
export const FAULT_KINDS: ReadonlySet<CommandKind> = new Set<CommandKind>([
  "advanceLong",
  "watchDup",
  "requestDrop",
  "requestLoseReply",
  "requestDup",
  "replyDrop",
  "delay",
  "leave",
  "crash",
  "pause",
  "failover",
  "coordinatorPause",
  "partition",
  "slotMap",
  "stuck",
  "leaseEdit",
  "rogue",
  "statusEdit",
  "specEdit",
  "leaseLag",
  "projectionEdit",
]);

const TABLE: readonly CommandKind[] = Object.entries(COMMAND_WEIGHTS).flatMap(([k, w]) =>
  Array.from({ length: w }, () => k as CommandKind),
);

/** `[kind, a, b]`: see the module doc. */
export type Command = readonly [number, number, number];

/** The kind a command's first number selects. */
export function kindOf(c: Command): CommandKind {
  return TABLE[c[0] % TABLE.length]!;
}

/** The command of `kind` with arguments `a` and `b` (for hand-written scenarios). */
export function command(kind: CommandKind, a = 0, b = 0): Command {
  return [TABLE.indexOf(kind), a, b];
}

/**
 * A pinned command of `kind`: never thinned out by the fault level (for skeletons, whose
 * arguments must pick a target rather than satisfy the thinning). Random commands are never
 * pinned: their first number is below the table's length.
 */
export function pinned(kind: CommandKind, a = 0, b = 0): Command {
  return [TABLE.indexOf(kind) + TABLE.length, a, b];
}

/** Whether a command was made by {@link pinned}. */
export function isPinned(c: Command): boolean {
  return c[0] >= TABLE.length;
}

/** One random command. */
export const commandArb: fc.Arbitrary<Command> = fc.tuple(
  fc.nat(TABLE.length - 1),
  fc.nat(0xffff),
  fc.nat(0xffff),
);

/** A command list of up to `maxLength` commands. */
export function commandsArb(maxLength: number): fc.Arbitrary<Command[]> {
  // Unbiased: lengths uniform in [0, maxLength] (the default bias favours very short lists).
  return fc.noBias(fc.array(commandArb, { minLength: 0, maxLength, size: "max" }));
}

/** The parts of a scenario fast-check chooses (see `scenarioOptions`). */
export interface ScenarioSeed {
  /** Seed of the simulator's own PRNG (clock rates and offsets, salts, abort latencies). */
  seed: number;
  /** Number of shard names (2..5; 20..24 in the large class). */
  shardPool: number;
  /** Shard processes running at the start (1..3; 20 in the large class). */
  initialShards: number;
  /** `spec.policy.maxMigratingSlots`. */
  maxMigratingSlots: number;
  /** Slots of reconciled objects besides the fixed boundary slots. */
  keySlots: number[];
  /**
   * 0: every fault command runs; 1: one in 3; 2: one in 8 (the others let time pass instead).
   * Calmer runs let handoffs complete between faults; stormy ones stress recovery.
   */
  faultLevel: number;
}

export const scenarioSeedArb: fc.Arbitrary<ScenarioSeed> = fc.record({
  seed: fc.integer(),
  shardPool: fc.integer({ min: 2, max: 5 }),
  initialShards: fc.integer({ min: 1, max: 3 }),
  maxMigratingSlots: fc.constantFrom(16384, 16384, 4096, 1000),
  keySlots: fc.uniqueArray(fc.nat(16383), { minLength: 4, maxLength: 16 }),
  faultLevel: fc.integer({ min: 0, max: 2 }),
});

/**
 * The large class: 20..24 shard names, 20 of them running from the start, and 1000..1100 keys, so
 * handoffs are many small ranges and every shard has work in flight when faults hit.
 */
export const largeScenarioSeedArb: fc.Arbitrary<ScenarioSeed> = fc.record({
  seed: fc.integer(),
  shardPool: fc.integer({ min: 20, max: 24 }),
  initialShards: fc.constant(20),
  maxMigratingSlots: fc.constantFrom(16384, 4096, 1000),
  keySlots: fc.uniqueArray(fc.nat(16383), { minLength: 1000, maxLength: 1100 }),
  faultLevel: fc.integer({ min: 0, max: 2 }),
});
