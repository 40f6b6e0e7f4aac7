// A shard process for test/integration/fencing.test.ts, written against the package's public
// exports as a user's controller would be. For every Secret it writes a ConfigMap
// `<secret>-owner` whose data names this shard and the Secret's value, with a merge patch (no
// resourceVersion precondition: server-side apply and patches are how most controllers write)
// stamped with the reconcile's fencing token.
//
// With a freeze value, a reconcile of a Secret holding that value prints `{"event":"pausing"}` and
// waits 1.5 s before its write: the test SIGSTOPs the process in that window. The write does not
// check `req.signal` on purpose: it is the worst case, a process frozen after its last check
// (self-fencing is time-based and cannot stop a write that was already on its way).
//
// usage: node --import tsx test/support/fencing-shard.ts <shard> <slotmap> <lease-namespace> <kubeconfig> [freeze-value]
import {
  createShardMember,
  isStatus,
  KubeHttp,
  type KubeObject,
  silentLogger,
  startController,
} from "slotmap";
import { loadKubeConfig } from "slotmap/kube";

const [shard, slotMap, leaseNamespace, kubeconfig, freeze] = process.argv.slice(2);
if (!shard || !slotMap || !leaseNamespace || !kubeconfig) {
  process.stderr.write(
    "usage: fencing-shard <shard> <slotmap> <lease-namespace> <kubeconfig> [freeze-value]\n",
  );
  process.exit(2);
}

const out = (fields: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ shard, at: Date.now(), ...fields })}\n`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kc = await loadKubeConfig(kubeconfig);
const http = new KubeHttp(kc, { userAgent: "fencing-shard/0" });
const member = createShardMember({
  kubeConfig: kc,
  slotMap,
  shard,
  leaseNamespace,
  leaseDurationSeconds: 4,
  renewDeadlineSeconds: 3,
  retryPeriodSeconds: 0.5,
  logger: silentLogger,
});
member.subscribe({
  unfenced: (identity) => out({ event: "unfenced", identity }),
  fenced: (reason) => out({ event: "fenced", reason }),
});

const controller = startController({
  member,
  concurrency: 2,
  reconcile: async (req) => {
    const secret = req.object as (KubeObject & { data?: Record<string, string> }) | undefined;
    if (secret === undefined) return;
    const value = Buffer.from(secret.data?.v ?? "", "base64").toString();
    const cms = `/api/v1/namespaces/${req.namespace}/configmaps`;
    if (freeze !== undefined && value === freeze) {
      out({ event: "pausing", key: req.key, fence: req.fence });
      await sleep(1500);
    }
    const data = { owner: shard, value };
    try {
      try {
        await http.request("PATCH", `${cms}/${req.name}-owner`, {
          body: req.fenced({ metadata: {}, data }),
          contentType: "application/merge-patch+json",
        });
      } catch (err) {
        if (!isStatus(err, 404)) throw err;
        await http.request("POST", cms, {
          body: req.fenced({ metadata: { name: `${req.name}-owner` }, data }),
        });
      }
      out({ event: "write", outcome: "ok", key: req.key, value, fence: req.fence });
    } catch (err) {
      if (!isStatus(err, 403)) throw err;
      out({
        event: "write",
        outcome: "refused",
        key: req.key,
        value,
        fence: req.fence,
        message: String(err),
      });
    }
  },
});

process.on("SIGTERM", () => {
  void controller.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
out({ event: "started" });
