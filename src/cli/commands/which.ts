/**
 * `kubectl slotmap which <resource> <name>`: fetches a live object, computes its sharding key by
 * the SlotMap's rules (root or controlled resource, hash-key annotation, namespaceSelector) and
 * prints its slot and the shard that owns it, or the migration it is in.
 */
import type { ShardStatus } from "../../api/index.js";
import { selectorIsEmpty, selectorMatches } from "../../api/selector.js";
import {
  KeyError,
  keySlot,
  migrationOf,
  ownerOf,
  type ShardingKey,
  shardingKey,
  xxh64Hex,
} from "../../slots/index.js";
import type { ApiResourceInfo, KubeObject } from "../client.js";
import { notFoundAs } from "../client.js";
import type { CommandContext } from "../context.js";
import { checkName, checkNamespace, type OutputFormat, writeStructured } from "../format.js";
import { CliError, UsageError } from "../io.js";
import { fetchShardLeases, fetchSlotMap, type LoadedSlotMap, readSlotMap, shardState } from "../model.js";

/** Options of `which`. */
export interface WhichOptions {
  output?: OutputFormat | undefined;
  slotmap?: string | undefined;
}

/** Where one object lands in one SlotMap. */
export interface Placement {
  slotmap: string;
  assignmentGeneration: number;
  /** How the SlotMap lists the resource. */
  role: "root" | "controlled" | "unlisted";
  sharded: boolean;
  /** Why it is not sharded (sharded false). */
  reason?: string;
  key?: string;
  via?: "hash-key" | "controller" | "self";
  slot?: number;
  xxh64?: string;
  /** Owning shard, absent when the slot is migrating or unassigned. */
  owner?: string;
  ownerState?: NonNullable<ShardStatus["state"]> | "Unknown";
  migration?: { from: string; to: string; generation: number };
}

/** The role of a resource in a SlotMap's spec. */
export function roleOf(l: LoadedSlotMap, group: string, resource: string): Placement["role"] {
  for (const r of l.sm.spec.resources) {
    if (r.group === group && r.resource === resource) return "root";
    if ((r.controlledResources ?? []).some((c) => c.group === group && c.resource === resource)) {
      return "controlled";
    }
  }
  return "unlisted";
}

/**
 * Places `obj` (of resource `res`) in SlotMap `l`. `namespaceLabels` are the labels of the
 * object's namespace (needed only when the SlotMap has a namespaceSelector and the object is
 * namespaced).
 *
 * @throws KeyError when the object's sharding key cannot be determined.
 */
export function placeObject(
  l: LoadedSlotMap,
  res: Pick<ApiResourceInfo, "group" | "resource" | "namespaced">,
  obj: KubeObject,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): Placement {
  const base = { slotmap: l.name, assignmentGeneration: l.table.generation };
  const role = roleOf(l, res.group, res.resource);
  const gr = res.group === "" ? res.resource : `${res.resource}.${res.group}`;
  if (role === "unlisted") {
    return { ...base, role, sharded: false, reason: `${gr} is not listed in spec.resources` };
  }
  const sel = l.sm.spec.namespaceSelector;
  if (
    res.namespaced &&
    sel !== undefined &&
    !selectorIsEmpty(sel) &&
    !selectorMatches(sel, namespaceLabels ?? {})
  ) {
    return {
      ...base,
      role,
      sharded: false,
      reason: `namespace ${JSON.stringify(obj.metadata?.namespace)} does not match spec.namespaceSelector`,
    };
  }
  const k: ShardingKey = shardingKey(obj as Parameters<typeof shardingKey>[0], {
    controlled: role === "controlled",
  });
  if (!k.sharded) return { ...base, role, sharded: false, reason: k.reason };
  const slot = keySlot(k.key);
  const p: Placement = { ...base, role, sharded: true, key: k.key, via: k.via, slot, xxh64: xxh64Hex(k.key) };
  const owner = ownerOf(l.table, slot);
  if (owner !== undefined) {
    p.owner = owner;
    const entry = l.status?.shards.find((s) => s.name === owner);
    p.ownerState = entry !== undefined ? shardState(entry) : "Unknown";
  }
  const m = migrationOf(l.table, slot);
  if (m !== undefined) p.migration = { from: m.from, to: m.to, generation: m.generation };
  return p;
}

const VIA: Record<NonNullable<Placement["via"]>, string> = {
  self: "the object's own key",
  controller: "its controller owner's key, as a controlled resource",
  "hash-key": "its slotmap.dev/hash-key annotation",
};

/** Text lines describing a placement. */
export function describePlacement(p: Placement, acks: ReadonlyMap<string, number | undefined>): string[] {
  const lines = [`SlotMap:  ${p.slotmap} (assignment generation ${p.assignmentGeneration})`];
  if (!p.sharded) {
    lines.push(`Sharded:  no: ${p.reason}`);
    return lines;
  }
  lines.push(`Key:      ${JSON.stringify(p.key)} (${VIA[p.via ?? "self"]})`);
  lines.push(`Slot:     ${p.slot} (xxh64 ${p.xxh64})`);
  if (p.owner !== undefined) {
    lines.push(`Owner:    ${p.owner} (${p.ownerState})`);
  } else if (p.migration !== undefined) {
    const m = p.migration;
    const ack = acks.get(m.from);
    const wait =
      ack !== undefined && ack >= m.generation
        ? `${m.from} acked; joins ${m.to} in the next generation`
        : `waiting for ${m.from} to ack generation ${m.generation}`;
    lines.push(`Owner:    none: migrating ${m.from} → ${m.to}, ${wait}`);
  } else {
    lines.push("Owner:    none: unassigned (no Ready shard can take it)");
  }
  return lines;
}

/** Runs `which`. */
export async function runWhich(
  ctx: CommandContext,
  resourceArg: string,
  nameArg: string,
  opts: WhichOptions,
): Promise<void> {
  const client = ctx.client();
  if (resourceArg === "" || resourceArg.includes("/")) {
    throw new UsageError(
      `<resource> ${JSON.stringify(resourceArg)}: expected a resource type such as secrets, cm or deployments.apps`,
    );
  }
  const name = checkName(nameArg, "<name>");
  const smName = opts.slotmap === undefined ? undefined : checkName(opts.slotmap, "--slotmap");
  const res = await client.resolveResource(resourceArg);
  if (res === undefined) {
    throw new CliError(`the server doesn't have a resource type ${JSON.stringify(resourceArg)}`);
  }
  const gr = res.group === "" ? res.resource : `${res.resource}.${res.group}`;
  const namespace = res.namespaced ? checkNamespace(ctx.namespace()) : undefined;

  let obj: KubeObject;
  try {
    obj = await client.getObject(res, namespace, name);
  } catch (err) {
    notFoundAs(
      err,
      `${gr} ${JSON.stringify(name)}${namespace ? ` in namespace ${JSON.stringify(namespace)}` : ""}`,
    );
  }

  let maps: LoadedSlotMap[];
  if (smName !== undefined) {
    maps = [await fetchSlotMap(client, smName)];
  } else {
    const all = (await client.listSlotMaps()).map(readSlotMap);
    maps = all.filter((l) => roleOf(l, res.group, res.resource) !== "unlisted");
    if (maps.length === 0) {
      throw new CliError(
        `no SlotMap shards ${gr}: none lists it in spec.resources (${all.length} SlotMap${all.length === 1 ? "" : "s"} checked${all.length === 0 ? "" : `: ${all.map((l) => l.name).join(", ")}`})`,
      );
    }
  }

  let nsLabels: Record<string, string> | undefined;
  // Read the namespace only when a selector needs its labels (it may need extra permissions).
  if (namespace !== undefined && maps.some((l) => !selectorIsEmpty(l.sm.spec.namespaceSelector))) {
    const ns = await client.getNamespace(namespace);
    nsLabels = ns.metadata?.labels ?? {};
  }
  const placements = maps.map((l) => {
    try {
      return placeObject(l, res, obj, nsLabels);
    } catch (err) {
      if (err instanceof KeyError) {
        throw new CliError(
          `cannot compute the sharding key of ${gr} ${JSON.stringify(name)}: ${err.message}`,
        );
      }
      throw err;
    }
  });

  const object = {
    group: res.group,
    version: res.version,
    resource: res.resource,
    kind: res.kind,
    namespace,
    name,
  };
  if (opts.output !== undefined) {
    writeStructured(ctx.io.stdout, opts.output, { object, placements });
    return;
  }
  const lines = [`Object:   ${gr}/${name}${namespace ? ` in namespace ${namespace}` : ""}`];
  for (const [i, p] of placements.entries()) {
    const l = maps[i]!;
    const leases = await fetchShardLeases(client, l);
    const acks = new Map([...leases.byName].map(([n, v]) => [n, v.acked]));
    lines.push(...describePlacement(p, acks));
  }
  ctx.io.stdout.write(`${lines.join("\n")}\n`);
}
