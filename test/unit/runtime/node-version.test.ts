import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_FLOOR, nodeVersionAtLeast, nodeVersionProblem } from "../../../src/runtime/node-version.js";

const REPO = resolve(import.meta.dirname, "../../..");

interface Manifest {
  name: string;
  version: string;
  engines?: { node?: string };
}

/** Every package of the production dependency tree, from `npm ls --omit=dev`. */
function productionPackages(): Manifest[] {
  const out = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], {
    cwd: REPO,
    encoding: "utf8",
  });
  return out
    .split("\n")
    .filter((dir) => dir !== "" && dir !== REPO)
    .map((dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest);
}

/**
 * Whether `version` satisfies an `engines.node` range made of `||` alternatives of `>=X`, `^X`,
 * `X.x` or `X` (every form used in the tree today; anything else fails the test loudly).
 */
function satisfies(version: string, range: string): boolean {
  return range.split("||").some((alt) => {
    const a = alt.trim();
    let m = /^>=\s*v?([\d.]+?)(?:\.x)?$/.exec(a);
    if (m) return nodeVersionAtLeast(version, m[1]!);
    m = /^\^([\d.]+)$/.exec(a);
    if (m) return version.split(".")[0] === m[1]!.split(".")[0] && nodeVersionAtLeast(version, m[1]!);
    m = /^(\d+)(?:\.x)?$/.exec(a);
    if (m) return version.split(".")[0] === m[1];
    throw new Error(`unhandled engines.node range ${JSON.stringify(range)}`);
  });
}

describe("Node.js version floor", () => {
  it("is package.json's engines.node", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as Manifest;
    expect(pkg.engines?.node).toBe(`>=${NODE_FLOOR}`);
  });

  it("satisfies the engines.node of every production dependency, and one of them needs it", () => {
    const pkgs = productionPackages().filter((p) => p.engines?.node !== undefined);
    expect(pkgs.length).toBeGreaterThan(5);
    for (const p of pkgs) {
      expect(
        satisfies(NODE_FLOOR, p.engines!.node!),
        `${p.name}@${p.version} engines ${p.engines!.node}`,
      ).toBe(true);
    }
    // The floor is no higher than needed: some dependency rejects the patch release before it.
    const [major, minor] = NODE_FLOOR.split(".");
    const below = `${major}.${Number(minor) - 1}.99`;
    expect(pkgs.filter((p) => !satisfies(below, p.engines!.node!)).map((p) => p.name)).toContain("undici");
    expect(readdirSync(join(REPO, "node_modules/undici")).length).toBeGreaterThan(0);
  });

  it("compares versions numerically, not as strings", () => {
    expect(nodeVersionAtLeast("22.19.0")).toBe(true);
    expect(nodeVersionAtLeast("v22.19.0")).toBe(true);
    expect(nodeVersionAtLeast("22.100.0")).toBe(true);
    expect(nodeVersionAtLeast("24.0.0")).toBe(true);
    expect(nodeVersionAtLeast("22.18.9")).toBe(false);
    expect(nodeVersionAtLeast("22.9.0")).toBe(false);
    expect(nodeVersionAtLeast("20.20.2")).toBe(false);
    expect(nodeVersionAtLeast("22.19.0-nightly2025")).toBe(true);
  });

  it("names the required and the found version in one line", () => {
    expect(nodeVersionProblem("slotmap", "24.1.0")).toBeUndefined();
    const msg = nodeVersionProblem("slotmap-coordinator", "20.20.2");
    expect(msg).toMatch(/^slotmap-coordinator requires Node\.js >= 22\.19\.0, found 20\.20\.2 /);
    expect(msg).not.toContain("\n");
  });
});
