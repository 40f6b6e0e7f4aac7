/**
 * A shard's reading of its `SlotMapShard` projection (src/api/projection.ts): the machine input it
 * makes and the slots migrating towards the shard. Pure; membership.ts and the simulator both use
 * it, so the simulator exercises the same reading as production.
 */
import { formatFieldErrors } from "../../api/errors.js";
import { parseProjectionSpec, viewOfProjection } from "../../api/projection.js";
import type { SlotRange } from "../../slots/types.js";
import { importingSlots } from "./runtime.js";
import type { ShardInput } from "./types.js";

/** What a projection tells the shard, or why it is ignored. */
export type ProjectionReading =
  | {
      readonly ok: true;
      /** Feed to the machine. */
      readonly input: Extract<ShardInput, { type: "slotMapObserved" }>;
      /** Report to the runtime after the machine's gains (a committed slot is gained first). */
      readonly importing: SlotRange[];
    }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads an observed projection. A malformed one, or one for another SlotMap or shard, is ignored
 * (keeping the table applied is safe: slots leave a live shard only after its ack). Its
 * `resourceVersion` is what tells the machine a projection that went down (restored from a
 * backup) from a stale one, and what fencing tokens are built on.
 */
export function readProjection(
  obj: { readonly spec: unknown; readonly resourceVersion: string | undefined },
  at: {
    readonly now: number;
    readonly slotMap: string;
    readonly shard: string;
    readonly handoffTimeoutSeconds?: number | undefined;
  },
): ProjectionReading {
  const parsed = parseProjectionSpec(obj.spec);
  if (!parsed.ok) return { ok: false, reason: `invalid projection:\n${formatFieldErrors(parsed.errors)}` };
  const spec = parsed.value;
  if (spec.slotMap !== at.slotMap || spec.shard !== at.shard) {
    return {
      ok: false,
      reason: `projection for SlotMap ${spec.slotMap} shard ${spec.shard}, not ${at.slotMap} shard ${at.shard}`,
    };
  }
  const view = viewOfProjection(spec);
  return {
    ok: true,
    input: {
      type: "slotMapObserved",
      now: at.now,
      uid: spec.slotMapUid,
      status: view,
      resourceVersion: obj.resourceVersion,
      ...(at.handoffTimeoutSeconds !== undefined ? { handoffTimeoutSeconds: at.handoffTimeoutSeconds } : {}),
    },
    importing: importingSlots(view, at.shard),
  };
}
