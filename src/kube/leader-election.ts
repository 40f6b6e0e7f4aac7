import { performance } from "node:perf_hooks";
import {
  leaseDurationMs,
  leaseFingerprint,
  leaseHolder,
  leaseTimingProblems,
  microTime,
} from "../api/lease.js";
import { isStatus, type KubeHttp } from "./http.js";

/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: a Lease is
 * taken only when it is free or when its record has not changed for a full lease duration of
 * OUR clock (never by comparing the holder's renewTime with our wall clock, which may be skewed);
 * the leader steps down when it could not renew within the renew deadline; stopping releases the
 * Lease so another replica takes over at once instead of after expiry.
 *
 * Every API call is bounded: while leading, by the time left until the renew deadline (a stalled
 * connection must not keep a leader that can no longer renew), else by the renew deadline; and a
 * watchdog timer steps down at the deadline even while a call is still hanging.
 */

/** A Lease as read and written here (the fields leader election uses). */
export interface LeaseObject {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

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

/** Runs leader election until {@link stop} is called. */
export class LeaderElector {
  private readonly durationMs: number;
  private readonly deadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private stopped = false;
  private leading: AbortController | undefined;
  private lastRenewSentAt = 0;
  private observed: { key: string; at: number } | undefined;
  private current: LeaseObject | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastLeader: string | undefined;
  /** Aborts the API call under way (on stop, or when the watchdog steps down). */
  private attempt: AbortController | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.durationMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.deadlineMs = (opts.renewDeadlineSeconds ?? 10) * 1000;
    this.retryMs = (opts.retryPeriodSeconds ?? 2) * 1000;
    const p = leaseTimingProblems(
      {
        leaseDuration: this.durationMs / 1000,
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
    if (this.leading) {
      this.stepDown();
      await this.release().catch((err) => this.opts.onError?.(err));
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tryAcquireOrRenew();
      } catch (err) {
        if (!this.stopped) this.opts.onError?.(err); // aborted by stop(): not a failure
      }
      if (this.leading && this.now() - this.lastRenewSentAt > this.deadlineMs) this.stepDown();
      await this.sleep(this.retryMs);
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

  /** Steps down at the renew deadline unless a renewal lands first (re-armed by each renewal). */
  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    const left = this.lastRenewSentAt + this.deadlineMs - this.now();
    this.watchdog = setTimeout(
      () => {
        if (!this.leading || this.now() - this.lastRenewSentAt < this.deadlineMs) return;
        this.stepDown();
        this.attempt?.abort(new Error("renew deadline passed"));
      },
      Math.max(0, left),
    );
    this.watchdog.unref?.();
  }

  /** Options of one API call of the loop: its abort signal and its time bound. */
  private callOptions(): { signal: AbortSignal; timeoutMs: number } {
    const left = this.leading ? this.lastRenewSentAt + this.deadlineMs - this.now() : this.deadlineMs;
    return { signal: this.attempt!.signal, timeoutMs: Math.max(1, Math.round(left)) };
  }

  private async tryAcquireOrRenew(): Promise<void> {
    this.attempt = new AbortController();
    try {
      await this.acquireOrRenew();
    } finally {
      this.attempt = undefined;
    }
  }

  private async acquireOrRenew(): Promise<void> {
    const { http, namespace, name, identity } = this.opts;
    const sentAt = this.now();
    let lease: LeaseObject | undefined;
    try {
      lease = await http.request<LeaseObject>(
        "GET",
        `${LEASES(namespace)}/${encodeURIComponent(name)}`,
        this.callOptions(),
      );
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
    const nowTime = microTime();
    if (!lease) {
      const created = await http.request<LeaseObject>("POST", LEASES(namespace), {
        ...this.callOptions(),
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: this.durationMs / 1000,
            acquireTime: nowTime,
            renewTime: nowTime,
            leaseTransitions: 0,
          },
        } satisfies LeaseObject,
      });
      this.becameHolder(created, sentAt);
      return;
    }
    const holder = leaseHolder(lease.spec);
    this.noteLeader(holder);
    if (holder !== identity) {
      // Another holder: only take the Lease once its record sat unchanged for a full duration.
      // Renewed means a new holder or renewTime: a tool touching labels is no renewal.
      const key = leaseFingerprint(lease.spec);
      if (!this.observed || this.observed.key !== key) this.observed = { key, at: this.now() };
      const leaseMs = leaseDurationMs(lease.spec, this.durationMs);
      if (holder !== "" && this.now() - this.observed.at < leaseMs) {
        this.stepDown();
        return;
      }
    }
    const spec: LeaseObject["spec"] = {
      ...lease.spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.durationMs / 1000,
      renewTime: nowTime,
    };
    if (holder !== identity) {
      spec.acquireTime = nowTime;
      spec.leaseTransitions = (lease.spec.leaseTransitions ?? 0) + 1;
    }
    // resourceVersion in the body is the precondition: a concurrent acquire makes this a 409.
    const updated = await http.request<LeaseObject>(
      "PUT",
      `${LEASES(namespace)}/${encodeURIComponent(name)}`,
      { ...this.callOptions(), body: { ...lease, spec } },
    );
    this.becameHolder(updated, sentAt);
  }

  private becameHolder(lease: LeaseObject, sentAt: number): void {
    this.current = lease;
    this.lastRenewSentAt = sentAt;
    this.noteLeader(this.opts.identity);
    if (!this.stopped) this.armWatchdog();
    if (!this.leading && !this.stopped) {
      this.leading = new AbortController();
      this.opts.onStartedLeading(this.leading.signal);
    }
  }

  private noteLeader(identity: string): void {
    if (identity !== "" && identity !== this.lastLeader) {
      this.lastLeader = identity;
      this.opts.onNewLeader?.(identity);
    }
  }

  private async release(): Promise<void> {
    const lease = this.current;
    if (!lease) return;
    const { http, namespace, name } = this.opts;
    await http.request("PUT", `${LEASES(namespace)}/${encodeURIComponent(name)}`, {
      // Bounded: a stalled API server must not hold a stopping process; the Lease then expires.
      timeoutMs: this.deadlineMs,
      body: {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() },
      },
    });
    this.current = undefined;
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
