import { defineConfig } from "vitest/config";

// The in-cluster end-to-end suite (test/incluster): deploy/ on a real local node. Kept out of
// vitest.config.ts, so out of `npm test`: it needs root, builds the image and the node's
// programs on first use, and takes minutes. .ci/run runs it as its own step.
export default defineConfig({
  test: {
    name: "incluster",
    include: ["test/incluster/**/*.test.ts"],
    environment: "node",
    testTimeout: 1_200_000,
    hookTimeout: 2_400_000,
    fileParallelism: false,
  },
});
