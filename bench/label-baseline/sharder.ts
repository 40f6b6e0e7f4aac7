/**
 * The sharder of the label-based baseline, as a process (started by the rebalance harness). One
 * process plays the three parts timebertt's sharder deployment runs:
 *
 * - **shardlease controller**: computes each shard Lease's state, keeps the state label on the
 *   Lease, acquires uncertain Leases, deletes orphaned ones;
 * - **sharder controller**: when a shard's availability changes (and every 5 minutes), lists all
 *   sharded objects (metadata only, from the watch cache) and, for every object whose ring
 *   assignment differs from its shard label: drains it (available current shard, root object) or
 *   moves it directly (controlled object, or current shard unavailable) by removing its labels.
 *   Objects are patched by 100 workers at once (the original's `ConcurrentMoves`), with
 *   optimistic locking;
 * - **sharder webhook**: a mutating admission webhook for CREATE and UPDATE of objects without a
 *   shard label, which assigns the shard from the ring in the same request.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isStatus, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { childConfig, nowMs, send, serveParent, zeroCounters } from "../support/ipc.js";
import { connectKube, processTally, runPool } from "../support/kube.js";
import {
  HashRing,
  IDENTITY_SHARD_LEASE_CONTROLLER,
  isAvailable,
  keyForController,
  keyForObject,
  LABEL_CONTROLLER_RING,
  LABEL_STATE,
  type LeaseLike,
  labelDrain,
  labelShard,
  leaseState,
  leaseTimes,
  type ObjectMetaLike,
  resyncAction,
  type ShardState,
} from "./protocol.js";

/** Configuration passed by the harness. */
export interface SharderConfig {
  kubeconfig: string;
  ring: string;
  leaseNamespace: string;
  /** Namespace of the sharded objects (the ring's namespaceSelector selects only it). */
  namespace: string;
  /** Periodic resync (timebertt default: 5 minutes). */
  syncPeriodMs: number;
  /**
   * Objects moved at once during a resync: the original sharder's `ConcurrentMoves` workers
   * (default 100 since upstream #637).
   */
  patchConcurrency: number;
}

/** A sharded resource of the ring. */
interface RingResource {
  group: string;
  kind: string;
  resource: string;
  /** Listed under controlledResources: keyed by its controller owner, moved without drain. */
  controlled: boolean;
}

const RESOURCES: RingResource[] = [
  { group: "", kind: "Secret", resource: "secrets", controlled: false },
  { group: "", kind: "ConfigMap", resource: "configmaps", controlled: true },
];

type LeaseObject = KubeObject & LeaseLike;

interface PartialMeta {
  metadata: ObjectMetaLike & { labels?: Record<string, string>; resourceVersion?: string };
}

const cfg = childConfig<SharderConfig>();
const kube = connectKube(cfg.kubeconfig, 32);
// Before any request: every watch and list response of this process is counted.
const tally = processTally();
const http = kube.http;
const counters = zeroCounters();
const shardLabel = labelShard(cfg.ring);
const drainLabel = labelDrain(cfg.ring);
const leasesPath = `/apis/coordination.k8s.io/v1/namespaces/${cfg.leaseNamespace}/leases`;

// --- shard Leases and the ring ---------------------------------------------------------------------

const leases = new Map<string, LeaseObject>();
const leaseTimers = new Map<string, NodeJS.Timeout>();
let ringCache: { key: string; ring: HashRing; states: Map<string, ShardState> } | undefined;

/** Ring and states from the current Leases (cached while the available set is unchanged). */
function currentRing(): { ring: HashRing; states: Map<string, ShardState> } {
  const now = Date.now();
  const states = new Map<string, ShardState>();
  for (const [name, l] of leases) states.set(name, leaseState(l, now));
  const available = [...states].filter(([, s]) => isAvailable(s)).map(([n]) => n);
  available.sort();
  const key = available.join(",");
  if (ringCache?.key !== key) ringCache = { key, ring: new HashRing(available), states };
  else ringCache.states = states;
  return ringCache;
}

/** shardlease controller: state label, acquisition of uncertain Leases, deletion of orphaned ones. */
async function reconcileLease(name: string): Promise<void> {
  const lease = leases.get(name);
  if (!lease) return;
  const now = Date.now();
  const state = leaseState(lease, now);
  const previous = lease.metadata?.labels?.[LABEL_STATE];
  try {
    if (previous !== state) {
      counters.writes++;
      await http.request("PATCH", `${leasesPath}/${name}`, {
        body: {
          metadata: { resourceVersion: lease.metadata?.resourceVersion, labels: { [LABEL_STATE]: state } },
        },
        contentType: "application/merge-patch+json",
      });
    }
    const t = leaseTimes(lease, now);
    let after: number | undefined;
    if (state === "ready") after = t.toExpiredMs;
    else if (state === "expired") after = t.toUncertainMs;
    else if (state === "uncertain") {
      const micro = `${new Date(now).toISOString().slice(0, -1)}000Z`;
      counters.writes++;
      await http.request("PUT", `${leasesPath}/${name}`, {
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: IDENTITY_SHARD_LEASE_CONTROLLER,
            leaseDurationSeconds: 2 * Math.round(t.leaseDurationMs / 1000),
            acquireTime: micro,
            renewTime: micro,
            leaseTransitions: ((lease.spec as { leaseTransitions?: number }).leaseTransitions ?? 0) + 1,
          },
        },
      });
      after = t.leaseDurationMs;
    } else if (state === "dead") after = t.toOrphanedMs;
    else if (state === "orphaned") {
      counters.writes++;
      await http.request("DELETE", `${leasesPath}/${name}`);
      return;
    }
    schedule(name, after);
  } catch (err) {
    if (!isStatus(err, 409) && !isStatus(err, 404)) process.stderr.write(`lease ${name}: ${String(err)}\n`);
    schedule(name, 1000);
  }
}

function schedule(name: string, afterMs: number | undefined): void {
  clearTimeout(leaseTimers.get(name));
  if (afterMs === undefined) return;
  const t = setTimeout(
    () => {
      void reconcileLease(name);
      // Time alone moves a Lease between states; availability may change with it.
      maybeResync();
    },
    Math.max(10, afterMs + 5),
  );
  t.unref();
  leaseTimers.set(name, t);
}

let lastAvailable = "";
/** The sharder's Lease predicate: resync the ring when the set of available shards changed. */
function maybeResync(): void {
  const { ring, states } = currentRing();
  void ring;
  const available = [...states]
    .filter(([, s]) => isAvailable(s))
    .map(([n]) => n)
    .sort()
    .join(",");
  if (available !== lastAvailable) {
    lastAvailable = available;
    requestResync();
  }
}

const leaseReflector = new Reflector<LeaseObject>({
  http,
  path: leasesPath,
  labelSelector: `${LABEL_CONTROLLER_RING}=${cfg.ring}`,
  handler: {
    onEvent(type, obj) {
      counters.controlWatchEvents++;
      const name = obj.metadata?.name ?? "";
      if (type === "DELETED") {
        leases.delete(name);
        clearTimeout(leaseTimers.get(name));
      } else {
        leases.set(name, obj);
        void reconcileLease(name);
      }
      maybeResync();
    },
  },
});

// --- sharder controller: ring resync ---------------------------------------------------------------

let resyncRunning = false;
let resyncAgain = false;
let periodic: NodeJS.Timeout | undefined;

function requestResync(): void {
  if (resyncRunning) {
    resyncAgain = true;
    return;
  }
  resyncRunning = true;
  void runResyncs();
}

async function runResyncs(): Promise<void> {
  do {
    resyncAgain = false;
    let errors = 0;
    try {
      errors = await resync();
    } catch (err) {
      process.stderr.write(`resync: ${String(err)}\n`);
      errors++;
    }
    // Failed objects are retried by another resync after a backoff (a reconcile error requeues).
    if (errors > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      resyncAgain = true;
    }
  } while (resyncAgain);
  resyncRunning = false;
  clearTimeout(periodic);
  periodic = setTimeout(requestResync, cfg.syncPeriodMs);
  periodic.unref();
}

async function resync(): Promise<number> {
  const t0 = nowMs();
  send({ type: "resync", t: t0, phase: "start", drained: 0, moved: 0, errors: 0 });
  let drained = 0;
  let moved = 0;
  let errors = 0;
  for (const res of RESOURCES) {
    const path = `/api/v1/namespaces/${cfg.namespace}/${res.resource}`;
    let cont: string | undefined;
    do {
      // Metadata only, first page from the watch cache (resourceVersion=0), as the original does.
      const text = await kube.getText(
        path,
        { limit: 500, continue: cont, resourceVersion: cont ? undefined : "0" },
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
      );
      const page = JSON.parse(text) as { items: PartialMeta[] | null; metadata: { continue?: string } };
      page.items ??= [];
      counters.listedObjects += page.items.length;
      // The ring of this pass (recomputed per page: availability may change meanwhile).
      const { ring, states } = currentRing();
      await runPool(page.items, cfg.patchConcurrency, async (obj) => {
        const key = res.controlled
          ? keyForController(obj.metadata)
          : keyForObject(res.group, res.kind, obj.metadata);
        if (key === "") return;
        const action = resyncAction({
          ring: cfg.ring,
          desired: ring.hash(key),
          labels: obj.metadata.labels,
          controlled: res.controlled,
          stateOf: (shard) => states.get(shard),
        });
        if (action === "keep" || action === "draining") return;
        const objPath = `${path}/${obj.metadata.name}`;
        try {
          if (action === "drain") {
            counters.writes++;
            await http.request("PATCH", objPath, {
              body: {
                metadata: { resourceVersion: obj.metadata.resourceVersion, labels: { [drainLabel]: "true" } },
              },
              contentType: "application/merge-patch+json",
            });
            drained++;
          } else {
            counters.writes++;
            await http.request("PATCH", objPath, {
              body: {
                metadata: {
                  resourceVersion: obj.metadata.resourceVersion,
                  labels: { [shardLabel]: null, [drainLabel]: null },
                },
              },
              contentType: "application/merge-patch+json",
            });
            moved++;
          }
        } catch (err) {
          errors++;
          if (!isStatus(err, 409) && !isStatus(err, 404))
            process.stderr.write(`resync ${objPath}: ${String(err)}\n`);
        }
      });
      cont = page.metadata.continue || undefined;
    } while (cont);
  }
  send({ type: "resync", t: nowMs(), phase: "done", drained, moved, errors });
  return errors;
}

// --- sharder webhook -------------------------------------------------------------------------------

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request: {
    uid: string;
    resource: { group: string; version: string; resource: string };
    object: PartialMeta & { kind?: string; apiVersion?: string };
  };
}

/** JSON Pointer escaping of one path segment. */
function pointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

function admit(review: AdmissionReview): unknown {
  const req = review.request;
  const allowed = (patch?: unknown[]) => ({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: {
      uid: req.uid,
      allowed: true,
      ...(patch
        ? { patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64") }
        : {}),
    },
  });
  const obj = req.object;
  if (obj.metadata.labels?.[shardLabel]) return allowed();
  const res = RESOURCES.find((r) => r.group === req.resource.group && r.resource === req.resource.resource);
  if (!res) return allowed();
  const key = res.controlled
    ? keyForController(obj.metadata)
    : keyForObject(res.group, res.kind, obj.metadata);
  if (key === "") return allowed();
  const shard = currentRing().ring.hash(key);
  if (shard === "") return allowed();
  const patch = obj.metadata.labels
    ? [{ op: "add", path: `/metadata/labels/${pointer(shardLabel)}`, value: shard }]
    : [{ op: "add", path: "/metadata/labels", value: { [shardLabel]: shard } }];
  return allowed(patch);
}

const certDir = mkdtempSync(join(tmpdir(), "label-sharder-"));
// A throwaway self-signed serving certificate for 127.0.0.1; it is its own CA bundle.
execFileSync(
  "openssl",
  [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    join(certDir, "key.pem"),
    "-out",
    join(certDir, "cert.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ],
  { stdio: "ignore" },
);
const cert = readFileSync(join(certDir, "cert.pem"));
const server = createServer({ cert, key: readFileSync(join(certDir, "key.pem")) }, (request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (c: Buffer) => chunks.push(c));
  request.on("end", () => {
    try {
      const review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as AdmissionReview;
      const body = JSON.stringify(admit(review));
      response.writeHead(200, { "Content-Type": "application/json" }).end(body);
    } catch (err) {
      response.writeHead(400).end(String(err));
    }
  });
});
server.keepAliveTimeout = 60_000;

async function installWebhook(port: number): Promise<void> {
  const name = `controllerring-${cfg.ring}`;
  const path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
  const body = {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name, labels: { [LABEL_CONTROLLER_RING]: cfg.ring } },
    webhooks: [
      {
        name: "sharder.sharding.timebertt.dev",
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: "Fail",
        timeoutSeconds: 10,
        clientConfig: {
          url: `https://127.0.0.1:${port}/webhooks/sharder/controllerring/${cfg.ring}`,
          caBundle: cert.toString("base64"),
        },
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": cfg.namespace } },
        objectSelector: { matchExpressions: [{ key: shardLabel, operator: "DoesNotExist" }] },
        rules: RESOURCES.map((r) => ({
          apiGroups: [r.group],
          apiVersions: ["*"],
          operations: ["CREATE", "UPDATE"],
          resources: [r.resource],
          scope: "*",
        })),
      },
    ],
  };
  try {
    await http.request("DELETE", `${path}/${name}`);
  } catch (err) {
    if (!isStatus(err, 404)) throw err;
  }
  await http.request("POST", path, { body });
}

// --- lifecycle -------------------------------------------------------------------------------------

serveParent({
  counters,
  stats: () => ({
    counters: { ...counters },
    memory: process.memoryUsage(),
    ownedObjects: 0,
    nonOwnedObjects: 0,
    cachedObjects: leases.size,
    watch: structuredClone(tally),
  }),
  onStop: async () => {
    clearTimeout(periodic);
    for (const t of leaseTimers.values()) clearTimeout(t);
    await leaseReflector.stop();
    server.close();
    rmSync(certDir, { recursive: true, force: true });
    await kube.close();
  },
});

await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const address = server.address();
if (address === null || typeof address === "string") throw new Error("webhook server has no port");
await installWebhook(address.port);
await leaseReflector.start();
requestResync();
send({ type: "ready", t: nowMs() });
