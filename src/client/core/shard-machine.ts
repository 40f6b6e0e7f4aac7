/**
 * The shard side of slotmap as a sans-I/O state machine: Lease membership (acquire, renew,
 * self-fence, release), slot ownership from the SlotMap status, and the handoff protocol (stop
 * starting lost slots, drain, ack). Pure and deterministic: no timers, no I/O, no clock reads.
 * The I/O layer feeds {@link ShardInput}s to {@link ShardMachine.handle} and carries out the
 * returned {@link ShardEffect}s in order; it calls back with a `tick` at {@link ShardMachine.nextWakeAt}.
 *
 * Protocol: DESIGN.md "The shard Lease" and "The handoff protocol"; interface, safety argument and
 * timing assumptions: docs/dev/shard-core.md.
 */
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_REFUSED_GENERATION,
  ANNOTATION_RELEASED_BY,
  ANNOTATION_SLOTMAP_UID,
  ANNOTATION_WEIGHT,
  LABEL_SLOTMAP,
} from "../../api/lease.js";
import {
  initialLeaseLockState,
  type LeaseEvent,
  LeaseLock,
  type LeaseLockState,
  type LeaseWants,
} from "../../api/lease-lock.js";
import { compareResourceVersions } from "../../api/resource-version.js";
import { parseSlotRanges, SlotRangeError } from "../../slots/ranges.js";
import { MAX_SLOT, SLOT_COUNT, type SlotRange } from "../../slots/types.js";
import { parseShardMachineOptions, type ShardMachineConfig, type ShardMachineOptions } from "./config.js";
import { applyMask, fillMask, Ownership, releases } from "./ownership.js";
import type {
  AbortReason,
  LeaseObject,
  LeaseWriteKind,
  LeaseWriteResult,
  LogEffect,
  OwnershipChangeReason,
  ShardEffect,
  ShardInput,
  ShardMachineView,
  ShardPhase,
  ShardStatusView,
} from "./types.js";

/** An acknowledgement: this shard has fully applied `generation` of SlotMap `uid`. */
export interface Ack {
  readonly uid: string;
  readonly generation: number;
}

/** One in-flight reconcile (or several of the same key in the same slot). */
interface InFlight {
  slot: number;
  key: string;
  n: number;
  /** An abort was already requested for it. */
  aborted: boolean;
}

/** What a shard's Lease write carries besides the holder fields, recorded when it succeeds. */
export interface ShardWriteTag {
  /** The ack the body carries. */
  ack: Ack | undefined;
  /** The refused generation the body carries. */
  refused: number | undefined;
}

/**
 * The complete state of a machine: plain data (typed arrays, Maps), copyable with
 * `structuredClone`. Exposed for the simulator to clone and inspect; do not mutate.
 */
export interface ShardMachineState {
  /** Highest `now` seen (machine clock, ms). */
  now: number;
  shutdown: boolean;
  stopped: boolean;

  /** The Lease lock (observations, identity, tenure, the write in flight): see src/api/lease-lock.ts. */
  lock: LeaseLockState<ShardWriteTag>;
  /** Identities generated so far (the `<n>` of the next one is this + 1). */
  incarnations: number;
  /** Whether starts are forbidden (not holding, or past renewDeadline, or stopped). */
  fenced: boolean;

  /** Stopped renewing for good after a stuck drain (see the `escalate` effect). */
  escalated: boolean;
  /** `spec.policy.handoffTimeoutSeconds` in ms, when the I/O layer passed it. */
  handoffTimeoutMs: number | undefined;

  /** Newest applied status: mutated in place (the {@link Ownership} view reads it). */
  status: { uid: string | undefined; generation: number };
  /** resourceVersion of the newest applied status (undefined when the I/O layer gave none). */
  statusResourceVersion: string | undefined;
  /** The status went down (restored) at this resourceVersion: we own nothing until a higher generation. */
  regressedAt: string | undefined;
  /** Generation of that refused status, reported in the Lease until a higher one is applied. */
  refused: number | undefined;
  /** The refusal the last successful write carried. */
  refusedWritten: number | undefined;
  /** `rulesFingerprint` of that status (undefined: it names none, any rules go). */
  statusRules: string | undefined;
  /** The rules the runtime applies (`rulesApplied`); undefined before it reported any. */
  appliedRules: string | undefined;
  /** Our entry in that status. */
  entry: { slots: SlotRange[]; holderIdentity: string | undefined } | undefined;
  /** UIDs of deleted or replaced SlotMaps: their statuses are never applied again. */
  retiredUids: string[];

  /** The ack to write (newest generation fully applied). */
  ackTarget: Ack | undefined;
  /** The ack last written successfully. */
  ackWritten: Ack | undefined;
  /**
   * Whether the coordinator waits for our next ack: a status took slots granted to us (a handoff
   * waits for our drain), assigns nothing (a drain barrier waits for every live shard), or went
   * down. Then the ack is written at once; otherwise it rides on the next renewal, so a generation
   * that only gives slots, or does not touch ours, costs no Lease write (at 1000 shards every
   * shard acking at once delayed the sources' acks by seconds). Cleared when the ack is written.
   */
  ackUrgent: boolean;

  /** In-flight reconciles by `<slot>/<key>`. */
  inFlight: Map<string, InFlight>;
  /** Reconciles in flight on slots not granted to us: the ack waits for them. */
  inFlightOutside: number;
  /** When `inFlightOutside` last became non-zero. */
  outsideSince: number | undefined;

  /** Slots granted to our current identity in the newest status (ignores fencing). */
  granted: Uint8Array;
  /** Slots we own: `granted` unless fenced or stopped. Shared with {@link Ownership}. */
  owned: Uint8Array;
}

/** The first renew of a tenure, after its acquire (see the lock's `firstRenewAfterMs`). */
const FIRST_RENEW_AFTER_MS = 250;

/** Retired SlotMap UIDs remembered (a watch never replays older instances than that). */
const RETIRED_UIDS_KEPT = 16;

export { microTime } from "../../api/lease.js";

function checkSlot(slot: number, field: string): void {
  if (!Number.isInteger(slot) || slot < 0 || slot > MAX_SLOT) {
    throw new RangeError(`${field}: must be an integer slot 0..${MAX_SLOT}; got ${String(slot)}`);
  }
}

function sameAck(a: Ack | undefined, b: Ack | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.uid === b.uid && a.generation === b.generation);
}

/**
 * Shard membership and handoff state machine. One per shard process (per SlotMap).
 *
 * ```ts
 * const m = new ShardMachine({ slotmap, shard, leaseNamespace, holderIdentityPrefix: podName, incarnationSalt });
 * for (const effect of m.handle({ type: "leaseObserved", now: performance.now(), lease })) perform(effect);
 * // runtime hot path: if (m.ownership.ownsSlot(slot)) ...; before a reconcile: m.mayStart(slot, now)
 * ```
 */
export class ShardMachine implements ShardMachineView {
  /** Validated options with defaults. */
  readonly config: ShardMachineConfig;
  /** Live ownership view over this machine's mask; hold it, it is never replaced. */
  readonly ownership: Ownership;

  readonly #s: ShardMachineState;
  /** Works on `#s.lock` in place; the Trust guards below are its hooks. */
  readonly #lock: LeaseLock<ShardWriteTag>;
  #out: ShardEffect[] = [];
  // Work buffers, not state: the next ownership mask and the diff.
  readonly #next = new Uint8Array(SLOT_COUNT);
  readonly #scratch = new Uint8Array(SLOT_COUNT);
  /**
   * @param options - see {@link ShardMachineOptions}; validated (throws ShardConfigError naming the field).
   * @param state - a {@link ShardMachine.snapshot} to resume from (copied); the simulator's clone.
   */
  constructor(options: ShardMachineOptions, state?: ShardMachineState) {
    this.config = parseShardMachineOptions(options);
    this.#s = state === undefined ? initialState() : structuredClone(state);
    const cfg = this.config;
    this.#lock = new LeaseLock(
      {
        name: cfg.shard,
        namespace: cfg.leaseNamespace,
        leaseDurationMs: cfg.leaseDurationMs,
        renewDeadlineMs: cfg.renewDeadlineMs,
        retryPeriodMs: cfg.retryPeriodMs,
        writeTimeoutMs: cfg.writeTimeoutMs,
        // A Lease whose acquire already carries an ack (the status was read first) is admitted
        // once the coordinator saw it renewing: renew soon rather than a retry period later.
        firstRenewAfterMs: FIRST_RENEW_AFTER_MS, // the lock caps it at retryPeriodMs
      },
      {
        // A new incarnation per tenure: statuses naming an earlier one never grant this one anything.
        nextIdentity: () => {
          this.#s.incarnations += 1;
          return `${cfg.holderIdentityPrefix}-${cfg.incarnationSalt}-${this.#s.incarnations}`;
        },
        renewDeadlineAt: (t) => this.renewDeadlineAt(t),
        waitsOutVanishedLease: (everHeld) => this.waitsOutVanishedLease(everHeld),
        releasedBy: (lease) => lease.metadata.annotations?.[ANNOTATION_RELEASED_BY],
      },
      this.#s.lock,
    );
    const current = () => this.#s;
    const fenceVersion = () =>
      this.fenceVersion(current().statusResourceVersion, current().status.generation);
    this.ownership = new Ownership(this.#s.owned, {
      get uid() {
        return current().status.uid;
      },
      get generation() {
        return current().status.generation;
      },
      get resourceVersion() {
        return fenceVersion();
      },
    });
  }

  /** A deep copy of the state (for the simulator; `new ShardMachine(config, snapshot)` resumes it). */
  snapshot(): ShardMachineState {
    return structuredClone(this.#s);
  }

  /** An independent machine in the same state. */
  clone(): ShardMachine {
    // The same class: a subclass's guards (the simulator's mutations) survive a clone.
    return new (this.constructor as typeof ShardMachine)(this.config, this.#s);
  }

  // ---------------------------------------------------------------- queries

  /** O(1): see {@link Ownership.ownsSlot}. */
  ownsSlot(slot: number): boolean {
    return this.#s.owned[slot] === 1;
  }

  /**
   * Whether a reconcile of an object in `slot` may start at `now`: owned, `now` before the renew
   * deadline (checked here too, so a late tick cannot extend it), and no shutdown requested.
   */
  mayStart(slot: number, now: number): boolean {
    const s = this.#s;
    return s.owned[slot] === 1 && !s.shutdown && Math.max(now, s.now) < this.#lock.deadlineAt();
  }

  /** The generation acknowledged in our Lease (write succeeded) for the current SlotMap uid; 0 if none. */
  ackedGeneration(): number {
    const { ackWritten, status } = this.#s;
    return ackWritten !== undefined && ackWritten.uid === status.uid ? ackWritten.generation : 0;
  }

  /** Coarse state. */
  phase(): ShardPhase {
    const s = this.#s;
    if (s.stopped) return "stopped";
    if (s.shutdown) return "draining";
    if (!s.lock.known) return "starting";
    if (s.lock.identity === undefined) return "candidate";
    return s.fenced ? "fenced" : "active";
  }

  /** Our holderIdentity while we hold the Lease. */
  identity(): string | undefined {
    return this.#s.lock.identity;
  }

  /** Keys of in-flight reconciles (each once). */
  inFlightKeys(): string[] {
    return [...new Set([...this.#s.inFlight.values()].map((f) => f.key))];
  }

  /** A summary for logs, metrics and tests. */
  inspect(): {
    phase: ShardPhase;
    identity: string | undefined;
    fenced: boolean;
    fenceAt: number | undefined;
    uid: string | undefined;
    generation: number;
    ackTarget: Ack | undefined;
    ackWritten: Ack | undefined;
    inFlight: number;
    inFlightOnUnownedSlots: number;
    writeInFlight: LeaseWriteKind | undefined;
  } {
    const s = this.#s;
    let inFlight = 0;
    for (const f of s.inFlight.values()) inFlight += f.n;
    return {
      phase: this.phase(),
      identity: s.lock.identity,
      fenced: s.fenced,
      fenceAt: s.lock.identity === undefined ? undefined : this.#lock.deadlineAt(),
      uid: s.status.uid,
      generation: s.status.generation,
      ackTarget: s.ackTarget,
      ackWritten: s.ackWritten,
      inFlight,
      inFlightOnUnownedSlots: s.inFlightOutside,
      writeInFlight: s.lock.write?.kind,
    };
  }

  /** When the machine next needs a `tick`, or undefined when only inputs can move it. */
  nextWakeAt(): number | undefined {
    const s = this.#s;
    if (s.stopped) return undefined;
    let t = Number.POSITIVE_INFINITY;
    if (s.lock.write !== undefined) t = Math.min(t, s.lock.write.timeoutAt);
    if (!s.fenced) t = Math.min(t, this.#lock.deadlineAt());
    const planned = this.#plannedWrite();
    if (planned !== undefined) t = Math.min(t, planned.at);
    const abortAfter = this.config.handoffAbortAfterMs;
    if (abortAfter !== undefined && s.outsideSince !== undefined) {
      for (const f of s.inFlight.values()) {
        if (!f.aborted && s.granted[f.slot] !== 1) {
          t = Math.min(t, s.outsideSince + abortAfter);
          break;
        }
      }
    }
    return Number.isFinite(t) ? t : undefined;
  }

  // ---------------------------------------------------------------- input

  /**
   * Processes one input and returns the effects to carry out, in order.
   *
   * @throws RangeError/TypeError for inputs that are programming errors (non-finite `now`, a
   *   slot outside 0..16383, an unknown input type). Bad data from the API (a malformed status)
   *   never throws: it is logged and ignored.
   */
  handle(input: ShardInput): ShardEffect[] {
    this.#out = [];
    this.#advance(input.now);
    switch (input.type) {
      case "tick":
        break;
      case "leaseObserved":
        this.#observeLease(input.lease);
        break;
      case "leaseWriteResult":
        this.#writeResult(input.writeId, input.result);
        break;
      case "slotMapObserved":
        if (typeof input.handoffTimeoutSeconds === "number" && input.handoffTimeoutSeconds > 0) {
          this.#s.handoffTimeoutMs = input.handoffTimeoutSeconds * 1000;
        }
        this.#observeSlotMap(input.uid, input.status, input.resourceVersion);
        break;
      case "slotMapDeleted":
        this.#slotMapDeleted(input.uid);
        break;
      case "rulesApplied":
        this.#rulesApplied(input.fingerprint);
        break;
      case "reconcileStarted":
        this.#started(input.slot, input.key);
        break;
      case "reconcileFinished":
        this.#finished(input.slot, input.key);
        break;
      case "shutdown":
        this.#shutdown(input.abortInFlight === true);
        break;
      default:
        throw new TypeError(`unknown shard input type ${JSON.stringify((input as { type?: unknown }).type)}`);
    }
    this.#settle();
    const out = this.#out;
    this.#out = [];
    return out;
  }

  // ---------------------------------------------------------------- time

  #advance(now: number): void {
    if (typeof now !== "number" || !Number.isFinite(now)) {
      throw new RangeError(`now: must be a finite number of milliseconds; got ${String(now)}`);
    }
    const s = this.#s;
    if (now > s.now) s.now = now;
    // Stop waiting; a late result is still used as an observation (see LeaseLock.writeResult).
    const w = this.#lock.expire(s.now);
    if (w !== undefined) this.#log("warn", "Lease write timed out", { writeId: w.id, kind: w.kind });
  }

  /** After every input: fence/unfence, ack, handoff aborts, next write. */
  #settle(): void {
    this.#syncFence();
    this.#updateAck();
    this.#handoffAborts();
    this.#escalate();
    this.#pump();
  }

  // ---------------------------------------------------------------- Lease

  #observeLease(lease: LeaseObject | null): void {
    this.#onLock(this.#lock.observe(lease, this.#s.now));
  }

  #writeResult(writeId: number, result: LeaseWriteResult): void {
    this.#onLock(this.#lock.writeResult(writeId, result, this.#s.now));
  }

  /** Logs what the lock reports and acts on it: ownership, fencing, acks, the end of a shutdown. */
  #onLock(events: LeaseEvent<ShardWriteTag>[]): void {
    for (const e of events) {
      switch (e.type) {
        case "stale":
          this.#log("debug", "stale Lease observation ignored", { resourceVersion: e.resourceVersion });
          break;
        case "adopted":
          // An acquire whose reply we missed did succeed: fenced until a renew succeeds.
          this.#log(
            "info",
            "Lease holds our identity from an unconfirmed attempt: renewing before starting work",
          );
          this.#refreshOwnership("lease");
          break;
        case "lost":
          this.#log("warn", "lost the shard Lease: fenced; a re-acquire uses a new identity", {
            identity: e.identity, // the one just given up
            why: e.why,
            holder: e.holder,
          });
          this.#syncFence();
          this.#refreshOwnership("lease");
          break;
        case "released":
          this.#recordAck(e.write.tag.ack, e.write.identity);
          this.#stop();
          break;
        case "written":
          // An acquire without an ack cleared the previous tenure's from the Lease.
          if (e.acquired && e.write.tag.ack === undefined) this.#s.ackWritten = undefined;
          this.#recordAck(e.write.tag.ack, e.write.identity);
          this.#s.refusedWritten = e.write.tag.refused;
          if (e.acquired) {
            this.#log("info", "acquired the shard Lease", { transitions: e.lease.spec?.leaseTransitions });
            this.#refreshOwnership("lease");
          }
          break;
        case "failed":
          this.#log("warn", "Lease write failed", {
            writeId: e.write.id,
            kind: e.write.kind,
            error: e.message,
          });
          break;
        case "conflict":
          this.#log("info", "Lease write conflict", {
            identity: e.identity,
            writeId: e.write.id,
            kind: e.write.kind,
          });
          break;
        case "late":
          this.#log("debug", "late Lease write result used as an observation", {
            identity: e.identity,
            writeId: e.writeId,
            outcome: e.outcome,
          });
          break;
      }
    }
  }

  /** Records a successful ack written by `identity` (the logs name the writer, also once released). */
  #recordAck(ack: Ack | undefined, identity: string): void {
    const s = this.#s;
    if (ack === undefined || sameAck(ack, s.ackWritten)) return;
    s.ackWritten = ack;
    // Not before the newest applied generation: an ack held by a drain is not the awaited one.
    if (ack.uid === s.status.uid && ack.generation >= s.status.generation) s.ackUrgent = false;
    this.#out.push({ type: "acked", uid: ack.uid, generation: ack.generation });
    this.#log("info", "acknowledged assignment generation", {
      identity,
      acked: ack.generation,
      uid: ack.uid,
    });
  }

  /** The write the machine wants next and when, or undefined. */
  #plannedWrite(): { kind: LeaseWriteKind; at: number } | undefined {
    const s = this.#s;
    if (s.stopped || s.escalated) return undefined;
    return this.#lock.plannedWrite(s.now, this.#wants());
  }

  /** Renew while reconciles drain after a shutdown; release once none is in flight. */
  #wants(): LeaseWants {
    const s = this.#s;
    return {
      acquire: !s.shutdown,
      release: s.shutdown && s.inFlight.size === 0,
      renewNow: this.#ackDirty(),
    };
  }

  #pump(): void {
    const s = this.#s;
    if (s.stopped || s.lock.write !== undefined) return;
    if (s.shutdown && s.lock.identity === undefined && s.inFlight.size === 0) {
      this.#stop();
      return;
    }
    const planned = this.#plannedWrite();
    if (planned === undefined || planned.at > s.now) return;
    this.#send(planned.kind);
  }

  /**
   * Whether an ack the coordinator waits for is unwritten: then renew now rather than at the
   * cadence (it is the handoff's latency). Other acks, weight and label ride along with the next
   * renewal.
   */
  #ackDirty(): boolean {
    const s = this.#s;
    return (s.ackUrgent && !sameAck(s.ackTarget, s.ackWritten)) || this.#refusal() !== s.refusedWritten;
  }

  /** The refusal to report: only beside an ack of the same SlotMap instance (the uid it refers to). */
  #refusal(): number | undefined {
    const s = this.#s;
    return s.ackTarget !== undefined && s.ackTarget.uid === s.status.uid ? s.refused : undefined;
  }

  #send(kind: LeaseWriteKind): void {
    const s = this.#s;
    // An acquire carries only an ack the coordinator waits for: an ack in a fresh Lease is held
    // until the Lease is seen renewing (it may predate the process after an etcd restore), so a
    // joiner that read the status first would wait for its next renewal to get slots.
    const ack = kind === "acquire" && !s.ackUrgent ? undefined : s.ackTarget;
    const refused = ack === undefined ? undefined : this.#refusal();
    const w = this.#lock.send(kind, s.now, {
      wallMs: s.now + this.config.wallClockOffsetMs,
      tag: { ack, refused },
      metadata: (identity, base) => this.#writeMetadata(kind, identity, base, ack, refused),
    });
    this.#out.push({ type: "writeLease", ...w });
    this.#log("debug", `Lease ${kind}`, {
      writeId: w.writeId,
      resourceVersion: w.resourceVersion,
      holderIdentity: w.lease.spec?.holderIdentity,
    });
  }

  /** The shard's labels and annotations on every write: ack, refusal, release marker, weight. */
  #writeMetadata(
    kind: LeaseWriteKind,
    identity: string,
    base: LeaseObject | null,
    ack: Ack | undefined,
    refused: number | undefined,
  ): { labels: Record<string, string>; annotations: Record<string, string> } {
    const cfg = this.config;
    const annotations: Record<string, string> = { ...(base?.metadata.annotations ?? {}) };
    if (ack !== undefined) {
      annotations[ANNOTATION_OBSERVED_GENERATION] = String(ack.generation);
      annotations[ANNOTATION_SLOTMAP_UID] = ack.uid;
    } else if (kind === "acquire") {
      // An ack left by another process is a claim about that process, not this one.
      delete annotations[ANNOTATION_OBSERVED_GENERATION];
      delete annotations[ANNOTATION_SLOTMAP_UID];
    }
    // Our ack alone cannot tell the coordinator that the table at its generation is not the one we
    // applied (restored while its Lease view lagged, so it reused the generation): this does.
    if (refused !== undefined) annotations[ANNOTATION_REFUSED_GENERATION] = String(refused);
    else delete annotations[ANNOTATION_REFUSED_GENERATION];
    // The release marker names the incarnation that released: only that makes a cleared holder a
    // release to the coordinator (a holder cleared by hand is waited out like an expiry).
    if (kind === "release") annotations[ANNOTATION_RELEASED_BY] = identity;
    else delete annotations[ANNOTATION_RELEASED_BY];
    if (cfg.weight !== undefined) annotations[ANNOTATION_WEIGHT] = String(cfg.weight);
    const labels: Record<string, string> = { ...(base?.metadata.labels ?? {}), [LABEL_SLOTMAP]: cfg.slotmap };
    return { labels, annotations };
  }

  #stop(): void {
    const s = this.#s;
    if (s.stopped) return;
    s.stopped = true;
    this.#lock.giveUp();
    this.#syncFence();
    this.#refreshOwnership("lease");
    this.#log("info", "shard stopped: Lease released");
    this.#out.push({ type: "stopped" });
  }

  /** Emits fenced/unfenced when the tenure check changes; updates ownership accordingly. */
  #syncFence(): void {
    const s = this.#s;
    const active = this.#lock.held(s.now) && !s.stopped && !s.escalated;
    if (active === !s.fenced) return;
    s.fenced = !active;
    if (active) {
      this.#out.push({ type: "unfenced", identity: s.lock.identity! });
      this.#log("info", "Lease held and renewed in time: reconciles may start");
    } else {
      const reason = s.stopped ? "released" : s.lock.identity === undefined ? "leaseLost" : "renewDeadline";
      this.#out.push({ type: "fenced", reason });
      this.#log(reason === "released" ? "info" : "warn", "fenced: no reconcile may start", { reason });
      this.#abort(() => true, "fenced");
    }
    this.#refreshOwnership("lease");
  }

  // ---------------------------------------------------------------- SlotMap status

  #observeSlotMap(uid: string, status: ShardStatusView | undefined, resourceVersion?: string): void {
    const s = this.#s;
    if (typeof uid !== "string" || uid === "") {
      this.#log("error", "SlotMap without metadata.uid ignored", { uid });
      return;
    }
    if (s.retiredUids.includes(uid)) {
      this.#log("debug", "status of a deleted or replaced SlotMap ignored", { uid });
      return;
    }
    const generation = status?.assignmentGeneration ?? 0;
    if (!Number.isSafeInteger(generation) || generation < 0) {
      this.#log(
        "error",
        "SlotMap status ignored: status.assignmentGeneration is not a non-negative integer",
        {
          uid,
          value: generation,
        },
      );
      return;
    }
    const reset = s.status.uid !== undefined && s.status.uid !== uid;
    const stale = this.isStale(generation, s.status.generation);
    if (!reset && s.status.uid === uid && stale) {
      if (this.#regressed(generation, status, resourceVersion)) return;
      if (generation < s.status.generation) {
        this.#log("debug", "stale SlotMap status ignored", { observed: generation });
      }
      return;
    }
    let entry: ShardMachineState["entry"];
    const shards = status?.shards ?? [];
    const index = shards.findIndex((e) => e.name === this.config.shard);
    if (index >= 0) {
      const e = shards[index]!;
      try {
        entry = {
          slots: parseSlotRanges(e.slots, `status.shards[${index}].slots`),
          holderIdentity: e.holderIdentity ?? undefined,
        };
      } catch (err) {
        if (!(err instanceof SlotRangeError)) throw err;
        // Keeping the older table is safe: slots leave a live shard only after its ack.
        this.#log("error", "SlotMap status ignored: invalid slots", {
          observed: generation,
          error: err.message,
        });
        return;
      }
    }
    if (reset) {
      this.#log("warn", "SlotMap was recreated (uid changed): starting over from its status", {
        oldUid: s.status.uid,
        uid,
      });
      this.#retire(s.status.uid!);
    }
    s.status.uid = uid;
    s.status.generation = generation;
    s.statusResourceVersion = resourceVersion;
    s.regressedAt = undefined;
    s.refused = undefined;
    s.statusRules = status?.rulesFingerprint;
    s.entry = entry;
    // A table that assigns nothing is a drain barrier: it waits for every live shard's ack.
    if (status?.drainBarrier ?? !shards.some((e) => e.slots !== "")) s.ackUrgent = true;
    this.#log("info", "applying assignment generation", {
      uid,
      grantedToUs:
        entry !== undefined && entry.holderIdentity === s.lock.identity && s.lock.identity !== undefined,
    });
    this.#refreshOwnership(reset ? "reset" : "assignment");
  }

  /**
   * A status of our SlotMap at or below the generation we applied, written after it (a newer
   * resourceVersion): restored from a backup, or edited. Its table is not ours to act on: own
   * nothing until a higher generation arrives; our ack (the generation we applied) tells the
   * coordinator, which resets the table above it. Returns whether it was such a status.
   */
  #regressed(
    generation: number,
    status: ShardStatusView | undefined,
    resourceVersion: string | undefined,
  ): boolean {
    const s = this.#s;
    if (!this.isNewerStatus(resourceVersion, s.statusResourceVersion)) return false;
    if (generation === s.status.generation && sameEntry(s.entry, ownEntry(status, this.config.shard))) {
      s.statusResourceVersion = resourceVersion; // a rewrite of the same table (conditions)
      return false;
    }
    if (s.regressedAt === resourceVersion) return true;
    s.regressedAt = resourceVersion;
    s.refused = generation;
    s.ackUrgent = true; // our ack above the status is what tells the coordinator
    s.statusResourceVersion = resourceVersion;
    this.#log(
      "error",
      "SlotMap status went back below the generation we applied: owning nothing until a higher one",
      {
        observed: generation,
        resourceVersion,
      },
    );
    s.entry = undefined;
    this.#refreshOwnership("reset");
    return true;
  }

  #slotMapDeleted(uid: string): void {
    const s = this.#s;
    this.#retire(uid);
    if (s.status.uid !== uid) return;
    this.#log("warn", "SlotMap deleted: owning nothing", { uid });
    s.status.uid = undefined;
    s.status.generation = 0;
    s.entry = undefined;
    this.#refreshOwnership("reset");
  }

  #retire(uid: string): void {
    const r = this.#s.retiredUids;
    if (r.includes(uid)) return;
    r.push(uid);
    if (r.length > RETIRED_UIDS_KEPT) r.shift();
  }

  #rulesApplied(fingerprint: string): void {
    if (typeof fingerprint !== "string" || fingerprint === "")
      throw new TypeError(`rulesApplied.fingerprint: must be a non-empty string; got ${String(fingerprint)}`);
    const s = this.#s;
    if (s.appliedRules === fingerprint) return;
    s.appliedRules = fingerprint;
    if (s.statusRules !== undefined && s.statusRules !== fingerprint)
      this.#log("info", "the runtime's rules differ from the status's: owning nothing until they match", {
        applied: fingerprint,
        status: s.statusRules,
      });
    this.#refreshOwnership("assignment");
  }

  /**
   * Whether the table may be used: it names no rules, or the runtime applies the same. Otherwise
   * another shard may reconcile some object under the other placement, on another slot.
   */
  #rulesMatch(): boolean {
    return this.rulesMatch(this.#s.statusRules, this.#s.appliedRules);
  }

  /** Recomputes granted (status × identity × rules) and owned (granted × not fenced); reports the difference. */
  #refreshOwnership(reason: OwnershipChangeReason): void {
    const s = this.#s;
    const e = s.entry;
    const identity = s.lock.identity;
    if (e !== undefined && identity !== undefined && e.holderIdentity === identity && this.#rulesMatch())
      fillMask(this.#next, e.slots);
    else this.#next.fill(0);
    // Slots granted to us that leave: their migration waits for our ack.
    if (releases(s.granted, this.#next)) s.ackUrgent = true;
    s.granted.set(this.#next);
    if (s.fenced || s.stopped) this.#next.fill(0);
    const { gained, lost } = applyMask(s.owned, this.#next, this.#scratch);
    const generation = s.status.generation;
    if (lost.length > 0) this.#out.push({ type: "slotsLost", ranges: lost, generation, reason });
    if (gained.length > 0) this.#out.push({ type: "slotsGained", ranges: gained, generation, reason });
    let outside = 0;
    for (const f of s.inFlight.values()) if (s.granted[f.slot] !== 1) outside += f.n;
    this.#setOutside(outside);
  }

  // ---------------------------------------------------------------- reconciles and acks

  #setOutside(n: number): void {
    const s = this.#s;
    if (n > 0 && s.inFlightOutside === 0) s.outsideSince = s.now;
    if (n === 0) s.outsideSince = undefined;
    s.inFlightOutside = n;
  }

  #started(slot: number, key: string): void {
    checkSlot(slot, "reconcileStarted.slot");
    if (typeof key !== "string")
      throw new TypeError(`reconcileStarted.key: must be a string; got ${String(key)}`);
    const s = this.#s;
    const allowed = this.mayStart(slot, s.now);
    const id = `${slot}/${key}`;
    let f = s.inFlight.get(id);
    if (f === undefined) {
      f = { slot, key, n: 0, aborted: false };
      s.inFlight.set(id, f);
    }
    f.n += 1;
    if (s.granted[slot] !== 1) this.#setOutside(s.inFlightOutside + 1);
    if (!allowed) {
      // Tracked anyway (it is running); a bug in the runtime, which must consult mayStart first.
      this.#log("warn", "reconcile started although mayStart was false", { slot, key });
      if (s.fenced || s.stopped) {
        f.aborted = true;
        this.#out.push({ type: "abortInFlight", keys: [key], reason: "fenced" });
      }
    }
  }

  #finished(slot: number, key: string): void {
    checkSlot(slot, "reconcileFinished.slot");
    const s = this.#s;
    const id = `${slot}/${key}`;
    const f = s.inFlight.get(id);
    if (f === undefined) {
      this.#log("warn", "reconcileFinished without a matching reconcileStarted ignored", { slot, key });
      return;
    }
    f.n -= 1;
    if (f.n === 0) s.inFlight.delete(id);
    if (s.granted[slot] !== 1) this.#setOutside(s.inFlightOutside - 1);
  }

  #shutdown(abort: boolean): void {
    const s = this.#s;
    if (!s.shutdown) {
      s.shutdown = true;
      this.#log("info", "shutdown requested: no new reconciles; draining before releasing the Lease", {
        inFlight: s.inFlight.size,
      });
    }
    if (abort) this.#abort(() => true, "shutdown");
  }

  /** Acks the newest applied generation once nothing runs outside the slots it grants us. */
  #updateAck(): void {
    const s = this.#s;
    const { uid, generation } = s.status;
    if (uid === undefined || generation === 0 || !this.drained(s.inFlightOutside)) return;
    const t = s.ackTarget;
    if (t !== undefined && t.uid === uid && t.generation >= generation) return;
    s.ackTarget = { uid, generation };
    this.#log("info", "handoff drained: acknowledging generation with the next Lease write", { uid });
  }

  #handoffAborts(): void {
    const s = this.#s;
    const after = this.config.handoffAbortAfterMs;
    if (after === undefined || s.outsideSince === undefined || s.now < s.outsideSince + after) return;
    this.#abort((f) => s.granted[f.slot] !== 1, "handoffTimeout");
  }

  /**
   * A drain that outlives the handoff timeout (a reconcile that never returns, abort ignored):
   * stop renewing for good and ask the process to exit. Releasing instead would let the slots move
   * while that reconcile still runs; an expiry fences it by the clock, and the exit ends it.
   */
  #escalate(): void {
    const s = this.#s;
    // Also without the Lease: a reconcile that outlives a lost Lease must end with the process too.
    if (s.escalated || s.stopped || s.outsideSince === undefined) return;
    const after = s.handoffTimeoutMs ?? this.config.handoffEscalateAfterMs;
    if (!this.escalationDue(s.now, s.outsideSince + after)) return;
    s.escalated = true;
    const keys = [...s.inFlight.values()].filter((f) => s.granted[f.slot] !== 1).map((f) => f.key);
    this.#abort((f) => s.granted[f.slot] !== 1, "handoffTimeout");
    this.#log(
      "error",
      "a reconcile on lost slots did not return within the handoff timeout: stop renewing and exit",
      {
        keys: keys.slice(0, 10).join(","),
        sinceMs: s.now - s.outsideSince,
      },
    );
    this.#syncFence();
    this.#out.push({ type: "escalate", keys, sinceMs: s.now - s.outsideSince });
  }

  #abort(which: (f: InFlight) => boolean, reason: AbortReason): void {
    const keys = new Set<string>();
    for (const f of this.#s.inFlight.values()) {
      if (!f.aborted && which(f)) {
        f.aborted = true;
        keys.add(f.key);
      }
    }
    if (keys.size > 0) this.#out.push({ type: "abortInFlight", keys: [...keys], reason });
  }

  // ---------------------------------------------------------------- guards
  // The Trust rules the machine consults, one small method each. Production runs these; only the
  // simulator's teeth tests subclass the machine to break one (property-tests/sim/mutations.ts,
  // docs/verification.md "Mutations"), so the production path carries no test switch.

  /** Reconciles may start until this time: a Lease write sent at `lastRenewSentAt` plus renewDeadline. */
  protected renewDeadlineAt(lastRenewSentAt: number): number {
    return lastRenewSentAt + this.config.renewDeadlineMs;
  }

  /** A Lease this process held that vanished is waited out like an expiry (its holder may still run). */
  protected waitsOutVanishedLease(everHeld: boolean): boolean {
    return everHeld;
  }

  /** A status at or below the applied generation of the same SlotMap brings nothing new. */
  protected isStale(generation: number, applied: number): boolean {
    return generation <= applied;
  }

  /**
   * The observed status was written after the one applied: with a lower generation, it was set
   * back (restored), not merely late. Unknown versions are never "newer".
   */
  protected isNewerStatus(resourceVersion: string | undefined, applied: string | undefined): boolean {
    if (resourceVersion === undefined || applied === undefined) return false;
    return (compareResourceVersions(resourceVersion, applied) ?? 0) > 0;
  }

  /** Grants hold only under the placement rules the table was planned for. */
  protected rulesMatch(statusRules: string | undefined, appliedRules: string | undefined): boolean {
    return statusRules === undefined || statusRules === appliedRules;
  }

  /** An ack waits until nothing runs outside the granted slots. */
  protected drained(inFlightOutside: number): boolean {
    return inFlightOutside === 0;
  }

  /** A reconcile on lost slots still running at `deadline` stops the renewals (the process exits). */
  protected escalationDue(now: number, deadline: number): boolean {
    return now >= deadline;
  }

  /**
   * The resourceVersion a fencing token is built on: the applied status's, so the next owner of
   * any slot owned now carries a greater token (docs/fencing.md).
   */
  protected fenceVersion(statusResourceVersion: string | undefined, _generation: number): string | undefined {
    return statusResourceVersion;
  }

  #log(level: LogEffect["level"], msg: string, extra: Record<string, unknown> = {}): void {
    const s = this.#s;
    this.#out.push({
      type: "log",
      level,
      msg,
      fields: {
        slotmap: this.config.slotmap,
        shard: this.config.shard,
        generation: s.status.generation,
        identity: s.lock.identity,
        ...extra,
      },
    });
  }
}

/** Our entry in a status, parsed; undefined when absent or malformed. */
function ownEntry(status: ShardStatusView | undefined, shard: string): ShardMachineState["entry"] {
  const e = status?.shards.find((x) => x.name === shard);
  if (e === undefined) return undefined;
  try {
    return { slots: parseSlotRanges(e.slots, "slots"), holderIdentity: e.holderIdentity ?? undefined };
  } catch {
    return undefined;
  }
}

/**
 * Whether two entries grant the same: the same slots to the same holder. Entries granting nothing
 * are the same whatever holder they name (the coordinator records a slotless shard's current
 * holder without a new generation).
 */
function sameEntry(a: ShardMachineState["entry"], b: ShardMachineState["entry"]): boolean {
  const slotsA = a?.slots ?? [];
  const slotsB = b?.slots ?? [];
  if (slotsA.length === 0 && slotsB.length === 0) return true;
  return a?.holderIdentity === b?.holderIdentity && JSON.stringify(slotsA) === JSON.stringify(slotsB);
}

function initialState(): ShardMachineState {
  return {
    now: Number.NEGATIVE_INFINITY,
    shutdown: false,
    stopped: false,
    lock: initialLeaseLockState(),
    incarnations: 0,
    fenced: true,
    escalated: false,
    handoffTimeoutMs: undefined,
    status: { uid: undefined, generation: 0 },
    statusResourceVersion: undefined,
    regressedAt: undefined,
    refused: undefined,
    refusedWritten: undefined,
    statusRules: undefined,
    appliedRules: undefined,
    entry: undefined,
    retiredUids: [],
    ackTarget: undefined,
    ackWritten: undefined,
    ackUrgent: false,
    inFlight: new Map(),
    inFlightOutside: 0,
    outsideSince: undefined,
    granted: new Uint8Array(SLOT_COUNT),
    owned: new Uint8Array(SLOT_COUNT),
  };
}
