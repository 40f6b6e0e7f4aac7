/**
 * Core scenario: the per-object hot path (hashing a key, checking ownership of a cached slot), the
 * planner on join / leave / reweight at 10, 100 and 1000 shards, the coordinator's decision step at
 * 100 and 1000 shards (settled, Leases renewing), and the size of the SlotMap status
 * the coordinator writes at 1000 shards, balanced and after churn.
 */
import { Buffer } from "node:buffer";
import { LIMITS, parseSlotMapStatus } from "../../src/api/index.js";
import {
  type CoreMemory,
  type ObservedLease,
  type StepInput,
  step,
} from "../../src/coordinator/core/index.js";
import {
  emptyTable,
  keySlot,
  NO_OWNER,
  ownershipMask,
  type PlanPolicy,
  type PlanResult,
  parseSlotRanges,
  plan,
  type ShardInfo,
  type SlotTable,
  tableToStatus,
  xxh64,
  xxh64Bytes,
} from "../../src/slots/index.js";
import { type Body, measure, prng, type Row, type RunOptions, type Scenario } from "../lib.js";

const POLICY: PlanPolicy = { maxMigratingSlots: 16384 };
const POOL = 4096; // power of two: `i & MASK` cycles through inputs without a modulo
const MASK = POOL - 1;

// --- inputs --------------------------------------------------------------------------------------

/** Realistic `group/kind/namespace/name` keys of 40–60 UTF-8 bytes (ASCII, as Kubernetes names are). */
function makeKeys(count: number, seed: number): string[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const groups = ["", "apps", "batch", "networking.k8s.io", "example.com"];
  const kinds = ["ConfigMap", "Secret", "Deployment", "Job", "Ingress", "Widget"];
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-";
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = 40 + Math.floor(rand() * 21);
    const prefix = `${pick(groups)}/${pick(kinds)}/team-${Math.floor(rand() * 1e4)}/`;
    let name = "a";
    while (prefix.length + name.length < len - 1) name += alphabet[Math.floor(rand() * alphabet.length)];
    keys.push(`${prefix}${name}z`);
  }
  for (const k of keys) {
    const n = Buffer.byteLength(k);
    if (n < 40 || n > 60) throw new Error(`bench key of ${n} bytes: ${k}`);
  }
  return keys;
}

const shardName = (i: number): string => `checksums-${i}`;
const readyShard = (name: string): ShardInfo => ({ name, state: "Ready", weight: 1, ackedGeneration: 0 });

/**
 * Runs the handoff protocol to quiescence: plan, every live shard acks the new generation, plan
 * again, until nothing changes. Dead shards are dropped afterwards (their Leases are deleted).
 */
function settle(
  table: SlotTable,
  shards: ShardInfo[],
): { table: SlotTable; shards: ShardInfo[]; steps: number } {
  let steps = 0;
  let last: PlanResult | undefined;
  for (;;) {
    last = plan(table, shards, POLICY);
    if (!last.changed) break;
    table = last.table;
    const g = table.generation;
    shards = shards.map((s) => (s.state === "Dead" ? s : { ...s, ackedGeneration: g }));
    if (++steps > 100) throw new Error("planner did not settle in 100 steps");
  }
  if (!last.balanced) throw new Error(`planner settled unbalanced after ${steps} steps`);
  return { table, shards: shards.filter((s) => s.state !== "Dead"), steps };
}

function balanced(n: number): { table: SlotTable; shards: ShardInfo[] } {
  return settle(
    emptyTable(),
    Array.from({ length: n }, (_, i) => readyShard(shardName(i))),
  );
}

// --- status as written to the API --------------------------------------------------------------

/**
 * Lease holder identity of a shard process: client-go style `<pod>_<uuid>` ("uuid"), a shorter
 * `<pod>_<8 hex>` ("short"), or none. The client library has not fixed its format yet.
 */
type HolderStyle = "uuid" | "short" | "none";

function holderIdentity(name: string, style: HolderStyle, rand: () => number): string | undefined {
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join("");
  if (style === "none") return undefined;
  if (style === "short") return `${name}_${hex(8)}`;
  return `${name}_${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
}

interface StatusSize {
  bytes: number;
  holderBytes: number;
  ranges: number;
  maxRanges: number;
  maxSlotsLength: number;
}

/**
 * The full `status` the coordinator writes: tableToStatus plus the per-shard state, acked
 * generation and holder, the summary counts and the three conditions; validated by the zod schema
 * so the measured document is one the API server would accept.
 */
function statusSize(
  table: SlotTable,
  shards: readonly ShardInfo[],
  seed: number,
  holders: HolderStyle = "uuid",
): StatusSize {
  const rand = prng(seed);
  const info = new Map(shards.map((s) => [s.name, s]));
  const wire = tableToStatus(table);
  let migrating = 0;
  for (const m of table.migrations) for (const r of m.slots) migrating += r.end - r.start + 1;
  const now = "2025-06-01T12:00:00Z";
  const status = {
    observedGeneration: 3,
    assignmentGeneration: wire.assignmentGeneration,
    shards: wire.shards.map((e) => {
      const s = info.get(e.name);
      return {
        name: e.name,
        state: s?.state ?? "Dead",
        slots: e.slots,
        observedGeneration: s?.ackedGeneration ?? 0,
        holderIdentity: holderIdentity(e.name, holders, rand),
      };
    }),
    migrations: wire.migrations,
    unassignedSlots: wire.unassignedSlots,
    shardCount: wire.shards.length,
    readyShards: shards.filter((s) => s.state === "Ready").length,
    migratingSlots: migrating,
    conditions: [
      { type: "Ready", status: "True", reason: "ShardsReady", message: "every slot has a Ready owner" },
      {
        type: "Balanced",
        status: migrating === 0 ? "True" : "False",
        reason: migrating === 0 ? "Balanced" : "Migrating",
        message: `${migrating} slots migrating`,
      },
      {
        type: "Progressing",
        status: migrating === 0 ? "False" : "True",
        reason: migrating === 0 ? "Idle" : "HandoffInProgress",
        message: "",
      },
    ].map((c) => ({ ...c, observedGeneration: 3, lastTransitionTime: now })),
  };
  const parsed = parseSlotMapStatus(status);
  if (!parsed.ok) throw new Error(`bench status is invalid: ${JSON.stringify(parsed.errors.slice(0, 3))}`);
  const perShard = status.shards.map((s) => parseSlotRanges(s.slots).length);
  return {
    bytes: Buffer.byteLength(JSON.stringify(status)),
    // `,"holderIdentity":"…"` is the value plus 20 bytes.
    holderBytes: status.shards.reduce(
      (acc, s) => acc + (s.holderIdentity === undefined ? 0 : Buffer.byteLength(s.holderIdentity) + 20),
      0,
    ),
    ranges: perShard.reduce((a, b) => a + b, 0),
    maxRanges: Math.max(...perShard),
    maxSlotsLength: Math.max(...status.shards.map((s) => s.slots.length)),
  };
}

// --- sections ------------------------------------------------------------------------------------

function hashRows(opts: RunOptions): Row[] {
  const keys = makeKeys(POOL, 1);
  const bytes = keys.map((k) => new TextEncoder().encode(k));
  const avg = bytes.reduce((a, b) => a + b.length, 0) / bytes.length;
  // Each body is its own literal (see Body); they are measured interleaved.
  const bodies: Record<"slotLoop" | "h64Loop" | "rawLoop", Body> = {
    slotLoop: (ops) => {
      let acc = 0;
      for (let i = 0; i < ops; i++) acc += keySlot(keys[i & MASK]!);
      return acc;
    },
    h64Loop: (ops) => {
      let acc = 0;
      for (let i = 0; i < ops; i++) acc ^= Number(xxh64(keys[i & MASK]!) & 0xffn);
      return acc;
    },
    rawLoop: (ops) => {
      let acc = 0;
      for (let i = 0; i < ops; i++) acc ^= Number(xxh64Bytes(bytes[i & MASK]!) & 0xffn);
      return acc;
    },
  };
  opts.log("keySlot vs raw xxh64");
  const t = measure(bodies, { batches: opts.quick ? 40 : 200 });
  const raw = t.rawLoop.median;
  const note = `${POOL} keys, mean ${avg.toFixed(1)} B`;
  return [
    {
      metric: "keySlot(key), 40–60 B key",
      unit: "ns/op",
      median: t.slotLoop.median,
      p99: t.slotLoop.p99,
      target: 250,
      ratio: t.slotLoop.median / raw,
      baseline: "raw xxh64",
      note,
    },
    {
      metric: "xxh64(key) string→bigint, no slot",
      unit: "ns/op",
      median: t.h64Loop.median,
      p99: t.h64Loop.p99,
      ratio: t.h64Loop.median / raw,
      baseline: "raw xxh64",
      note: "h64(string): UTF-8 encodeInto wasm memory",
    },
    {
      metric: "raw xxh64 of pre-encoded bytes (baseline)",
      unit: "ns/op",
      median: raw,
      p99: t.rawLoop.p99,
      note: "h64Raw(Uint8Array): copy into wasm memory",
    },
  ];
}

/** What a shard consults per event: a mask swapped on every new SlotMap generation. */
class MaskView {
  private mask: Uint8Array;
  constructor(table: SlotTable, shard: string) {
    this.mask = ownershipMask(table, shard);
  }
  update(table: SlotTable, shard: string): void {
    this.mask = ownershipMask(table, shard);
  }
  owns(slot: number): boolean {
    return this.mask[slot] === 1;
  }
}

/** Alternative: compare the table's Uint16Array owner index with the shard's own index. */
class OwnerIndexView {
  private owner: Uint16Array;
  private self: number;
  constructor(table: SlotTable, shard: string) {
    this.owner = table.owner;
    this.self = table.shards.indexOf(shard);
  }
  owns(slot: number): boolean {
    const o = this.owner[slot]!;
    return o !== NO_OWNER && o === this.self;
  }
}

function ownershipRows(opts: RunOptions): Row[] {
  const { table } = balanced(10);
  const self = table.shards[3]!;
  const objects = makeKeys(POOL, 2).map((key) => ({ key, slot: keySlot(key) }));
  const slotCache = new Map(objects.map((o) => [o.key, o.slot]));
  const maskView = new MaskView(table, self);
  maskView.update(table, self); // the field is reassigned in real use: keep it a mutable field here too
  const indexView = new OwnerIndexView(table, self);
  const bodies: Record<"mask" | "index" | "map" | "loop", Body> = {
    mask: (ops) => {
      let n = 0;
      for (let i = 0; i < ops; i++) if (maskView.owns(objects[i & MASK]!.slot)) n++;
      return n;
    },
    index: (ops) => {
      let n = 0;
      for (let i = 0; i < ops; i++) if (indexView.owns(objects[i & MASK]!.slot)) n++;
      return n;
    },
    map: (ops) => {
      let n = 0;
      for (let i = 0; i < ops; i++) if (maskView.owns(slotCache.get(objects[i & MASK]!.key)!)) n++;
      return n;
    },
    loop: (ops) => {
      let n = 0;
      for (let i = 0; i < ops; i++) n += objects[i & MASK]!.slot & 1;
      return n;
    },
  };
  opts.log("ownership check");
  const t = measure(bodies, { batches: opts.quick ? 40 : 200 });
  const loop = t.loop.median;
  return [
    {
      metric: "owns(cached slot): Uint8Array mask",
      unit: "ns/op",
      median: t.mask.median,
      p99: t.mask.p99,
      target: 20,
      ratio: t.mask.median / loop,
      baseline: "loop only",
      note: "obj.slot → mask[slot] === 1 (ownershipMask), 10 shards",
    },
    {
      metric: "owns(cached slot): Uint16Array owner index",
      unit: "ns/op",
      median: t.index.median,
      p99: t.index.p99,
      target: 20,
      ratio: t.index.median / loop,
      baseline: "loop only",
      note: "table.owner[slot] === self",
    },
    {
      metric: "slot from Map<key, slot> + mask",
      unit: "ns/op",
      median: t.map.median,
      p99: t.map.p99,
      ratio: t.map.median / loop,
      baseline: "loop only",
      note: "if the slot is cached by key rather than on the object",
    },
    {
      metric: "loop only (read obj.slot)",
      unit: "ns/op",
      median: loop,
      p99: t.loop.p99,
      note: "iteration overhead included in the rows above",
    },
  ];
}

function plannerRows(opts: RunOptions): Row[] {
  const rows: Row[] = [];
  for (const n of [10, 100, 1000]) {
    const base = balanced(n);
    const mid = Math.floor(n / 2);
    const inputs = {
      noop: base.shards,
      join: [...base.shards, readyShard(shardName(n))],
      leave: base.shards.map((s, i) => (i === mid ? { ...s, state: "Dead" as const } : s)),
      reweight: base.shards.map((s, i) => (i === mid ? { ...s, weight: 2 } : s)),
    };
    const bodies: Record<keyof typeof inputs, Body> = {
      noop: () => (plan(base.table, inputs.noop, POLICY).changed ? 1 : 0),
      join: () => (plan(base.table, inputs.join, POLICY).changed ? 1 : 0),
      leave: () => (plan(base.table, inputs.leave, POLICY).changed ? 1 : 0),
      reweight: () => (plan(base.table, inputs.reweight, POLICY).changed ? 1 : 0),
    };
    opts.log(`planner at ${n} shards`);
    // minBatchNs 0: one plan() per batch, so median and p99 are per call.
    const t = measure(bodies, { batches: opts.quick ? 20 : 100, minBatchNs: 0, warmupNs: 2e8 });

    const describe = (shards: ShardInfo[]): string => {
      const r = plan(base.table, shards, POLICY);
      let migrating = 0;
      for (const m of r.started) for (const x of m.slots) migrating += x.end - x.start + 1;
      let direct = 0;
      for (const d of r.direct) for (const x of d.slots) direct += x.end - x.start + 1;
      const after = settle(base.table, shards);
      const moved = direct > 0 ? `${direct} slots assigned directly` : `${migrating} slots migrating`;
      return `${moved} in ${r.started.length + r.direct.length} moves; balanced after ${after.steps} step${after.steps === 1 ? "" : "s"}`;
    };
    const ms = (x: number) => x / 1e6;
    const row = (key: keyof typeof inputs, metric: string, note: string): Row => ({
      metric,
      unit: "ms",
      median: ms(t[key].median),
      p99: ms(t[key].p99),
      target: 10,
      note,
    });
    if (plan(base.table, inputs.noop, POLICY).changed) throw new Error("planner changed a balanced table");
    rows.push(
      row("noop", `plan() no-op, ${n} shards balanced`, "changed: false"),
      row("join", `plan() join ${n}→${n + 1}, first step`, describe(inputs.join)),
      row("leave", `plan() leave ${n}→${n - 1} (Dead), first step`, describe(inputs.leave)),
      row("reweight", `plan() reweight 1→2 at ${n}, first step`, describe(inputs.reweight)),
    );
  }
  return rows;
}

function sizeRows(opts: RunOptions): Row[] {
  const KiB = 1024;
  const n = 1000;
  const rows: Row[] = [];
  const sizeRow = (metric: string, s: StatusSize): Row => ({
    metric,
    unit: "KiB",
    median: s.bytes / KiB,
    target: 64,
    note:
      `${s.bytes} B; ${s.ranges} ranges, max ${s.maxRanges}/shard, longest slots ${s.maxSlotsLength} chars; ` +
      `holderIdentity ${(s.holderBytes / KiB).toFixed(1)} KiB`,
  });
  opts.log("status size");
  let { table, shards } = balanced(n);
  const wireBytes = Buffer.byteLength(JSON.stringify(tableToStatus(table)));
  rows.push(
    {
      metric: `tableToStatus only (name, slots), ${n} shards`,
      unit: "KiB",
      median: wireBytes / KiB,
      note: `${wireBytes} B: the slot table alone, without the per-shard fields the coordinator adds`,
    },
    sizeRow(`status, ${n} shards balanced, no holderIdentity`, statusSize(table, shards, 11, "none")),
    sizeRow(`status, ${n} shards balanced, holder <pod>_<8 hex>`, statusSize(table, shards, 11, "short")),
    sizeRow(`status, ${n} shards balanced, holder <pod>_<uuid>`, statusSize(table, shards, 11)),
  );

  const joining = [...shards, readyShard(shardName(n))];
  const inFlight = plan(table, joining, POLICY);
  rows.push(sizeRow(`status, ${n}→${n + 1} join in flight`, statusSize(inFlight.table, joining, 12)));

  // Churn: a random shard dies, then a new one joins; each settled before the next.
  const rand = prng(5);
  let next = n + 1;
  let longest = 0;
  for (let round = 1; round <= 50; round++) {
    const victim = Math.floor(rand() * shards.length);
    ({ table, shards } = settle(
      table,
      shards.map((s, i) => (i === victim ? { ...s, state: "Dead" as const } : s)),
    ));
    ({ table, shards } = settle(table, [...shards, readyShard(shardName(next++))]));
    const size = round === 10 || round === 50 ? statusSize(table, shards, 100 + round) : undefined;
    for (const e of tableToStatus(table).shards) longest = Math.max(longest, e.slots.length);
    if (size !== undefined) {
      rows.push(sizeRow(`status, ${n} shards after ${round} leaves + ${round} joins`, size));
    }
  }
  rows.push({
    metric: "longest shards[].slots over 50 churn rounds",
    unit: "chars",
    median: longest,
    target: LIMITS.shardSlotsLength,
    note: "settled tables; LIMITS.shardSlotsLength: the API server rejects a longer string",
  });
  return rows;
}

// --- the coordinator's step -----------------------------------------------------------------------

/**
 * A coordinator at `n` shards after its table settled: every Lease held and acking the status, the
 * memory of the previous steps. `next()` advances the clock by 100 ms, renews `n / 100` Leases (each
 * one every 10 s: what a 15 s lease with a 2 s retry period looks like to a watch) and runs one
 * step, which changes nothing. Renewed Leases are new objects, as an informer hands them.
 */
function steadyCoordinator(n: number): { next: () => number; writes: () => number } {
  const wall0 = Date.parse("2030-01-01T00:00:00Z");
  let rv = 1000;
  let now = 1000;
  const slotMap: { metadata: Record<string, unknown>; spec: unknown; status?: unknown } = {
    metadata: { name: "bench", uid: "uid-1", generation: 1, resourceVersion: String(++rv) },
    spec: { leaseNamespace: "ns", resources: [{ resource: "secrets" }] },
  };
  let acked = 0;
  const lease = (i: number): ObservedLease => {
    const t = new Date(wall0 + now).toISOString().replace("Z", `${String(rv % 1000).padStart(3, "0")}Z`);
    return {
      metadata: {
        name: shardName(i),
        namespace: "ns",
        uid: `lease-${i}`,
        resourceVersion: String(++rv),
        labels: { "slotmap.dev/slotmap": "bench" },
        annotations: { "slotmap.dev/observed-generation": String(acked), "slotmap.dev/slotmap-uid": "uid-1" },
      },
      spec: { holderIdentity: `${shardName(i)}-p`, leaseDurationSeconds: 15, renewTime: t, acquireTime: t },
    } as ObservedLease;
  };
  const leases = Array.from({ length: n }, (_, i) => lease(i));
  let memory: CoreMemory | undefined;
  let writes = 0;
  let turn = 0;
  const once = (): number => {
    const input = {
      slotMap,
      leases,
      now,
      wallTime: new Date(wall0 + now).toISOString(),
      config: { identity: "bench" },
    } as unknown as StepInput;
    const r = step(memory, input);
    memory = r.memory;
    for (const a of r.actions) {
      if (a.type !== "updateStatus") continue;
      writes++;
      slotMap.status = a.status;
      slotMap.metadata = { ...slotMap.metadata, resourceVersion: String(++rv) };
      acked = a.status.assignmentGeneration;
      for (let i = 0; i < n; i++) leases[i] = lease(i);
    }
    return r.actions.length;
  };
  const tick = (): number => {
    now += 100;
    for (let k = 0; k < n / 100; k++) {
      const i = turn++ % n;
      leases[i] = lease(i);
    }
    return once();
  };
  // Settle: the first steps assign the table and see every Lease renew once.
  for (let i = 0; i < 300; i++) tick();
  writes = 0;
  return { next: tick, writes: () => writes };
}

function stepRows(opts: RunOptions): Row[] {
  const rows: Row[] = [];
  for (const n of [100, 1000]) {
    const c = steadyCoordinator(n);
    opts.log(`coordinator step at ${n} shards`);
    // minBatchNs 0: one step per batch, so median and p99 are per call.
    const t = measure(
      { step: () => c.next() },
      { batches: opts.quick ? 20 : 100, minBatchNs: 0, warmupNs: 2e8 },
    );
    if (c.writes() > 0) throw new Error(`a steady coordinator at ${n} shards wrote its status`);
    rows.push({
      metric: `coordinator step(), ${n} shards settled, 1 % of Leases renewed per step`,
      unit: "ms",
      median: t.step.median / 1e6,
      p99: t.step.p99 / 1e6,
      note: "no status write; the driver steps once per batch of Lease events",
    });
  }
  return rows;
}

const scenario: Scenario = {
  name: "core",
  description:
    "keySlot, ownership check, planner at 10/100/1000 shards, the coordinator's step at 100/1000 shards, status size at 1000 shards",
  run(opts) {
    return [
      ...hashRows(opts),
      ...ownershipRows(opts),
      ...plannerRows(opts),
      ...stepRows(opts),
      ...sizeRows(opts),
    ];
  },
};

export default scenario;
