// The non-admin identity against RBAC: denied what no binding grants, allowed what a
// RoleBinding grants (to its user or to one of its groups), and nothing beyond. On the local
// control plane it is the token user `slotmap-tester` in group `slotmap:testers`; on an
// external cluster (SLOTMAP_KUBECONFIG) it is whoever SLOTMAP_TESTER_KUBECONFIG authenticates
// as, discovered through a SelfSubjectReview, so nothing here hard-codes the user name.
import { ApiException, CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { ApiError, KubeHttp } from "../../src/kube/http.js";
import { freshNamespace, kubeConfig, kubectl, testerSkipReason, waitFor } from "../support/cluster.js";

interface UserInfo {
  username: string;
  groups: string[];
}

async function whoami(identity: "admin" | "tester"): Promise<UserInfo> {
  const http = new KubeHttp(kubeConfig(identity));
  const review = await http.request<{ status: { userInfo: { username: string; groups?: string[] } } }>(
    "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
  );
  return { username: review.status.userInfo.username, groups: review.status.userInfo.groups ?? [] };
}

async function httpStatus(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

/** `kubectl auth can-i` as the tester: "yes" or "no". */
async function canI(verb: string, resource: string, ns: string): Promise<string> {
  const r = await kubectl(["auth", "can-i", verb, resource, "-n", ns], { identity: "tester" });
  return r.stdout.trim();
}

const skip = testerSkipReason();

describe.skipIf(skip !== undefined)(
  `RBAC for the non-admin identity${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let tester: UserInfo;
    const rbac = () => kubeConfig("admin").makeApiClient(RbacAuthorizationV1Api);

    beforeAll(async () => {
      tester = await whoami("tester");
    });

    it("authenticates both identities; only the admin is a cluster admin", async () => {
      const admin = await whoami("admin");
      expect(tester.username).not.toBe(admin.username);
      expect(tester.groups).toContain("system:authenticated");
      expect(tester.groups).not.toContain("system:masters");
      // The local control plane's identities, from its token file.
      if (!process.env.SLOTMAP_KUBECONFIG) {
        expect(admin.username).toBe("slotmap-admin");
        expect(admin.groups).toContain("system:masters");
        expect(tester.username).toBe("slotmap-tester");
        expect(tester.groups).toContain("slotmap:testers");
      }
    });

    it("denies what no binding grants, naming the user, verb and resource", async () => {
      const ns = await freshNamespace("rbac-deny");
      const err = await new KubeHttp(kubeConfig("tester"))
        .request("GET", `/api/v1/namespaces/${ns}/secrets`)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(ApiError);
      const e = err as ApiError;
      expect(e.statusCode).toBe(403);
      expect(e.reason).toBe("Forbidden");
      expect(e.message).toContain(`"${tester.username}"`);
      expect(e.message).toContain(`cannot list resource "secrets"`);
      expect(e.message).toContain(`namespace "${ns}"`);

      // Cluster-scoped reads and RBAC escalation are denied too.
      const core = kubeConfig("tester").makeApiClient(CoreV1Api);
      expect(await httpStatus(core.listNamespace())).toBe(403);
      expect(
        await httpStatus(
          kubeConfig("tester")
            .makeApiClient(RbacAuthorizationV1Api)
            .createNamespacedRoleBinding({
              namespace: ns,
              body: {
                metadata: { name: "self-grant" },
                roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
                subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: tester.username }],
              },
            }),
        ),
      ).toBe(403);
      expect(await canI("list", "secrets", ns)).toBe("no");
    });

    it("allows what a RoleBinding to the user grants, in that namespace and for those verbs only", async () => {
      const ns = await freshNamespace("rbac-user");
      const other = await freshNamespace("rbac-other");
      const asTester = kubeConfig("tester").makeApiClient(CoreV1Api);
      expect(await httpStatus(asTester.listNamespacedSecret({ namespace: ns }))).toBe(403);

      await rbac().createNamespacedRole({
        namespace: ns,
        body: {
          metadata: { name: "secret-reader" },
          rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch"] }],
        },
      });
      await rbac().createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: "tester-reads-secrets" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "secret-reader" },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: tester.username }],
        },
      });

      // The RBAC authorizer reads bindings from an informer: allow it a moment to catch up.
      await waitFor(
        async () => (await httpStatus(asTester.listNamespacedSecret({ namespace: ns }))) === 200,
        { timeoutMs: 15_000, description: `the RoleBinding to let ${tester.username} list secrets` },
      );
      expect(await canI("list", "secrets", ns)).toBe("yes");
      // Still denied elsewhere, and for verbs the Role does not grant.
      expect(await httpStatus(asTester.listNamespacedSecret({ namespace: other }))).toBe(403);
      expect(await canI("list", "secrets", other)).toBe("no");
      expect(
        await httpStatus(
          asTester.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "nope" } } }),
        ),
      ).toBe(403);
      expect(await canI("create", "secrets", ns)).toBe("no");
    });

    it("allows what a RoleBinding to one of the user's groups grants: a shard's Lease rights", async () => {
      const group = tester.groups.find((g) => !g.startsWith("system:"));
      if (!group) {
        // An external identity may only have system groups; the user binding above covers RBAC.
        expect(tester.groups).toContain("system:authenticated");
        return;
      }
      const ns = await freshNamespace("rbac-group");
      const leases = kubeConfig("tester").makeApiClient(CoordinationV1Api);
      const create = () =>
        leases.createNamespacedLease({
          namespace: ns,
          body: { metadata: { name: "shard-0" }, spec: { holderIdentity: tester.username } },
        });
      expect(await httpStatus(create())).toBe(403);

      await rbac().createNamespacedRole({
        namespace: ns,
        body: {
          metadata: { name: "shard-leases" },
          rules: [
            {
              apiGroups: ["coordination.k8s.io"],
              resources: ["leases"],
              verbs: ["get", "list", "watch", "create", "update", "patch"],
            },
          ],
        },
      });
      await rbac().createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: "testers-hold-leases" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "shard-leases" },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: group }],
        },
      });
      await waitFor(async () => (await httpStatus(create())) === 200, {
        timeoutMs: 15_000,
        description: `the RoleBinding to group ${group} to let ${tester.username} create Leases`,
      });
      const lease = await leases.readNamespacedLease({ name: "shard-0", namespace: ns });
      expect(lease.spec?.holderIdentity).toBe(tester.username);
      // The Role grants no delete: a shard cannot remove its Lease, only the coordinator can.
      expect(await httpStatus(leases.deleteNamespacedLease({ name: "shard-0", namespace: ns }))).toBe(403);
      expect(await canI("delete", "leases.coordination.k8s.io", ns)).toBe("no");
      expect(await canI("update", "leases.coordination.k8s.io", ns)).toBe("yes");
    });

    it("is denied through kubectl with a readable message", async () => {
      const ns = await freshNamespace("rbac-kubectl");
      const denied = await kubectl(["get", "secrets", "-n", ns], { identity: "tester" });
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/forbidden/i);
      expect(denied.stderr).toContain(tester.username);
    });
  },
);
