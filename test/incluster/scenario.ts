/**
 * The in-cluster end-to-end scenario, run by test/incluster/deploy.test.ts and
 * `npm run demo -- --in-cluster`: deploy/ applied unchanged with `kubectl apply -k` (the CRD,
 * the coordinator, the checksum example), Secrets written, then what operators do to a running
 * system: delete the leader coordinator pod, `kubectl rollout restart` the shards, scale them
 * 3→5→2, force-delete a shard pod. Secrets keep changing throughout. At the end the pods' logs
 * (kubectl logs, ./pod-logs.ts) and the final ConfigMaps go to the e2e auditor.
 */
import path from "node:path";
import { run } from "../../tools/node/exec.js";
import { type AuditReport, audit } from "../e2e/auditor.js";
import { secretChecksum } from "../e2e/checksum.js";
import {
  createNamespace,
  describeStatus,
  httpFor,
  isSettled,
  leaseHolder,
  type ObservedStatus,
  SecretFleet,
  SlotMapWatch,
} from "../e2e/driver.js";
import { REPO_ROOT } from "../e2e/harness.js";
import { PodLogs } from "./pod-logs.js";

/** Names in deploy/ (the scenario checks them rather than assuming). */
export const DEPLOY = {
  coordinatorNamespace: "slotmap-system",
  coordinatorDeployment: "slotmap-coordinator",
  leaderLease: "slotmap-coordinator",
  shardNamespace: "checksums-system",
  shardStatefulSet: "checksums",
  shardSelector: "app.kubernetes.io/name=checksum-controller",
  shardContainer: "controller",
  slotMap: "checksums",
} as const;

/** One step's outcome. */
export interface StepTime {
  step: string;
  ms: number;
  detail?: string;
}

/** What {@link runScenario} returns. */
export interface ScenarioResult {
  steps: StepTime[];
  report: AuditReport;
  /** Who took over when the leader coordinator pod was deleted. */
  leaderTakeover: { from: string; to: string; toWasStandby: boolean; afterMs: number };
  /** Container instances whose logs were read. */
  instances: string[];
  /** Shard containers that ended and were restarted in place, with Kubernetes' reason. */
  restarts: string[];
  /** Distinct shard processes seen in the reconcile lines. */
  processes: number;
  /** The shard pods' probe failures and kills, from their Events: `count× reason: message`. */
  probeEvents: string[];
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  kubectl: string;
  kubeconfig: string;
  /** Where the pods' logs are written. */
  logDir: string;
  secrets?: number;
  /** Secret updates per second during the disruptions. */
  churnPerSecond?: number;
  say?: (msg: string) => void;
  /** The deploy/ directory to apply (default: the repository's). */
  deployRoot?: string;
}

const shards = (n: number) => Array.from({ length: n }, (_, i) => `${DEPLOY.shardStatefulSet}-${i}`);

/** Runs the scenario; throws on a timeout, returns the audit otherwise. */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const say = o.say ?? ((m: string) => process.stderr.write(`${m}\n`));
  const kubectl = async (...args: string[]) =>
    (await run(o.kubectl, ["--kubeconfig", o.kubeconfig, ...args], { timeoutMs: 360_000 })).stdout;
  const http = httpFor(o.kubeconfig);
  const steps: StepTime[] = [];
  const step = async <T>(name: string, fn: () => Promise<T>, detail?: (t: T) => string): Promise<T> => {
    const t = Date.now();
    say(`step: ${name}...`);
    const v = await fn();
    const s: StepTime = { step: name, ms: Date.now() - t, ...(detail ? { detail: detail(v) } : {}) };
    steps.push(s);
    say(`step: ${name}: ${(s.ms / 1000).toFixed(1)} s${s.detail ? ` (${s.detail})` : ""}`);
    return v;
  };
  const deployDir = (d: string) => path.join(o.deployRoot ?? path.join(REPO_ROOT, "deploy"), d);
  const rollout = (kind: string, ns: string, name: string) =>
    kubectl("-n", ns, "rollout", "status", `${kind}/${name}`, "--timeout=300s");

  await step("apply deploy/crd", async () => {
    await kubectl("apply", "-k", deployDir("crd"));
    await kubectl("wait", "--for=condition=Established", "crd/slotmaps.slotmap.dev", "--timeout=60s");
  });
  await step("apply deploy/coordinator and deploy/examples/checksum, workloads Ready", async () => {
    await kubectl("apply", "-k", deployDir("coordinator"));
    await kubectl("apply", "-k", deployDir("examples/checksum"));
    await rollout("deployment", DEPLOY.coordinatorNamespace, DEPLOY.coordinatorDeployment);
    await rollout("statefulset", DEPLOY.shardNamespace, DEPLOY.shardStatefulSet);
  });

  const logs = new PodLogs({
    kubectl: o.kubectl,
    kubeconfig: o.kubeconfig,
    namespace: DEPLOY.shardNamespace,
    selector: DEPLOY.shardSelector,
    container: DEPLOY.shardContainer,
    dir: o.logDir,
  });
  logs.start();
  const watch = new SlotMapWatch(http, DEPLOY.slotMap);
  await watch.start();
  const settled = (names: string[], extra: (s: ObservedStatus) => boolean = () => true) =>
    watch.waitFor((s) => isSettled(s, names) && extra(s), 300_000, `settled on ${names.join(", ")}`);
  const holders = () => new Map((watch.status?.shards ?? []).map((s) => [s.name, s.holderIdentity]));
  const renewed = (names: string[], before: Map<string, string | undefined>) => (s: ObservedStatus) =>
    names.every((n) => {
      const h = s.shards.find((x) => x.name === n)?.holderIdentity;
      return h !== undefined && h !== before.get(n);
    });

  try {
    await step("SlotMap settled on 3 shards", () => settled(shards(3)), describeStatus);

    const namespace = "checksums-e2e";
    await createNamespace(http, namespace);
    const fleet = new SecretFleet(http, namespace);
    const count = o.secrets ?? 1000;
    await step(`${count} Secrets created, every ConfigMap right`, async () => {
      await fleet.create(count, { concurrency: 16 });
      return fleet.waitConverged({ timeoutMs: 300_000 });
    });

    const stopChurn = fleet.churn(o.churnPerSecond ?? 5);
    let leaderTakeover: ScenarioResult["leaderTakeover"];
    try {
      leaderTakeover = await step(
        "delete the leader coordinator pod",
        () => deleteLeader(o, kubectl),
        (t) =>
          `${t.from} -> ${t.to} (${t.toWasStandby ? "the standby" : "the replacement pod"}) in ${t.afterMs} ms`,
      );
      await rollout("deployment", DEPLOY.coordinatorNamespace, DEPLOY.coordinatorDeployment);

      let before = holders();
      await step(
        "kubectl rollout restart statefulset/checksums",
        async () => {
          await kubectl(
            "-n",
            DEPLOY.shardNamespace,
            "rollout",
            "restart",
            `statefulset/${DEPLOY.shardStatefulSet}`,
          );
          await rollout("statefulset", DEPLOY.shardNamespace, DEPLOY.shardStatefulSet);
          return settled(shards(3), renewed(shards(3), before));
        },
        describeStatus,
      );
      const scale = (n: number) =>
        step(
          `scale to ${n}`,
          async () => {
            await kubectl(
              "-n",
              DEPLOY.shardNamespace,
              "scale",
              `statefulset/${DEPLOY.shardStatefulSet}`,
              `--replicas=${n}`,
            );
            await rollout("statefulset", DEPLOY.shardNamespace, DEPLOY.shardStatefulSet);
            return settled(shards(n));
          },
          describeStatus,
        );
      await scale(5);
      await scale(2);

      before = holders();
      const victim = `${DEPLOY.shardStatefulSet}-1`;
      await step(
        `delete pod ${victim} --grace-period=0 --force`,
        async () => {
          await kubectl("-n", DEPLOY.shardNamespace, "delete", "pod", victim, "--grace-period=0", "--force");
          return settled(shards(2), renewed([victim], before));
        },
        describeStatus,
      );
    } finally {
      await stopChurn();
    }
    await step("every ConfigMap right after the last change", () =>
      fleet.waitConverged({ timeoutMs: 180_000 }),
    );

    await logs.stop();
    const { records, malformed } = logs.reconciles();
    const { secrets, configMaps } = await fleet.finalState();
    const report = audit({
      reconciles: records,
      malformed,
      writes: fleet.writes,
      finalSecrets: secrets,
      finalConfigMaps: configMaps,
      slotMapHistory: watch.history,
      namespaces: [namespace],
      checksumOf: secretChecksum,
    });
    return {
      steps,
      report,
      probeEvents: await probeEvents(kubectl),
      leaderTakeover,
      instances: logs.instances,
      restarts: logs.restarts,
      processes: new Set(records.map((r) => r.process)).size,
    };
  } finally {
    await logs.stop(0);
    await watch.stop().catch(() => {});
  }
}

/**
 * Deletes the pod holding the coordinator's leader Lease and waits for another holder; tells
 * whether the new leader is the replica that was standing by or the Deployment's replacement.
 */
async function deleteLeader(
  o: ScenarioOptions,
  kubectl: (...args: string[]) => Promise<string>,
): Promise<ScenarioResult["leaderTakeover"]> {
  const http = httpFor(o.kubeconfig);
  const ns = DEPLOY.coordinatorNamespace;
  const holder = await leaseHolder(http, ns, DEPLOY.leaderLease);
  if (!holder) throw new Error(`no holder of Lease ${ns}/${DEPLOY.leaderLease}`);
  const from = holder.split("_")[0]!;
  const podsBefore = (await kubectl("-n", ns, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}"))
    .split(/\s+/)
    .filter(Boolean);
  const t = Date.now();
  await kubectl("-n", ns, "delete", "pod", from, "--wait=false");
  for (;;) {
    const h = await leaseHolder(http, ns, DEPLOY.leaderLease);
    if (h && !h.startsWith(`${from}_`)) {
      const to = h.split("_")[0]!;
      return { from, to, toWasStandby: podsBefore.includes(to), afterMs: Date.now() - t };
    }
    if (Date.now() - t > 120_000) throw new Error(`no new coordinator leader within 120 s (holder ${h})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Unhealthy and Killing Events of the shard pods, grouped by message (pod names left out). */
async function probeEvents(kubectl: (...args: string[]) => Promise<string>): Promise<string[]> {
  const list = JSON.parse(await kubectl("-n", DEPLOY.shardNamespace, "get", "events", "-o", "json")) as {
    items: Array<{ reason?: string; message?: string; count?: number }>;
  };
  const counts = new Map<string, number>();
  for (const e of list.items) {
    if (e.reason !== "Unhealthy" && e.reason !== "Killing") continue;
    const what = `${e.reason}: ${(e.message ?? "").replace(/checksums-\d+/g, "checksums-N").replace(/\d+\.\d+\.\d+\.\d+/g, "POD_IP")}`;
    counts.set(what, (counts.get(what) ?? 0) + (e.count ?? 1));
  }
  return [...counts].map(([what, n]) => `${n}× ${what}`);
}
