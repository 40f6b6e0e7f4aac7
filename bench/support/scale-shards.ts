/**
 * Emulated shards for the scale benchmark: hand-made Leases, renewed and acked the way a real
 * shard does it (src/client/core/shard-machine.ts, src/client/membership.ts), for hundreds of
 * shards in one process.
 *
 * Each shard acks from its own projection (`SlotMapShard`, src/api/projection.ts), as a real shard
 * does since per-shard projections: the ack it writes into its Lease is the projection's
 * `spec.assignmentGeneration` for `spec.slotMapUid`. A projection is rewritten only when what its
 * shard reads changed, so a shard a change does not involve has nothing new to ack. The fleet
 * reads every projection through one shared watch of the namespace's SlotMapShards (one event per
 * write, dispatched to the shard it is for); the per-shard watches whose traffic is measured are
 * the watcher process's (bench/support/scale-watchers.ts). Acks are as prompt as the real shard's:
 * at once (a bounded number of writes in flight) when the coordinator waits for it, that is when
 * the projection took slots granted to it or is a drain barrier; otherwise with the next renewal.
 * A new Lease is created without an ack and renewed 250 ms later. Leases are renewed every
 * `renewEveryMs`, spread over the period. Each Lease has at most one write in flight; a write that
 * arrives while one is in flight is coalesced into the next. What the real shard does beyond that
 * (draining reconciles before acking, watching its objects) is left out: the benchmark measures
 * the control plane's side of the protocol.
 *
 * The fleet also keeps one watch of the whole SlotMap: the harness's view of the table (settled
 * or not, the status written), not a shard's. It decides no ack.
 */
import { randomBytes } from "node:crypto";
import { PROJECTION_PLURAL, type ProjectionSpec, parseProjectionSpec } from "../../src/api/projection.js";
import { fillMask, releases } from "../../src/client/core/ownership.js";
import { isStatus, type KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { Reflector } from "../../src/kube/reflector.js";
import { parseSlotRanges } from "../../src/slots/ranges.js";
import { SLOT_COUNT } from "../../src/slots/types.js";
import { prng } from "../lib.js";
import { nowMs } from "./ipc.js";
import { runPool } from "./kube.js";
import {
  type AckRecord,
  holderIdentity,
  jsonBytes,
  type LeaseObject,
  newLease,
  projectionLag,
  projectionName,
  releasedLease,
  renewedLease,
  type ScaleStatus,
} from "./scale-model.js";

/** Options of a {@link ShardFleet}. */
export interface FleetOptions {
  readonly http: KubeHttp;
  readonly namespace: string;
  readonly slotMap: string;
  readonly leaseDurationSeconds: number;
  readonly renewEveryMs: number;
  /** Lease writes in flight at most (acks and renewals together). */
  readonly concurrency: number;
  readonly log: (message: string) => void;
}

interface Member {
  readonly name: string;
  readonly holder: string;
  lease: LeaseObject;
  /** Highest generation written into the Lease, and for which SlotMap uid. */
  acked: number;
  ackedUid: string | undefined;
  /** The shard's projection as last seen (undefined: none seen yet). */
  projection: ProjectionSpec | undefined;
  projectionResourceVersion: string | undefined;
  /** Slots the newest projection grants to this Lease's holder. */
  granted: Uint8Array;
  /** The coordinator waits for this Lease's ack of its projection: write it at once. */
  urgent: boolean;
  nextRenewAt: number;
  queued: boolean;
  inFlight: boolean;
  released: boolean;
}

/** Counters of the fleet's own writes (the API server's counts are the reference). */
export interface FleetStats {
  acks: number;
  renewals: number;
  conflicts: number;
  errors: number;
  /** Projections ignored: invalid, for another SlotMap or shard, or gone down (restored). */
  projectionsIgnored: number;
}

/** A projection write as the fleet's watch saw it. */
export interface SeenProjection {
  readonly t: number;
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly shard: string;
  readonly generation: number;
  /** JSON bytes of the object (metadata with managedFields, spec). */
  readonly bytes: number;
}

/** A SlotMap status as the fleet's watch saw it, with the whole object's JSON size. */
export interface SeenStatus {
  readonly t: number;
  readonly status: ScaleStatus;
  readonly object: KubeObject;
}

const LEASES = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
const PROJECTIONS = (ns: string) => `/apis/slotmap.dev/v1alpha1/namespaces/${ns}/${PROJECTION_PLURAL}`;

/** Hundreds of emulated shards (their Leases), the projection watch that drives their acks, and the harness's SlotMap watch. */
export class ShardFleet {
  readonly stats: FleetStats = { acks: 0, renewals: 0, conflicts: 0, errors: 0, projectionsIgnored: 0 };
  /** Every SlotMap status seen, in order (the harness trims it per window). */
  readonly seen: SeenStatus[] = [];
  /** Every projection write seen, in order (the harness trims it per window). */
  readonly projectionLog: SeenProjection[] = [];
  /** Every ack written, in order of the answers (the harness trims it per window). */
  readonly ackLog: AckRecord[] = [];
  private readonly members = new Map<string, Member>();
  private readonly queue: Member[] = [];
  private active = 0;
  private readonly salt = randomBytes(4).toString("hex");
  private readonly random = prng(17);
  /** metadata.uid of the SlotMap (the harness's watch). */
  private uid: string | undefined;
  private reflector: Reflector<KubeObject> | undefined;
  private projections: Reflector<KubeObject> | undefined;
  /** Projections seen before their Lease's POST answered (a new Lease's can come that fast). */
  private readonly pendingProjections = new Map<
    string,
    { spec: ProjectionSpec; resourceVersion: string | undefined }
  >();
  /** Projection JSON bytes by shard, for the settled mean. */
  private readonly projectionBytes = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: FleetOptions) {}

  /** The SlotMap status last seen, if any. */
  get status(): ScaleStatus | undefined {
    return this.seen[this.seen.length - 1]?.status;
  }

  get latest(): SeenStatus | undefined {
    return this.seen[this.seen.length - 1];
  }

  /** Names of the shards whose Leases are held (not released). */
  liveNames(): string[] {
    return [...this.members.values()].filter((m) => !m.released).map((m) => m.name);
  }

  /** A resourceVersion the projection watch has seen (to open more watches from). */
  get projectionResourceVersion(): string | undefined {
    return this.projections?.lastResourceVersion;
  }

  /** Starts the projection and SlotMap watches and the renewal timer. */
  async start(): Promise<void> {
    this.projections = new Reflector<KubeObject>({
      http: this.o.http,
      path: PROJECTIONS(this.o.namespace),
      handler: {
        onEvent: (type, obj, listed) => this.onProjection(type, obj, listed),
        onError: (err) => this.o.log(`fleet: SlotMapShard watch error: ${String(err)}`),
      },
    });
    await this.projections.start();
    this.reflector = new Reflector<KubeObject>({
      http: this.o.http,
      path: "/apis/slotmap.dev/v1alpha1/slotmaps",
      fieldSelector: `metadata.name=${this.o.slotMap}`,
      handler: {
        onEvent: (type, obj) => {
          if (type !== "DELETED") this.onSlotMap(obj);
        },
        onError: (err) => this.o.log(`fleet: SlotMap watch error: ${String(err)}`),
      },
    });
    await this.reflector.start();
    // Renewals: a scan every 250 ms; each member is due renewEveryMs after its last write.
    this.timer = setInterval(() => this.renewDue(), 250);
  }

  /** Creates and holds the Leases of `names` (POST, `concurrency` at a time). */
  async add(names: readonly string[]): Promise<void> {
    await runPool(names, this.o.concurrency, async (name) => {
      const holder = holderIdentity(name, this.salt);
      const body = newLease({
        name,
        namespace: this.o.namespace,
        slotMap: this.o.slotMap,
        holder,
        leaseDurationSeconds: this.o.leaseDurationSeconds,
        nowMs: Date.now(),
      });
      const lease = await this.o.http.request<LeaseObject>("POST", LEASES(this.o.namespace), { body });
      const member: Member = {
        name,
        holder,
        lease,
        acked: 0,
        ackedUid: undefined,
        projection: undefined,
        projectionResourceVersion: undefined,
        granted: new Uint8Array(SLOT_COUNT),
        urgent: false,
        // The first renewal 250 ms after the create (the shard's firstRenewAfterMs); a fleet being
        // set up spreads them over the period instead, so they do not come in waves.
        nextRenewAt: nowMs() + (this.uid === undefined ? this.random() * this.o.renewEveryMs : 250),
        queued: false,
        inFlight: false,
        released: false,
      };
      this.members.set(name, member);
      const early = this.pendingProjections.get(name);
      this.pendingProjections.delete(name);
      if (early !== undefined) this.apply(member, early.spec, early.resourceVersion);
    });
  }

  /**
   * Releases `name` gracefully: holderIdentity cleared and the release marker set, after any
   * write in flight; the member then stops renewing and acking.
   */
  async release(name: string): Promise<number> {
    const m = this.members.get(name);
    if (m === undefined || m.released) throw new Error(`fleet: no held Lease ${name}`);
    m.released = true;
    while (m.inFlight) await new Promise((r) => setTimeout(r, 5));
    const t = nowMs();
    m.lease = await this.o.http.request<LeaseObject>("PUT", `${LEASES(this.o.namespace)}/${name}`, {
      body: releasedLease(m.lease, Date.now()),
    });
    return t;
  }

  /**
   * Held Leases not done with the latest status: their projection does not yet say what the status
   * says (the coordinator writes projections after the status), or their Lease does not ack it yet
   * (renewals may still be queued: at a thousand shards some always are). Empty: all done.
   */
  lagging(): string[] {
    const live = [...this.members.values()].filter((m) => !m.released);
    const stale = new Set(
      projectionLag(
        this.status,
        { name: this.o.slotMap, uid: this.uid },
        live.map((m) => ({ name: m.name, projection: m.projection })),
      ),
    );
    return live
      .filter(
        (m) =>
          stale.has(m.name) || m.ackedUid !== this.uid || m.acked < (m.projection?.assignmentGeneration ?? 0),
      )
      .map((m) => m.name);
  }

  /** Whether every held Lease has its projection of the latest status and acked it. */
  acksComplete(): boolean {
    return this.lagging().length === 0;
  }

  /** Mean JSON bytes of the projections that exist now. */
  projectionBytesMean(): number {
    const v = [...this.projectionBytes.values()];
    return v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.reflector?.stop();
    await this.projections?.stop();
    while (this.active > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private onSlotMap(obj: KubeObject): void {
    const status = (obj as { status?: ScaleStatus }).status;
    this.seen.push({ t: nowMs(), status: status ?? {}, object: obj });
    this.uid = obj.metadata?.uid ?? this.uid;
  }

  /**
   * One projection event (`listed`: from a (re)list, not a write): the shard it is for reads it as
   * a real shard reads its own.
   */
  private onProjection(type: "ADDED" | "MODIFIED" | "DELETED", obj: KubeObject, listed: boolean): void {
    const raw = (obj as { spec?: unknown }).spec;
    const parsed = parseProjectionSpec(raw);
    const shard = parsed.ok ? parsed.value.shard : String((raw as { shard?: unknown } | undefined)?.shard);
    const bytes = jsonBytes(obj);
    if (!listed)
      this.projectionLog.push({
        t: nowMs(),
        type,
        shard,
        generation: parsed.ok ? parsed.value.assignmentGeneration : Number.NaN,
        bytes,
      });
    if (type === "DELETED") {
      // A deleted projection carries no information: the shard keeps the table it applied.
      this.projectionBytes.delete(shard);
      return;
    }
    this.projectionBytes.set(shard, bytes);
    if (!parsed.ok) {
      this.stats.projectionsIgnored++;
      this.o.log(
        `fleet: invalid projection ${obj.metadata?.name}: ${JSON.stringify(parsed.errors).slice(0, 300)}`,
      );
      return;
    }
    const spec = parsed.value;
    if (spec.slotMap !== this.o.slotMap || obj.metadata?.name !== projectionName(spec.slotMap, spec.shard)) {
      this.stats.projectionsIgnored++;
      return;
    }
    const m = this.members.get(spec.shard);
    const rv = obj.metadata?.resourceVersion;
    if (m === undefined) {
      // Its Lease's POST has not answered yet.
      this.pendingProjections.set(spec.shard, { spec, resourceVersion: rv });
      return;
    }
    this.apply(m, spec, rv);
  }

  /** Member `m` reads its projection `spec` (at `rv`). */
  private apply(m: Member, spec: ProjectionSpec, rv: string | undefined): void {
    if (m.released) return;
    if (rv !== undefined && rv === m.projectionResourceVersion) return; // a re-list
    const prev = m.projection;
    if (
      prev !== undefined &&
      prev.slotMapUid === spec.slotMapUid &&
      spec.assignmentGeneration < prev.assignmentGeneration
    ) {
      // Gone down (restored from a backup): the real shard refuses it. Never expected here.
      this.stats.projectionsIgnored++;
      this.o.log(
        `fleet: ${m.name}: projection went down from generation ${prev.assignmentGeneration} to ${spec.assignmentGeneration}: ignored`,
      );
      return;
    }
    m.projection = spec;
    m.projectionResourceVersion = rv;
    // The coordinator waits for this ack when the projection took slots granted to this holder,
    // or is a drain barrier; otherwise it rides on the next renewal.
    const next = new Uint8Array(SLOT_COUNT);
    const e = spec.entry;
    const granted = e !== undefined && e.holderIdentity === m.holder;
    fillMask(next, granted ? parseSlotRanges(e.slots, `projection ${m.name}: entry.slots`) : []);
    if (releases(m.granted, next) || spec.drainBarrier) m.urgent = true;
    m.granted.set(next);
    if (m.urgent) this.enqueue(m);
  }

  private renewDue(): void {
    const now = nowMs();
    for (const m of this.members.values()) if (!m.released && m.nextRenewAt <= now) this.enqueue(m);
  }

  private enqueue(m: Member): void {
    if (m.queued || this.stopped) return;
    m.queued = true;
    this.queue.push(m);
    this.pump();
  }

  private pump(): void {
    while (this.active < this.o.concurrency && this.queue.length > 0) {
      const m = this.queue.shift()!;
      m.queued = false;
      if (m.inFlight || m.released) continue;
      this.active++;
      m.inFlight = true;
      void this.write(m).finally(() => {
        m.inFlight = false;
        this.active--;
        // A projection the coordinator waits for arrived while this write was in flight.
        if (!m.released && m.urgent && ackOf(m) !== undefined) this.enqueue(m);
        this.pump();
      });
    }
  }

  /** One renewal, with the ack of the member's projection when it is newer than the Lease's. */
  private async write(m: Member): Promise<void> {
    const ack = ackOf(m);
    m.nextRenewAt = nowMs() + this.o.renewEveryMs;
    try {
      m.lease = await this.o.http.request<LeaseObject>("PUT", `${LEASES(this.o.namespace)}/${m.name}`, {
        body: renewedLease(m.lease, Date.now(), ack),
        timeoutMs: 30_000,
      });
      if (ack) {
        this.ackLog.push({ name: m.name, generation: ack.generation, t: nowMs() });
        m.acked = ack.generation;
        m.ackedUid = ack.uid;
        if (ackOf(m) === undefined) m.urgent = false;
        this.stats.acks++;
      } else {
        this.stats.renewals++;
      }
    } catch (err) {
      if (this.stopped) return;
      if (isStatus(err, 409)) {
        // Someone else wrote the Lease (the coordinator taking it over would be a finding).
        this.stats.conflicts++;
        m.lease = await this.o.http.request<LeaseObject>("GET", `${LEASES(this.o.namespace)}/${m.name}`);
        if (m.lease.spec.holderIdentity !== m.holder) {
          this.o.log(`fleet: ${m.name} is held by ${m.lease.spec.holderIdentity ?? "nobody"} now: dropped`);
          m.released = true;
        }
      } else {
        this.stats.errors++;
        this.o.log(`fleet: ${m.name}: ${String(err)}`);
      }
      m.nextRenewAt = nowMs() + 1000;
    }
  }
}

/** The ack a member's Lease should carry and does not yet: its projection's generation and uid. */
function ackOf(m: Member): { uid: string; generation: number } | undefined {
  const p = m.projection;
  if (p === undefined) return undefined;
  if (m.ackedUid === p.slotMapUid && m.acked >= p.assignmentGeneration) return undefined;
  return { uid: p.slotMapUid, generation: p.assignmentGeneration };
}
