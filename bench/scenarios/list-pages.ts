/**
 * The cost of listing a whole resource as a shard does (its first list, and each gain list of the
 * default cache): fixed 500-item pages against the adaptive page size of `KubeHttp.pages`, side by
 * side on one control plane, alone and with three listers at once (a leave's three gainers).
 * 100k Secrets + 100k ConfigMaps by default (`SLOTMAP_BENCH_LIST_OBJECTS`, per resource).
 */
import { KubeConfig } from "@kubernetes/client-node";
import { KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { keySlot } from "../../src/slots/index.js";
import { startControlPlane } from "../../test/support/controlplane.js";
import { quantile, type Row, type Scenario } from "../lib.js";
import { connectKube, runPool } from "../support/kube.js";
import { sampleProc } from "../support/proc.js";

const RESOURCES = ["secrets", "configmaps"] as const;

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
  description: "listing 2 × 100k objects: 500-item pages vs the adaptive page size, 1 and 3 listers",
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
        await kube.http.request("POST", `/api/v1/namespaces/${ns}/secrets`, {
          body: { apiVersion: "v1", kind: "Secret", metadata: { name }, data: { v: btoa(`value-${name}`) } },
        });
        await kube.http.request("POST", `/api/v1/namespaces/${ns}/configmaps`, {
          body: {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name },
            data: { checksum: name.repeat(3) },
          },
        });
        if (++done % 20_000 === 0) opts.log(`list-pages: created ${done}/${perResource} of each`);
      });

      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfig);
      // One client per lister, as each shard is a process of its own.
      const clients = [0, 1, 2].map(() => new KubeHttp(kc));
      const listAll = async (http: KubeHttp, pageSize: number | undefined): Promise<number> => {
        let n = 0;
        for (const r of RESOURCES) {
          for await (const page of http.pages<KubeObject>(`/api/v1/${r}`, {}, { pageSize })) {
            // What a shard does per listed object at least: hash its key.
            for (const o of page.items)
              n += keySlot(`/Secret/${o.metadata?.namespace}/${o.metadata?.name}`) >= 0 ? 1 : 0;
          }
        }
        return n;
      };
      const sample = async (listers: number, pageSize: number | undefined): Promise<Sample> => {
        const a0 = sampleProc(cp.pid);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const counts = await Promise.all(clients.slice(0, listers).map((h) => listAll(h, pageSize)));
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
        for (const [what, key] of [
          ["wall time", "wallS"],
          ["API server CPU (etcd included)", "apiCpuS"],
          ["listers' CPU (one process)", "clientCpuS"],
        ] as const) {
          const f = median(fixed.map((s) => s[key]));
          const a = median(adaptive.map((s) => s[key]));
          rows.push({
            metric: `${what}, ${listers} lister(s), 500-item pages`,
            unit: "s",
            median: f,
            note: objects,
          });
          rows.push({
            metric: `${what}, ${listers} lister(s), adaptive pages`,
            unit: "s",
            median: a,
            ratio: a / f,
            baseline: "500-item pages",
            note: objects,
          });
        }
      }
      await Promise.all(clients.map((h) => h.close()));
      return rows;
    } finally {
      await kube.close();
      await cp.stop();
    }
  },
};

export default scenario;
