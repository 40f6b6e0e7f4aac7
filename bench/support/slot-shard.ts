/**
 * One slot-based shard as a process (started by the rebalance harness): the slotmap client library
 * (shard membership + sharded controller runtime) running the example checksum reconciler, as
 * examples/checksum-controller does, plus instrumentation for the harness: slot gains and losses,
 * each reconcile's end time, and stats on request.
 *
 * The library talks to the API server through its own transport (src/kube/http.ts: one keep-alive
 * pool per process, like the baseline's {@link PooledKubeConfig}), so neither side pays a TLS
 * handshake per request. Its watch and list traffic is counted through undici's diagnostics
 * channel.
 */
import { checksumReconciler } from "../../examples/checksum-controller/reconciler.js";
import { createShardMember, type ShardLogger, startController } from "../../src/client/index.js";
import { KubeHttp } from "../../src/kube/http.js";
import { formatSlotRanges, SLOT_COUNT } from "../../src/slots/index.js";
import { childConfig, nowMs, Reporter, send, serveParent, zeroCounters } from "./ipc.js";
import { PooledKubeConfig, processTally } from "./kube.js";

/** Configuration passed by the harness. */
export interface SlotShardConfig {
  kubeconfig: string;
  slotMap: string;
  shard: string;
  leaseNamespace: string;
  concurrency: number;
  /** The controller's `cache` option. */
  cache: "owned" | "all";
}

const cfg = childConfig<SlotShardConfig>();
const kc = new PooledKubeConfig(16);
kc.loadFromFile(cfg.kubeconfig);
const counters = zeroCounters();
const tally = processTally();
const reporter = new Reporter();

const write =
  (level: string) =>
  (fields: object, msg: string): void => {
    process.stderr.write(`${JSON.stringify({ level, t: new Date().toISOString(), msg, ...fields })}\n`);
  };
const logger: ShardLogger = { debug() {}, info: write("info"), warn: write("warn"), error: write("error") };

const member = createShardMember({
  kubeConfig: kc,
  slotMap: cfg.slotMap,
  shard: cfg.shard,
  leaseNamespace: cfg.leaseNamespace,
  logger,
});
let readySent = false;
/** Ready = the Lease is held (first unfenced): from then on the coordinator counts the shard. */
function ready(): void {
  if (readySent) return;
  readySent = true;
  send({ type: "ready", t: nowMs(), identity: member.identity });
}
member.subscribe({
  unfenced: () => ready(),
  slotsGained: (e) =>
    reporter.slotChange({
      t: nowMs(),
      kind: "gained",
      ranges: formatSlotRanges(e.ranges),
      generation: e.generation,
    }),
  slotsLost: (e) =>
    reporter.slotChange({
      t: nowMs(),
      kind: "lost",
      ranges: formatSlotRanges(e.ranges),
      generation: e.generation,
    }),
});

const stopController = new AbortController();
const controller = startController({
  member,
  reconcile: checksumReconciler(new KubeHttp(kc), logger),
  concurrency: cfg.concurrency,
  cache: cfg.cache,
  signal: stopController.signal,
  logger,
  onReconcile: (r) => {
    counters.reconciles++;
    if (r.outcome !== "ok") return;
    // `group/Kind/namespace/name` → `namespace/name`, the harness's key.
    const parts = r.key.split("/");
    // Stamped with the clock of the slot reports (performance.timeOrigin + now), not the record's
    // Date.now(): the two differ by a few ms, and a gained slot reconciled from the cache ends
    // within milliseconds of its gain.
    reporter.reconciledKey(`${parts[2]}/${parts.slice(3).join("/")}`);
  },
});

/** The runtime's cumulative count of objects received by gain re-lists, at the last reset. */
let listedBase = 0;

serveParent({
  counters,
  watch: tally,
  onReset: () => {
    listedBase = controller.stats().gainListedObjects;
  },
  stats: () => {
    const s = controller.stats();
    return {
      // Objects listed since the reset: the runtime's gain re-lists (the reflectors' own first
      // lists happen at start-up, before any reset).
      counters: { ...counters, listedObjects: s.gainListedObjects - listedBase },
      memory: process.memoryUsage(),
      // With cache "all" every root is cached: the owned share is the owned slots' share (the
      // hash spreads objects evenly over slots).
      ownedObjects:
        cfg.cache === "all" ? Math.round((s.roots * member.ownership.ownedCount()) / SLOT_COUNT) : s.roots,
      // Not tracked by the runtime (it keeps nothing of other slots); the harness fills it in.
      nonOwnedObjects: -1,
      cachedObjects: s.roots + s.controlled + s.tombstones,
      watch: structuredClone(tally),
    };
  },
  onStop: async () => {
    // From here on no reconcile starts (the member's shutdown); the pause of every slot begins.
    send({ type: "lostAll", t: nowMs() });
    const stopping = member.stop({ timeoutMs: 20_000 });
    stopController.abort();
    await Promise.all([stopping, controller.done]);
    reporter.stop();
    await kc.close();
  },
});

member.ready.then(
  () => ready(),
  (err: unknown) => send({ type: "fatal", message: `member never ready: ${String(err)}` }),
);
