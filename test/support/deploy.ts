// deploy/'s access control (ServiceAccounts, RBAC, admission policies, namespaces and the example
// SlotMap) applied to the test cluster, without the workloads: for the tests that check what each
// ServiceAccount may do (test/integration/rbac-*.test.ts).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, stringify } from "yaml";
import { KubeHttp } from "../../src/kube/http.js";
import { kubeConfig, kubectl, waitFor } from "./cluster.js";
import { Impersonator, type ServiceAccountIdentity } from "./impersonate.js";

/** The repository whose deploy/ is rendered: SLOTMAP_DEPLOY_ROOT (e.g. an older commit's tree) or this one. */
export const DEPLOY_ROOT =
  process.env.SLOTMAP_DEPLOY_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Objects that run something: left out of the apply (the control plane has no node). */
export const WORKLOAD_KINDS: ReadonlySet<string> = new Set([
  "Deployment",
  "StatefulSet",
  "Service",
  "PodDisruptionBudget",
]);
/** The example shard's ServiceAccount, its token bound to the pod checksums-0. */
export const SHARD_ACCOUNT: ServiceAccountIdentity = {
  namespace: "checksums-system",
  name: "checksum-controller",
  pod: "checksums-0",
};
/** The coordinator's ServiceAccount, its token bound to one of its pods. */
export const COORDINATOR_ACCOUNT: ServiceAccountIdentity = {
  namespace: "slotmap-system",
  name: "slotmap-coordinator",
  pod: "slotmap-coordinator-5d8f7-x2x9q",
};

/** A rendered manifest (only what the tests look at is typed). */
export interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
}

export const yamlOf = (docs: readonly Doc[]): string => docs.map((d) => `---\n${stringify(d)}`).join("");

/** `kubectl kustomize deploy/<dir>`. */
export async function renderDeploy(dir: string): Promise<Doc[]> {
  const r = await kubectl(["kustomize", path.join(DEPLOY_ROOT, "deploy", dir)]);
  if (r.code !== 0) throw new Error(`kubectl kustomize deploy/${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
}

/** What {@link applyDeployAccess} rendered and applied. */
export interface AppliedDeploy {
  rendered: Record<"crd" | "coordinator" | "examples/checksum", Doc[]>;
  applied: Doc[];
  /** Deletes what was applied (not the CRD: other test files share it). */
  remove(): Promise<void>;
}

/**
 * Renders deploy/crd, deploy/coordinator and deploy/examples/checksum; applies the CRD
 * (server-side, shared with other files), then everything but the workloads; waits until RBAC
 * lets the shard read its SlotMap and, when the manifests have admission bindings, until the shard
 * policy denies a rogue Lease (both are enforced from informers, a moment after the apply).
 */
export async function applyDeployAccess(): Promise<AppliedDeploy> {
  const rendered = {
    crd: await renderDeploy("crd"),
    coordinator: await renderDeploy("coordinator"),
    "examples/checksum": await renderDeploy("examples/checksum"),
  };
  const crd = await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], {
    input: yamlOf(rendered.crd),
  });
  if (crd.code !== 0) throw new Error(`applying the CRD: ${crd.stderr}`);
  await waitFor(async () => (await kubectl(["get", "slotmaps.slotmap.dev"])).code === 0, {
    timeoutMs: 60_000,
    description: "the SlotMap API to be served",
  });
  const applied: Doc[] = [];
  for (const dir of ["coordinator", "examples/checksum"] as const) {
    const docs = rendered[dir].filter(
      (d) => !WORKLOAD_KINDS.has(d.kind) && d.kind !== "CustomResourceDefinition",
    );
    const r = await kubectl(["apply", "-f", "-"], { input: yamlOf(docs) });
    if (r.code !== 0) throw new Error(`applying deploy/${dir}: ${r.stderr}`);
    applied.push(...docs);
  }
  const imp = new Impersonator(kubeConfig("admin"));
  await waitFor(
    async () =>
      (
        await imp.send(SHARD_ACCOUNT, {
          method: "GET",
          path: "/apis/slotmap.dev/v1alpha1/slotmaps/checksums",
        })
      ).status === 200,
    { timeoutMs: 30_000, description: "the new bindings to take effect" },
  );
  if (applied.some((d) => d.kind === "ValidatingAdmissionPolicyBinding")) {
    const leases = "/apis/coordination.k8s.io/v1/namespaces/checksums-system/leases";
    await waitFor(
      async () => {
        const a = await imp.send(SHARD_ACCOUNT, {
          method: "POST",
          path: leases,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: "admission-probe" },
          },
          query: { dryRun: "All" },
        });
        return a.status === 403 && a.message.includes("ValidatingAdmissionPolicy 'shard-leases.slotmap.dev'");
      },
      { timeoutMs: 30_000, description: "the admission policies to take effect" },
    );
  }
  return {
    rendered,
    applied,
    remove: async () => {
      if (applied.length === 0) return;
      // Wait: the next file applies the same namespace, which must not be still terminating.
      await kubectl(["delete", "--ignore-not-found", "--wait=true", "--timeout=120s", "-f", "-"], {
        input: yamlOf(applied),
      });
    },
  };
}

/** Deletes an object as the admin, ignoring any error (absent, already going). */
export async function deleteIfPresent(p: string): Promise<void> {
  await new KubeHttp(kubeConfig("admin")).request("DELETE", p).catch(() => {});
}
