import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import * as api from "../../src/api/index.js";
import * as client from "../../src/client/index.js";
import * as root from "../../src/index.js";
import * as slots from "../../src/slots/index.js";

const REPO = resolve(import.meta.dirname, "../..");

// Published XXH64 (seed 0) vectors from the xxHash reference and cespare/xxhash; the expected slot
// is derived from the hex here, so keySlot is checked against an independent source.
const VECTORS: Array<[string, string]> = [
  ["", "ef46db3751d8e999"],
  ["a", "d24ec4f1a98c6e5b"],
  ["abc", "44bc2cf5ad770999"],
];
const slotOfHex = (hex: string): number => Number(BigInt(`0x${hex}`) & 0x3fffn);

// Sorted runtime export names of a module namespace.
const names = (ns: object): string[] => Object.keys(ns).sort();

describe("package root (src/index.ts)", () => {
  it("gives a synchronous keySlot matching published XXH64 vectors", () => {
    for (const [key, hex] of VECTORS) {
      const slot = root.keySlot(key);
      // A number, not a Promise: xxhash-wasm is ready once the import resolved.
      expect(typeof slot).toBe("number");
      expect(slot, `keySlot(${JSON.stringify(key)})`).toBe(slotOfHex(hex));
      expect(root.xxh64Hex(key)).toBe(hex);
    }
    expect(root.keySlot("x")).toBe(4387);
  });

  it("re-exports every runtime export of src/slots and src/api, with no name shared by both", () => {
    const shared = [
      ...names(slots).filter((n) => n in api || n in client),
      ...names(api).filter((n) => n in client),
    ];
    // `export *` silently drops a name exported by both modules: there must be none.
    expect(shared).toEqual([]);
    const rootNs = root as Record<string, unknown>;
    for (const [mod, ns] of [
      ["src/slots", slots],
      ["src/api", api],
    ] as const) {
      for (const [name, value] of Object.entries(ns)) {
        expect(rootNs[name], `${mod} export ${name}`).toBe(value);
      }
    }
    expect(names(root)).toEqual([...names(slots), ...names(api), ...names(client)].sort());
    // Spot checks of the public surface the brief names: core API, schemas and constants.
    expect(root.SLOT_COUNT).toBe(16384);
    expect(root.API_VERSION).toBe("slotmap.dev/v1alpha1");
    expect(typeof root.plan).toBe("function");
    expect(typeof root.SlotMapSchema.safeParse).toBe("function");
  });

  describe("built package", () => {
    // Under the repo (gitignored .cache/) so the emitted code resolves xxhash-wasm and zod from
    // node_modules like an installed package would.
    mkdirSync(join(REPO, ".cache"), { recursive: true });
    const out = mkdtempSync(join(REPO, ".cache", "package-root-"));
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it("compiles with tsconfig.build.json options and imports from plain node", { timeout: 60_000 }, () => {
      // Same compiler options as `npm run build`, restricted to the root's import graph so
      // other modules in progress cannot break this test (typecheck covers them).
      writeFileSync(
        join(out, "tsconfig.json"),
        JSON.stringify({
          extends: join(REPO, "tsconfig.build.json"),
          compilerOptions: { rootDir: REPO, outDir: out, sourceMap: false },
          files: [join(REPO, "src/index.ts")],
          include: [],
        }),
      );
      const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
      execFileSync(process.execPath, [tsc, "-p", join(out, "tsconfig.json")], { stdio: "pipe" });

      // package.json maps "." to dist/src/index.js (rootDir is the repo so examples/ build beside src/).
      const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
        exports: Record<string, { import: string; types: string }>;
      };
      const entry = pkg.exports["."]!;
      expect(entry.import).toBe("./dist/src/index.js");
      expect(entry.types).toBe("./dist/src/index.d.ts");
      expect(existsSync(join(out, "src/index.d.ts"))).toBe(true);

      const url = pathToFileURL(join(out, "src/index.js")).href;
      const script =
        `const m = await import(${JSON.stringify(url)});` +
        `console.log(JSON.stringify({ slots: ${JSON.stringify(VECTORS.map(([k]) => k))}.map((k) => m.keySlot(k)),` +
        ` x: m.keySlot("x"), names: Object.keys(m).sort() }));`;
      const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        encoding: "utf8",
      });
      const got = JSON.parse(stdout) as { slots: number[]; x: number; names: string[] };
      expect(got.slots).toEqual(VECTORS.map(([, hex]) => slotOfHex(hex)));
      expect(got.x).toBe(4387);
      expect(got.names).toEqual(names(root));
    });
  });
});
