/**
 * `kubectl slotmap drain <shard> --slotmap NAME`: gives the shard a weight of 0 and waits until
 * the coordinator has moved all its slots away.
 *
 * The weight goes into `spec.weights` of the SlotMap by default: it overrides the Lease
 * annotation (see effectiveWeight in src/api/lease.ts), and it survives the shard's pod and Lease
 * being recreated. `--via lease` sets the Lease's `slotmap.dev/weight` annotation instead (for
 * users who may update Leases but not SlotMaps). Both writes are resourceVersion-preconditioned
 * updates: a concurrent change makes the API server answer 409, and we re-read and retry rather
 * than overwrite it.
 */
import { ANNOTATION_WEIGHT } from "../../api/index.js";
import { isStatus, type KubeObject } from "../../kube/http.js";
import { countSlots } from "../../slots/index.js";
import { notFoundAs } from "../client.js";
import type { CommandContext } from "../context.js";
import { checkName, formatDuration } from "../format.js";
import { CliError } from "../io.js";
import { fetchSlotMap, type LoadedSlotMap, readSlotMap, shardState } from "../model.js";
import { type DrainProgress, ProgressReporter } from "../progress.js";

/** Where the weight 0 is written. */
export type DrainVia = "spec" | "lease";

/** Options of `drain`. */
export interface DrainOptions {
  slotmap: string;
  via: DrainVia;
  /** Milliseconds; 0 waits forever. */
  timeoutMs: number;
  wait: boolean;
  /** Poll interval in milliseconds. */
  intervalMs: number;
}

const CONFLICT_RETRIES = 5;

/** What is left to drain on `shard`: slots it owns plus slots migrating away from it. */
export function drainProgress(l: LoadedSlotMap, shard: string): DrainProgress {
  const idx = l.table.shards.indexOf(shard);
  let owned = 0;
  if (idx >= 0) for (const o of l.table.owner) if (o === idx) owned++;
  const migrating = l.table.migrations
    .filter((m) => m.from === shard)
    .reduce((n, m) => n + countSlots(m.slots), 0);
  return { remaining: owned + migrating, migrating, generation: l.table.generation };
}

/** Sets `spec.weights[shard] = 0`; returns the SlotMap's new metadata.generation. */
async function setSpecWeight(
  ctx: CommandContext,
  smName: string,
  shard: string,
): Promise<number | undefined> {
  const client = ctx.client();
  for (let attempt = 1; ; attempt++) {
    let raw: KubeObject;
    try {
      raw = await client.getSlotMap(smName);
    } catch (err) {
      notFoundAs(err, `slotmap ${JSON.stringify(smName)}`);
    }
    const spec = (raw.spec ?? {}) as { weights?: Record<string, number> };
    if (spec.weights?.[shard] === 0) {
      ctx.io.stderr.write(`spec.weights["${shard}"] of slotmap ${smName} is already 0\n`);
      return raw.metadata?.generation;
    }
    // A merge patch of the one weight, conditional on the version read (the check above).
    const patch: KubeObject = {
      metadata: { resourceVersion: raw.metadata?.resourceVersion },
      spec: { weights: { [shard]: 0 } },
    };
    try {
      const res = await client.patchSlotMap(smName, patch);
      ctx.io.stderr.write(`slotmap ${smName}: spec.weights["${shard}"] set to 0\n`);
      return res.metadata?.generation;
    } catch (err) {
      if (!isStatus(err, 409) || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

/** Sets the shard Lease's weight annotation to "0". */
async function setLeaseWeight(ctx: CommandContext, l: LoadedSlotMap, shard: string): Promise<void> {
  const override = l.sm.spec.weights?.[shard];
  if (override !== undefined) {
    throw new CliError(
      `slotmap ${l.name} has spec.weights["${shard}"] = ${override}, which overrides the Lease annotation; drain with --via spec, or remove that entry`,
    );
  }
  const client = ctx.client();
  const ns = l.sm.spec.leaseNamespace;
  for (let attempt = 1; ; attempt++) {
    let lease: KubeObject;
    try {
      lease = await client.getLease(ns, shard);
    } catch (err) {
      notFoundAs(err, `lease ${ns}/${shard}`);
    }
    const annotations = lease.metadata?.annotations ?? {};
    if (annotations[ANNOTATION_WEIGHT] === "0") {
      ctx.io.stderr.write(`lease ${ns}/${shard}: ${ANNOTATION_WEIGHT} is already "0"\n`);
      return;
    }
    const patch: KubeObject = {
      metadata: {
        resourceVersion: lease.metadata?.resourceVersion,
        annotations: { [ANNOTATION_WEIGHT]: "0" },
      },
    };
    try {
      await client.patchLease(ns, shard, patch);
      ctx.io.stderr.write(`lease ${ns}/${shard}: ${ANNOTATION_WEIGHT} set to "0"\n`);
      return;
    } catch (err) {
      if (!isStatus(err, 409) || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

/** Runs `drain`. */
export async function runDrain(ctx: CommandContext, shardArg: string, opts: DrainOptions): Promise<void> {
  const shard = checkName(shardArg, "<shard>");
  const smName = checkName(opts.slotmap, "--slotmap");
  const { io } = ctx;
  const client = ctx.client();
  const l = await fetchSlotMap(client, smName);
  const known = (l.status?.shards ?? []).map((s) => s.name);
  if (!known.includes(shard) && !l.table.shards.includes(shard)) {
    throw new CliError(
      `shard ${JSON.stringify(shard)} is not in slotmap ${smName} (shards: ${known.join(", ") || "none"})`,
    );
  }
  const others = (l.status?.shards ?? []).filter((s) => s.name !== shard && shardState(s) === "Ready");
  if (others.length === 0) {
    io.stderr.write(
      `warning: no other shard of slotmap ${smName} is Ready: the slots cannot move until one is\n`,
    );
  }

  let minObserved: number | undefined;
  if (opts.via === "spec") minObserved = await setSpecWeight(ctx, smName, shard);
  else await setLeaseWeight(ctx, l, shard);
  if (!opts.wait) return;

  const started = io.now();
  const progress = new ProgressReporter(io.stderr, shard);
  try {
    for (;;) {
      const cur = readSlotMap(await client.getSlotMap(smName));
      const p = drainProgress(cur, shard);
      progress.update(p);
      // With --via spec, the status must come from a coordinator that has seen the new weight.
      const seen = minObserved === undefined || (cur.status?.observedGeneration ?? 0) >= minObserved;
      if (p.remaining === 0 && seen) {
        progress.finish();
        io.stdout.write(
          `shard ${shard} drained: it owns no slots of slotmap ${smName} (generation ${p.generation})\n`,
        );
        return;
      }
      const elapsed = io.now() - started;
      if (opts.timeoutMs > 0 && elapsed >= opts.timeoutMs) {
        progress.finish();
        throw new CliError(
          `timed out after ${formatDuration(elapsed)} waiting for shard ${shard} to drain: ${p.remaining} slots left (${p.migrating} migrating)${
            seen
              ? ""
              : `; the coordinator has not processed generation ${minObserved} of the spec yet (is it running?)`
          }`,
        );
      }
      await io.sleep(opts.intervalMs);
    }
  } catch (err) {
    progress.finish();
    if (err instanceof CliError) throw err;
    if (isStatus(err, 404))
      throw new CliError(`slotmap ${JSON.stringify(smName)} was deleted while draining`);
    throw err;
  }
}
