// A controller author's program, compiled with tsc --strict in a separate project that installed
// the packed tarball: it may use public exports only (test/package/run.sh).
import {
  createShardMember,
  isStatus,
  KubeHttp,
  keySlot,
  objectSlot,
  type Reconciler,
  ShardMemberConfigError,
  SLOT_COUNT,
  shardChecks,
  startController,
} from "slotmap";
import { LIMITS, SlotMapSchema } from "slotmap/api";
import { ConfigError, parseFlags } from "slotmap/flags";
import { type KubeConfig, loadKubeConfig, startOpsServer } from "slotmap/kube";
import { formatSlotRanges, plan } from "slotmap/slots";

const reconcile: Reconciler = async (req) => {
  req.signal.throwIfAborted();
};

const slot = keySlot("x");
const objSlot = objectSlot({ apiVersion: "v1", kind: "Secret", metadata: { namespace: "ns", name: "s" } });
const out = {
  node: process.versions.node,
  slot,
  objSlot,
  slotCount: SLOT_COUNT,
  ranges: formatSlotRanges([{ start: 0, end: 9 }]),
  nameLength: LIMITS.nameLength,
  schema: typeof SlotMapSchema.safeParse,
  flags: typeof parseFlags === "function" && new ConfigError("x") instanceof Error,
  api: [createShardMember, startController, shardChecks, startOpsServer, loadKubeConfig, isStatus].every(
    (f) => typeof f === "function",
  ),
  reconciler: typeof reconcile,
  http: typeof KubeHttp,
  configError: ShardMemberConfigError.name,
  planner: typeof plan,
};
// Types only, never called: the kubeconfig type is the one createShardMember takes.
export function memberFor(kc: KubeConfig) {
  return createShardMember({ kubeConfig: kc, slotMap: "demo", shard: "demo-0" });
}
// Typed objects: the reconciler sees its own types for the root and controlled objects.
interface Secret {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
}
interface ConfigMap {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
}
const typed: Reconciler<Secret> = async (req) => {
  const keys: string[] = Object.keys(req.object?.data ?? {});
  const cms: ConfigMap[] = req.controlled<ConfigMap>({ group: "", resource: "configmaps" });
  req.signal.throwIfAborted();
  void keys;
  void cms;
};
export function typedController(kc: KubeConfig): Secret | undefined {
  return startController<Secret>({ member: memberFor(kc), reconcile: typed }).get("/Secret/ns/s");
}
console.log(JSON.stringify(out));
