/**
 * A SlotMap as the CLI reads it: validated with src/api's zod schema (bad fields are errors naming
 * the field), its status decoded into a slot table, and per-shard summaries for display.
 */
import {
  ackedGeneration,
  formatFieldErrors,
  LABEL_SLOTMAP,
  parseShardLeaseAnnotations,
  parseSlotMap,
  type ShardStatus,
  type SlotMap,
  type SlotMapStatus,
  slotTableOf,
} from "../api/index.js";
import { parseProjectionSpec } from "../api/projection.js";
import { isStatus } from "../kube/http.js";
import {
  countSlots,
  emptyTable,
  formatSlotRanges,
  ownedCounts,
  rangesByShard,
  type SlotTable,
} from "../slots/index.js";
import { type CliClient, type KubeObject, notFoundAs } from "./client.js";
import { CliError } from "./io.js";

/** A SlotMap read from the API server. */
export interface LoadedSlotMap {
  /** The object as the server returned it (for `-o json|yaml` and for updates). */
  raw: KubeObject;
  /** The validated object with defaults applied. */
  sm: SlotMap;
  name: string;
  /** `status`, or undefined before the coordinator first wrote one. */
  status: SlotMapStatus | undefined;
  /** The slot table of the status (generation 0, all free, without a status). */
  table: SlotTable;
}

/** Validates a SlotMap object read from the server. */
export function readSlotMap(raw: KubeObject): LoadedSlotMap {
  const name = raw.metadata?.name ?? "?";
  const parsed = parseSlotMap(raw);
  if (!parsed.ok) {
    throw new CliError(`slotmap ${JSON.stringify(name)} is invalid:\n${formatFieldErrors(parsed.errors)}`);
  }
  const sm = parsed.value;
  // The parse checked the status against the slot table's rules and kept the table.
  const table = sm.status === undefined ? emptyTable() : slotTableOf(sm.status);
  return { raw, sm, name: sm.metadata.name, status: sm.status, table };
}

/** Fetches and validates one SlotMap; a 404 becomes `slotmap "x" not found`. */
export async function fetchSlotMap(client: CliClient, name: string): Promise<LoadedSlotMap> {
  let raw: KubeObject;
  try {
    raw = await client.getSlotMap(name);
  } catch (err) {
    notFoundAs(err, `slotmap ${JSON.stringify(name)}`);
  }
  return readSlotMap(raw);
}

/** What a shard's Lease says: the status no longer copies acks (they live in the Leases). */
export interface ShardLeaseView {
  /** `spec.holderIdentity` now ("" when released). */
  holder: string;
  /** The generation acknowledged for this SlotMap instance, or undefined. */
  acked: number | undefined;
  /** The weight annotation (default 1). */
  weight: number;
  /**
   * The generation it must acknowledge: its SlotMapShard projection's, where its part of the table
   * last changed (undefined when the projection is absent or unreadable).
   */
  due: number | undefined;
  /** Malformed annotations, as "field: message". */
  warnings: string[];
}

/** Leases of a SlotMap by shard name; `forbidden` when the caller may not list them. */
export interface ShardLeases {
  byName: Map<string, ShardLeaseView>;
  forbidden: boolean;
}

/** Reads the shard Leases of a SlotMap (label slotmap.dev/slotmap=<name> in its lease namespace). */
export async function fetchShardLeases(client: CliClient, l: LoadedSlotMap): Promise<ShardLeases> {
  const byName = new Map<string, ShardLeaseView>();
  let leases: KubeObject[];
  try {
    leases = await client.listLeases(l.sm.spec.leaseNamespace, `${LABEL_SLOTMAP}=${l.name}`);
  } catch (err) {
    if (!isStatus(err, 403)) throw err;
    return { byName, forbidden: true };
  }
  const uid = l.sm.metadata.uid;
  const due = await fetchDue(client, l);
  for (const lease of leases) {
    const name = lease.metadata?.name;
    if (name === undefined) continue;
    const parsed = parseShardLeaseAnnotations(lease.metadata?.annotations);
    const spec = (lease as { spec?: { holderIdentity?: string | null } }).spec;
    const acked = parsed.observedGeneration !== undefined ? ackedGeneration(parsed, uid) : undefined;
    byName.set(name, {
      holder: spec?.holderIdentity ?? "",
      acked: acked === 0 && parsed.slotmapUid !== uid ? undefined : acked,
      weight: parsed.weight,
      due: due.get(name),
      warnings: parsed.errors.map((e) => `${e.field}: ${e.message}`),
    });
  }
  return { byName, forbidden: false };
}

/** Each shard's projected generation (its SlotMapShard of this SlotMap instance); empty when unreadable. */
async function fetchDue(client: CliClient, l: LoadedSlotMap): Promise<Map<string, number>> {
  const due = new Map<string, number>();
  let projections: KubeObject[];
  try {
    projections = await client.listProjections(l.sm.spec.leaseNamespace, `${LABEL_SLOTMAP}=${l.name}`);
  } catch (err) {
    if (isStatus(err, 403) || isStatus(err, 404)) return due; // no RBAC, or a coordinator before projections
    throw err;
  }
  for (const p of projections) {
    const spec = parseProjectionSpec(p.spec);
    if (spec.ok && spec.value.slotMapUid === l.sm.metadata.uid)
      due.set(spec.value.shard, spec.value.assignmentGeneration);
  }
  return due;
}

/** A status entry's state: the coordinator omits it for Ready shards. */
export function shardState(s: Pick<ShardStatus, "state">): NonNullable<ShardStatus["state"]> {
  return s.state ?? "Ready";
}

/** One shard as `get` shows it. */
export interface ShardSummary {
  name: string;
  state: NonNullable<ShardStatus["state"]> | "Unknown";
  /** Slots owned. */
  slots: number;
  /** Owned ranges, canonical. */
  ranges: string;
  /** The generation the shard acknowledged (from its Lease; undefined without one or unread). */
  observedGeneration: number | undefined;
  /** The generation it must acknowledge (its projection's, else the table's). */
  due: number;
  /** Whether it acknowledged {@link due}. */
  acked: boolean;
  /** Slots leaving this shard (it must ack before they move on). */
  migratingOut: number;
  /** Slots coming to this shard. */
  migratingIn: number;
  /** The holder the status grants the slots to. */
  holderIdentity: string | undefined;
  /** The Lease's holder now, when the Leases were read. */
  leaseHolder: string | undefined;
}

/** Per-shard summary of a SlotMap's status, in status order (shards named only by migrations last). */
export function summarizeShards(
  loaded: LoadedSlotMap,
  leases: ReadonlyMap<string, ShardLeaseView> = new Map(),
): ShardSummary[] {
  const { table } = loaded;
  const counts = ownedCounts(table);
  const ranges = rangesByShard(table);
  const statusShards = loaded.status?.shards ?? [];
  const names = [...statusShards.map((s) => s.name), ...table.shards];
  const seen = new Set<string>();
  const out: ShardSummary[] = [];
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    const st = statusShards.find((s) => s.name === name);
    let out_ = 0;
    let in_ = 0;
    for (const m of table.migrations) {
      if (m.from === name) out_ += countSlots(m.slots);
      if (m.to === name) in_ += countSlots(m.slots);
    }
    const lease = leases.get(name);
    out.push({
      name,
      state: st !== undefined ? shardState(st) : "Unknown",
      slots: counts.get(name) ?? 0,
      ranges: formatSlotRanges(ranges.get(name) ?? []),
      observedGeneration: lease?.acked,
      due: lease?.due ?? table.generation,
      acked: lease?.acked !== undefined && lease.acked >= (lease.due ?? table.generation),
      migratingOut: out_,
      migratingIn: in_,
      holderIdentity: st?.holderIdentity,
      leaseHolder: lease?.holder,
    });
  }
  return out;
}
