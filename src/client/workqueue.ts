/**
 * A work queue with client-go's guarantees: a key waiting in the queue appears once however
 * often it is added (dedupe); a key is never handed to two workers at once (a key added while
 * it is being processed is re-queued when the worker calls {@link WorkQueue.done}); failed
 * keys come back after a per-key exponential backoff.
 */

import { backoffDelay } from "../runtime/backoff.js";

/** Backoff for failed keys: `baseDelayMs · 2^(failures−1)`, capped at `maxDelayMs`. */
export interface BackoffOptions {
  /** Delay after the first failure. Default 10 ms. */
  baseDelayMs?: number;
  /** Upper bound of the delay. Default 300 000 ms (5 minutes). */
  maxDelayMs?: number;
}

/** Options of {@link WorkQueue}. */
export interface WorkQueueOptions extends BackoffOptions {
  /** Timer functions; injectable so tests and simulators control time. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** Monotonic clock in ms, to keep the earliest of two delayed adds. Default `performance.now`. */
  now?: () => number;
}

/** Queue length, keys being processed and keys waiting for a delayed re-add. */
export interface WorkQueueStats {
  queued: number;
  processing: number;
  waiting: number;
}

/**
 * Deduplicating, rate-limited work queue of string keys.
 *
 * Workers loop on `const key = await q.get(); if (key === undefined) return; try {...} finally { q.done(key) }`.
 */
export class WorkQueue {
  // Insertion-ordered set as the FIFO queue: O(1) dedupe and O(1) pop of the oldest key.
  private readonly queue = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  /** Delayed adds: the timer and when it fires. */
  private readonly timers = new Map<string, { handle: unknown; at: number }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private drainWaiters: Array<() => void> = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly now: () => number;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 10;
    this.maxDelayMs = options.maxDelayMs ?? 300_000;
    if (!(this.baseDelayMs > 0) || !(this.maxDelayMs >= this.baseDelayMs)) {
      throw new RangeError(
        `WorkQueue: baseDelayMs (${this.baseDelayMs}) must be > 0 and maxDelayMs (${this.maxDelayMs}) >= baseDelayMs`,
      );
    }
    this.setTimer = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = options.clearTimeout ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.now = options.now ?? (() => performance.now());
  }

  /** Adds a key unless it is already waiting; a key being processed is re-queued after `done`. */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds the key after `delayMs`; a later call for the same key replaces an earlier pending one only if sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    // The earliest ready time wins, as in client-go's delaying queue: a failing key with a pending
    // one-hour requeue is retried after its backoff, not in an hour.
    const at = this.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      this.clearTimer(pending.handle);
    }
    const handle = this.setTimer(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, { handle, at });
  }

  /** Re-adds a failed key after its next backoff delay and returns that delay. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = backoffDelay(n - 1, this.baseDelayMs, this.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of a key (call after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times the key failed since it was last forgotten. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Drops a waiting key and its pending delayed re-add (e.g. its slot moved to another shard). */
  remove(key: string): void {
    this.dirty.delete(key);
    this.queue.delete(key);
    this.failures.delete(key);
    const t = this.timers.get(key);
    if (t !== undefined) {
      this.clearTimer(t.handle);
      this.timers.delete(key);
    }
  }

  /** Resolves with the next key, or `undefined` once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.pop();
    if (key !== undefined) return Promise.resolve(key);
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the end of processing a key returned by {@link get}. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    if (this.dirty.has(key)) this.push(key);
    this.maybeDrained();
  }

  /** Whether a worker currently holds the key. */
  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  /** Sizes, for metrics. */
  stats(): WorkQueueStats {
    return { queued: this.queue.size, processing: this.processing.size, waiting: this.timers.size };
  }

  /**
   * Stops accepting keys, drops queued and delayed ones, wakes idle workers with `undefined`
   * and resolves once every key being processed is done.
   */
  shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const t of this.timers.values()) this.clearTimer(t.handle);
    this.timers.clear();
    this.queue.clear();
    this.dirty.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.maybeDrained();
    });
  }

  /** Whether {@link shutDown} was called. */
  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.add(key);
  }

  private pop(): string | undefined {
    const next = this.queue.values().next();
    if (next.done) return undefined;
    const key = next.value;
    this.queue.delete(key);
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  private maybeDrained(): void {
    if (!this.shuttingDown || this.processing.size > 0) return;
    for (const r of this.drainWaiters.splice(0)) r();
  }
}
