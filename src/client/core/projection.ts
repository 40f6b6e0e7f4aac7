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
 * Reads an observed projection. A malformed one, or one for another SlotMap, instance or shard, is ignored
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
    /**
     * `metadata.uid` of the SlotMap as its own watch shows it now (undefined: not seen yet, or
     * deleted). A projection of another instance is ignored: its uid is data a backup can put
     * back, and the machine would take it for a re-creation and retire the current instance.
     */
    readonly slotMapUid: string | undefined;
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
  if (spec.slotMapUid !== at.slotMapUid) {
    return {
      ok: false,
      reason:
        at.slotMapUid === undefined
          ? `projection of SlotMap uid ${spec.slotMapUid}, and the SlotMap is not seen (yet, or deleted)`
          : `projection of SlotMap uid ${spec.slotMapUid}, not of the current instance ${at.slotMapUid} (restored from a backup?)`,
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
