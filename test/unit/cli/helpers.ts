// In-process harness for the CLI: captured output, a controllable clock, and an in-memory API
// (FakeClient) that keeps resourceVersions and answers 404/409 like the API server.

import type { ApiResourceInfo, CliClient } from "../../../src/cli/client.js";
import type { CliIO, TextSink } from "../../../src/cli/io.js";
import { main } from "../../../src/cli/main.js";
import { ApiError, type KubeObject } from "../../../src/kube/http.js";
import { loadSlotMapFixtures } from "../../fixtures/slotmaps/load.js";

export class Capture implements TextSink {
  text = "";
  constructor(
    readonly isTTY = false,
    readonly columns = 120,
  ) {}
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

export interface TestIO extends CliIO {
  stdout: Capture;
  stderr: Capture;
  clock: { now: number };
}

export function testIO(opts: { tty?: boolean; env?: Record<string, string> } = {}): TestIO {
  const clock = { now: Date.parse("2025-01-02T03:09:05Z") };
  return {
    stdout: new Capture(opts.tty ?? false),
    stderr: new Capture(opts.tty ?? false),
    env: opts.env ?? {},
    clock,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += ms;
    },
  };
}

const notFound = (what: string, method: string, path: string) =>
  new ApiError(404, "NotFound", `${what} not found`, method, path);

/** An in-memory API server for the calls of CliClient. */
/** RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeClient implements CliClient {
  slotmaps = new Map<string, KubeObject>();
  leases = new Map<string, KubeObject>();
  objects = new Map<string, KubeObject>();
  namespaces = new Map<string, KubeObject>();
  resources: ApiResourceInfo[] = [
    { group: "", version: "v1", resource: "secrets", kind: "Secret", namespaced: true },
    { group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true },
    { group: "apps", version: "v1", resource: "deployments", kind: "Deployment", namespaced: true },
  ];
  private rv = 100;
  /** Called after every successful SlotMap replace (the test's stand-in for a coordinator). */
  onSlotMapReplaced: ((obj: KubeObject) => void) | undefined;
  /** Called on each getSlotMap, before answering (lets a test advance the "coordinator"). */
  onGetSlotMap: ((name: string, count: number) => void) | undefined;
  /** Number of 409s to answer to the next replace calls. */
  conflicts = 0;
  gets = 0;
  /** Every merge patch sent, in order. */
  readonly patches: Array<{ kind: "SlotMap" | "Lease"; name: string; patch: KubeObject }> = [];
  forbidLeases = false;

  nextRv(): string {
    this.rv++;
    return String(this.rv);
  }

  addSlotMap(doc: Record<string, unknown>): KubeObject {
    const obj = structuredClone(doc) as KubeObject;
    obj.metadata = {
      ...(obj.metadata ?? {}),
      uid: `uid-${obj.metadata?.name}`,
      generation: 1,
      resourceVersion: this.nextRv(),
      creationTimestamp: "2025-01-02T03:04:05Z",
    };
    this.slotmaps.set(obj.metadata.name ?? "", obj);
    return obj;
  }

  /** Writes a status as the coordinator would (status subresource: spec untouched). */
  setStatus(name: string, status: Record<string, unknown>): void {
    const obj = this.slotmaps.get(name);
    if (!obj) throw new Error(`no slotmap ${name}`);
    obj.status = structuredClone(status);
    obj.metadata = { ...obj.metadata, resourceVersion: this.nextRv() };
  }

  async listSlotMaps(): Promise<KubeObject[]> {
    return [...this.slotmaps.values()].map((o) => structuredClone(o));
  }
  async getSlotMap(name: string): Promise<KubeObject> {
    this.gets++;
    this.onGetSlotMap?.(name, this.gets);
    const o = this.slotmaps.get(name);
    if (!o)
      throw notFound(`slotmaps.slotmap.dev "${name}"`, "GET", `/apis/slotmap.dev/v1alpha1/slotmaps/${name}`);
    return structuredClone(o);
  }
  async patchSlotMap(name: string, patch: KubeObject): Promise<KubeObject> {
    const cur = this.slotmaps.get(name);
    if (!cur) throw notFound(`slotmaps.slotmap.dev "${name}"`, "PATCH", name);
    this.checkPrecondition(cur, patch, name);
    const merged = mergePatch(cur, patch) as KubeObject;
    const specChanged = JSON.stringify(merged.spec) !== JSON.stringify(cur.spec);
    const next: KubeObject = {
      ...merged,
      status: cur.status, // the main resource ignores status
      metadata: {
        ...merged.metadata,
        resourceVersion: this.nextRv(),
        generation: (cur.metadata?.generation ?? 1) + (specChanged ? 1 : 0),
      },
    };
    this.slotmaps.set(name, next);
    this.patches.push({ kind: "SlotMap", name, patch: structuredClone(patch) });
    this.onSlotMapReplaced?.(next);
    return structuredClone(next);
  }
  /** A merge patch's resourceVersion is a precondition, as on the API server. */
  private checkPrecondition(cur: KubeObject, patch: KubeObject, name: string): void {
    const want = patch.metadata?.resourceVersion;
    if (this.conflicts > 0 || (want !== undefined && want !== cur.metadata?.resourceVersion)) {
      if (this.conflicts > 0) {
        this.conflicts--;
        // Someone else wrote in between: bump the version so the retry must re-read.
        cur.metadata = { ...cur.metadata, resourceVersion: this.nextRv() };
      }
      throw new ApiError(409, "Conflict", "the object has been modified", "PATCH", name);
    }
  }
  /** SlotMapShard projections by `<namespace>/<name>` (tests add them by hand). */
  readonly projections = new Map<string, KubeObject>();
  async listProjections(namespace: string, labelSelector: string): Promise<KubeObject[]> {
    const [k, v] = labelSelector.split("=");
    return [...this.projections.values()]
      .filter((p) => p.metadata?.namespace === namespace && p.metadata?.labels?.[k ?? ""] === v)
      .map((p) => structuredClone(p));
  }
  async listLeases(namespace: string, labelSelector: string): Promise<KubeObject[]> {
    if (this.forbidLeases) throw new ApiError(403, "Forbidden", "leases is forbidden", "GET", namespace);
    const [k, v] = labelSelector.split("=");
    return [...this.leases.values()]
      .filter((l) => l.metadata?.namespace === namespace && l.metadata?.labels?.[k ?? ""] === v)
      .map((l) => structuredClone(l));
  }
  async getLease(namespace: string, name: string): Promise<KubeObject> {
    const l = this.leases.get(`${namespace}/${name}`);
    if (!l) throw notFound(`leases.coordination.k8s.io "${name}"`, "GET", name);
    return structuredClone(l);
  }
  async patchLease(namespace: string, name: string, patch: KubeObject): Promise<KubeObject> {
    const key = `${namespace}/${name}`;
    const cur = this.leases.get(key);
    if (!cur) throw notFound("lease", "PATCH", key);
    this.checkPrecondition(cur, patch, key);
    const merged = mergePatch(cur, patch) as KubeObject;
    const next = { ...merged, metadata: { ...merged.metadata, resourceVersion: this.nextRv() } };
    this.leases.set(key, next);
    this.patches.push({ kind: "Lease", name: key, patch: structuredClone(patch) });
    return structuredClone(next);
  }
  addLease(namespace: string, name: string, slotmap: string, annotations: Record<string, string> = {}): void {
    this.leases.set(`${namespace}/${name}`, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name,
        namespace,
        labels: { "slotmap.dev/slotmap": slotmap },
        annotations,
        resourceVersion: this.nextRv(),
      },
      spec: { holderIdentity: `${name}-pod` },
    });
  }
  async resolveResource(arg: string): Promise<ApiResourceInfo | undefined> {
    const a = arg.toLowerCase();
    return this.resources.find(
      (r) => r.resource === a || r.kind.toLowerCase() === a || `${r.resource}.${r.group}` === a,
    );
  }
  addObject(res: string, obj: KubeObject): void {
    this.objects.set(`${res}/${obj.metadata?.namespace ?? ""}/${obj.metadata?.name}`, obj);
  }
  async getObject(res: ApiResourceInfo, namespace: string | undefined, name: string): Promise<KubeObject> {
    const o = this.objects.get(`${res.resource}/${namespace ?? ""}/${name}`);
    if (!o) throw notFound(`${res.resource} "${name}"`, "GET", name);
    return structuredClone(o);
  }
  async getNamespace(name: string): Promise<KubeObject> {
    const o = this.namespaces.get(name);
    if (!o) throw notFound(`namespaces "${name}"`, "GET", name);
    return structuredClone(o);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  io: TestIO;
}

/** Runs the CLI in-process against `client`. */
export async function run(
  argv: string[],
  opts: { client?: FakeClient; io?: TestIO; namespace?: string } = {},
): Promise<RunResult> {
  const io = opts.io ?? testIO();
  const client = opts.client;
  const code = await main(argv, {
    io,
    drainIntervalMs: 1000,
    connect: () => {
      if (!client) throw new Error("this test did not expect the CLI to contact the API server");
      return { client, namespace: opts.namespace ?? "default" };
    },
  });
  return { code, stdout: io.stdout.text, stderr: io.stderr.text, io };
}

/** The valid SlotMap fixture of that file name. */
export function fixture(name: string): Record<string, unknown> {
  const f = loadSlotMapFixtures("valid").find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.doc;
}

/** Strips ANSI escape sequences. */
export function stripAnsi(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ESC is the point
  return s.replace(/\x1b\[[0-9;]*m/g, "").replace(/\x1b\[2K|\r/g, "");
}
