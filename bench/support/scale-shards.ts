/**
 * Emulated shards for the scale benchmark: hand-made Leases, renewed and acked the way a real
 * shard does it (src/client/core/shard-machine.ts), for hundreds of shards in one process.
 *
 * One shared SlotMap watch decides the acks. Every held Lease acknowledges each new assignment
 * generation of the SlotMap instance it observes, in one PUT with a renewal, as a real shard does,
 * and as promptly as the real one: at once (the fleet in a shuffled order, a bounded number of
 * writes in flight) when the coordinator waits for it, that is when the generation took slots
 * granted to it or assigns nothing at all; otherwise with its next renewal. A new Lease is created
 * without an ack and renewed 250 ms later. Leases are renewed every `renewEveryMs`, spread over the
 * period. Each Lease has at most one write in flight; a write that arrives while one is in flight
 * is coalesced into the next. What the real shard does beyond that (draining reconciles before
 * acking, watching its objects) is left out: the benchmark measures the control plane's side of
 * the protocol.
 */
import { randomBytes } from "node:crypto";
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
  type LeaseObject,
  newLease,
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
  /** Highest generation written into the Lease for the current uid. */
  acked: number;
  ackedUid: string | undefined;
  /** Slots the newest status grants to this Lease's holder. */
  granted: Uint8Array;
  /** The coordinator waits for this Lease's ack of the newest generation: write it at once. */
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
}

/** A SlotMap status as the fleet's watch saw it, with the whole object's JSON size. */
export interface SeenStatus {
  readonly t: number;
  readonly status: ScaleStatus;
  readonly object: KubeObject;
}

const LEASES = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;

/** Hundreds of emulated shards (their Leases) and the SlotMap watch that drives their acks. */
export class ShardFleet {
  readonly stats: FleetStats = { acks: 0, renewals: 0, conflicts: 0, errors: 0 };
  /** Every SlotMap status seen, in order (the harness trims it per window). */
  readonly seen: SeenStatus[] = [];
  /** Every ack written, in order of the answers (the harness trims it per window). */
  readonly ackLog: AckRecord[] = [];
  private readonly members = new Map<string, Member>();
  private readonly queue: Member[] = [];
  private active = 0;
  private readonly salt = randomBytes(4).toString("hex");
  private readonly random = prng(17);
  private uid: string | undefined;
  private generation = 0;
  private reflector: Reflector<KubeObject> | undefined;
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

  /** Starts the SlotMap watch and the renewal timer. */
  async start(): Promise<void> {
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
   * Whether every held Lease acknowledged the latest generation (renewals may still be queued: at
   * a thousand shards some always are).
   */
  acksComplete(): boolean {
    for (const m of this.members.values()) {
      if (!m.released && (m.ackedUid !== this.uid || m.acked < this.generation)) return false;
    }
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.reflector?.stop();
    while (this.active > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private onSlotMap(obj: KubeObject): void {
    const status = (obj as { status?: ScaleStatus }).status;
    this.seen.push({ t: nowMs(), status: status ?? {}, object: obj });
    const uid = obj.metadata?.uid;
    const g = status?.assignmentGeneration ?? 0;
    if (uid === undefined || g <= 0) return;
    if (uid === this.uid && g <= this.generation) return;
    this.uid = uid;
    this.generation = g;
    // Who must ack at once: the Leases that lost granted slots, or all of them when the table
    // assigns nothing (a drain barrier). The others' acks ride on their next renewals.
    const entries = new Map((status?.shards ?? []).map((e) => [e.name, e]));
    const barrier = ![...entries.values()].some((e) => (e.slots ?? "") !== "");
    const next = new Uint8Array(SLOT_COUNT);
    for (const m of this.members.values()) {
      const e = entries.get(m.name);
      const granted = e !== undefined && e.holderIdentity === m.holder;
      fillMask(next, granted ? parseSlotRanges(e.slots ?? "", `status.shards[${m.name}].slots`) : []);
      if (releases(m.granted, next) || barrier) m.urgent = true;
      m.granted.set(next);
    }
    // The order is shuffled, as independent processes' writes would arrive.
    const todo = [...this.members.values()].filter((m) => !m.released && m.urgent);
    for (let i = todo.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [todo[i], todo[j]] = [todo[j]!, todo[i]!];
    }
    for (const m of todo) this.enqueue(m);
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
        // A new generation the coordinator waits for arrived while this write was in flight.
        if (
          !m.released &&
          m.urgent &&
          this.uid !== undefined &&
          (m.ackedUid !== this.uid || m.acked < this.generation)
        )
          this.enqueue(m);
        this.pump();
      });
    }
  }

  /** One renewal, with the ack of the latest generation when it is newer than the Lease's. */
  private async write(m: Member): Promise<void> {
    const uid = this.uid;
    const g = this.generation;
    const ack = uid !== undefined && (m.ackedUid !== uid || m.acked < g) ? { uid, generation: g } : undefined;
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
        if (ack.uid === this.uid && ack.generation >= this.generation) m.urgent = false;
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
