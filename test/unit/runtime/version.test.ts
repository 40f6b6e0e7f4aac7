import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { expect, it } from "vitest";
import { PACKAGE_VERSION } from "../../../src/runtime/version.js";

it("PACKAGE_VERSION is package.json's version", () => {
  const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../../package.json"), "utf8")) as {
    version: string;
  };
  expect(PACKAGE_VERSION).toBe(pkg.version);
});
