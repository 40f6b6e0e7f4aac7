/**
 * Compiles the benchmark's child processes (coordinator, shards, baseline sharder) to plain
 * JavaScript once per run, so that they run as they would in production: without tsx compiling
 * TypeScript inside each process, which would add tens of MiB of RSS and CPU at start-up to every
 * figure. `tsc --noCheck` follows the imports of the entry points only (a few seconds); type errors
 * are the business of `npm run typecheck`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dirname, "../..");
const require = createRequire(import.meta.url);

/**
 * Compiles `entries` (paths relative to the repository root, `.ts`) into a fresh directory and
 * returns a function mapping each entry to its compiled `.js`.
 */
export function compileEntries(entries: readonly string[]): (entry: string) => string {
  const out = mkdtempSync(join(tmpdir(), "slotmap-bench-build-"));
  const self = selfExports();
  const tsc = join(require.resolve("typescript/package.json"), "..", "bin", "tsc");
  execFileSync(
    process.execPath,
    [
      tsc,
      ...[...entries, ...self.entries].map((e) => join(REPO, e)),
      "--target",
      "ES2023",
      "--module",
      "NodeNext",
      "--moduleResolution",
      "NodeNext",
      "--outDir",
      out,
      "--rootDir",
      REPO,
      "--skipLibCheck",
      "--resolveJsonModule",
      "--esModuleInterop",
      "--types",
      "node",
      "--noCheck",
    ],
    { cwd: REPO, stdio: "pipe" },
  );
  // ESM package scope, and the repository's dependencies, for the compiled tree. The example
  // imports the package by its name (`slotmap`): the tree is that package, its exports mapped to
  // the compiled sources (Node resolves a package's own name through its exports).
  writeFileSync(
    join(out, "package.json"),
    `${JSON.stringify({ name: "slotmap", type: "module", exports: self.exports })}\n`,
  );
  symlinkSync(join(REPO, "node_modules"), join(out, "node_modules"), "dir");
  return (entry) => {
    if (!entries.includes(entry)) throw new Error(`${entry} was not compiled (not in the entry list)`);
    return join(out, entry.replace(/\.ts$/, ".js"));
  };
}

/** The package's exports, mapped from `dist/src/*.js` to the compiled tree, and their sources. */
function selfExports(): { exports: Record<string, string>; entries: string[] } {
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
    exports: Record<string, string | { import?: string }>;
  };
  const exports: Record<string, string> = {};
  const entries: string[] = [];
  for (const [name, target] of Object.entries(pkg.exports)) {
    const js = typeof target === "string" ? undefined : target.import;
    if (js === undefined || !js.startsWith("./dist/")) continue;
    exports[name] = js.replace("./dist/", "./");
    entries.push(js.replace("./dist/", "").replace(/\.js$/, ".ts"));
  }
  return { exports, entries };
}
