// Key rules over random objects: owned objects land in their owner's slot, the hash-key annotation
// always wins, own keys follow group/kind/namespace/name, and bad owner references are named.
import fc from "fast-check";
import { describe, expect } from "vitest";
import {
  HASH_KEY_ANNOTATION,
  KeyError,
  type KubeObjectLike,
  keySlot,
  type OwnerReferenceLike,
  objectSlot,
  shardingKey,
} from "../../src/slots/index.js";
import { itProp } from "../support/fc.js";

const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,14}[a-z0-9])?$/);
const group = fc.oneof(
  fc.constant(""),
  fc.constantFrom("apps", "batch", "networking.k8s.io", "slotmap.dev"),
  fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((ls) => ls.join(".")),
);
const version = fc.constantFrom("v1", "v1beta1", "v2alpha3");
const apiVersion = fc
  .tuple(group, version)
  .map(([g, v]) => ({ group: g, apiVersion: g === "" ? v : `${g}/${v}` }));
const kind = fc.stringMatching(/^[A-Z][A-Za-z0-9]{0,15}$/);
const name = fc.stringMatching(/^[a-z0-9]([-.a-z0-9]{0,30}[a-z0-9])?$/);
const namespace = fc.oneof(fc.constant(undefined), fc.constant(""), dnsLabel);
const nonController = fc.record({
  apiVersion: fc.constant("v1"),
  kind,
  name,
  controller: fc.constantFrom(undefined, false),
});

describe("key rules", () => {
  itProp("an object's own key is group/kind/namespace/name", () =>
    fc.property(apiVersion, kind, namespace, name, (av, k, ns, n) => {
      const obj: KubeObjectLike = {
        apiVersion: av.apiVersion,
        kind: k,
        metadata: { name: n, namespace: ns },
      };
      expect(shardingKey(obj)).toEqual({
        sharded: true,
        key: `${av.group}/${k}/${ns ?? ""}/${n}`,
        via: "self",
      });
    }),
  );

  itProp("a controlled object lands in its controller owner's slot", () =>
    fc.property(
      apiVersion,
      kind,
      namespace,
      name,
      fc.array(nonController, { maxLength: 3 }),
      fc.nat(),
      fc.option(name, { nil: undefined }),
      (av, k, ns, ownerName, others, at, childName) => {
        const owner: KubeObjectLike = {
          apiVersion: av.apiVersion,
          kind: k,
          metadata: { name: ownerName, namespace: ns },
        };
        const ref: OwnerReferenceLike = {
          apiVersion: av.apiVersion,
          kind: k,
          name: ownerName,
          controller: true,
        };
        const refs: OwnerReferenceLike[] = [...others];
        refs.splice(at % (refs.length + 1), 0, ref);
        const child: KubeObjectLike = {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: childName, generateName: "x-", namespace: ns, ownerReferences: refs },
        };
        expect(objectSlot(child, { controlled: true })).toBe(objectSlot(owner));
        expect(shardingKey(child, { controlled: true })).toMatchObject({ via: "controller" });
      },
    ),
  );

  itProp("a controlled object without a controller owner is not sharded", () =>
    fc.property(fc.array(nonController, { maxLength: 4 }), namespace, name, (refs, ns, n) => {
      const obj: KubeObjectLike = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: n, namespace: ns, ownerReferences: refs },
      };
      expect(shardingKey(obj, { controlled: true }).sharded).toBe(false);
      expect(objectSlot(obj, { controlled: true })).toBeUndefined();
      // The same object of a root resource is sharded by its own key.
      expect(shardingKey(obj)).toMatchObject({ sharded: true, via: "self" });
    }),
  );

  itProp("the hash-key annotation wins, whatever else the object has", () =>
    fc.property(
      fc.string({ minLength: 1, unit: "grapheme" }),
      fc.boolean(),
      fc.option(name, { nil: undefined }),
      fc.array(fc.record({ apiVersion: fc.constant("apps/v1"), kind, name, controller: fc.boolean() }), {
        maxLength: 1,
      }),
      (value, controlled, n, refs) => {
        const obj: KubeObjectLike = {
          metadata: {
            name: n,
            annotations: { [HASH_KEY_ANNOTATION]: value, other: "x" },
            ownerReferences: refs,
          },
        };
        expect(shardingKey(obj, { controlled })).toEqual({ sharded: true, key: value, via: "hash-key" });
        expect(objectSlot(obj, { controlled })).toBe(keySlot(value));
      },
    ),
  );

  itProp("a malformed apiVersion in the controller owner reference is a KeyError naming it", () =>
    fc.property(
      fc
        .string({ maxLength: 12 })
        .filter(
          (s) =>
            !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[a-z]([-a-z0-9]*[a-z0-9])?$/.test(
              s,
            ),
        ),
      fc.array(nonController, { maxLength: 3 }),
      (bad, before) => {
        const refs: OwnerReferenceLike[] = [
          ...before,
          { apiVersion: bad, kind: "Secret", name: "s", controller: true },
        ];
        const obj: KubeObjectLike = {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "c", ownerReferences: refs },
        };
        let err: unknown;
        try {
          shardingKey(obj, { controlled: true });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(KeyError);
        expect(err).toMatchObject({
          field: `metadata.ownerReferences[${before.length}].apiVersion`,
          value: bad,
        });
        expect((err as Error).message).toContain(`metadata.ownerReferences[${before.length}].apiVersion`);
      },
    ),
  );
});
