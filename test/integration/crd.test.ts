// The SlotMap CRD against a real API server: it installs and becomes Established, every valid
// sample applies under strict field validation (status through the status subresource), the
// printer columns show, and every invalid sample is rejected by the API server naming the same
// field as src/api's zod schemas.
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ApiException, CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  CRD_NAME,
  formatFieldErrors,
  GROUP,
  PLURAL,
  parseSlotMap,
  type SlotMap,
  VERSION,
} from "../../src/api/index.js";
import { makeTable, tableToStatus } from "../../src/slots/table.js";
import { NO_OWNER, SLOT_COUNT } from "../../src/slots/types.js";
import { loadSlotMapFixtures, type SlotMapFixture } from "../fixtures/slotmaps/load.js";
import { kubeConfig, kubectl, waitFor } from "../support/cluster.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const crdDir = path.join(repoRoot, "crds");

// SlotMaps are cluster-scoped: suffix every name so runs and other test files can't collide.
const suffix = randomBytes(3).toString("hex");
const created = new Set<string>();

type Doc = Record<string, unknown> & { metadata: { name: string } };

/** The fixture's document under a unique name (a name that is itself the error stays as is). */
function renamed(f: SlotMapFixture): Doc {
  const doc = structuredClone(f.doc) as Doc;
  if (f.expectField !== "metadata.name") doc.metadata.name = `${doc.metadata.name}-${suffix}`;
  return doc;
}

function withoutStatus(doc: Doc): Doc {
  const { status: _status, ...rest } = doc;
  return rest as Doc;
}

async function applyStrict(doc: Doc) {
  const r = await kubectl(["apply", "--validate=strict", "-f", "-"], { input: stringify(doc) });
  if (r.code === 0) created.add(doc.metadata.name);
  return r;
}

/** Writes `status` through the status subresource, as the coordinator does (an update). */
function replaceStatus(doc: Doc) {
  return kubectl(["replace", "--subresource=status", "--validate=strict", "-f", "-"], {
    input: stringify(doc),
  });
}

async function getSlotMap(name: string): Promise<Record<string, unknown>> {
  const r = await kubectl(["get", "slotmaps.slotmap.dev", name, "-o", "json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function zodParse(doc: unknown): SlotMap {
  const r = parseSlotMap(doc);
  if (!r.ok) expect.fail(formatFieldErrors(r.errors));
  return r.value;
}

beforeAll(async () => {
  // Server-side apply with force: other test files may install the same CRD.
  const r = await kubectl(["apply", "--server-side", "--force-conflicts", "-f", crdDir]);
  expect(r.code, r.stderr).toBe(0);
  await waitFor(
    async () => {
      const s = await kubectl([
        "get",
        "crd",
        CRD_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ]);
      return s.stdout.trim() === "True";
    },
    { timeoutMs: 60_000, intervalMs: 250, description: `CRD ${CRD_NAME} to be Established` },
  );
  // Discovery (short name, category) can lag behind Established.
  await waitFor(async () => (await kubectl(["get", "sm"])).code === 0, {
    timeoutMs: 60_000,
    intervalMs: 250,
    description: "`kubectl get sm` to resolve the short name",
  });
});

afterAll(async () => {
  if (created.size === 0) return;
  await kubectl(["delete", "slotmaps.slotmap.dev", "--ignore-not-found", "--wait=false", ...created]);
});

describe("SlotMap CRD", () => {
  it("is Established with its names, short name and category", async () => {
    const r = await kubectl(["get", "crd", CRD_NAME, "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const crd = JSON.parse(r.stdout) as {
      spec: { scope: string; names: { shortNames: string[]; categories: string[] } };
      status: { acceptedNames: { kind: string } };
    };
    expect(crd.spec.scope).toBe("Cluster");
    expect(crd.status.acceptedNames.kind).toBe("SlotMap");
    expect((await kubectl(["get", "slotmap"])).code).toBe(0); // category and singular
    const resources = await kubectl(["api-resources", "--api-group", GROUP, "--no-headers"]);
    expect(resources.stdout).toMatch(/^slotmaps\s+sm\s+slotmap\.dev\/v1alpha1\s+false\s+SlotMap/m);
  });

  describe("valid samples", () => {
    for (const f of loadSlotMapFixtures("valid")) {
      it(`${f.name} applies with --validate=strict${f.hasStatus ? " and its status through the status subresource" : ""}`, async () => {
        const doc = renamed(f);
        const applied = await applyStrict(withoutStatus(doc));
        expect(applied.code, applied.stderr).toBe(0);
        if (f.hasStatus) {
          const st = await replaceStatus(doc);
          expect(st.code, st.stderr).toBe(0);
        }
        // The API server's defaults are zod's defaults: both read the same object.
        const server = await getSlotMap(doc.metadata.name);
        const fromServer = zodParse(server);
        const local = zodParse(doc);
        expect(server.spec).toEqual(local.spec);
        if (f.hasStatus) expect(server.status).toEqual(local.status);
        expect(fromServer.spec).toEqual(local.spec);
      });
    }
  });

  it("kubectl get sm prints SHARDS READY GENERATION MIGRATING BALANCED AGE and the values", async () => {
    const f = loadSlotMapFixtures("valid").find((x) => x.name === "with-status.yaml")!;
    const name = renamed(f).metadata.name;
    await waitFor(async () => (await kubectl(["get", "sm", name])).code === 0, {
      description: `${name} to exist`,
    });
    const r = await kubectl(["get", "sm", name]);
    expect(r.code, r.stderr).toBe(0);
    const [header, row] = r.stdout.trim().split("\n");
    expect(header?.split(/\s+/)).toEqual([
      "NAME",
      "SHARDS",
      "READY",
      "GENERATION",
      "MIGRATING",
      "BALANCED",
      "AGE",
    ]);
    expect(row?.split(/\s+/).slice(0, 6)).toEqual([name, "3", "2", "42", "5461", "False"]);

    const wide = await kubectl(["get", "sm", name, "-o", "wide"]);
    expect(wide.stdout.split("\n")[0]).toMatch(/AGE\s+LEASE NAMESPACE\s+UNASSIGNED$/);
    expect(wide.stdout).toContain("checksums-system");
  });

  it("shows empty columns for a SlotMap without status", async () => {
    const f = loadSlotMapFixtures("valid").find((x) => x.name === "minimal.yaml")!;
    const name = renamed(f).metadata.name;
    await waitFor(async () => (await kubectl(["get", "sm", name])).code === 0, {
      description: `${name} to exist`,
    });
    const r = await kubectl(["get", "sm", name, "--no-headers"]);
    expect(r.stdout.trim().split(/\s+/)).toHaveLength(2); // NAME and AGE only
  });

  describe("invalid samples", () => {
    for (const f of loadSlotMapFixtures("invalid")) {
      const how = f.hasStatus ? "status subresource" : "apply --validate=strict";
      const title = f.zodOnly
        ? `${f.name}: accepted by the API server (zod-only check), rejected by zod naming ${f.expectField}`
        : `${f.name}: rejected by the API server (${how}) and by zod, both naming ${f.expectField}`;
      it(title, async () => {
        const zod = parseSlotMap(f.doc);
        expect(zod.ok).toBe(false);
        if (!zod.ok) expect(formatFieldErrors(zod.errors)).toContain(f.expectField!);

        const doc = renamed(f);
        let r: Awaited<ReturnType<typeof kubectl>>;
        if (f.hasStatus) {
          const spec = await applyStrict(withoutStatus(doc));
          expect(spec.code, `the spec of ${f.name} must be valid: ${spec.stderr}`).toBe(0);
          r = await replaceStatus(doc);
        } else {
          r = await applyStrict(doc);
        }
        if (f.zodOnly) {
          expect(r.code, r.stderr).toBe(0);
        } else {
          expect(r.code, `accepted: ${r.stdout}`).not.toBe(0);
          expect(r.stderr).toContain(f.expectField!);
        }
      });
    }
  });

  it("strict field validation names an unknown field; without it the field is pruned", async () => {
    const name = `unknown-field-${suffix}`;
    const doc = {
      apiVersion: "slotmap.dev/v1alpha1",
      kind: "SlotMap",
      metadata: { name },
      spec: { leaseNamespace: "x-system", resources: [{ resource: "secrets" }], shards: 3 },
    };
    const strict = await kubectl(["apply", "--validate=strict", "-f", "-"], { input: stringify(doc) });
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('unknown field "spec.shards"');

    const lax = await kubectl(["apply", "--validate=ignore", "-f", "-"], { input: stringify(doc) });
    expect(lax.code, lax.stderr).toBe(0);
    created.add(name);
    const server = await getSlotMap(name);
    expect(server.spec).not.toHaveProperty("shards");
  });

  it("takes a status written with client-node, as the coordinator writes it", async () => {
    const api = kubeConfig().makeApiClient(CustomObjectsApi);
    const name = `client-node-${suffix}`;
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "SlotMap",
      metadata: { name },
      spec: { leaseNamespace: "cn-system", resources: [{ resource: "secrets" }] },
    };
    const createdObj = (await api.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      body,
    })) as {
      metadata: { resourceVersion: string };
    };
    created.add(name);

    const owner = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
    owner.fill(0, 0, 8192);
    owner.fill(1, 8192, 12000);
    const table = makeTable(2, ["cn-0", "cn-1"], owner, [
      { slots: [{ start: 12000, end: 16383 }], from: "cn-0", to: "cn-1", generation: 2 },
    ]);
    const wire = tableToStatus(table);
    const status = {
      ...wire,
      shards: wire.shards.map((s) => ({ ...s, state: "Ready" })),
      shardCount: 2,
      readyShards: 2,
      migratingSlots: 4384,
    };
    await api.replaceClusterCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
      body: { ...body, metadata: { name, resourceVersion: createdObj.metadata.resourceVersion }, status },
    });
    const back = zodParse(
      await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name }),
    );
    expect(back.status).toMatchObject(wire);

    // A malformed status is refused with the field named in the error body (the CRD checks the
    // syntax of per-shard range lists; order and bounds are zod's, see docs/crd-reference.md).
    const bad = { ...status, shards: [{ name: "cn-0", state: "Ready", slots: "9-3x" }] };
    const current = {
      ...body,
      metadata: { name, resourceVersion: back.metadata.resourceVersion },
      status: bad,
    };
    const err = await api
      .replaceClusterCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name,
        body: current,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(422);
    expect(String((err as ApiException<unknown>).body)).toContain("status.shards[0].slots");
  });
});
