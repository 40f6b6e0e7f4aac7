import { defineConfig } from "vitest/config";

// Three suites: pure unit tests, integration tests against a real kube-apiserver
// (started once per run by the global setup), and fast-check property tests.
export default defineConfig({
  // "slotmap" and its subpaths resolve to src/ through tsconfig.json's paths (the examples import
  // the package by name, as its users do).
  resolve: { tsconfigPaths: true },
  test: {
    reporters: ["default", "./test/support/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // One API server is shared; files run one at a time to keep a 2-core machine responsive.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "property",
          include: ["property-tests/**/*.test.ts"],
          environment: "node",
          testTimeout: 300_000,
        },
      },
    ],
  },
});
