// Shared by the coordinator integration tests: the test plays the shards (FakeShard: a Lease that
// is renewed and acked on command), observes every SlotMap status version through a watch and
// checks each one (and each transition) for the handoff invariant, and runs the coordinator as an
// OS process.

import { type ChildProcessByStdio, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import {
  ANNOTATION_OBSERVED_GENERATION,
  ANNOTATION_SLOTMAP_UID,
  CRD_NAME,
  LABEL_SLOTMAP,
  parseSlotMapStatus,
  type SlotMapStatus,
} from "../../src/api/index.js";
import { microTime } from "../../src/api/lease.js";
import { SLOTMAPS_PATH } from "../../src/coordinator/driver.js";
import { isStatus, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { parseSlotRanges, SLOT_COUNT, tableFromStatus, tableInvariantErrors } from "../../src/slots/index.js";
import { freshNamespace, kubeConfig, kubeconfigPath, kubectl, waitFor } from "../support/cluster.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function newHttp(): KubeHttp {
  return new KubeHttp(kubeConfig());
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

export { microTime };

/** Installs the SlotMap CRD (server-side, shared with other files) and waits until `sm` resolves. */
export async function ensureCrd(): Promise<void> {
  const r = await kubectl(["apply", "--server-side", "--force-conflicts", "-f", path.join(repoRoot, "crds")]);
  expect(r.code, r.stderr).toBe(0);
  await waitFor(
    async () =>
      (
        await kubectl([
          "get",
          "crd",
          CRD_NAME,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        ])
      ).stdout.trim() === "True",
    { timeoutMs: 60_000, intervalMs: 250, description: "SlotMap CRD Established" },
  );
  await waitFor(async () => (await kubectl(["get", "sm"])).code === 0, {
    timeoutMs: 60_000,
    intervalMs: 250,
    description: "`kubectl get sm` to resolve",
  });
}

export interface SlotMapObj extends KubeObject {
  metadata: { name: string; uid: string; resourceVersion: string; generation: number };
  spec: Record<string, unknown>;
  status?: unknown;
}

export async function createSlotMap(
  http: KubeHttp,
  name: string,
  spec: Record<string, unknown>,
): Promise<SlotMapObj> {
  return http.request<SlotMapObj>("POST", SLOTMAPS_PATH, {
    body: { apiVersion: "slotmap.dev/v1alpha1", kind: "SlotMap", metadata: { name }, spec },
  });
}

export async function getSlotMap(http: KubeHttp, name: string): Promise<SlotMapObj> {
  return http.request<SlotMapObj>("GET", `${SLOTMAPS_PATH}/${name}`);
}

export async function deleteSlotMap(http: KubeHttp, name: string): Promise<void> {
  await http.request("DELETE", `${SLOTMAPS_PATH}/${name}`).catch((err: unknown) => {
    if (!isStatus(err, 404)) throw err;
  });
}

/** The status, parsed (fails the test when it does not validate). */
export function parsedStatus(obj: { status?: unknown }): SlotMapStatus {
  const p = parseSlotMapStatus(obj.status ?? {});
  if (!p.ok) expect.fail(`invalid status: ${JSON.stringify(p.errors)}`);
  return p.value;
}

/** Owned slot count per shard. */
export function counts(status: SlotMapStatus): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of status.shards) {
    out[s.name] = parseSlotRanges(s.slots).reduce((n, r) => n + r.end - r.start + 1, 0);
  }
  return out;
}

export function conditionOf(status: SlotMapStatus, type: string) {
  return status.conditions.find((c) => c.type === type);
}

/**
 * Problems of one status: schema, table consistency (tableInvariantErrors), and, checked on its own,
 * that no slot appears twice among the shards' ranges and the migrations.
 */
export function statusErrors(raw: unknown): string[] {
  const p = parseSlotMapStatus(raw ?? {});
  if (!p.ok) return p.errors.map((e) => `${e.field}: ${e.message}`);
  const errors: string[] = [];
  try {
    errors.push(...tableInvariantErrors(tableFromStatus(p.value)));
  } catch (err) {
    errors.push(String(err));
  }
  const seen = new Uint8Array(SLOT_COUNT);
  const mark = (ranges: string, what: string) => {
    for (const r of parseSlotRanges(ranges)) {
      for (let s = r.start; s <= r.end; s++) {
        if (seen[s]) errors.push(`slot ${s} appears twice (again in ${what})`);
        seen[s] = 1;
      }
    }
  };
  for (const s of p.value.shards) mark(s.slots, `shard ${s.name}`);
  for (const m of p.value.migrations) mark(m.slots, `migration ${m.from}->${m.to}`);
  return errors.slice(0, 5);
}

function ownerMap(status: SlotMapStatus): Map<number, string> {
  const owner = new Map<number, string>();
  for (const s of status.shards) {
    for (const r of parseSlotRanges(s.slots)) for (let x = r.start; x <= r.end; x++) owner.set(x, s.name);
  }
  return owner;
}

/**
 * Problems of a transition between two consecutive status versions of one SlotMap instance: a slot
 * may change owner only if its previous owner is fenced in the new status (Dead, gone, or another
 * holder) or it went through a migration whose source acknowledged (`ackOf`: the highest
 * generation the harness wrote into the source's Lease, since the status no longer copies acks) or
 * is fenced.
 */
export function transitionErrors(
  before: SlotMapStatus,
  after: SlotMapStatus,
  ackOf: (shard: string) => number = () => 0,
): string[] {
  const errors: string[] = [];
  const prevOwner = ownerMap(before);
  const nextOwner = ownerMap(after);
  const nextEntry = new Map(after.shards.map((s) => [s.name, s]));
  const prevEntry = new Map(before.shards.map((s) => [s.name, s]));
  const fenced = (shard: string) => {
    const n = nextEntry.get(shard);
    return n === undefined || n.state === "Dead" || n.holderIdentity !== prevEntry.get(shard)?.holderIdentity;
  };
  const migrationOf = new Map<number, SlotMapStatus["migrations"][number]>();
  for (const m of before.migrations) {
    for (const r of parseSlotRanges(m.slots)) for (let x = r.start; x <= r.end; x++) migrationOf.set(x, m);
  }
  for (const [slot, to] of nextOwner) {
    const from = prevOwner.get(slot);
    if (from === to) continue;
    if (from !== undefined && !fenced(from)) {
      errors.push(`slot ${slot} moved directly from live ${from} to ${to}`);
    }
    const m = migrationOf.get(slot);
    if (m !== undefined && !fenced(m.from) && ackOf(m.from) < m.generation) {
      errors.push(`slot ${slot} left the migration ${m.from}->${m.to}@${m.generation} without an ack`);
    }
    if (errors.length >= 5) break;
  }
  return errors;
}

/** One observed version of a SlotMap. */
export interface Observed {
  at: number;
  uid: string;
  resourceVersion: string;
  generation: number;
  status: SlotMapStatus | undefined;
}

/**
 * Watches one SlotMap and checks every status version it sees (and every transition) as it comes.
 * `violations` must stay empty.
 */
export class StatusObserver {
  readonly versions: Observed[] = [];
  readonly violations: string[] = [];
  private readonly reflector: Reflector<KubeObject>;

  constructor(http: KubeHttp, name: string) {
    this.reflector = new Reflector<KubeObject>({
      http,
      path: SLOTMAPS_PATH,
      fieldSelector: `metadata.name=${name}`,
      handler: { onEvent: (type, obj) => this.onEvent(type, obj) },
    });
  }

  start(): Promise<void> {
    return this.reflector.start();
  }

  stop(): Promise<void> {
    return this.reflector.stop();
  }

  /** The highest generation acked for `uid` by a shard (set by the fixture that writes acks). */
  ackOf: (shard: string, uid: string) => number = () => 0;

  latest(): Observed | undefined {
    return this.versions.at(-1);
  }

  private onEvent(type: string, obj: KubeObject): void {
    if (type === "DELETED") return;
    const m = obj.metadata ?? {};
    const rv = m.resourceVersion ?? "";
    const prev = this.versions.at(-1);
    if (prev !== undefined && prev.resourceVersion === rv) return;
    let status: SlotMapStatus | undefined;
    if (obj.status !== undefined) {
      const errs = statusErrors(obj.status);
      if (errs.length > 0) this.violations.push(`rv ${rv}: ${errs.join("; ")}`);
      const p = parseSlotMapStatus(obj.status);
      if (p.ok) status = p.value;
    }
    if (prev?.status !== undefined && status !== undefined && prev.uid === m.uid) {
      const errs = transitionErrors(prev.status, status, (shard) => this.ackOf(shard, m.uid ?? ""));
      if (errs.length > 0) this.violations.push(`rv ${prev.resourceVersion} -> ${rv}: ${errs.join("; ")}`);
    }
    this.versions.push({
      at: Date.now(),
      uid: m.uid ?? "",
      resourceVersion: rv,
      generation: m.generation ?? 0,
      status,
    });
  }
}

interface LeaseObj extends KubeObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * A shard played by the test: its Lease (holder, renewals, acks, weight), written with
 * resourceVersion preconditions like a real shard. It gives up (stops writing) once it sees the
 * Lease held by someone else.
 */
export class FakeShard {
  readonly holder: string;
  lease: LeaseObj | undefined;
  lost = false;
  /** Last ack written: generation and SlotMap uid. */
  acked: { generation: number; uid: string } | undefined;
  /** Highest ack ever written, per SlotMap uid (the status no longer copies acks). */
  readonly ackedMax = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly http: KubeHttp,
    readonly namespace: string,
    readonly slotmap: string,
    readonly name: string,
    readonly opts: { leaseDurationSeconds?: number; renewEveryMs?: number } = {},
  ) {
    this.holder = `${name}-${randomBytes(3).toString("hex")}`;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases`;
  }

  /** Creates the Lease (held by this shard) and starts renewing it. */
  async join(annotations: Record<string, string> = {}): Promise<void> {
    const now = microTime();
    this.lease = await this.http.request<LeaseObj>("POST", this.path, {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name: this.name,
          namespace: this.namespace,
          labels: { [LABEL_SLOTMAP]: this.slotmap },
          annotations,
        },
        spec: {
          holderIdentity: this.holder,
          leaseDurationSeconds: this.opts.leaseDurationSeconds ?? 2,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      },
    });
    this.startRenewing();
  }

  startRenewing(): void {
    this.stopRenewing();
    this.timer = setInterval(() => {
      this.renew().catch(() => {});
    }, this.opts.renewEveryMs ?? 400);
  }

  stopRenewing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  renew(): Promise<void> {
    return this.update((l) => {
      l.spec.renewTime = microTime();
    });
  }

  /** Writes the ack annotations (generation, SlotMap uid). */
  ack(generation: number, uid: string): Promise<void> {
    this.acked = { generation, uid };
    this.ackedMax.set(uid, Math.max(this.ackedMax.get(uid) ?? 0, generation));
    return this.update((l) => {
      l.metadata.annotations = {
        ...l.metadata.annotations,
        [ANNOTATION_OBSERVED_GENERATION]: String(generation),
        [ANNOTATION_SLOTMAP_UID]: uid,
      };
      l.spec.renewTime = microTime();
    });
  }

  annotate(annotations: Record<string, string>): Promise<void> {
    return this.update((l) => {
      l.metadata.annotations = { ...l.metadata.annotations, ...annotations };
    });
  }

  /** Graceful shutdown: clears holderIdentity. */
  release(): Promise<void> {
    this.stopRenewing();
    return this.update((l) => {
      l.spec.holderIdentity = null;
    });
  }

  /** Serialised read-modify-write with the resourceVersion precondition; re-reads on 409. */
  private update(mutate: (l: LeaseObj) => void): Promise<void> {
    const run = async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        if (this.lost || this.lease === undefined) throw new Error(`shard ${this.name}: lease lost`);
        const next = structuredClone(this.lease);
        mutate(next);
        try {
          this.lease = await this.http.request<LeaseObj>("PUT", `${this.path}/${this.name}`, { body: next });
          return;
        } catch (err) {
          if (!isStatus(err, 409)) throw err;
          const current = await this.http.request<LeaseObj>("GET", `${this.path}/${this.name}`);
          if (current.spec.holderIdentity !== this.holder) {
            this.lost = true;
            this.stopRenewing();
            throw new Error(`shard ${this.name}: Lease now held by ${current.spec.holderIdentity}`);
          }
          this.lease = current;
        }
      }
      throw new Error(`shard ${this.name}: too many conflicts`);
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  /** The Lease as the API server has it now (undefined when deleted). */
  async read(): Promise<LeaseObj | undefined> {
    try {
      return await this.http.request<LeaseObj>("GET", `${this.path}/${this.name}`);
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }
}

/** Value of one sample of a Prometheus text exposition, or undefined when absent. */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const kv of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(kv[1]!, kv[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

export async function fetchText(port: number, p: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, text: await res.text() };
}

/** Events whose involvedObject has this name, in a namespace. */
export async function eventsFor(
  http: KubeHttp,
  namespace: string,
  name: string,
): Promise<
  Array<{ reason: string; type: string; message: string; count?: number; involvedObject: KubeObject }>
> {
  const list = await http.request<{
    items: Array<{
      reason: string;
      type: string;
      message: string;
      count?: number;
      involvedObject: KubeObject;
    }>;
  }>("GET", `/api/v1/namespaces/${namespace}/events`, {
    query: { fieldSelector: `involvedObject.name=${name}` },
  });
  return list.items;
}

/** A coordinator run as a separate OS process (node --import tsx src/coordinator/main.ts). */
export class CoordinatorProcess {
  readonly logs: Array<Record<string, unknown>> = [];
  readonly stderr: string[] = [];
  /** The `/metrics` port, once logged (`metrics server listening`). */
  metricsPort: number | undefined;
  /** The `/healthz` and `/readyz` port, once logged (`health probe server listening`). */
  probePort: number | undefined;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcessByStdio<null, Readable, Readable>;

  constructor(args: string[]) {
    const node = path.join(repoRoot, "node_modules/.bin/node");
    this.child = spawn(node, ["--import", "tsx", path.join(repoRoot, "src/coordinator/main.ts"), ...args], {
      cwd: repoRoot,
      env: { ...process.env, KUBECONFIG: kubeconfigPath() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        this.logs.push(rec);
        if (typeof rec.port === "number" && rec.msg === "metrics server listening")
          this.metricsPort = rec.port;
        if (typeof rec.port === "number" && rec.msg === "health probe server listening")
          this.probePort = rec.port;
      } catch {
        this.stderr.push(line);
      }
    });
    createInterface({ input: this.child.stderr }).on("line", (line) => this.stderr.push(line));
    this.exit = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  hasLog(msg: string): boolean {
    return this.logs.some((l) => l.msg === msg);
  }

  /** The last lines of output, for failure messages. */
  tail(): string {
    return [...this.logs.slice(-15).map((l) => JSON.stringify(l)), ...this.stderr.slice(-10)].join("\n");
  }
}

/** What a test file cleans up in afterAll, and where its coordinator's metrics are. */
export interface Tracked {
  shards: FakeShard[];
  observers: StatusObserver[];
  slotMaps: string[];
  /** Port of the coordinator's ops server whose /metrics {@link SlotMapFixture.metrics} reads. */
  metricsPort: () => number | undefined;
}

/** One SlotMap with its own lease namespace, its shards (played by the test) and a status observer. */
export class SlotMapFixture {
  readonly shards: Record<string, FakeShard> = {};
  uid = "";

  private constructor(
    readonly http: KubeHttp,
    readonly track: Tracked,
    readonly name: string,
    readonly ns: string,
    readonly observer: StatusObserver,
  ) {}

  /** Creates the namespace, the shards' Leases, then the SlotMap (the observer watches from the start). */
  static async create(
    http: KubeHttp,
    track: Tracked,
    prefix: string,
    shardNames: string[],
    spec: Record<string, unknown> = {},
    annotations: Record<string, Record<string, string>> = {},
  ): Promise<SlotMapFixture> {
    const ns = await freshNamespace(`coord-${prefix}`);
    const name = uniqueName(prefix);
    const observer = new StatusObserver(http, name);
    track.observers.push(observer);
    await observer.start();
    const t = new SlotMapFixture(http, track, name, ns, observer);
    observer.ackOf = (shard, uid) => t.maxAck(shard, uid);
    for (const n of shardNames) await t.join(n, annotations[n]);
    track.slotMaps.push(name);
    const sm = await createSlotMap(http, name, {
      leaseNamespace: ns,
      resources: [{ resource: "secrets" }],
      ...spec,
    });
    t.uid = sm.metadata.uid;
    return t;
  }

  /** Highest generation any fake shard named `shard` wrote as an ack for `uid`. */
  maxAck(shard: string, uid: string): number {
    let max = 0;
    for (const s of this.track.shards) if (s.name === shard) max = Math.max(max, s.ackedMax.get(uid) ?? 0);
    return max;
  }

  async join(shard: string, annotations: Record<string, string> = {}): Promise<FakeShard> {
    const s = new FakeShard(this.http, this.ns, this.name, shard);
    this.track.shards.push(s);
    this.shards[shard] = s;
    await s.join(annotations);
    return s;
  }

  latest(): SlotMapStatus | undefined {
    return this.observer.latest()?.status;
  }

  /** Waits until the watched status satisfies `pred`. */
  until(
    pred: (s: SlotMapStatus) => boolean,
    description: string,
    timeoutMs = 20_000,
  ): Promise<SlotMapStatus> {
    return waitFor(
      () => {
        const s = this.latest();
        return s !== undefined && pred(s) ? s : undefined;
      },
      { timeoutMs, intervalMs: 50, description: `${this.name}: ${description}` },
    );
  }

  /** Acks the current generation from every live shard until the table is balanced, no migrations. */
  settle(description = "balanced with no migrations", timeoutMs = 60_000): Promise<SlotMapStatus> {
    return waitFor(
      async () => {
        const s = this.latest();
        if (s === undefined) return undefined;
        if (s.migrations.length === 0 && conditionOf(s, "Balanced")?.status === "True") return s;
        for (const shard of Object.values(this.shards)) {
          const a = shard.acked;
          if (shard.lost || (a?.uid === this.uid && a.generation >= s.assignmentGeneration)) continue;
          await shard.ack(s.assignmentGeneration, this.uid).catch(() => {});
        }
        return undefined;
      },
      { timeoutMs, intervalMs: 100, description: `${this.name}: ${description}` },
    );
  }

  async metrics(): Promise<string> {
    const port = this.track.metricsPort();
    if (port === undefined) throw new Error("no coordinator metrics port");
    return (await fetchText(port, "/metrics")).text;
  }

  /** `kubectl get sm <name>` columns: SHARDS READY GENERATION MIGRATING BALANCED. */
  async printed(): Promise<string[]> {
    const r = await kubectl(["get", "sm", this.name, "--no-headers"]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim().split(/\s+/).slice(1, 6);
  }

  expectNoViolations(): void {
    expect(this.observer.violations).toEqual([]);
  }
}
