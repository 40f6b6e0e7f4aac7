// Fault injection against the real API server, through a loopback TCP proxy that stalls, resets
// and half-closes connections (test/support/fault-proxy.ts), for a shard process (the checksum
// example) and the coordinator process, each a real OS process:
// - no connection fault kills a process, and it renews again once the network heals;
// - a fatal (uncaught) error releases the Lease and exits 1;
// - SIGTERM drains, releases and exits 0;
// - a busy listen address (the shard's --metrics-address, the coordinator's
//   --health-probe-bind-address) exits 1 before any Lease is taken;
// - the leader elector steps down on time when its API calls stall (renew deadline watchdog).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION_RELEASED_BY } from "../../src/api/index.js";
import { isStatus, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { LeaderElector } from "../../src/kube/leader-election.js";
import { freshNamespace, kubeConfig, waitFor } from "../support/cluster.js";
import { type FaultProxy, kubeConfigVia, startFaultProxy } from "../support/fault-proxy.js";
import { createSlotMap, ensureCrd, repoRoot, uniqueName } from "./coordinator-harness.js";

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string | null; renewTime?: string | null };
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

const TIMING = ["--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5"];
let http: KubeHttp;
let proxy: FaultProxy;
let proxyKubeconfig: string;
const dir = mkdtempSync(join(tmpdir(), "slotmap-faults-"));
const procs: Proc[] = [];

beforeAll(async () => {
  http = new KubeHttp(kubeConfig());
  await ensureCrd();
  proxy = await startFaultProxy(kubeConfig().getCurrentCluster()!.server);
  proxyKubeconfig = join(dir, "via-proxy.kubeconfig");
  writeFileSync(proxyKubeconfig, kubeConfigVia(kubeConfig(), proxy.port).exportConfig());
});
afterEach(() => {
  proxy.mode("pass");
  for (const p of procs.splice(0)) if (p.child.exitCode === null) p.child.kill("SIGKILL");
});
afterAll(async () => {
  await proxy.close();
  await http.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `script` under `node --import tsx` (plus preloads) in the repo, output collected. */
function start(script: string, args: string[], preload: string[] = []): Proc {
  const imports = ["tsx", ...preload].flatMap((p) => ["--import", p]);
  const child = spawn(process.execPath, [...imports, script, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, KUBECONFIG: "" },
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  const p = { child, output: () => out, exited };
  procs.push(p);
  return p;
}

const shard = (sm: string, ns: string, name: string, extra: string[] = [], preload: string[] = []) =>
  start(
    "examples/checksum-controller/main.ts",
    [
      ...["--shard", name, "--slotmap", sm, "--lease-namespace", ns, "--kubeconfig", proxyKubeconfig],
      ...["--metrics-address", "127.0.0.1:0", "--stop-timeout", "5", ...TIMING, ...extra],
    ],
    preload,
  );

async function getLease(ns: string, name: string): Promise<Lease | undefined> {
  try {
    return await http.request<Lease>("GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`);
  } catch (err) {
    if (isStatus(err, 404)) return undefined;
    throw err;
  }
}

async function newSlotMap(): Promise<{ sm: string; ns: string }> {
  const ns = await freshNamespace("faults");
  const sm = uniqueName("faults");
  await createSlotMap(http, sm, {
    leaseNamespace: ns,
    resources: [
      { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
    ],
  });
  return { sm, ns };
}

/** Waits until the Lease is held and returns its holder. */
const held = (ns: string, name: string, timeoutMs = 30_000) =>
  waitFor(async () => (await getLease(ns, name))?.spec?.holderIdentity || undefined, {
    timeoutMs,
    description: `lease ${ns}/${name} held`,
  });

/** A port something already listens on. */
async function busyPort(): Promise<{ port: number; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** The Lease was released (holder cleared, the release marker naming the holder), not left to expire. */
async function expectReleasedBy(ns: string, name: string, holder: string): Promise<void> {
  const lease = await getLease(ns, name);
  expect(lease?.spec?.holderIdentity ?? "").toBe("");
  expect(lease?.metadata?.annotations?.[ANNOTATION_RELEASED_BY]).toBe(holder);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NO_CRASH = /Unhandled 'error' event|uncaughtException|UnhandledPromiseRejection/;

describe("shard process (examples/checksum-controller)", () => {
  it("exits 1 with a clear message when --metrics-address is busy, before taking a Lease", async () => {
    const { sm, ns } = await newSlotMap();
    const busy = await busyPort();
    try {
      const p = shard(sm, ns, "busy-0", ["--metrics-address", `127.0.0.1:${busy.port}`]);
      const { code } = await p.exited;
      expect(code, p.output()).toBe(1);
      expect(p.output()).toMatch(
        new RegExp(`--metrics-address "127.0.0.1:${busy.port}": cannot listen: .*EADDRINUSE`),
      );
      expect(await getLease(ns, "busy-0")).toBeUndefined();
    } finally {
      busy.close();
    }
  });

  it("survives resets, a stall past its renew deadline and half-closed connections; SIGTERM then releases and exits 0", async () => {
    const { sm, ns } = await newSlotMap();
    const p = shard(sm, ns, "faulty-0");
    const holder = await held(ns, "faulty-0");
    const renewTime = async () => (await getLease(ns, "faulty-0"))?.spec?.renewTime;
    const renewsAgain = async (what: string) => {
      const before = await renewTime();
      await waitFor(async () => (await renewTime()) !== before, {
        timeoutMs: 20_000,
        description: `renewal after ${what}`,
      });
    };

    proxy.mode("reset"); // every open connection reset, and every new one for 2 s
    await sleep(2_000);
    proxy.mode("pass");
    await renewsAgain("resets");

    proxy.mode("stall"); // past the 3 s renew deadline: the shard fences itself, does not die
    await sleep(4_500);
    proxy.mode("pass");
    proxy.mode("reset"); // the stalled connections are dropped, as a peer's TCP timeout would
    proxy.mode("pass");
    await renewsAgain("a stall");

    proxy.halfClose(1_000);
    await sleep(1_500);
    await renewsAgain("half-closed connections");

    expect(p.child.exitCode, p.output()).toBeNull();
    expect(p.output()).not.toMatch(NO_CRASH);
    expect((await getLease(ns, "faulty-0"))?.spec?.holderIdentity).toBe(holder);

    const sent = performance.now();
    p.child.kill("SIGTERM");
    const { code, at } = await p.exited;
    expect(code, p.output()).toBe(0);
    expect(at - sent).toBeLessThan(10_000);
    await expectReleasedBy(ns, "faulty-0", holder);
  });

  it("releases its Lease and exits 1 on a fatal (uncaught) error", async () => {
    const { sm, ns } = await newSlotMap();
    const p = shard(sm, ns, "fatal-0", [], ["./test/support/inject-fatal.ts"]);
    const holder = await held(ns, "fatal-0");
    const sent = performance.now();
    p.child.kill("SIGUSR2");
    const { code, at } = await p.exited;
    expect(code, p.output()).toBe(1);
    console.log(`[faults] shard fatal error: released and exited after ${Math.round(at - sent)} ms`);
    expect(at - sent).toBeLessThan(10_000);
    expect(p.output()).toMatch(/fatal error: fencing in-flight work, releasing the Lease/);
    expect(p.output()).toMatch(/injected fatal error/);
    await expectReleasedBy(ns, "fatal-0", holder);
  });

  it("exits within --stop-timeout on SIGTERM while the API server is unreachable (the Lease then expires)", async () => {
    const { sm, ns } = await newSlotMap();
    const p = shard(sm, ns, "stalled-0");
    await held(ns, "stalled-0");
    proxy.mode("stall");
    const sent = performance.now();
    p.child.kill("SIGTERM");
    const { code, at } = await p.exited;
    proxy.mode("reset");
    proxy.mode("pass");
    expect(code, p.output()).toBe(0);
    console.log(
      `[faults] shard SIGTERM while stalled: exited after ${Math.round(at - sent)} ms (--stop-timeout 5)`,
    );
    expect(at - sent).toBeLessThan(5_000 + 3_000);
    expect(p.output()).not.toMatch(NO_CRASH);
  });

  it("exits 0 on SIGTERM while still waiting for its SlotMap", async () => {
    const ns = await freshNamespace("faults-nosm");
    const p = shard(uniqueName("absent"), ns, "early-0");
    await waitFor(() => /checksum controller started/.test(p.output()), { description: "start-up" });
    p.child.kill("SIGTERM");
    const { code } = await p.exited;
    expect(code, p.output()).toBe(0);
    expect((await getLease(ns, "early-0"))?.spec?.holderIdentity ?? "").toBe("");
  });
});

describe("coordinator process", () => {
  const coordinator = (ns: string, extra: string[] = []) =>
    start("src/coordinator/main.ts", [
      ...["--kubeconfig", proxyKubeconfig, "--leader-elect", "true", "--leader-elect-resource-namespace", ns],
      ...["--leader-elect-resource-name", "coordinator", "--identity", uniqueName("coord")],
      ...["--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0"],
      ...["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s"],
      ...["--leader-elect-retry-period", "500ms", ...extra],
    ]);

  it("exits 1 with a clear message when --health-probe-bind-address is busy, before taking the leader Lease", async () => {
    const ns = await freshNamespace("faults-coord");
    const busy = await busyPort();
    try {
      const p = coordinator(ns, ["--health-probe-bind-address", `127.0.0.1:${busy.port}`]);
      const { code } = await p.exited;
      expect(code, p.output()).toBe(1);
      expect(p.output()).toMatch(
        /error: --health-probe-bind-address "127.0.0.1:\d+": cannot listen: .*EADDRINUSE/,
      );
      expect(await getLease(ns, "coordinator")).toBeUndefined();
    } finally {
      busy.close();
    }
  });

  it("survives resets, a stall and half-closes, leads again, and releases the leader Lease on SIGTERM", async () => {
    const ns = await freshNamespace("faults-coord");
    const p = coordinator(ns);
    await held(ns, "coordinator");
    proxy.mode("reset");
    await sleep(2_000);
    proxy.mode("stall");
    await sleep(4_500); // past the renew deadline: steps down
    proxy.mode("reset");
    proxy.mode("pass");
    proxy.halfClose(1_000);
    await sleep(1_500);
    await waitFor(() => /became leader/.test(p.output().split("stopped leading").at(-1) ?? ""), {
      timeoutMs: 30_000,
      description: "leading again after the faults",
    });
    expect(p.output()).toMatch(/stopped leading/);
    expect(p.child.exitCode, p.output()).toBeNull();
    expect(p.output()).not.toMatch(NO_CRASH);
    p.child.kill("SIGTERM");
    const { code } = await p.exited;
    expect(code, p.output()).toBe(0);
    expect((await getLease(ns, "coordinator"))?.spec?.holderIdentity ?? "").toBe("");
  });
});

describe("leader elector", () => {
  it("steps down within the renew deadline when its API calls stall", async () => {
    const ns = await freshNamespace("faults-elect");
    const viaProxy = new KubeHttp(kubeConfigVia(kubeConfig(), proxy.port));
    let startedAt = 0;
    let stoppedAt = 0;
    const elector = new LeaderElector({
      http: viaProxy,
      namespace: ns,
      name: "elect",
      identity: "elect-a",
      leaseDurationSeconds: 4,
      renewDeadlineSeconds: 2,
      retryPeriodSeconds: 0.5,
      onStartedLeading: () => {
        startedAt = performance.now();
      },
      onStoppedLeading: () => {
        stoppedAt = performance.now();
      },
    });
    elector.start();
    await waitFor(() => elector.isLeader, { description: "leading" });
    await sleep(1_200); // a few renewals
    const stalledAt = performance.now();
    proxy.mode("stall");
    await waitFor(() => !elector.isLeader, { timeoutMs: 10_000, description: "step-down" });
    // The last renewal was sent at most one retry period (0.5 s) before the stall; the deadline is 2 s.
    const after = stoppedAt - stalledAt;
    console.log(
      `[faults] leader elector: stepped down ${Math.round(after)} ms after the stall began (renew deadline 2000 ms)`,
    );
    expect(startedAt).toBeGreaterThan(0);
    expect(after).toBeLessThan(2_000 + 300);
    expect(after).toBeGreaterThan(2_000 - 500 - 300);
    proxy.mode("reset");
    proxy.mode("pass");
    const stopStarted = performance.now();
    await elector.stop();
    expect(performance.now() - stopStarted).toBeLessThan(3_000);
    await viaProxy.close();
  });
});
