/**
 * The cost of listing a whole resource as a shard does (its first list, and each gain list of the
 * default cache): fixed 500-item pages against the adaptive page size of `KubeHttp.pages`, side by
 * side on one control plane, alone and with three listers at once (a leave's three gainers).
 * 100k Secrets + 100k ConfigMaps by default (`SLOTMAP_BENCH_LIST_OBJECTS`, per resource), the
 * ConfigMaps shaped as the checksum controller's (owner reference, SHA-256) since 2026-12-05.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { startControlPlane } from "../../test/support/controlplane.js";
import { quantile, type Row, type Scenario } from "../lib.js";
import { compileEntries } from "../support/build.js";
import { connectKube, listAndHash, runPool } from "../support/kube.js";
import { sampleProc } from "../support/proc.js";

const RESOURCES = ["secrets", "configmaps"] as const;
const LIST_CHILD = "bench/support/list-child.ts";

/**
 * `listers` processes (bench/support/list-child.ts) list every resource at once; the clock and
 * the API server's CPU start once all of them are loaded and connected.
 */
async function sampleProcesses(
  cp: { kubeconfig: string; pid: number },
  childJs: string,
  listers: number,
  expected: number,
): Promise<Sample> {
  const children = Array.from({ length: listers }, () =>
    spawn(process.execPath, [childJs, cp.kubeconfig, ...RESOURCES], { stdio: ["pipe", "pipe", "inherit"] }),
  );
  const outputs = children.map((c) => createInterface({ input: c.stdout })[Symbol.asyncIterator]());
  const next = async (i: number): Promise<string> => {
    const r = await outputs[i]!.next();
    if (r.done) throw new Error(`lister process ${i} ended without answering`);
    return r.value;
  };
  for (let i = 0; i < listers; i++) {
    const line = await next(i);
    if (line !== "ready")
      throw new Error(`lister process ${i}: expected "ready", got ${JSON.stringify(line)}`);
  }
  const a0 = sampleProc(cp.pid);
  const t0 = performance.now();
  for (const c of children) c.stdin.write("go\n");
  const results = await Promise.all(
    children.map(async (_, i) => JSON.parse(await next(i)) as { objects: number; cpuS: number }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const a1 = sampleProc(cp.pid);
  await Promise.all(
    children.map(
      (c) => new Promise((resolve) => (c.exitCode !== null ? resolve(0) : c.once("exit", resolve))),
    ),
  );
  for (const r of results) {
    if (r.objects < expected)
      throw new Error(`a lister process listed ${r.objects} objects, expected ${expected}`);
  }
  return {
    wallS,
    clientCpuS: results.reduce((a, r) => a + r.cpuS, 0),
    apiCpuS: a1.cpuSeconds - a0.cpuSeconds,
  };
}

/**
 * Per metric, the median of `base` and of `other` (with its ratio to `base`): two rows named
 * `<what>, <name>`.
 */
function sideBySide(
  metrics: ReadonlyArray<readonly [string, keyof Sample]>,
  base: { name: string; samples: readonly Sample[]; note: string },
  other: { name: string; samples: readonly Sample[]; note: string },
  baseline: string,
): Row[] {
  return metrics.flatMap(([what, key]) => {
    const b = median(base.samples.map((s) => s[key]));
    const o = median(other.samples.map((s) => s[key]));
    return [
      { metric: `${what}, ${base.name}`, unit: "s", median: b, note: base.note },
      { metric: `${what}, ${other.name}`, unit: "s", median: o, ratio: o / b, baseline, note: other.note },
    ];
  });
}

interface Sample {
  wallS: number;
  clientCpuS: number;
  apiCpuS: number;
}

const median = (xs: number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

const scenario: Scenario = {
  name: "list-pages",
  description:
    "listing 2 × 100k objects: 500-item pages vs the adaptive page size, 1 and 3 listers; 3 lister processes",
  heavy: true,
  async run(opts): Promise<Row[]> {
    const perResource = Number(process.env.SLOTMAP_BENCH_LIST_OBJECTS ?? (opts.quick ? 20_000 : 100_000));
    if (!Number.isSafeInteger(perResource) || perResource < 1) {
      throw new Error(`SLOTMAP_BENCH_LIST_OBJECTS must be a positive integer, got ${perResource}`);
    }
    const cp = await startControlPlane({ controllers: false });
    const kube = connectKube(cp.kubeconfig);
    try {
      const ns = "bench-list";
      await kube.http.request("POST", "/api/v1/namespaces", {
        body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
      });
      const names = Array.from({ length: perResource }, (_, i) => `s-${String(i).padStart(6, "0")}`);
      let done = 0;
      await runPool(names, 24, async (name) => {
        const secret = await kube.http.request<KubeObject>("POST", `/api/v1/namespaces/${ns}/secrets`, {
          body: { apiVersion: "v1", kind: "Secret", metadata: { name }, data: { v: btoa(`value-${name}`) } },
        });
        // Shaped as the checksum controller's (rebalance scenarios): a controller owner reference
        // and a SHA-256 in hex.
        await kube.http.request("POST", `/api/v1/namespaces/${ns}/configmaps`, {
          body: {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: {
              name: `${name}-checksum`,
              ownerReferences: [
                { apiVersion: "v1", kind: "Secret", name, uid: secret.metadata?.uid, controller: true },
              ],
            },
            data: { checksum: createHash("sha256").update(name).digest("hex") },
          },
        });
        if (++done % 20_000 === 0) opts.log(`list-pages: created ${done}/${perResource} of each`);
      });

      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      // One client per lister, as each shard is a process of its own.
      const clients = [0, 1, 2].map(() => new KubeHttp(kc));
      const sample = async (listers: number, pageSize: number | undefined): Promise<Sample> => {
        const a0 = sampleProc(cp.pid);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const counts = await Promise.all(
          clients.slice(0, listers).map((h) => listAndHash(h, RESOURCES, pageSize)),
        );
        const wallS = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        const a1 = sampleProc(cp.pid);
        // The created objects, plus any the control plane made itself (kube-root-ca.crt).
        for (const n of counts) {
          if (n < 2 * perResource)
            throw new Error(`a list returned ${n} objects, expected ${2 * perResource}`);
        }
        return { wallS, clientCpuS: (c.user + c.system) / 1e6, apiCpuS: a1.cpuSeconds - a0.cpuSeconds };
      };

      const rounds = opts.quick ? 1 : 3;
      const rows: Row[] = [];
      for (const listers of [1, 3]) {
        const fixed: Sample[] = [];
        const adaptive: Sample[] = [];
        // Interleaved, so that a load spike hits both alike.
        for (let i = 0; i < rounds; i++) {
          fixed.push(await sample(listers, 500));
          adaptive.push(await sample(listers, undefined));
          opts.log(`list-pages: ${listers} lister(s), round ${i + 1}/${rounds}`);
        }
        const objects = `${listers} × ${2 * perResource} objects`;
        rows.push(
          ...sideBySide(
            [
              ["wall time", "wallS"],
              ["API server CPU (etcd included)", "apiCpuS"],
              ["listers' CPU (one process)", "clientCpuS"],
            ],
            { name: `${listers} lister(s), 500-item pages`, samples: fixed, note: objects },
            { name: `${listers} lister(s), adaptive pages`, samples: adaptive, note: objects },
            "500-item pages",
          ),
        );
      }
      // A leave's floor: its three gainers are three processes, each listing everything at once.
      // The same three listers as processes of their own, against the one-process figure above.
      const inProcess: Sample[] = [];
      const processes: Sample[] = [];
      const childJs = compileEntries([LIST_CHILD])(LIST_CHILD);
      for (let i = 0; i < rounds; i++) {
        inProcess.push(await sample(3, undefined));
        processes.push(await sampleProcesses(cp, childJs, 3, 2 * perResource));
        opts.log(`list-pages: 3 lister processes, round ${i + 1}/${rounds}`);
      }
      const objects = `3 × ${2 * perResource} objects`;
      rows.push(
        ...sideBySide(
          [
            ["wall time", "wallS"],
            ["API server CPU (etcd included)", "apiCpuS"],
            ["listers' CPU, summed", "clientCpuS"],
          ],
          { name: "3 listers in one process, adaptive pages", samples: inProcess, note: objects },
          {
            name: "3 lister processes, adaptive pages",
            samples: processes,
            note: `${objects}; a leave's three gainers, doing nothing but list and hash`,
          },
          "one process",
        ),
      );
      await Promise.all(clients.map((h) => h.close()));
      return rows;
    } finally {
      await kube.close();
      await cp.stop();
    }
  },
};

export default scenario;
