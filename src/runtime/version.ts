/**
 * The package version, for User-Agent headers. test/unit/runtime/version.test.ts keeps it equal
 * to package.json's `version` (reading package.json at run time would need a path that differs
 * between src/ under tsx and dist/src/ when installed).
 */
export const PACKAGE_VERSION = "0.1.0";
