/**
 * Messages between the rebalance harness and the processes it starts (shards, the baseline
 * sharder), over Node's IPC channel. Children stream what happened to which object and when
 * (wall-clock milliseconds, `performance.timeOrigin + performance.now()`, comparable across
 * processes on one machine) and answer stats requests.
 */

/** Wall-clock milliseconds with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `[key, time]`: a root object (Secret) key `namespace/name` and when it happened. */
export type KeyTime = [string, number];

/** A change of slot ownership seen by a slot-based shard. */
export interface SlotChange {
  readonly t: number;
  readonly kind: "gained" | "lost";
  /** Redis-style ranges, e.g. `0-99,200`. */
  readonly ranges: string;
  readonly generation?: number;
}

/** Counters a child keeps; reset by a `resetCounters` request. */
export interface ChildCounters {
  /** Watch events (ADDED/MODIFIED/DELETED) received on object collections. */
  objectWatchEvents: number;
  /** Objects received through list calls on object collections. */
  listedObjects: number;
  /** Watch events on the SlotMap / Leases. */
  controlWatchEvents: number;
  /** Reconciles run (any outcome). */
  reconciles: number;
  /** Writes this process sent (its own count, cross-checked against the API server's). */
  writes: number;
}

/** Answer to a stats request. */
export interface ChildStats {
  readonly counters: ChildCounters;
  readonly memory: NodeJS.MemoryUsage;
  /** Root objects (Secrets) this shard owns right now. */
  readonly ownedObjects: number;
  /** Root objects it sees but does not own (slot-based shards watch everything). */
  readonly nonOwnedObjects: number;
  /** Objects of any kind held in memory (caches). */
  readonly cachedObjects: number;
  /** Watch events and bytes, and list bytes, received since the last reset, by resource. */
  readonly watch: {
    events: Record<string, number>;
    bytes: Record<string, number>;
    listBytes: Record<string, number>;
  };
}

/** Child → harness. */
export type ChildMessage =
  | { type: "ready"; t: number; identity?: string }
  | {
      type: "report";
      gained: KeyTime[];
      lost: KeyTime[];
      reconciled: KeyTime[];
      slots: SlotChange[];
    }
  | { type: "lostAll"; t: number }
  | { type: "stats"; id: number; stats: ChildStats }
  | { type: "resync"; t: number; phase: "start" | "done"; drained: number; moved: number; errors: number }
  | { type: "fatal"; message: string };

/** Harness → child. */
export type ParentMessage =
  | { type: "stats"; id: number; gc: boolean }
  | { type: "resetCounters" }
  | { type: "stop" };

/** Child side: batches reports and sends them every `intervalMs`; nothing is sent when idle. */
export class Reporter {
  private gained: KeyTime[] = [];
  private lost: KeyTime[] = [];
  private reconciled: KeyTime[] = [];
  private slots: SlotChange[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 100) {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  gainedKey(key: string, t = nowMs()): void {
    this.gained.push([key, t]);
  }
  lostKey(key: string, t = nowMs()): void {
    this.lost.push([key, t]);
  }
  reconciledKey(key: string, t = nowMs()): void {
    this.reconciled.push([key, t]);
  }
  slotChange(change: SlotChange): void {
    this.slots.push(change);
  }

  /** Sends what is pending now. */
  flush(): void {
    if (this.gained.length + this.lost.length + this.reconciled.length + this.slots.length === 0) return;
    send({
      type: "report",
      gained: this.gained,
      lost: this.lost,
      reconciled: this.reconciled,
      slots: this.slots,
    });
    this.gained = [];
    this.lost = [];
    this.reconciled = [];
    this.slots = [];
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/** Sends a message to the harness (no-op without an IPC channel, e.g. when run by hand). */
export function send(msg: ChildMessage): void {
  process.send?.(msg);
}

/** Reads the child's JSON configuration from the environment variable `BENCH_CHILD_CONFIG`. */
export function childConfig<T>(): T {
  const raw = process.env.BENCH_CHILD_CONFIG;
  if (!raw)
    throw new Error("BENCH_CHILD_CONFIG is not set: this process is started by the rebalance harness");
  return JSON.parse(raw) as T;
}

/**
 * Wires the standard requests: `stats` (optionally after a full GC: children run with
 * --expose-gc) and `resetCounters`, and `stop` / SIGTERM to `onStop` (called once).
 */
export function serveParent(opts: {
  stats: () => ChildStats;
  counters: ChildCounters;
  /** Watch tally to zero on `resetCounters`. */
  watch?: {
    events: Record<string, number>;
    bytes: Record<string, number>;
    listBytes: Record<string, number>;
  };
  /** Called on `resetCounters` after the counters were zeroed (counters derived from elsewhere). */
  onReset?: () => void;
  onStop: () => Promise<void>;
}): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    opts
      .onStop()
      .catch((err: unknown) => send({ type: "fatal", message: `stop failed: ${String(err)}` }))
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // The harness died: exit rather than linger.
  process.on("disconnect", stop);
  process.on("message", (raw: unknown) => {
    const msg = raw as ParentMessage;
    if (msg.type === "stats") {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (msg.gc && gc) {
        gc();
        gc();
      }
      send({ type: "stats", id: msg.id, stats: opts.stats() });
    } else if (msg.type === "resetCounters") {
      for (const k of Object.keys(opts.counters) as Array<keyof ChildCounters>) opts.counters[k] = 0;
      if (opts.watch) {
        for (const k of Object.keys(opts.watch.events)) delete opts.watch.events[k];
        for (const k of Object.keys(opts.watch.bytes)) delete opts.watch.bytes[k];
        for (const k of Object.keys(opts.watch.listBytes)) delete opts.watch.listBytes[k];
      }
      opts.onReset?.();
    } else if (msg.type === "stop") {
      stop();
    }
  });
}

/** Fresh zeroed counters. */
export function zeroCounters(): ChildCounters {
  return { objectWatchEvents: 0, listedObjects: 0, controlWatchEvents: 0, reconciles: 0, writes: 0 };
}
