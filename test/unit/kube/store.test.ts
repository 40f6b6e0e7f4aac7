import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../../src/kube/http.js";
import { keyOf, ObjectCache } from "../../../src/kube/store.js";

const obj = (name: string, rv: string, uid = "u1", namespace?: string): KubeObject => ({
  metadata: { name, uid, resourceVersion: rv, ...(namespace ? { namespace } : {}) },
});

describe("ObjectCache", () => {
  it("keys cluster-scoped objects by name and namespaced ones by namespace/name", () => {
    expect(keyOf(obj("m", "1"))).toBe("m");
    expect(keyOf(obj("a", "1", "u", "ns"))).toBe("ns/a");
  });

  it("never replaces an object by an older or identical version", () => {
    const c = new ObjectCache<KubeObject>();
    const v10 = obj("m", "10");
    expect(c.put(v10)).toEqual({ before: undefined, after: v10 });
    const same = c.put(obj("m", "10"));
    expect(same.after).toBe(same.before);
    const older = c.put(obj("m", "9"));
    expect(older.after).toBe(v10);
    const v11 = obj("m", "11");
    expect(c.put(v11)).toEqual({ before: v10, after: v11 });
  });

  it("refreshes only an object still cached (a late re-read does not resurrect a deleted one)", () => {
    const c = new ObjectCache<KubeObject>();
    expect(c.refresh(obj("m", "5")).after).toBeUndefined();
    expect(c.get("m")).toBeUndefined();
    c.put(obj("m", "5"));
    expect(c.refresh(obj("m", "6")).after?.metadata?.resourceVersion).toBe("6");
    expect(c.refresh(obj("m", "4")).after?.metadata?.resourceVersion).toBe("6");
  });

  it("removes only the instance that was deleted (uid guard)", () => {
    const c = new ObjectCache<KubeObject>();
    c.put(obj("m", "20", "new"));
    const r = c.remove("m", obj("m", "19", "old"));
    expect(r.after?.metadata?.uid).toBe("new");
    expect(c.remove("m", obj("m", "21", "new")).after).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it("a relist removes what it no longer delivers", () => {
    const c = new ObjectCache<KubeObject>();
    c.put(obj("a", "1"));
    c.put(obj("b", "2"));
    c.beginList();
    c.put(obj("b", "2"));
    const removed = c.endList();
    expect(removed.map((x) => x.before?.metadata?.name)).toEqual(["a"]);
    expect([...c.values()].map((o) => o.metadata?.name)).toEqual(["b"]);
  });
});
