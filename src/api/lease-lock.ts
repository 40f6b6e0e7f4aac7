/**
 * One lock on a `coordination.k8s.io/v1` Lease, sans I/O: the acquire / renew / release rules
 * that the shards (`ShardMachine`) and the coordinator's leader election (`LeaderElector`) share.
 * No timers, no clock reads, no I/O: every operation takes `now`, milliseconds of one monotonic
 * clock of the process, which must never go back; the owner performs the writes it plans.
 *
 * The rules (client-go's leader election, plus what DESIGN "Trust" asks of a shard):
 * - observations older than the highest resourceVersion seen are dropped;
 * - a Lease held by someone else is taken only after its holder record ({@link leaseFingerprint})
 *   sat unchanged for a full lease duration of OUR clock: renewTime written by others is never
 *   compared with our clock, and a label or annotation edit is no renewal;
 * - a free Lease ({@link isLeaseFree}) is taken at once, an absent one too unless the owner waits
 *   out a vanished Lease (`waitsOutVanishedLease`);
 * - the lock is held until `lastRenewSentAt + renewDeadline` (`deadlineAt`): the send time of the
 *   newest successful write, so the deadline can only come early;
 * - another holder observed while we hold it: lost, and the identity is given up;
 * - an acquire whose reply was lost but which landed (the Lease shows the pending identity) is
 *   adopted, not yet within a deadline: the next renew must succeed first;
 * - a failed or conflicting write is retried a retry period after it was sent; a result that
 *   arrives after the write was given up is only an observation.
 *
 * What each owner writes besides the holder fields (the shard's ack, weight, release marker), how
 * it names identities, and what it does when the lock is lost or released stay with the owner:
 * options, {@link LeaseLockHooks} and the {@link LeaseEvent}s the operations return.
 */
import {
  isLeaseFree,
  type LeaseObject,
  type LeaseSpecFields,
  leaseDurationMs,
  leaseFingerprint,
  leaseHolder,
  leaseTimingProblems,
  microTime,
  TAKEOVER_HOLDER,
} from "./lease.js";
import { compareResourceVersions } from "./resource-version.js";

/** Why a Lease write is wanted. */
export type LeaseWriteKind = "acquire" | "renew" | "release";

/** Outcome of a Lease write, reported by the I/O layer. */
export type LeaseWriteResult =
  /** The write was applied; `lease` is the object the API server returned (new resourceVersion). */
  | { outcome: "ok"; lease: LeaseObject }
  /**
   * The precondition failed (HTTP 409 on update, AlreadyExists on create, 404 on update of a
   * deleted Lease). `current` is the Lease as read right after (`null`: it does not exist;
   * `undefined`: not read, a later observation will tell).
   */
  | { outcome: "conflict"; current: LeaseObject | null | undefined }
  /** Anything else (timeout, 5xx, network). The write may or may not have been applied. */
  | { outcome: "error"; message: string };

/** Timings (ms of the owner's monotonic clock) and the Lease's name. */
export interface LeaseLockOptions {
  readonly name: string;
  readonly namespace: string;
  /** Written as `leaseDurationSeconds` (whole seconds); also the least wait before a takeover. */
  readonly leaseDurationMs: number;
  /** The lock is held until the send time of the newest successful write plus this. */
  readonly renewDeadlineMs: number;
  /** Renew cadence, and the backoff after a failed or conflicting write. */
  readonly retryPeriodMs: number;
  /** A write not answered this long after it was sent is given up ({@link LeaseLock.expire}). */
  readonly writeTimeoutMs: number;
  /**
   * The first renew of a tenure is due this long after its acquire (at most `retryPeriodMs`, the
   * default). A shard renews soon: the coordinator admits a new Lease that carries an ack only
   * once it saw it renewing (docs/design-decisions.md "Settling after a fresh observation").
   */
  readonly firstRenewAfterMs?: number | undefined;
}

/** The owner's policies. Hooks are not state: pass the same ones to every copy of a lock. */
export interface LeaseLockHooks {
  /** The holderIdentity of a new acquire attempt (a shard names a new incarnation each time). */
  nextIdentity(): string;
  /** End of tenure for a successful write sent at `lastRenewSentAt`; default `+ renewDeadlineMs`. */
  renewDeadlineAt?(lastRenewSentAt: number): number;
  /**
   * Whether a Lease seen held by a process (`everHeld`) and then absent is re-created only a
   * lease duration after it vanished (its holder may still run). Default false: create at once.
   */
  waitsOutVanishedLease?(everHeld: boolean): boolean;
  /**
   * The identity a released Lease names as its releaser (the shard's `released-by` marker), so
   * that our release seen by a watch before its reply counts as released, not lost. Default: none.
   */
  releasedBy?(lease: LeaseObject): string | undefined;
}

/** A write sent and not yet answered. `tag` is what the owner attached to it (the shard's ack). */
export interface PendingLeaseWrite<T> {
  id: number;
  kind: LeaseWriteKind;
  sentAt: number;
  timeoutAt: number;
  /** holderIdentity this write acquires, renews or releases. */
  identity: string;
  tag: T;
}

/** The whole state of a lock: plain data, copyable with `structuredClone`. */
export interface LeaseLockState<T> {
  /** Whether the Lease has been observed at all (absent counts). */
  known: boolean;
  /** The newest Lease observed or written (null: absent). */
  lease: LeaseObject | null;
  /** {@link leaseFingerprint} of `lease` ("absent" for none). */
  fingerprint: string;
  /** Our clock when the fingerprint last changed: the start of the wait before a takeover. */
  changedAt: number;
  /** Highest resourceVersion accepted, to drop stale observations. */
  maxResourceVersion: string | undefined;
  /** The Lease was seen held by a process (neither free nor absent). */
  everHeld: boolean;
  /** The holderIdentity we hold the Lease as; undefined when we do not hold it. */
  identity: string | undefined;
  /** Identity of acquire attempts not yet known to have succeeded or failed for good. */
  pendingIdentity: string | undefined;
  /** Send time of the newest successful acquire/renew of the current tenure; -Infinity when none. */
  lastRenewSentAt: number;
  /** A renew of the current tenure succeeded (its acquire alone does not count). */
  renewed: boolean;
  nextWriteId: number;
  write: PendingLeaseWrite<T> | undefined;
  /** No write attempt before this time (backoff after a failed attempt). */
  retryAt: number;
}

/** What the owner wants of the Lease now. */
export interface LeaseWants {
  /** Acquire when not holding it (false once the owner stops). */
  readonly acquire: boolean;
  /** Release instead of renewing (the owner is done with it). */
  readonly release: boolean;
  /** Renew at once instead of at the cadence (the owner has something new to write). */
  readonly renewNow: boolean;
}

/** A write the owner must send: POST (`create`) or PUT (`update`, resourceVersion precondition). */
export interface LeaseWriteRequest {
  writeId: number;
  kind: LeaseWriteKind;
  verb: "create" | "update";
  lease: LeaseObject;
  resourceVersion: string | undefined;
  /** Abort the request here: the lock stops waiting for it then. */
  timeoutAt: number;
}

/** Something that happened to the lock, for the owner to log and act on, in order. */
export type LeaseEvent<T> =
  /** An observation older than one already seen: ignored. */
  | { type: "stale"; resourceVersion: string }
  /** An acquire whose reply was missed did land: held as `identity`, but renew before relying on it. */
  | { type: "adopted"; identity: string }
  /** Another holder, a release or a deletion observed while we held it as `identity` (given up). */
  | { type: "lost"; identity: string; holder: string; why: string }
  /** Our release landed (its reply, or an observation naming us as releaser): nothing is held. */
  | { type: "released"; write: PendingLeaseWrite<T> }
  /** An acquire or renew succeeded; `acquired` when we did not hold the Lease before it. */
  | { type: "written"; write: PendingLeaseWrite<T>; lease: LeaseObject; acquired: boolean }
  /** The write failed (may or may not have been applied); retried a retry period after it was sent. */
  | { type: "failed"; write: PendingLeaseWrite<T>; message: string }
  /**
   * The precondition failed; retried a retry period after it was sent. `identity` is the one held
   * when the result arrived (the current Lease it carries, observed next, may end it).
   */
  | { type: "conflict"; write: PendingLeaseWrite<T>; identity: string | undefined }
  /** The result of a write already given up (or unknown): observed next, as `identity` held it. */
  | { type: "late"; writeId: number; outcome: LeaseWriteResult["outcome"]; identity: string | undefined };

/** A lock that has seen nothing and holds nothing. */
export function initialLeaseLockState<T>(): LeaseLockState<T> {
  return {
    known: false,
    lease: null,
    fingerprint: "",
    changedAt: Number.NEGATIVE_INFINITY,
    maxResourceVersion: undefined,
    everHeld: false,
    identity: undefined,
    pendingIdentity: undefined,
    lastRenewSentAt: Number.NEGATIVE_INFINITY,
    renewed: false,
    nextWriteId: 1,
    write: undefined,
    retryAt: Number.NEGATIVE_INFINITY,
  };
}

const fingerprintOf = (lease: LeaseObject | null): string =>
  lease === null ? "absent" : leaseFingerprint(lease.spec);

function checkOptions(o: LeaseLockOptions): void {
  for (const field of ["leaseDurationMs", "renewDeadlineMs", "retryPeriodMs", "writeTimeoutMs"] as const) {
    const v = o[field];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new RangeError(
        `Lease lock: ${field} must be a positive number of milliseconds; got ${String(v)}`,
      );
    }
  }
  const first = o.firstRenewAfterMs;
  if (first !== undefined && (typeof first !== "number" || !Number.isFinite(first) || first <= 0)) {
    throw new RangeError(
      `Lease lock: firstRenewAfterMs must be a positive number of milliseconds; got ${String(first)}`,
    );
  }
  const p = leaseTimingProblems(
    { leaseDuration: o.leaseDurationMs, renewDeadline: o.renewDeadlineMs, retryPeriod: o.retryPeriodMs },
    { leaseDuration: "leaseDurationMs", renewDeadline: "renewDeadlineMs" },
  )[0];
  if (p !== undefined) throw new RangeError(`Lease lock: ${p.timing}Ms (${p.value}) ${p.message}`);
}

/**
 * The lock. It works on the state object it is given, in place (the shard machine embeds it in its
 * own state); {@link snapshot} copies it.
 *
 * ```ts
 * const lock = new LeaseLock({ name, namespace, ...timings }, { nextIdentity: () => id });
 * lock.observe(await get(), now);                        // 404 → null
 * const p = lock.plannedWrite(now, { acquire: true, release: false, renewNow: false });
 * if (p !== undefined && p.at <= now) {
 *   const req = lock.send(p.kind, now, { wallMs: Date.now(), tag: undefined });
 *   for (const e of lock.writeResult(req.writeId, await put(req), now2)) ...;
 * }
 * lock.held(now);                                        // within the renew deadline
 * ```
 */
export class LeaseLock<T = undefined> {
  readonly #o: LeaseLockOptions;
  readonly #hooks: LeaseLockHooks;
  readonly #s: LeaseLockState<T>;

  /**
   * @param state - the state to work on (in place); a fresh one by default.
   * @throws RangeError naming the option when a timing is not positive or breaks the tenure rule.
   */
  constructor(
    options: LeaseLockOptions,
    hooks: LeaseLockHooks,
    state: LeaseLockState<T> = initialLeaseLockState(),
  ) {
    checkOptions(options);
    this.#o = options;
    this.#hooks = hooks;
    this.#s = state;
  }

  /** The state (do not mutate). */
  get state(): Readonly<LeaseLockState<T>> {
    return this.#s;
  }

  /** A deep copy of the state: `new LeaseLock(options, hooks, snapshot)` resumes it. */
  snapshot(): LeaseLockState<T> {
    return structuredClone(this.#s);
  }

  /** Our holderIdentity while we hold the Lease (whether or not within the deadline). */
  get identity(): string | undefined {
    return this.#s.identity;
  }

  /** End of the current tenure: the send time of the newest successful write plus the renew deadline. */
  deadlineAt(): number {
    const t = this.#s.lastRenewSentAt;
    return this.#hooks.renewDeadlineAt?.(t) ?? t + this.#o.renewDeadlineMs;
  }

  /** Whether we hold the Lease and `now` is before {@link deadlineAt}. */
  held(now: number): boolean {
    return this.#s.identity !== undefined && now < this.deadlineAt();
  }

  // ---------------------------------------------------------------- observations

  /**
   * The Lease as read or watched (`null`: absent). Returns what it meant: stale, lost, adopted, or
   * our own release (when {@link LeaseLockHooks.releasedBy} names us).
   */
  observe(lease: LeaseObject | null, now: number): LeaseEvent<T>[] {
    const out: LeaseEvent<T>[] = [];
    this.#observe(lease, now, out);
    return out;
  }

  #observe(lease: LeaseObject | null, now: number, out: LeaseEvent<T>[]): void {
    const s = this.#s;
    const rv = lease?.metadata.resourceVersion;
    if (rv !== undefined && s.maxResourceVersion !== undefined) {
      const c = compareResourceVersions(rv, s.maxResourceVersion);
      if (c !== undefined && c < 0) {
        out.push({ type: "stale", resourceVersion: rv });
        return;
      }
    }
    if (rv !== undefined) s.maxResourceVersion = rv;
    const fingerprint = fingerprintOf(lease);
    const changed = !s.known || fingerprint !== s.fingerprint;
    s.known = true;
    s.lease = lease === null ? null : structuredClone(lease);
    s.fingerprint = fingerprint;
    if (changed) s.changedAt = now;

    const holder = leaseHolder(lease?.spec);
    if (holder !== "" && holder !== TAKEOVER_HOLDER) s.everHeld = true;
    if (s.identity !== undefined) {
      if (holder === "" && this.#ownRelease(lease)) {
        // Our release, seen before its reply: released, not lost.
        out.push({ type: "released", write: s.write! });
        this.#giveUp();
      } else if (holder !== s.identity) {
        out.push({ type: "lost", identity: s.identity, holder, why: lostWhy(lease, holder) });
        this.#giveUp();
        s.lastRenewSentAt = Number.NEGATIVE_INFINITY;
      }
    } else if (s.pendingIdentity !== undefined) {
      if (holder === s.pendingIdentity) {
        s.identity = s.pendingIdentity;
        s.pendingIdentity = undefined;
        s.lastRenewSentAt = Number.NEGATIVE_INFINITY;
        s.retryAt = Math.min(s.retryAt, now);
        out.push({ type: "adopted", identity: s.identity });
      } else if (changed) {
        // The Lease moved on without us: an earlier attempt of this identity may have landed and
        // been superseded since, so whatever names it is not ours. Never reuse it.
        s.pendingIdentity = undefined;
      }
    }
  }

  #ownRelease(lease: LeaseObject | null): boolean {
    const s = this.#s;
    return (
      s.write?.kind === "release" &&
      s.identity !== undefined &&
      lease !== null &&
      this.#hooks.releasedBy?.(lease) === s.identity
    );
  }

  /** Forgets the identity held or pending: the owner stops, or the Lease was lost or released. */
  giveUp(): void {
    this.#giveUp();
  }

  #giveUp(): void {
    this.#s.identity = undefined;
    this.#s.pendingIdentity = undefined;
  }

  // ---------------------------------------------------------------- writes

  /** The write wanted next and when (`at` may be in the past), or undefined. */
  plannedWrite(now: number, wants: LeaseWants): { kind: LeaseWriteKind; at: number } | undefined {
    const s = this.#s;
    if (s.write !== undefined || !s.known) return undefined;
    if (s.identity !== undefined) {
      if (wants.release) return { kind: "release", at: Math.max(s.retryAt, now) };
      const first = this.#o.firstRenewAfterMs;
      const period =
        s.renewed || first === undefined ? this.#o.retryPeriodMs : Math.min(first, this.#o.retryPeriodMs);
      const cadence = wants.renewNow ? now : s.lastRenewSentAt + period;
      return { kind: "renew", at: Math.max(s.retryAt, cadence) };
    }
    if (!wants.acquire) return undefined;
    return { kind: "acquire", at: Math.max(s.retryAt, this.#acquireAt(now)) };
  }

  /** When an acquire may be sent: at once when free, else a full lease duration after the last change. */
  #acquireAt(now: number): number {
    const { lease, everHeld, changedAt } = this.#s;
    if (lease === null) {
      // A Lease someone held and that vanished (deleted by hand) may still have a running holder.
      const waits = this.#hooks.waitsOutVanishedLease?.(everHeld) ?? false;
      return waits ? changedAt + this.#o.leaseDurationMs : now;
    }
    if (isLeaseFree(lease.spec)) return now;
    return changedAt + Math.max(this.#o.leaseDurationMs, leaseDurationMs(lease.spec, 0));
  }

  /**
   * Records a write as sent at `now` and returns what to send: the newest observed Lease with our
   * holder fields (acquireTime/renewTime from `wallMs`, which nobody compares across processes),
   * its resourceVersion as the precondition, and the labels and annotations `metadata` returns.
   *
   * @throws Error when a write is already in flight, or on a renew/release without holding the Lease.
   */
  send(
    kind: LeaseWriteKind,
    now: number,
    options: {
      wallMs: number;
      tag: T;
      metadata?: (
        identity: string,
        base: LeaseObject | null,
      ) => { labels?: Record<string, string>; annotations?: Record<string, string> };
    },
  ): LeaseWriteRequest {
    const s = this.#s;
    if (s.write !== undefined) throw new Error(`Lease lock: ${kind} while write ${s.write.id} is in flight`);
    let identity: string;
    if (kind === "acquire") {
      s.pendingIdentity ??= this.#hooks.nextIdentity();
      identity = s.pendingIdentity;
    } else if (s.identity !== undefined) {
      identity = s.identity;
    } else {
      throw new Error(`Lease lock: ${kind} without holding the Lease`);
    }
    const base = s.lease;
    const body: LeaseObject = structuredClone({
      metadata: {
        ...base?.metadata,
        name: this.#o.name,
        namespace: this.#o.namespace,
        ...options.metadata?.(identity, base),
      },
      spec: holderSpec(kind, identity, base, microTime(options.wallMs), this.#o.leaseDurationMs / 1000),
    });
    const id = s.nextWriteId++;
    const timeoutAt = now + this.#o.writeTimeoutMs;
    s.write = { id, kind, sentAt: now, timeoutAt, identity, tag: options.tag };
    const resourceVersion = base === null ? undefined : base.metadata.resourceVersion;
    return {
      writeId: id,
      kind,
      verb: base === null ? "create" : "update",
      lease: body,
      resourceVersion,
      timeoutAt,
    };
  }

  /** Gives up waiting for a write not answered by its `timeoutAt`; returns it, if so. */
  expire(now: number): PendingLeaseWrite<T> | undefined {
    const s = this.#s;
    const w = s.write;
    if (w === undefined || now < w.timeoutAt) return undefined;
    s.write = undefined;
    s.retryAt = Math.max(s.retryAt, w.sentAt + this.#o.retryPeriodMs);
    return w;
  }

  /** The outcome of write `writeId`; a late or unknown one is used as an observation only. */
  writeResult(writeId: number, result: LeaseWriteResult, now: number): LeaseEvent<T>[] {
    const s = this.#s;
    const out: LeaseEvent<T>[] = [];
    const w = s.write;
    if (w === undefined || w.id !== writeId) {
      // Not proof of anything now, but the object it carries is an observation.
      out.push({ type: "late", writeId, outcome: result.outcome, identity: s.identity });
      if (result.outcome === "ok") this.#observe(result.lease, now, out);
      else if (result.outcome === "conflict" && result.current !== undefined)
        this.#observe(result.current, now, out);
      return out;
    }
    s.write = undefined;
    if (result.outcome !== "ok") {
      s.retryAt = w.sentAt + this.#o.retryPeriodMs;
      if (result.outcome === "error") {
        out.push({ type: "failed", write: w, message: result.message });
      } else {
        out.push({ type: "conflict", write: w, identity: s.identity });
        if (result.current !== undefined) this.#observe(result.current, now, out);
      }
      return out;
    }
    const lease = result.lease;
    const rv = lease.metadata.resourceVersion;
    const c =
      rv === undefined || s.maxResourceVersion === undefined
        ? undefined
        : compareResourceVersions(rv, s.maxResourceVersion);
    const holder = leaseHolder(lease.spec);
    const ours = s.identity === w.identity || s.pendingIdentity === w.identity;
    if ((c !== undefined && c < 0) || !ours) {
      // We already saw a newer Lease (another holder after our write), or gave the identity up.
      this.#observe(lease, now, out);
      return out;
    }
    if (w.kind === "release") {
      if (holder === "") {
        out.push({ type: "released", write: w });
        this.#giveUp();
      }
      this.#observe(lease, now, out);
      return out;
    }
    if (holder !== w.identity) {
      this.#observe(lease, now, out);
      return out;
    }
    const acquired = s.identity === undefined;
    s.renewed = w.kind === "renew" && !acquired;
    s.identity = w.identity;
    s.pendingIdentity = undefined;
    if (w.sentAt > s.lastRenewSentAt) s.lastRenewSentAt = w.sentAt;
    s.retryAt = Number.NEGATIVE_INFINITY;
    this.#observe(lease, now, out);
    out.push({ type: "written", write: w, lease, acquired });
    return out;
  }
}

/** Why a held Lease counts as lost, for logs. */
function lostWhy(lease: LeaseObject | null, holder: string): string {
  if (lease === null) return "the Lease was deleted";
  if (holder === "") return "the Lease was released";
  if (holder === TAKEOVER_HOLDER) return "the coordinator took the Lease over";
  return "another holder";
}

/** The spec of a write: the observed one with our holder fields (leaseTransitions + 1 on a new holder). */
function holderSpec(
  kind: LeaseWriteKind,
  identity: string,
  base: LeaseObject | null,
  wall: string,
  durationSeconds: number,
): LeaseSpecFields {
  const prev: LeaseSpecFields = base?.spec ?? {};
  const spec: LeaseSpecFields = { ...prev, leaseDurationSeconds: durationSeconds, renewTime: wall };
  if (kind === "acquire") {
    spec.holderIdentity = identity;
    spec.acquireTime = wall;
    spec.leaseTransitions =
      base === null ? 0 : (prev.leaseTransitions ?? 0) + (leaseHolder(prev) === identity ? 0 : 1);
  } else if (kind === "renew") {
    spec.holderIdentity = identity;
  } else {
    spec.holderIdentity = "";
  }
  return spec;
}
