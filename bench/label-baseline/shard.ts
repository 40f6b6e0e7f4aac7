/**
 * One shard of the label-based baseline, as a process (started by the rebalance harness).
 *
 * What timebertt's shard library and example controller do:
 * - hold the shard Lease with leader-election semantics (holderIdentity = shard name, 15 s lease,
 *   renewed every 2 s, released on shutdown);
 * - watch the sharded Secrets and their ConfigMaps with the label selector `shard.…/<ring>=<me>`,
 *   caching the full objects (an informer cache);
 * - a work queue of Secret keys; the sharded reconciler drops objects not labelled for it, acks a
 *   drain by removing the shard and drain labels (merge patch with optimistic lock), and otherwise
 *   runs the checksum reconcile.
 */
import { checksumReconciler } from "../../examples/checksum-controller/reconciler.js";
import { reconcileWriter } from "../../src/client/controller.js";
import type { GroupResourceRef, ReconcileRequest, ResolvedResource } from "../../src/client/index.js";
import { WorkQueue } from "../../src/client/workqueue.js";
import { isStatus, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { childConfig, nowMs, Reporter, send, serveParent, zeroCounters } from "../support/ipc.js";
import { connectKube, processTally } from "../support/kube.js";
import { LABEL_CONTROLLER_RING, labelDrain, labelShard, shardAction } from "./protocol.js";

/** Configuration passed by the harness. */
export interface LabelShardConfig {
  kubeconfig: string;
  ring: string;
  shard: string;
  leaseNamespace: string;
  namespace: string;
  workers: number;
  leaseDurationSeconds: number;
  retryPeriodMs: number;
}

interface LeaseObject extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const cfg = childConfig<LabelShardConfig>();
const kube = connectKube(cfg.kubeconfig, 16);
// Before any request: every watch and list response of this process is counted.
const tally = processTally();
const http = kube.http;
const counters = zeroCounters();
const reporter = new Reporter();
const shardLabel = labelShard(cfg.ring);
const drainLabel = labelDrain(cfg.ring);
const selector = `${shardLabel}=${cfg.shard}`;

// --- Lease (client-go leader election, as timebertt's shard lease lock uses it) -----------------

const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${cfg.leaseNamespace}/leases`;
let lease: LeaseObject | undefined;
let holding = false;
let leaseTimer: NodeJS.Timeout | undefined;
let stopping = false;

function microTime(): string {
  // MicroTime: RFC 3339 with microseconds.
  return `${new Date().toISOString().slice(0, -1)}000Z`;
}

async function tryAcquireOrRenew(): Promise<boolean> {
  const now = microTime();
  if (!lease) {
    try {
      lease = await http.request<LeaseObject>("GET", `${leasePath}/${cfg.shard}`);
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      counters.writes++;
      lease = await http.request<LeaseObject>("POST", leasePath, {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name: cfg.shard,
            namespace: cfg.leaseNamespace,
            labels: { [LABEL_CONTROLLER_RING]: cfg.ring },
          },
          spec: {
            holderIdentity: cfg.shard,
            leaseDurationSeconds: cfg.leaseDurationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
  }
  const spec = lease.spec ?? {};
  const heldByOther = spec.holderIdentity && spec.holderIdentity !== cfg.shard;
  if (heldByOther) {
    const renew = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    if (renew + (spec.leaseDurationSeconds ?? cfg.leaseDurationSeconds) * 1000 > Date.now()) {
      lease = undefined; // re-read next time
      return false;
    }
  }
  const acquiring = spec.holderIdentity !== cfg.shard;
  const body: LeaseObject = {
    ...lease,
    metadata: { ...lease.metadata, labels: { ...lease.metadata?.labels, [LABEL_CONTROLLER_RING]: cfg.ring } },
    spec: {
      ...spec,
      holderIdentity: cfg.shard,
      leaseDurationSeconds: cfg.leaseDurationSeconds,
      renewTime: now,
      acquireTime: acquiring ? now : (spec.acquireTime ?? now),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (acquiring ? 1 : 0),
    },
  };
  try {
    counters.writes++;
    lease = await http.request<LeaseObject>("PUT", `${leasePath}/${cfg.shard}`, { body });
    return true;
  } catch (err) {
    lease = undefined;
    if (isStatus(err, 409)) return false;
    throw err;
  }
}

async function leaseLoop(onAcquired: () => void): Promise<void> {
  if (stopping) return;
  try {
    const ok = await tryAcquireOrRenew();
    if (ok && !holding) {
      holding = true;
      onAcquired();
    }
  } catch (err) {
    process.stderr.write(`lease: ${String(err)}\n`);
  }
  if (!stopping) leaseTimer = setTimeout(() => void leaseLoop(onAcquired), cfg.retryPeriodMs);
}

async function releaseLease(): Promise<void> {
  if (!holding) return;
  // client-go's release: holderIdentity cleared, 1 s duration. A conflict (the sharder's state
  // label) is retried on a fresh read, else the shard would only leave the ring by expiry.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      lease ??= await http.request<LeaseObject>("GET", `${leasePath}/${cfg.shard}`);
      if (lease.spec?.holderIdentity !== cfg.shard) break;
      counters.writes++;
      await http.request("PUT", `${leasePath}/${cfg.shard}`, {
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime() },
        },
      });
      break;
    } catch (err) {
      lease = undefined;
      if (!isStatus(err, 409)) {
        process.stderr.write(`release: ${String(err)}\n`);
        break;
      }
    }
  }
  holding = false;
}

// --- caches, queue, reconciler --------------------------------------------------------------------

const secrets = new Map<string, KubeObject>();
const configMaps = new Map<string, KubeObject>();
/** Secret key → keys of cached ConfigMaps it controls (controller-runtime's Owns() index). */
const children = new Map<string, Set<string>>();
/** The example controller's reconcile, the same function the slot-based shards run. */
const checksum = checksumReconciler(http);
const SECRETS: ResolvedResource = {
  group: "",
  version: "v1",
  apiVersion: "v1",
  resource: "secrets",
  kind: "Secret",
  namespaced: true,
  path: "/api/v1/secrets",
};
/** Root objects whose drain this shard has seen (it no longer reconciles them). */
const drained = new Set<string>();
const queue = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 60_000 });

/**
 * Drops managedFields before caching, as controller-runtime's `TransformStripManagedFields` does:
 * the baseline's shard memory then measures the sharding approach, not field-manager bookkeeping
 * (the slotmap runtime drops them too).
 */
function strip(o: KubeObject): KubeObject {
  if (o.metadata) delete o.metadata.managedFields;
  return o;
}

function nameOf(o: KubeObject): string {
  return `${o.metadata?.namespace}/${o.metadata?.name}`;
}

const secretReflector = new Reflector<KubeObject>({
  http,
  path: `/api/v1/namespaces/${cfg.namespace}/secrets`,
  labelSelector: selector,
  handler: {
    onEvent(type, obj, listed) {
      if (listed) counters.listedObjects++;
      else counters.objectWatchEvents++;
      const key = nameOf(obj);
      if (type === "DELETED") {
        if (secrets.delete(key) && !drained.has(key)) reporter.lostKey(key);
        drained.delete(key);
        queue.remove(key);
        return;
      }
      if (!secrets.has(key)) reporter.gainedKey(key);
      secrets.set(key, strip(obj));
      if (obj.metadata?.labels?.[drainLabel] !== undefined && !drained.has(key)) {
        // From here on this shard starts no reconcile for the object: its ownership pause begins.
        drained.add(key);
        reporter.lostKey(key);
      }
      queue.add(key);
    },
  },
});

const configMapReflector = new Reflector<KubeObject>({
  http,
  path: `/api/v1/namespaces/${cfg.namespace}/configmaps`,
  labelSelector: selector,
  handler: {
    onEvent(type, obj, listed) {
      if (listed) counters.listedObjects++;
      else counters.objectWatchEvents++;
      const key = nameOf(obj);
      const owners = obj.metadata?.ownerReferences as Array<{
        kind?: string;
        name?: string;
        controller?: boolean;
      }>;
      const ref = owners?.find((r) => r.controller === true && r.kind === "Secret");
      const rootKey = ref?.name ? `${obj.metadata?.namespace}/${ref.name}` : undefined;
      if (type === "DELETED") {
        configMaps.delete(key);
        if (rootKey) children.get(rootKey)?.delete(key);
      } else {
        configMaps.set(key, strip(obj));
        if (rootKey) {
          let set = children.get(rootKey);
          if (!set) {
            set = new Set();
            children.set(rootKey, set);
          }
          set.add(key);
        }
      }
      // Owns(): a change of a controlled ConfigMap enqueues its Secret.
      if (rootKey && type !== "DELETED") queue.add(rootKey);
    },
  },
});

async function reconcile(key: string): Promise<void> {
  const secret = secrets.get(key);
  if (!secret) return; // gone, or not assigned to us any more
  const action = shardAction(cfg.ring, cfg.shard, secret.metadata?.labels);
  if (action === "ignore") return;
  counters.reconciles++;
  if (action === "ackDrain") {
    // Ack the drain: remove both labels; the webhook assigns the new shard in this request.
    counters.writes++;
    await http.request(
      "PATCH",
      `/api/v1/namespaces/${secret.metadata?.namespace}/secrets/${secret.metadata?.name}`,
      {
        body: {
          metadata: {
            resourceVersion: secret.metadata?.resourceVersion,
            labels: { [shardLabel]: null, [drainLabel]: null },
          },
        },
        contentType: "application/merge-patch+json",
      },
    );
    return;
  }
  const namespace = secret.metadata?.namespace ?? "";
  const name = secret.metadata?.name ?? "";
  const request: ReconcileRequest = {
    key: `/Secret/${namespace}/${name}`,
    namespace,
    name,
    slot: -1, // no slots in the label-based protocol
    resource: SECRETS,
    object: secret,
    signal: new AbortController().signal,
    fence: "", // the label-based protocol has no fencing: writes go unstamped
    fenced: (o) => o,
    // The same writes as the sharded runtime's, without its fencing token.
    write: reconcileWriter(http, (o) => o),
    event: async () => {},
    controlled<C>(resource?: GroupResourceRef): C[] {
      if (resource !== undefined && (resource.group !== "" || resource.resource !== "configmaps")) return [];
      const out: C[] = [];
      for (const k of children.get(key) ?? []) {
        const cm = configMaps.get(k);
        if (cm) out.push(cm as unknown as C);
      }
      return out;
    },
  };
  await checksum(request);
  reporter.reconciledKey(key);
}

async function worker(): Promise<void> {
  for (;;) {
    const key = await queue.get();
    if (key === undefined) return;
    try {
      await reconcile(key);
      queue.forget(key);
    } catch (err) {
      // 409 (stale cache) and AlreadyExists (ConfigMap not yet in our cache) are expected while
      // objects move; controller-runtime requeues with backoff, so do we.
      if (!isStatus(err, 409)) process.stderr.write(`reconcile ${key}: ${String(err)}\n`);
      queue.addRateLimited(key);
    } finally {
      queue.done(key);
    }
  }
}

// --- lifecycle -------------------------------------------------------------------------------------

let workers: Promise<void>[] = [];

serveParent({
  counters,
  watch: tally,
  stats: () => {
    let owned = 0;
    for (const [k, s] of secrets)
      if (!drained.has(k) && s.metadata?.labels?.[shardLabel] === cfg.shard) owned++;
    return {
      counters: { ...counters },
      memory: process.memoryUsage(),
      ownedObjects: owned,
      nonOwnedObjects: 0,
      cachedObjects: secrets.size + configMaps.size,
      watch: structuredClone(tally),
    };
  },
  onStop: async () => {
    // From here on no reconcile starts (the queue shuts down): the pause of every object begins,
    // at the same point as for the slot-based shard.
    send({ type: "lostAll", t: nowMs() });
    stopping = true;
    clearTimeout(leaseTimer);
    await queue.shutDown();
    await Promise.all(workers);
    await releaseLease();
    reporter.stop();
    await Promise.all([secretReflector.stop(), configMapReflector.stop()]);
    await kube.close();
  },
});

void leaseLoop(() => {
  // Ready = the shard Lease is held: from then on the sharder counts the shard in the ring.
  send({ type: "ready", t: nowMs(), identity: cfg.shard });
  void (async () => {
    // The caches start once the shard Lease is held, like a manager whose shard lock gates them.
    await Promise.all([secretReflector.start(), configMapReflector.start()]);
    workers = Array.from({ length: cfg.workers }, () => worker());
  })().catch((err: unknown) => send({ type: "fatal", message: String(err) }));
});
