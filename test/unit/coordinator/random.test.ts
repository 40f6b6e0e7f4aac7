/**
 * Random histories of shards joining, renewing, stopping, releasing, re-acquiring, acking and
 * changing weight, of Leases cleared or taken by hand, of statuses restored from a backup, with time
 * passing and leaders changing. The World checks every status write (schema, table consistency,
 * handoff safety, no slot run by two live processes); here we also check that the coordinator
 * converges.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TAKEOVER_HOLDER } from "../../../src/coordinator/core/index.js";
import { SLOT_COUNT } from "../../../src/slots/index.js";
import { actionsOf, World } from "./world.js";

const NAMES = ["s0", "s1", "s2", "s3"] as const;

type Op =
  | { kind: "join" | "release" | "reacquire" | "ack" | "stop" | "resume" | "clear" | "steal"; shard: number }
  | { kind: "restore"; back: number }
  | { kind: "weight"; shard: number; weight: 0 | 1 | 2 }
  | { kind: "advance"; ms: number }
  | { kind: "newLeader" | "ackAll" };

const shard = fc.integer({ min: 0, max: NAMES.length - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constantFrom("join", "ack"), shard }), weight: 4 },
  {
    arbitrary: fc.record({ kind: fc.constantFrom("release", "reacquire", "stop", "resume"), shard }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("weight"), shard, weight: fc.constantFrom(0, 1, 2) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("advance"), ms: fc.constantFrom(500, 3_000, 10_000, 31_000) }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constantFrom("newLeader", "ackAll") }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constantFrom("clear", "steal"), shard }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("restore"), back: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
) as fc.Arbitrary<Op>;

function live(w: World, name: string): boolean {
  const h = w.leases.get(name)?.spec.holderIdentity;
  return h !== undefined && h !== null && h !== "" && h !== TAKEOVER_HOLDER;
}

describe("random histories", () => {
  // Each step plans a 16384-slot table; on a shared 2-core machine this takes seconds, not a budget.
  it("stay safe and converge to a balanced table once every live shard renews and acks", {
    timeout: 300_000,
  }, () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 20 }), (ops) => {
        const w = new World();
        const stopped = new Set<string>();
        let incarnation = 0;
        for (const o of ops) {
          const name = "shard" in o ? NAMES[o.shard]! : "";
          switch (o.kind) {
            case "join":
              if (!w.leases.has(name)) w.join(name, `${name}-${++incarnation}`);
              stopped.delete(name);
              break;
            case "release":
              if (live(w, name)) w.release(name);
              break;
            case "reacquire":
              // A new process acquires only a free Lease (released or taken over).
              if (w.leases.has(name) && !live(w, name)) w.reacquire(name, `${name}-${++incarnation}`);
              stopped.delete(name);
              break;
            case "ack":
              if (live(w, name) && !stopped.has(name)) w.ack(name);
              break;
            case "stop":
              stopped.add(name);
              break;
            case "resume":
              stopped.delete(name);
              break;
            case "weight":
              if (live(w, name)) w.weight(name, String(o.weight));
              break;
            case "advance":
              w.advance(o.ms);
              for (const n of NAMES) if (live(w, n) && !stopped.has(n)) w.renew(n);
              break;
            case "ackAll":
              for (const n of NAMES) if (live(w, n) && !stopped.has(n)) w.ack(n);
              break;
            case "newLeader":
              w.memory = undefined;
              break;
            case "clear":
              // Someone clears the holder by hand: the process may still run, and cannot renew.
              if (live(w, name)) w.clearHolder(name);
              stopped.delete(name);
              break;
            case "steal":
              // A standby (or a hand edit) takes a live Lease: the old process cannot renew any more.
              if (live(w, name)) w.reacquire(name, `${name}-${++incarnation}`);
              stopped.delete(name);
              break;
            case "restore": {
              // The status is restored from a backup: an older status written back.
              const old = w.statusWrites.at(-1 - o.back);
              if (old !== undefined) w.writeStatusRaw(structuredClone(old));
              break;
            }
          }
          w.step();
        }
        // Heal: stopped shards resume (or were taken over), everybody acks, time passes.
        for (let i = 0; i < 30; i++) {
          w.advance(1_000);
          for (const n of NAMES) if (live(w, n)) w.renew(n);
          w.ackAll();
          w.step();
        }
        const r = w.step();
        expect(r.actions).toEqual([]);
        const status = w.status();
        const ready = status.shards.filter((s) => (s.state ?? "Ready") === "Ready");
        expect(ready.map((s) => s.name)).toEqual(NAMES.filter((n) => live(w, n)));
        expect(status.migrations).toEqual([]);
        const weighted = ready.filter(
          (s) => w.lease(s.name).metadata.annotations["slotmap.dev/weight"] !== "0",
        );
        if (weighted.length > 0) {
          expect(status.unassignedSlots).toBe("");
          expect(status.conditions.find((c) => c.type === "Balanced")?.status).toBe("True");
        } else {
          expect(actionsOf(r, "updateStatus")).toEqual([]);
          expect(Object.values(w.counts()).reduce((a, b) => a + b, 0)).toBeLessThan(SLOT_COUNT + 1);
        }
      }),
      { numRuns: 20 },
    );
  });
});
