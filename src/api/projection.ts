/**
 * `SlotMapShard`: one shard's projection of its SlotMap's status (docs/design-decisions.md
 * "Per-shard projections"). The coordinator writes it after a status write its step accepted, and
 * only when what the shard reads changed; the shard watches its own and nothing of the others', so
 * a join costs each uninvolved shard nothing and watch traffic grows with the shard count, not its
 * square. The SlotMap status stays the single source of truth (and what `kubectl get sm` shows).
 *
 * Pure: no I/O. The coordinator core builds projections with {@link projectStatus}; the shard's
 * I/O layer turns one back into the status view its machine applies with {@link viewOfProjection}.
 */
import { z } from "zod";
import {
  GROUP,
  LIMITS,
  MigrationStatusSchema,
  type ParseResult,
  parseWith,
  shardName,
  slotRangesString,
} from "./v1alpha1.js";

/** Kind of the per-shard projection. */
export const PROJECTION_KIND = "SlotMapShard";
/** Resource (plural) of the per-shard projection. */
export const PROJECTION_PLURAL = "slotmapshards";
/** Name of the projection CRD. */
export const PROJECTION_CRD_NAME = `${PROJECTION_PLURAL}.${GROUP}`;

/** The shard's row of `status.shards`, without its `state` (a Lease state change moves nothing). */
export const ProjectedEntrySchema = z.object({
  slots: slotRangesString(LIMITS.shardSlotsLength).default(""),
  holderIdentity: z.string().max(LIMITS.holderIdentityLength).optional(),
});

/** `spec` of a SlotMapShard: what one shard reads of the status, and nothing else. */
export const ProjectionSpecSchema = z
  .object({
    slotMap: z.string().min(1).max(253).describe("Name of the SlotMap projected."),
    slotMapUid: z.string().min(1).max(128).describe("metadata.uid of the SlotMap projected."),
    shard: shardName().describe("The shard (its Lease name) this projection is for."),
    assignmentGeneration: z
      .int()
      .min(0)
      .describe("status.assignmentGeneration of the status projected when this content last changed."),
    rulesFingerprint: z
      .string()
      .regex(/^[0-9a-f]{16}$/, { error: "must be 16 lowercase hex digits" })
      .optional(),
    drainBarrier: z.boolean().describe("The table assigns nothing: every live shard must acknowledge it."),
    entry: ProjectedEntrySchema.optional().describe(
      "The shard's row of status.shards; absent when not listed.",
    ),
    migrations: z
      .array(MigrationStatusSchema)
      .max(LIMITS.migrations)
      .default(() => [])
      .describe("The migrations of status.migrations towards this shard."),
  })
  .superRefine((spec, ctx) => {
    spec.migrations.forEach((m, i) => {
      if (m.to !== spec.shard)
        ctx.addIssue({
          code: "custom",
          path: ["migrations", i, "to"],
          message: `must be the projection's shard "${spec.shard}" (a projection carries only migrations towards it)`,
        });
    });
  });

/** A projection's `spec`. */
export type ProjectionSpec = z.output<typeof ProjectionSpecSchema>;

/** The part of a status a projection is made from (structurally a `SlotMapStatus`). */
export interface ProjectableStatus {
  readonly assignmentGeneration: number;
  readonly rulesFingerprint?: string | undefined;
  readonly shards: ReadonlyArray<{
    readonly name: string;
    readonly slots: string;
    readonly holderIdentity?: string | undefined;
  }>;
  readonly migrations: ReadonlyArray<{
    readonly slots: string;
    readonly from: string;
    readonly to: string;
    readonly generation: number;
  }>;
}

/** What {@link viewOfProjection} returns: a one-row status view the shard machine applies. */
export interface ProjectedView extends ProjectableStatus {
  readonly drainBarrier: boolean;
}

const MAX_NAME = 253;

/**
 * The object name of a shard's projection: `<slotmap>.<shard>` (both DNS-1123 subdomains, so the
 * join is one), shortened with a hash suffix when it would exceed 253 characters.
 */
export function projectionName(slotMap: string, shard: string): string {
  const name = `${slotMap}.${shard}`;
  if (name.length <= MAX_NAME) return name;
  const suffix = fnv1a(name);
  return `${name.slice(0, MAX_NAME - suffix.length - 1).replace(/[.-]+$/, "")}-${suffix}`;
}

/** FNV-1a 32-bit as 8 hex digits: only to keep long names unique, not for security. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * Whether a table assigns nothing: no owner and no migration (the coordinator's drain barrier).
 * A table whose slots are all migrating has only empty rows but is not a barrier.
 */
export function assignsNothing(status: ProjectableStatus): boolean {
  return status.migrations.length === 0 && !status.shards.some((e) => e.slots !== "");
}

/** A shard's projection of a status (the status must be one the coordinator's step accepted). */
export function projectStatus(
  status: ProjectableStatus,
  slotMap: { readonly name: string; readonly uid: string },
  shard: string,
): ProjectionSpec {
  return projector(status, slotMap)(shard);
}

/**
 * {@link projectStatus} for many shards of one status: indexes the rows and migrations once, so
 * projecting every shard of a 1000-shard table costs O(shards), not O(shards²).
 */
export function projector(
  status: ProjectableStatus,
  slotMap: { readonly name: string; readonly uid: string },
): (shard: string) => ProjectionSpec {
  const rows = new Map(status.shards.map((e) => [e.name, e]));
  const towards = new Map<string, ProjectableStatus["migrations"][number][]>();
  for (const m of status.migrations) {
    const list = towards.get(m.to);
    if (list === undefined) towards.set(m.to, [m]);
    else list.push(m);
  }
  const barrier = assignsNothing(status);
  return (shard) => project(status, slotMap, shard, rows.get(shard), towards.get(shard) ?? [], barrier);
}

function project(
  status: ProjectableStatus,
  slotMap: { readonly name: string; readonly uid: string },
  shard: string,
  row: ProjectableStatus["shards"][number] | undefined,
  migrations: ProjectableStatus["migrations"],
  drainBarrier: boolean,
): ProjectionSpec {
  return {
    slotMap: slotMap.name,
    slotMapUid: slotMap.uid,
    shard,
    assignmentGeneration: status.assignmentGeneration,
    ...(status.rulesFingerprint !== undefined ? { rulesFingerprint: status.rulesFingerprint } : {}),
    drainBarrier,
    ...(row !== undefined
      ? {
          entry: {
            slots: row.slots,
            ...(row.holderIdentity !== undefined ? { holderIdentity: row.holderIdentity } : {}),
          },
        }
      : {}),
    migrations: migrations.map((m) => ({ slots: m.slots, from: m.from, to: m.to, generation: m.generation })),
  };
}

/**
 * Whether two projections tell the shard the same, whatever generation each carries: the
 * coordinator rewrites a projection only when this is false, so a shard a change does not involve
 * gets no write. Its generation then stays that of the status where its content last changed,
 * which is the generation any migration from it names (a migration changes its source's row).
 */
export function sameProjection(a: ProjectionSpec, b: ProjectionSpec): boolean {
  return (
    a.slotMap === b.slotMap &&
    a.slotMapUid === b.slotMapUid &&
    a.shard === b.shard &&
    a.rulesFingerprint === b.rulesFingerprint &&
    a.drainBarrier === b.drainBarrier &&
    (a.entry?.slots ?? undefined) === (b.entry?.slots ?? undefined) &&
    a.entry?.holderIdentity === b.entry?.holderIdentity &&
    a.migrations.length === b.migrations.length &&
    a.migrations.every((m, i) => {
      const n = b.migrations[i]!;
      return m.slots === n.slots && m.from === n.from && m.to === n.to && m.generation === n.generation;
    })
  );
}

/** The status view of a projection: its one row (if any), its migrations and its barrier flag. */
export function viewOfProjection(spec: ProjectionSpec): ProjectedView {
  return {
    assignmentGeneration: spec.assignmentGeneration,
    ...(spec.rulesFingerprint !== undefined ? { rulesFingerprint: spec.rulesFingerprint } : {}),
    drainBarrier: spec.drainBarrier,
    shards:
      spec.entry === undefined
        ? []
        : [
            {
              name: spec.shard,
              slots: spec.entry.slots,
              ...(spec.entry.holderIdentity !== undefined
                ? { holderIdentity: spec.entry.holderIdentity }
                : {}),
            },
          ],
    migrations: spec.migrations,
  };
}

/** Validates a projection's `spec`; field paths start with `spec.`. Never throws. */
export function parseProjectionSpec(input: unknown): ParseResult<ProjectionSpec> {
  return parseWith(ProjectionSpecSchema, input, ["spec"]);
}
