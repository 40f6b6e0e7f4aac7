/**
 * Which slot an object of a SlotMap's resources lands in: the key rules of src/slots/keys.ts
 * applied with the SlotMap's `spec.resources` (root resources hash by their own key, their
 * `controlledResources` by their controller owner's key) and, when the SlotMap has one, its
 * `namespaceSelector` (objects in other namespaces are not sharded: every shard ignores them).
 */
import { selectorIsEmpty, selectorMatches } from "../api/selector.js";
import type { LabelSelector, SlotMapSpec } from "../api/v1alpha1.js";
import { keySlot } from "../slots/hash.js";
import {
  groupOfApiVersion,
  HASH_KEY_ANNOTATION,
  KeyError,
  type KubeObjectLike,
  shardingKey,
} from "../slots/keys.js";
import type { ResolvedResource, ResourceResolver } from "./discovery.js";

/** A resource of the SlotMap and how its objects are sharded. */
export interface ResourceRule {
  readonly resource: ResolvedResource;
  /** Listed under a `controlledResources`: objects follow their controller owner. */
  readonly controlled: boolean;
  /** For a controlled resource: the root resources it is listed under. Empty for roots. */
  readonly roots: readonly ResolvedResource[];
  /** Server-side selectors of its lists and watches (`spec.resources[].labelSelector`, …). */
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
}

/** Where an object lands: its slot and the key of the root object to reconcile. */
export type Placement =
  | {
      readonly sharded: true;
      readonly slot: number;
      /** `group/Kind/namespace/name` of the root object (the owner for a controlled object). */
      readonly rootKey: string;
    }
  | { readonly sharded: false; readonly reason: string };

/** Labels of namespaces, for a SlotMap with a `namespaceSelector`. */
export interface NamespaceLabels {
  /** Labels of a namespace, or undefined when unknown (not observed yet, or deleted). */
  labelsOf(namespace: string): Readonly<Record<string, string>> | undefined;
}

/**
 * The sharding rules of one SlotMap spec, with its resources resolved through discovery.
 * Immutable: a changed spec gives new rules.
 */
export class SlotRules {
  /** Every resource, roots first, in spec order. */
  readonly resources: readonly ResourceRule[];
  /** `spec.namespaceSelector`, when it selects only some namespaces. */
  readonly namespaceSelector: LabelSelector | undefined;
  readonly #byKind: ReadonlyMap<string, ResourceRule>;
  #namespaces: NamespaceLabels | undefined;

  constructor(resources: readonly ResourceRule[], namespaceSelector: LabelSelector | undefined) {
    this.resources = resources;
    this.namespaceSelector = selectorIsEmpty(namespaceSelector) ? undefined : namespaceSelector;
    const byKind = new Map<string, ResourceRule>();
    for (const r of resources) byKind.set(`${r.resource.group}/${r.resource.kind}`, r);
    this.#byKind = byKind;
  }

  /**
   * Resolves the resources of a SlotMap spec.
   *
   * @throws DiscoveryError naming `spec.resources[i]...` for a resource the API server does not serve.
   */
  static async fromSpec(spec: SlotMapSpec, resolver: ResourceResolver): Promise<SlotRules> {
    const roots: ResourceRule[] = [];
    const controlled = new Map<
      string,
      {
        resource: ResolvedResource;
        roots: ResolvedResource[];
        labelSelector?: string;
        fieldSelector?: string;
      }
    >();
    for (const [i, r] of spec.resources.entries()) {
      const root = await resolver.resolve(r, `spec.resources[${i}]`);
      roots.push({
        resource: root,
        controlled: false,
        roots: [],
        labelSelector: r.labelSelector,
        fieldSelector: r.fieldSelector,
      });
      for (const [j, c] of (r.controlledResources ?? []).entries()) {
        const id = `${c.group}/${c.resource}`;
        let entry = controlled.get(id);
        if (entry === undefined) {
          entry = {
            resource: await resolver.resolve(c, `spec.resources[${i}].controlledResources[${j}]`),
            roots: [],
            ...(c.labelSelector !== undefined ? { labelSelector: c.labelSelector } : {}),
            ...(c.fieldSelector !== undefined ? { fieldSelector: c.fieldSelector } : {}),
          };
          controlled.set(id, entry);
        }
        entry.roots.push(root);
      }
    }
    const rules: ResourceRule[] = [
      ...roots,
      ...[...controlled.values()].map((c) => ({
        resource: c.resource,
        controlled: true,
        roots: c.roots,
        labelSelector: c.labelSelector,
        fieldSelector: c.fieldSelector,
      })),
    ];
    return new SlotRules(rules, spec.namespaceSelector);
  }

  /** Supplies namespace labels for the namespace selector (set by the shard member). */
  useNamespaceLabels(namespaces: NamespaceLabels | undefined): void {
    this.#namespaces = namespaces;
  }

  /** The rule for objects of `apiVersion`/`kind`, or undefined if the SlotMap does not shard them. */
  ruleFor(apiVersion: string, kind: string): ResourceRule | undefined {
    let group: string;
    try {
      group = groupOfApiVersion(apiVersion);
    } catch {
      return undefined;
    }
    return this.#byKind.get(`${group}/${kind}`);
  }

  /** Whether objects in `namespace` are sharded (always true without a namespace selector). */
  namespaceSelected(namespace: string): boolean {
    if (this.namespaceSelector === undefined || namespace === "") return true;
    const labels = this.#namespaces?.labelsOf(namespace);
    return labels !== undefined && selectorMatches(this.namespaceSelector, labels);
  }

  /**
   * Where an object lands. `rule` defaults to the rule of the object's apiVersion and kind.
   *
   * @throws KeyError naming the field for an object whose key cannot be determined (see
   *   `shardingKey`), e.g. a root without a name or with two controller owners.
   */
  place(obj: KubeObjectLike, rule?: ResourceRule): Placement {
    const r = rule ?? this.ruleFor(obj.apiVersion ?? "", obj.kind ?? "");
    if (r === undefined) return { sharded: false, reason: "not a resource of this SlotMap" };
    const ns = obj.metadata?.namespace ?? "";
    if (!this.namespaceSelected(ns)) {
      return {
        sharded: false,
        reason: `namespace ${JSON.stringify(ns)} is not selected by spec.namespaceSelector`,
      };
    }
    const k = shardingKey(obj, { controlled: r.controlled });
    if (!k.sharded) return k;
    const slot = keySlot(k.key);
    if (k.via !== "hash-key") return { sharded: true, slot, rootKey: k.key };
    // hash-key annotation: the slot comes from the annotation; the root is still the object
    // itself, or its controller owner for a controlled object.
    const own = shardingKey(stripHashKey(obj), { controlled: r.controlled });
    if (!own.sharded) return { sharded: false, reason: own.reason };
    return { sharded: true, slot, rootKey: own.key };
  }

  /** The slot of an object, or undefined when it is not sharded (never throws). */
  slotOf(obj: KubeObjectLike): number | undefined {
    try {
      const p = this.place(obj);
      return p.sharded ? p.slot : undefined;
    } catch (err) {
      if (err instanceof KeyError) return undefined;
      throw err;
    }
  }
}

function stripHashKey(obj: KubeObjectLike): KubeObjectLike {
  const annotations = { ...(obj.metadata?.annotations ?? {}) };
  delete annotations[HASH_KEY_ANNOTATION];
  return { ...obj, metadata: { ...obj.metadata, annotations } };
}
