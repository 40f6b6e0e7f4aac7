/**
 * Exponential backoff, in one place (the coordinator's retries, the reflector's re-lists, the
 * shard's rule resolution, the work queue's failed keys): `baseMs · 2^attempt`, at most `maxMs`.
 * `attempt` counts from 0 (the first retry waits `baseMs`).
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  // The exponent is capped only so that huge attempt counts stay finite before the min.
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 52));
}
