import { describe, expect, it } from "vitest";
import {
  selectorMatches as matchesSelector,
  selectorIsEmpty as selectsAll,
} from "../../../../src/api/selector.js";
import type { ResolvedResource } from "../../../../src/client/discovery.js";
import { SlotRules } from "../../../../src/client/rules.js";
import { keySlot } from "../../../../src/slots/hash.js";
import { KeyError } from "../../../../src/slots/keys.js";

const secrets: ResolvedResource = {
  group: "",
  version: "v1",
  apiVersion: "v1",
  resource: "secrets",
  kind: "Secret",
  namespaced: true,
  path: "/api/v1/secrets",
};
const configmaps: ResolvedResource = {
  ...secrets,
  resource: "configmaps",
  kind: "ConfigMap",
  path: "/api/v1/configmaps",
};
const widgets: ResolvedResource = {
  group: "example.com",
  version: "v1",
  apiVersion: "example.com/v1",
  resource: "widgets",
  kind: "Widget",
  namespaced: true,
  path: "/apis/example.com/v1/widgets",
};

function rules(namespaceSelector?: Parameters<typeof matchesSelector>[0]): SlotRules {
  return new SlotRules(
    [
      { resource: secrets, controlled: false, roots: [] },
      { resource: widgets, controlled: false, roots: [] },
      { resource: configmaps, controlled: true, roots: [secrets] },
    ],
    namespaceSelector,
  );
}

const secret = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: "ns", ...extra },
});
const owned = (
  owner: { apiVersion: string; kind: string; name: string },
  annotations?: Record<string, string>,
) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: {
    name: "cm",
    namespace: "ns",
    annotations,
    ownerReferences: [{ ...owner, uid: "u", controller: true }],
  },
});

describe("SlotRules", () => {
  it("places a root by its own key and a controlled object by its controller's", () => {
    const r = rules();
    expect(r.place(secret("db"))).toEqual({
      sharded: true,
      slot: keySlot("/Secret/ns/db"),
      rootKey: "/Secret/ns/db",
    });
    expect(r.place(owned({ apiVersion: "v1", kind: "Secret", name: "db" }))).toEqual({
      sharded: true,
      slot: keySlot("/Secret/ns/db"),
      rootKey: "/Secret/ns/db",
    });
    const w = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w", namespace: "ns" } };
    expect(r.place(w)).toMatchObject({ rootKey: "example.com/Widget/ns/w" });
  });

  it("does not shard other kinds, or controlled objects without a controller", () => {
    const r = rules();
    expect(
      r.place({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x", namespace: "ns" } })
        .sharded,
    ).toBe(false);
    const orphan = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "ns" } };
    expect(r.place(orphan).sharded).toBe(false);
    expect(r.slotOf(orphan)).toBeUndefined();
  });

  it("hashes by the hash-key annotation but still reconciles the root (itself or its controller)", () => {
    const r = rules();
    expect(r.place(secret("db", { annotations: { "slotmap.dev/hash-key": "tenant-a" } }))).toEqual({
      sharded: true,
      slot: keySlot("tenant-a"),
      rootKey: "/Secret/ns/db",
    });
    expect(
      r.place(owned({ apiVersion: "v1", kind: "Secret", name: "db" }, { "slotmap.dev/hash-key": "t" })),
    ).toEqual({
      sharded: true,
      slot: keySlot("t"),
      rootKey: "/Secret/ns/db",
    });
  });

  it("throws KeyError naming the field for an unkeyable root; slotOf returns undefined", () => {
    const r = rules();
    const bad = { apiVersion: "v1", kind: "Secret", metadata: { generateName: "x-", namespace: "ns" } };
    expect(() => r.place(bad)).toThrow(KeyError);
    expect(() => r.place(bad)).toThrow(/metadata\.name/);
    expect(r.slotOf(bad)).toBeUndefined();
  });

  it("shards only objects in namespaces matching the namespace selector", () => {
    const r = rules({ matchLabels: { team: "a" } });
    const labels: Record<string, Record<string, string>> = { ns: { team: "a" }, other: { team: "b" } };
    r.useNamespaceLabels({ labelsOf: (ns) => labels[ns] });
    expect(r.place(secret("db")).sharded).toBe(true);
    expect(r.place({ ...secret("db"), metadata: { name: "db", namespace: "other" } }).sharded).toBe(false);
    expect(r.place({ ...secret("db"), metadata: { name: "db", namespace: "unknown" } }).sharded).toBe(false);
    // An empty selector selects everything and needs no namespace labels.
    expect(rules({}).namespaceSelector).toBeUndefined();
    expect(rules({}).place({ ...secret("db"), metadata: { name: "db", namespace: "unknown" } }).sharded).toBe(
      true,
    );
  });
});

describe("matchesSelector", () => {
  it("implements matchLabels and the four operators", () => {
    const l = { a: "1", b: "2" };
    expect(matchesSelector(undefined, l)).toBe(true);
    expect(matchesSelector({ matchLabels: { a: "1" } }, l)).toBe(true);
    expect(matchesSelector({ matchLabels: { a: "2" } }, l)).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: "a", operator: "In", values: ["1", "3"] }] }, l)).toBe(
      true,
    );
    expect(matchesSelector({ matchExpressions: [{ key: "c", operator: "In", values: ["1"] }] }, l)).toBe(
      false,
    );
    expect(matchesSelector({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["1"] }] }, l)).toBe(
      false,
    );
    expect(matchesSelector({ matchExpressions: [{ key: "c", operator: "NotIn", values: ["1"] }] }, l)).toBe(
      true,
    );
    expect(matchesSelector({ matchExpressions: [{ key: "b", operator: "Exists" }] }, l)).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: "b", operator: "DoesNotExist" }] }, l)).toBe(false);
    expect(selectsAll({ matchLabels: {}, matchExpressions: [] })).toBe(true);
    expect(selectsAll({ matchLabels: { a: "1" } })).toBe(false);
  });
});
