import { describe, expect, it } from "vitest";
import {
  HashRing,
  isAvailable,
  keyForController,
  keyForObject,
  labelDrain,
  labelShard,
  leaseState,
  resyncAction,
  type ShardState,
  shardAction,
  TOKENS_PER_NODE,
} from "../../../bench/label-baseline/protocol.js";
import { xxh64 } from "../../../src/slots/index.js";

const keys = Array.from({ length: 20_000 }, (_, i) => `/Secret/ns/s-${i}`);

function assign(ring: HashRing): Map<string, string> {
  return new Map(keys.map((k) => [k, ring.hash(k)]));
}

describe("HashRing (timebertt consistenthash)", () => {
  it("maps a key to the node of the first token at or after its hash, wrapping around", () => {
    const ring = new HashRing(["a", "b", "c"]);
    const tokens: Array<[bigint, string]> = [];
    for (const n of ["a", "b", "c"])
      for (let i = 0; i < TOKENS_PER_NODE; i++) tokens.push([xxh64(`${n}${i}`), n]);
    tokens.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    for (const k of keys.slice(0, 500)) {
      const h = xxh64(k);
      const next = tokens.find(([t]) => t >= h) ?? tokens[0]!;
      expect(ring.hash(k)).toBe(next[1]);
    }
  });

  it("moves as many of the benchmark's objects on a join as the real sharder did (216 of 1k, 2,259 of 10k)", () => {
    // Figures of timebertt's sharder at commit f1d25b3 on the same keys and shard names (issue 14);
    // the earlier token format "<node>-<i>" moved 263 and 2,636.
    for (const [n, want] of [
      [1000, 216],
      [10_000, 2259],
    ] as const) {
      const three = new HashRing(["label-0", "label-1", "label-2"]);
      const four = new HashRing(["label-0", "label-1", "label-2", "label-3"]);
      let moved = 0;
      for (let i = 0; i < n; i++) {
        const k = `/Secret/bench-label/s-${String(i).padStart(6, "0")}`;
        if (three.hash(k) !== four.hash(k)) moved++;
      }
      expect(moved).toBe(want);
    }
  });

  it("is empty without nodes and ignores duplicate nodes", () => {
    expect(new HashRing([]).hash("x")).toBe("");
    expect(new HashRing([]).empty).toBe(true);
    const a = assign(new HashRing(["a", "b"]));
    const b = assign(new HashRing(["b", "a", "a"]));
    expect(b).toEqual(a);
  });

  it("spreads keys roughly evenly (100 tokens per node)", () => {
    const counts = new Map<string, number>();
    for (const s of assign(new HashRing(["s-0", "s-1", "s-2", "s-3"])).values())
      counts.set(s, (counts.get(s) ?? 0) + 1);
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(Math.abs(c - keys.length / 4)).toBeLessThan(keys.length * 0.1);
  });

  it("moves only keys that go to a new node when one joins, and only the leaver's keys when one leaves", () => {
    const three = assign(new HashRing(["s-0", "s-1", "s-2"]));
    const four = assign(new HashRing(["s-0", "s-1", "s-2", "s-3"]));
    let moved = 0;
    for (const k of keys) {
      if (three.get(k) !== four.get(k)) {
        moved++;
        expect(four.get(k)).toBe("s-3");
      }
    }
    expect(moved / keys.length).toBeGreaterThan(0.15);
    expect(moved / keys.length).toBeLessThan(0.35);
    for (const k of keys) if (four.get(k) !== "s-3") expect(three.get(k)).toBe(four.get(k));
  });
});

describe("shard states from Leases (timebertt leases.ToState)", () => {
  const now = Date.parse("2026-01-01T00:00:30Z");
  const lease = (holder: string | undefined, renew: string, duration = 15) => ({
    metadata: { name: "s-0" },
    spec: { holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: renew, renewTime: renew },
  });

  it("ready within the lease duration, then expired, then uncertain after another duration", () => {
    expect(leaseState(lease("s-0", "2026-01-01T00:00:20Z"), now)).toBe("ready");
    expect(leaseState(lease("s-0", "2026-01-01T00:00:10Z"), now)).toBe("expired");
    expect(leaseState(lease("s-0", "2026-01-01T00:00:00Z"), now)).toBe("uncertain");
  });

  it("dead when released or held by someone else, orphaned a minute after expiry", () => {
    expect(leaseState(lease("", "2026-01-01T00:00:29Z"), now)).toBe("dead");
    expect(leaseState(lease("shardlease-controller", "2026-01-01T00:00:29Z", 30), now)).toBe("dead");
    expect(leaseState(lease(undefined, "2025-12-31T23:59:00Z"), now)).toBe("orphaned");
  });

  it("counts ready, expired and uncertain shards as available", () => {
    expect(["ready", "expired", "uncertain"].every((s) => isAvailable(s as "ready"))).toBe(true);
    expect(["dead", "orphaned", "unknown"].some((s) => isAvailable(s as "dead"))).toBe(false);
  });
});

describe("hash keys and label names", () => {
  it("keys an object by itself and a controlled object by its controller", () => {
    expect(keyForObject("", "Secret", { name: "foo", namespace: "default" })).toBe("/Secret/default/foo");
    expect(
      keyForController({
        name: "checksums-foo",
        namespace: "default",
        ownerReferences: [
          { apiVersion: "v1", kind: "Secret", name: "other" },
          { apiVersion: "apps/v1", kind: "Deployment", name: "foo", controller: true },
        ],
      }),
    ).toBe("apps/Deployment/default/foo");
    expect(keyForController({ name: "x", namespace: "default" })).toBe("");
  });

  it("rejects objects it cannot key, naming them", () => {
    expect(() => keyForObject("", "Secret", { namespace: "default" })).toThrow(
      /Secret without metadata.name/,
    );
    expect(() =>
      keyForController({
        name: "x",
        namespace: "ns",
        ownerReferences: [{ kind: "Secret", controller: true }],
      }),
    ).toThrow(/ns\/x/);
  });

  it("uses the ring-specific label names of the documented protocol", () => {
    expect(labelShard("checksum-controller")).toBe("shard.alpha.sharding.timebertt.dev/checksum-controller");
    expect(labelDrain("checksum-controller")).toBe("drain.alpha.sharding.timebertt.dev/checksum-controller");
  });
});

describe("rebalance decisions (sharder resync and shard reconciler)", () => {
  const ring = "r";
  const shard = labelShard(ring);
  const drain = labelDrain(ring);
  const states: Record<string, ShardState> = { a: "ready", b: "ready", gone: "dead", old: "uncertain" };
  const act = (labels: Record<string, string> | undefined, desired: string, controlled = false) =>
    resyncAction({ ring, desired, labels, controlled, stateOf: (s) => states[s] });

  it("keeps an object already on its ring shard, or when the ring is empty", () => {
    expect(act({ [shard]: "a" }, "a")).toBe("keep");
    expect(act({ [shard]: "a" }, "")).toBe("keep");
  });

  it("drains a root object on an available shard (ready or uncertain), once", () => {
    expect(act({ [shard]: "a" }, "b")).toBe("drain");
    expect(act({ [shard]: "old" }, "b")).toBe("drain");
    expect(act({ [shard]: "a", [drain]: "true" }, "b")).toBe("draining");
  });

  it("moves at once: controlled objects, unassigned objects, objects of dead or unknown shards", () => {
    expect(act({ [shard]: "a" }, "b", true)).toBe("move");
    expect(act(undefined, "b")).toBe("move");
    expect(act({ [shard]: "gone" }, "b")).toBe("move");
    expect(act({ [shard]: "never-seen" }, "b")).toBe("move");
  });

  it("a shard ignores objects not labelled for it, acks a drain, reconciles the rest", () => {
    expect(shardAction(ring, "a", { [shard]: "a" })).toBe("reconcile");
    expect(shardAction(ring, "a", { [shard]: "a", [drain]: "true" })).toBe("ackDrain");
    expect(shardAction(ring, "a", { [shard]: "b" })).toBe("ignore");
    expect(shardAction(ring, "a", { [shard]: "b", [drain]: "true" })).toBe("ignore");
    expect(shardAction(ring, "a", undefined)).toBe("ignore");
  });
});
