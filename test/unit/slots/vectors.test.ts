// The published hash vectors (test/vectors/hash-vectors.json, docs/hashing.md) agree with
// src/slots, with each other, and with Go's github.com/cespare/xxhash/v2 (tools/hashvectors).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { keySlot, SLOT_COUNT, xxh64Hex } from "../../../src/slots/index.js";
import { computeVectors, type HashVector } from "../../../tools/hashvectors/generate.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const vectors: HashVector[] = JSON.parse(
  fs.readFileSync(path.join(root, "test/vectors/hash-vectors.json"), "utf8"),
);

/** Rows of the vectors table in docs/hashing.md: `` | `"key"` | `hex` | slot | ``. */
function docTable(): HashVector[] {
  const doc = fs.readFileSync(path.join(root, "docs/hashing.md"), "utf8");
  const begin = doc.indexOf("<!-- vectors:begin");
  const end = doc.indexOf("<!-- vectors:end -->");
  expect(begin, "docs/hashing.md has the vectors:begin marker").toBeGreaterThanOrEqual(0);
  expect(end, "docs/hashing.md has the vectors:end marker").toBeGreaterThan(begin);
  const rows: HashVector[] = [];
  for (const line of doc.slice(begin, end).split("\n")) {
    const m = /^\| `(".*")` \| `([0-9a-f]{16})` \| (\d+) \|$/.exec(line);
    if (m === null) {
      // Only the header, the separator and the marker may be something else.
      expect(line).toMatch(/^(<!-- vectors:begin.*|\| key \| xxh64 \(hex\) \| slot \||\|---\|---\|---:\||)$/);
      continue;
    }
    rows.push({ key: JSON.parse(m[1]!) as string, xxh64: m[2]!, slot: Number(m[3]) });
  }
  return rows;
}

describe("hash vectors", () => {
  it("has at least 30 well-formed entries with unique keys", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(30);
    for (const v of vectors) {
      expect(Object.keys(v).sort()).toEqual(["key", "slot", "xxh64"]);
      expect(typeof v.key).toBe("string");
      expect(v.xxh64).toMatch(/^[0-9a-f]{16}$/);
      expect(Number.isInteger(v.slot) && v.slot >= 0 && v.slot < SLOT_COUNT).toBe(true);
      expect(v.slot).toBe(Number(BigInt(`0x${v.xxh64}`) & 0x3fffn));
    }
    expect(new Set(vectors.map((v) => v.key)).size).toBe(vectors.length);
  });

  it("covers the key shapes docs/hashing.md promises", () => {
    const keys = vectors.map((v) => v.key);
    const parts = keys.map((k) => k.split("/")).filter((p) => p.length === 4);
    expect(keys).toContain("");
    expect(keys).toContain("/Secret/default/foo");
    expect(keys).toContain("apps/Deployment/ns/x");
    expect(keys).toContain("/Namespace//kube-system");
    expect(parts.some((p) => p[0] !== "" && p[2] === "")).toBe(true); // named group, cluster-scoped
    expect(keys.some((k) => new TextEncoder().encode(k).length > 32)).toBe(true);
    expect(keys.some((k) => new TextEncoder().encode(k).length > 256)).toBe(true);
    expect(keys.some((k) => [...k].some((c) => c.codePointAt(0)! > 0x7f))).toBe(true);
    expect(keys.some((k) => /[\u{10000}-\u{10ffff}]/u.test(k))).toBe(true); // 4-byte UTF-8
  });

  it("agrees with src/slots", () => {
    const wrong = vectors.filter((v) => xxh64Hex(v.key) !== v.xxh64 || keySlot(v.key) !== v.slot);
    expect(wrong).toEqual([]);
  });

  it("is what tools/hashvectors/generate.ts writes", () => {
    expect(vectors).toEqual(computeVectors());
  });

  it("agrees with the table in docs/hashing.md", () => {
    expect(docTable()).toEqual(vectors);
  });
});

const go = spawnSync("go", ["version"], { encoding: "utf8" });
const goMissing = go.error !== undefined || go.status !== 0;
if (goMissing) {
  // Visible in the run's output, not only in the test title: the independent check did not run.
  console.warn("hash vectors: go not found on PATH, skipping the cespare/xxhash check (tools/hashvectors)");
}

describe("hash vectors in Go (github.com/cespare/xxhash/v2)", () => {
  it(`go test ./... in tools/hashvectors${goMissing ? " (SKIPPED: go not found on PATH)" : ""}`, (ctx) => {
    // CI has Go: there a missing toolchain is a failure, not a skip.
    if (goMissing && process.env.CI) throw new Error(`go not found on PATH in CI: ${go.error ?? go.stderr}`);
    ctx.skip(goMissing, "go not found on PATH; install Go to check the vectors against cespare/xxhash");
    const res = spawnSync("go", ["test", "-count=1", "./..."], {
      cwd: path.join(root, "tools/hashvectors"),
      encoding: "utf8",
      timeout: 300_000,
    });
    expect(res.error).toBeUndefined();
    expect(`${res.stdout}${res.stderr}`, "go test output").toMatch(/^ok\s+slotmap\.dev\/hashvectors/m);
    expect(res.status).toBe(0);
  }, 300_000);
});
