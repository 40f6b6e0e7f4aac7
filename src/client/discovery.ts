/**
 * API discovery for the resources a SlotMap names: a SlotMap says `{group, resource}` (the plural,
 * as `kubectl api-resources` prints it), while objects carry `apiVersion` and `kind`, and list
 * items carry neither. Discovery gives the preferred version, the kind, the scope and the
 * collection path, so the runtime can list/watch the resource and compute keys of its objects.
 */
import { isStatus, type KubeHttp } from "../kube/http.js";
import { groupResourceName } from "../slots/placement.js";

/** A resource as the API server serves it. */
export interface ResolvedResource {
  /** API group; "" for the core group. */
  readonly group: string;
  /** Preferred version, e.g. `v1`. */
  readonly version: string;
  /** `apiVersion` of its objects: `v1` or `group/version`. */
  readonly apiVersion: string;
  /** Plural resource name, e.g. `secrets`. */
  readonly resource: string;
  /** Kind of its objects, e.g. `Secret`. */
  readonly kind: string;
  /** Whether objects live in namespaces. */
  readonly namespaced: boolean;
  /** Collection path across all namespaces, e.g. `/api/v1/secrets`. */
  readonly path: string;
}

/** A group + plural resource reference, as in a SlotMap's `spec.resources`. */
export interface GroupResourceRef {
  readonly group: string;
  readonly resource: string;
}

/** A resource the API server does not serve, or serves without list and watch. */
export class DiscoveryError extends Error {
  constructor(
    /** The field of the SlotMap (or option) that names the resource. */
    readonly field: string,
    readonly ref: GroupResourceRef,
    reason: string,
  ) {
    super(`${field}: ${JSON.stringify(ref)}: ${reason}`);
    this.name = "DiscoveryError";
  }
}

interface APIResource {
  name: string;
  kind: string;
  namespaced: boolean;
  verbs?: string[];
}

interface APIResourceList {
  groupVersion: string;
  resources: APIResource[];
}

interface APIGroup {
  preferredVersion?: { groupVersion: string; version: string };
  versions?: Array<{ groupVersion: string; version: string }>;
}

/** `group/resource` as kubectl writes it: `secrets` or `widgets.example.com`. */
export function formatGroupResource(ref: GroupResourceRef): string {
  return groupResourceName(ref);
}

/**
 * Resolves resources through the discovery endpoints, caching each group's answer for the
 * lifetime of the resolver (resources of a running cluster do not change version under a
 * controller; create a new resolver to refresh).
 */
export class ResourceResolver {
  readonly #groups = new Map<string, Promise<APIResourceList>>();

  constructor(private readonly http: KubeHttp) {}

  /**
   * Resolves one resource.
   *
   * @param field - the field that names it, for errors (e.g. `spec.resources[0]`).
   * @throws DiscoveryError when the group or resource is not served or cannot be listed and
   *   watched; other failures (network, 5xx) reject with the underlying error.
   */
  async resolve(ref: GroupResourceRef, field: string): Promise<ResolvedResource> {
    let list: APIResourceList;
    try {
      list = await this.#groupResources(ref.group);
    } catch (err) {
      this.#groups.delete(ref.group); // do not cache failures
      if (isStatus(err, 404)) {
        throw new DiscoveryError(field, ref, `API group ${JSON.stringify(ref.group)} is not served`);
      }
      throw err;
    }
    const r = list.resources.find((x) => x.name === ref.resource);
    if (r === undefined) {
      throw new DiscoveryError(
        field,
        ref,
        `resource "${formatGroupResource(ref)}" is not served by ${list.groupVersion} (check kubectl api-resources)`,
      );
    }
    const verbs = r.verbs ?? [];
    if (!verbs.includes("list") || !verbs.includes("watch")) {
      throw new DiscoveryError(
        field,
        ref,
        `resource "${formatGroupResource(ref)}" cannot be listed and watched`,
      );
    }
    const slash = list.groupVersion.indexOf("/");
    const version = slash < 0 ? list.groupVersion : list.groupVersion.slice(slash + 1);
    const base = ref.group === "" ? `/api/${version}` : `/apis/${ref.group}/${version}`;
    return {
      group: ref.group,
      version,
      apiVersion: list.groupVersion,
      resource: ref.resource,
      kind: r.kind,
      namespaced: r.namespaced,
      path: `${base}/${ref.resource}`,
    };
  }

  #groupResources(group: string): Promise<APIResourceList> {
    let p = this.#groups.get(group);
    if (p === undefined) {
      p = this.#fetch(group);
      this.#groups.set(group, p);
    }
    return p;
  }

  async #fetch(group: string): Promise<APIResourceList> {
    if (group === "") return this.http.request<APIResourceList>("GET", "/api/v1");
    const g = await this.http.request<APIGroup>("GET", `/apis/${group}`);
    const gv = g.preferredVersion?.groupVersion ?? g.versions?.[0]?.groupVersion;
    if (gv === undefined) throw new Error(`GET /apis/${group}: the API group lists no version`);
    return this.http.request<APIResourceList>("GET", `/apis/${gv}`);
  }
}
