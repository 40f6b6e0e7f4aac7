// The elector's decisions over an in-memory Lease store with the API server's preconditions, on
// fake timers. The real API server, stalls and process restarts are in
// test/integration/process-faults.test.ts and coordinator-ha.test.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { LeaseObject } from "../../../src/api/lease.js";
import { ApiError, type KubeHttp } from "../../../src/kube/http.js";
import { LeaderElector } from "../../../src/kube/leader-election.js";

const PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

/** One Lease with resourceVersion preconditions, as the API server keeps it. */
class LeaseStore {
  lease: LeaseObject | null = null;
  #rv = 0;

  put(lease: LeaseObject): void {
    this.lease = structuredClone(lease);
    this.lease.metadata.resourceVersion = String(++this.#rv);
  }

  readonly http = {
    request: async <T>(method: string, path: string, opts: { body?: unknown } = {}): Promise<T> => {
      const body = opts.body as LeaseObject | undefined;
      const fail = (code: number, reason: string) => {
        throw new ApiError(code, reason, reason, method, path);
      };
      if (method === "GET") {
        if (path !== `${PATH}/lock` || this.lease === null) fail(404, "NotFound");
      } else if (method === "POST") {
        if (this.lease !== null) fail(409, "AlreadyExists");
        this.put(body!);
      } else if (method === "PUT") {
        if (this.lease === null) fail(404, "NotFound");
        if (body!.metadata.resourceVersion !== this.lease!.metadata.resourceVersion) fail(409, "Conflict");
        this.put(body!);
      }
      return structuredClone(this.lease) as T;
    },
  } as unknown as KubeHttp;
}

function elector(store: LeaseStore, identity: string, events: string[]): LeaderElector {
  return new LeaderElector({
    http: store.http,
    namespace: "ns",
    name: "lock",
    identity,
    leaseDurationSeconds: 15,
    renewDeadlineSeconds: 10,
    retryPeriodSeconds: 2,
    now: () => Date.now(),
    onStartedLeading: (signal) => {
      events.push(`${identity} started`);
      signal.addEventListener("abort", () => events.push(`${identity} signal aborted`));
    },
    onStoppedLeading: () => events.push(`${identity} stopped`),
  });
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LeaderElector", () => {
  it("creates the Lease, renews every retry period, and hands over at once by releasing it on stop", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, "a", events);
    const b = elector(store, "b", events);
    a.start();
    await vi.advanceTimersByTimeAsync(10);
    b.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(a.isLeader).toBe(true);
    expect(store.lease?.spec).toMatchObject({
      holderIdentity: "a",
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
    });
    const rv = Number(store.lease?.metadata.resourceVersion);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(Number(store.lease?.metadata.resourceVersion)).toBe(rv + 3); // renewed at 2, 4 and 6 s
    expect(b.isLeader).toBe(false);

    await a.stop();
    expect(events).toEqual(["a started", "a signal aborted", "a stopped"]);
    expect(store.lease?.spec?.holderIdentity).toBe("");
    await vi.advanceTimersByTimeAsync(2_000); // b's next round: a free Lease is taken at once
    expect(b.isLeader).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.stop();
  });

  it("takes an unrenewed Lease only after a lease duration of its own clock; a label edit is no renewal", async () => {
    const store = new LeaseStore();
    store.put({
      metadata: { name: "lock", namespace: "ns" },
      spec: { holderIdentity: "gone", leaseDurationSeconds: 15, renewTime: "2000-01-01T00:00:00.000000Z" },
    });
    const events: string[] = [];
    const b = elector(store, "b", events);
    b.start();
    await vi.advanceTimersByTimeAsync(8_000);
    store.put({ ...store.lease!, metadata: { ...store.lease!.metadata, labels: { touched: "yes" } } });
    await vi.advanceTimersByTimeAsync(6_900);
    expect(b.isLeader).toBe(false);
    expect(store.lease?.spec?.holderIdentity).toBe("gone");
    await vi.advanceTimersByTimeAsync(2_100);
    expect(b.isLeader).toBe(true);
    expect(store.lease?.spec?.holderIdentity).toBe("b");
    await b.stop();
  });

  it("steps down when it sees another holder, and waits that holder out before campaigning", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, "a", events);
    a.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(a.isLeader).toBe(true);
    store.put({ ...store.lease!, spec: { ...store.lease!.spec, holderIdentity: "usurper", renewTime: "x" } });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(a.isLeader).toBe(false);
    expect(events).toEqual(["a started", "a signal aborted", "a stopped"]);
    await vi.advanceTimersByTimeAsync(12_000);
    expect(store.lease?.spec?.holderIdentity).toBe("usurper");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(a.isLeader).toBe(true);
    await a.stop();
  });

  it("steps down at the renew deadline when renewals fail, even while a call hangs", async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, "a", events);
    a.start();
    await vi.advanceTimersByTimeAsync(10);
    const startedAt = Date.now();
    let stoppedAt = 0;
    // Every call hangs from now on, until aborted.
    store.http.request = (_m, _p, opts) =>
      new Promise<never>((_, reject) =>
        opts?.signal?.addEventListener("abort", () => reject(opts.signal?.reason)),
      );
    const poll = setInterval(() => {
      if (!a.isLeader && stoppedAt === 0) stoppedAt = Date.now();
    }, 10);
    await vi.advanceTimersByTimeAsync(11_000);
    clearInterval(poll);
    // The last renewal was the acquire at about startedAt: the deadline is 10 s after it was sent.
    expect(stoppedAt - startedAt).toBeGreaterThan(9_900);
    expect(stoppedAt - startedAt).toBeLessThanOrEqual(10_010);
    expect(events).toEqual(["a started", "a signal aborted", "a stopped"]);
  });
});
