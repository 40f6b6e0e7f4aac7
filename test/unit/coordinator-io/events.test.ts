import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { EventAction } from "../../../src/coordinator/core/index.js";
import { CoordinatorMetrics } from "../../../src/coordinator/metrics.js";
import { EventRecorder } from "../../../src/kube/events.js";
import { ApiError, type RequestOptions } from "../../../src/kube/http.js";

interface Call {
  method: string;
  path: string;
  opts: RequestOptions;
}

function fakeHttp(fail: (c: Call) => ApiError | undefined = () => undefined) {
  const calls: Call[] = [];
  return {
    calls,
    http: {
      request: async <T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> => {
        const c = { method, path, opts };
        calls.push(c);
        const err = fail(c);
        if (err) throw err;
        return opts.body as T;
      },
    },
  };
}

function recorder(http: ReturnType<typeof fakeHttp>["http"], maxEntries?: number) {
  const logs: Array<Record<string, unknown>> = [];
  const metrics = new CoordinatorMetrics({ defaultMetrics: false });
  const r = new EventRecorder({
    http: http as never,
    logger: pino({ level: "debug" }, { write: (l: string) => logs.push(JSON.parse(l)) }),
    component: "slotmap-coordinator",
    onWrite: (verb, result) => metrics.apiWrites.inc({ verb, resource: "events", result }),
    now: () => new Date("2025-01-02T03:04:05.678Z"),
    ...(maxEntries !== undefined ? { maxEntries } : {}),
  });
  return { r, logs, metrics };
}

const slotMapEvent: EventAction = {
  type: "event",
  involvedObject: {
    apiVersion: "slotmap.dev/v1alpha1",
    kind: "SlotMap",
    name: "m",
    uid: "u1",
    resourceVersion: "7",
  },
  eventType: "Warning",
  reason: "InvalidSpec",
  message: "spec.leaseNamespace: bad",
  reportingInstance: "coord-0",
};

const leaseEvent: EventAction = {
  ...slotMapEvent,
  involvedObject: {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    name: "a",
    namespace: "ns",
    uid: "l1",
  },
  reason: "InvalidAnnotation",
};

describe("EventRecorder", () => {
  it("creates a core/v1 Event in default for the cluster-scoped SlotMap, in the Lease's namespace for a Lease", async () => {
    const { calls, http } = fakeHttp();
    const { r } = recorder(http);
    await r.record(slotMapEvent);
    await r.record(leaseEvent);
    expect(calls.map((c) => [c.method, c.path])).toEqual([
      ["POST", "/api/v1/namespaces/default/events"],
      ["POST", "/api/v1/namespaces/ns/events"],
    ]);
    const body = calls[0]!.opts.body as Record<string, unknown>;
    expect(body).toMatchObject({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: expect.stringMatching(/^m\.[0-9a-f]{16}$/), namespace: "default" },
      involvedObject: {
        apiVersion: "slotmap.dev/v1alpha1",
        kind: "SlotMap",
        name: "m",
        uid: "u1",
        resourceVersion: "7",
      },
      type: "Warning",
      reason: "InvalidSpec",
      message: "spec.leaseNamespace: bad",
      count: 1,
      firstTimestamp: "2025-01-02T03:04:05Z",
      lastTimestamp: "2025-01-02T03:04:05Z",
      reportingInstance: "coord-0",
    });
    expect(body.involvedObject).not.toHaveProperty("namespace");
    expect((calls[1]!.opts.body as { involvedObject: unknown }).involvedObject).toMatchObject({
      namespace: "ns",
    });
  });

  it("aggregates an identical Event: PATCH count and lastTimestamp of the first one", async () => {
    const { calls, http } = fakeHttp();
    const { r, metrics } = recorder(http);
    await r.record(slotMapEvent);
    await r.record(slotMapEvent);
    await r.record(slotMapEvent);
    await r.record({ ...slotMapEvent, message: "something else" });
    const name = (calls[0]!.opts.body as { metadata: { name: string } }).metadata.name;
    expect(calls.map((c) => [c.method, c.path])).toEqual([
      ["POST", "/api/v1/namespaces/default/events"],
      ["PATCH", `/api/v1/namespaces/default/events/${name}`],
      ["PATCH", `/api/v1/namespaces/default/events/${name}`],
      ["POST", "/api/v1/namespaces/default/events"],
    ]);
    expect(calls[2]!.opts).toMatchObject({
      body: { count: 3, lastTimestamp: "2025-01-02T03:04:05Z" },
      contentType: "application/merge-patch+json",
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain('slotmap_api_writes_total{verb="patch",resource="events",result="ok"} 2');
  });

  it("creates the Event anew when the aggregated one expired (404)", async () => {
    const { calls, http } = fakeHttp((c) =>
      c.method === "PATCH" ? new ApiError(404, "NotFound", "gone", c.method, c.path) : undefined,
    );
    const { r } = recorder(http);
    await r.record(slotMapEvent);
    await r.record(slotMapEvent);
    expect(calls.map((c) => c.method)).toEqual(["POST", "PATCH", "POST"]);
    expect((calls[2]!.opts.body as { count: number }).count).toBe(1);
  });

  it("is best effort: a failure is logged and counted, never thrown", async () => {
    const { http } = fakeHttp((c) => new ApiError(403, "Forbidden", "no", c.method, c.path));
    const { r, logs, metrics } = recorder(http);
    await expect(r.record(slotMapEvent)).resolves.toBeUndefined();
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "could not record Event (not retried)",
        reason: "InvalidSpec",
        level: 40,
      }),
    );
    expect(await metrics.registry.metrics()).toContain(
      'slotmap_api_writes_total{verb="create",resource="events",result="error"} 1',
    );
  });

  it("remembers a bounded number of Events (least recently used forgotten)", async () => {
    const { calls, http } = fakeHttp();
    const { r } = recorder(http, 2);
    const ev = (m: string): EventAction => ({ ...slotMapEvent, message: m });
    await r.record(ev("1"));
    await r.record(ev("2"));
    await r.record(ev("1")); // 1 is now the most recent
    await r.record(ev("3")); // forgets 2
    await r.record(ev("2"));
    await r.record(ev("1"));
    expect(calls.map((c) => c.method)).toEqual(["POST", "POST", "PATCH", "POST", "POST", "POST"]);
  });
});
