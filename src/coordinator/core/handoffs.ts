/**
 * Handoff bookkeeping of one decision step: clocks of pending migrations, batching of commits,
 * commit observations and timeouts. Pure functions over the coordinator's memory.
 *
 * Batching: a source's ack does not commit its migration at once while other sources of the same
 * round have not acked yet; acked migrations wait up to `commitBatchMs` for the rest, so that a
 * join or a leave costs one commit write whatever the number of sources (issue: quiet status).
 * Waiting only delays a commit: it never lets a slot move earlier.
 */
import { countSlots } from "../../slots/ranges.js";
import type { Migration, ShardInfo } from "../../slots/types.js";
import type { HandoffMemory, HandoffObservation } from "./types.js";

/** Memory key of a pending handoff. */
export function migrationKey(from: string, generation: number): string {
  return `${from}@${generation}`;
}

/** Result of {@link batchAcks}. */
export interface AckBatch {
  /** Planner inputs, with acks hidden while their batch waits. */
  readonly infos: ShardInfo[];
  /** When each pending migration's ack was first seen (null: not acked). */
  readonly ackedAt: ReadonlyMap<string, number | null>;
  /** When the waiting batch commits anyway; undefined when nothing waits. */
  readonly deadline: number | undefined;
}

/**
 * Hides acks of a partial batch from the planner: while some live sources of the pending
 * migrations have not acked, acked ones wait until the first of them was seen `batchMs` ago.
 */
export function batchAcks(
  migrations: readonly Migration[],
  infos: readonly ShardInfo[],
  prev: Readonly<Record<string, HandoffMemory>>,
  now: number,
  batchMs: number,
): AckBatch {
  const byName = new Map(infos.map((i) => [i.name, i]));
  const ackedAt = new Map<string, number | null>();
  let oldest: number | undefined;
  let allAcked = true;
  for (const m of migrations) {
    const info = byName.get(m.from);
    const acked = info !== undefined && info.ackedGeneration >= m.generation;
    const k = migrationKey(m.from, m.generation);
    const at = acked ? (prev[k]?.ackedAt ?? now) : null;
    ackedAt.set(k, at);
    if (at !== null) oldest = oldest === undefined ? at : Math.min(oldest, at);
    // A Dead or unknown source commits without an ack: it does not hold the batch back.
    else if (info !== undefined && info.state !== "Dead") allAcked = false;
  }
  if (oldest === undefined || allAcked || now - oldest >= batchMs) {
    return { infos: [...infos], ackedAt, deadline: undefined };
  }
  const lowest = new Map<string, number>();
  for (const m of migrations) lowest.set(m.from, Math.min(lowest.get(m.from) ?? m.generation, m.generation));
  const masked = infos.map((i) => {
    const g = lowest.get(i.name);
    return g !== undefined && i.ackedGeneration >= g ? { ...i, ackedGeneration: g - 1 } : i;
  });
  return { infos: masked, ackedAt, deadline: oldest + batchMs };
}

/** The handoff memory of every migration in `before` or `after`, new ones starting now. */
export function trackHandoffs(
  prev: Readonly<Record<string, HandoffMemory>>,
  migrations: Iterable<Migration>,
  ackedAt: ReadonlyMap<string, number | null>,
  now: number,
): Map<string, HandoffMemory> {
  const out = new Map<string, HandoffMemory>();
  for (const m of migrations) {
    const k = migrationKey(m.from, m.generation);
    if (out.has(k)) continue;
    const base = prev[k] ?? {
      from: m.from,
      generation: m.generation,
      since: now,
      timedOut: false,
      committed: false,
      ackedAt: null,
    };
    out.set(k, { ...base, ackedAt: ackedAt.get(k) ?? base.ackedAt ?? null });
  }
  return out;
}

/** A committed migration and how it ended. */
export interface Commit {
  readonly m: Migration;
  readonly outcome: "acked" | "fenced";
  readonly durationMs: number;
}

/**
 * Commits of this step (fenced incarnations first, then the planner's), and the metric
 * observations of those not yet observed (marks them committed in `handoffs`).
 */
export function observeCommits(
  fenced: readonly Migration[],
  committed: readonly Migration[],
  acked: ReadonlyMap<string, number>,
  handoffs: Map<string, HandoffMemory>,
  now: number,
): { commits: Commit[]; observed: HandoffObservation[] } {
  const commits: Commit[] = [];
  const observed: HandoffObservation[] = [];
  const all = [...fenced.map((m) => [m, true] as const), ...committed.map((m) => [m, false] as const)];
  for (const [m, isFenced] of all) {
    const k = migrationKey(m.from, m.generation);
    const h = handoffs.get(k)!;
    const outcome = !isFenced && (acked.get(m.from) ?? 0) >= m.generation ? "acked" : "fenced";
    const durationMs = now - h.since;
    commits.push({ m, outcome, durationMs });
    if (!h.committed) {
      const slots = countSlots(m.slots);
      observed.push({ from: m.from, to: m.to, generation: m.generation, slots, durationMs, outcome });
      handoffs.set(k, { ...h, committed: true });
    }
  }
  return { commits, observed };
}

/** Pending handoffs past the timeout (newly late ones marked in `handoffs`), and the next deadline. */
export function handoffTimeouts(
  pending: readonly Migration[],
  handoffs: Map<string, HandoffMemory>,
  now: number,
  timeoutMs: number,
): { late: HandoffMemory[]; newlyLate: Array<{ m: Migration; h: HandoffMemory }>; deadlines: number[] } {
  const late = new Map<string, HandoffMemory>();
  const newlyLate: Array<{ m: Migration; h: HandoffMemory }> = [];
  const deadlines: number[] = [];
  for (const m of pending) {
    const k = migrationKey(m.from, m.generation);
    const h = handoffs.get(k)!;
    if (now - h.since < timeoutMs) {
      deadlines.push(h.since + timeoutMs);
      continue;
    }
    late.set(k, h);
    if (!h.timedOut) {
      handoffs.set(k, { ...h, timedOut: true });
      newlyLate.push({ m, h });
    }
  }
  return { late: [...late.entries()].sort().map(([, h]) => h), newlyLate, deadlines };
}
