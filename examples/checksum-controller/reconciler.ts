/**
 * The checksum controller's reconciler: for every Secret, a ConfigMap `<secret>-checksum` in the
 * same namespace whose `data.checksum` is the SHA-256 of the Secret's data, owned by the Secret
 * (controller owner reference, so it lands on the Secret's shard and is garbage-collected with it).
 */
import { createHash } from "node:crypto";
import {
  isStatus,
  type KubeHttp,
  type KubeObject,
  type ReconcileRequest,
  type Reconciler,
  type ShardLogger,
} from "slotmap";

/** Suffix of the ConfigMap name. */
export const CONFIGMAP_SUFFIX = "-checksum";
/** Key of the checksum in the ConfigMap's data. */
export const CHECKSUM_KEY = "checksum";

/**
 * SHA-256 (hex) of a Secret's `data`: the JSON array of `[key, base64 value]` pairs sorted by key,
 * e.g. `sha256('[["password","aHVudGVyMg=="],["user","YWRtaW4="]]')`. An absent `data` hashes as `[]`.
 */
export function secretChecksum(data: Readonly<Record<string, string>> | undefined): string {
  const pairs = Object.keys(data ?? {})
    .sort()
    .map((k) => [k, data![k]]);
  return createHash("sha256").update(JSON.stringify(pairs)).digest("hex");
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  metadata?: KubeObject["metadata"] & {
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
    }>;
  };
}

const configMaps = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`;

/** Whether the ConfigMap's controller owner reference points at this Secret (same uid). */
function controlledBy(cm: ConfigMap, secret: KubeObject): boolean {
  return (cm.metadata?.ownerReferences ?? []).some(
    (r) => r.controller === true && r.kind === "Secret" && r.uid === secret.metadata?.uid,
  );
}

/**
 * Builds the reconciler. Reads the Secret and its ConfigMap from the runtime's cache; writes with
 * resourceVersion preconditions (a stale cache gets 409 and the key is retried with backoff).
 */
export function checksumReconciler(http: KubeHttp, logger?: ShardLogger): Reconciler {
  return async (req: ReconcileRequest) => {
    const secret = req.object;
    // Deleted: Kubernetes' garbage collector removes the ConfigMap (owner reference).
    if (secret === undefined || secret.metadata?.deletionTimestamp) return;
    const name = `${req.name}${CONFIGMAP_SUFFIX}`;
    if (name.length > 253) {
      logger?.warn({ key: req.key }, "Secret name too long for a checksum ConfigMap; skipped");
      return;
    }
    const want = secretChecksum((secret as { data?: Record<string, string> }).data);
    const cached = req
      .controlled<ConfigMap>({ group: "", resource: "configmaps" })
      .find((c) => c.metadata?.name === name);
    if (cached !== undefined && cached.data?.[CHECKSUM_KEY] === want && controlledBy(cached, secret)) return;

    const ownerReferences = [
      {
        apiVersion: "v1",
        kind: "Secret",
        name: req.name,
        uid: secret.metadata?.uid ?? "",
        controller: true,
      },
    ];
    req.signal.throwIfAborted();
    if (cached === undefined) {
      try {
        await req.write.create(configMaps(req.namespace), {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name, namespace: req.namespace, ownerReferences },
          data: { [CHECKSUM_KEY]: want },
        });
        return;
      } catch (err) {
        if (!isStatus(err, 409)) throw err;
        // Exists but not in our cache yet (or not ours): read it and update it below.
      }
    }
    const current =
      cached ??
      (await http.request<ConfigMap>("GET", `${configMaps(req.namespace)}/${name}`, { signal: req.signal }));
    const owners = current.metadata?.ownerReferences ?? [];
    if (owners.some((r) => r.controller === true && (r.kind !== "Secret" || r.name !== req.name))) {
      logger?.warn(
        { key: req.key, configMap: name },
        "ConfigMap is controlled by something else; left alone",
      );
      return;
    }
    if (current.data?.[CHECKSUM_KEY] === want && controlledBy(current, secret)) return;
    req.signal.throwIfAborted();
    // req.write stamps the fencing token (where deploy/examples/checksum's fencing binding is
    // applied, the API server refuses this update if a newer owner of the slot wrote the ConfigMap
    // since) and writes under current's resourceVersion (a stale cache gets 409, retried).
    await req.write.update(`${configMaps(req.namespace)}/${name}`, {
      ...current,
      metadata: {
        ...current.metadata,
        // Replace a reference to an earlier Secret of the same name (recreated: new uid).
        ownerReferences: [...owners.filter((r) => r.controller !== true), ...ownerReferences],
      },
      data: { ...(current.data ?? {}), [CHECKSUM_KEY]: want },
    });
  };
}
