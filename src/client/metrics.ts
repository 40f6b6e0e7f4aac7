/**
 * Prometheus metrics of a shard (all prefixed `slotmap_shard_` or `slotmap_reconcile_`): what it
 * owns, its Lease phase, acks, queue and cache sizes, and reconcile outcomes and durations.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { KubeObjectLike } from "../slots/keys.js";
import type { ReconcileRecord, ShardedController } from "./controller.js";
import type { ShardMember } from "./membership.js";

const PHASES = [
  "waitingForSlotMap",
  "starting",
  "candidate",
  "active",
  "fenced",
  "draining",
  "stopped",
] as const;

/** Options of {@link ShardMetrics}. */
export interface ShardMetricsOptions {
  /**
   * Register into this registry (e.g. prom-client's global `register`, beside your own metrics).
   * Default: a new registry with default labels `slotmap` and `shard` (one per instance, so
   * tests can run several). A registry you pass is not given default labels.
   */
  registry?: Registry;
  /** Also collect Node process metrics (heap, event loop lag). Default: true for a new registry, false for yours. */
  defaultMetrics?: boolean;
}

/**
 * Metrics of one shard process. Call {@link ShardMetrics.observe} from the controller's
 * `onReconcile` for per-outcome reconcile counts and durations; {@link ShardMetrics.attach}
 * samples the controller's queue, cache and reconcile totals at every scrape.
 */
export class ShardMetrics {
  /** The registry to serve on /metrics. */
  readonly registry: Registry;
  readonly #reconciles: Counter<"outcome">;
  readonly #duration: Histogram<"outcome">;
  #controller: ShardedController<KubeObjectLike> | undefined;

  /** @param member - sampled at every scrape. */
  constructor(member: ShardMember, options: ShardMetricsOptions = {}) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    if (options.registry === undefined) {
      this.registry.setDefaultLabels({ slotmap: member.slotMap, shard: member.shard });
    }
    if (options.defaultMetrics ?? options.registry === undefined)
      collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: "slotmap_shard_owned_slots",
      help: "Slots this shard owns now (granted to its Lease identity and not fenced).",
      registers,
      collect() {
        this.set(member.status().ownedSlots);
      },
    });
    new Gauge({
      name: "slotmap_shard_phase",
      help: "1 for the shard's current membership phase.",
      labelNames: ["phase"] as const,
      registers,
      collect() {
        const phase = member.status().phase;
        for (const p of PHASES) this.set({ phase: p }, p === phase ? 1 : 0);
      },
    });
    new Gauge({
      name: "slotmap_shard_assignment_generation",
      help: "Assignment generation of the newest SlotMap status applied.",
      registers,
      collect() {
        this.set(member.generation);
      },
    });
    new Gauge({
      name: "slotmap_shard_acked_generation",
      help: "Assignment generation acknowledged in the shard's Lease.",
      registers,
      collect() {
        this.set(member.status().ackedGeneration);
      },
    });
    new Gauge({
      name: "slotmap_shard_reconciles_in_flight",
      help: "Reconciles running now.",
      registers,
      collect() {
        this.set(member.status().inFlight);
      },
    });
    const controller = () => this.#controller?.stats();
    new Gauge({
      name: "slotmap_shard_cached_objects",
      help: "Objects kept in memory (owned slots only), by role.",
      labelNames: ["role"] as const,
      registers,
      collect() {
        const s = controller();
        this.set({ role: "root" }, s?.roots ?? 0);
        this.set({ role: "controlled" }, s?.controlled ?? 0);
      },
    });
    new Gauge({
      name: "slotmap_shard_workqueue_depth",
      help: "Keys waiting in the work queue (queued: ready; waiting: delayed retries; held: gained roots waiting for their controlled objects to be listed).",
      labelNames: ["state"] as const,
      registers,
      collect() {
        const s = controller();
        this.set({ state: "queued" }, s?.queued ?? 0);
        this.set({ state: "waiting" }, s?.waiting ?? 0);
        this.set({ state: "held" }, s?.held ?? 0);
      },
    });
    // Totals from the controller itself, so that attach() alone counts reconciles (observe()
    // adds the per-outcome split and durations).
    new Counter({
      name: "slotmap_shard_reconciles_total",
      help: "Reconciles run by the attached controller since it started, by result (all, error).",
      labelNames: ["result"] as const,
      registers,
      collect() {
        const s = controller();
        this.reset();
        this.inc({ result: "all" }, s?.reconciles ?? 0);
        this.inc({ result: "error" }, s?.reconcileErrors ?? 0);
      },
    });
    this.#reconciles = new Counter({
      name: "slotmap_reconcile_total",
      help: "Reconciles by outcome (ok, requeue, error, aborted).",
      labelNames: ["outcome"] as const,
      registers,
    });
    this.#duration = new Histogram({
      name: "slotmap_reconcile_duration_seconds",
      help: "Reconcile duration by outcome.",
      labelNames: ["outcome"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  /** Samples the controller's queue and cache at every scrape. */
  attach(controller: ShardedController<KubeObjectLike>): void {
    this.#controller = controller;
  }

  /** Counts one reconcile; pass as (or call from) the controller's `onReconcile`. */
  observe(record: ReconcileRecord): void {
    this.#reconciles.inc({ outcome: record.outcome });
    this.#duration.observe({ outcome: record.outcome }, Math.max(0, record.end - record.start) / 1000);
  }
}
