import { describe, expect, it } from "vitest";
import { BySlot } from "../../../../src/client/core/by-slot.js";

describe("BySlot", () => {
  it("knows the ids of each slot through sets, moves and deletes", () => {
    const m = new BySlot<{ slot: number; v: string }>();
    m.set("a", { slot: 1, v: "a1" });
    m.set("b", { slot: 1, v: "b1" });
    m.set("c", { slot: 9, v: "c9" });
    expect(m.idsIn(1)).toEqual(["a", "b"]);
    m.set("a", { slot: 9, v: "a9" }); // moved
    expect(m.idsIn(1)).toEqual(["b"]);
    expect(m.idsIn(9)).toEqual(["c", "a"]);
    m.set("a", { slot: 9, v: "a9'" }); // replaced in place
    expect(m.idsIn(9)).toEqual(["c", "a"]);
    expect(m.get("a")).toEqual({ slot: 9, v: "a9'" });
    expect(m.delete("b")).toBe(true);
    expect(m.delete("b")).toBe(false);
    expect(m.idsIn(1)).toEqual([]);
    expect(m.size).toBe(2);
    expect([...m.keys()]).toEqual(["a", "c"]);
    m.clear();
    expect(m.size).toBe(0);
    expect(m.idsIn(9)).toEqual([]);
  });

  it("a copy of a slot's ids may be iterated while deleting", () => {
    const m = new BySlot<{ slot: number }>();
    for (const id of ["a", "b", "c"]) m.set(id, { slot: 3 });
    for (const id of m.idsIn(3)) m.delete(id);
    expect(m.size).toBe(0);
  });
});
