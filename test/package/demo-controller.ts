// Issue 16's trial controller, written from docs/client.md alone against the packed tarball:
// ConfigMaps labelled app=demo get an annotation counting their keys. Sharded by the SlotMap
// "demo" (spec.resources: configmaps). Compiled with tsc --strict by test/package/run.sh; its line
// count is the figure of "how much code a sharded controller needs".
import { createShardMember, ShardMetrics, shardChecks, startController, untilShutdown } from "slotmap";
import { loadKubeConfig, startOpsServer } from "slotmap/kube";

interface ConfigMap {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

const log = {
  debug: () => {},
  info: (fields: object, msg: string) => console.log(JSON.stringify({ level: "info", msg, ...fields })),
  warn: (fields: object, msg: string) => console.warn(JSON.stringify({ level: "warn", msg, ...fields })),
  error: (fields: object, msg: string) => console.error(JSON.stringify({ level: "error", msg, ...fields })),
};

export async function main(shard: string): Promise<number> {
  const member = createShardMember({
    kubeConfig: await loadKubeConfig(),
    slotMap: "demo",
    shard,
    logger: log,
  });
  const controller = startController<ConfigMap>({
    member,
    reconcile: async (req) => {
      const cm = req.object;
      if (cm?.metadata?.labels?.app !== "demo") return;
      const count = String(Object.keys(cm.data ?? {}).length);
      if (cm.metadata.annotations?.["demo/keys"] === count) return;
      const path = `/api/v1/namespaces/${req.namespace}/configmaps/${req.name}`;
      await req.write.patch(path, { metadata: { annotations: { "demo/keys": count } } });
    },
  });
  const metrics = new ShardMetrics(member);
  metrics.attach(controller);
  const checks = shardChecks(member, controller);
  const ops = await startOpsServer({ address: ":8080", registry: metrics.registry, ...checks });
  return untilShutdown({
    logger: log,
    stop: async (cause) => {
      await Promise.all([member.stop({ abortInFlight: cause === "fatal" }), controller.stop()]);
      await ops.close();
    },
  });
}
