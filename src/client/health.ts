import type { Check } from "../kube/ops-server.js";
import type { KubeObjectLike } from "../slots/keys.js";
import type { ShardedController } from "./controller.js";
import type { ShardMember } from "./membership.js";

/**
 * The `/healthz` and `/readyz` checks of a shard, for {@link startOpsServer}:
 *
 * - healthz `member`: fails once the member stopped (the process should be restarted);
 * - readyz `lease`: the shard's Lease is held and renewed (phase `active`);
 * - readyz `informers`: every watched resource was listed once (the controller's `synced`).
 *
 * ```ts
 * const ops = await startOpsServer({ address: ":8080", registry: metrics.registry, ...shardChecks(member, controller) });
 * ```
 */
export function shardChecks(
  member: ShardMember,
  controller?: ShardedController<KubeObjectLike>,
): { healthz: Record<string, Check>; readyz: Record<string, Check> } {
  let synced = false;
  controller?.synced.then(
    () => {
      synced = true;
    },
    () => {}, // a controller that stopped before syncing stays not ready; nothing to report here
  );
  const readyz: Record<string, Check> = {
    lease: () => {
      const phase = member.status().phase;
      return phase === "active" ? undefined : `shard Lease phase is ${phase}`;
    },
  };
  if (controller !== undefined) readyz.informers = () => (synced ? undefined : "watches not synced yet");
  return {
    healthz: { member: () => (member.status().phase === "stopped" ? "stopped" : undefined) },
    readyz,
  };
}
