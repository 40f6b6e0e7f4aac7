/**
 * The Node.js version floor of the package: the highest `engines.node` of the whole dependency
 * tree (undici 8, also used by @kubernetes/client-node, declares `>=22.19.0`). Below it the import
 * would crash somewhere inside a dependency (on Node 20: `Cannot read properties of undefined
 * (reading 'bind')` in undici), so the package checks first and says what is wrong.
 * test/unit/runtime/node-version.test.ts keeps this equal to package.json's `engines.node`.
 */

/** The lowest supported Node.js version (`engines.node` is `>=` this). */
export const NODE_FLOOR = "22.19.0";

function parts(version: string): [number, number, number] {
  const [major = 0, minor = 0, patch = 0] = version
    .replace(/^v/, "")
    .split(/[.-]/)
    .map((p) => Number.parseInt(p, 10) || 0);
  return [major, minor, patch];
}

/** Whether `found` (e.g. `process.versions.node`) is at least `floor`. */
export function nodeVersionAtLeast(found: string, floor: string = NODE_FLOOR): boolean {
  const a = parts(found);
  const b = parts(floor);
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/**
 * The one-line complaint about an unsupported Node.js, or undefined when `found` is supported.
 *
 * @param what - who needs it, e.g. `slotmap` or `slotmap-coordinator`.
 */
export function nodeVersionProblem(what: string, found: string = process.versions.node): string | undefined {
  if (nodeVersionAtLeast(found)) return undefined;
  return `${what} requires Node.js >= ${NODE_FLOOR}, found ${found} (${process.execPath}); install a newer Node.js (22 LTS or 24 LTS)`;
}
