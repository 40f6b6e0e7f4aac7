// `which`: the sharding key rules applied to live objects, and the owner lookup.
import { describe, expect, it } from "vitest";
import { selectorIsEmpty, selectorMatches } from "../../../src/api/selector.js";
import type { Placement } from "../../../src/cli/commands/which.js";
import { keySlot, objectKey, xxh64Hex } from "../../../src/slots/index.js";
import { FakeClient, fixture, run } from "./helpers.js";

function setup(): FakeClient {
  const c = new FakeClient();
  c.addSlotMap(fixture("with-status.yaml"));
  return c;
}

const secret = (name: string, annotations?: Record<string, string>) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: "apps", ...(annotations ? { annotations } : {}) },
});

async function which(c: FakeClient, argv: string[]): Promise<Placement[]> {
  const r = await run(["which", ...argv, "-o", "json"], { client: c, namespace: "apps" });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).placements;
}

/** A secret name whose key hashes into [lo, hi]. */
function nameInRange(lo: number, hi: number): string {
  for (let i = 0; ; i++) {
    const s = keySlot(objectKey("", "Secret", "apps", `s-${i}`));
    if (s >= lo && s <= hi) return `s-${i}`;
  }
}

describe("which", () => {
  it("a root object hashes by its own key and names its owner", async () => {
    const c = setup();
    const name = nameInRange(0, 5461);
    c.addObject("secrets", secret(name));
    const key = objectKey("", "Secret", "apps", name);
    const [p] = await which(c, ["secrets", name]);
    expect(p).toEqual({
      slotmap: "with-status",
      assignmentGeneration: 42,
      role: "root",
      sharded: true,
      key,
      via: "self",
      slot: keySlot(key),
      xxh64: xxh64Hex(key),
      owner: "checksums-0",
      ownerState: "Ready",
    });
    const text = await run(["which", "secret", name], { client: c, namespace: "apps" });
    expect(text.stdout).toContain(`Object:   secrets/${name} in namespace apps`);
    expect(text.stdout).toContain(`Slot:     ${keySlot(key)} (xxh64 ${xxh64Hex(key)})`);
    expect(text.stdout).toContain("Owner:    checksums-0 (Ready)");
  });

  it("a slot in a migration has no owner and says who must ack", async () => {
    const c = setup();
    const name = nameInRange(10923, 16383);
    c.addObject("secrets", secret(name));
    const [p] = await which(c, ["secrets", name]);
    expect(p!.owner).toBeUndefined();
    expect(p!.migration).toEqual({ from: "checksums-2", to: "checksums-1", generation: 42 });
    const text = await run(["which", "secrets", name], { client: c, namespace: "apps" });
    expect(text.stdout).toContain(
      "Owner:    none: migrating checksums-2 → checksums-1, waiting for checksums-2 to ack generation 42",
    );
  });

  it("the hash-key annotation wins", async () => {
    const c = setup();
    c.addObject("secrets", secret("tagged", { "slotmap.dev/hash-key": "tenant-7" }));
    const [p] = await which(c, ["secrets", "tagged"]);
    expect(p).toMatchObject({ key: "tenant-7", via: "hash-key", slot: keySlot("tenant-7") });
  });

  it("a controlled object follows its controller owner; without one it is not sharded", async () => {
    const c = setup();
    const owner = { apiVersion: "v1", kind: "Secret", name: "db", uid: "u", controller: true };
    c.addObject("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "db-checksum", namespace: "apps", ownerReferences: [owner] },
    });
    c.addObject("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "loose", namespace: "apps" },
    });
    const [p] = await which(c, ["configmaps", "db-checksum"]);
    expect(p).toMatchObject({ role: "controlled", via: "controller", key: "/Secret/apps/db" });
    const [q] = await which(c, ["configmaps", "loose"]);
    expect(q).toMatchObject({
      role: "controlled",
      sharded: false,
      reason: "controlled resource without a controller owner",
    });
  });

  it("a namespace outside spec.namespaceSelector is not sharded", async () => {
    const c = new FakeClient();
    c.addSlotMap(fixture("full.yaml"));
    c.addObject("secrets", secret("db"));
    c.namespaces.set("apps", {
      metadata: { name: "apps", labels: { "slotmap.dev/sharded": "true", environment: "dev" } },
    });
    const [p] = await which(c, ["secrets", "db"]);
    expect(p).toMatchObject({
      sharded: false,
      reason: 'namespace "apps" does not match spec.namespaceSelector',
    });
    c.namespaces.set("apps", {
      metadata: { name: "apps", labels: { "slotmap.dev/sharded": "true", environment: "staging" } },
    });
    const [q] = await which(c, ["secrets", "db"]);
    expect(q).toMatchObject({ sharded: true, via: "self" });
  });

  it("an empty namespaceSelector needs no read of the namespace", async () => {
    const c = new FakeClient();
    c.addSlotMap(fixture("checksums.yaml")); // namespaceSelector: {}
    c.addObject("secrets", secret("db"));
    const [p] = await which(c, ["secrets", "db"]); // c.namespaces is empty: a read would 404
    expect(p).toMatchObject({ sharded: true, key: "/Secret/apps/db" });
  });

  it("errors name the resource, the object and the SlotMap", async () => {
    const c = setup();
    let r = await run(["which", "widgets", "x"], { client: c });
    expect(r).toMatchObject({
      code: 1,
      stderr: 'error: the server doesn\'t have a resource type "widgets"\n',
    });
    r = await run(["which", "secrets", "nope"], { client: c, namespace: "apps" });
    expect(r).toMatchObject({ code: 1, stderr: 'error: secrets "nope" in namespace "apps" not found\n' });
    c.addObject("deployments", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: "apps" },
    });
    r = await run(["which", "deployments.apps", "web"], { client: c, namespace: "apps" });
    expect(r).toMatchObject({
      code: 1,
      stderr:
        "error: no SlotMap shards deployments.apps: none lists it in spec.resources (1 SlotMap checked: with-status)\n",
    });
    r = await run(["which", "deployments.apps", "web", "--slotmap", "with-status"], {
      client: c,
      namespace: "apps",
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Sharded:  no: deployments.apps is not listed in spec.resources");
    c.addObject("secrets", secret("bad", { "slotmap.dev/hash-key": "" }));
    r = await run(["which", "secrets", "bad"], { client: c, namespace: "apps" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^error: cannot compute the sharding key of secrets "bad": metadata\.annotations\["slotmap\.dev\/hash-key"\]/,
    );
  });
});

describe("selectorMatches (Kubernetes semantics)", () => {
  const labels = { env: "prod", tier: "web" };
  it.each([
    [{}, true],
    [{ matchLabels: { env: "prod" } }, true],
    [{ matchLabels: { env: "dev" } }, false],
    [{ matchExpressions: [{ key: "env", operator: "In" as const, values: ["prod", "staging"] }] }, true],
    [{ matchExpressions: [{ key: "zone", operator: "In" as const, values: ["a"] }] }, false],
    [{ matchExpressions: [{ key: "zone", operator: "NotIn" as const, values: ["a"] }] }, true],
    [{ matchExpressions: [{ key: "env", operator: "NotIn" as const, values: ["prod"] }] }, false],
    [{ matchExpressions: [{ key: "tier", operator: "Exists" as const }] }, true],
    [{ matchExpressions: [{ key: "tier", operator: "DoesNotExist" as const }] }, false],
    [
      { matchLabels: { env: "prod" }, matchExpressions: [{ key: "zone", operator: "Exists" as const }] },
      false,
    ],
  ])("%j → %s", (selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });

  it("selectorIsEmpty", () => {
    expect(selectorIsEmpty(undefined)).toBe(true);
    expect(selectorIsEmpty({ matchLabels: {}, matchExpressions: [] })).toBe(true);
    expect(selectorIsEmpty({ matchLabels: { a: "b" } })).toBe(false);
  });
});
