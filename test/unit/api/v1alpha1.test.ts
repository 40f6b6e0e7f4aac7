import { describe, expect, expectTypeOf, it } from "vitest";
import {
  API_VERSION,
  type FieldError,
  formatFieldError,
  formatFieldErrors,
  formatFieldPath,
  KIND,
  LIMITS,
  parseFieldPath,
  parseSlotMap,
  parseSlotMapSpec,
  parseSlotMapStatus,
  renderValue,
  type SlotMap,
  SlotMapSchema,
  type SlotMapStatus,
  SlotMapStatusSchema,
  slotTableOf,
} from "../../../src/api/index.js";
import { formatSlotRanges, parseSlotRanges, rangesFromMask } from "../../../src/slots/ranges.js";
import {
  makeTable,
  SlotTableError,
  tableFromStatus,
  tablesEqual,
  tableToStatus,
} from "../../../src/slots/table.js";
import { NO_OWNER, SLOT_COUNT, type StatusTable } from "../../../src/slots/types.js";

const minimal = () => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: "checksums" },
  spec: { leaseNamespace: "checksums-system", resources: [{ resource: "secrets" }] },
});

/** Parses and returns the errors, failing the test if the input was accepted. */
function errorsOf(input: unknown): FieldError[] {
  const r = parseSlotMap(input);
  if (r.ok) expect.fail("expected the input to be rejected");
  return r.errors;
}

function ok(input: unknown): SlotMap {
  const r = parseSlotMap(input);
  if (!r.ok) expect.fail(formatFieldErrors(r.errors));
  return r.value;
}

function withSpec(spec: Record<string, unknown>) {
  const m = minimal();
  return { ...m, spec: { ...m.spec, ...spec } };
}

function withStatus(status: Record<string, unknown>) {
  return { ...minimal(), status };
}

/**
 * A consistent status at assignmentGeneration 1 (unless `over` says otherwise): `unassignedSlots`
 * lists exactly the slots no shard owns, so that only the rule a test is about can fail.
 */
function consistent(shards: Array<{ name: string; slots: string }>, over: Record<string, unknown> = {}) {
  const free = new Uint8Array(SLOT_COUNT).fill(1);
  for (const s of shards) for (const r of parseSlotRanges(s.slots)) free.fill(0, r.start, r.end + 1);
  return {
    assignmentGeneration: 1,
    shards,
    unassignedSlots: formatSlotRanges(rangesFromMask(free)),
    ...over,
  };
}

describe("defaults", () => {
  it("fills policy, group and apiVersion/kind like the CRD does", () => {
    const v = ok({
      metadata: { name: "a" },
      spec: { leaseNamespace: "ns", resources: [{ resource: "secrets" }] },
    });
    expect(v.apiVersion).toBe("slotmap.dev/v1alpha1");
    expect(v.kind).toBe("SlotMap");
    expect(v.spec.policy).toEqual({
      maxMigratingSlots: 16384,
      handoffTimeoutSeconds: 30,
      maxLeaseDurationSeconds: 60,
    });
    expect(v.spec.resources).toEqual([{ group: "", resource: "secrets" }]);
    expect(v.spec.weights).toBeUndefined();
    expect(v.spec.namespaceSelector).toBeUndefined();
    expect(v.status).toBeUndefined();
  });

  it("fills one policy field when the other is set", () => {
    expect(ok(withSpec({ policy: { maxMigratingSlots: 10 } })).spec.policy).toEqual({
      maxMigratingSlots: 10,
      handoffTimeoutSeconds: 30,
      maxLeaseDurationSeconds: 60,
    });
    expect(ok(withSpec({ policy: { handoffTimeoutSeconds: 5 } })).spec.policy).toEqual({
      maxMigratingSlots: 16384,
      handoffTimeoutSeconds: 5,
      maxLeaseDurationSeconds: 60,
    });
  });

  it("fills controlled resources' group", () => {
    const v = ok(
      withSpec({ resources: [{ resource: "secrets", controlledResources: [{ resource: "configmaps" }] }] }),
    );
    expect(v.spec.resources[0]?.controlledResources).toEqual([{ group: "", resource: "configmaps" }]);
  });

  it("fills an empty status like the CRD does", () => {
    expect(ok(withStatus({})).status).toEqual({
      assignmentGeneration: 0,
      shards: [],
      migrations: [],
      unassignedSlots: "",
      conditions: [],
    });
    const v = ok(withStatus({ shards: [{ name: "s-0", state: "Ready" }] }));
    expect(v.status?.shards).toEqual([{ name: "s-0", state: "Ready", slots: "" }]);
  });

  it("does not share default arrays between parses", () => {
    const a = ok(withStatus({}));
    a.status?.shards.push({ name: "x", state: "Ready", slots: "" });
    expect(ok(withStatus({})).status?.shards).toEqual([]);
  });

  it("is idempotent: a parsed SlotMap parses to itself", () => {
    const v = ok(
      withStatus({ assignmentGeneration: 2, shards: [{ name: "a", state: "Ready", slots: "0-16383" }] }),
    );
    expect(ok(v)).toEqual(v);
  });
});

describe("strict spec, tolerant status and metadata", () => {
  it.each([
    [{ replicas: 3 }, "spec.replicas", 3],
    [{ policy: { maxMigratingSlot: 5 } }, "spec.policy.maxMigratingSlot", 5],
    [{ resources: [{ resource: "secrets", kind: "Secret" }] }, "spec.resources[0].kind", "Secret"],
    [
      {
        resources: [
          { resource: "secrets", controlledResources: [{ resource: "configmaps", version: "v1" }] },
        ],
      },
      "spec.resources[0].controlledResources[0].version",
      "v1",
    ],
    [{ namespaceSelector: { matchLabel: { a: "b" } } }, "spec.namespaceSelector.matchLabel", { a: "b" }],
    [
      { namespaceSelector: { matchExpressions: [{ key: "a", operator: "Exists", value: "x" }] } },
      "spec.namespaceSelector.matchExpressions[0].value",
      "x",
    ],
  ])("rejects an unknown spec field %j naming %s", (spec, field, value) => {
    const errors = errorsOf(withSpec(spec));
    expect(errors).toContainEqual({
      field,
      value,
      message: `unknown field "${field}" (not in the SlotMap schema; check the spelling)`,
    });
  });

  it("drops unknown status fields, so a newer coordinator's status stays readable", () => {
    const v = ok(
      withStatus({
        assignmentGeneration: 1,
        futureField: { x: 1 },
        shards: [{ name: "a", state: "Ready", extra: 1 }],
        unassignedSlots: "0-16383",
      }),
    );
    expect(v.status).not.toHaveProperty("futureField");
    expect(v.status?.shards[0]).not.toHaveProperty("extra");
  });

  it("keeps metadata it does not type (labels, managedFields, creationTimestamp)", () => {
    const input = {
      ...minimal(),
      metadata: {
        name: "checksums",
        uid: "0b7f8c2e-1f0a-4a8e-9a43-0c3b2a1d9e77",
        generation: 3,
        resourceVersion: "1234",
        creationTimestamp: "2025-01-02T03:04:05Z",
        managedFields: [{ manager: "kubectl" }],
        labels: { app: "checksums" },
      },
    };
    expect(ok(input).metadata).toEqual(input.metadata);
  });
});

describe("error messages name the field and the value", () => {
  it("for a pattern", () => {
    const errors = errorsOf(withSpec({ leaseNamespace: "Checksums_System" }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ field: "spec.leaseNamespace", value: "Checksums_System" });
    expect(formatFieldErrors(errors)).toMatch(
      /^spec\.leaseNamespace: must be a DNS-1123 label.*; got "Checksums_System"$/,
    );
  });

  it("for a missing field, without a value", () => {
    const m = minimal();
    const errors = errorsOf({ ...m, spec: { resources: m.spec.resources } });
    expect(errors).toEqual([
      { field: "spec.leaseNamespace", value: undefined, message: "required field is missing" },
    ]);
    expect(formatFieldError(errors[0]!)).toBe("spec.leaseNamespace: required field is missing");
  });

  it("for a wrong type", () => {
    expect(errorsOf(withSpec({ policy: { maxMigratingSlots: "16" } }))).toEqual([
      { field: "spec.policy.maxMigratingSlots", value: "16", message: "must be an integer, not a string" },
    ]);
    expect(errorsOf(withSpec({ policy: { handoffTimeoutSeconds: 1.5 } }))[0]).toMatchObject({
      field: "spec.policy.handoffTimeoutSeconds",
      value: 1.5,
    });
    expect(errorsOf(withSpec({ resources: "secrets" }))[0]).toMatchObject({
      field: "spec.resources",
      message: "must be an array, not a string",
    });
  });

  it("for bounds", () => {
    expect(errorsOf(withSpec({ policy: { maxMigratingSlots: 16385 } }))[0]).toMatchObject({
      field: "spec.policy.maxMigratingSlots",
      message: "must be <= 16384",
    });
    expect(errorsOf(withSpec({ policy: { handoffTimeoutSeconds: 0 } }))[0]).toMatchObject({
      field: "spec.policy.handoffTimeoutSeconds",
      message: "must be >= 1",
    });
    expect(errorsOf(withSpec({ policy: { handoffTimeoutSeconds: 86_401 } }))[0]?.field).toBe(
      "spec.policy.handoffTimeoutSeconds",
    );
    expect(errorsOf(withSpec({ weights: { "s-0": 1_000_001 } }))[0]).toMatchObject({
      field: 'spec.weights["s-0"]',
      value: 1_000_001,
    });
  });

  it("reports every error at once, in document order", () => {
    const errors = errorsOf({
      metadata: { name: "x" },
      spec: { leaseNamespace: "BAD", resources: [{ resource: "Secret" }], policy: { maxMigratingSlots: 0 } },
    });
    expect(errors.map((e) => e.field)).toEqual([
      "spec.leaseNamespace",
      "spec.resources[0].resource",
      "spec.policy.maxMigratingSlots",
    ]);
  });

  it("for a document that is not an object", () => {
    for (const input of [null, "SlotMap", 42, []]) {
      const errors = errorsOf(input);
      expect(errors[0]?.field).toBe("");
      expect(formatFieldErrors(errors)).toMatch(/^<root>: must be an object/);
    }
  });

  it("for a wrong apiVersion or kind", () => {
    expect(errorsOf({ ...minimal(), apiVersion: "slotmap.dev/v1" })[0]).toMatchObject({
      field: "apiVersion",
      value: "slotmap.dev/v1",
    });
    expect(errorsOf({ ...minimal(), kind: "Slotmap" })[0]?.field).toBe("kind");
  });

  it("for metadata.name", () => {
    const long = "a".repeat(64);
    expect(errorsOf({ ...minimal(), metadata: { name: long } })[0]).toMatchObject({
      field: "metadata.name",
      value: long,
    });
    expect(errorsOf({ ...minimal(), metadata: {} })[0]).toMatchObject({
      field: "metadata.name",
      value: undefined,
    });
    expect(errorsOf({ ...minimal(), metadata: { name: "Upper" } })[0]?.field).toBe("metadata.name");
  });

  it("shortens huge values", () => {
    const huge = "x".repeat(10_000);
    const line = formatFieldErrors(errorsOf(withSpec({ leaseNamespace: huge })));
    expect(line.length).toBeLessThan(400);
    expect(line).toContain("(10002 chars)");
  });

  it("with parseSlotMapSpec and parseSlotMapStatus, paths start at spec and status", () => {
    const spec = parseSlotMapSpec({ leaseNamespace: "ns", resources: [] });
    expect(spec.ok || spec.errors[0]?.field).toBe("spec.resources");
    const status = parseSlotMapStatus({ shards: [{ name: "a", state: "Gone" }] });
    expect(status.ok || status.errors[0]).toEqual({
      field: "status.shards[0].state",
      value: "Gone",
      message: 'must be one of "Ready", "Expired", "Dead"',
    });
    const good = parseSlotMapStatus({ assignmentGeneration: 3, unassignedSlots: "0-16383" });
    expect(good.ok && good.value.assignmentGeneration).toBe(3);
  });
});

describe("spec validation", () => {
  it("accepts core and named groups, rejects versions and uppercase", () => {
    ok(
      withSpec({
        resources: [
          { group: "apps", resource: "deployments" },
          { group: "example.com", resource: "widgets" },
        ],
      }),
    );
    expect(errorsOf(withSpec({ resources: [{ group: "apps/v1", resource: "deployments" }] }))[0]?.field).toBe(
      "spec.resources[0].group",
    );
    expect(errorsOf(withSpec({ resources: [{ resource: "" }] }))[0]).toMatchObject({
      field: "spec.resources[0].resource",
      message: "must not be empty",
    });
  });

  it("rejects duplicate resources, like the CRD's list-map keys", () => {
    const errors = errorsOf(
      withSpec({ resources: [{ resource: "secrets" }, { group: "", resource: "secrets" }] }),
    );
    expect(errors[0]).toMatchObject({ field: "spec.resources[1]" });
    expect(errors[0]?.message).toContain('duplicate resource "secrets"');
    const controlled = errorsOf(
      withSpec({
        resources: [
          {
            resource: "secrets",
            controlledResources: [
              { resource: "jobs", group: "batch" },
              { resource: "jobs", group: "batch" },
            ],
          },
        ],
      }),
    );
    expect(controlled[0]?.field).toBe("spec.resources[0].controlledResources[1]");
    expect(controlled[0]?.message).toContain('"jobs.batch"');
  });

  it("rejects a resource that is both a root and controlled", () => {
    const errors = errorsOf(
      withSpec({
        resources: [
          { resource: "secrets", controlledResources: [{ resource: "configmaps" }] },
          { resource: "configmaps" },
        ],
      }),
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]?.field).toBe("spec.resources[0].controlledResources[0]");
    expect(errors[0]?.message).toContain("spec.resources[1]");
  });

  it("allows the same resource under two different roots' controlledResources", () => {
    ok(
      withSpec({
        resources: [
          { resource: "secrets", controlledResources: [{ resource: "configmaps" }] },
          { group: "apps", resource: "deployments", controlledResources: [{ resource: "configmaps" }] },
        ],
      }),
    );
  });

  it("bounds the number of resources", () => {
    const many = Array.from({ length: LIMITS.resources + 1 }, (_, i) => ({ resource: `r${i}` }));
    expect(errorsOf(withSpec({ resources: many }))[0]).toMatchObject({
      field: "spec.resources",
      message: `must have at most ${LIMITS.resources} items`,
    });
  });

  it("validates the namespace selector like metav1.LabelSelector", () => {
    ok(withSpec({ namespaceSelector: {} }));
    ok(
      withSpec({
        namespaceSelector: {
          matchLabels: { "example.com/tier": "gold", env: "" },
          matchExpressions: [
            { key: "env", operator: "NotIn", values: ["dev"] },
            { key: "skip", operator: "Exists" },
            { key: "skip2", operator: "DoesNotExist", values: [] },
          ],
        },
      }),
    );
    expect(
      errorsOf(
        withSpec({ namespaceSelector: { matchExpressions: [{ key: "a", operator: "NotIn", values: [] }] } }),
      )[0],
    ).toMatchObject({ field: "spec.namespaceSelector.matchExpressions[0].values" });
    expect(
      errorsOf(
        withSpec({
          namespaceSelector: { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
        }),
      )[0],
    ).toMatchObject({
      field: "spec.namespaceSelector.matchExpressions[0].values",
      message: "must be empty for operator Exists and DoesNotExist",
    });
    expect(
      errorsOf(withSpec({ namespaceSelector: { matchExpressions: [{ key: "a", operator: "Like" }] } }))[0],
    ).toMatchObject({ field: "spec.namespaceSelector.matchExpressions[0].operator", value: "Like" });
    // A bad label key: the key is the bad value.
    expect(errorsOf(withSpec({ namespaceSelector: { matchLabels: { "bad key": "x" } } }))[0]).toMatchObject({
      field: 'spec.namespaceSelector.matchLabels["bad key"]',
      value: "bad key",
    });
    expect(errorsOf(withSpec({ namespaceSelector: { matchLabels: { env: "not ok" } } }))[0]).toMatchObject({
      field: "spec.namespaceSelector.matchLabels.env",
      value: "not ok",
    });
  });

  it("validates weights", () => {
    expect(ok(withSpec({ weights: { "s-0": 0, "s-1": 3 } })).spec.weights).toEqual({ "s-0": 0, "s-1": 3 });
    expect(errorsOf(withSpec({ weights: { "s-1": -1 } }))[0]).toMatchObject({
      field: 'spec.weights["s-1"]',
      value: -1,
      message: "must be >= 0",
    });
    expect(errorsOf(withSpec({ weights: { s: "2" } }))[0]).toMatchObject({
      field: "spec.weights.s",
      value: "2",
    });
    const many = Object.fromEntries(Array.from({ length: LIMITS.weights + 1 }, (_, i) => [`s-${i}`, 1]));
    expect(errorsOf(withSpec({ weights: many }))[0]?.field).toBe("spec.weights");
  });
});

describe("status validation", () => {
  const shard = (name: string, slots: string, state = "Ready") => ({ name, state, slots });

  it.each([
    ["0", undefined],
    ["16383", undefined],
    ["0-16383", undefined],
    ["0-99,200,300-399", undefined],
    ["0-9,10-19", undefined], // touching ranges ascend: fine (the canonical form would merge them)
    ["", undefined],
    ["16384", "slot out of range"],
    ["0-16384", "slot out of range"],
    ["5-3", "reversed range"],
    ["10,5", 'ascending order: "5" comes after "10"'],
    ["0-10,5-20", 'overlaps "0-10"'],
    ["5-5", 'a single slot is written "5", not "5-5"'],
    ["1,,2", "comma-separated list"],
    ["1,", "comma-separated list"],
    [" 1", "comma-separated list"],
    ["007", "comma-separated list"],
    ["+5", "comma-separated list"],
    ["a-b", "comma-separated list"],
  ])("shard slots %j: %s", (slots, problem) => {
    const shards = [shard("s-0", slots)];
    const r = parseSlotMap(withStatus(problem === undefined ? consistent(shards) : { shards }));
    if (problem === undefined) {
      if (!r.ok) expect.fail(formatFieldErrors(r.errors));
      return;
    }
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field: "status.shards[0].slots", value: slots });
    expect(r.errors[0]?.message).toContain(problem);
  });

  it("bounds the length of range lists", () => {
    // The planner's worst case: a shard joining 1024 balanced shards gets 512 ranges.
    const joiner = Array.from({ length: 512 }, (_, i) => `${10 + i * 31}-${10 + i * 31 + 2}`).join(",");
    ok(withStatus(consistent([shard("s-0", joiner)])));
    const long = Array.from({ length: 700 }, (_, i) => `${10000 + i * 9}-${10000 + i * 9 + 5}`).join(",");
    expect(long.length).toBeGreaterThan(LIMITS.shardSlotsLength);
    expect(errorsOf(withStatus({ shards: [shard("s-0", long)] }))[0]).toMatchObject({
      field: "status.shards[0].slots",
      message: `must be at most ${LIMITS.shardSlotsLength} characters`,
    });
    // unassignedSlots can hold the most fragmented table there is: 8 shards own the odd slots.
    const everyOther = Array.from({ length: SLOT_COUNT / 2 }, (_, i) => String(i * 2)).join(",");
    const odd = Array.from({ length: 8 }, (_, k) =>
      shard(`s-${k}`, Array.from({ length: 1024 }, (_, i) => String(k * 2048 + i * 2 + 1)).join(",")),
    );
    expect(consistent(odd).unassignedSlots).toBe(everyOther);
    ok(withStatus(consistent(odd)));
  });

  it("rejects a slot owned twice, across shards, migrations and unassignedSlots", () => {
    const twice = consistent([shard("a", "0-100")], { unassignedSlots: "201-16383" });
    twice.shards.push(shard("b", "100-200"));
    expect(errorsOf(withStatus(twice))).toEqual([
      {
        field: "status.shards[1].slots",
        value: "100-200",
        message: 'slot 100 is also owned by shards[0] ("a")',
      },
    ]);
    expect(
      errorsOf(
        withStatus(
          consistent([shard("a", "0-100")], {
            assignmentGeneration: 3,
            migrations: [{ slots: "50", from: "a", to: "b", generation: 3 }],
          }),
        ),
      )[0],
    ).toMatchObject({
      field: "status.migrations[0].slots",
      value: "50",
      message: 'slot 50 is migrating but also owned by shards[0] ("a")',
    });
    expect(
      errorsOf(withStatus(consistent([shard("a", "0-100")], { unassignedSlots: "100-16383" })))[0],
    ).toMatchObject({
      field: "status.unassignedSlots",
      value: "100-16383",
      message: 'lists slot 100, which is owned by shards[0] ("a")',
    });
  });

  it("validates migrations", () => {
    const m = (over: Record<string, unknown>) =>
      withStatus({
        assignmentGeneration: 5,
        migrations: [{ slots: "0-9", from: "a", to: "b", generation: 5, ...over }],
        unassignedSlots: "10-16383",
      });
    ok(m({}));
    expect(errorsOf(m({ to: "a" }))[0]).toEqual({
      field: "status.migrations[0].to",
      value: "a",
      message: 'migration from "a" to itself',
    });
    expect(errorsOf(m({ generation: 6 }))[0]).toEqual({
      field: "status.migrations[0].generation",
      value: 6,
      message: "6 is newer than assignmentGeneration 5",
    });
    expect(errorsOf(m({ generation: 0 }))[0]?.field).toBe("status.migrations[0].generation");
    expect(errorsOf(m({ slots: "" }))[0]).toMatchObject({
      field: "status.migrations[0].slots",
      message: "must name at least one slot",
    });
    expect(errorsOf(m({ from: undefined }))[0]).toMatchObject({
      field: "status.migrations[0].from",
      message: "required field is missing",
    });
  });

  it("validates shards and conditions", () => {
    expect(errorsOf(withStatus({ shards: [shard("a", ""), shard("a", "", "Dead")] }))).toEqual([
      { field: "status.shards[1].name", value: "a", message: 'duplicate shard name "a" (also shards[0])' },
    ]);
    expect(errorsOf(withStatus({ shards: [shard("Shard_0", "")] }))[0]?.field).toBe("status.shards[0].name");
    const cond = (over: Record<string, unknown>) => ({
      type: "Ready",
      status: "True",
      reason: "AllGood",
      message: "",
      lastTransitionTime: "2025-01-02T03:04:05Z",
      ...over,
    });
    ok(
      withStatus({
        conditions: [cond({}), cond({ type: "Balanced", lastTransitionTime: "2025-01-02T03:04:05.5+02:00" })],
      }),
    );
    expect(errorsOf(withStatus({ conditions: [cond({}), cond({})] }))[0]?.field).toBe(
      "status.conditions[1].type",
    );
    expect(errorsOf(withStatus({ conditions: [cond({ status: "Yes" })] }))[0]?.field).toBe(
      "status.conditions[0].status",
    );
    expect(errorsOf(withStatus({ conditions: [cond({ reason: "not camel" })] }))[0]?.field).toBe(
      "status.conditions[0].reason",
    );
    expect(
      errorsOf(withStatus({ conditions: [cond({ lastTransitionTime: "yesterday" })] }))[0],
    ).toMatchObject({
      field: "status.conditions[0].lastTransitionTime",
      value: "yesterday",
    });
  });
});

describe("the slot table's rules: the core's tableFromStatus checks them for the schema", () => {
  const shard = (name: string, slots: string) => ({ name, state: "Ready", slots });

  it("rejects a status whose unassignedSlots omits a free slot (the schema alone accepted it)", () => {
    const status = consistent([shard("a", "0-100")], { unassignedSlots: "102-16383" });
    const message = "omits slot 101, which is neither owned nor migrating";
    const r = SlotMapStatusSchema.safeParse(status);
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([
      expect.objectContaining({ code: "custom", path: ["unassignedSlots"], message }),
    ]);
    expect(parseSlotMapStatus(status)).toEqual({
      ok: false,
      errors: [{ field: "status.unassignedSlots", value: "102-16383", message }],
    });
    expect(errorsOf(withStatus(status))).toEqual([
      { field: "status.unassignedSlots", value: "102-16383", message },
    ]);
  });

  it("puts the issue at the field the table names, inside a whole SlotMap too", () => {
    const status = consistent([shard("a", "0-100")], { unassignedSlots: "201-16383" });
    status.shards.push(shard("b", "100-200"));
    expect(SlotMapStatusSchema.safeParse(status).error?.issues.map((i) => i.path)).toEqual([
      ["shards", 1, "slots"],
    ]);
    expect(SlotMapSchema.safeParse(withStatus(status)).error?.issues.map((i) => i.path)).toEqual([
      ["status", "shards", 1, "slots"],
    ]);
  });

  it("applies the table's generation-0 rules", () => {
    expect(errorsOf(withStatus({ shards: [shard("a", "0-100")] }))).toEqual([
      {
        field: "status.assignmentGeneration",
        value: undefined,
        message: "0 (nothing planned yet) but shards own slots; every change of the table increments it",
      },
    ]);
    expect(errorsOf(withStatus({ unassignedSlots: "0-100" }))).toEqual([
      {
        field: "status.unassignedSlots",
        value: "0-100",
        message: 'must be "" or "0-16383" at assignmentGeneration 0',
      },
    ]);
  });

  it("checks the table only on a well-shaped status, so a bad field is reported once", () => {
    // The duplicate name is found once the range is fixed.
    const status = consistent([shard("a", "")], { unassignedSlots: "0-16383" });
    status.shards.push(shard("a", "5-3"));
    expect(errorsOf(withStatus(status))).toEqual([
      { field: "status.shards[1].slots", value: "5-3", message: expect.stringContaining("reversed range") },
    ]);
  });

  it("parses a valid status to the same output as before, and memoises its table", () => {
    const input = {
      observedGeneration: 4,
      assignmentGeneration: 7,
      shards: [
        { name: "a", slots: "0-8000", holderIdentity: "a-1" },
        { name: "b", state: "Expired", slots: "9000-16383" },
      ],
      migrations: [{ slots: "8001-8999", from: "a", to: "b", generation: 7 }],
      unassignedSlots: "",
      shardCount: 2,
      readyShards: 1,
      migratingSlots: 999,
    };
    const r = parseSlotMapStatus(input);
    if (!r.ok) expect.fail(formatFieldErrors(r.errors));
    // The input plus the one default: nothing of the table is added to the output.
    expect(r.value).toStrictEqual({ ...input, conditions: [] });
    // The table the parse built: the same object each time, equal to a fresh build.
    const table = slotTableOf(r.value);
    expect(slotTableOf(r.value)).toBe(table);
    expect(tablesEqual(table, tableFromStatus(r.value))).toBe(true);
    expect(table.migrations).toEqual([
      { slots: [{ start: 8001, end: 8999 }], from: "a", to: "b", generation: 7 },
    ]);
    // A status that did not come from a parse gets a table built on each call.
    const copy = structuredClone(r.value);
    expect(slotTableOf(copy)).not.toBe(slotTableOf(copy));
    expect(tablesEqual(slotTableOf(copy), table)).toBe(true);
    copy.unassignedSlots = "1";
    expect(() => slotTableOf(copy)).toThrow(SlotTableError);
    // Through a whole SlotMap too.
    const sm = ok(withStatus(input));
    expect(sm.status).toStrictEqual(r.value);
    expect(slotTableOf(sm.status!)).toBe(slotTableOf(sm.status!));
  });
});

describe("compatibility with the slot core", () => {
  it("a parsed status is a StatusTable", () => {
    expectTypeOf<SlotMapStatus>().toExtend<StatusTable>();
  });

  it("accepts what tableToStatus writes, and tableFromStatus reads what it accepts", () => {
    const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
    owner.fill(0, 0, 5000);
    owner.fill(1, 5000, 9000);
    owner.fill(0, 9000, 9100);
    owner.fill(2, 12000, 16384);
    const table = makeTable(7, ["a", "b", "c"], owner, [
      { slots: [{ start: 9100, end: 11999 }], from: "b", to: "c", generation: 7 },
    ]);
    const wire = tableToStatus(table);
    const status = {
      ...wire,
      shards: wire.shards.map((s) => ({ ...s, state: "Ready" as const })),
    };
    const r = parseSlotMapStatus(status);
    if (!r.ok) expect.fail(formatFieldErrors(r.errors));
    expect(tableToStatus(tableFromStatus(r.value))).toEqual(wire);
  });
});

describe("formatting helpers", () => {
  it("formats paths like kubectl", () => {
    expect(formatFieldPath(["spec", "resources", 0, "group"])).toBe("spec.resources[0].group");
    expect(formatFieldPath(["metadata", "annotations", "slotmap.dev/weight"])).toBe(
      'metadata.annotations["slotmap.dev/weight"]',
    );
    expect(formatFieldPath([])).toBe("");
  });

  it("parses the paths it formats", () => {
    for (const path of [
      ["status", "shards", 2, "slots"],
      ["metadata", "annotations", "slotmap.dev/weight"],
      ["spec", "weights", 'a"b'],
      ["a", 0, 10],
      [],
    ]) {
      expect(parseFieldPath(formatFieldPath(path))).toEqual(path);
    }
    for (const bad of ["a..b", ".a", "a[01]", "a[", "a b", "a[x]", "[0]a"]) {
      expect(parseFieldPath(bad), bad).toBeUndefined();
    }
  });

  it("renders values as JSON", () => {
    expect(renderValue("x")).toBe('"x"');
    expect(renderValue(undefined)).toBe("undefined");
    expect(renderValue(10n)).toBe("10n");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(renderValue(cyclic)).toBe("[object Object]");
  });
});
