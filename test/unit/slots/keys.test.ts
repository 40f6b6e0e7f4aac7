// Key rules (DESIGN "Which key an object hashes by"): hash-key annotation, then controller owner
// for controlled resources, then the object's own key; KeyError names the field and the value.
import { describe, expect, it } from "vitest";
import {
  groupOfApiVersion,
  HASH_KEY_ANNOTATION,
  KeyError,
  type KubeObjectLike,
  keySlot,
  objectKey,
  objectSlot,
  shardingKey,
} from "../../../src/slots/index.js";

const secret = (meta: KubeObjectLike["metadata"], extra: Partial<KubeObjectLike> = {}): KubeObjectLike => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: meta,
  ...extra,
});

/** Calls `f`, expects a KeyError, and returns it for field/value/message checks. */
function keyError(f: () => unknown): KeyError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KeyError);
    return e as KeyError;
  }
  throw new Error("expected a KeyError, nothing was thrown");
}

describe("groupOfApiVersion", () => {
  it.each([
    ["v1", ""],
    ["apps/v1", "apps"],
    ["networking.k8s.io/v1", "networking.k8s.io"],
    ["slotmap.dev/v1alpha1", "slotmap.dev"],
    ["batch/v2beta1", "batch"],
  ])("%s -> %j", (apiVersion, group) => {
    expect(groupOfApiVersion(apiVersion)).toBe(group);
  });

  it.each(["", "apps/", "/v1", "Apps/v1", "apps/v1/extra", "v 1", "apps/V1", "apps/1v", "-apps/v1"])(
    "rejects %j naming the field and value",
    (apiVersion) => {
      const e = keyError(() => groupOfApiVersion(apiVersion, "spec.thing.apiVersion"));
      expect(e.field).toBe("spec.thing.apiVersion");
      expect(e.value).toBe(apiVersion);
      expect(e.message).toContain("spec.thing.apiVersion");
      expect(e.message).toContain(JSON.stringify(apiVersion));
    },
  );
});

describe("objectKey", () => {
  it("joins group/kind/namespace/name with empty group and namespace kept", () => {
    expect(objectKey("", "Secret", "default", "foo")).toBe("/Secret/default/foo");
    expect(objectKey("apps", "Deployment", "ns", "x")).toBe("apps/Deployment/ns/x");
    expect(objectKey("", "Namespace", "", "kube-system")).toBe("/Namespace//kube-system");
  });
});

describe("shardingKey: own key (rule 3)", () => {
  it("uses group/kind/namespace/name", () => {
    expect(shardingKey(secret({ name: "foo", namespace: "default" }))).toEqual({
      sharded: true,
      key: "/Secret/default/foo",
      via: "self",
    });
    expect(
      shardingKey({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x", namespace: "ns" } }),
    ).toEqual({ sharded: true, key: "apps/Deployment/ns/x", via: "self" });
  });

  it("uses an empty namespace for cluster-scoped objects", () => {
    const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: "kube-system" } };
    expect(shardingKey(ns)).toEqual({ sharded: true, key: "/Namespace//kube-system", via: "self" });
    expect(objectSlot(ns)).toBe(keySlot("/Namespace//kube-system"));
  });

  it("ignores owner references when the resource is not controlled", () => {
    const obj = secret({
      name: "foo",
      namespace: "default",
      ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "d", controller: true }],
    });
    expect(shardingKey(obj)).toEqual({ sharded: true, key: "/Secret/default/foo", via: "self" });
    expect(shardingKey(obj, { controlled: false })).toMatchObject({ via: "self" });
  });

  it("rejects an object named by generateName, naming metadata.name and the generateName", () => {
    const e = keyError(() => shardingKey(secret({ generateName: "foo-", namespace: "default" })));
    expect(e.field).toBe("metadata.name");
    expect(e.value).toBeUndefined();
    expect(e.message).toMatch(/^metadata\.name: /);
    expect(e.message).toContain('generateName ("foo-")');
    expect(e.message).toContain("not supported as sharded roots");
  });

  it("rejects an object without any name", () => {
    const e = keyError(() => shardingKey(secret({ namespace: "default" })));
    expect(e.field).toBe("metadata.name");
    expect(e.message).toContain("missing name");
    const e2 = keyError(() => shardingKey(secret({ name: "", namespace: "default" })));
    expect(e2.value).toBe("");
    expect(keyError(() => shardingKey({ apiVersion: "v1", kind: "Secret" })).field).toBe("metadata.name");
  });

  it("rejects an object without kind", () => {
    const e = keyError(() =>
      shardingKey({ apiVersion: "v1", metadata: { name: "foo", namespace: "default" } }),
    );
    expect(e.field).toBe("kind");
    expect(e.value).toBeUndefined();
    expect(e.message).toMatch(/^kind: missing kind/);
  });

  it("rejects an object with a bad or missing apiVersion", () => {
    const e = keyError(() => shardingKey(secret({ name: "foo" }, { apiVersion: "apps/" })));
    expect(e.field).toBe("apiVersion");
    expect(e.value).toBe("apps/");
    expect(e.message).toContain('"apps/"');
    expect(keyError(() => shardingKey({ kind: "Secret", metadata: { name: "foo" } })).field).toBe(
      "apiVersion",
    );
  });

  it("rejects a namespace that is not a string", () => {
    const obj = secret({ name: "foo", namespace: 7 as unknown as string });
    const e = keyError(() => shardingKey(obj));
    expect(e.field).toBe("metadata.namespace");
    expect(e.value).toBe(7);
  });
});

describe("shardingKey: controller owner (rule 2)", () => {
  const owned = (refs: NonNullable<KubeObjectLike["metadata"]>["ownerReferences"], name?: string) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "default", ownerReferences: refs },
  });

  it("hashes by the controller owner's key in the object's namespace", () => {
    const obj = owned(
      [
        { apiVersion: "v1", kind: "Secret", name: "other", uid: "u1" }, // not the controller
        { apiVersion: "v1", kind: "Secret", name: "foo", controller: true, uid: "u2" },
      ],
      "foo-checksum",
    );
    expect(shardingKey(obj, { controlled: true })).toEqual({
      sharded: true,
      key: "/Secret/default/foo",
      via: "controller",
    });
    // Owned objects land in their owner's slot.
    expect(objectSlot(obj, { controlled: true })).toBe(
      objectSlot(secret({ name: "foo", namespace: "default" })),
    );
  });

  it("takes the group from the owner reference's apiVersion", () => {
    const rs = {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: {
        name: "nginx-7c5ddbdf54",
        namespace: "web",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "nginx", controller: true }],
      },
    };
    expect(shardingKey(rs, { controlled: true })).toMatchObject({ key: "apps/Deployment/web/nginx" });
  });

  it("uses an empty namespace for a cluster-scoped controlled object", () => {
    const obj = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: {
        name: "b",
        ownerReferences: [
          { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", name: "r", controller: true },
        ],
      },
    };
    expect(shardingKey(obj, { controlled: true })).toMatchObject({
      key: "rbac.authorization.k8s.io/ClusterRole//r",
    });
  });

  it("does not need the object's own name (generateName children of a controller)", () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        generateName: "nginx-",
        namespace: "web",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "nginx-1", controller: true }],
      },
    };
    expect(shardingKey(pod, { controlled: true })).toMatchObject({ key: "apps/ReplicaSet/web/nginx-1" });
  });

  it("is not sharded without a controller owner", () => {
    for (const refs of [
      undefined,
      [],
      [{ apiVersion: "v1", kind: "Secret", name: "foo" }],
      [{ apiVersion: "v1", kind: "Secret", name: "foo", controller: false }],
    ]) {
      const obj = owned(refs, "cm");
      const k = shardingKey(obj, { controlled: true });
      expect(k.sharded).toBe(false);
      expect(k).toHaveProperty("reason");
      expect(objectSlot(obj, { controlled: true })).toBeUndefined();
    }
  });

  it("rejects a bad apiVersion in the controller owner reference, naming its index", () => {
    const obj = owned([
      { apiVersion: "v1", kind: "Secret", name: "x" },
      { apiVersion: "apps/", kind: "Deployment", name: "d", controller: true },
    ]);
    const e = keyError(() => shardingKey(obj, { controlled: true }));
    expect(e.field).toBe("metadata.ownerReferences[1].apiVersion");
    expect(e.value).toBe("apps/");
    expect(e.message).toMatch(/^metadata\.ownerReferences\[1\]\.apiVersion: /);
    expect(e.message).toContain('"apps/"');
  });

  it("rejects a controller owner reference without kind or name", () => {
    const noKind = keyError(() =>
      shardingKey(owned([{ apiVersion: "v1", kind: "", name: "foo", controller: true }]), {
        controlled: true,
      }),
    );
    expect(noKind.field).toBe("metadata.ownerReferences[0].kind");
    expect(noKind.value).toBe("");
    const noName = keyError(() =>
      shardingKey(owned([{ apiVersion: "v1", kind: "Secret", name: "", controller: true }]), {
        controlled: true,
      }),
    );
    expect(noName.field).toBe("metadata.ownerReferences[0].name");
  });

  it("rejects two controller owner references", () => {
    const obj = owned([
      { apiVersion: "v1", kind: "Secret", name: "a", controller: true },
      { apiVersion: "v1", kind: "Secret", name: "b", controller: true },
    ]);
    const e = keyError(() => shardingKey(obj, { controlled: true }));
    expect(e.field).toBe("metadata.ownerReferences[1].controller");
    expect(e.message).toContain("metadata.ownerReferences[0]");
  });
});

describe("shardingKey: hash-key annotation (rule 1)", () => {
  const annotated = (value: string, extra: Partial<NonNullable<KubeObjectLike["metadata"]>> = {}) =>
    secret({ name: "db", namespace: "team-a", annotations: { [HASH_KEY_ANNOTATION]: value }, ...extra });

  it("hashes by the annotation value, verbatim", () => {
    expect(HASH_KEY_ANNOTATION).toBe("slotmap.dev/hash-key");
    expect(shardingKey(annotated("tenant-42"))).toEqual({ sharded: true, key: "tenant-42", via: "hash-key" });
    expect(shardingKey(annotated(" tenant-42 "))).toMatchObject({ key: " tenant-42 " });
    expect(objectSlot(annotated("tenant-42"))).toBe(keySlot("tenant-42"));
    expect(objectSlot(annotated("租户"))).toBe(keySlot("租户"));
  });

  it("wins over the controller owner and over a missing name", () => {
    const obj = annotated("tenant-42", {
      name: undefined,
      generateName: "db-",
      ownerReferences: [{ apiVersion: "v1", kind: "Secret", name: "foo", controller: true }],
    });
    expect(shardingKey(obj, { controlled: true })).toEqual({
      sharded: true,
      key: "tenant-42",
      via: "hash-key",
    });
    expect(shardingKey(obj)).toMatchObject({ via: "hash-key" });
    // A controlled object without a controller owner is still sharded by its hash key.
    expect(shardingKey(annotated("t"), { controlled: true })).toMatchObject({ sharded: true, key: "t" });
  });

  it("ignores other annotations", () => {
    const obj = secret({ name: "foo", namespace: "default", annotations: { "slotmap.dev/other": "x" } });
    expect(shardingKey(obj)).toMatchObject({ via: "self", key: "/Secret/default/foo" });
  });

  it("rejects an empty annotation, naming the annotation", () => {
    const e = keyError(() => shardingKey(annotated("")));
    expect(e.field).toBe('metadata.annotations["slotmap.dev/hash-key"]');
    expect(e.value).toBe("");
    expect(e.message).toContain("slotmap.dev/hash-key");
  });
});
