// Shard Leases on a real API server: the optimistic-concurrency guarantees the membership
// protocol relies on (DESIGN "The shard Lease"). A renewal, a takeover and an ack are all
// writes with a resourceVersion precondition; a writer holding a stale version must get
// 409 Conflict and never overwrite.

import { ApiException, CoordinationV1Api, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION_OBSERVED_GENERATION, LABEL_SLOTMAP } from "../../src/api/index.js";
import { microTime } from "../../src/api/lease.js";
import { ApiError, KubeHttp, type KubeList, type KubeObject } from "../../src/kube/http.js";
import { freshNamespace, kubeConfig } from "../support/cluster.js";

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** The HTTP status of a rejected client-node call (200 when it succeeds). */
async function httpStatus(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

/** The ApiError a KubeHttp call is rejected with; fails the test if it succeeds. */
async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the request should have been rejected").toBeInstanceOf(ApiError);
  return err as ApiError;
}

let ns: string;
let leases: CoordinationV1Api;
let http: KubeHttp;
const leasePath = (name?: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases${name ? `/${name}` : ""}`;

beforeAll(async () => {
  ns = await freshNamespace("lease");
  leases = kubeConfig().makeApiClient(CoordinationV1Api);
  http = new KubeHttp(kubeConfig());
});

describe("shard Leases", () => {
  it("are created and renewed with resourceVersion preconditions; a stale renewal is a 409", async () => {
    // client-node needs V1MicroTime for MicroTime fields: a plain Date serializes with
    // milliseconds, which the API server rejects. Values read back are strings at runtime.
    const now = new V1MicroTime();
    const created = await leases.createNamespacedLease({
      namespace: ns,
      body: {
        metadata: { name: "shard-0", labels: { [LABEL_SLOTMAP]: "test" } },
        spec: { holderIdentity: "proc-a", leaseDurationSeconds: 15, acquireTime: now, renewTime: now },
      },
    });
    const rv1 = created.metadata?.resourceVersion;
    expect(rv1).toBeTruthy();

    const renew = (base: V1Lease, rv: string | undefined, holder: string): Promise<V1Lease> =>
      leases.replaceNamespacedLease({
        name: "shard-0",
        namespace: ns,
        body: {
          ...base,
          metadata: { ...base.metadata, resourceVersion: rv },
          spec: { ...base.spec, holderIdentity: holder, renewTime: new V1MicroTime() },
        },
      });

    const renewed = await renew(created, rv1, "proc-a");
    const rv2 = renewed.metadata?.resourceVersion;
    expect(rv2).toBeTruthy();
    expect(rv2).not.toBe(rv1);

    // A writer that still holds the first version must not overwrite the renewal.
    expect(await httpStatus(renew(created, rv1, "proc-b"))).toBe(409);

    const current = await leases.readNamespacedLease({ name: "shard-0", namespace: ns });
    expect(current.spec?.holderIdentity).toBe("proc-a");
    expect(current.metadata?.resourceVersion).toBe(rv2);

    // The current version still works.
    const again = await renew(current, rv2, "proc-a");
    expect(again.metadata?.resourceVersion).not.toBe(rv2);
  });

  it("lets exactly one of two contenders take over the same version", async () => {
    const base = await http.request<Lease>("POST", leasePath(), {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "contended" },
        spec: { holderIdentity: "old", leaseDurationSeconds: 1, renewTime: microTime(), leaseTransitions: 0 },
      },
    });
    const takeOver = (holder: string) =>
      http.request<Lease>("PUT", leasePath("contended"), {
        body: {
          ...base,
          spec: {
            ...base.spec,
            holderIdentity: holder,
            acquireTime: microTime(),
            renewTime: microTime(),
            leaseTransitions: 1,
          },
        },
      });
    const results = await Promise.allSettled([takeOver("coordinator-a"), takeOver("coordinator-b")]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    const err = (lost[0] as PromiseRejectedResult).reason as unknown;
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).statusCode).toBe(409);
    expect((err as ApiError).reason).toBe("Conflict");
    // The error names the request and what went wrong, for the logs.
    expect((err as ApiError).message).toMatch(
      new RegExp(`^PUT ${leasePath("contended")}: 409 Conflict: .*the object has been modified`),
    );

    const winner = (won[0] as PromiseFulfilledResult<Lease>).value;
    const stored = await http.request<Lease>("GET", leasePath("contended"));
    expect(stored.spec?.holderIdentity).toBe(winner.spec?.holderIdentity);
    expect(stored.spec?.leaseTransitions).toBe(1);
  });

  it("writes an ack annotation with a merge patch that carries the resourceVersion as precondition", async () => {
    const lease = await http.request<Lease>("POST", leasePath(), {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "acker", labels: { [LABEL_SLOTMAP]: "acks" } },
        spec: { holderIdentity: "shard", leaseDurationSeconds: 15, renewTime: microTime() },
      },
    });
    const ack = (rv: string | undefined, generation: number) =>
      http.request<Lease>("PATCH", leasePath("acker"), {
        contentType: "application/merge-patch+json",
        body: {
          metadata: {
            resourceVersion: rv,
            annotations: { [ANNOTATION_OBSERVED_GENERATION]: `${generation}` },
          },
        },
      });

    const acked = await ack(lease.metadata?.resourceVersion, 7);
    expect(acked.metadata?.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("7");
    expect(acked.spec?.holderIdentity).toBe("shard"); // a merge patch leaves the rest alone

    const stale = await apiError(ack(lease.metadata?.resourceVersion, 8));
    expect(stale.statusCode).toBe(409);
    const stored = await http.request<Lease>("GET", leasePath("acker"));
    expect(stored.metadata?.annotations?.[ANNOTATION_OBSERVED_GENERATION]).toBe("7");

    // The label is how the coordinator finds a SlotMap's shards.
    const listed = await http.request<KubeList<Lease>>("GET", leasePath(), {
      query: { labelSelector: `${LABEL_SLOTMAP}=acks` },
    });
    expect(listed.items.map((l) => l.metadata?.name)).toEqual(["acker"]);
  });

  it("deletes an orphaned Lease only at the version the coordinator saw", async () => {
    const lease = await http.request<Lease>("POST", leasePath(), {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "orphan" },
        spec: { holderIdentity: "gone", leaseDurationSeconds: 15, renewTime: microTime() },
      },
    });
    const seen = lease.metadata?.resourceVersion;
    // The shard came back and renewed after the coordinator decided to delete it.
    await http.request<Lease>("PUT", leasePath("orphan"), {
      body: { ...lease, spec: { ...lease.spec, renewTime: microTime() } },
    });
    const del = (rv: string | undefined) =>
      http.request<KubeObject>("DELETE", leasePath("orphan"), {
        body: { apiVersion: "v1", kind: "DeleteOptions", preconditions: { resourceVersion: rv } },
      });
    const err = await apiError(del(seen));
    expect(err.statusCode).toBe(409);
    expect(err.message).toMatch(/the ResourceVersion in the precondition \(\d+\) does not match/);

    const current = await http.request<Lease>("GET", leasePath("orphan"));
    await del(current.metadata?.resourceVersion);
    expect((await apiError(http.request("GET", leasePath("orphan")))).statusCode).toBe(404);
  });

  it("refuses a second Lease with the same name (AlreadyExists, not Conflict)", async () => {
    const body = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "unique" },
      spec: { holderIdentity: "a" },
    };
    await http.request("POST", leasePath(), { body });
    const err = await apiError(http.request("POST", leasePath(), { body }));
    expect(err.statusCode).toBe(409);
    expect(err.reason).toBe("AlreadyExists");
  });

  it("keeps renewTime at microsecond precision and rejects a millisecond timestamp", async () => {
    const renewTime = "2026-01-02T03:04:05.123456Z";
    const lease = await http.request<Lease>("POST", leasePath(), {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "micro" },
        spec: { holderIdentity: "a", renewTime },
      },
    });
    expect(lease.spec?.renewTime).toBe(renewTime);

    // What JSON.stringify(new Date()) produces: a client must not send it. The API server's
    // decode error names the expected layout, not the field: clients must format MicroTime.
    const err = await apiError(
      http.request("POST", leasePath(), {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "milli" },
          spec: { holderIdentity: "a", renewTime: new Date().toISOString() },
        },
      }),
    );
    expect(err.statusCode).toBe(400);
    expect(err.reason).toBe("BadRequest");
    expect(err.message).toContain('as "2006-01-02T15:04:05.000000Z07:00"');
  });
});
