// kubectl-slotmap against a real API server. No coordinator exists here: the test writes SlotMap
// status through the status subresource itself (computed with the real planner), and plays the
// coordinator during `drain`. One run goes through kubectl's plugin mechanism.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { Simulation } from "../../src/cli/commands/plan.js";
import type { Placement } from "../../src/cli/commands/which.js";
import type { CliIO, TextSink } from "../../src/cli/io.js";
import { main } from "../../src/cli/main.js";
import { isStatus, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import {
  emptyTable,
  keySlot,
  objectKey,
  ownerOf,
  plan,
  type ShardInfo,
  type SlotTable,
  type StatusTable,
  tableFromStatus,
  tableToStatus,
} from "../../src/slots/index.js";
import { ENV, freshNamespace, kubeConfig, kubeconfigPath, kubectl, waitFor } from "../support/cluster.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const NAME = `cli-${randomBytes(3).toString("hex")}`;
const SHARDS = ["s-0", "s-1", "s-2"];
const SM_PATH = `/apis/slotmap.dev/v1alpha1/slotmaps/${NAME}`;
let leaseNs = "";
let objNs = "";
let http: KubeHttp;

class Capture implements TextSink {
  text = "";
  readonly isTTY = false;
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

/** Runs the CLI in-process against the test cluster (real clock, 200 ms drain polls). */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const io: CliIO = {
    stdout,
    stderr,
    env: {},
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  };
  const code = await main(["--kubeconfig", kubeconfigPath(), ...argv], { io, drainIntervalMs: 200 });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function getSlotMap(): Promise<KubeObject> {
  return http.request<KubeObject>("GET", SM_PATH);
}

/** Writes `table` as the status, as the coordinator would: an update of the status subresource. */
async function writeStatus(table: SlotTable, observedGeneration?: number): Promise<void> {
  const wire = tableToStatus(table);
  for (;;) {
    const obj = await getSlotMap();
    obj.status = {
      ...wire,
      observedGeneration: observedGeneration ?? obj.metadata?.generation,
      shards: wire.shards.map((s) => ({ ...s, holderIdentity: `${s.name}-pod` })),
      shardCount: wire.shards.length,
      readyShards: wire.shards.length,
    };
    try {
      await http.request("PUT", `${SM_PATH}/status`, { body: obj });
      return;
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }
}

async function currentTable(): Promise<SlotTable> {
  return tableFromStatus((await getSlotMap()).status as unknown as StatusTable);
}

/** One planner step from the current status with these weights, every shard acking. */
async function coordinatorStep(weights: Record<string, number>): Promise<SlotTable> {
  const t = await currentTable();
  const shards: ShardInfo[] = SHARDS.map((name) => ({
    name,
    state: "Ready",
    weight: weights[name] ?? 1,
    ackedGeneration: t.generation,
  }));
  const next = plan(t, shards, { maxMigratingSlots: 16384 }).table;
  await writeStatus(next);
  return next;
}

beforeAll(async () => {
  http = new KubeHttp(kubeConfig());
  const crd = await kubectl([
    "apply",
    "--server-side",
    "--force-conflicts",
    "-f",
    path.join(repoRoot, "crds"),
  ]);
  expect(crd.code, crd.stderr).toBe(0);
  await waitFor(async () => (await kubectl(["get", "slotmaps.slotmap.dev"])).code === 0, {
    timeoutMs: 60_000,
    description: "the SlotMap API to be served",
  });
  leaseNs = await freshNamespace("cli-leases");
  objNs = await freshNamespace("cli-objects");
  const sm = {
    apiVersion: "slotmap.dev/v1alpha1",
    kind: "SlotMap",
    metadata: { name: NAME },
    spec: {
      leaseNamespace: leaseNs,
      resources: [
        { group: "", resource: "secrets", controlledResources: [{ group: "", resource: "configmaps" }] },
      ],
    },
  };
  const leases = SHARDS.map((s) => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: s, namespace: leaseNs, labels: { "slotmap.dev/slotmap": NAME } },
    spec: { holderIdentity: `${s}-pod`, leaseDurationSeconds: 15 },
  }));
  const r = await kubectl(["apply", "-f", "-"], {
    input: [sm, ...leases].map((d) => `---\n${stringify(d)}`).join(""),
  });
  expect(r.code, r.stderr).toBe(0);
  const shards: ShardInfo[] = SHARDS.map((name) => ({ name, state: "Ready", weight: 1, ackedGeneration: 0 }));
  await writeStatus(plan(emptyTable(), shards, { maxMigratingSlots: 16384 }).table);
  // Acks live in the Leases (the status does not copy them): s-0 acks generation 1.
  const uid = (await getSlotMap()).metadata?.uid ?? "";
  const ack = await kubectl([
    "annotate",
    "lease",
    "-n",
    leaseNs,
    "s-0",
    "slotmap.dev/observed-generation=1",
    `slotmap.dev/slotmap-uid=${uid}`,
  ]);
  expect(ack.code, ack.stderr).toBe(0);
});

afterAll(async () => {
  await kubectl(["delete", "slotmaps.slotmap.dev", NAME, "--ignore-not-found", "--wait=false"]);
});

describe("kubectl-slotmap against the API server", () => {
  it("get lists the SlotMap and shows its shards, acks and table", async () => {
    const list = await cli(["get"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${NAME}\\s+3\\s+3\\s+1\\s+0\\s+-\\s+\\d+s$`, "m"));
    const one = await cli(["get", NAME]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain(`Lease namespace:       ${leaseNs}`);
    expect(one.stdout).toContain("Slots:                 16384 owned, 0 migrating, 0 unassigned");
    expect(one.stdout).toMatch(/^s-0\s+Ready\s+5462\s+0-5461\s+1\/1\s+s-0-pod$/m);
    expect(one.stdout).toMatch(/^s-1\s+Ready\s+5461\s+5462-10922\s+-\/1 \(behind\)\s+s-1-pod$/m);
    const json = await cli(["get", NAME, "-o", "json"]);
    expect(JSON.parse(json.stdout)).toEqual(await getSlotMap());
  });

  it("which: a Secret by its own key, its ConfigMap by its controller's", async () => {
    const secret = await http.request<KubeObject>("POST", `/api/v1/namespaces/${objNs}/secrets`, {
      body: { metadata: { name: "db-password" }, stringData: { password: "x" } },
    });
    await http.request("POST", `/api/v1/namespaces/${objNs}/configmaps`, {
      body: {
        metadata: {
          name: "db-password-checksum",
          ownerReferences: [
            {
              apiVersion: "v1",
              kind: "Secret",
              name: "db-password",
              uid: secret.metadata?.uid,
              controller: true,
            },
          ],
        },
        data: { sha256: "..." },
      },
    });
    const key = objectKey("", "Secret", objNs, "db-password");
    const slot = keySlot(key);
    const owner = ownerOf(await currentTable(), slot);
    const r = await cli(["which", "secret", "db-password", "-n", objNs, "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const [p] = JSON.parse(r.stdout).placements as Placement[];
    expect(p).toMatchObject({
      slotmap: NAME,
      role: "root",
      via: "self",
      key,
      slot,
      owner,
      ownerState: "Ready",
    });
    const cm = await cli(["which", "cm", "db-password-checksum", "-n", objNs, "-o", "json"]);
    expect(cm.code, cm.stderr).toBe(0);
    const [q] = JSON.parse(cm.stdout).placements as Placement[];
    expect(q).toMatchObject({ role: "controlled", via: "controller", key, slot, owner });
    const text = await cli(["which", "secrets", "db-password", "-n", objNs, "--slotmap", NAME]);
    expect(text.stdout).toContain(`Owner:    ${owner} (Ready)`);
  });

  it("view draws the grid and writes an SVG", async () => {
    const grid = await cli(["view", NAME, "--color", "always"]);
    expect(grid.code, grid.stderr).toBe(0);
    expect(grid.stdout.split("\n").filter((l) => l.includes("▀"))).toHaveLength(64);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-cli-")), `${NAME}.svg`);
    const r = await cli(["view", NAME, "--svg", file]);
    expect(r.code, r.stderr).toBe(0);
    const svg = fs.readFileSync(file, "utf8");
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    for (const s of SHARDS)
      expect(svg).toMatch(new RegExp(`<text x="18" y="\\d+">${s}  546[12] slots  Ready</text>`));
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it("plan is a dry run: the result of adding a shard, and nothing written", async () => {
    const before = (await getSlotMap()).metadata?.resourceVersion;
    const r = await cli(["plan", NAME, "--add-shard", "s-3", "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const sim = JSON.parse(r.stdout) as Simulation;
    expect(sim.result.balanced).toBe(true);
    expect(sim.result.shards.map((s) => s.after)).toEqual([4096, 4096, 4096, 4096]);
    expect((await getSlotMap()).metadata?.resourceVersion).toBe(before);
  });

  it("drain (spec.weights) waits for the coordinator to empty the shard", async () => {
    const drain = cli(["drain", "s-2", "--slotmap", NAME, "--timeout", "60s"]);
    // Play coordinator: react to the new weight like the real one would, in two generations.
    const generation = await waitFor(
      async () => {
        const obj = await getSlotMap();
        const w = (obj.spec as { weights?: Record<string, number> }).weights;
        return w?.["s-2"] === 0 ? obj.metadata?.generation : undefined;
      },
      { timeoutMs: 20_000, description: "drain to set spec.weights" },
    );
    expect(generation).toBe(2);
    const started = await coordinatorStep({ "s-2": 0 });
    expect(started.migrations.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 500)); // let drain observe the handoff in flight
    const done = await coordinatorStep({ "s-2": 0 });
    expect(done.migrations).toEqual([]);
    const r = await drain;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`slotmap ${NAME}: spec.weights["s-2"] set to 0`);
    expect(r.stderr).toMatch(/^s-2: 5461 slots left \(5461 migrating\), generation 2$/m);
    expect(r.stderr).toMatch(/^s-2: 0 slots left, generation 3$/m);
    expect(r.stdout).toBe(`shard s-2 drained: it owns no slots of slotmap ${NAME} (generation 3)\n`);
    // The weight was written by kubectl-slotmap (User-Agent and fieldManager), as a merge patch.
    const managed = ((await getSlotMap()).metadata?.managedFields ?? []) as Array<{
      manager: string;
      fieldsV1?: unknown;
    }>;
    const mine = managed.find((f) => f.manager === "kubectl-slotmap");
    expect(JSON.stringify(mine?.fieldsV1), JSON.stringify(managed)).toContain('"f:s-2"');
  });

  it("drain --via lease sets the Lease annotation; the shard empties", async () => {
    const drain = cli(["drain", "s-1", "--slotmap", NAME, "--via", "lease", "--timeout", "60s"]);
    await waitFor(
      async () => {
        const lease = await http.request<KubeObject>(
          "GET",
          `/apis/coordination.k8s.io/v1/namespaces/${leaseNs}/leases/s-1`,
        );
        return lease.metadata?.annotations?.["slotmap.dev/weight"] === "0";
      },
      { timeoutMs: 20_000, description: "drain to annotate the Lease" },
    );
    await coordinatorStep({ "s-1": 0, "s-2": 0 });
    await coordinatorStep({ "s-1": 0, "s-2": 0 });
    const r = await drain;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`lease ${leaseNs}/s-1: slotmap.dev/weight set to "0"`);
    expect(r.stdout).toContain("shard s-1 drained");
    expect((await currentTable()).owner.every((o) => o === 0)).toBe(true); // s-0 owns everything
  });

  it("drain gives up at --timeout when nobody moves the slots", async () => {
    const r = await cli(["drain", "s-0", "--slotmap", NAME, "--timeout", "1s"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: timed out after \d+s waiting for shard s-0 to drain: 16384 slots left/);
  });

  it("runs as `kubectl slotmap` through kubectl's plugin mechanism, honouring KUBECONFIG", async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-plugin-"));
    const tsx = pathToFileURL(path.join(repoRoot, "node_modules/tsx/dist/loader.mjs")).href;
    const entry = path.join(repoRoot, "src/cli/kubectl-slotmap.ts");
    fs.writeFileSync(
      path.join(bin, "kubectl-slotmap"),
      `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${entry}" "$@"\n`,
      { mode: 0o755 },
    );
    const kubectlBin = process.env[ENV.kubectl] || "kubectl";
    const runPlugin = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(kubectlBin, ["slotmap", ...args], {
          env: {
            ...process.env,
            PATH: `${bin}${path.delimiter}${process.env.PATH}`,
            KUBECONFIG: kubeconfigPath(),
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          stdout += d;
        });
        child.stderr.setEncoding("utf8").on("data", (d: string) => {
          stderr += d;
        });
        child.on("error", reject);
        child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
      });
    try {
      const get = await runPlugin(["get", NAME]);
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout).toContain(`Name:                  ${NAME}`);
      const missing = await runPlugin(["get", `${NAME}-missing`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`error: slotmap "${NAME}-missing" not found`);
      const usage = await runPlugin(["keyslot"]);
      expect(usage.code).toBe(2);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});
