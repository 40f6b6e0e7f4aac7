// deploy/'s RBAC and admission policies against a real API server. Each kustomize base is
// rendered; its ServiceAccounts, RBAC, admission policies, namespaces and SlotMap are applied
// (the workloads only pass a server-side dry run, Pod Security "restricted" included). Then every
// case of rbac-cases.ts is sent for real AS the ServiceAccount (impersonation headers, with the
// pod-name extra of a pod-bound token) and the answer is sorted: allowed, denied by RBAC, or
// denied by which admission policy. docs/operations.md carries the same table.
//
// SLOTMAP_DEPLOY_ROOT=<dir> renders <dir>/deploy instead (e.g. an older commit's manifests), and
// SLOTMAP_RBAC_RECORD=<file> writes what each case got as JSON: that is how the before/after
// figures of the attacks were taken.
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { kubeConfig, kubectl, waitFor } from "../support/cluster.js";
import {
  type AppliedDeploy,
  applyDeployAccess,
  COORDINATOR_ACCOUNT,
  deleteIfPresent,
  SHARD_ACCOUNT,
  WORKLOAD_KINDS,
  yamlOf,
} from "../support/deploy.js";
import { type Answer, Impersonator, type ServiceAccountIdentity } from "../support/impersonate.js";
import {
  type AccessCase,
  type Actor,
  CASES,
  type CaseEnv,
  type CaseRequest,
  DEFAULT_MAX_LEASE_DURATION_SECONDS,
  FOREIGN_NAMESPACE,
  fixtureLeases,
  LEADER,
  type LeaseBody,
  type Outcome,
  OWN,
  SHARDED_NAMESPACE,
  SLOTMAP,
  shardLease,
  VICTIM_CONFIGMAP,
} from "./rbac-cases.js";

const IDENTITIES: Record<Actor, ServiceAccountIdentity> = {
  shard: SHARD_ACCOUNT,
  "shard-no-pod": { namespace: SHARD_ACCOUNT.namespace, name: SHARD_ACCOUNT.name },
  coordinator: COORDINATOR_ACCOUNT,
};
let deploy: AppliedDeploy;
const admin = () => new KubeHttp(kubeConfig("admin"));
const impersonator = () => new Impersonator(kubeConfig("admin"));
const results: Array<{
  actor: Actor;
  what: string;
  expect: Outcome;
  got: string;
  status: number;
  message: string;
}> = [];

/**
 * Who answered: allowed, RBAC, or the admission policy named in the denial. Every denial must be
 * a 403 (the policies set `reason: Forbidden`, as RBAC answers); 404 means authorized.
 */
function outcomeOf(a: Answer): string {
  if (a.status < 300 || a.status === 404) return "allowed";
  const policy = /ValidatingAdmissionPolicy '([^']+)'/.exec(a.message);
  if (a.status === 403) return policy ? policy[1]! : "RBAC";
  return `error ${a.status}${policy ? ` from ${policy[1]}` : ""}`;
}

/**
 * The state every case starts from: the fixture Leases as created, the victim ConfigMap, the
 * SlotMap's Lease duration cap. Resolves once the shard policy sees that cap (its params come
 * from an informer): a dry-run create of a Lease exactly at the cap passes, one second over fails.
 */
async function resetFixtures(cap: number): Promise<void> {
  const http = admin();
  const sm = await http.request<{ spec?: { policy?: { maxLeaseDurationSeconds?: number } } }>(
    "GET",
    `/apis/slotmap.dev/v1alpha1/slotmaps/${SLOTMAP}`,
  );
  if (sm.spec?.policy?.maxLeaseDurationSeconds !== cap) {
    await http.request("PATCH", `/apis/slotmap.dev/v1alpha1/slotmaps/${SLOTMAP}`, {
      body: { spec: { policy: { maxLeaseDurationSeconds: cap } } },
      contentType: "application/merge-patch+json",
    });
    if (deploy.applied.some((d) => d.kind === "ValidatingAdmissionPolicyBinding")) await capSeen(cap);
  }
  for (const l of fixtureLeases()) {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases`;
    await deleteIfPresent(`${base}/${l.metadata.name}`);
    await http.request("POST", base, { body: l });
  }
  const cms = "/api/v1/namespaces/kube-system/configmaps";
  await deleteIfPresent(`${cms}/${VICTIM_CONFIGMAP}`);
  await http.request("POST", cms, {
    body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: VICTIM_CONFIGMAP }, data: { a: "b" } },
  });
}

/** Waits until the shard policy admits a Lease of `cap` seconds and denies one of `cap + 1`. */
async function capSeen(cap: number): Promise<void> {
  const imp = impersonator();
  const probe = async (seconds: number) =>
    outcomeOf(
      await imp.send(SHARD_ACCOUNT, {
        method: "POST",
        path: "/apis/coordination.k8s.io/v1/namespaces/checksums-system/leases",
        body: shardLease(OWN, { durationSeconds: seconds }),
        query: { dryRun: "All" },
      }),
    );
  await deleteIfPresent(`/apis/coordination.k8s.io/v1/namespaces/checksums-system/leases/${OWN}`);
  await waitFor(
    async () => (await probe(cap)) === "allowed" && (await probe(cap + 1)) === "shard-leases.slotmap.dev",
    { timeoutMs: 15_000, intervalMs: 100, description: `the shard policy to see the cap ${cap}` },
  );
}

/** Sends one case's request as its actor (an update reads the object as the admin first). */
async function send(c: AccessCase, env: CaseEnv): Promise<Answer> {
  const r: CaseRequest = c.request(env);
  const as = IDENTITIES[c.actor];
  const imp = impersonator();
  switch (r.op) {
    case "get":
    case "list":
      return imp.send(as, { method: "GET", path: r.path, query: r.query });
    case "delete":
      return imp.send(as, { method: "DELETE", path: r.path, query: r.query });
    case "patch":
      return imp.send(as, {
        method: "PATCH",
        path: r.path,
        body: r.body,
        contentType: "application/merge-patch+json",
      });
    case "create": {
      // A create starts from no object of that name.
      const name = (r.body as { metadata?: { name?: string } }).metadata?.name;
      if (name !== undefined) await deleteIfPresent(`${r.path}/${name}`);
      return imp.send(as, { method: "POST", path: r.path, body: r.body, query: r.query });
    }
    case "update": {
      const current = await admin().request<LeaseBody>("GET", r.path);
      r.mutate(current);
      return imp.send(as, { method: "PUT", path: r.path, body: current, query: r.query });
    }
  }
}

beforeAll(async () => {
  deploy = await applyDeployAccess();
  for (const ns of [SHARDED_NAMESPACE, FOREIGN_NAMESPACE]) await kubectl(["create", "namespace", ns]);
});

afterAll(async () => {
  const record = process.env.SLOTMAP_RBAC_RECORD;
  if (record) writeFileSync(record, `${JSON.stringify(results, null, 2)}\n`);
  const http = admin();
  for (const l of fixtureLeases()) {
    await deleteIfPresent(
      `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases/${l.metadata.name}`,
    );
  }
  await deleteIfPresent(`/apis/coordination.k8s.io/v1/namespaces/${LEADER.namespace}/leases/${LEADER.name}`);
  await deleteIfPresent(`/api/v1/namespaces/kube-system/configmaps/${VICTIM_CONFIGMAP}`);
  await http
    .request("DELETE", "/api/v1/namespaces/default/events", { query: { fieldSelector: "reason=Probe" } })
    .catch(() => {});
  await kubectl([
    "delete",
    "namespace",
    "--ignore-not-found",
    "--wait=false",
    SHARDED_NAMESPACE,
    FOREIGN_NAMESPACE,
  ]);
  await deploy?.remove();
});

describe("deploy/ renders", () => {
  it("crd: exactly the CRDs of crds/", async () => {
    expect(deploy.rendered.crd.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      "CustomResourceDefinition/slotmaps.slotmap.dev",
      "CustomResourceDefinition/slotmapshards.slotmap.dev",
    ]);
  });

  it("coordinator and example: their objects, workloads accepted by a server-side dry run under PSS restricted", async () => {
    const names = (dir: "coordinator" | "examples/checksum") =>
      deploy.rendered[dir].map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(names("coordinator")).toEqual(
      [
        "ClusterRole/slotmap-coordinator",
        "ClusterRole/slotmap-coordinator-lease-namespace",
        "ClusterRoleBinding/slotmap-coordinator",
        "CustomResourceDefinition/slotmaps.slotmap.dev",
        "CustomResourceDefinition/slotmapshards.slotmap.dev",
        "Deployment/slotmap-coordinator",
        "Namespace/slotmap-system",
        "PodDisruptionBudget/slotmap-coordinator",
        "Role/slotmap-coordinator-events",
        "Role/slotmap-coordinator-leader-election",
        "RoleBinding/slotmap-coordinator-events",
        "RoleBinding/slotmap-coordinator-leader-election",
        "Service/slotmap-coordinator-metrics",
        "ServiceAccount/slotmap-coordinator",
        "ValidatingAdmissionPolicy/coordinator-leases.slotmap.dev",
        "ValidatingAdmissionPolicy/fencing.slotmap.dev",
        "ValidatingAdmissionPolicy/hash-key.slotmap.dev",
        "ValidatingAdmissionPolicy/shard-leases.slotmap.dev",
        "ValidatingAdmissionPolicyBinding/coordinator-leases.slotmap.dev",
        "ValidatingAdmissionPolicyBinding/hash-key.slotmap.dev",
      ].sort(),
    );
    expect(names("examples/checksum")).toEqual(
      [
        "ClusterRole/checksum-controller",
        "ClusterRoleBinding/checksum-controller",
        "Namespace/checksums-system",
        "Role/checksum-controller-leases",
        "RoleBinding/checksum-controller-leases",
        "RoleBinding/slotmap-coordinator",
        "Service/checksums",
        "ServiceAccount/checksum-controller",
        "SlotMap/checksums",
        "StatefulSet/checksums",
        "ValidatingAdmissionPolicy/checksum-configmaps.slotmap.dev",
        "ValidatingAdmissionPolicyBinding/checksum-configmaps.slotmap.dev",
        "ValidatingAdmissionPolicyBinding/checksums-fencing.slotmap.dev",
        "ValidatingAdmissionPolicyBinding/checksums-shard-leases.slotmap.dev",
      ].sort(),
    );
    for (const dir of ["coordinator", "examples/checksum"] as const) {
      const rest = deploy.rendered[dir].filter((d) => WORKLOAD_KINDS.has(d.kind));
      const r = await kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], {
        input: yamlOf(rest),
      });
      expect(r.code, r.stderr).toBe(0);
      // The API server warns when a workload's pod template would violate the namespace's level.
      expect(r.stderr).not.toMatch(/PodSecurity/);
    }
  });
});

describe("the impersonated identities are what a pod's token would be", () => {
  it("a shard: its ServiceAccount, groups and pod-name extra (SelfSubjectReview)", async () => {
    const a = await impersonator().send(IDENTITIES.shard, {
      method: "POST",
      path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    });
    expect(a.status, a.message).toBe(201);
    const user = (a.body as { status: { userInfo: { username: string; groups: string[]; extra: object } } })
      .status.userInfo;
    expect(user.username).toBe("system:serviceaccount:checksums-system:checksum-controller");
    expect(user.groups).toEqual(
      expect.arrayContaining([
        "system:serviceaccounts",
        "system:serviceaccounts:checksums-system",
        "system:authenticated",
      ]),
    );
    expect(user.extra).toEqual({ "authentication.kubernetes.io/pod-name": [OWN] });
  });
});

describe.each([
  ["shard", (c: AccessCase) => c.actor !== "coordinator"],
  ["coordinator", (c: AccessCase) => c.actor === "coordinator"],
] as const)("as the %s, for real", (_name, pick) => {
  let env: CaseEnv;

  beforeAll(async () => {
    const http = admin();
    const sm = await http.request<KubeObject>("GET", `/apis/slotmap.dev/v1alpha1/slotmaps/${SLOTMAP}`);
    const ids = await http.request<{ items: KubeObject[] }>(
      "GET",
      "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
      {
        query: { labelSelector: "apiserver.kubernetes.io/identity=kube-apiserver" },
      },
    );
    expect(ids.items.length, "the kube-apiserver identity Lease").toBeGreaterThan(0);
    env = { slotmapUid: sm.metadata!.uid!, apiserverLease: ids.items[0]!.metadata!.name! };
  });

  it.each(CASES.filter(pick).map((c) => [`${c.actor}: ${c.what}: ${c.expect}`, c] as const))(
    "%s",
    async (_title, c) => {
      await resetFixtures(c.maxLeaseDurationSeconds ?? DEFAULT_MAX_LEASE_DURATION_SECONDS);
      const answer = await send(c, env);
      const got = outcomeOf(answer);
      results.push({
        actor: c.actor,
        what: c.what,
        expect: c.expect,
        got,
        status: answer.status,
        message: answer.message,
      });
      expect(got, `${answer.status} ${answer.message}`).toBe(c.expect);
    },
  );
});
