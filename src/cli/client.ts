/**
 * What the CLI asks of the API server, as an interface so that commands can be tested against an
 * in-memory fake, and its implementation over src/kube/http.ts (raw REST with resourceVersion
 * preconditions and plain discovery).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../api/index.js";
import { PROJECTION_PLURAL } from "../api/projection.js";
import { ApiError, isStatus, KubeHttp, type KubeObject } from "../kube/http.js";
import { PACKAGE_VERSION } from "../runtime/version.js";
import { CliError } from "./io.js";

export type { KubeObject } from "../kube/http.js";

/** An API resource found by discovery. */
export interface ApiResourceInfo {
  /** API group, "" for core. */
  group: string;
  version: string;
  /** Plural resource name, e.g. `secrets`. */
  resource: string;
  kind: string;
  namespaced: boolean;
}

/** The API calls of the CLI. Errors are {@link ApiError}s (or network errors). */
export interface CliClient {
  listSlotMaps(): Promise<KubeObject[]>;
  getSlotMap(name: string): Promise<KubeObject>;
  /**
   * JSON merge patch (RFC 7386) of a SlotMap: only the fields in `patch` change, so a field added
   * by a newer server or client is never dropped. `patch.metadata.resourceVersion` makes it
   * conditional (409 Conflict when the object changed since it was read).
   */
  patchSlotMap(name: string, patch: KubeObject): Promise<KubeObject>;
  listLeases(namespace: string, labelSelector: string): Promise<KubeObject[]>;
  /** The SlotMapShard projections of a namespace matching a label selector. */
  listProjections(namespace: string, labelSelector: string): Promise<KubeObject[]>;
  getLease(namespace: string, name: string): Promise<KubeObject>;
  /** JSON merge patch of a Lease, conditional on `patch.metadata.resourceVersion` like {@link patchSlotMap}. */
  patchLease(namespace: string, name: string, patch: KubeObject): Promise<KubeObject>;
  /** Resolves `secrets`, `secret`, `cm`, `deployments.apps` like kubectl; undefined when unknown. */
  resolveResource(arg: string): Promise<ApiResourceInfo | undefined>;
  getObject(res: ApiResourceInfo, namespace: string | undefined, name: string): Promise<KubeObject>;
  getNamespace(name: string): Promise<KubeObject>;
}

interface DiscoveryResource {
  name: string;
  singularName?: string;
  namespaced: boolean;
  kind: string;
  shortNames?: string[];
}

/** Path prefix of a group version: `/api/v1` or `/apis/apps/v1`. */
export function groupVersionPath(group: string, version: string): string {
  return group === "" ? `/api/${version}` : `/apis/${group}/${version}`;
}

/** The REST path of one object (or of the collection when `name` is undefined). */
export function objectPath(res: ApiResourceInfo, namespace: string | undefined, name?: string): string {
  const ns = res.namespaced ? `/namespaces/${encodeURIComponent(namespace ?? "default")}` : "";
  const tail = name === undefined ? "" : `/${encodeURIComponent(name)}`;
  return `${groupVersionPath(res.group, res.version)}${ns}/${res.resource}${tail}`;
}

const SLOTMAPS = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
const MERGE_PATCH = "application/merge-patch+json";
const leases = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;

function matches(r: DiscoveryResource, wanted: string): boolean {
  if (r.name.includes("/")) return false; // subresource
  return (
    r.name === wanted ||
    r.singularName === wanted ||
    r.kind.toLowerCase() === wanted ||
    (r.shortNames ?? []).includes(wanted)
  );
}

/** {@link CliClient} over the REST API. */
export class HttpCliClient implements CliClient {
  readonly http: KubeHttp;
  constructor(kc: KubeConfig) {
    this.http = new KubeHttp(kc, { userAgent: `kubectl-slotmap/${PACKAGE_VERSION}` });
  }

  async listSlotMaps(): Promise<KubeObject[]> {
    return (await this.http.listAll<KubeObject>(SLOTMAPS)).items;
  }
  getSlotMap(name: string): Promise<KubeObject> {
    return this.http.request<KubeObject>("GET", `${SLOTMAPS}/${encodeURIComponent(name)}`);
  }
  patchSlotMap(name: string, patch: KubeObject): Promise<KubeObject> {
    return this.http.request<KubeObject>("PATCH", `${SLOTMAPS}/${encodeURIComponent(name)}`, {
      body: patch,
      contentType: MERGE_PATCH,
    });
  }
  async listProjections(namespace: string, labelSelector: string): Promise<KubeObject[]> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PROJECTION_PLURAL}`;
    return (await this.http.listAll<KubeObject>(path, { labelSelector })).items;
  }
  async listLeases(namespace: string, labelSelector: string): Promise<KubeObject[]> {
    return (await this.http.listAll<KubeObject>(leases(namespace), { labelSelector })).items;
  }
  getLease(namespace: string, name: string): Promise<KubeObject> {
    return this.http.request<KubeObject>("GET", `${leases(namespace)}/${encodeURIComponent(name)}`);
  }
  patchLease(namespace: string, name: string, patch: KubeObject): Promise<KubeObject> {
    return this.http.request<KubeObject>("PATCH", `${leases(namespace)}/${encodeURIComponent(name)}`, {
      body: patch,
      contentType: MERGE_PATCH,
    });
  }
  getNamespace(name: string): Promise<KubeObject> {
    return this.http.request<KubeObject>("GET", `/api/v1/namespaces/${encodeURIComponent(name)}`);
  }
  getObject(res: ApiResourceInfo, namespace: string | undefined, name: string): Promise<KubeObject> {
    return this.http.request<KubeObject>("GET", objectPath(res, namespace, name));
  }

  async resolveResource(arg: string): Promise<ApiResourceInfo | undefined> {
    const wanted = arg.toLowerCase();
    const dot = wanted.indexOf(".");
    // `deployments.apps` names the group; a bare name is looked up in core first, like kubectl.
    const name = dot < 0 ? wanted : wanted.slice(0, dot);
    const group = dot < 0 ? undefined : wanted.slice(dot + 1);
    const inList = (g: string, version: string, list: DiscoveryResource[]): ApiResourceInfo | undefined => {
      const r = list.find((x) => matches(x, name));
      return r && { group: g, version, resource: r.name, kind: r.kind, namespaced: r.namespaced };
    };
    if (group === undefined || group === "") {
      const core = await this.http.request<{ resources: DiscoveryResource[] }>("GET", "/api/v1");
      const found = inList("", "v1", core.resources);
      if (found || group === "") return found;
    }
    const groups = await this.http.request<{
      groups: Array<{ name: string; preferredVersion?: { version: string } }>;
    }>("GET", "/apis");
    const candidates = groups.groups.filter(
      (g) => g.preferredVersion !== undefined && (group === undefined || g.name === group),
    );
    // Discovery of every group in parallel; an unavailable aggregated API must not fail the lookup.
    const lists = await Promise.all(
      candidates.map(async (g) => {
        const version = g.preferredVersion?.version ?? "";
        try {
          const l = await this.http.request<{ resources: DiscoveryResource[] }>(
            "GET",
            groupVersionPath(g.name, version),
          );
          return inList(g.name, version, l.resources);
        } catch (err) {
          if (err instanceof ApiError) return undefined;
          throw err;
        }
      }),
    );
    return lists.find((x) => x !== undefined);
  }
}

/** Turns an API or network failure into a one-line CLI error. */
export function describeFailure(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const why = cause instanceof Error ? `: ${cause.message}` : "";
    return `${err.message}${why}`;
  }
  return String(err);
}

/** Rethrows a 404 as a CliError naming the object; other errors unchanged. */
export function notFoundAs(err: unknown, what: string): never {
  if (isStatus(err, 404)) throw new CliError(`${what} not found`);
  throw err;
}
