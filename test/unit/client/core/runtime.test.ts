import { describe, expect, it } from "vitest";
import { importingSlots, type RuntimePlace, ShardRuntime } from "../../../../src/client/core/runtime.js";

/** A test object: its id, the slot it lands in, its controller (controlled objects) and version. */
interface Obj {
  id: string;
  slot: number;
  owner?: string;
  rv: string;
  ns?: string;
}

const ROOTS = 0;
const CHILDREN = 1;

function harness(opts: { owned?: number[]; controlled?: boolean; cacheAllSlots?: boolean } = {}) {
  const owned = new Set(opts.owned ?? [1, 2, 3]);
  const hidden = new Set<string>(); // namespaces no longer selected
  const queue: string[] = [];
  const host = {
    owns: (slot: number) => owned.has(slot),
    place: (o: Obj): RuntimePlace | undefined =>
      o.slot < 0 ? undefined : { slot: o.slot, rootKey: o.owner ?? o.id },
    selected: (o: Obj) => !hidden.has(o.ns ?? ""),
    queue: {
      add: (k: string) => {
        if (!queue.includes(k)) queue.push(k);
      },
      remove: (k: string) => {
        const i = queue.indexOf(k);
        if (i >= 0) queue.splice(i, 1);
      },
    },
  };
  const watches =
    opts.controlled === false ? [{ controlled: false }] : [{ controlled: false }, { controlled: true }];
  const rt = new ShardRuntime<Obj>(host, watches, { cacheAllSlots: opts.cacheAllSlots });
  const list = (w: number, objs: Obj[]) => {
    rt.listStarted(w);
    for (const o of objs) rt.observe(w, "ADDED", o.id, o, o.rv, true);
    rt.listSynced(w);
  };
  const event = (w: number, type: "ADDED" | "MODIFIED" | "DELETED", o: Obj) =>
    rt.observe(w, type, o.id, o, o.rv, false);
  return { rt, owned, hidden, queue, list, event };
}

const root = (id: string, slot: number, rv = "10", ns?: string): Obj => ({
  id,
  slot,
  rv,
  ...(ns ? { ns } : {}),
});
const child = (id: string, owner: string, slot: number, rv = "10"): Obj => ({ id, owner, slot, rv });

describe("ShardRuntime", () => {
  it("caches objects of owned slots only and queues their roots", () => {
    const h = harness({ controlled: false });
    h.list(ROOTS, [root("a", 1), root("b", 9), root("c", 2)]);
    expect(h.queue).toEqual(["a", "c"]);
    expect(h.rt.sizes()).toMatchObject({ roots: 2 });
    expect(h.rt.work("b")).toBeUndefined();
  });

  it("holds the roots until the controlled watch has listed, then queues them with their objects cached", () => {
    const h = harness();
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    expect(h.queue).toEqual([]);
    expect(h.rt.sizes().held).toBe(2);
    h.list(CHILDREN, [child("a-1", "a", 1), child("b-1", "b", 2)]);
    expect(h.queue).toEqual(["a", "b"]);
    expect(h.rt.controlledOf("a")).toEqual([child("a-1", "a", 1)]);
    expect(h.rt.sizes().held).toBe(0);
  });

  it("a gained slot's roots wait for the controlled watch's gain list, not for other slots", () => {
    const h = harness({ owned: [1] });
    h.list(ROOTS, [root("a", 1)]);
    h.list(CHILDREN, [child("a-1", "a", 1)]);
    h.queue.length = 0;
    h.owned.add(2);
    h.rt.slotsGained([{ start: 2, end: 2 }]);
    const gr = h.rt.gainListStarted(ROOTS)!;
    expect(h.rt.gainListed(ROOTS, gr, "b", root("b", 2), "10")).toBe(true);
    expect(h.rt.gainListed(ROOTS, gr, "a", root("a", 1), "10")).toBe(false); // not a gained slot
    h.rt.gainListEnded(ROOTS, gr, true);
    expect(h.queue).toEqual([]); // b waits for its controlled objects
    h.event(CHILDREN, "MODIFIED", child("a-1", "a", 1, "11"));
    expect(h.queue).toEqual(["a"]); // slot 1 is warm
    const gc = h.rt.gainListStarted(CHILDREN)!;
    h.rt.gainListed(CHILDREN, gc, "b-1", child("b-1", "b", 2), "10");
    h.rt.gainListEnded(CHILDREN, gc, true);
    expect(h.queue).toEqual(["a", "b"]);
    expect(h.rt.controlledOf("b").map((o) => o.id)).toEqual(["b-1"]);
  });

  it("a failed gain list keeps the slots pending and the roots held", () => {
    const h = harness({ owned: [] });
    h.list(ROOTS, []);
    h.list(CHILDREN, []);
    h.owned.add(5);
    h.rt.slotsGained([{ start: 5, end: 5 }]);
    const gr = h.rt.gainListStarted(ROOTS)!;
    h.rt.gainListed(ROOTS, gr, "r", root("r", 5), "3");
    h.rt.gainListEnded(ROOTS, gr, true);
    const gc = h.rt.gainListStarted(CHILDREN)!;
    h.rt.gainListEnded(CHILDREN, gc, false);
    expect(h.rt.gainPending(CHILDREN)).toBe(true);
    expect(h.queue).toEqual([]);
    const again = h.rt.gainListStarted(CHILDREN)!;
    expect(again[5]).toBe(1);
    h.rt.gainListEnded(CHILDREN, again, true);
    expect(h.queue).toEqual(["r"]);
  });

  it("a slot gained again during a gain list stays cold until the next one", () => {
    const h = harness({ owned: [] });
    h.list(ROOTS, []);
    h.list(CHILDREN, []);
    h.owned.add(5);
    h.rt.slotsGained([{ start: 5, end: 5 }]);
    const gc = h.rt.gainListStarted(CHILDREN)!;
    // lost and gained again while the list runs
    h.rt.slotsGained([{ start: 5, end: 5 }]);
    h.rt.gainListEnded(CHILDREN, gc, true);
    const gr = h.rt.gainListStarted(ROOTS)!;
    h.rt.gainListed(ROOTS, gr, "r", root("r", 5), "3");
    h.rt.gainListEnded(ROOTS, gr, true);
    expect(h.queue).toEqual([]);
    const gc2 = h.rt.gainListStarted(CHILDREN)!;
    h.rt.gainListEnded(CHILDREN, gc2, true);
    expect(h.queue).toEqual(["r"]);
  });

  it("a gain list never overwrites what the watch delivered since, nor revives a deletion", () => {
    const h = harness({ owned: [], controlled: false });
    h.list(ROOTS, []);
    h.owned.add(4);
    h.rt.slotsGained([{ start: 4, end: 4 }]);
    const g = h.rt.gainListStarted(ROOTS)!;
    h.event(ROOTS, "ADDED", root("x", 4, "20"));
    h.event(ROOTS, "DELETED", root("y", 4, "21"));
    expect(h.rt.gainListed(ROOTS, g, "x", root("x", 4, "15"), "15")).toBe(false);
    expect(h.rt.gainListed(ROOTS, g, "y", root("y", 4, "18"), "18")).toBe(false);
    expect(h.rt.gainListed(ROOTS, g, "z", root("z", 4, "18"), "18")).toBe(true);
    h.rt.gainListEnded(ROOTS, g, true);
    expect(h.rt.root("x")?.rv).toBe("20");
    expect(h.rt.root("y")).toBeUndefined();
  });

  it("a re-list finds deletions missed while away (Replace semantics): tombstones for roots, owners requeued", () => {
    const h = harness();
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    h.list(CHILDREN, [child("a-1", "a", 1), child("b-1", "b", 2)]);
    h.queue.length = 0;
    h.list(ROOTS, [root("a", 1)]); // b vanished while the watch was down
    expect(h.queue).toEqual(["b"]);
    const w = h.rt.work("b")!;
    expect(w.object).toBeUndefined();
    h.list(CHILDREN, [child("b-1", "b", 2)]); // a-1 vanished
    expect(h.queue).toEqual(["b", "a"]);
    expect(h.rt.controlledOf("a")).toEqual([]);
    // A re-list of unchanged objects queues nothing.
    h.queue.length = 0;
    h.list(ROOTS, [root("a", 1)]);
    expect(h.queue).toEqual([]);
    // The tombstone ends with a settled reconcile, not with a requeued one.
    h.rt.finished(w, false);
    expect(h.rt.sizes().tombstones).toBe(1);
    h.rt.finished(w, true);
    expect(h.rt.sizes().tombstones).toBe(0);
  });

  it("a tombstone replaced by a re-created object is not ended by the old reconcile", () => {
    const h = harness({ controlled: false });
    h.list(ROOTS, [root("a", 1)]);
    h.event(ROOTS, "DELETED", root("a", 1, "11"));
    const w = h.rt.work("a")!;
    h.event(ROOTS, "ADDED", root("a", 1, "12"));
    h.event(ROOTS, "DELETED", root("a", 1, "13"));
    h.rt.finished(w, true);
    expect(h.rt.sizes().tombstones).toBe(1);
  });

  it("losing slots drops their objects, tombstones, held and queued keys", () => {
    const h = harness();
    h.list(CHILDREN, [child("a-1", "a", 1)]);
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    h.event(ROOTS, "DELETED", root("b", 2, "11"));
    expect(h.queue).toEqual(["a", "b"]);
    h.owned.clear();
    h.rt.slotsLost([{ start: 1, end: 3 }]);
    expect(h.queue).toEqual([]);
    expect(h.rt.sizes()).toEqual({ roots: 0, controlled: 0, tombstones: 0, held: 0 });
  });

  it("losing slots visits only their objects: other slots are not checked", () => {
    const h = harness();
    h.list(CHILDREN, [child("a-1", "a", 1), child("b-1", "b", 2)]);
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    h.owned.clear(); // slot 2 is lost too, but only slot 1 is reported
    h.rt.slotsLost([{ start: 1, end: 1 }]);
    expect(h.queue).toEqual(["b"]);
    expect(h.rt.sizes()).toMatchObject({ roots: 1, controlled: 1 });
    h.rt.prune(); // the full check finds slot 2
    expect(h.rt.sizes()).toMatchObject({ roots: 0, controlled: 0 });
  });

  it("a root moved into a slot cached but not owned leaves the queue, so a later loss finds nothing stale", () => {
    const h = harness({ owned: [1], controlled: false, cacheAllSlots: true });
    h.list(ROOTS, [root("a", 1)]);
    expect(h.queue).toEqual(["a"]);
    h.event(ROOTS, "MODIFIED", root("a", 5, "11"));
    expect(h.queue).toEqual([]);
    expect(h.rt.root("a")).toEqual(root("a", 5, "11"));
    h.event(ROOTS, "MODIFIED", root("a", 1, "12")); // and back into an owned slot
    expect(h.queue).toEqual(["a"]);
  });

  it("an object moving to another slot or controller follows: dropped when not owned, old owner requeued", () => {
    const h = harness();
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    h.list(CHILDREN, [child("c", "a", 1)]);
    h.queue.length = 0;
    h.event(CHILDREN, "MODIFIED", child("c", "b", 2, "11"));
    expect(h.queue).toEqual(["a", "b"]);
    expect(h.rt.controlledOf("a")).toEqual([]);
    h.event(ROOTS, "MODIFIED", root("b", 9, "12")); // its hash-key moved it away
    expect(h.queue).toEqual(["a"]);
    expect(h.rt.work("b")).toBeUndefined();
  });

  it("a namespace leaving the selection drops its objects; all slots are fetched again", () => {
    const h = harness({ controlled: false });
    h.list(ROOTS, [root("a", 1, "10", "team-a"), root("b", 2, "10", "team-b")]);
    h.hidden.add("team-b");
    h.rt.namespacesChanged();
    expect(h.queue).toEqual(["a"]);
    expect(h.rt.gainPending(ROOTS)).toBe(true);
    expect(h.rt.gainListStarted(ROOTS)!.every((x) => x === 1)).toBe(true);
  });

  it("clear() unqueues every key it queued", () => {
    const h = harness({ controlled: false });
    h.list(ROOTS, [root("a", 1), root("b", 2)]);
    h.event(ROOTS, "DELETED", root("b", 2, "11"));
    h.rt.clear();
    expect(h.queue).toEqual([]);
    expect(h.rt.sizes()).toEqual({ roots: 0, controlled: 0, tombstones: 0, held: 0 });
  });

  describe("warm handoffs", () => {
    /** A shard owning slot 1, with slot 7 migrating to it; both watches listed. */
    function importing() {
      const h = harness({ owned: [1] });
      h.list(ROOTS, [root("a", 1), root("m", 7)]);
      h.list(CHILDREN, [child("a-1", "a", 1), child("m-1", "m", 7)]);
      h.queue.length = 0;
      h.rt.slotsImporting([{ start: 7, end: 7 }]);
      // Both watches list the incoming slot.
      for (const w of [ROOTS, CHILDREN]) {
        const g = h.rt.gainListStarted(w)!;
        expect(g[7]).toBe(1);
        if (w === ROOTS) h.rt.gainListed(w, g, "m", root("m", 7), "10");
        else h.rt.gainListed(w, g, "m-1", child("m-1", "m", 7), "10");
        h.rt.gainListEnded(w, g, true);
      }
      return h;
    }

    it("caches the incoming slots' objects without queueing them, then queues them at the commit without a list", () => {
      const h = importing();
      expect(h.queue).toEqual([]);
      expect(h.rt.root("m")).toBeDefined();
      h.event(ROOTS, "MODIFIED", root("m", 7, "11")); // the source still reconciles it
      expect(h.queue).toEqual([]);
      h.owned.add(7);
      h.rt.slotsGained([{ start: 7, end: 7 }]);
      expect(h.queue).toEqual(["m"]);
      expect(h.rt.gainPending(ROOTS) || h.rt.gainPending(CHILDREN)).toBe(false);
      expect(h.rt.controlledOf("m").map((o) => o.id)).toEqual(["m-1"]);
      expect(h.rt.root("m")?.rv).toBe("11");
      // The migration leaves the status after the commit: the gained slot's objects stay.
      h.rt.slotsImporting([]);
      expect(h.rt.sizes()).toMatchObject({ roots: 2, controlled: 2 });
    });

    it("drops the incoming slots' objects when the migration goes away without a commit", () => {
      const h = importing();
      h.rt.slotsImporting([]);
      expect(h.rt.root("m")).toBeUndefined();
      expect(h.rt.sizes()).toMatchObject({ roots: 1, controlled: 1 });
    });

    it("a slot gained before its import lists ran keeps them pending (no second list): its roots wait for the controlled one", () => {
      const h = harness({ owned: [] });
      h.list(ROOTS, []);
      h.list(CHILDREN, []);
      h.rt.slotsImporting([{ start: 7, end: 7 }]);
      const gr = h.rt.gainListStarted(ROOTS)!;
      h.rt.gainListed(ROOTS, gr, "m", root("m", 7), "10");
      h.rt.gainListEnded(ROOTS, gr, true);
      // The controlled watch has not listed slot 7 when it is gained.
      h.owned.add(7);
      h.rt.slotsGained([{ start: 7, end: 7 }]);
      expect(h.queue).toEqual([]);
      expect(h.rt.gainPending(ROOTS)).toBe(false);
      expect(h.rt.gainPending(CHILDREN)).toBe(true);
      const g = h.rt.gainListStarted(CHILDREN)!;
      h.rt.gainListed(CHILDREN, g, "m-1", child("m-1", "m", 7), "10");
      h.rt.gainListEnded(CHILDREN, g, true);
      expect(h.queue).toEqual(["m"]);
      expect(h.rt.controlledOf("m")).toHaveLength(1);
    });

    it("a slot gained while its import lists still run is not listed again: its roots wait for them", () => {
      const h = harness({ owned: [] });
      h.rt.slotsImporting([{ start: 7, end: 7 }]);
      // The watches start with the import: their first (full) lists cover slot 7.
      h.rt.listStarted(ROOTS);
      h.rt.listStarted(CHILDREN);
      h.rt.observe(ROOTS, "ADDED", "m", root("m", 7), "10", true);
      h.owned.add(7);
      h.rt.slotsGained([{ start: 7, end: 7 }]); // committed before the lists ended
      expect(h.rt.gainPending(ROOTS) || h.rt.gainPending(CHILDREN)).toBe(false);
      expect(h.queue).toEqual([]); // held: the controlled list has not ended
      h.rt.listSynced(ROOTS);
      h.rt.observe(CHILDREN, "ADDED", "m-1", child("m-1", "m", 7), "10", true);
      h.rt.listSynced(CHILDREN);
      expect(h.queue).toEqual(["m"]);
      expect(h.rt.controlledOf("m")).toHaveLength(1);
    });

    it("a deletion while importing leaves no tombstone: the source reconciles it", () => {
      const h = importing();
      h.event(ROOTS, "DELETED", root("m", 7, "12"));
      expect(h.rt.sizes().tombstones).toBe(0);
      h.owned.add(7);
      h.rt.slotsGained([{ start: 7, end: 7 }]);
      expect(h.queue).toEqual([]);
    });

    it("importingSlots reads the migrations whose target is the shard", () => {
      const status = {
        migrations: [
          { slots: "0-9,20", from: "a", to: "b" },
          { slots: "10-15", from: "c", to: "b" },
          { slots: "30", from: "b", to: "a" },
        ],
      };
      expect(importingSlots(status, "b")).toEqual([
        { start: 0, end: 15 },
        { start: 20, end: 20 },
      ]);
      expect(importingSlots(status, "z")).toEqual([]);
    });
  });

  describe("cacheAllSlots", () => {
    it("caches every slot's objects but queues only owned roots", () => {
      const h = harness({ owned: [1], cacheAllSlots: true });
      h.list(ROOTS, [root("a", 1), root("b", 9)]);
      h.list(CHILDREN, [child("a-1", "a", 1), child("b-1", "b", 9)]);
      expect(h.queue).toEqual(["a"]);
      expect(h.rt.sizes()).toMatchObject({ roots: 2, controlled: 2, held: 0 });
      expect(h.rt.root("b")).toEqual(root("b", 9));
    });

    it("a gained slot is reconciled from the cache: no gain list, its roots queued with their objects", () => {
      const h = harness({ owned: [1], cacheAllSlots: true });
      h.list(ROOTS, [root("a", 1), root("b", 9)]);
      h.list(CHILDREN, [child("b-1", "b", 9)]);
      h.event(CHILDREN, "MODIFIED", child("b-1", "b", 9, "11")); // kept current while not owned
      h.queue.length = 0;
      h.owned.add(9);
      h.rt.slotsGained([{ start: 9, end: 9 }]);
      expect(h.rt.gainPending(ROOTS)).toBe(false);
      expect(h.rt.gainPending(CHILDREN)).toBe(false);
      expect(h.queue).toEqual(["b"]);
      expect(h.rt.controlledOf("b")).toEqual([child("b-1", "b", 9, "11")]);
    });

    it("a slot gained before the first list ended holds its roots until the controlled list ends", () => {
      const h = harness({ owned: [], cacheAllSlots: true });
      h.list(ROOTS, [root("b", 9)]);
      h.rt.listStarted(CHILDREN);
      h.owned.add(9);
      h.rt.slotsGained([{ start: 9, end: 9 }]);
      expect(h.queue).toEqual([]);
      expect(h.rt.sizes().held).toBe(1);
      h.rt.observe(CHILDREN, "ADDED", "b-1", child("b-1", "b", 9), "10", true);
      h.rt.listSynced(CHILDREN);
      expect(h.queue).toEqual(["b"]);
      expect(h.rt.controlledOf("b").map((o) => o.id)).toEqual(["b-1"]);
    });

    it("a lost slot keeps its objects cached but unqueues its keys", () => {
      const h = harness({ owned: [1, 2], controlled: false, cacheAllSlots: true });
      h.list(ROOTS, [root("a", 1), root("c", 2)]);
      expect(h.queue).toEqual(["a", "c"]);
      h.owned.delete(2);
      h.rt.slotsLost([{ start: 2, end: 2 }]);
      expect(h.queue).toEqual(["a"]);
      expect(h.rt.root("c")).toEqual(root("c", 2));
      h.event(ROOTS, "DELETED", root("c", 2, "12")); // its owner reconciles the deletion
      expect(h.rt.sizes()).toMatchObject({ roots: 1, tombstones: 0 });
      expect(h.queue).toEqual(["a"]);
    });

    it("without it, a gained slot is listed again (the default keeps owned slots only)", () => {
      const h = harness({ owned: [1] });
      h.list(ROOTS, [root("a", 1), root("b", 9)]);
      h.list(CHILDREN, []);
      h.owned.add(9);
      h.rt.slotsGained([{ start: 9, end: 9 }]);
      expect(h.rt.root("b")).toBeUndefined();
      expect(h.rt.gainPending(ROOTS)).toBe(true);
    });
  });

  it("names a watch that does not exist", () => {
    const h = harness();
    expect(() => h.rt.listStarted(2)).toThrow(/watch 2: there are 2/);
  });
});
