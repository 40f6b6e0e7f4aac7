// `npm run demo`: slotmap end to end on a local control plane, watched live.
//
// Starts kube-apiserver + etcd (test/support/controlplane.ts; the first run builds it), installs
// the SlotMap CRD, runs the coordinator and 3 shards of the example checksum controller as
// processes, creates Secrets, adds a shard, kills one, and shows the slot table moving. Then it
// audits the shards' reconcile logs (test/e2e/auditor.ts) and ends with one summary line; the
// exit status is non-zero if anything failed (a timeout, a violation).
//
// `--in-cluster`: the same on real pods instead of processes: a local node (root only; see
// tools/node), the image built from the Dockerfile, deploy/ applied unchanged, then a leader
// coordinator pod deleted, the shards restarted, scaled and one force-deleted
// (test/incluster/scenario.ts, which the in-cluster test runs too), audited from `kubectl logs`.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { type AuditReport, formatViolations, summaryLine } from "../test/e2e/auditor.js";
import { type Convergence, describeStatus, httpFor, isSettled } from "../test/e2e/driver.js";
import { LineTail } from "../test/e2e/harness.js";
import { COORDINATOR_SCRIPT, SHARD_SCRIPT, SlotmapSystem } from "../test/e2e/system.js";
import { runScenario } from "../test/incluster/scenario.js";
import { type ControlPlane, startControlPlane } from "../test/support/controlplane.js";
import { type ClusterWithNode, startClusterWithNode } from "../test/support/incluster.js";
import { Dashboard, type DashboardState } from "./demo/dashboard.js";

interface Options {
  secrets: number;
  tty: boolean;
  keepLogs: boolean;
  inCluster: boolean;
}

function parseArgs(argv: string[]): Options {
  const positiveInt = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw new InvalidArgumentError(`${JSON.stringify(v)}: must be a whole number from 1 to 100000`);
    }
    return n;
  };
  const cmd = new Command("demo")
    .description(
      "slotmap on a local control plane: coordinator, 3 shards, Secrets, a shard added, one killed",
    )
    .option("--secrets <n>", "Secrets to create", positiveInt, 1000)
    .option("--no-tty", "plain progress lines instead of the live grid")
    .option("--keep-logs", "keep the processes' log directory")
    .option(
      "--in-cluster",
      "run deploy/ as pods on a local node (root; builds the image) instead of processes",
    )
    .allowExcessArguments(false)
    .parse(argv, { from: "user" });
  const o = cmd.opts<{ secrets: number; tty: boolean; keepLogs?: boolean; inCluster?: boolean }>();
  return {
    secrets: o.secrets,
    tty: o.tty && process.stdout.isTTY === true,
    keepLogs: o.keepLogs === true,
    inCluster: o.inCluster === true,
  };
}

/** The audit's figures, in the same words for processes and pods. */
function printAudit(out: NodeJS.WriteStream, report: AuditReport): void {
  const st = report.stats;
  const perShard = Object.entries(st.perShard)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  out.write(
    `reconciles: ${st.reconciles} (${perShard}); handoffs: ${st.migrationsObserved} migrations, ` +
      `${st.slotOwnerChanges} slot owner changes seen in the logs; longest pause of a change: ` +
      `${(st.pause.maxMs / 1000).toFixed(1)} s (updates ${(st.updatePause.maxMs / 1000).toFixed(1)} s)\n`,
  );
  if (!report.ok) out.write(`violations:\n${formatViolations(report.violations)}\n`);
}

/** `--in-cluster`: see the module comment. */
async function mainInCluster(opts: Options): Promise<number> {
  const started = Date.now();
  const out = process.stdout;
  const say = (msg: string) =>
    out.write(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${msg}\n`);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-demo-"));
  let cluster: ClusterWithNode | undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${sig}: stopping the node and the control plane...\n`);
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let exitCode = 1;
  try {
    say("building the image from the Dockerfile (cached), starting kube-apiserver + etcd and a node");
    cluster = await startClusterWithNode({ log: say });
    const result = await runScenario({
      kubectl: cluster.cp.kubectlPath,
      kubeconfig: cluster.cp.kubeconfig,
      logDir,
      secrets: opts.secrets,
      say,
    });
    const t = result.leaderTakeover;
    out.write(
      `leader coordinator pod ${t.from} deleted: ${t.to} (${t.toWasStandby ? "the standby" : "its replacement"}) leads\n`,
    );
    out.write(`logs of ${result.instances.length} shard containers read with kubectl logs\n`);
    printAudit(out, result.report);
    out.write(`${summaryLine(result.report, Date.now() - started)}\n`);
    exitCode = result.report.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    if (cluster) process.stderr.write(`${cluster.node.diagnostics(10)}\n`);
    opts.keepLogs = true;
  } finally {
    if (!stopping) {
      await cluster?.stop().catch((err: unknown) => process.stderr.write(`${String(err)}\n`));
      if (opts.keepLogs) process.stderr.write(`pod logs kept in ${logDir}\n`);
      else fs.rmSync(logDir, { recursive: true, force: true });
    }
  }
  return exitCode;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.inCluster) return mainInCluster(opts);
  for (const f of [COORDINATOR_SCRIPT, SHARD_SCRIPT]) {
    if (!fs.existsSync(path.resolve(import.meta.dirname, "..", f))) {
      process.stderr.write(`demo: ${f} is missing\n`);
      return 1;
    }
  }
  const started = Date.now();
  const out = process.stdout;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-demo-"));

  // Live state shown by the dashboard.
  let phase = "starting the control plane";
  const events: string[] = [];
  const say = (msg: string) => {
    const line = `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${msg}`;
    events.push(line);
    if (!opts.tty) out.write(`${line}\n`);
  };
  const reconciles = new Map<string, number>();
  const tails = new Map<string, LineTail>();
  let converged: Convergence | undefined;

  say("starting kube-apiserver + etcd (the first run builds them from Go modules: minutes)");
  let cp: ControlPlane | undefined;
  let sys: SlotmapSystem | undefined;
  let dashboard: Dashboard | undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    dashboard?.stop();
    process.stderr.write(`\n${sig}: stopping...\n`);
    void (async () => {
      await sys?.teardown({ graceMs: 3000 }).catch(() => {});
      await cp?.stop();
      process.exit(130);
    })();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let exitCode = 1;
  try {
    cp = await startControlPlane();
    say(`control plane ${cp.server} ready`);
    phase = "installing the CRD and the SlotMap";
    const http = httpFor(cp.kubeconfig);
    sys = await SlotmapSystem.create({
      http,
      kubeconfig: cp.kubeconfig,
      logDir,
      prefix: "checksums",
      handoffTimeoutSeconds: 10,
      concurrency: 4,
    });
    const s = sys;
    say(`SlotMap ${s.slotMap}: Secrets in ${s.namespace}, shard Leases in ${s.leaseNamespace}`);

    const state = (): DashboardState => {
      for (const p of s.group.all()) {
        if (!p.name.startsWith("shard-")) continue;
        const tail = tails.get(p.name) ?? new LineTail(p.stdoutPath);
        tails.set(p.name, tail);
        const shard = SlotmapSystem.shardOf(p.name);
        for (const l of tail.poll()) {
          if (l.includes('"reconcile"')) reconciles.set(shard, (reconciles.get(shard) ?? 0) + 1);
        }
      }
      const processes = new Map<string, string>();
      for (const p of s.group.all()) {
        if (!p.name.startsWith("shard-")) continue;
        const st = p.running ? "running" : p.exit?.signal === "SIGKILL" ? "killed" : "stopped";
        processes.set(SlotmapSystem.shardOf(p.name), st);
      }
      const migrations = new Set<string>();
      for (const h of s.watch.history)
        for (const m of h.migrations) migrations.add(`${m.from}>${m.to}@${m.generation}`);
      return {
        phase,
        elapsedMs: Date.now() - started,
        status: s.watch.status,
        reconciles,
        processes,
        migrations: migrations.size,
        converged,
        events,
      };
    };
    dashboard = new Dashboard(out, opts.tty, state);
    dashboard.start();

    const settle = async (ready: string[], timeoutMs = 60_000) => {
      const st = await s.guard(
        s.watch.waitFor((x) => isSettled(x, ready), timeoutMs, `settled on ${ready.join(", ")}`),
      );
      say(`balanced: ${describeStatus(st)}`);
    };
    const converge = async (timeoutMs: number) => {
      converged = await s.guard(
        s.fleet.waitConverged({
          timeoutMs,
          onProgress: (c) => {
            converged = c;
          },
        }),
      );
      say(`${converged.converged}/${converged.total} ConfigMaps up to date`);
    };

    phase = "coordinator and 3 shards starting";
    s.startCoordinator("coordinator-0");
    for (const n of ["shard-0", "shard-1", "shard-2"]) s.startShard(n);
    say("started slotmap-coordinator and shards shard-0, shard-1, shard-2");
    await settle(["shard-0", "shard-1", "shard-2"]);

    phase = `creating ${opts.secrets} Secrets`;
    await s.fleet.create(opts.secrets, {
      concurrency: 16,
      onProgress: (n) => {
        converged = { converged: converged?.converged ?? 0, total: n, missing: 0, wrong: 0 };
      },
    });
    say(`created ${opts.secrets} Secrets; shards write <secret>-checksum ConfigMaps`);
    phase = "waiting for every ConfigMap";
    await converge(180_000);

    // Secrets keep changing while shards come and go.
    const stopChurn = s.fleet.churn(10);
    phase = "adding shard-3";
    s.startShard("shard-3");
    say("started shard-3: the coordinator moves slots to it; each source acks before they move");
    await settle(["shard-0", "shard-1", "shard-2", "shard-3"]);

    phase = "killing shard-1";
    await s.shardProcess("shard-1").kill();
    say("SIGKILLed shard-1: its Lease expires, the coordinator takes it over, its slots move");
    await settle(["shard-0", "shard-2", "shard-3"], 60_000);

    phase = "converging";
    await stopChurn();
    await converge(120_000);

    // The last frame shows the balanced table; what follows is plain lines.
    phase = "done: every ConfigMap up to date";
    dashboard.stop();
    dashboard = undefined;
    out.write("stopping the shards (SIGTERM: drain, ack, release the Lease) and auditing their logs...\n");
    const stops = await Promise.all(s.shards().map((p) => p.terminate(20_000)));
    const unclean = stops.filter((x) => x.forced || x.code !== 0).length;

    const report = await s.audit();
    printAudit(out, report);
    if (unclean) out.write(`${unclean} shard(s) did not stop cleanly on SIGTERM\n`);
    out.write(`${summaryLine(report, Date.now() - started)}\n`);
    exitCode = report.ok && unclean === 0 ? 0 : 1;
  } catch (err) {
    dashboard?.stop();
    dashboard = undefined;
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    if (sys) process.stderr.write(`${sys.diagnostics(10)}\n`);
    opts.keepLogs = true;
  } finally {
    if (!stopping) {
      await sys?.teardown({ graceMs: 5000, keepObjects: true }).catch(() => {});
      await cp?.stop();
      if (opts.keepLogs) process.stderr.write(`logs kept in ${logDir}\n`);
      else fs.rmSync(logDir, { recursive: true, force: true });
    }
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
