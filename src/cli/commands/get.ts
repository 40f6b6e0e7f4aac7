/** `kubectl slotmap get [slotmap]`: list SlotMaps, or show one SlotMap's table in detail. */

import { CRD_NAME } from "../../api/index.js";
import { countSlots, formatSlotRanges } from "../../slots/index.js";
import type { CommandContext } from "../context.js";
import { ageOf, checkName, type ListFormat, table, writeStructured } from "../format.js";
import { CliError } from "../io.js";
import {
  fetchShardLeases,
  fetchSlotMap,
  type LoadedSlotMap,
  readSlotMap,
  type ShardLeases,
  summarizeShards,
} from "../model.js";

/** Options of `get`. */
export interface GetOptions {
  /** json, yaml, `name` (`slotmap.slotmap.dev/<name>` per line) or `wide` (more columns). */
  output?: ListFormat | undefined;
}

/** `kubectl get -o name`'s form of a SlotMap. */
const resourceName = (name: string | undefined): string =>
  `${CRD_NAME.replace(/^slotmaps\./, "slotmap.")}/${name ?? "?"}`;

function conditionStatus(l: LoadedSlotMap, type: string): string {
  return l.status?.conditions.find((c) => c.type === type)?.status ?? "-";
}

/** Lists every SlotMap (printer columns) or describes one. */
export async function runGet(ctx: CommandContext, name: string | undefined, opts: GetOptions): Promise<void> {
  const { io } = ctx;
  if (name === undefined) {
    const items = await ctx.client().listSlotMaps();
    if (opts.output === "name") {
      for (const raw of items) io.stdout.write(`${resourceName(raw.metadata?.name)}\n`);
      return;
    }
    if (opts.output === "json" || opts.output === "yaml") {
      writeStructured(io.stdout, opts.output, { apiVersion: "v1", kind: "List", items });
      return;
    }
    const wide = opts.output === "wide";
    if (items.length === 0) {
      io.stderr.write("No SlotMaps found.\n");
      return;
    }
    const now = io.now();
    const rows = items.map((raw) => {
      let l: LoadedSlotMap;
      try {
        l = readSlotMap(raw);
      } catch (err) {
        // One bad SlotMap must not hide the others: show its row, explain on stderr.
        if (!(err instanceof CliError)) throw err;
        io.stderr.write(`warning: ${err.message}\n`);
        const name = raw.metadata?.name ?? "?";
        const row = [name, "?", "?", "?", "?", "?", ageOf(raw.metadata?.creationTimestamp, now)];
        return wide ? [...row, "?", "?"] : row;
      }
      const shards = summarizeShards(l);
      const migrating = l.table.migrations.reduce((n, m) => n + countSlots(m.slots), 0);
      const row = [
        l.name,
        String(l.status?.shards.length ?? 0),
        String(shards.filter((s) => s.state === "Ready").length),
        String(l.table.generation),
        String(migrating),
        conditionStatus(l, "Balanced"),
        ageOf(raw.metadata?.creationTimestamp, now),
      ];
      if (!wide) return row;
      const resources = l.sm.spec.resources.map((r) =>
        r.group === "" ? r.resource : `${r.resource}.${r.group}`,
      );
      return [...row, l.sm.spec.leaseNamespace, resources.join(",")];
    });
    const header = ["NAME", "SHARDS", "READY", "GENERATION", "MIGRATING", "BALANCED", "AGE"];
    io.stdout.write(table(wide ? [...header, "LEASE-NAMESPACE", "RESOURCES"] : header, rows));
    return;
  }

  const l = await fetchSlotMap(ctx.client(), checkName(name, "slotmap"));
  if (opts.output === "name") {
    io.stdout.write(`${resourceName(l.name)}\n`);
    return;
  }
  if (opts.output === "json" || opts.output === "yaml") {
    writeStructured(io.stdout, opts.output, l.raw);
    return;
  }
  io.stdout.write(describeSlotMap(l, io.now(), await fetchShardLeases(ctx.client(), l)));
}

/** The Lease holder, and the granted one when they differ (a new incarnation waiting). */
function holderColumn(s: { holderIdentity: string | undefined; leaseHolder: string | undefined }): string {
  const lease = s.leaseHolder ?? s.holderIdentity ?? "-";
  if (s.holderIdentity === undefined || s.leaseHolder === undefined || s.leaseHolder === s.holderIdentity) {
    return lease || "(released)";
  }
  return `${lease || "(released)"} (slots granted to ${s.holderIdentity})`;
}

/** The human-readable description of one SlotMap (what `get NAME` prints). */
export function describeSlotMap(
  l: LoadedSlotMap,
  now: number,
  leases: ShardLeases = { byName: new Map(), forbidden: false },
): string {
  const { table: t, status, sm } = l;
  const lines: string[] = [];
  const owned = t.owner.reduce((n, o) => (o === 0xffff ? n : n + 1), 0);
  const migrating = t.migrations.reduce((n, m) => n + countSlots(m.slots), 0);
  lines.push(`Name:                  ${l.name}`);
  lines.push(`Lease namespace:       ${sm.spec.leaseNamespace}`);
  lines.push(
    `Resources:             ${sm.spec.resources
      .map((r) => {
        const own = r.group === "" ? r.resource : `${r.resource}.${r.group}`;
        const ctl = (r.controlledResources ?? []).map((c) =>
          c.group === "" ? c.resource : `${c.resource}.${c.group}`,
        );
        return ctl.length > 0 ? `${own} (+ ${ctl.join(", ")})` : own;
      })
      .join(", ")}`,
  );
  const weights = Object.entries(sm.spec.weights ?? {});
  if (weights.length > 0)
    lines.push(`Weights (spec):        ${weights.map(([k, v]) => `${k}=${v}`).join(", ")}`);
  if (status === undefined) {
    lines.push("Status:                none yet (no coordinator has processed this SlotMap)");
    return `${lines.join("\n")}\n`;
  }
  const specGen = sm.metadata.generation;
  const observed = status.observedGeneration;
  lines.push(
    `Assignment generation: ${t.generation}${specGen !== undefined ? `   (spec generation ${specGen}, observed ${observed ?? "-"})` : ""}`,
  );
  lines.push(
    `Slots:                 ${owned} owned, ${migrating} migrating, ${16384 - owned - migrating} unassigned`,
  );
  if (status.unassignedSlots !== "") lines.push(`Unassigned:            ${status.unassignedSlots}`);
  lines.push("");

  const shards = summarizeShards(l, leases.byName);
  if (leases.forbidden) lines.push("(cannot list the shard Leases: acks and holders unknown)");
  if (shards.length === 0) {
    lines.push("No shards.");
  } else {
    const rows = shards.map((s) => [
      s.name,
      s.state,
      String(s.slots),
      s.ranges || "-",
      `${s.observedGeneration ?? "-"}/${s.due}${s.acked ? "" : " (behind)"}`,
      s.migratingOut > 0 ? `-${s.migratingOut}` : s.migratingIn > 0 ? `+${s.migratingIn}` : "",
      holderColumn(s),
    ]);
    lines.push(table(["SHARD", "STATE", "SLOTS", "RANGES", "ACK", "MIGRATING", "HOLDER"], rows).trimEnd());
  }

  if (t.migrations.length > 0) {
    lines.push("");
    const acks = new Map(shards.map((s) => [s.name, s.observedGeneration]));
    const rows = t.migrations.map((m) => {
      const ack = acks.get(m.from);
      const state =
        ack !== undefined && ack >= m.generation
          ? `acked by ${m.from}: joins ${m.to} next generation`
          : `waiting for ${m.from} to ack ${m.generation} (acked ${ack ?? "nothing"})`;
      return [
        `${m.from} → ${m.to}`,
        String(countSlots(m.slots)),
        formatSlotRanges(m.slots),
        String(m.generation),
        state,
      ];
    });
    lines.push(table(["MIGRATION", "SLOTS", "RANGES", "GENERATION", "STATUS"], rows).trimEnd());
  }

  if (status.conditions.length > 0) {
    lines.push("");
    const rows = status.conditions.map((c) => [
      c.type,
      c.status,
      c.reason,
      ageOf(c.lastTransitionTime, now),
      c.message,
    ]);
    lines.push(table(["CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"], rows).trimEnd());
  }
  return `${lines.join("\n")}\n`;
}
