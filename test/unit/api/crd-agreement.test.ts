// The CRD (crds/slotmap.dev_slotmaps.yaml) and the zod schemas (src/api/v1alpha1.ts) describe the
// same resource twice. This test walks both and fails on any drift: field names, types, required
// fields, defaults, patterns, bounds, enums.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import {
  CRD_NAME,
  GROUP,
  KIND,
  LIMITS,
  PATTERNS,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  SlotMapSpecSchema,
  SlotMapStatusSchema,
  VERSION,
} from "../../../src/api/index.js";
import {
  PROJECTION_CRD_NAME,
  PROJECTION_KIND,
  PROJECTION_PLURAL,
  ProjectionSpecSchema,
} from "../../../src/api/projection.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const crdFile = path.join(repoRoot, "crds/slotmap.dev_slotmaps.yaml");

/** The subset of OpenAPI / JSON Schema both sides use. */
interface Schema {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  propertyNames?: Schema;
  items?: Schema;
  required?: string[];
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string; fieldPath?: string }>;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
}

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns: Array<{ name: string; type: string; jsonPath: string; priority?: number }>;
      schema: { openAPIV3Schema: Schema };
    }>;
  };
}

const crd = parse(fs.readFileSync(crdFile, "utf8")) as Crd;
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;
const crdSpec = root.properties!.spec!;
const crdStatus = root.properties!.status!;

const toJson = (schema: z.ZodType): Schema =>
  z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as unknown as Schema;
const zodSpec = toJson(SlotMapSpecSchema);
const zodStatus = toJson(SlotMapStatusSchema);

/** Every field path under a schema: `resources[].controlledResources[].group`, `weights{}`. */
function fieldPaths(s: Schema, prefix: string, out: string[] = []): string[] {
  for (const [name, child] of Object.entries(s.properties ?? {})) {
    const p = prefix ? `${prefix}.${name}` : name;
    out.push(p);
    walkChild(child, p, out);
  }
  return out;
}
function walkChild(child: Schema, p: string, out: string[]): void {
  if (child.items) {
    out.push(`${p}[]`);
    walkChild(child.items, `${p}[]`, out);
  }
  if (child.properties) fieldPaths(child, p, out);
  if (typeof child.additionalProperties === "object") {
    out.push(`${p}{}`);
    walkChild(child.additionalProperties, `${p}{}`, out);
  }
}

/** Fields of a CRD schema without a description (kubectl explain shows nothing for them). */
function undocumented(schema: Schema): string[] {
  const out: string[] = [];
  const visit = (s: Schema, p: string) => {
    for (const [n, c] of Object.entries(s.properties ?? {})) {
      if (!c.description && !["apiVersion", "kind", "metadata"].includes(n)) out.push(`${p}.${n}`);
      visit(c, `${p}.${n}`);
      if (c.items) visit(c.items, `${p}.${n}[]`);
    }
  };
  visit(schema, "");
  return out;
}

const SAFE_MAX = Number.MAX_SAFE_INTEGER;
const COMPARED = [
  "type",
  "format",
  "default",
  "enum",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "minItems",
  "maxItems",
] as const;

/**
 * Differences between the two that are expected, by design:
 * - zod's integers carry ±2^53-1 bounds (JS safe integers) the CRD does not state;
 * - the CRD marks generations `format: int64` (as Kubernetes does); zod reads them as JS safe integers;
 * - a date-time is a `format` in the CRD and a format plus pattern in zod;
 * - zod cannot state maxProperties on a record (a refinement checks it) nor can the CRD check
 *   map keys (zod does, via propertyNames);
 * - zod strict objects say additionalProperties: false; the CRD prunes unknown fields and
 *   rejects them under field validation Strict.
 */
function normalize(s: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of COMPARED) {
    const v = s[k];
    if (v === undefined) continue;
    if (k === "maximum" && v === SAFE_MAX) continue;
    if (k === "minimum" && v === -SAFE_MAX) continue;
    if (k === "pattern" && s.format === "date-time") continue;
    if (k === "format" && s.type === "integer") continue;
    out[k] = v;
  }
  if (s.required?.length) out.required = [...s.required].sort();
  return out;
}

/** Compares two schemas recursively; returns one line per difference. */
function diff(a: Schema, b: Schema, p: string, out: string[] = []): string[] {
  const na = normalize(a);
  const nb = normalize(b);
  for (const k of new Set([...Object.keys(na), ...Object.keys(nb)])) {
    if (JSON.stringify(na[k]) !== JSON.stringify(nb[k])) {
      out.push(`${p}: ${k} differs: crd=${JSON.stringify(na[k])} zod=${JSON.stringify(nb[k])}`);
    }
  }
  const names = new Set([...Object.keys(a.properties ?? {}), ...Object.keys(b.properties ?? {})]);
  for (const n of names) {
    const ca = a.properties?.[n];
    const cb = b.properties?.[n];
    if (!ca || !cb) out.push(`${p}.${n}: only in ${ca ? "crd" : "zod"}`);
    else diff(ca, cb, `${p}.${n}`, out);
  }
  if (a.items || b.items) {
    if (!a.items || !b.items) out.push(`${p}[]: items only in ${a.items ? "crd" : "zod"}`);
    else diff(a.items, b.items, `${p}[]`, out);
  }
  const apa = typeof a.additionalProperties === "object" ? a.additionalProperties : undefined;
  const apb = typeof b.additionalProperties === "object" ? b.additionalProperties : undefined;
  if (apa || apb) {
    if (!apa || !apb) out.push(`${p}{}: additionalProperties only in ${apa ? "crd" : "zod"}`);
    else diff(apa, apb, `${p}{}`, out);
  }
  return out;
}

describe("CRD and zod agree", () => {
  it("on the field names of spec and status", () => {
    expect(fieldPaths(zodSpec, "spec").sort()).toEqual(fieldPaths(crdSpec, "spec").sort());
    expect(fieldPaths(zodStatus, "status").sort()).toEqual(fieldPaths(crdStatus, "status").sort());
    // A sanity check that the walk sees deep fields at all.
    expect(fieldPaths(crdSpec, "spec")).toContain("spec.resources[].controlledResources[].group");
    expect(fieldPaths(crdStatus, "status")).toContain("status.conditions[].lastTransitionTime");
  });

  it("on types, required fields, defaults, patterns, bounds and enums", () => {
    expect(diff(crdSpec, zodSpec, "spec")).toEqual([]);
    expect(diff(crdStatus, zodStatus, "status")).toEqual([]);
  });

  it("on the slot range pattern and limits", () => {
    const shardSlots = crdStatus.properties!.shards!.items!.properties!.slots!;
    expect(shardSlots.pattern).toBe(PATTERNS.slotRanges.source);
    expect(shardSlots.maxLength).toBe(LIMITS.shardSlotsLength);
    expect(crdStatus.properties!.unassignedSlots!.maxLength).toBe(LIMITS.unassignedSlotsLength);
    expect(crdSpec.properties!.weights!.maxProperties).toBe(LIMITS.weights);
    expect(crdSpec.properties!.namespaceSelector!.properties!.matchLabels!.maxProperties).toBe(
      LIMITS.matchLabels,
    );
  });

  it("on the identity of the resource", () => {
    expect(crd.metadata.name).toBe(CRD_NAME);
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe("Cluster");
    expect(crd.spec.names).toMatchObject({
      kind: KIND,
      plural: PLURAL,
      singular: SINGULAR,
      categories: ["slotmap"],
    });
    expect(crd.spec.names.shortNames).toEqual(SHORT_NAMES);
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({
      name: VERSION,
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });
});

describe("CRD", () => {
  it("prints SHARDS READY GENERATION MIGRATING BALANCED AGE from fields that exist", () => {
    const cols = version.additionalPrinterColumns.filter((c) => !c.priority);
    expect(cols.map((c) => c.name.toUpperCase())).toEqual([
      "SHARDS",
      "READY",
      "GENERATION",
      "MIGRATING",
      "BALANCED",
      "AGE",
    ]);
    const statusFields = new Set(fieldPaths(crdStatus, ".status"));
    const specFields = new Set(fieldPaths(crdSpec, ".spec"));
    for (const c of version.additionalPrinterColumns) {
      const simple = c.jsonPath.replace(/\[\?\(.*\)\]/, "[]");
      if (simple.startsWith(".metadata.")) continue;
      expect(statusFields.has(simple) || specFields.has(simple), `${c.name}: ${c.jsonPath}`).toBe(true);
    }
    expect(cols.find((c) => c.name === "Balanced")?.jsonPath).toBe(
      '.status.conditions[?(@.type=="Balanced")].status',
    );
  });

  it("keys the lists that are keyed by name; the status's shard list is atomic (compact managedFields)", () => {
    const list = (s: Schema) => [s["x-kubernetes-list-type"], s["x-kubernetes-list-map-keys"]];
    expect(list(crdStatus.properties!.shards!)).toEqual(["atomic", undefined]);
    expect(list(crdStatus.properties!.migrations!)).toEqual(["atomic", undefined]);
    expect(list(crdStatus.properties!.conditions!)).toEqual(["map", ["type"]]);
    expect(list(crdSpec.properties!.resources!)).toEqual(["map", ["group", "resource"]]);
    expect(list(crdSpec.properties!.resources!.items!.properties!.controlledResources!)).toEqual([
      "map",
      ["group", "resource"],
    ]);
  });

  it("checks unassignedSlots with CEL and leaves per-shard lists to zod (CEL cost budget)", () => {
    const [shards, migrations, unassigned] = [
      crdStatus.properties!.shards!.items!.properties!.slots!,
      crdStatus.properties!.migrations!.items!.properties!.slots!,
      crdStatus.properties!.unassignedSlots!,
    ];
    expect(unassigned["x-kubernetes-validations"]?.[0]?.rule).toContain("16383");
    // 1024 items × 8192 characters could not be CEL-checked within the budget; the syntax is
    // still checked by the pattern, order and bounds by zod and the core.
    expect(shards["x-kubernetes-validations"]).toBeUndefined();
    expect(migrations["x-kubernetes-validations"]).toBeUndefined();
    expect(migrations.pattern).toBe(PATTERNS.slotRanges.source);
    expect(migrations.maxLength).toBe(LIMITS.migrationSlotsLength);
  });

  it("describes every field", () => {
    expect(undocumented(root)).toEqual([]);
  });
});

describe("the SlotMapShard CRD and zod agree", () => {
  const file = path.join(repoRoot, "crds/slotmap.dev_slotmapshards.yaml");
  const pcrd = parse(fs.readFileSync(file, "utf8")) as Crd;
  const pversion = pcrd.spec.versions[0]!;
  const proot = pversion.schema.openAPIV3Schema;
  const pspec = proot.properties!.spec!;
  const zodProjection = toJson(ProjectionSpecSchema);

  it("on field names, types, required fields, defaults, patterns and bounds", () => {
    expect(fieldPaths(zodProjection, "spec").sort()).toEqual(fieldPaths(pspec, "spec").sort());
    expect(fieldPaths(pspec, "spec")).toContain("spec.migrations[].generation");
    expect(diff(pspec, zodProjection, "spec")).toEqual([]);
  });

  it("on the identity of the resource: namespaced, no status, in the slotmap category", () => {
    expect(pcrd.metadata.name).toBe(PROJECTION_CRD_NAME);
    expect(pcrd.spec.group).toBe(GROUP);
    expect(pcrd.spec.scope).toBe("Namespaced");
    expect(pcrd.spec.names).toMatchObject({
      kind: PROJECTION_KIND,
      plural: PROJECTION_PLURAL,
      categories: ["slotmap"],
    });
    expect(pversion).toMatchObject({ name: VERSION, served: true, storage: true });
    expect(pversion.subresources).toBeUndefined();
    expect(pspec.properties!.migrations!["x-kubernetes-list-type"]).toBe("atomic");
  });

  it("prints columns from fields that exist, and describes every field", () => {
    const fields = new Set(fieldPaths(pspec, ".spec"));
    for (const c of pversion.additionalPrinterColumns) {
      if (c.jsonPath.startsWith(".metadata.")) continue;
      expect(fields.has(c.jsonPath), `${c.name}: ${c.jsonPath}`).toBe(true);
    }
    expect(undocumented(proot)).toEqual([]);
  });
});
