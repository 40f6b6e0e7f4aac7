import { performance } from "node:perf_hooks";
import { type LeaseObject, leaseHolder, leaseTimingProblems } from "../api/lease.js";
import {
  type LeaseEvent,
  LeaseLock,
  type LeaseWants,
  type LeaseWriteKind,
  type LeaseWriteResult,
} from "../api/lease-lock.js";
import { isStatus, type KubeHttp } from "./http.js";

/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: a Lease is
 * taken only when it is free or when its record has not changed for a full lease duration of
 * OUR clock (never by comparing the holder's renewTime with our wall clock, which may be skewed;
 * a label or annotation edit is no renewal); the leader steps down when it could not renew within
 * the renew deadline, or saw another holder; stopping releases the Lease so another replica takes
 * over at once instead of after expiry.
 *
 * The rules are those of the shards' {@link LeaseLock} (src/api/lease-lock.ts); this class is its
 * I/O: every retry period it reads the Lease, feeds the lock and sends the write the lock plans.
 *
 * Every API call is bounded: while leading, by the time left until the renew deadline (a stalled
 * connection must not keep a leader that can no longer renew), else by the renew deadline; and a
 * watchdog timer steps down at the deadline even while a call is still hanging.
 */

export type { LeaseObject } from "../api/lease.js";

/** Options of {@link LeaderElector}. */
export interface LeaderElectionOptions {
  http: KubeHttp;
  namespace: string;
  /** Name of the election Lease. */
  name: string;
  /** This replica's identity (unique per process). */
  identity: string;
  /** Default 15. */
  leaseDurationSeconds?: number;
  /** Must be below the lease duration; default 10. */
  renewDeadlineSeconds?: number;
  /** Default 2. */
  retryPeriodSeconds?: number;
  /** Called when this replica becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called when this replica stops leading (lost, or stopped). */
  onStoppedLeading?: () => void;
  /** A new leader was observed (including this replica). */
  onNewLeader?: (identity: string) => void;
  /** Recoverable errors (API failures); the elector retries. */
  onError?: (err: unknown) => void;
  /** Monotonic clock in ms; default performance.now. Injected by tests. */
  now?: () => number;
}

const LEASES = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;
const CAMPAIGN: LeaseWants = { acquire: true, release: false, renewNow: false };
const RESIGN: LeaseWants = { acquire: false, release: true, renewNow: false };

/** Runs leader election until {@link stop} is called. */
export class LeaderElector {
  private readonly deadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly lock: LeaseLock;
  private stopped = false;
  private leading: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastLeader: string | undefined;
  /** Aborts the API call under way (on stop, or when the watchdog steps down). */
  private attempt: AbortController | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    const durationMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.deadlineMs = (opts.renewDeadlineSeconds ?? 10) * 1000;
    this.retryMs = (opts.retryPeriodSeconds ?? 2) * 1000;
    const p = leaseTimingProblems(
      {
        leaseDuration: durationMs / 1000,
        renewDeadline: this.deadlineMs / 1000,
        retryPeriod: this.retryMs / 1000,
      },
      { leaseDuration: "leaseDurationSeconds", renewDeadline: "renewDeadlineSeconds" },
    )[0];
    if (p !== undefined) {
      throw new Error(`leader election: ${p.timing}Seconds (${p.value}) ${p.message}`);
    }
    if (!(this.retryMs > 0)) {
      throw new Error(`leader election: retryPeriodSeconds (${this.retryMs / 1000}) must be positive`);
    }
    this.now = opts.now ?? (() => performance.now());
    this.lock = new LeaseLock(
      {
        name: opts.name,
        namespace: opts.namespace,
        leaseDurationMs: durationMs,
        renewDeadlineMs: this.deadlineMs,
        retryPeriodMs: this.retryMs,
        writeTimeoutMs: this.deadlineMs,
      },
      // One identity per process (the caller adds a random suffix): a lost tenure is re-acquired
      // under the same name, as in client-go.
      { nextIdentity: () => opts.identity },
    );
  }

  /** Whether this replica currently leads. */
  get isLeader(): boolean {
    return this.leading !== undefined;
  }

  /** Starts the election loop (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops; a leader steps down and releases the Lease. Resolves when done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.attempt?.abort(new Error("leader election stopped"));
    await this.loop;
    this.stepDown();
    await this.release().catch((err) => this.opts.onError?.(err));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const ok = await this.round();
      if (this.leading && !this.lock.held(this.now())) this.stepDown();
      // After a failure, a retry period; else until the next write the lock plans (its renew
      // cadence), re-reading a Lease held by another replica at least every retry period.
      await this.sleep(ok ? this.untilPlannedWrite() : this.retryMs);
    }
  }

  /** One read of the Lease and, when the lock plans one now, one write. Returns whether all went well. */
  private async round(): Promise<boolean> {
    this.attempt = new AbortController();
    try {
      const lease = await this.read();
      const now = this.now();
      this.apply(this.lock.observe(lease, now));
      this.noteLeader(leaseHolder(lease?.spec));
      const planned = this.lock.plannedWrite(now, CAMPAIGN);
      if (planned !== undefined && planned.at <= now && !this.stopped) {
        await this.write(planned.kind, now, this.callOptions());
      }
      return true;
    } catch (err) {
      if (!this.stopped) this.opts.onError?.(err); // aborted by stop(): not a failure
      return false;
    } finally {
      this.attempt = undefined;
    }
  }

  private untilPlannedWrite(): number {
    const now = this.now();
    const at = this.lock.plannedWrite(now, CAMPAIGN)?.at ?? now + this.retryMs;
    return Math.min(this.retryMs, Math.max(0, at - now));
  }

  /** The Lease, or null when it does not exist. */
  private async read(): Promise<LeaseObject | null> {
    const { http, namespace, name } = this.opts;
    try {
      return await http.request<LeaseObject>(
        "GET",
        `${LEASES(namespace)}/${encodeURIComponent(name)}`,
        this.callOptions(),
      );
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  /** Sends the lock's write of `kind` and feeds the outcome back; rethrows an API failure. */
  private async write(
    kind: LeaseWriteKind,
    now: number,
    call: { signal?: AbortSignal; timeoutMs: number },
  ): Promise<void> {
    const { http, namespace, name } = this.opts;
    const w = this.lock.send(kind, now, { wallMs: Date.now(), tag: undefined });
    const body = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...w.lease };
    let result: LeaseWriteResult;
    let failure: unknown;
    try {
      // An update carries the observed resourceVersion: a concurrent write makes it a 409.
      const lease =
        w.verb === "create"
          ? await http.request<LeaseObject>("POST", LEASES(namespace), { ...call, body })
          : await http.request<LeaseObject>("PUT", `${LEASES(namespace)}/${encodeURIComponent(name)}`, {
              ...call,
              body,
            });
      result = { outcome: "ok", lease };
    } catch (err) {
      failure = err;
      const conflict = isStatus(err, 409) || (w.verb === "update" && isStatus(err, 404));
      result = conflict
        ? { outcome: "conflict", current: undefined } // the next round reads it
        : { outcome: "error", message: err instanceof Error ? err.message : String(err) };
    }
    this.apply(this.lock.writeResult(w.writeId, result, this.now()));
    if (failure !== undefined) throw failure;
  }

  private apply(events: readonly LeaseEvent<undefined>[]): void {
    for (const e of events) {
      if (e.type === "lost") this.stepDown();
      else if (e.type === "written") this.renewed();
    }
  }

  private renewed(): void {
    this.noteLeader(this.opts.identity);
    if (this.stopped) return;
    this.armWatchdog();
    if (!this.leading && this.lock.held(this.now())) {
      this.leading = new AbortController();
      this.opts.onStartedLeading(this.leading.signal);
    }
  }

  private stepDown(): void {
    clearTimeout(this.watchdog);
    const ac = this.leading;
    if (!ac) return;
    this.leading = undefined;
    ac.abort();
    this.opts.onStoppedLeading?.();
  }

  /** Steps down at the lock's deadline unless a renewal lands first (re-armed by each renewal). */
  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(
      () => {
        if (!this.leading) return;
        if (this.lock.held(this.now())) {
          this.armWatchdog(); // the timer fired a little early
          return;
        }
        this.stepDown();
        this.attempt?.abort(new Error("renew deadline passed"));
      },
      Math.max(0, this.lock.deadlineAt() - this.now()),
    );
    this.watchdog.unref?.();
  }

  /** Options of one API call of the loop: its abort signal and its time bound. */
  private callOptions(): { signal: AbortSignal; timeoutMs: number } {
    const now = this.now();
    const end = this.leading ? this.lock.deadlineAt() : now + this.deadlineMs;
    return { signal: this.attempt!.signal, timeoutMs: Math.max(1, Math.round(end - now)) };
  }

  /** Releases the Lease if the lock holds it: at once, whatever the retry backoff. */
  private async release(): Promise<void> {
    const now = this.now();
    if (this.lock.plannedWrite(now, RESIGN)?.kind !== "release") return;
    // Bounded: a stalled API server must not hold a stopping process; the Lease then expires.
    await this.write("release", now, { timeoutMs: this.deadlineMs });
  }

  private noteLeader(identity: string): void {
    if (identity !== "" && identity !== this.lastLeader) {
      this.lastLeader = identity;
      this.opts.onNewLeader?.(identity);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
