/**
 * A whole sharded system for the end-to-end test and the demo: namespaces, the SlotMap, the
 * coordinator replicas and the example shards as OS processes, the Secret fleet and the SlotMap
 * watch; and, at the end, the audit of what happened.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { KubeHttp } from "../../src/kube/http.js";
import {
  type AuditReport,
  audit,
  type MalformedLine,
  parseReconcileLog,
  type ReconcileRecord,
} from "./auditor.js";
import { secretChecksum } from "./checksum.js";
import {
  applyCrd,
  createNamespace,
  createSlotMap,
  deleteNamespace,
  deleteSlotMap,
  leaseHolder,
  SecretFleet,
  SlotMapWatch,
} from "./driver.js";
import { type ManagedProcess, ProcessGroup } from "./harness.js";

/** Entry point of the coordinator process (bin slotmap-coordinator). */
export const COORDINATOR_SCRIPT = "src/coordinator/main.ts";
/** Entry point of the example shard process. */
export const SHARD_SCRIPT = "examples/checksum-controller/main.ts";

/** Lease timings, in seconds, for the coordinator's leader election and the shards' Leases. */
export interface Timings {
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
}

/** Short timings that keep failover tests quick (margin lease − renew deadline = 1 s). */
export const FAST_TIMINGS: Timings = { leaseDuration: 3, renewDeadline: 2, retryPeriod: 0.5 };

/** Options of {@link SlotmapSystem.create}. */
export interface SystemOptions {
  http: KubeHttp;
  kubeconfig: string;
  /** Where process logs go. */
  logDir: string;
  /** Prefix of the names made (namespaces, SlotMap); a random suffix is added. */
  prefix?: string;
  /** Labels put on the namespaces made (e.g. the integration run's label). */
  namespaceLabels?: Record<string, string>;
  /** Restrict the SlotMap to the Secret namespace (other Secrets of the cluster are ignored). */
  isolate?: boolean;
  timings?: Timings;
  handoffTimeoutSeconds?: number;
  /** Reconciles in flight per shard. */
  concurrency?: number;
  /**
   * The shards' `--cache`. "mixed" (default): every second process start uses "all", the others
   * "owned", so both runtimes run the same handoffs.
   */
  cache?: "owned" | "all" | "mixed";
  logLevel?: string;
  /** Seconds after which the coordinator deletes a Dead shard's Lease. */
  orphanAfter?: number;
}

/** The system under test. */
export class SlotmapSystem {
  readonly group: ProcessGroup;
  readonly fleet: SecretFleet;
  readonly watch: SlotMapWatch;
  /** Shard process start count per shard name, for `shard-0#2` names on restarts. */
  private readonly starts = new Map<string, number>();
  /** Shard process starts so far (all shards), for the "mixed" cache. */
  private startCount = 0;

  private constructor(
    readonly opts: SystemOptions,
    /** Namespace of the Secrets and ConfigMaps. */
    readonly namespace: string,
    /** Namespace of the shard Leases and of the coordinator's leader-election Lease. */
    readonly leaseNamespace: string,
    readonly slotMap: string,
  ) {
    this.group = new ProcessGroup({ logDir: opts.logDir });
    this.fleet = new SecretFleet(opts.http, namespace);
    this.watch = new SlotMapWatch(opts.http, slotMap);
  }

  /** Installs the CRD, makes the namespaces and the SlotMap, starts watching it. */
  static async create(opts: SystemOptions): Promise<SlotmapSystem> {
    const suffix = randomBytes(3).toString("hex");
    const prefix = opts.prefix ?? "checksums";
    const sys = new SlotmapSystem(
      opts,
      `${prefix}-${suffix}`,
      `${prefix}-system-${suffix}`,
      `${prefix}-${suffix}`,
    );
    await applyCrd(opts.http);
    const isolateLabel = { "slotmap.dev/e2e": sys.namespace };
    await createNamespace(opts.http, sys.namespace, { ...opts.namespaceLabels, ...isolateLabel });
    await createNamespace(opts.http, sys.leaseNamespace, opts.namespaceLabels ?? {});
    await createSlotMap(opts.http, {
      name: sys.slotMap,
      leaseNamespace: sys.leaseNamespace,
      ...(opts.isolate ? { namespaceLabels: isolateLabel } : {}),
      handoffTimeoutSeconds: opts.handoffTimeoutSeconds ?? 10,
    });
    await sys.watch.start();
    return sys;
  }

  get timings(): Timings {
    return this.opts.timings ?? FAST_TIMINGS;
  }

  /** Starts a coordinator replica with leader election. */
  startCoordinator(identity: string): ManagedProcess {
    const t = this.timings;
    return this.group.start({
      name: identity,
      script: COORDINATOR_SCRIPT,
      args: [
        "--kubeconfig",
        this.opts.kubeconfig,
        "--identity",
        identity,
        "--leader-elect",
        "true",
        "--leader-elect-resource-namespace",
        this.leaseNamespace,
        "--leader-elect-lease-duration",
        String(t.leaseDuration),
        "--leader-elect-renew-deadline",
        String(t.renewDeadline),
        "--leader-elect-retry-period",
        String(t.retryPeriod),
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
        "--orphan-after",
        String(this.opts.orphanAfter ?? 20),
        "--log-level",
        this.opts.logLevel ?? "info",
      ],
    });
  }

  /**
   * Starts a shard process for Lease `shard` (a restart gets the process name `shard#n`);
   * `inject` preloads fault-injection modules with their environment.
   */
  startShard(
    shard: string,
    inject: { preload?: readonly string[]; env?: Readonly<Record<string, string>> } = {},
  ): ManagedProcess {
    const n = (this.starts.get(shard) ?? 0) + 1;
    this.starts.set(shard, n);
    const t = this.timings;
    const mode = this.opts.cache ?? "mixed";
    const cache = mode === "mixed" ? (this.startCount++ % 2 === 1 ? "all" : "owned") : mode;
    return this.group.start({
      name: n === 1 ? shard : `${shard}#${n}`,
      script: SHARD_SCRIPT,
      ...(inject.preload ? { preload: inject.preload } : {}),
      ...(inject.env ? { env: inject.env } : {}),
      args: [
        "--shard",
        shard,
        "--slotmap",
        this.slotMap,
        "--lease-namespace",
        this.leaseNamespace,
        "--kubeconfig",
        this.opts.kubeconfig,
        "--concurrency",
        String(this.opts.concurrency ?? 4),
        "--cache",
        cache,
        "--metrics-address",
        "off",
        "--lease-duration",
        String(t.leaseDuration),
        "--renew-deadline",
        String(t.renewDeadline),
        "--retry-period",
        String(t.retryPeriod),
        "--log-level",
        this.opts.logLevel ?? "info",
      ],
    });
  }

  /**
   * `p`, or a rejection as soon as a process of the system exits without being asked to (a
   * crash): waits then fail at once with that process's output instead of timing out.
   */
  guard<T>(p: Promise<T>): Promise<T> {
    const crashError = (c: ManagedProcess) =>
      new Error(`${c.name} exited unexpectedly (${JSON.stringify(c.exit)}); its output:\n${c.tail(20)}`);
    const already = this.group.crashed()[0];
    if (already) return Promise.reject(crashError(already));
    let off: () => void = () => {};
    const crash = new Promise<never>((_, reject) => {
      off = this.group.onUnexpectedExit((c) => reject(crashError(c)));
    });
    return Promise.race([p, crash]).finally(off);
  }

  /** Running shard processes. */
  shards(): ManagedProcess[] {
    return this.group.running().filter((p) => p.name.startsWith("shard-"));
  }

  /** The newest process started for shard `shard` (running or not). */
  shardProcess(shard: string): ManagedProcess {
    const n = this.starts.get(shard);
    if (n === undefined) throw new Error(`no process was started for shard ${JSON.stringify(shard)}`);
    return this.group.get(n === 1 ? shard : `${shard}#${n}`);
  }

  /** Shard name of a shard process name (`shard-0#2` → `shard-0`). */
  static shardOf(processName: string): string {
    return processName.split("#")[0]!;
  }

  /** Running coordinator processes. */
  coordinators(): ManagedProcess[] {
    return this.group.running().filter((p) => p.name.startsWith("coordinator-"));
  }

  /**
   * The coordinator process holding the leader-election Lease, if any. The coordinator holds it as
   * `<identity>_<random>` (a fresh suffix per process), the process is named after `<identity>`.
   */
  async leader(leaseName = "slotmap-coordinator"): Promise<ManagedProcess | undefined> {
    const holder = await leaseHolder(this.opts.http, this.leaseNamespace, leaseName);
    if (holder === undefined) return undefined;
    return this.coordinators().find((p) => holder === p.name || holder.startsWith(`${p.name}_`));
  }

  /** The reconcile records of every shard process so far. */
  reconciles(): { records: ReconcileRecord[]; malformed: MalformedLine[] } {
    const records: ReconcileRecord[] = [];
    const malformed: MalformedLine[] = [];
    for (const p of this.group.all()) {
      if (!p.name.startsWith("shard-")) continue;
      const r = parseReconcileLog(p.readStdout(), p.name);
      records.push(...r.records);
      malformed.push(...r.malformed);
    }
    return { records, malformed };
  }

  /** Audits the run: logs, writes, final state, SlotMap history. */
  async audit(): Promise<AuditReport> {
    const { secrets, configMaps } = await this.fleet.finalState();
    const { records, malformed } = this.reconciles();
    return audit({
      reconciles: records,
      malformed,
      writes: this.fleet.writes,
      finalSecrets: secrets,
      finalConfigMaps: configMaps,
      slotMapHistory: this.watch.history,
      namespaces: [this.namespace],
      checksumOf: secretChecksum,
    });
  }

  /** A problem report: status, and the log tail of every process. */
  diagnostics(lines = 15): string {
    const parts = [`logs in ${this.group.logDir}`];
    for (const p of this.group.all()) {
      const state = p.running ? (p.isFrozen ? "frozen" : "running") : `exited ${JSON.stringify(p.exit)}`;
      parts.push(`--- ${p.name} (pid ${p.pid}, ${state}) ${path.basename(p.stderrPath)}:\n${p.tail(lines)}`);
    }
    return parts.join("\n");
  }

  /** Stops every process (SIGTERM, then SIGKILL), the watch, and removes what was made. */
  async teardown(opts: { keepObjects?: boolean; graceMs?: number } = {}): Promise<void> {
    await this.group.stopAll(opts.graceMs ?? 10_000);
    this.group.dispose();
    await this.watch.stop().catch(() => {});
    if (opts.keepObjects) return;
    const http = this.opts.http;
    await Promise.allSettled([
      deleteSlotMap(http, this.slotMap),
      deleteNamespace(http, this.namespace),
      deleteNamespace(http, this.leaseNamespace),
    ]);
  }
}
