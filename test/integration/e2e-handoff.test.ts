/**
 * End to end: the coordinator (2 replicas, leader election) and the example checksum controller
 * (N shard processes) as real OS processes against the API server, through scale up, graceful
 * scale down, a shard crash during a handoff, the loss of the coordinator leader and a frozen
 * shard. The pass criterion is the auditor's (test/e2e/auditor.ts): no object and no slot was
 * reconciled by two processes at once, every object was reconciled after its last change, and
 * every Secret ends with the right ConfigMap.
 *
 * Lease timings are short (3 s lease, 2 s renew deadline, 0.5 s retry) so that failovers take
 * seconds. The safety margin is then 1 s: enough on an idle machine, and the test takes care
 * that the frozen shard has nothing in flight when it is stopped (see "freeze" below).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatViolations, summaryLine } from "../e2e/auditor.js";
import { describeStatus, httpFor, isSettled, sleep } from "../e2e/driver.js";
import { LineTail, REPO_ROOT } from "../e2e/harness.js";
import { COORDINATOR_SCRIPT, SHARD_SCRIPT, SlotmapSystem } from "../e2e/system.js";
import { ENV, kubeconfigPath, TEST_RUN_LABEL } from "../support/cluster.js";

const SECRETS = Number(process.env.SLOTMAP_E2E_SECRETS ?? 1000);
const missing = [COORDINATOR_SCRIPT, SHARD_SCRIPT].filter((f) => !fs.existsSync(path.join(REPO_ROOT, f)));
const skipReason = missing.length ? `not built yet: ${missing.join(", ")}` : undefined;

const log = (msg: string) => process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

describe.skipIf(skipReason)(
  `e2e: coordinator and shards as processes${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  () => {
    let sys: SlotmapSystem | undefined;
    let logDir = "";
    let failed = true;

    beforeAll(async () => {
      logDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-e2e-"));
      const runId = process.env[ENV.runId];
      sys = await SlotmapSystem.create({
        http: httpFor(kubeconfigPath()),
        kubeconfig: kubeconfigPath(),
        logDir,
        prefix: "e2e",
        namespaceLabels: runId ? { [TEST_RUN_LABEL]: runId } : {},
        isolate: true,
        handoffTimeoutSeconds: 10,
        concurrency: 4,
        orphanAfter: 20,
      });
    });

    afterAll(async () => {
      if (!sys) return;
      if (failed) log(`FAILED; diagnostics:\n${sys.diagnostics()}`);
      await sys.teardown();
      if (!failed) fs.rmSync(logDir, { recursive: true, force: true });
    });

    it("never reconciles a slot twice at once, and converges, through scaling, crashes, leader loss and a freeze", async () => {
      const s = sys!;
      const started = Date.now();
      const lease = s.timings.leaseDuration * 1000;
      // Every wait fails at once, with its output, if a process crashes meanwhile.
      const settled = (ready: string[], what: string, timeoutMs = 60_000) =>
        s
          .guard(
            s.watch.waitFor(
              (st) => isSettled(st, ready),
              timeoutMs,
              `${what}: settled on ${ready.join(", ")}`,
            ),
          )
          .then((st) => log(`${what}: ${describeStatus(st)}`));
      const converged = async (what: string, timeoutMs = 120_000) => {
        const c = await s.guard(s.fleet.waitConverged({ timeoutMs }));
        log(`${what}: ${c.converged}/${c.total} ConfigMaps right`);
      };

      // --- start: two coordinator replicas, three shards ----------------------------------------
      s.startCoordinator("coordinator-a");
      s.startCoordinator("coordinator-b");
      for (const n of ["shard-0", "shard-1", "shard-2"]) s.startShard(n);
      await settled(["shard-0", "shard-1", "shard-2"], "3 shards");

      // --- 1000 Secrets, then updates ----------------------------------------------------------
      const t = Date.now();
      await s.fleet.create(SECRETS, { concurrency: 16 });
      log(`created ${SECRETS} Secrets in ${Date.now() - t} ms`);
      await converged("initial");
      await s.fleet.update(s.fleet.sample(Math.ceil(SECRETS / 10)));
      await converged("after updates");

      // From here on, Secrets keep changing while shards come and go.
      let stopChurn = s.fleet.churn(20);

      // --- scale 3 → 4 -----------------------------------------------------------------------
      s.startShard("shard-3");
      await settled(["shard-0", "shard-1", "shard-2", "shard-3"], "scaled to 4");

      // --- scale 4 → 2: graceful shutdown drains, acks and releases --------------------------
      const terms = await Promise.all([
        s.shardProcess("shard-2").terminate(20_000),
        s.shardProcess("shard-3").terminate(20_000),
      ]);
      expect(terms.map((x) => ({ code: x.code, forced: x.forced }))).toEqual([
        { code: 0, forced: false },
        { code: 0, forced: false },
      ]);
      await settled(["shard-0", "shard-1"], "scaled to 2");

      // --- SIGKILL the source of a handoff while it is pending --------------------------------
      // The kill happens in the watch callback, on the first status that moves slots to the new
      // shard, before the source has had a chance to ack (it may have acked already: both are fine).
      let killed: string | undefined;
      let pendingAtKill = false;
      const off = s.watch.onChange((st) => {
        if (killed) return;
        const m = st.migrations.find((x) => x.to === "shard-4");
        if (!m) return;
        killed = m.from;
        const src = st.shards.find((x) => x.name === m.from);
        pendingAtKill = (src?.observedGeneration ?? 0) < m.generation;
        s.shardProcess(m.from).signal("SIGKILL");
      });
      s.startShard("shard-4");
      await s.guard(s.watch.waitFor(() => killed !== undefined, 30_000, "a migration to shard-4"));
      off();
      log(
        `SIGKILLed ${killed} during its handoff to shard-4 (ack pending in the last status: ${pendingAtKill})`,
      );
      const alive = ["shard-0", "shard-1", "shard-4"].filter((n) => n !== killed);
      await settled(alive, "after the crash", 60_000 + lease);

      // --- kill the coordinator leader; the other replica must finish the next handoff -----------
      const leader = await s.leader();
      expect(leader, "a coordinator replica holds the leader Lease").toBeDefined();
      await leader!.kill();
      log(`SIGKILLed the coordinator leader ${leader!.name}`);
      s.startShard("shard-5");
      const three = [...alive, "shard-5"];
      await settled(three, "new leader, 3 shards", 60_000 + lease);
      const newLeader = await s.leader();
      expect(newLeader?.name).toBeDefined();
      expect(newLeader?.name).not.toBe(leader!.name);

      // --- freeze a shard past its Lease, then resume it ---------------------------------------
      // A shard frozen in the middle of a reconcile would finish it after others took over: the
      // documented limit of fencing by time (docs/dev/shard-core.md, "Timing assumptions"), which
      // no Lease protocol can close without fencing tokens. So the shard is frozen when idle:
      // churn paused, converged, and no reconcile logged by it for a while.
      await stopChurn();
      await converged("before the freeze");
      const frozenShard = three[0]!;
      const frozen = s.shardProcess(frozenShard);
      const tail = new LineTail(frozen.stdoutPath);
      const quietWait = Date.now();
      let quietSince = Date.now();
      while (Date.now() - quietSince < 1500) {
        if (tail.poll().some((l) => l.includes('"reconcile"'))) quietSince = Date.now();
        if (Date.now() - quietWait > 30_000)
          throw new Error(`${frozen.name} never stopped reconciling for 1.5 s`);
        await sleep(100);
      }
      frozen.freeze();
      const frozenAt = Date.now();
      log(`SIGSTOPped ${frozen.name}`);
      stopChurn = s.fleet.churn(20);
      const others = three.slice(1);
      await s.guard(
        s.watch.waitFor(
          (st) =>
            st.shards.some((x) => x.name === frozenShard && x.state === "Dead") && isSettled(st, others),
          60_000 + 3 * lease,
          `${frozenShard} taken over, its slots on ${others.join(", ")}`,
        ),
      );
      log(`${frozen.name} Dead and its slots reassigned after ${Date.now() - frozenAt} ms frozen`);
      await sleep(1000); // some churn lands on the slots the frozen shard lost
      frozen.resume();
      log(`SIGCONTed ${frozen.name} after ${Date.now() - frozenAt} ms`);
      await settled(three, "frozen shard back", 60_000 + lease);
      expect(frozen.running, `${frozen.name} still runs after SIGCONT`).toBe(true);

      // --- quiesce, stop gracefully, audit -----------------------------------------------------
      await stopChurn();
      await converged("final");
      const stops = await Promise.all(s.shards().map((p) => p.terminate(20_000)));
      expect(stops.filter((x) => x.forced || x.code !== 0)).toEqual([]);

      const report = await s.audit();
      const duration = Date.now() - started;
      const st = report.stats;
      log(summaryLine(report, duration));
      log(
        `reconciles ${st.reconciles} ${JSON.stringify(st.perProcess)}; identities ${st.identities}; ` +
          `generations ${st.generationsObserved}; migrations ${st.migrationsObserved}; ` +
          `slot handoffs seen ${st.slotOwnerChanges} (${st.slotsHandedOff} slots); writes ${st.writes}; ` +
          `pause max ${st.pause.maxMs} ms (p99 ${st.pause.p99Ms}, ${st.pause.max?.op} of ${st.pause.max?.key} ` +
          `sent ${st.pause.max ? new Date(st.pause.max.sentAt).toISOString().slice(11, 23) : "-"}), ` +
          `updates max ${st.updatePause.maxMs} ms (p50 ${st.updatePause.p50Ms}, p99 ${st.updatePause.p99Ms}); ` +
          `duration ${(duration / 1000).toFixed(0)} s`,
      );
      if (!report.ok) log(`violations:\n${formatViolations(report.violations, 40)}`);
      expect(report.violations).toEqual([]);
      expect(st.secrets).toBe(SECRETS);
      expect(st.converged).toBe(SECRETS);
      // The run really exercised handoffs: slots changed hands between processes.
      expect(st.slotOwnerChanges).toBeGreaterThan(0);
      failed = false;
    }, 900_000);
  },
);
