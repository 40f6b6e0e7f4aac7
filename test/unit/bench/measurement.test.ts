import { describe, expect, it } from "vitest";
import {
  diffCounts,
  diffWrites,
  formatWrites,
  listedObjects,
  parseRequestTotals,
  snapshotFromMetrics,
  totalWrites,
  writesByResource,
} from "../../../bench/support/apimetrics.js";
import { childNodeFlags, inspectorUrl } from "../../../bench/support/children.js";
import { fit2, percentiles } from "../../../bench/support/fit.js";
import { listedResource, watchedResource } from "../../../bench/support/kube.js";
import { parseStatTicks, parseVmRss } from "../../../bench/support/proc.js";
import { approachesFromEnv } from "../../../bench/support/rebalance.js";

const METRICS = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 142
apiserver_request_total{code="409",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 301
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 77
apiserver_request_total{code="200",component="apiserver",dry_run="",group="slotmap.dev",resource="slotmaps",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="APPLY",version="v1"} 2
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="WATCH",version="v1"} 9
apiserver_watch_cache_events_dispatched_total{group="",resource="secrets"} 40
apiserver_watch_cache_events_dispatched_total{group="coordination.k8s.io",resource="leases"} 7
apiserver_storage_list_returned_objects_total{group="",resource="secrets",storage="watchcache"} 1000
apiserver_storage_list_returned_objects_total{group="",resource="secrets",storage="etcd"} 20
apiserver_storage_list_fetched_objects_total{group="",index="",resource="secrets",storage="watchcache"} 5000
apiserver_storage_list_returned_objects_total{group="",resource="configmaps",storage="watchcache"} 3
`;

describe("API server write counts", () => {
  it("parses apiserver_request_total and sums writes by resource, failures by code", () => {
    const samples = parseRequestTotals(METRICS);
    expect(samples).toHaveLength(7);
    expect(samples[0]!.labels.verb).toBe("PUT");
    expect(writesByResource(samples)).toEqual({
      leases: 142,
      "leases 409": 3,
      configmaps: 301,
      "slotmaps/status": 5,
      secrets: 2,
    });
  });

  it("diffs two snapshots, leaving out unchanged resources, and refuses a counter that went down", () => {
    expect(diffWrites({ leases: 10, secrets: 5 }, { leases: 14, secrets: 5, configmaps: 2 })).toEqual({
      leases: 4,
      configmaps: 2,
    });
    expect(() => diffWrites({ leases: 10 }, { leases: 9 })).toThrow(/leases went down \(10 → 9\)/);
    expect(totalWrites({ a: 2, b: 3 })).toBe(5);
    expect(formatWrites({ leases: 2, secrets: 9 })).toBe("secrets 9, leases 2");
    expect(formatWrites({})).toBe("none");
  });

  it("reads watch events delivered per resource", () => {
    const s = snapshotFromMetrics(METRICS, 1);
    expect(s.watchEvents).toEqual({ secrets: 40, leases: 7 });
    expect(s.lists).toEqual({ configmaps: 77 });
    expect(diffCounts({ secrets: 40 }, { secrets: 52, leases: 7 })).toEqual({ secrets: 12, leases: 7 });
  });
});

describe("LIST accounting", () => {
  it("sums returned (not fetched) objects over watch cache and etcd, by resource", () => {
    expect(listedObjects(METRICS)).toEqual({ secrets: 1020, configmaps: 3 });
    expect(listedObjects("")).toEqual({});
  });

  it("names the resource of collection GETs only, not of single objects or watches", () => {
    expect(listedResource("/api/v1/secrets?limit=500")).toBe("secrets");
    expect(listedResource("/api/v1/namespaces/ns/configmaps?limit=500&continue=abc")).toBe("configmaps");
    expect(listedResource("/apis/slotmap.dev/v1alpha1/slotmaps")).toBe("slotmaps");
    expect(listedResource("/api/v1/namespaces")).toBe("namespaces");
    expect(listedResource("/api/v1/namespaces/ns/secrets/s-1")).toBeUndefined();
    expect(listedResource("/api/v1/namespaces/ns")).toBeUndefined();
    expect(listedResource("/api/v1/secrets?watch=true")).toBeUndefined();
    expect(listedResource("/metrics")).toBeUndefined();
  });
});

describe("/proc parsing", () => {
  it("reads VmRSS in bytes", () => {
    expect(parseVmRss("Name:\tnode\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t7\n")).toBe(
      12345 * 1024,
    );
    expect(() => parseVmRss("Name:\tzombie\n")).toThrow(/no VmRSS/);
  });

  it("sums utime and stime even when the command name has spaces and parentheses", () => {
    const fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "250", "50", "0", "0"];
    expect(parseStatTicks(`4242 (node (worker) x) ${fields.join(" ")}`)).toBe(300);
    expect(() => parseStatTicks("garbage")).toThrow(/malformed/);
  });
});

describe("watch tally", () => {
  it("names the resource of watch requests only", () => {
    expect(watchedResource("/api/v1/namespaces/ns/secrets?labelSelector=a%3Db&watch=true")).toBe("secrets");
    expect(watchedResource("/apis/slotmap.dev/v1alpha1/slotmaps?watch=true&fieldSelector=x")).toBe(
      "slotmaps",
    );
    expect(watchedResource("/api/v1/secrets?limit=500")).toBeUndefined();
    expect(watchedResource("/api/v1/secrets")).toBeUndefined();
  });
});

describe("percentiles", () => {
  it("takes nearest-rank p50 and p99 and the max, whatever the input order", () => {
    const values = Array.from({ length: 200 }, (_, i) => 200 - i); // 200 … 1
    expect(percentiles(values)).toEqual({ p50: 100, p99: 198, max: 200 });
    expect(values[0]).toBe(200); // input left unsorted
    expect(percentiles([7])).toEqual({ p50: 7, p99: 7, max: 7 });
  });

  it("is NaN without values (nothing moved), never a made-up 0", () => {
    const p = percentiles([]);
    expect(p.p50).toBeNaN();
    expect(p.p99).toBeNaN();
    expect(p.max).toBeNaN();
  });
});

describe("inspector URL", () => {
  it("finds the WebSocket URL in node's banner", () => {
    const banner =
      "Debugger listening on ws://127.0.0.1:40123/0f1e2d3c-aaaa-bbbb-cccc-123456789abc\nFor help, see: https://nodejs.org/en/docs/inspector\n";
    expect(inspectorUrl(banner)).toBe("ws://127.0.0.1:40123/0f1e2d3c-aaaa-bbbb-cccc-123456789abc");
    expect(inspectorUrl("Starting inspector on 127.0.0.1:0 failed")).toBeUndefined();
  });
});

describe("fit2", () => {
  it("recovers both per-object costs from samples at two ownership ratios", () => {
    const pts = [
      { x1: 3333, x2: 6667 },
      { x1: 1000, x2: 9000 },
      { x1: 3400, x2: 6600 },
    ].map((p) => ({ ...p, y: 4000 * p.x1 + 50 * p.x2 }));
    const { a, b } = fit2(pts);
    expect(a).toBeCloseTo(4000, 6);
    expect(b).toBeCloseTo(50, 6);
  });

  it("fits only the first cost when the second variable is always zero", () => {
    const { a, b } = fit2([
      { x1: 100, x2: 0, y: 1000 },
      { x1: 300, x2: 0, y: 3000 },
    ]);
    expect(a).toBeCloseTo(10, 9);
    expect(b).toBeNaN();
  });
});

describe("bench environment", () => {
  it("SLOTMAP_BENCH_APPROACHES: a comma-separated subset, or every approach when unset", () => {
    expect(approachesFromEnv(undefined)).toBeUndefined();
    expect(approachesFromEnv(" ")).toBeUndefined();
    expect(approachesFromEnv("slot, slot-all")).toEqual(["slot", "slot-all"]);
    expect(() => approachesFromEnv("slot,labels")).toThrow(
      'SLOTMAP_BENCH_APPROACHES: "labels" is not one of slot, slot-all, label; got "slot,labels"',
    );
  });

  it("SLOTMAP_BENCH_CHILD_NODE_FLAGS: Node flags only", () => {
    expect(childNodeFlags(undefined)).toEqual([]);
    expect(childNodeFlags(" --cpu-prof  --cpu-prof-dir=/tmp/p ")).toEqual([
      "--cpu-prof",
      "--cpu-prof-dir=/tmp/p",
    ]);
    expect(() => childNodeFlags("--cpu-prof /tmp/p")).toThrow(
      'SLOTMAP_BENCH_CHILD_NODE_FLAGS: "/tmp/p" is not a Node flag (--…); got "--cpu-prof /tmp/p"',
    );
  });
});
