/**
 * deploy/ on a real node, as users run it: the image built from the Dockerfile, the manifests
 * applied unchanged, pods scheduled, probed, restarted and deleted by Kubernetes itself. The
 * scenario is ./scenario.ts; this file starts the cluster (test/support/incluster.ts), prints each
 * step's time and asserts the audit. Not part of `npm test` (it needs root and builds images):
 * run it with `npx vitest run --config vitest.incluster.config.ts` (.ci/run does).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatViolations, summaryLine } from "../e2e/auditor.js";
import { type ClusterWithNode, startClusterWithNode } from "../support/incluster.js";
import { runScenario } from "./scenario.js";

const log = (m: string) => process.stderr.write(`[incluster] ${m}\n`);

describe("deploy/ on a local node", () => {
  let cluster: ClusterWithNode | undefined;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-incluster-"));

  beforeAll(async () => {
    cluster = await startClusterWithNode({ log });
    const t = cluster.timings;
    log(
      `images ${(t.imagesMs / 1000).toFixed(1)} s, control plane ${(t.controlPlaneMs / 1000).toFixed(1)} s, ` +
        `node Ready ${(cluster.node.readyAfterMs / 1000).toFixed(1)} s`,
    );
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it("keeps every Secret's ConfigMap right through leader loss, a rollout, scaling and a forced delete, with no double reconcile", async () => {
    const c = cluster!;
    const started = Date.now();
    const result = await runScenario({
      kubectl: c.cp.kubectlPath,
      kubeconfig: c.cp.kubeconfig,
      logDir,
      secrets: Number(process.env.SLOTMAP_E2E_SECRETS ?? 1000),
      say: log,
      // Another checkout's deploy/ (e.g. a `git archive` matching SLOTMAP_IMAGE_CONTEXT).
      ...(process.env.SLOTMAP_DEPLOY_ROOT ? { deployRoot: process.env.SLOTMAP_DEPLOY_ROOT } : {}),
    }).catch((err: unknown) => {
      log(`failed; logs kept in ${logDir}\n${c.node.diagnostics(10)}`);
      throw err;
    });
    log("step times:");
    for (const s of result.steps)
      log(`  ${(s.ms / 1000).toFixed(1).padStart(7)} s  ${s.step}${s.detail ? ` (${s.detail})` : ""}`);
    const st = result.report.stats;
    log(
      `${result.instances.length} container logs, ${result.processes} shard processes; reconciles ${st.reconciles}, slot owner changes ` +
        `${st.slotOwnerChanges}, longest pause ${(st.pause.maxMs / 1000).toFixed(1)} s`,
    );
    for (const r of result.restarts) log(`restarted in place: ${r}`);
    for (const e of result.probeEvents) log(`event: ${e}`);
    log(summaryLine(result.report, Date.now() - started));
    if (!result.report.ok)
      log(`violations (logs in ${logDir}):\n${formatViolations(result.report.violations)}`);

    expect(result.report.violations).toEqual([]);
    expect(st.doubleReconciles).toBe(0);
    expect(st.converged).toBe(st.secrets);
    expect(st.secrets).toBe(Number(process.env.SLOTMAP_E2E_SECRETS ?? 1000));
    // Reconciles from the pods of every phase were read: 3 + 3 (restart) + 2 (scale up) + 1.
    expect(result.processes).toBeGreaterThanOrEqual(9);
    fs.rmSync(logDir, { recursive: true, force: true });
  });
});
