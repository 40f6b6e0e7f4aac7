import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import * as api from "../../src/api/index.js";
import * as client from "../../src/client/index.js";
import * as root from "../../src/index.js";
import * as kube from "../../src/kube/index.js";
import * as shutdown from "../../src/runtime/shutdown.js";
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

// The curated root: what a controller author uses (docs/client.md, "Package"). A change here is
// an API change: update the docs with it.
const ROOT_RUNTIME_NAMES = [
  "ANNOTATION_WEIGHT",
  "API_VERSION",
  "ApiError",
  "DEFAULT_WEIGHT",
  "DiscoveryError",
  "GROUP",
  "HASH_KEY_ANNOTATION",
  "KIND",
  "KeyError",
  "KubeHttp",
  "LABEL_SLOTMAP",
  "PLURAL",
  "SLOT_COUNT",
  "ShardMember",
  "ShardMemberConfigError",
  "ShardMetrics",
  "VERSION",
  "createShardMember",
  "isStatus",
  "keySlot",
  "objectKey",
  "objectSlot",
  "runController",
  "shardChecks",
  "shardingKey",
  "silentLogger",
  "startController",
  "untilShutdown",
];

describe("package root (src/index.ts)", () => {
  it("gives a synchronous keySlot matching published XXH64 vectors", () => {
    for (const [key, hex] of VECTORS) {
      const slot = root.keySlot(key);
      // A number, not a Promise: xxhash-wasm is ready once the import resolved.
      expect(typeof slot).toBe("number");
      expect(slot, `keySlot(${JSON.stringify(key)})`).toBe(slotOfHex(hex));
      expect(slots.xxh64Hex(key)).toBe(hex);
    }
    expect(root.keySlot("x")).toBe(4387);
  });

  it("exports the curated controller-author API, the same objects as the modules behind it", () => {
    expect(names(root)).toEqual([...ROOT_RUNTIME_NAMES].sort());
    const rootNs = root as Record<string, unknown>;
    const sources = [slots, api, client, kube, shutdown] as Record<string, unknown>[];
    for (const name of ROOT_RUNTIME_NAMES) {
      expect(
        sources.some((ns) => ns[name] === rootNs[name]),
        `${name} is one of the modules' own exports`,
      ).toBe(true);
    }
    expect(root.SLOT_COUNT).toBe(16384);
    expect(root.API_VERSION).toBe("slotmap.dev/v1alpha1");
    // Schemas, planner and table helpers live in subpaths, not the root.
    expect("plan" in root).toBe(false);
    expect(typeof slots.plan).toBe("function");
    expect(typeof api.SlotMapSchema.safeParse).toBe("function");
  });

  describe("built package", () => {
    // Under the repo (gitignored .cache/) so the emitted code resolves xxhash-wasm and zod from
    // node_modules like an installed package would.
    mkdirSync(join(REPO, ".cache"), { recursive: true });
    const out = mkdtempSync(join(REPO, ".cache", "package-root-"));
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it("compiles every export with tsconfig.build.json options and imports it from plain node", {
      timeout: 90_000,
    }, () => {
      const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
        exports: Record<string, { import: string; types: string } | string>;
      };
      // Every subpath maps dist/src/X.js to src/X.ts (rootDir is the repo so examples/ build beside src/).
      const entries = Object.entries(pkg.exports).filter(
        (e): e is [string, { import: string; types: string }] => typeof e[1] !== "string",
      );
      expect(entries.map(([k]) => k)).toEqual([".", "./slots", "./api", "./kube", "./flags"]);
      const sources = entries.map(([, e]) => {
        expect(e.types).toBe(e.import.replace(/\.js$/, ".d.ts"));
        const src = e.import.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts");
        expect(existsSync(join(REPO, src)), src).toBe(true);
        return src;
      });
      // Same compiler options as `npm run build`, restricted to the entries' import graphs so
      // other modules in progress cannot break this test (typecheck covers them).
      writeFileSync(
        join(out, "tsconfig.json"),
        JSON.stringify({
          extends: join(REPO, "tsconfig.build.json"),
          compilerOptions: { rootDir: REPO, outDir: out, sourceMap: false },
          files: sources.map((f) => join(REPO, f)),
          include: [],
        }),
      );
      const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
      execFileSync(process.execPath, [tsc, "-p", join(out, "tsconfig.json")], { stdio: "pipe" });
      for (const src of sources) expect(existsSync(join(out, src.replace(/\.ts$/, ".d.ts"))), src).toBe(true);

      // Import each entry in a fresh node, recording every module resolved: the root must not
      // load @kubernetes/client-node (its generated models cost about 1 s and 80 MiB).
      const url = (src: string) => pathToFileURL(join(out, src.replace(/\.ts$/, ".js"))).href;
      const script =
        `import { registerHooks } from "node:module";` +
        `const seen = [];` +
        `registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r; } });` +
        `const m = await import(${JSON.stringify(url(sources[0]!))});` +
        `const others = {};` +
        `for (const u of ${JSON.stringify(sources.slice(1).map(url))}) others[u] = Object.keys(await import(u)).length;` +
        `console.log(JSON.stringify({ slots: ${JSON.stringify(VECTORS.map(([k]) => k))}.map((k) => m.keySlot(k)),` +
        ` names: Object.keys(m).sort(), others, clientNode: seen.filter((u) => u.includes("client-node")).length }));`;
      const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        encoding: "utf8",
      });
      const got = JSON.parse(stdout) as {
        slots: number[];
        names: string[];
        others: Record<string, number>;
        clientNode: number;
      };
      expect(got.slots).toEqual(VECTORS.map(([, hex]) => slotOfHex(hex)));
      expect(got.names).toEqual(names(root));
      for (const n of Object.values(got.others)) expect(n).toBeGreaterThan(3);
      expect(got.clientNode, "modules of @kubernetes/client-node loaded by importing every entry").toBe(0);
    });
  });
});
