/**
 * The cluster side of the end-to-end test and the demo: installs the CRD, makes namespaces and
 * the SlotMap, writes the Secrets while recording every write (for the auditor), waits for the
 * ConfigMaps to converge, and follows the SlotMap status.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { CRD_NAME, GROUP, PLURAL, VERSION } from "../../src/api/index.js";
import {
  PROJECTION_CRD_NAME,
  PROJECTION_PLURAL,
  type ProjectionSpec,
  parseProjectionSpec,
} from "../../src/api/projection.js";
import { isStatus, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { SLOT_COUNT } from "../../src/slots/index.js";
import type { FinalConfigMap, FinalSecret, ObjectWrite, SlotMapObservation } from "./auditor.js";
import { secretChecksum } from "./checksum.js";
import { REPO_ROOT } from "./harness.js";

/** The API client of a kubeconfig file (its current context). */
export function httpFor(kubeconfigPath: string): KubeHttp {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return new KubeHttp(kc);
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; rejects on the first error. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Retries transient API failures (network errors, 429, 5xx) a few times with a short backoff. */
async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 6): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      const transient = status === undefined || status === 429 || status >= 500;
      if (!transient) throw err;
      last = err;
      await sleep(100 * 2 ** i);
    }
  }
  throw new Error(`${what}: still failing after ${attempts} attempts: ${(last as Error).message}`);
}

/** Server-side applies the CRDs of crds/ (SlotMap, SlotMapShard) and waits until each is Established. */
export async function applyCrd(http: KubeHttp, timeoutMs = 30_000): Promise<void> {
  for (const [file, name] of [
    ["crds/slotmap.dev_slotmaps.yaml", CRD_NAME],
    ["crds/slotmap.dev_slotmapshards.yaml", PROJECTION_CRD_NAME],
  ] as const) {
    await applyOneCrd(http, path.join(REPO_ROOT, file), name, timeoutMs);
  }
}

async function applyOneCrd(http: KubeHttp, file: string, name: string, timeoutMs: number): Promise<void> {
  const crd = parseYaml(fs.readFileSync(file, "utf8")) as KubeObject;
  const url = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`;
  await http.request("PATCH", url, {
    query: { fieldManager: "slotmap-e2e", force: true },
    body: crd,
    // JSON is YAML: the apply content type takes it as is.
    contentType: "application/apply-patch+yaml",
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await http.request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
      "GET",
      url,
    );
    if (got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
    if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Creates a namespace. */
export async function createNamespace(http: KubeHttp, name: string, labels: Record<string, string> = {}) {
  await http.request("POST", "/api/v1/namespaces", { body: { metadata: { name, labels } } });
}

/** Deletes a namespace (404 is fine). */
export async function deleteNamespace(http: KubeHttp, name: string): Promise<void> {
  try {
    await http.request("DELETE", `/api/v1/namespaces/${name}`);
  } catch (err) {
    if (!isStatus(err, 404)) throw err;
  }
}

const SLOTMAPS = `/apis/${GROUP}/${VERSION}/${PLURAL}`;

/** Options of the test's SlotMap (the checksums example of DESIGN.md). */
export interface SlotMapOptions {
  name: string;
  leaseNamespace: string;
  /** Only objects in namespaces with these labels are sharded. */
  namespaceLabels?: Record<string, string>;
  handoffTimeoutSeconds?: number;
}

/** Creates the checksums SlotMap: Secrets sharded, ConfigMaps follow their controller. */
export async function createSlotMap(http: KubeHttp, o: SlotMapOptions): Promise<void> {
  await http.request("POST", SLOTMAPS, {
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "SlotMap",
      metadata: { name: o.name },
      spec: {
        leaseNamespace: o.leaseNamespace,
        resources: [
          { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
        ],
        ...(o.namespaceLabels ? { namespaceSelector: { matchLabels: o.namespaceLabels } } : {}),
        policy: { maxMigratingSlots: SLOT_COUNT, handoffTimeoutSeconds: o.handoffTimeoutSeconds ?? 30 },
      },
    },
  });
}

/** Deletes a SlotMap (404 is fine). */
export async function deleteSlotMap(http: KubeHttp, name: string): Promise<void> {
  try {
    await http.request("DELETE", `${SLOTMAPS}/${name}`);
  } catch (err) {
    if (!isStatus(err, 404)) throw err;
  }
}

/** holderIdentity of a Lease, undefined if it has none or does not exist. */
export async function leaseHolder(
  http: KubeHttp,
  namespace: string,
  name: string,
): Promise<string | undefined> {
  try {
    const l = await http.request<{ spec?: { holderIdentity?: string } }>(
      "GET",
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`,
    );
    return l.spec?.holderIdentity || undefined;
  } catch (err) {
    if (isStatus(err, 404)) return undefined;
    throw err;
  }
}

/**
 * The SlotMap status fields the driver reads. `observedGeneration` is the shard's ack joined in
 * from its Lease (the status does not carry it) and `state` is always set (the status omits Ready).
 */
export interface ObservedStatus {
  assignmentGeneration: number;
  shards: Array<{
    name: string;
    state: string;
    slots: string;
    observedGeneration?: number;
    /**
     * The generation the shard must ack: its SlotMapShard projection's once that projection shows
     * what the status grants it (it then applied the current table by acking it);
     * MAX_SAFE_INTEGER while its projection lags the status.
     */
    due?: number;
    holderIdentity?: string;
  }>;
  migrations: Array<{ slots: string; from: string; to: string; generation: number }>;
  unassignedSlots: string;
  /** The placement fingerprint the table applies to (status.rulesFingerprint). */
  rulesFingerprint?: string;
  conditions: Array<{ type: string; status: string; reason?: string }>;
}

/** Number of slots in a ranges string such as `0-5,9`. */
export function countRanges(ranges: string): number {
  if (!ranges) return 0;
  let n = 0;
  for (const part of ranges.split(",")) {
    const [a, b] = part.split("-");
    n += b === undefined ? 1 : Number(b) - Number(a) + 1;
  }
  return n;
}

/**
 * Whether a status is settled on exactly the `ready` shards: they are all Ready and hold
 * every slot in equal shares (±1), nothing migrates or is unassigned, and each acked the
 * current table (the generation of its projection, where its part last changed). Other shards may be listed (Dead, until orphaned) but hold nothing.
 */
export function isSettled(status: ObservedStatus | undefined, ready: readonly string[]): boolean {
  if (!status || status.migrations.length > 0 || status.unassignedSlots !== "") return false;
  const want = new Set(ready);
  const share = SLOT_COUNT / ready.length;
  let covered = 0;
  for (const s of status.shards) {
    const n = countRanges(s.slots);
    covered += n;
    if (want.has(s.name)) {
      if (s.state !== "Ready" || Math.abs(n - share) > 1) return false;
      if ((s.observedGeneration ?? 0) < (s.due ?? status.assignmentGeneration)) return false;
      want.delete(s.name);
    } else if (s.state === "Ready" || n > 0) {
      return false;
    }
  }
  return want.size === 0 && covered === SLOT_COUNT;
}

/** Follows one SlotMap's status through a watch; keeps every observation for the auditor. */
export class SlotMapWatch {
  readonly history: SlotMapObservation[] = [];
  private current: ObservedStatus | undefined;
  private readonly reflector: Reflector<KubeObject>;
  private readonly listeners = new Set<(s: ObservedStatus) => void>();
  /** Last error of the watch, for timeout messages. */
  lastError: string | undefined;

  /** The shard Leases (cluster-wide, labelled for this SlotMap): the status does not copy acks. */
  private readonly leaseReflector: Reflector<KubeObject>;
  private readonly leases = new Map<string, { ack: number; uid: string | undefined }>();
  /** The shards' SlotMapShard projections, by shard: what each must ack. */
  private readonly projectionReflector: Reflector<KubeObject>;
  private readonly projections = new Map<string, ProjectionSpec>();
  private raw: ObservedStatus | undefined;
  private uid: string | undefined;

  constructor(
    http: KubeHttp,
    readonly name: string,
  ) {
    this.reflector = new Reflector<KubeObject>({
      http,
      path: SLOTMAPS,
      fieldSelector: `metadata.name=${name}`,
      watchTimeoutSeconds: 20,
      handler: {
        onEvent: (type, obj) => {
          if (type === "DELETED") return;
          const st = (obj as { status?: Partial<ObservedStatus> }).status;
          if (!st) return;
          this.uid = obj.metadata?.uid;
          this.raw = {
            assignmentGeneration: st.assignmentGeneration ?? 0,
            shards: st.shards ?? [],
            migrations: st.migrations ?? [],
            unassignedSlots: st.unassignedSlots ?? "",
            ...(st.rulesFingerprint !== undefined ? { rulesFingerprint: st.rulesFingerprint } : {}),
            conditions: st.conditions ?? [],
          };
          const status = this.joined();
          this.history.push({
            at: Date.now(),
            generation: status.assignmentGeneration,
            migrations: status.migrations.map((m) => ({ from: m.from, to: m.to, generation: m.generation })),
          });
          this.publish();
        },
        onError: (err) => {
          this.lastError = err instanceof Error ? err.message : String(err);
        },
      },
    });
    this.leaseReflector = new Reflector<KubeObject>({
      http,
      path: "/apis/coordination.k8s.io/v1/leases",
      labelSelector: `slotmap.dev/slotmap=${name}`,
      watchTimeoutSeconds: 20,
      handler: {
        onEvent: (type, obj) => {
          const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
          const a = obj.metadata?.annotations ?? {};
          if (type === "DELETED") this.leases.delete(key);
          else
            this.leases.set(key, {
              ack: Number(a["slotmap.dev/observed-generation"] ?? 0) || 0,
              uid: a["slotmap.dev/slotmap-uid"],
            });
          if (this.raw !== undefined) this.publish();
        },
        onError: (err) => {
          this.lastError = err instanceof Error ? err.message : String(err);
        },
      },
    });
    this.projectionReflector = new Reflector<KubeObject>({
      http,
      path: `/apis/slotmap.dev/v1alpha1/${PROJECTION_PLURAL}`,
      labelSelector: `slotmap.dev/slotmap=${name}`,
      watchTimeoutSeconds: 20,
      handler: {
        onEvent: (type, obj) => {
          const spec = parseProjectionSpec(obj.spec);
          if (!spec.ok) return;
          if (type === "DELETED") this.projections.delete(spec.value.shard);
          else this.projections.set(spec.value.shard, spec.value);
          if (this.raw !== undefined) this.publish();
        },
        onError: (err) => {
          this.lastError = err instanceof Error ? err.message : String(err);
        },
      },
    });
  }

  /** The status with each shard's ack joined in from its Lease and `state` defaulted to Ready. */
  private joined(): ObservedStatus {
    const raw = this.raw!;
    const acks = new Map<string, number>();
    for (const [key, l] of this.leases) {
      if (l.uid === this.uid) acks.set(key.slice(key.indexOf("/") + 1), l.ack);
    }
    return {
      ...raw,
      shards: raw.shards.map((s) => {
        const ack = acks.get(s.name);
        const p = this.projections.get(s.name);
        const current =
          p !== undefined &&
          p.slotMapUid === this.uid &&
          (p.entry?.slots ?? "") === s.slots &&
          p.entry?.holderIdentity === s.holderIdentity;
        return {
          ...s,
          state: s.state ?? "Ready",
          ...(ack !== undefined ? { observedGeneration: ack } : {}),
          due: current ? p.assignmentGeneration : Number.MAX_SAFE_INTEGER,
        };
      }),
    };
  }

  private publish(): void {
    const status = this.joined();
    this.current = status;
    for (const l of this.listeners) l(status);
  }

  /** Starts watching; resolves after the first lists. */
  async start(): Promise<void> {
    await Promise.all([
      this.reflector.start(),
      this.leaseReflector.start(),
      this.projectionReflector.start(),
    ]);
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    await Promise.all([this.reflector.stop(), this.leaseReflector.stop(), this.projectionReflector.stop()]);
  }

  /** The newest status seen. */
  get status(): ObservedStatus | undefined {
    return this.current;
  }

  /** Calls `fn` on every new status; returns the unsubscribe function. */
  onChange(fn: (s: ObservedStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first status (the current one included) that satisfies `pred`. */
  waitFor(
    pred: (s: ObservedStatus) => boolean,
    timeoutMs: number,
    description: string,
  ): Promise<ObservedStatus> {
    return new Promise((resolve, reject) => {
      if (this.current && pred(this.current)) {
        resolve(this.current);
        return;
      }
      const timer = setTimeout(() => {
        off();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for SlotMap ${this.name}: ${description}; ` +
              `last status: ${describeStatus(this.current)}${this.lastError ? `; last watch error: ${this.lastError}` : ""}`,
          ),
        );
      }, timeoutMs);
      const off = this.onChange((s) => {
        if (pred(s)) {
          clearTimeout(timer);
          off();
          resolve(s);
        }
      });
    });
  }
}

/** One line describing a status, for logs and timeouts. */
export function describeStatus(s: ObservedStatus | undefined): string {
  if (!s) return "none yet";
  const shards = s.shards
    .map(
      (x) =>
        `${x.name}:${x.state}:${countRanges(x.slots)}${x.observedGeneration !== undefined ? `@${x.observedGeneration}` : ""}`,
    )
    .join(" ");
  const mig = s.migrations.map((m) => `${m.from}→${m.to}:${countRanges(m.slots)}@${m.generation}`).join(" ");
  return `generation ${s.assignmentGeneration} [${shards}]${mig ? ` migrating ${mig}` : ""}${s.unassignedSlots ? ` unassigned ${countRanges(s.unassignedSlots)}` : ""}`;
}

/** Convergence of the ConfigMaps to the Secrets as the driver last wrote them. */
export interface Convergence {
  total: number;
  converged: number;
  missing: number;
  wrong: number;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}
interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

/** The Secrets of one namespace as the driver writes them, with the history of every write. */
export class SecretFleet {
  /** Every write, in the order answers arrived. */
  readonly writes: ObjectWrite[] = [];
  /** name → data as last written. */
  private readonly data = new Map<string, Record<string, string>>();
  private counter = 0;

  constructor(
    private readonly http: KubeHttp,
    readonly namespace: string,
  ) {}

  /** Names of the Secrets created so far. */
  get names(): string[] {
    return [...this.data.keys()];
  }

  private freshData(): Record<string, string> {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    return { value: b64(randomBytes(12).toString("hex")), rev: b64(String(++this.counter)) };
  }

  private path(name?: string): string {
    return `/api/v1/namespaces/${this.namespace}/secrets${name ? `/${name}` : ""}`;
  }

  /** Creates `count` Secrets named `<prefix>-<i>` with `concurrency` requests in flight. */
  async create(
    count: number,
    opts: { prefix?: string; concurrency?: number; onProgress?: (done: number) => void } = {},
  ) {
    const prefix = opts.prefix ?? "secret";
    const start = this.data.size;
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${String(start + i).padStart(5, "0")}`);
    let done = 0;
    await pool(names, opts.concurrency ?? 16, async (name) => {
      const data = this.freshData();
      const sentAt = Date.now();
      const created = await retrying(`create secret ${name}`, async () => {
        try {
          return await this.http.request<SecretObject>("POST", this.path(), {
            body: { metadata: { name }, type: "Opaque", data },
          });
        } catch (err) {
          // An earlier attempt whose answer was lost did create it.
          if (isStatus(err, 409)) return await this.http.request<SecretObject>("GET", this.path(name));
          throw err;
        }
      });
      this.data.set(name, created.data ?? data);
      this.record(name, "create", sentAt, created);
      opts.onProgress?.(++done);
    });
  }

  /** Gives each named Secret new data (merge patch), `concurrency` requests in flight. */
  async update(names: readonly string[], opts: { concurrency?: number } = {}): Promise<void> {
    await pool(names, opts.concurrency ?? 16, async (name) => {
      const data = this.freshData();
      const sentAt = Date.now();
      const updated = await retrying(`update secret ${name}`, () =>
        this.http.request<SecretObject>("PATCH", this.path(name), {
          body: { data },
          contentType: "application/merge-patch+json",
        }),
      );
      this.data.set(name, updated.data ?? data);
      this.record(name, "update", sentAt, updated);
    });
  }

  /** `n` distinct names chosen at random among the created Secrets. */
  sample(n: number): string[] {
    const all = this.names;
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  }

  /**
   * Updates random Secrets, about `perSecond` a second, until the returned stop function is
   * called; stop resolves once the last write has been answered.
   */
  churn(perSecond: number): () => Promise<void> {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const started = Date.now();
        await this.update(this.sample(Math.max(1, Math.round(perSecond / 4))), { concurrency: 4 });
        await sleep(Math.max(0, 250 - (Date.now() - started)));
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  }

  private record(name: string, op: ObjectWrite["op"], sentAt: number, obj: KubeObject): void {
    const rv = obj.metadata?.resourceVersion;
    if (!rv)
      throw new Error(`secret ${this.namespace}/${name}: the API server answered without a resourceVersion`);
    this.writes.push({
      key: `${this.namespace}/${name}`,
      op,
      sentAt,
      doneAt: Date.now(),
      resourceVersion: rv,
    });
  }

  /** Compares the ConfigMaps with the Secrets as last written. */
  async convergence(checksumOf = secretChecksum): Promise<Convergence> {
    const cms = await this.http.listAll<ConfigMapObject>(`/api/v1/namespaces/${this.namespace}/configmaps`);
    const byName = new Map(cms.items.map((c) => [c.metadata?.name ?? "", c]));
    let converged = 0;
    let missing = 0;
    let wrong = 0;
    for (const [name, data] of this.data) {
      const cm = byName.get(`${name}-checksum`);
      if (!cm) missing++;
      else if (cm.data?.checksum === checksumOf(data)) converged++;
      else wrong++;
    }
    return { total: this.data.size, converged, missing, wrong };
  }

  /** Polls {@link convergence} until every Secret's ConfigMap is right. */
  async waitConverged(opts: {
    timeoutMs: number;
    intervalMs?: number;
    onProgress?: (c: Convergence) => void;
  }): Promise<Convergence> {
    const deadline = Date.now() + opts.timeoutMs;
    let last: Convergence | undefined;
    let lastError: string | undefined;
    for (;;) {
      try {
        last = await this.convergence();
        opts.onProgress?.(last);
        if (last.converged === last.total) return last;
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `ConfigMaps of ${this.namespace} not converged within ${opts.timeoutMs} ms: ${JSON.stringify(last)}` +
            (lastError ? `; last error: ${lastError}` : ""),
        );
      }
      await sleep(opts.intervalMs ?? 500);
    }
  }

  /** The Secrets and ConfigMaps of the namespace now, for the auditor's final-state check. */
  async finalState(): Promise<{ secrets: FinalSecret[]; configMaps: FinalConfigMap[] }> {
    const ns = this.namespace;
    const secrets = await this.http.listAll<SecretObject>(`/api/v1/namespaces/${ns}/secrets`);
    const cms = await this.http.listAll<ConfigMapObject>(`/api/v1/namespaces/${ns}/configmaps`);
    return {
      secrets: secrets.items
        .filter((s) => this.data.has(s.metadata?.name ?? ""))
        .map((s) => ({
          namespace: ns,
          name: s.metadata?.name ?? "",
          uid: s.metadata?.uid,
          data: s.data ?? {},
        })),
      configMaps: cms.items.map((c) => ({
        namespace: ns,
        name: c.metadata?.name ?? "",
        data: c.data ?? {},
        ownerReferences: (c.metadata?.ownerReferences ?? []) as FinalConfigMap["ownerReferences"],
      })),
    };
  }
}
