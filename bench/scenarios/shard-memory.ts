/**
 * Shard memory: heap bytes a running shard (member + sharded controller runtime, watching Secrets
 * and ConfigMaps cluster-wide) keeps per object of its own slots and per object of other shards'
 * slots. DESIGN: "a shard keeps in memory only what it owns (plus at most a small per-object
 * index)"; this runtime keeps nothing per foreign object and re-lists on gain.
 *
 * On a fresh local control plane (no coordinator: the SlotMap status is written by hand):
 * every measured shard owns the first third of the slots, on its own SlotMap;
 * 1. a warm-up shard (unmeasured), then the fixed cost F with no Secrets;
 * 2. create N small Secrets (2 keys, ~100 bytes of data) in the other two thirds: heap W;
 * 3. create N more in the shard's third: heap O.
 * Each figure is heapUsed after forced GCs with the shard synced, minus heapUsed before it started
 * (median of 3 runs): per foreign object = (W − F) / N, per owned object = (O − W) / N.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createShardMember, type ShardMember, startController } from "../../src/client/index.js";
import { formatSlotRanges, keySlot, SLOT_COUNT, type SlotRange } from "../../src/slots/index.js";
import { startControlPlane } from "../../test/support/controlplane.js";
import type { Row, RunOptions, Scenario } from "../lib.js";
import { connectKube, installCrds, type Kube, runPool, sleep, waitUntil } from "../support/kube.js";

const NS = "bench-secrets";
const LEASE_NS = "bench-shards";

// gc() without --expose-gc: enable the flag at runtime and fetch the function from a new context.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await sleep(50); // let finalizers and pending I/O callbacks run
  }
  return process.memoryUsage().heapUsed;
}

interface Measured {
  /** heapUsed with the shard synced minus before it started. */
  bytes: number;
  ownedObjects: number;
  syncMs: number;
}

/** Runs one shard owning `ranges` on its own SlotMap until synced; returns its heap delta. */
async function measureShard(
  kube: Kube,
  name: string,
  ranges: SlotRange[],
  expectedOwned: number,
): Promise<Measured> {
  await kube.http.request("POST", "/apis/slotmap.dev/v1alpha1/slotmaps", {
    body: {
      apiVersion: "slotmap.dev/v1alpha1",
      kind: "SlotMap",
      metadata: { name },
      spec: {
        leaseNamespace: LEASE_NS,
        resources: [
          { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
        ],
      },
    },
  });
  const before = await heapAfterGc();
  const t0 = performance.now();
  let member: ShardMember | undefined = createShardMember({
    kubeConfig: kube.kc,
    slotMap: name,
    shard: `${name}-0`,
  });
  await member.ready;
  // Play the coordinator: grant the ranges to this shard's identity.
  const sm = await kube.http.request<Record<string, unknown>>(
    "GET",
    `/apis/slotmap.dev/v1alpha1/slotmaps/${name}`,
  );
  const owned = formatSlotRanges(ranges);
  const unassigned = formatSlotRanges(complement(ranges));
  await kube.http.request("PUT", `/apis/slotmap.dev/v1alpha1/slotmaps/${name}/status`, {
    body: {
      ...sm,
      status: {
        assignmentGeneration: 1,
        shards: [{ name: `${name}-0`, state: "Ready", slots: owned, holderIdentity: member.identity }],
        migrations: [],
        unassignedSlots: unassigned,
      },
    },
  });
  let reconciled = 0;
  let controller = startController({
    member,
    reconcile: async () => {
      reconciled++;
    },
  });
  const m = member;
  await waitUntil(
    "the shard to own its slots",
    () => (m.status().ownedSlots === countSlots(ranges) ? true : undefined),
    30_000,
  );
  await controller.synced;
  const c = controller;
  await waitUntil(
    "the shard to cache and reconcile its objects",
    () => (c.stats().roots >= expectedOwned && reconciled >= expectedOwned ? true : undefined),
    300_000,
  );
  const syncMs = performance.now() - t0;
  await sleep(500);
  const after = await heapAfterGc();
  const ownedObjects = controller.stats().roots;
  await Promise.all([member.stop(), controller.stop()]);
  // Drop references before the next measurement.
  controller = undefined as unknown as typeof controller;
  member = undefined;
  await kube.http.request("DELETE", `/apis/slotmap.dev/v1alpha1/slotmaps/${name}`);
  return { bytes: after - before, ownedObjects, syncMs };
}

function countSlots(ranges: readonly SlotRange[]): number {
  return ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
}

function complement(ranges: readonly SlotRange[]): SlotRange[] {
  const out: SlotRange[] = [];
  let next = 0;
  for (const r of ranges) {
    if (r.start > next) out.push({ start: next, end: r.start - 1 });
    next = r.end + 1;
  }
  if (next < SLOT_COUNT) out.push({ start: next, end: SLOT_COUNT - 1 });
  return out;
}

async function createSecrets(kube: Kube, names: readonly string[]): Promise<void> {
  await runPool(names, 32, async (name) => {
    await kube.http.request("POST", `/api/v1/namespaces/${NS}/secrets`, {
      body: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name },
        data: {
          username: Buffer.from(`user-${name}`).toString("base64"),
          password: Buffer.from(name.repeat(3)).toString("base64"),
        },
      },
    });
  });
}

async function run(opts: RunOptions): Promise<Row[]> {
  const n = opts.quick ? 2_000 : 10_000;
  const runDir = mkdtempSync(join(tmpdir(), "slotmap-shard-memory-"));
  const cp = await startControlPlane({ controllers: false, logFile: join(runDir, "controlplane.log") });
  const kube = connectKube(cp.kubeconfig, 32);
  try {
    installCrds(cp);
    for (const ns of [NS, LEASE_NS]) {
      await kube.http.request("POST", "/api/v1/namespaces", { body: { metadata: { name: ns } } });
    }
    // The shard owns the first third of the table; Secrets are chosen in or out of it.
    const third: SlotRange[] = [{ start: 0, end: Math.floor(SLOT_COUNT / 3) - 1 }];
    const owned: string[] = [];
    const foreign: string[] = [];
    for (let i = 0; owned.length < n || foreign.length < n; i++) {
      const name = `secret-${String(i).padStart(6, "0")}`;
      const list = keySlot(`/Secret/${NS}/${name}`) <= third[0]!.end ? owned : foreign;
      if (list.length < n) list.push(name);
    }

    // Each figure: the median of a few runs (heap deltas move by a few hundred KiB run to run).
    const reps = opts.quick ? 1 : 3;
    let run = 0;
    const measure = async (expectedOwned: number): Promise<Measured> => {
      const runs: Measured[] = [];
      for (let i = 0; i < reps; i++)
        runs.push(await measureShard(kube, `mem-${++run}`, third, expectedOwned));
      runs.sort((a, b) => a.bytes - b.bytes);
      return runs[Math.floor(runs.length / 2)]!;
    };
    // Lets the sockets and buffers of the bulk creation go before measuring.
    const settle = async () => {
      await sleep(opts.quick ? 2_000 : 10_000);
      await heapAfterGc();
    };

    opts.log("warm-up (one-time costs: compiled code, connection pools)");
    await measureShard(kube, "mem-warmup", third, 0);
    opts.log("fixed cost: no Secrets");
    const fixed = await measure(0);
    opts.log(`${n} Secrets in other shards' slots`);
    await createSecrets(kube, foreign);
    await settle();
    const withForeign = await measure(0);
    opts.log(`and ${n} Secrets in the shard's own slots`);
    await createSecrets(kube, owned);
    await settle();
    const withOwned = await measure(n);

    const perForeign = (withForeign.bytes - fixed.bytes) / n;
    const perOwned = (withOwned.bytes - withForeign.bytes) / n;
    return [
      {
        metric: "fixed heap of a synced shard (no objects)",
        unit: "KiB",
        median: fixed.bytes / 1024,
        note: "member + runtime + watches, after a warm-up run",
      },
      {
        metric: "heap per owned object",
        unit: "B",
        median: perOwned,
        note: `${n} Secrets with ~100 B of data each (cached without managedFields)`,
      },
      {
        metric: "heap per object of other shards' slots",
        unit: "B",
        median: perForeign,
        target: 64,
        note: `${n} Secrets streamed by list+watch and dropped`,
      },
      {
        metric: "time to sync a shard (list + no-op reconciles)",
        unit: "ms",
        median: withOwned.syncMs,
        note: `${2 * n} Secrets listed, ${n} owned`,
      },
    ];
  } finally {
    await kube.close();
    await cp.stop();
  }
}

const scenario: Scenario = {
  name: "shard-memory",
  description: "heap bytes a shard keeps per owned object and per object of other shards",
  heavy: true,
  run,
};

export default scenario;
