/**
 * Test driver for the shard machine: a fake API server holding one Lease (resourceVersion
 * preconditions like the real one) and helpers to feed inputs and pick effects.
 */
import { expect } from "vitest";
import {
  type LeaseObject,
  type LeaseWriteResult,
  type ShardEffect,
  ShardMachine,
  type ShardMachineOptions,
  type ShardStatusView,
  type WriteLeaseEffect,
} from "../../../../src/client/core/index.js";

export const SLOTMAP = "checksums";
export const SHARD = "checksums-0";
export const NS = "checksums-system";
export const UID = "uid-a";
export const SALT = "s4lt";

/** Identity the machine generates for its n-th acquisition. */
export const ident = (n: number): string => `pod-0-${SALT}-${n}`;

export function options(extra: Partial<ShardMachineOptions> = {}): ShardMachineOptions {
  return {
    slotmap: SLOTMAP,
    shard: SHARD,
    leaseNamespace: NS,
    holderIdentityPrefix: "pod-0",
    incarnationSalt: SALT,
    ...extra,
  };
}

/** A Lease held by `holder`, as another process (or the coordinator) would write it. */
export function foreignLease(
  holder: string,
  rv: string,
  renewTime = "2025-01-01T00:00:00.000000Z",
): LeaseObject {
  return {
    metadata: { name: SHARD, namespace: NS, resourceVersion: rv, labels: { "slotmap.dev/slotmap": SLOTMAP } },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: 15,
      renewTime,
      acquireTime: renewTime,
      leaseTransitions: 3,
    },
  };
}

/** A status with one entry per [name, slots, holder]. */
export function status(generation: number, entries: Array<[string, string, string?]>): ShardStatusView {
  return {
    assignmentGeneration: generation,
    shards: entries.map(([name, slots, holderIdentity]) => ({ name, slots, holderIdentity })),
  };
}

/** The API server's side of the Lease: applies writes with resourceVersion preconditions. */
export class FakeApi {
  lease: LeaseObject | null = null;
  #rv = 100;

  nextRv(): string {
    this.#rv += 1;
    return String(this.#rv);
  }

  apply(w: WriteLeaseEffect): LeaseWriteResult {
    if (w.verb === "create") {
      if (this.lease !== null) return { outcome: "conflict", current: structuredClone(this.lease) };
    } else {
      if (this.lease === null) return { outcome: "conflict", current: null };
      if (w.resourceVersion !== this.lease.metadata.resourceVersion) {
        return { outcome: "conflict", current: structuredClone(this.lease) };
      }
    }
    const stored = structuredClone(w.lease);
    stored.metadata.resourceVersion = this.nextRv();
    this.lease = stored;
    return { outcome: "ok", lease: structuredClone(stored) };
  }

  /** Someone else writes the Lease (a new holder, or a takeover). */
  put(lease: LeaseObject): LeaseObject {
    const stored = structuredClone(lease);
    stored.metadata.resourceVersion = this.nextRv();
    this.lease = stored;
    return structuredClone(stored);
  }
}

export function writes(effects: readonly ShardEffect[]): WriteLeaseEffect[] {
  return effects.filter((e): e is WriteLeaseEffect => e.type === "writeLease");
}

export function ofType<T extends ShardEffect["type"]>(
  effects: readonly ShardEffect[],
  type: T,
): Array<Extract<ShardEffect, { type: T }>> {
  return effects.filter((e): e is Extract<ShardEffect, { type: T }> => e.type === type);
}

/** Effects without log records, for exact comparisons. */
export function quiet(effects: readonly ShardEffect[]): ShardEffect[] {
  return effects.filter((e) => e.type !== "log");
}

/** Machine + fake API; `reply` delivers the pending write's result. */
export class Driver {
  readonly m: ShardMachine;
  readonly api = new FakeApi();
  now = 0;
  /** Writes emitted and not yet answered. */
  pending: WriteLeaseEffect[] = [];
  /** Every effect so far. */
  log: ShardEffect[] = [];

  /** @param Machine - the machine class: a teeth test passes one with a broken guard. */
  constructor(opts: Partial<ShardMachineOptions> = {}, Machine: typeof ShardMachine = ShardMachine) {
    this.m = new Machine(options(opts));
  }

  #take(effects: ShardEffect[]): ShardEffect[] {
    this.log.push(...effects);
    this.pending.push(...writes(effects));
    return effects;
  }

  at(now: number): this {
    this.now = now;
    return this;
  }

  tick(now = this.now): ShardEffect[] {
    this.now = now;
    return this.#take(this.m.handle({ type: "tick", now }));
  }

  observeLease(lease: LeaseObject | null = this.api.lease): ShardEffect[] {
    return this.#take(this.m.handle({ type: "leaseObserved", now: this.now, lease: structuredClone(lease) }));
  }

  observeStatus(s: ShardStatusView | undefined, uid = UID, resourceVersion?: string): ShardEffect[] {
    return this.#take(
      this.m.handle({ type: "slotMapObserved", now: this.now, uid, status: s, resourceVersion }),
    );
  }

  rulesApplied(fingerprint: string): ShardEffect[] {
    return this.#take(this.m.handle({ type: "rulesApplied", now: this.now, fingerprint }));
  }

  start(slot: number, key: string): ShardEffect[] {
    expect(this.m.mayStart(slot, this.now)).toBe(true);
    return this.#take(this.m.handle({ type: "reconcileStarted", now: this.now, slot, key }));
  }

  finish(slot: number, key: string): ShardEffect[] {
    return this.#take(this.m.handle({ type: "reconcileFinished", now: this.now, slot, key }));
  }

  shutdown(abortInFlight = false): ShardEffect[] {
    return this.#take(this.m.handle({ type: "shutdown", now: this.now, abortInFlight }));
  }

  /** The single pending write (fails the test when there is not exactly one). */
  onlyPending(): WriteLeaseEffect {
    expect(this.pending).toHaveLength(1);
    return this.pending[0]!;
  }

  /** Answers the oldest pending write: through the fake API, or with the given result. */
  reply(result?: LeaseWriteResult): ShardEffect[] {
    const w = this.pending.shift();
    if (w === undefined) throw new Error("no pending write");
    const r = result ?? this.api.apply(w);
    return this.#take(
      this.m.handle({ type: "leaseWriteResult", now: this.now, writeId: w.writeId, result: r }),
    );
  }

  /** Starts from an absent Lease and acquires it at `now`; returns the identity. */
  acquire(): string {
    this.observeLease(null);
    const w = this.onlyPending();
    expect(w.kind).toBe("acquire");
    this.reply();
    expect(this.m.phase()).toBe("active");
    return this.m.identity()!;
  }

  /** Ticks every `step` ms up to `until`, answering writes through the API as they come. */
  run(until: number, step = 100): void {
    for (let t = this.now + step; t <= until; t += step) {
      this.tick(t);
      while (this.pending.length > 0) this.reply();
    }
  }
}
