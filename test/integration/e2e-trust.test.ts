/**
 * End to end, the Trust threats of DESIGN.md done by hand to a running system (coordinator and
 * checksum shards as OS processes, Secrets changing all along), as an operator or a tool would:
 *
 * 1. status.assignmentGeneration set back (a restore from a backup), then a shard joins;
 * 2. a shard's Lease deleted, its holder cleared, its holder set to another string;
 * 3. spec.leaseNamespace changed (refused by the API server);
 * 7. a future ack and an ack for another SlotMap uid written into a shard's Lease;
 * 8. a rogue Lease with the SlotMap's label, a 3600 s duration and a huge weight;
 * 9. the sharding rules edited (spec.resources) under churn, and edited back;
 * 10. a shard's SlotMapShard projection restored from a backup, another's deleted;
 * 6. a reconcile that never returns (and ignores its abort) on a shard that is then drained: the
 *    shard stops renewing and exits 70 after the handoff timeout, and the object's next
 *    reconcile starts only after that exit (test/support/inject-stuck.ts makes the write hang).
 *
 * After each, the system must settle again on the live shards; the time it took is printed. At
 * the end the auditor (test/e2e/auditor.ts) must find no object and no slot reconciled by two
 * processes at once, and every Secret with its right ConfigMap.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProjectionSpec, projectionName } from "../../src/api/projection.js";
import { isStatus } from "../../src/kube/http.js";
import { objectSlot, parseSlotRanges, rangesContain } from "../../src/slots/index.js";
import { formatViolations, summaryLine } from "../e2e/auditor.js";
import { describeStatus, httpFor, isSettled, type ObservedStatus } from "../e2e/driver.js";
import { REPO_ROOT } from "../e2e/harness.js";
import { COORDINATOR_SCRIPT, SHARD_SCRIPT, SlotmapSystem } from "../e2e/system.js";
import { ENV, kubeconfigPath, kubectl, TEST_RUN_LABEL } from "../support/cluster.js";

const SECRETS = Number(process.env.SLOTMAP_E2E_TRUST_SECRETS ?? 300);
const missing = [COORDINATOR_SCRIPT, SHARD_SCRIPT].filter((f) => !fs.existsSync(path.join(REPO_ROOT, f)));
const skipReason = missing.length ? `not built yet: ${missing.join(", ")}` : undefined;

/** Polls `read()` every 200 ms until it contains `text` (60 s at most). */
async function waitForText(read: () => string, text: string): Promise<void> {
  await waitForValue(() => (read().includes(text) ? true : undefined));
}

/** Polls `get()` every 200 ms until it returns a value (60 s at most). */
async function waitForValue<T>(get: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const log = (msg: string) =>
  process.stderr.write(`[e2e-trust ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface LeaseObj {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
}

describe.skipIf(skipReason)(
  `e2e trust: operator actions against a running system${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  () => {
    let sys: SlotmapSystem | undefined;
    let logDir = "";
    let failed = true;

    beforeAll(async () => {
      logDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-e2e-trust-"));
      const runId = process.env[ENV.runId];
      sys = await SlotmapSystem.create({
        http: httpFor(kubeconfigPath()),
        kubeconfig: kubeconfigPath(),
        logDir,
        prefix: "trust",
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

    it("keeps every slot on one shard at a time through status restores, Lease edits, forged acks, a rogue Lease and a reconcile that never returns", async () => {
      const s = sys!;
      const http = s.opts.http;
      const lease = s.timings.leaseDuration * 1000;
      const leasePath = (name: string) =>
        `/apis/coordination.k8s.io/v1/namespaces/${s.leaseNamespace}/leases/${name}`;
      const smPath = `/apis/slotmap.dev/v1alpha1/slotmaps/${s.slotMap}`;
      const uid = async () => (await http.request<{ metadata: { uid: string } }>("GET", smPath)).metadata.uid;
      /** Read-modify-write of a Lease, retried on 409. */
      const editLease = async (name: string, edit: (l: LeaseObj) => void) => {
        for (;;) {
          const l = await http.request<LeaseObj>("GET", leasePath(name));
          edit(l);
          try {
            await http.request("PUT", leasePath(name), { body: l });
            return;
          } catch (err) {
            if (!isStatus(err, 409)) throw err;
          }
        }
      };
      let versionsAt = 0;
      const settled = async (
        ready: string[],
        what: string,
        since: number,
        timeoutMs = 60_000 + 3 * lease,
      ) => {
        const st = await s.guard(
          s.watch.waitFor((x) => isSettled(x, ready), timeoutMs, `${what}: settled on ${ready.join(", ")}`),
        );
        const writes = s.watch.history.length - versionsAt;
        log(`${what}: recovered in ${Date.now() - since} ms, ${writes} status writes; ${describeStatus(st)}`);
        return st;
      };
      /** Marks the start of a threat: its status writes are counted from here. */
      const begin = () => {
        versionsAt = s.watch.history.length;
        return Date.now();
      };
      /** Waits until the status grants `shard`'s slots to another holder than `holder`. */
      const regranted = (shard: string, holder: string | undefined, what: string) =>
        s.guard(
          s.watch.waitFor(
            (x) => x.shards.some((e) => e.name === shard && e.holderIdentity !== holder),
            30_000 + 3 * lease,
            `${what}: ${shard} granted to a new holder`,
          ),
        );
      const holderOf = (shard: string) =>
        s.watch.status!.shards.find((e) => e.name === shard)?.holderIdentity;
      const conditionIs = (st: ObservedStatus, type: string, reason: string) =>
        st.conditions.some((c) => c.type === type && c.reason === reason);

      // --- start: one coordinator (leader election on), three shards, Secrets churning ------------
      s.startCoordinator("coordinator-a");
      const three = ["shard-0", "shard-1", "shard-2"];
      for (const n of three) s.startShard(n);
      await settled(three, "3 shards", begin());
      // A backup of shard-1's projection, restored in threat 10a.
      const projectionPath = (shard: string) =>
        `/apis/slotmap.dev/v1alpha1/namespaces/${s.leaseNamespace}/slotmapshards/${projectionName(s.slotMap, shard)}`;
      const backup = await http.request<{ spec: ProjectionSpec }>("GET", projectionPath("shard-1"));
      await s.fleet.create(SECRETS, { concurrency: 16 });
      await s.guard(s.fleet.waitConverged({ timeoutMs: 120_000 }));
      const stopChurn = s.fleet.churn(20);

      // --- 1. status generation set back, then a shard joins ------------------------------------
      let t = begin();
      const before = s.watch.status!.assignmentGeneration;
      for (;;) {
        const cur = await http.request<{ status: Record<string, unknown> }>("GET", smPath);
        try {
          await http.request("PUT", `${smPath}/status`, {
            body: { ...cur, status: { ...cur.status, assignmentGeneration: 1, migrations: [] } },
          });
          break;
        } catch (err) {
          if (!isStatus(err, 409)) throw err;
        }
      }
      log(`status.assignmentGeneration set back from ${before} to 1`);
      s.startShard("shard-3");
      const four = [...three, "shard-3"];
      const reset = await s.guard(
        s.watch.waitFor(
          (x) => x.assignmentGeneration > before && conditionIs(x, "Ready", "StatusRegressed"),
          30_000,
          "the coordinator resets above every ack",
        ),
      );
      expect(reset.assignmentGeneration).toBeGreaterThanOrEqual(before + 1000);
      await settled(four, "1. generation set back + a join", t);

      // --- 2a. a shard's Lease deleted while it runs -------------------------------------------
      t = begin();
      let holder = holderOf("shard-1");
      await http.request("DELETE", leasePath("shard-1"));
      log("deleted Lease shard-1");
      await regranted("shard-1", holder, "2a");
      await settled(four, "2a. Lease deleted", t);

      // --- 2b. a shard's holder cleared by hand (no release marker) ------------------------------
      t = begin();
      holder = holderOf("shard-2");
      await editLease("shard-2", (l) => {
        l.spec.holderIdentity = "";
      });
      log("cleared the holder of Lease shard-2");
      await regranted("shard-2", holder, "2b");
      await settled(four, "2b. holder cleared", t);

      // --- 2c. a shard's holder set to another string -------------------------------------------
      t = begin();
      holder = holderOf("shard-0");
      await editLease("shard-0", (l) => {
        l.spec.holderIdentity = "intruder";
      });
      log("set the holder of Lease shard-0 to intruder");
      await regranted("shard-0", holder, "2c");
      await settled(four, "2c. holder hijacked", t);

      // --- 3. leaseNamespace edits are refused ---------------------------------------------------
      const move = await kubectl([
        "patch",
        "sm",
        s.slotMap,
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { leaseNamespace: "elsewhere" } }),
      ]);
      expect(move.code).not.toBe(0);
      expect(move.stderr).toContain("leaseNamespace is immutable");
      log("3. leaseNamespace change refused by the API server");

      // --- 7. a future ack and a foreign ack ---------------------------------------------------
      t = begin();
      const g = s.watch.status!.assignmentGeneration;
      await editLease("shard-3", (l) => {
        l.metadata.annotations = {
          ...l.metadata.annotations,
          "slotmap.dev/observed-generation": String(g + 50),
        };
      });
      log(`7a. wrote a future ack (${g + 50}) into Lease shard-3`);
      await s.guard(
        s.watch.waitFor((x) => x.assignmentGeneration >= g + 50, 30_000, "a reset above the future ack"),
      );
      await settled(four, "7a. future ack", t);
      t = begin();
      const real = await uid();
      await editLease("shard-3", (l) => {
        l.metadata.annotations = {
          ...l.metadata.annotations,
          "slotmap.dev/slotmap-uid": "00000000-0000-0000-0000-000000000000",
          "slotmap.dev/observed-generation": "999999",
        };
      });
      log("7b. wrote an ack for another SlotMap uid into Lease shard-3");
      await settled(four, "7b. foreign ack", t);
      expect(real).toBe(await uid());

      // --- 8. a rogue Lease: the SlotMap's label, 3600 s, weight 1000000 ------------------------
      t = begin();
      await http.request("POST", `/apis/coordination.k8s.io/v1/namespaces/${s.leaseNamespace}/leases`, {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name: "rogue",
            labels: { "slotmap.dev/slotmap": s.slotMap },
            annotations: { "slotmap.dev/weight": "1000000" },
          },
          spec: {
            holderIdentity: "x",
            leaseDurationSeconds: 3600,
            renewTime: new Date().toISOString().replace("Z", "000Z"),
          },
        },
      });
      log("8. created a rogue Lease (3600 s, weight 1000000)");
      await s.guard(
        s.watch.waitFor(
          (x) => x.shards.some((e) => e.name === "rogue" && e.state === "Expired" && e.slots === ""),
          30_000,
          "the rogue Lease listed without slots",
        ),
      );
      await settled(four, "8. rogue Lease gets nothing", t);
      await http.request("DELETE", leasePath("rogue"));

      // --- 9. sharding rules edited under churn: the ConfigMaps stop following their Secret, then
      // follow it again. Each placement change is a generation that assigns nothing (the drain
      // barrier) before any shard reconciles under the new rules.
      const original = (await http.request<{ spec: { resources: unknown } }>("GET", smPath)).spec.resources;
      const edits: Array<[string, unknown]> = [
        ["9a. ConfigMaps no longer follow their Secret", [{ group: "", resource: "secrets" }]],
        ["9b. ConfigMaps follow their Secret again", original],
      ];
      for (const [what, resources] of edits) {
        t = begin();
        const g9 = s.watch.status!.assignmentGeneration;
        const fp = s.watch.status!.rulesFingerprint;
        expect(fp).toMatch(/^[0-9a-f]{16}$/);
        const patch = await kubectl([
          "patch",
          "sm",
          s.slotMap,
          "--type=merge",
          "-p",
          JSON.stringify({ spec: { resources } }),
        ]);
        expect(patch.code, patch.stderr).toBe(0);
        log(`${what}: spec.resources patched`);
        const barrier = await s.guard(
          s.watch.waitFor(
            (x) => x.rulesFingerprint !== fp && x.assignmentGeneration === g9 + 1,
            30_000,
            `${what}: a generation that assigns nothing, with the new rules`,
          ),
        );
        expect(barrier.shards.every((e) => e.slots === "")).toBe(true);
        expect(conditionIs(barrier, "Ready", "DrainBarrier")).toBe(true);
        await settled(four, what, t);
      }

      // --- 10a. a shard's SlotMapShard projection restored from a backup ------------------------
      // A lower generation in a newer write: shard-1 refuses it like a restored status (owns
      // nothing); the coordinator writes the projection again, the shard refuses a table at a
      // generation it applied otherwise, and the coordinator resets through a drain barrier.
      t = begin();
      const g10 = s.watch.status!.assignmentGeneration;
      for (;;) {
        const cur = await http.request<{ spec: ProjectionSpec }>("GET", projectionPath("shard-1"));
        expect(backup.spec.assignmentGeneration).toBeLessThan(cur.spec.assignmentGeneration);
        try {
          await http.request("PUT", projectionPath("shard-1"), { body: { ...cur, spec: backup.spec } });
          break;
        } catch (err) {
          if (!isStatus(err, 409)) throw err;
        }
      }
      log(
        `10a. restored shard-1's projection at generation ${backup.spec.assignmentGeneration} (table at ${g10})`,
      );
      await s.guard(
        s.watch.waitFor((x) => x.assignmentGeneration > g10, 30_000, "10a. the coordinator resets the table"),
      );
      await settled(four, "10a. projection restored from a backup", t);

      // --- 10b. a shard's projection deleted while it runs ---------------------------------------
      // No information: shard-2 keeps what it applied; the coordinator writes the projection again.
      t = begin();
      const g10b = s.watch.status!.assignmentGeneration;
      await http.request("DELETE", projectionPath("shard-2"));
      log("10b. deleted shard-2's projection");
      for (const until = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 200))) {
        try {
          await http.request("GET", projectionPath("shard-2"));
          break;
        } catch (err) {
          if (!isStatus(err, 404) || Date.now() > until) throw err;
        }
      }
      log("10b. shard-2's projection written again");
      await settled(four, "10b. projection deleted", t);
      expect(s.watch.status!.assignmentGeneration).toBe(g10b);

      // --- 6. a reconcile that never returns, on a shard that is then drained --------------------
      const stuckShard = s.startShard("shard-4", {
        preload: ["test/support/inject-stuck.ts"],
        env: { SLOTMAP_TEST_STUCK_PREFIX: "stuck-" },
      });
      const five = [...four, "shard-4"];
      await settled(five, "6. shard-4 (with a write that hangs) joins", begin());
      const owned = parseSlotRanges(s.watch.status!.shards.find((e) => e.name === "shard-4")!.slots, "slots");
      let stuckName = "";
      for (let i = 0; stuckName === ""; i++) {
        const name = `stuck-${i}`;
        const slot = objectSlot({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { namespace: s.namespace, name },
        });
        if (slot !== undefined && rangesContain(owned, slot)) stuckName = name;
      }
      await http.request("POST", `/api/v1/namespaces/${s.namespace}/secrets`, {
        body: { apiVersion: "v1", kind: "Secret", metadata: { name: stuckName }, stringData: { v: "1" } },
      });
      await s.guard(
        waitForText(
          () => fs.readFileSync(stuckShard.stderrPath, "utf8"),
          `ConfigMap ${stuckName}-checksum hangs`,
        ),
      );
      t = begin();
      stuckShard.expectExit();
      const drain = await kubectl([
        "patch",
        "sm",
        s.slotMap,
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { weights: { "shard-4": 0 } } }),
      ]);
      expect(drain.code, drain.stderr).toBe(0);
      log(`6. ${stuckName} (slot of shard-4) hangs in its write; shard-4 drained (weight 0)`);
      const exit = await stuckShard.exited;
      const exitedAt = stuckShard.exitedAt!;
      expect(exit.code).toBe(70);
      log(`6. shard-4 escalated and exited ${exit.code} after ${exitedAt - t} ms`);
      await settled(four, "6. stuck reconcile escalated", t);
      const next = await s.guard(
        waitForValue(() =>
          s
            .reconciles()
            .records.find((r) => r.key.endsWith(`/${stuckName}`) && r.process !== stuckShard.name),
        ),
      );
      // The stuck reconcile ended with its process: the next one may start only after that.
      expect(next.start, `next reconcile of ${stuckName} by ${next.process}`).toBeGreaterThan(exitedAt);
      log(`6. ${stuckName} reconciled again by ${next.process} ${next.start - exitedAt} ms after the exit`);
      expect(stuckShard.readStdout()).toContain("did not return within the handoff timeout");

      // --- quiesce, stop gracefully, audit -------------------------------------------------------
      await stopChurn();
      await s.guard(s.fleet.waitConverged({ timeoutMs: 120_000 }));
      const stops = await Promise.all(s.shards().map((p) => p.terminate(20_000)));
      expect(stops.filter((x) => x.forced || x.code !== 0)).toEqual([]);
      const report = await s.audit();
      log(summaryLine(report, 0));
      if (!report.ok) log(`violations:\n${formatViolations(report.violations, 40)}`);
      expect(report.violations).toEqual([]);
      expect(report.stats.converged).toBe(SECRETS);
      failed = false;
    }, 900_000);
  },
);
