/**
 * The `SlotMap` custom resource (`slotmap.dev/v1alpha1`) as zod 4 schemas and TypeScript types.
 *
 * These schemas mirror crds/slotmap.dev_slotmaps.yaml field for field (names, required fields,
 * defaults, patterns, bounds, enums); test/unit/api/crd-agreement.test.ts keeps the two from
 * drifting. Use {@link parseSlotMap} on every SlotMap read from the API or from a file: a bad value
 * becomes a {@link FieldError} naming the field and the value, never a crash. The schemas check
 * shape; the slot table's rules across fields of `status` are the slot core's `tableFromStatus`,
 * which the status schema calls (see {@link slotTableOf}).
 *
 * Strictness: `spec` (written by people) rejects unknown fields, like `kubectl apply --validate=strict`,
 * so a typo is an error rather than a silently ignored setting. `status` (written by the coordinator)
 * and `metadata` drop unknown fields, so an older client can still read a status written by a newer
 * coordinator.
 */
import { z } from "zod";
import { groupResourceName } from "../slots/placement.js";
import { parseSlotRanges, SlotRangeError } from "../slots/ranges.js";
import { SlotTableError, tableFromStatus } from "../slots/table.js";
import { SLOT_COUNT, type SlotTable, type StatusTable } from "../slots/types.js";
import { type FieldError, formatFieldPath, parseFieldPath } from "./errors.js";
import { fieldSelectorStringError, LABEL_KEY, LABEL_VALUE, labelSelectorStringError } from "./selector.js";

export { type FieldError, formatFieldError, formatFieldErrors } from "./errors.js";

/** API group of the SlotMap resource. */
export const GROUP = "slotmap.dev";
/** API version served and stored. */
export const VERSION = "v1alpha1";
/** `apiVersion` of a SlotMap object. */
export const API_VERSION = "slotmap.dev/v1alpha1";
/** `kind` of a SlotMap object. */
export const KIND = "SlotMap";
/** Plural resource name (URL path segment, CustomObjectsApi `plural`). */
export const PLURAL = "slotmaps";
/** Singular resource name. */
export const SINGULAR = "slotmap";
/** Short names for kubectl (`kubectl get sm`). */
export const SHORT_NAMES: readonly string[] = ["sm"];
/** Name of the CustomResourceDefinition. */
export const CRD_NAME = "slotmaps.slotmap.dev";

/** Condition type: at least one shard is Ready and every slot has an owner or a migration. */
export const CONDITION_READY = "Ready";
/** Condition type: owners match the weighted targets and no migration is in flight. */
export const CONDITION_BALANCED = "Balanced";
/** Condition type: migrations are in flight (a handoff is under way). */
export const CONDITION_PROGRESSING = "Progressing";

/**
 * Size limits of the schema, identical in the CRD. They bound the CEL cost estimates of the
 * CRD's validation rules (the API server rejects a CRD whose rules could be too expensive), and
 * the coordinator must stay within them when it writes status.
 */
export const LIMITS = {
  /** `metadata.name`: it is also the value of the `slotmap.dev/slotmap` label on shard Leases. */
  nameLength: 63,
  resources: 32,
  controlledResources: 32,
  // A list or watch selector string (labelSelector, fieldSelector of a resource).
  selectorLength: 1024,
  matchLabels: 64,
  matchExpressions: 32,
  matchExpressionValues: 64,
  weights: 1024,
  /** Upper bound of a weight: keeps Σweights far below 2^53 with {@link LIMITS.weights} shards. */
  maxWeight: 1_000_000,
  /** Node timers overflow past 2^31 ms (24.8 days); one day is plenty for a handoff. */
  maxHandoffTimeoutSeconds: 86_400,
  /** Upper bound of `spec.policy.maxLeaseDurationSeconds`: one hour. */
  maxLeaseDurationSeconds: 3_600,
  shards: 1024,
  migrations: 1024,
  /**
   * Length of `status.shards[].slots`. A shard that joins n balanced shards receives a slice of
   * each donor's surplus: ceil(n/2) ranges (512 at 1024 shards, about 6 KiB), so the limit must
   * hold that. A CEL rule per item would cost about 58 units per character × 1024 items, far over
   * the API server's cost budget, so the CRD checks only the syntax (pattern) of these lists and
   * their order and bounds are checked here and by the core (see docs/design-decisions.md).
   */
  shardSlotsLength: 8192,
  /** Length of `status.migrations[].slots` (same reasoning as {@link LIMITS.shardSlotsLength}). */
  migrationSlotsLength: 8192,
  /** Length of `status.unassignedSlots`: the longest possible range list of 16384 slots. */
  unassignedSlotsLength: 98_304,
  conditions: 16,
  /** `status.shards[].holderIdentity`, copied from the Lease (pod names are at most 253). */
  holderIdentityLength: 256,
} as const;

/**
 * Regular expressions of the schema. The CRD uses the same source strings as `pattern`
 * (the agreement test compares them), so JS and the API server (RE2) must read them alike:
 * no lookaround, no backreferences.
 */
export const PATTERNS = {
  /** RFC 1123 label: namespaces, resource plural names. */
  dnsLabel: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
  /** RFC 1123 subdomain: object names (Leases, shards). */
  dnsSubdomain: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  /** API group: "" (core) or a DNS subdomain. */
  group: /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$/,
  /** Label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
  labelKey: LABEL_KEY,
  /** Label value: empty, or alphanumerics with `-_.` inside. */
  labelValue: LABEL_VALUE,
  /** metav1.Condition `type`. */
  conditionType:
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
  /** metav1.Condition `reason`: CamelCase. */
  conditionReason: /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/,
  /**
   * Syntax of a slot range list, Redis style: `0-99,200,300-399`, or "" for none; numbers without
   * sign or leading zeros (the grammar of src/slots/ranges.ts). Bounds (<= 16383) and order (each
   * range start <= end, ranges ascending and disjoint) are checked by CEL in the CRD and by
   * parseSlotRanges plus an ascending-order check here.
   */
  slotRanges: /^((0|[1-9][0-9]{0,4})(-(0|[1-9][0-9]{0,4}))?(,(0|[1-9][0-9]{0,4})(-(0|[1-9][0-9]{0,4}))?)*)?$/,
} as const;

const DNS_LABEL_MSG =
  "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit";
const DNS_SUBDOMAIN_MSG =
  "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

/** A Lease / shard name. */
export const shardName = () =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(PATTERNS.dnsSubdomain, { error: `${DNS_SUBDOMAIN_MSG} (a Lease name)` });

/**
 * A Redis-style slot range list. Syntax by pattern (as in the CRD), then bounds and overlaps by the
 * core's parser, so the message names the offending range, then ascending order: the coordinator
 * writes the canonical form, and the CRD's CEL rule can check order in one pass where a sort would
 * exceed its cost budget.
 */
export function slotRangesString(maxLength: number, minLength = 0) {
  let s = z.string();
  if (minLength > 0) s = s.min(minLength, { error: "must name at least one slot" });
  return s
    .max(maxLength)
    .regex(PATTERNS.slotRanges, {
      error: 'must be a comma-separated list of slots and ranges such as "0-99,200,300-399" (no spaces)',
    })
    .superRefine((text, ctx) => {
      // Syntax errors were reported by the pattern above; report only bounds and order here.
      if (!PATTERNS.slotRanges.test(text)) return;
      try {
        parseSlotRanges(text);
      } catch (err) {
        if (!(err instanceof SlotRangeError)) throw err;
        // err.message starts with the placeholder field name; the field is named by our caller.
        const reason = err.message.slice(err.message.indexOf(": ") + 2);
        ctx.addIssue({ code: "custom", message: reason });
        return;
      }
      const order = notAscending(text);
      if (order !== undefined) ctx.addIssue({ code: "custom", message: order });
    });
}

/**
 * The CRD requires every number of a list to be larger than the one before (ascending ranges, no
 * overlaps, a single slot written "N" rather than "N-N"): the canonical form. Returns why a list
 * parsed by parseSlotRanges (any order, "N-N" allowed) is not in that form, or undefined.
 */
function notAscending(text: string): string | undefined {
  let prevEnd = -1;
  let prev = "";
  for (const item of text.split(",")) {
    const dash = item.indexOf("-");
    const start = Number(dash < 0 ? item : item.slice(0, dash));
    const end = dash < 0 ? start : Number(item.slice(dash + 1));
    if (start <= prevEnd) {
      return `ranges must be in ascending order: ${JSON.stringify(item)} comes after ${JSON.stringify(prev)}`;
    }
    if (dash >= 0 && end === start)
      return `a single slot is written ${JSON.stringify(String(start))}, not ${JSON.stringify(item)}`;
    prevEnd = end;
    prev = item;
  }
  return undefined;
}

/** A reference to an API resource by group and plural name. */
export const GroupResourceSchema = z.strictObject({
  group: z
    .string()
    .max(253)
    .regex(PATTERNS.group, { error: `must be "" (the core API group) or ${DNS_SUBDOMAIN_MSG.slice(8)}` })
    .default("")
    .describe('API group; "" for the core group.'),
  resource: z
    .string()
    .min(1)
    .max(63)
    .regex(PATTERNS.dnsLabel, {
      error: `must be the plural resource name, e.g. "secrets" or "deployments" (${DNS_LABEL_MSG.slice(8)})`,
    })
    .describe("Plural resource name, as in `kubectl api-resources`."),
});

const selectorString = (check: (text: string) => string | undefined, what: string) =>
  z
    .string()
    .max(LIMITS.selectorLength)
    .superRefine((text, ctx) => {
      const error = check(text);
      if (error !== undefined) ctx.addIssue({ code: "custom", message: error });
    })
    .optional()
    .describe(what);

/**
 * A resource with the server-side selectors of its lists and watches: objects outside them are
 * never streamed to the shards (they are not sharded, as outside `namespaceSelector`).
 */
export const SelectedResourceSchema = GroupResourceSchema.extend({
  labelSelector: selectorString(
    labelSelectorStringError,
    "Label selector of every list and watch of this resource (e.g. app=demo); only matching objects are sharded.",
  ),
  fieldSelector: selectorString(
    fieldSelectorStringError,
    "Field selector of every list and watch of this resource (e.g. type!=kubernetes.io/service-account-token).",
  ),
});

/** A sharded root resource and the resources that follow their controller owner. */
export const ResourceSpecSchema = SelectedResourceSchema.extend({
  controlledResources: z
    .array(SelectedResourceSchema)
    .max(LIMITS.controlledResources)
    .optional()
    .describe("Resources sharded by the key of their controller owner, so they live on the owner's shard."),
}).superRefine((r, ctx) => {
  const seen = new Map<string, number>();
  (r.controlledResources ?? []).forEach((c, i) => {
    const key = groupResourceName(c);
    const first = seen.get(key);
    if (first !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["controlledResources", i],
        message: `duplicate controlled resource "${key}" (also at controlledResources[${first}])`,
      });
    } else {
      seen.set(key, i);
    }
  });
});

/** One requirement of a label selector. */
export const LabelSelectorRequirementSchema = z
  .strictObject({
    key: z
      .string()
      .min(1)
      .max(317)
      .regex(PATTERNS.labelKey, { error: "must be a label key such as app or example.com/tier" }),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z
      .array(z.string().max(63).regex(PATTERNS.labelValue, { error: "must be a valid label value" }))
      .max(LIMITS.matchExpressionValues)
      .optional(),
  })
  .superRefine((req, ctx) => {
    const n = req.values?.length ?? 0;
    if ((req.operator === "In" || req.operator === "NotIn") && n === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["values"],
        message: "must be non-empty for operator In and NotIn",
      });
    } else if ((req.operator === "Exists" || req.operator === "DoesNotExist") && n > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["values"],
        message: "must be empty for operator Exists and DoesNotExist",
      });
    }
  });

/** A metav1.LabelSelector; an empty selector matches every namespace. */
export const LabelSelectorSchema = z
  .strictObject({
    matchLabels: z
      .record(
        // The CRD cannot check map keys within its CEL cost budget; zod does, so a bad key is caught early.
        z
          .string()
          .max(317)
          .regex(PATTERNS.labelKey, { error: "must be a label key such as app or example.com/tier" }),
        z.string().max(63).regex(PATTERNS.labelValue, { error: "must be a valid label value" }),
      )
      .optional(),
    matchExpressions: z.array(LabelSelectorRequirementSchema).max(LIMITS.matchExpressions).optional(),
  })
  .superRefine((sel, ctx) => {
    const n = Object.keys(sel.matchLabels ?? {}).length;
    if (n > LIMITS.matchLabels) {
      ctx.addIssue({
        code: "custom",
        path: ["matchLabels"],
        message: `must have at most ${LIMITS.matchLabels} entries (has ${n})`,
      });
    }
  });

/** Rate limits of the handoff protocol. */
export const SlotMapPolicySchema = z
  .strictObject({
    maxMigratingSlots: z
      .int()
      .min(1)
      .max(SLOT_COUNT)
      .default(SLOT_COUNT)
      .describe("Upper bound on slots in `status.migrations` at once (the rate limit per handoff round)."),
    handoffTimeoutSeconds: z
      .int()
      .min(1)
      .max(LIMITS.maxHandoffTimeoutSeconds)
      .default(30)
      .describe("Time the old owner has to ack a handoff before it is fenced by Lease expiry."),
    maxLeaseDurationSeconds: z
      .int()
      .min(1)
      .max(LIMITS.maxLeaseDurationSeconds)
      .default(60)
      .describe(
        "Shard Leases with a longer spec.leaseDurationSeconds get no slots (a Warning Event names them): a rogue or mistaken Lease could otherwise hold slots unreconciled for its whole duration.",
      ),
  })
  .prefault({});

/** Shard name → weight. */
const weightsSchema = z
  .record(z.string(), z.int().min(0).max(LIMITS.maxWeight))
  .superRefine((w, ctx) => {
    const n = Object.keys(w).length;
    if (n > LIMITS.weights) {
      ctx.addIssue({ code: "custom", message: `must have at most ${LIMITS.weights} entries (has ${n})` });
    }
  })
  .optional()
  .describe(
    "Shard name → weight; overrides the shard Lease's slotmap.dev/weight annotation. 0 drains the shard.",
  );

/** `spec` of a SlotMap: written by people. Unknown fields are rejected. */
export const SlotMapSpecSchema = z
  .strictObject({
    leaseNamespace: z
      .string()
      .min(1)
      .max(63)
      .regex(PATTERNS.dnsLabel, { error: `${DNS_LABEL_MSG} (a namespace name)` })
      .describe("Namespace of this controller's shard Leases."),
    resources: z.array(ResourceSpecSchema).min(1).max(LIMITS.resources).describe("Sharded root resources."),
    namespaceSelector: LabelSelectorSchema.optional(),
    policy: SlotMapPolicySchema,
    weights: weightsSchema,
  })
  .superRefine((spec, ctx) => {
    const roots = new Map<string, number>();
    spec.resources.forEach((r, i) => {
      const key = groupResourceName(r);
      const first = roots.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["resources", i],
          message: `duplicate resource "${key}" (also at spec.resources[${first}])`,
        });
      } else {
        roots.set(key, i);
      }
    });
    // One watch serves a controlled resource whatever roots list it: one set of selectors.
    const selectors = new Map<string, { text: string; at: string }>();
    spec.resources.forEach((r, i) => {
      (r.controlledResources ?? []).forEach((c, j) => {
        const key = groupResourceName(c);
        const text = JSON.stringify([c.labelSelector ?? null, c.fieldSelector ?? null]);
        const seen = selectors.get(key);
        if (seen === undefined)
          selectors.set(key, { text, at: `spec.resources[${i}].controlledResources[${j}]` });
        else if (seen.text !== text) {
          ctx.addIssue({
            code: "custom",
            path: ["resources", i, "controlledResources", j],
            message: `"${key}" is also listed at ${seen.at} with other selectors: one watch serves it, give both the same labelSelector and fieldSelector`,
          });
        }
        const root = roots.get(key);
        if (root !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["resources", i, "controlledResources", j],
            message: `"${key}" is also a root resource (spec.resources[${root}]): a resource is either sharded by its own key or by its controller's`,
          });
        }
      });
    });
  });

/**
 * One shard in `status.shards`: only what a shard needs to decide what it owns, so the object
 * every shard watches stays small (docs/design-decisions.md "A compact, quiet status"). Acks are
 * not copied here (they live in the Leases); `kubectl slotmap get` joins them in.
 */
export const ShardStatusSchema = z.object({
  name: shardName().describe("Shard name = name of its Lease."),
  state: z
    .enum(["Ready", "Expired", "Dead"])
    .optional()
    .describe("Lease state as judged by the coordinator; absent means Ready."),
  slots: slotRangesString(LIMITS.shardSlotsLength).default("").describe("Slots this shard owns."),
  holderIdentity: z
    .string()
    .max(LIMITS.holderIdentityLength)
    .optional()
    .describe("The Lease holder (process incarnation) the slots are granted to."),
});

/** One entry of `status.migrations`: slots owned by nobody until `from` acks `generation`. */
export const MigrationStatusSchema = z.object({
  slots: slotRangesString(LIMITS.migrationSlotsLength, 1),
  from: shardName(),
  to: shardName(),
  generation: z.int().min(1).describe("The assignment generation `from` must acknowledge."),
});

/** A metav1.Condition. */
export const ConditionSchema = z.object({
  type: z
    .string()
    .min(1)
    .max(316)
    .regex(PATTERNS.conditionType, { error: "must be a condition type such as Ready" }),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.iso.datetime({
    offset: true,
    error: 'must be an RFC 3339 date-time such as "2025-01-02T03:04:05Z"',
  }),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(PATTERNS.conditionReason, { error: "must be CamelCase such as AllShardsReady" }),
  message: z.string().max(32768),
});

/** `status` of a SlotMap: written only by the coordinator. */
export const SlotMapStatusSchema = z
  .object({
    observedGeneration: z.int().min(0).optional().describe("metadata.generation last processed."),
    assignmentGeneration: z.int().min(0).default(0).describe("+1 on every change of the slot table."),
    shards: z
      .array(ShardStatusSchema)
      .max(LIMITS.shards)
      .default(() => []),
    migrations: z
      .array(MigrationStatusSchema)
      .max(LIMITS.migrations)
      .default(() => []),
    unassignedSlots: slotRangesString(LIMITS.unassignedSlotsLength).default(""),
    shardCount: z.int().min(0).max(LIMITS.shards).optional().describe("Number of entries in shards."),
    readyShards: z.int().min(0).max(LIMITS.shards).optional().describe("Shards in state Ready."),
    migratingSlots: z.int().min(0).max(SLOT_COUNT).optional().describe("Slots in migrations."),
    rulesFingerprint: z
      .string()
      .regex(/^[0-9a-f]{16}$/, { error: "must be 16 lowercase hex digits" })
      .optional()
      .describe(
        "Fingerprint of the spec.resources placement the table applies to; shards own nothing while theirs differs.",
      ),
    conditions: z
      .array(ConditionSchema)
      .max(LIMITS.conditions)
      .default(() => []),
  })
  // The slot table's rules (one owner per slot, unique shard names, migrations, unassignedSlots)
  // are the core's: tableFromStatus owns them. It runs only on a well-shaped status, so a bad field
  // is reported once, by its own check.
  .superRefine(checkSlotTable, { when: (payload) => payload.issues.length === 0 })
  .superRefine((status, ctx) => {
    const types = new Map<string, number>();
    status.conditions.forEach((c, i) => {
      const first = types.get(c.type);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["conditions", i, "type"],
          message: `duplicate condition type "${c.type}" (also at status.conditions[${first}])`,
        });
      } else {
        types.set(c.type, i);
      }
    });
  });

/** The table each parsed status was checked with, so that {@link slotTableOf} need not build it again. */
const tables = new WeakMap<object, SlotTable>();

/**
 * Builds the slot table of a well-shaped status with the core's {@link tableFromStatus}, which owns
 * every cross-field rule; its error (naming a field such as `status.shards[2].slots`) becomes one
 * issue at that field.
 */
function checkSlotTable(status: StatusTable, ctx: z.RefinementCtx): void {
  try {
    tables.set(status, tableFromStatus(status, "status"));
  } catch (err) {
    if (!(err instanceof SlotTableError || err instanceof SlotRangeError)) throw err;
    const path = parseFieldPath(err.field);
    const prefix = `${err.field}: `;
    const reason = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    if (path === undefined || path[0] !== "status") {
      // Not expected (the core names fields under `status`): keep the field in the text.
      ctx.addIssue({ code: "custom", message: err.message });
      return;
    }
    ctx.addIssue({ code: "custom", path: path.slice(1), message: reason });
  }
}

/**
 * The slot table of a status returned by {@link parseSlotMapStatus} or {@link parseSlotMap}: the
 * one the parse built to validate it, without building it again. Do not modify a parsed status
 * before asking for its table (the table would describe the status as parsed). For a status that
 * did not come from a parse, builds the table.
 *
 * @throws SlotTableError or SlotRangeError, only for a status that did not come from a parse.
 */
export function slotTableOf(status: SlotMapStatus): SlotTable {
  return tables.get(status) ?? tableFromStatus(status, "status");
}

/** ObjectMeta: only what slotmap reads is typed; other fields pass through untouched. */
export const ObjectMetaSchema = z.looseObject({
  name: z
    .string()
    .min(1)
    .max(LIMITS.nameLength, {
      error: `must be at most ${LIMITS.nameLength} characters: it is the value of the slotmap.dev/slotmap label on shard Leases`,
    })
    .regex(PATTERNS.dnsSubdomain, { error: DNS_SUBDOMAIN_MSG }),
  uid: z.string().optional(),
  generation: z.int().min(0).optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** A whole SlotMap object. `apiVersion` and `kind` default to the right values when absent. */
export const SlotMapSchema = z.object({
  apiVersion: z.literal(API_VERSION).default(API_VERSION),
  kind: z.literal(KIND).default(KIND),
  metadata: ObjectMetaSchema,
  spec: SlotMapSpecSchema,
  status: SlotMapStatusSchema.optional(),
});

/** A SlotMap after parsing: defaults applied. */
export type SlotMap = z.output<typeof SlotMapSchema>;
/** A SlotMap as written by people or read from the API, before defaults. */
export type SlotMapInput = z.input<typeof SlotMapSchema>;
/** `spec` with defaults applied. */
export type SlotMapSpec = z.output<typeof SlotMapSpecSchema>;
/** `spec` before defaults. */
export type SlotMapSpecInput = z.input<typeof SlotMapSpecSchema>;
/** `spec.policy` with defaults applied. */
export type SlotMapPolicy = z.output<typeof SlotMapPolicySchema>;
/** An entry of `spec.resources`. */
export type ResourceSpec = z.output<typeof ResourceSpecSchema>;
/** A group + plural resource reference. */
export type GroupResource = z.output<typeof GroupResourceSchema>;
/** A metav1.LabelSelector. */
export type LabelSelector = z.output<typeof LabelSelectorSchema>;
/** `status` with defaults applied; structurally a `StatusTable` of src/slots/types.ts. */
export type SlotMapStatus = z.output<typeof SlotMapStatusSchema>;
/** An entry of `status.shards`. */
export type ShardStatus = z.output<typeof ShardStatusSchema>;
/** An entry of `status.migrations`. */
export type MigrationStatus = z.output<typeof MigrationStatusSchema>;
/** A metav1.Condition. */
export type Condition = z.output<typeof ConditionSchema>;

/** Result of a parse: the value with defaults applied, or every error found. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

const article = (t: string): string => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && Number.isInteger(v)) return "integer";
  return typeof v;
}

/** "integer" for z.int() (zod reports it as "number" for a non-number input), else zod's name. */
function expectedName(expected: string, inst: unknown): string {
  const format = (inst as { _zod?: { def?: { format?: unknown } } } | undefined)?._zod?.def?.format;
  if (expected === "int" || (typeof format === "string" && format.includes("int"))) return "integer";
  return expected;
}

/** Messages for issues the schema did not word itself. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case "invalid_type":
      if (iss.input === undefined) return "required field is missing";
      return `must be ${article(expectedName(iss.expected, iss.inst))}, not ${article(typeName(iss.input))}`;
    case "too_small": {
      const min = Number(iss.minimum);
      if (iss.origin === "string")
        return min === 1 ? "must not be empty" : `must be at least ${min} characters`;
      if (iss.origin === "array") return `must have at least ${min} item${min === 1 ? "" : "s"}`;
      return `must be ${iss.inclusive === false ? ">" : ">="} ${min}`;
    }
    case "too_big": {
      const max = Number(iss.maximum);
      if (iss.origin === "string") return `must be at most ${max} characters`;
      if (iss.origin === "array") return `must have at most ${max} items`;
      return `must be ${iss.inclusive === false ? "<" : "<="} ${max}`;
    }
    case "invalid_value":
      return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return undefined;
  }
};

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** Converts zod issues to field errors, resolving each value from the original input. */
export function issuesToFieldErrors(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  prefix: ReadonlyArray<PropertyKey> = [],
): FieldError[] {
  const out: FieldError[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path];
    const local = iss.path;
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) {
        const field = formatFieldPath([...path, key]);
        out.push({
          field,
          value: valueAt(input, [...local, key]),
          message: `unknown field "${field}" (not in the SlotMap schema; check the spelling)`,
        });
      }
    } else if (iss.code === "invalid_key") {
      // A bad map key: the key itself is the bad value.
      const key = local[local.length - 1];
      for (const inner of iss.issues) {
        out.push({ field: formatFieldPath(path), value: key, message: `invalid key: ${inner.message}` });
      }
    } else if (iss.code === "invalid_union" && iss.errors.length > 0) {
      out.push(...issuesToFieldErrors(iss.errors.flat(), valueAt(input, local), path));
    } else {
      out.push({ field: formatFieldPath(path), value: valueAt(input, local), message: iss.message });
    }
  }
  return out;
}

/**
 * Parses any input with one of this module's schemas into a {@link ParseResult}. `prefix` is
 * prepended to every field path (e.g. `["status"]` when parsing a status on its own).
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: ReadonlyArray<PropertyKey> = [],
): ParseResult<z.output<S>> {
  const r = schema.safeParse(input, { error: errorMap });
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, errors: issuesToFieldErrors(r.error.issues, input, prefix) };
}

/** Validates a SlotMap (from the API or a file) and applies defaults. Never throws. */
export function parseSlotMap(input: unknown): ParseResult<SlotMap> {
  return parseWith(SlotMapSchema, input);
}

/** Validates a SlotMap `spec` on its own; field paths start with `spec.`. Never throws. */
export function parseSlotMapSpec(input: unknown): ParseResult<SlotMapSpec> {
  return parseWith(SlotMapSpecSchema, input, ["spec"]);
}

/** Validates a SlotMap `status` on its own; field paths start with `status.`. Never throws. */
export function parseSlotMapStatus(input: unknown): ParseResult<SlotMapStatus> {
  return parseWith(SlotMapStatusSchema, input, ["status"]);
}
