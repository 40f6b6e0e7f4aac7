/**
 * Building the SlotMap status and its conditions, and comparing statuses so that the coordinator
 * writes only when something changed.
 */
import {
  CONDITION_BALANCED,
  CONDITION_PROGRESSING,
  CONDITION_READY,
  type Condition,
} from "../../api/v1alpha1.js";
import { CoordinatorInputError } from "./types.js";

/** The three condition types the coordinator owns, in the order it writes them. */
export const OWN_CONDITIONS: readonly string[] = [CONDITION_READY, CONDITION_BALANCED, CONDITION_PROGRESSING];

/** The wanted state of one condition; `lastTransitionTime` is derived. */
export interface ConditionWant {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Parses the step's wall-clock input. @throws CoordinatorInputError on anything but RFC 3339. */
export function parseWallTime(wallTime: unknown): Date {
  if (typeof wallTime !== "string" || !RFC3339.test(wallTime) || !Number.isFinite(Date.parse(wallTime))) {
    throw new CoordinatorInputError("wallTime", wallTime, "expected an RFC 3339 date-time");
  }
  return new Date(wallTime);
}

/** metav1.Time: RFC 3339 in UTC with whole seconds, as the API server writes it. */
export function metaTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The longest condition message written (the schema allows 32768; a few lines are enough). */
const MAX_MESSAGE = 1024;

/** Caps a message so that a status never grows with the size of a problem. */
export function capMessage(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE - 1)}…`;
}

/**
 * Merges wanted conditions into the observed list (metav1 conventions): `lastTransitionTime` only
 * changes when `status` changes; reason, message and observedGeneration follow the wanted state.
 * Own conditions come first in {@link OWN_CONDITIONS} order; conditions of other types are kept
 * after them in their observed order.
 */
export function mergeConditions(
  observed: readonly Condition[],
  wanted: readonly ConditionWant[],
  observedGeneration: number | undefined,
  now: string,
): Condition[] {
  const byType = new Map(observed.map((c) => [c.type, c]));
  const out: Condition[] = [];
  for (const w of wanted) {
    const old = byType.get(w.type);
    const c: Condition = {
      type: w.type,
      status: w.status,
      lastTransitionTime: old !== undefined && old.status === w.status ? old.lastTransitionTime : now,
      reason: w.reason,
      message: capMessage(w.message),
    };
    if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
    out.push(c);
  }
  const wantedTypes = new Set(wanted.map((w) => w.type));
  for (const c of observed) if (!wantedTypes.has(c.type)) out.push(c);
  return out;
}

/** Lists names for a message: at most `max`, then "and N more". */
export function nameList(names: readonly string[], max = 5): string {
  if (names.length <= max) return names.join(", ");
  return `${names.slice(0, max).join(", ")} and ${names.length - max} more`;
}

/**
 * Structural equality of JSON-like values where an absent key equals a key set to `undefined`
 * (zod output and hand-built objects differ in that only).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const k of keys) if (!jsonEqual(x[k], y[k])) return false;
  return true;
}
