/**
 * Which key an object hashes by (DESIGN "Which key an object hashes by"):
 *
 * 1. Annotation `slotmap.dev/hash-key` present: that string, verbatim (no trimming).
 * 2. Object of a controlled resource: the key of its controller owner reference,
 *    `group/kind/namespace/ownerName`, where namespace is the object's own namespace (owner
 *    references carry no namespace). No controller owner: the object is not sharded.
 * 3. Otherwise the object's own key `group/kind/namespace/name` (empty group for the core
 *    group, empty namespace for cluster-scoped objects).
 *
 * Malformed input is a {@link KeyError} naming the field and value, never a guess.
 */
import { keySlot } from "./hash.js";

/** Annotation that overrides the key an object hashes by (the analog of Redis `{hash tags}`). */
export const HASH_KEY_ANNOTATION = "slotmap.dev/hash-key";

/** The parts of a `metav1.OwnerReference` the key rules read. */
export interface OwnerReferenceLike {
  apiVersion: string;
  kind: string;
  name: string;
  controller?: boolean;
  uid?: string;
}

/** The parts of a Kubernetes object the key rules read. */
export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReferenceLike[];
  };
}

/** An object whose sharding key cannot be determined. */
export class KeyError extends Error {
  /** Path of the offending field, e.g. `metadata.ownerReferences[0].apiVersion`. */
  readonly field: string;
  /** The offending value as found (may be `undefined` for a missing field). */
  readonly value: unknown;

  constructor(field: string, value: unknown, reason: string) {
    super(`${field}: ${reason} (got ${describe(value)})`);
    this.name = "KeyError";
    this.field = field;
    this.value = value;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// DNS-1123 subdomain (API group names) and DNS-1035 label (API versions), as Kubernetes validates them.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The API group of an apiVersion: `"v1"` → `""` (core), `"apps/v1"` → `"apps"`.
 *
 * @param field - path named in errors, default `apiVersion`.
 * @throws KeyError for anything that is not `version` or `group/version`.
 */
export function groupOfApiVersion(apiVersion: string, field = "apiVersion"): string {
  if (typeof apiVersion !== "string" || apiVersion === "") {
    throw new KeyError(field, apiVersion, 'missing apiVersion (expected "v1" or "group/version")');
  }
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const groupOk = slash < 0 || (group.length <= 253 && DNS_SUBDOMAIN.test(group));
  if (!groupOk || version.length > 63 || !DNS_LABEL.test(version)) {
    throw new KeyError(field, apiVersion, 'invalid apiVersion (expected "v1" or "group/version")');
  }
  return group;
}

/** The key `group/kind/namespace/name`; empty group for core, empty namespace for cluster-scoped. */
export function objectKey(group: string, kind: string, namespace: string, name: string): string {
  return `${group}/${kind}/${namespace}/${name}`;
}

/** How an object is sharded: by which key, found by which rule, or why it is not sharded. */
export type ShardingKey =
  | { sharded: true; key: string; via: "hash-key" | "controller" | "self" }
  | { sharded: false; reason: string };

function requireName(value: unknown, field: string, what: string): string {
  if (typeof value !== "string" || value === "") throw new KeyError(field, value, `missing ${what}`);
  return value;
}

function requireKind(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "") {
    throw new KeyError(
      field,
      value,
      "missing kind (items of a list response carry no kind; set it from the resource you listed)",
    );
  }
  return value;
}

function namespaceOf(meta: NonNullable<KubeObjectLike["metadata"]>): string {
  const ns = meta.namespace;
  if (ns === undefined || ns === null) return "";
  if (typeof ns !== "string") throw new KeyError("metadata.namespace", ns, "namespace must be a string");
  return ns;
}

/**
 * The key an object hashes by, following the rules in the module comment.
 *
 * @param opts.controlled - the object's resource is listed under a `controlledResources`, so it
 *   follows its controller owner.
 * @throws KeyError naming the field for: an empty or non-string hash-key annotation; a missing
 *   `metadata.name` (generateName objects are not supported as sharded roots); a missing kind; an
 *   invalid apiVersion (of the object or of its controller owner reference); more than one
 *   controller owner reference.
 */
export function shardingKey(obj: KubeObjectLike, opts: { controlled?: boolean } = {}): ShardingKey {
  const meta = obj.metadata ?? {};
  const annotations = meta.annotations;
  if (annotations !== undefined && annotations !== null && Object.hasOwn(annotations, HASH_KEY_ANNOTATION)) {
    const value: unknown = annotations[HASH_KEY_ANNOTATION];
    if (typeof value !== "string" || value === "") {
      throw new KeyError(
        `metadata.annotations["${HASH_KEY_ANNOTATION}"]`,
        value,
        "the hash-key annotation must be a non-empty string (remove it to hash by the object's key)",
      );
    }
    return { sharded: true, key: value, via: "hash-key" };
  }

  if (opts.controlled) {
    const refs = meta.ownerReferences ?? [];
    let found: { ref: OwnerReferenceLike; index: number } | undefined;
    for (let index = 0; index < refs.length; index++) {
      const ref = refs[index];
      if (ref?.controller !== true) continue;
      if (found !== undefined) {
        throw new KeyError(
          `metadata.ownerReferences[${index}].controller`,
          true,
          `more than one controller owner reference (also metadata.ownerReferences[${found.index}])`,
        );
      }
      found = { ref, index };
    }
    if (found === undefined)
      return { sharded: false, reason: "controlled resource without a controller owner" };
    const base = `metadata.ownerReferences[${found.index}]`;
    const group = groupOfApiVersion(found.ref.apiVersion, `${base}.apiVersion`);
    const kind = requireKind(found.ref.kind, `${base}.kind`);
    const name = requireName(found.ref.name, `${base}.name`, "owner name");
    return { sharded: true, key: objectKey(group, kind, namespaceOf(meta), name), via: "controller" };
  }

  const name = meta.name;
  if (typeof name !== "string" || name === "") {
    const generated = typeof meta.generateName === "string" && meta.generateName !== "";
    throw new KeyError(
      "metadata.name",
      name,
      generated
        ? `missing name: objects named by generateName (${JSON.stringify(meta.generateName)}) are not supported as sharded roots, because their slot depends on the name the API server has not chosen yet; set metadata.name or a ${HASH_KEY_ANNOTATION} annotation`
        : "missing name: a sharded object needs metadata.name",
    );
  }
  const kind = requireKind(obj.kind, "kind");
  const group = groupOfApiVersion(obj.apiVersion as string, "apiVersion");
  return { sharded: true, key: objectKey(group, kind, namespaceOf(meta), name), via: "self" };
}

/**
 * The slot of an object, or `undefined` when it is not sharded (a controlled object without a
 * controller owner).
 *
 * @throws KeyError as {@link shardingKey}.
 */
export function objectSlot(obj: KubeObjectLike, opts: { controlled?: boolean } = {}): number | undefined {
  const k = shardingKey(obj, opts);
  return k.sharded ? keySlot(k.key) : undefined;
}
