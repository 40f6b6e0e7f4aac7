// The handoff protocol under deploy/'s RBAC and admission policies, with real credentials: each
// process authenticates with a ServiceAccount token bound to a Pod object (TokenRequest with a
// boundObjectRef, what the kubelet mounts), so the API server itself sets the pod-name extra the
// shard policy reads. The coordinator (leader election on) and two checksum shards run in-process;
// every write they make goes through the policies: Lease create, renew, ack and release by the
// shards, the leader Lease, a takeover and an orphan delete by the coordinator, the reconciler's
// ConfigMaps. Nothing may be denied.
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChecksumController, startChecksumController } from "../../examples/checksum-controller/app.js";
import { parseChecksumConfig } from "../../examples/checksum-controller/config.js";
import { secretChecksum } from "../../examples/checksum-controller/reconciler.js";
import { microTime } from "../../src/api/lease.js";
import type { ShardLogger } from "../../src/client/index.js";
import { parseCoordinatorConfig } from "../../src/coordinator/config.js";
import { TAKEOVER_HOLDER } from "../../src/coordinator/core/types.js";
import { runCoordinator } from "../../src/coordinator/main.js";
import { CoordinatorMetrics } from "../../src/coordinator/metrics.js";
import { KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { freshNamespace, kubeConfig, waitFor } from "../support/cluster.js";
import {
  type AppliedDeploy,
  applyDeployAccess,
  COORDINATOR_ACCOUNT,
  deleteIfPresent,
  SHARD_ACCOUNT,
} from "../support/deploy.js";
import { POD_NAME_EXTRA, type ServiceAccountIdentity } from "../support/impersonate.js";

const LEASES = "/apis/coordination.k8s.io/v1/namespaces/checksums-system/leases";
const SLOTMAP_PATH = "/apis/slotmap.dev/v1alpha1/slotmaps/checksums";
const SHARDS = ["checksums-0", "checksums-1"] as const;
const TIMING = { SLOTMAP_LEASE_DURATION: "4", SLOTMAP_RENEW_DEADLINE: "3", SLOTMAP_RETRY_PERIOD: "0.5" };

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; renewTime?: string };
}
interface ShardStatus {
  name: string;
  slots?: string;
}

let deploy: AppliedDeploy;
const admin = () => new KubeHttp(kubeConfig("admin"));
const pods: string[] = [];
const logs: string[] = [];
const apps = new Map<string, ChecksumController>();
const coordinatorStop = new AbortController();
let coordinatorDone: Promise<void> | undefined;
const metrics = new CoordinatorMetrics();

/**
 * A Pod object for `sa` (never scheduled: the control plane has no node; restricted Pod Security
 * passes), and a token of `sa` bound to it. Returns a KubeConfig authenticating with that token.
 */
async function podBoundKubeConfig(sa: Required<ServiceAccountIdentity>): Promise<KubeConfig> {
  const http = admin();
  const pod = await http.request<KubeObject>("POST", `/api/v1/namespaces/${sa.namespace}/pods`, {
    body: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: sa.pod },
      spec: {
        serviceAccountName: sa.name,
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "c",
            image: "slotmap",
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    },
  });
  pods.push(`/api/v1/namespaces/${sa.namespace}/pods/${sa.pod}`);
  const review = await http.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${sa.namespace}/serviceaccounts/${sa.name}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          expirationSeconds: 3600,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: sa.pod, uid: pod.metadata!.uid },
        },
      },
    },
  );
  const cluster = kubeConfig("admin").getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: sa.pod, token: review.status.token }],
    contexts: [{ name: sa.pod, cluster: cluster.name, user: sa.pod }],
    currentContext: sa.pod,
  });
  return kc;
}

function logger(name: string): ShardLogger {
  const line =
    (level: string) =>
    (fields: object, msg: string): void => {
      if ((fields as { event?: string }).event === "reconcile") return;
      logs.push(`${new Date().toISOString()} ${name} ${level} ${msg} ${JSON.stringify(fields)}`);
    };
  return { debug: () => {}, info: line("info"), warn: line("warn"), error: line("error") };
}

async function shardStatus(): Promise<ShardStatus[]> {
  const sm = await admin().request<KubeObject & { status?: { shards?: ShardStatus[] } }>("GET", SLOTMAP_PATH);
  return sm.status?.shards ?? [];
}

/** The value of slotmap_api_writes_total for these labels (0 when never counted). */
async function writes(verb: string, resource: string, result: string): Promise<number> {
  const m = await metrics.apiWrites.get();
  return m.values
    .filter((v) => v.labels.verb === verb && v.labels.resource === resource && v.labels.result === result)
    .reduce((a, v) => a + v.value, 0);
}

// The coordinator also sees the SlotMaps earlier test files left behind, whose lease namespaces
// deploy/ grants it nothing in: its 403s there are RBAC doing its job, not this protocol's denials.
const OURS = new Set(["checksums-system", "slotmap-system"]);
const elsewhere = (l: string) => {
  const ns = /"namespace":"([^"]+)"/.exec(l)?.[1];
  return l.startsWith("coordinator ") && ns !== undefined && !OURS.has(ns);
};
const denied = () =>
  logs.filter((l) => /\b403\b|forbidden|Forbidden|ValidatingAdmissionPolicy/.test(l) && !elsewhere(l));

beforeAll(async () => {
  deploy = await applyDeployAccess();
  for (const name of [...SHARDS, "checksums-2"]) await deleteIfPresent(`${LEASES}/${name}`);
  await deleteIfPresent("/apis/coordination.k8s.io/v1/namespaces/slotmap-system/leases/slotmap-coordinator");
});

afterAll(async () => {
  await Promise.allSettled([...apps.values()].map((a) => a.stop()));
  coordinatorStop.abort();
  await coordinatorDone;
  for (const p of pods) await deleteIfPresent(p);
  for (const name of [...SHARDS, "checksums-2"]) await deleteIfPresent(`${LEASES}/${name}`);
  await deploy?.remove();
});

describe("the protocol under deploy/'s RBAC and admission, with pod-bound tokens", () => {
  let shardKc: Map<string, KubeConfig>;
  let coordinatorKc: KubeConfig;

  beforeAll(async () => {
    shardKc = new Map();
    for (const pod of SHARDS) shardKc.set(pod, await podBoundKubeConfig({ ...SHARD_ACCOUNT, pod }));
    coordinatorKc = await podBoundKubeConfig({ ...COORDINATOR_ACCOUNT, pod: "slotmap-coordinator-it" });
  });

  it("the API server authenticates a pod-bound token with the pod-name extra", async () => {
    const review = await new KubeHttp(shardKc.get("checksums-0")!).request<{
      status: { userInfo: { username: string; extra?: Record<string, string[]> } };
    }>("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    });
    expect(review.status.userInfo.username).toBe(
      "system:serviceaccount:checksums-system:checksum-controller",
    );
    expect(review.status.userInfo.extra?.[POD_NAME_EXTRA]).toEqual(["checksums-0"]);
  });

  it("shards hold, ack and release their Leases, the coordinator leads, takes over and deletes; nothing is denied", async () => {
    const config = parseCoordinatorConfig(
      [
        "--leader-elect",
        "true",
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
        "--identity",
        "slotmap-coordinator-it",
        "--orphan-after",
        "1",
      ],
      {},
    );
    const coordinatorLog = pino(
      { level: "info" },
      { write: (s: string) => void logs.push(`coordinator ${s.trimEnd()}`) },
    );
    coordinatorDone = runCoordinator(config, {
      signal: coordinatorStop.signal,
      kubeConfig: coordinatorKc,
      logger: coordinatorLog,
      metrics,
    });
    for (const shard of SHARDS) {
      const c = parseChecksumConfig(
        ["--shard", shard, "--slotmap", "checksums", "--metrics-address", "off", "--concurrency", "4"],
        TIMING,
      );
      apps.set(shard, await startChecksumController(c, logger(shard), shardKc.get(shard)));
    }
    try {
      // Both shards get slots (their Leases created, renewed and acked through the shard policy).
      await waitFor(
        async () => {
          const s = await shardStatus();
          return SHARDS.every((n) => (s.find((x) => x.name === n)?.slots ?? "") !== "");
        },
        { timeoutMs: 60_000, description: "both shards to own slots" },
      );

      // Their reconciler's ConfigMaps pass checksum-configmaps.slotmap.dev.
      const ns = await freshNamespace("rbac-protocol");
      const http = admin();
      for (let i = 0; i < 10; i++) {
        await http.request("POST", `/api/v1/namespaces/${ns}/secrets`, {
          body: {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: `s${i}` },
            data: { v: btoa(String(i)) },
          },
        });
      }
      await waitFor(
        async () => {
          const cms = await http.listAll<KubeObject & { data?: Record<string, string> }>(
            `/api/v1/namespaces/${ns}/configmaps`,
          );
          const sums = new Map(cms.items.map((c) => [c.metadata!.name!, c.data?.checksum]));
          return [...Array(10).keys()].every(
            (i) => sums.get(`s${i}-checksum`) === secretChecksum({ v: btoa(String(i)) }),
          );
        },
        { timeoutMs: 60_000, description: "every Secret to have its checksum ConfigMap" },
      );

      // A shard that died without releasing (written by the admin): the coordinator takes its
      // Lease over, then deletes it as an orphan, both through coordinator-leases.slotmap.dev.
      const holders: string[] = [];
      await http.request("POST", LEASES, {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "checksums-2", labels: { "slotmap.dev/slotmap": "checksums" } },
          spec: { holderIdentity: "checksums-2-dead-1", leaseDurationSeconds: 2, renewTime: microTime() },
        },
      });
      await waitFor(
        async () => {
          const l = await http.request<Lease>("GET", `${LEASES}/checksums-2`).catch(() => undefined);
          if (l?.spec?.holderIdentity !== undefined) holders.push(l.spec.holderIdentity);
          return l === undefined;
        },
        {
          timeoutMs: 60_000,
          intervalMs: 100,
          description: "the dead shard's Lease to be taken over and deleted",
        },
      );
      expect(await writes("update", "leases", "ok")).toBeGreaterThanOrEqual(1);
      expect(await writes("delete", "leases", "ok")).toBeGreaterThanOrEqual(1);
      expect(holders).toContain(TAKEOVER_HOLDER);

      // A shard that stops releases its Lease (holder cleared, through the shard policy): its
      // slots go to the other one.
      await apps.get("checksums-1")!.stop();
      apps.delete("checksums-1");
      await waitFor(
        async () => (await shardStatus()).find((x) => x.name === "checksums-0")?.slots === "0-16383",
        { timeoutMs: 60_000, description: "checksums-0 to own every slot" },
      );
      const released = await http.request<Lease>("GET", `${LEASES}/checksums-1`);
      expect(released.spec?.holderIdentity ?? "").toBe("");

      // The leader Lease is held by the coordinator's identity.
      const leader = await http.request<Lease>(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/slotmap-system/leases/slotmap-coordinator",
      );
      expect(leader.spec?.holderIdentity).toMatch(/^slotmap-coordinator-it/);

      // Writes that failed for other reasons (a timeout or a 5xx on a loaded 2-core machine) are
      // retried by design; this test is about denials, which the log check below catches.
      for (const r of ["slotmaps/status", "leases"]) {
        for (const verb of ["update", "delete"]) {
          const n = await writes(verb, r, "error");
          if (n > 0) console.log(`[rbac-protocol] ${n} failed ${verb} ${r} (retried):`);
        }
      }
      for (const l of logs.filter((x) => x.includes("write failed"))) console.log(l);
      expect(denied()).toEqual([]);
    } catch (err) {
      process.stderr.write(`${logs.join("\n")}\n`);
      throw err;
    }
  });
});
