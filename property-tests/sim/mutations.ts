/**
 * Deliberate protocol bugs ("mutations") the teeth tests inject to show that the simulator's
 * invariants catch each of them (docs/verification.md, "Mutations"). None of this is in the
 * production code: a coordinator mutation replaces one of the step's guards
 * (src/coordinator/core/guards.ts) with a broken variant; a shard mutation is a subclass of the
 * shard machine overriding one of its guard methods; a runtime mutation (./runtime.ts) a subclass
 * of the runtime core; a projection mutation changes what the simulated coordinator I/O layer
 * hands `projectionActions` (src/coordinator/core/projections.ts), the rule it must follow.
 */
import { ANNOTATION_SLOTMAP_UID, leaseFingerprint } from "../../src/api/lease.js";
import type { ProjectableStatus } from "../../src/api/projection.js";
import type { ShardMachineOptions, ShardMachineState } from "../../src/client/core/index.js";
import { ShardMachine } from "../../src/client/core/shard-machine.js";
import { COORDINATOR_GUARDS, type CoordinatorGuards } from "../../src/coordinator/core/guards.js";
import type { StepResult } from "../../src/coordinator/core/types.js";
import { RUNTIME_MUTATIONS, type RuntimeMutation } from "./runtime.js";

/** One coordinator bug: the guards it breaks. */
interface CoordinatorBug {
  readonly why: string;
  readonly guards: Partial<CoordinatorGuards>;
}

const COORDINATOR_BUGS = {
  commitBeforeAck: {
    why: "commit migrations without waiting for the source's ack",
    guards: { plannedAck: (_o, table) => table.generation },
  },
  reassignExpired: {
    why: "release an Expired shard's slots at once, before its Lease is taken over",
    guards: { plannedState: (o) => (o.state === "Expired" ? "Dead" : o.state) },
  },
  skipUidCheck: {
    why: "take acks whatever SlotMap uid they name",
    guards: { countedAck: (f) => f.anyUidAck },
  },
  trustRenewTime: {
    why: "judge expiry from the Lease's renewTime against our wall clock",
    guards: {
      lastRenewalAt: (observedAt, lease, now, wallMs) => {
        const renewed = Date.parse(lease.spec?.renewTime ?? "");
        return Number.isFinite(renewed) ? now - (wallMs - renewed) : observedAt;
      },
    },
  },
  fenceOnHolderChange: {
    why: "a new holder in the Lease fences the granted incarnation at once",
    guards: { grantStopped: () => true },
  },
  trustClearedHolder: {
    why: "a holder cleared without the release marker counts as a release",
    guards: { grantStopped: (f) => COORDINATOR_GUARDS.grantStopped(f) || f.holder === "" },
  },
  trustLaggingView: {
    why: "a holder cleared or replaced is waited out from the grant's last renewal we saw, even when renewTime shows renewals we missed",
    guards: { missedRenewal: () => false },
  },
  fingerprintResourceVersion: {
    why: "any write to the Lease (a label touch) counts as a renewal",
    guards: {
      renewalFingerprint: (lease) =>
        JSON.stringify([leaseFingerprint(lease.spec), lease.metadata.resourceVersion]),
    },
  },
  uncappedLeaseDuration: {
    why: "Leases longer than policy.maxLeaseDurationSeconds get slots",
    guards: { durationRefused: () => false },
  },
  ackFromAnyHolder: {
    why: "an ack counts whoever holds the Lease",
    guards: { countedAck: (f) => (f.rawAck <= f.statusGeneration ? f.rawAck : 0) },
  },
  acceptRegressedStatus: {
    why: "a status whose generation is below the shards' acks is planned on",
    guards: {
      statusBelowAcks: () => false,
      countedAck: (f) => (f.grantHolder === undefined || f.grantHolder === f.holder ? f.rawAck : 0),
    },
  },
  barrierTrustsUnacked: {
    why: "the drain barrier waits only for Leases acking another SlotMap uid",
    guards: {
      barrierWaitsFor: (o, _generation, uid) => {
        const acked = o.lease?.metadata.annotations?.[ANNOTATION_SLOTMAP_UID];
        return acked !== undefined && acked !== uid;
      },
    },
  },
  ignoreObservationGap: {
    why: "after a blind period, Lease clocks keep running",
    guards: { blind: () => false },
  },
  skipSettle: {
    why: "plan before every live Lease was seen renewing once (a new leader, a restore)",
    guards: { mustSettle: () => false },
  },
  adoptRulesWithoutBarrier: {
    why: "a changed spec.resources placement is written with the next table, without a generation that assigns nothing",
    guards: { rulesNeedBarrier: () => false },
  },
  ignoreRefusal: {
    why: "a shard's refused-generation report is not acted on",
    guards: { refusalResets: () => false },
  },
  forgetGenerations: {
    why: "a status set below the highest generation seen is planned on unless an ack above it is in view",
    guards: { statusSetBack: () => false },
  },
} satisfies Record<string, CoordinatorBug>;

/** A coordinator mutation. */
export type CoordinatorMutation = keyof typeof COORDINATOR_BUGS;
/** Every coordinator mutation. */
export const COORDINATOR_MUTATIONS = Object.keys(COORDINATOR_BUGS) as CoordinatorMutation[];

/** The production guards with those of `mutations` broken (later ones win on a shared guard). */
export function coordinatorGuards(mutations: readonly CoordinatorMutation[]): CoordinatorGuards {
  let guards: CoordinatorGuards = COORDINATOR_GUARDS;
  for (const m of mutations)
    guards = { ...guards, ...(COORDINATOR_BUGS[m].guards as Partial<CoordinatorGuards>) };
  return guards;
}

type MachineClass = new (options: ShardMachineOptions, state?: ShardMachineState) => ShardMachine;

/** One shard bug: a machine subclass that breaks one guard. */
interface ShardBug {
  readonly why: string;
  readonly machine: (base: MachineClass) => MachineClass;
}

/** Every shard machine mutation. */
export const SHARD_MUTATIONS = [
  "ackBeforeDrain",
  "ignoreFencing",
  "acceptStaleGeneration",
  "trustRegressedStatus",
  "recreateLeaseAtOnce",
  "neverEscalate",
  "fenceByGeneration",
  "ignoreRulesFingerprint",
] as const;
/** A shard machine mutation. */
export type ShardMutation = (typeof SHARD_MUTATIONS)[number];

const SHARD_BUGS: Record<ShardMutation, ShardBug> = {
  ackBeforeDrain: {
    why: "ack a generation while reconciles still run on slots it took away",
    machine: (B) =>
      class extends B {
        protected override drained(): boolean {
          return true;
        }
      },
  },
  ignoreFencing: {
    why: "keep starting (and never abort) reconciles after renewDeadline passed",
    machine: (B) =>
      class extends B {
        protected override renewDeadlineAt(): number {
          return Number.POSITIVE_INFINITY;
        }
      },
  },
  acceptStaleGeneration: {
    why: "apply a status older than the newest one applied",
    machine: (B) =>
      class extends B {
        protected override isStale(generation: number, applied: number): boolean {
          return generation === applied;
        }
      },
  },
  trustRegressedStatus: {
    why: "a status whose generation went down (restored) is ignored like a stale one: grants kept",
    machine: (B) =>
      class extends B {
        protected override isNewerStatus(): boolean {
          return false;
        }
      },
  },
  recreateLeaseAtOnce: {
    why: "a Lease someone held and that disappeared is re-created at once",
    machine: (B) =>
      class extends B {
        protected override waitsOutVanishedLease(): boolean {
          return false;
        }
      },
  },
  neverEscalate: {
    why: "a drain stuck past the handoff timeout waits forever (never stops renewing)",
    machine: (B) =>
      class extends B {
        protected override escalationDue(): boolean {
          return false;
        }
      },
  },
  fenceByGeneration: {
    why: "fencing tokens order by the assignment generation instead of the status resourceVersion",
    machine: (B) =>
      class extends B {
        protected override fenceVersion(_rv: string | undefined, generation: number): string {
          return String(generation);
        }
      },
  },
  ignoreRulesFingerprint: {
    why: "grants are used whatever rules the runtime applies (status.rulesFingerprint is not compared)",
    machine: (B) =>
      class extends B {
        protected override rulesMatch(): boolean {
          return true;
        }
      },
  },
};

/** The shard machine class with the bugs of `mutations` (the production class when none). */
export function shardMachineClass(mutations: readonly ShardMutation[]): MachineClass {
  let cls: MachineClass = ShardMachine;
  for (const m of mutations) cls = SHARD_BUGS[m].machine(cls);
  return cls;
}

/**
 * Mutations of the coordinator I/O layer's projection rule: project only the status the step
 * accepted (`StepResult.projectable`), and only in a step that writes no status.
 */
export const PROJECTION_MUTATIONS = ["projectBeforeWrite", "projectUnaccepted"] as const;
/** A projection mutation. */
export type ProjectionMutation = (typeof PROJECTION_MUTATIONS)[number];

/** Why each projection mutation is a bug. */
export const PROJECTION_BUGS: Record<ProjectionMutation, string> = {
  projectBeforeWrite:
    "the status a step writes is projected with the write, not after it succeeded (a 409 leaves the projections showing a table never written)",
  projectUnaccepted:
    "a status the step refused (set back, restored, refused by a shard) is projected while the step resets it",
};

/**
 * The status the mutated I/O layer projects in place of the rule's (`projectable`, and nothing in
 * a step that writes a status), regardless of the status write; undefined: the rule's.
 *
 * @param observed - the status the step read (valid), if any
 */
export function projectedStatus(
  mutations: readonly ProjectionMutation[],
  r: StepResult,
  observed: ProjectableStatus | undefined,
): ProjectableStatus | undefined {
  if (mutations.includes("projectBeforeWrite")) {
    const write = r.actions.find((a) => a.type === "updateStatus");
    if (write !== undefined) return write.status;
  }
  if (mutations.includes("projectUnaccepted") && r.projectable === undefined) return observed;
  return undefined;
}

/** A protocol mutation of any core. */
export type Mutation = CoordinatorMutation | ShardMutation | RuntimeMutation | ProjectionMutation;
/** Every mutation, coordinator ones first. */
export const MUTATIONS: readonly Mutation[] = [
  ...COORDINATOR_MUTATIONS,
  ...SHARD_MUTATIONS,
  ...RUNTIME_MUTATIONS,
  ...PROJECTION_MUTATIONS,
];

/** The mutations of each core among `mutations`. */
export function splitMutations(mutations: readonly Mutation[]): {
  coordinator: CoordinatorMutation[];
  shard: ShardMutation[];
  runtime: RuntimeMutation[];
  projection: ProjectionMutation[];
} {
  return {
    coordinator: COORDINATOR_MUTATIONS.filter((m) => mutations.includes(m)),
    shard: SHARD_MUTATIONS.filter((m) => mutations.includes(m)),
    runtime: RUNTIME_MUTATIONS.filter((m) => mutations.includes(m)),
    projection: PROJECTION_MUTATIONS.filter((m) => mutations.includes(m)),
  };
}
