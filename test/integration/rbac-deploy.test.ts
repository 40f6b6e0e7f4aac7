// The RBAC of deploy/ against a real API server: render each kustomize base, apply its
// ServiceAccounts, Roles and bindings, then ask the authorizer (kubectl auth can-i, impersonating
// each ServiceAccount) what it may and may not do. The workloads must pass a server-side dry run,
// including Pod Security "restricted" (the namespaces enforce it).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { kubectl, waitFor } from "../support/cluster.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const COORDINATOR = "system:serviceaccount:slotmap-system:slotmap-coordinator";
const SHARD = "system:serviceaccount:checksums-system:checksum-controller";
const RBAC_KINDS = new Set([
  "Namespace",
  "ServiceAccount",
  "Role",
  "RoleBinding",
  "ClusterRole",
  "ClusterRoleBinding",
]);

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
}

async function render(dir: string): Promise<Doc[]> {
  const r = await kubectl(["kustomize", path.join(repoRoot, "deploy", dir)]);
  expect(r.code, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
}

const yamlOf = (docs: Doc[]) => docs.map((d) => `---\n${stringify(d)}`).join("");
const rendered: Record<string, Doc[]> = {};
const applied: Doc[] = [];

/** `kubectl auth can-i` as `user`: true for yes, false for no; anything else fails the test. */
async function can(user: string, verb: string, resource: string, namespace?: string): Promise<boolean> {
  // "slotmaps.slotmap.dev/status" would read as the object named "status": pass --subresource.
  const [res, sub] = resource.split("/");
  const args = ["auth", "can-i", verb, res!, "--as", user, ...(sub ? [`--subresource=${sub}`] : [])];
  args.push(...(namespace ? ["-n", namespace] : ["--all-namespaces"]));
  const r = await kubectl(args);
  const answer = r.stdout.trim();
  if (answer !== "yes" && answer !== "no")
    throw new Error(`kubectl ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return answer === "yes";
}

beforeAll(async () => {
  for (const dir of ["crd", "coordinator", "examples/checksum"]) rendered[dir] = await render(dir);
  // CRD first (the example has a SlotMap), server-side with force: other test files install it too.
  const crd = await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], {
    input: yamlOf(rendered.crd!),
  });
  expect(crd.code, crd.stderr).toBe(0);
  await waitFor(async () => (await kubectl(["get", "slotmaps.slotmap.dev"])).code === 0, {
    timeoutMs: 60_000,
    description: "the SlotMap API to be served",
  });
  for (const dir of ["coordinator", "examples/checksum"]) {
    const rbac = rendered[dir]!.filter((d) => RBAC_KINDS.has(d.kind));
    const r = await kubectl(["apply", "-f", "-"], { input: yamlOf(rbac) });
    expect(r.code, r.stderr).toBe(0);
    applied.push(...rbac);
  }
  // RBAC is effective once the authorizer's informers see the bindings.
  await waitFor(
    async () =>
      (await can(SHARD, "list", "secrets", "default")) &&
      (await can(COORDINATOR, "list", "leases", "default")),
    {
      timeoutMs: 30_000,
      description: "the new bindings to take effect",
    },
  );
});

afterAll(async () => {
  if (applied.length === 0) return;
  await kubectl(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], { input: yamlOf(applied) });
});

describe("deploy/ renders", () => {
  it("crd: exactly the CRD of crds/", async () => {
    expect(rendered.crd!.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      "CustomResourceDefinition/slotmaps.slotmap.dev",
    ]);
  });

  it("coordinator and example: their objects, workloads accepted by a server-side dry run under PSS restricted", async () => {
    const names = (dir: string) => rendered[dir]!.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(names("coordinator")).toEqual(
      [
        "ClusterRole/slotmap-coordinator",
        "ClusterRoleBinding/slotmap-coordinator",
        "CustomResourceDefinition/slotmaps.slotmap.dev",
        "Deployment/slotmap-coordinator",
        "Namespace/slotmap-system",
        "PodDisruptionBudget/slotmap-coordinator",
        "Role/slotmap-coordinator-leader-election",
        "RoleBinding/slotmap-coordinator-leader-election",
        "ServiceAccount/slotmap-coordinator",
      ].sort(),
    );
    expect(names("examples/checksum")).toEqual(
      [
        "ClusterRole/checksum-controller",
        "ClusterRoleBinding/checksum-controller",
        "Namespace/checksums-system",
        "Role/checksum-controller-leases",
        "RoleBinding/checksum-controller-leases",
        "Service/checksums",
        "ServiceAccount/checksum-controller",
        "SlotMap/checksums",
        "StatefulSet/checksums",
      ].sort(),
    );
    for (const dir of ["coordinator", "examples/checksum"]) {
      const rest = rendered[dir]!.filter(
        (d) => !RBAC_KINDS.has(d.kind) && d.kind !== "CustomResourceDefinition",
      );
      const r = await kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], {
        input: yamlOf(rest),
      });
      expect(r.code, r.stderr).toBe(0);
      // The API server warns when a workload's pod template would violate the namespace's level.
      expect(r.stderr).not.toMatch(/PodSecurity/);
    }
  });
});

describe("coordinator RBAC (least privilege)", () => {
  it.each([
    ["get", "slotmaps.slotmap.dev"],
    ["list", "slotmaps.slotmap.dev"],
    ["watch", "slotmaps.slotmap.dev"],
    ["update", "slotmaps.slotmap.dev/status"],
    ["patch", "slotmaps.slotmap.dev/status"],
  ])("may %s %s", async (verb, resource) => {
    expect(await can(COORDINATOR, verb, resource)).toBe(true);
  });

  it.each(["get", "list", "watch", "update", "delete"])(
    "may %s shard Leases in any namespace",
    async (verb) => {
      expect(await can(COORDINATOR, verb, "leases.coordination.k8s.io", "checksums-system")).toBe(true);
      expect(await can(COORDINATOR, verb, "leases.coordination.k8s.io", "some-other-namespace")).toBe(true);
    },
  );

  it("may create its leader-election Lease in slotmap-system only, and record Events", async () => {
    expect(await can(COORDINATOR, "create", "leases.coordination.k8s.io", "slotmap-system")).toBe(true);
    expect(await can(COORDINATOR, "create", "leases.coordination.k8s.io", "checksums-system")).toBe(false);
    expect(await can(COORDINATOR, "create", "events", "default")).toBe(true);
    expect(await can(COORDINATOR, "patch", "events.events.k8s.io", "default")).toBe(true);
  });

  it.each([
    ["get", "secrets", "default"],
    ["list", "secrets", undefined],
    ["list", "configmaps", undefined],
    ["create", "slotmaps.slotmap.dev", undefined],
    ["update", "slotmaps.slotmap.dev", undefined],
    ["delete", "slotmaps.slotmap.dev", undefined],
    ["create", "pods", "slotmap-system"],
    ["update", "customresourcedefinitions.apiextensions.k8s.io", undefined],
  ])("may not %s %s", async (verb, resource, ns) => {
    expect(await can(COORDINATOR, verb, resource, ns)).toBe(false);
  });
});

describe("checksum shard RBAC (least privilege)", () => {
  it.each([
    ["get", "secrets"],
    ["list", "secrets"],
    ["watch", "secrets"],
    ["create", "configmaps"],
    ["update", "configmaps"],
    ["patch", "configmaps"],
    ["delete", "configmaps"],
    ["list", "slotmaps.slotmap.dev"],
    ["watch", "slotmaps.slotmap.dev"],
    ["create", "events"],
  ])("may %s %s", async (verb, resource) => {
    const ns = resource.startsWith("slotmaps") ? undefined : "default";
    expect(await can(SHARD, verb, resource, ns)).toBe(true);
  });

  it.each(["get", "list", "watch", "create", "update"])("may %s Leases in checksums-system", async (verb) => {
    expect(await can(SHARD, verb, "leases.coordination.k8s.io", "checksums-system")).toBe(true);
  });

  it.each([
    ["update", "slotmaps.slotmap.dev/status", undefined],
    ["patch", "slotmaps.slotmap.dev/status", undefined],
    ["update", "slotmaps.slotmap.dev", undefined],
    ["delete", "leases.coordination.k8s.io", "checksums-system"],
    ["create", "leases.coordination.k8s.io", "default"],
    ["update", "leases.coordination.k8s.io", "slotmap-system"],
    ["update", "secrets", "default"],
    ["create", "secrets", "default"],
    ["list", "pods", "default"],
  ])("may not %s %s", async (verb, resource, ns) => {
    expect(await can(SHARD, verb, resource, ns)).toBe(false);
  });
});
