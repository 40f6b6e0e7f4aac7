/**
 * `slotmap/kube`: the Kubernetes plumbing a sharded controller process needs besides the client
 * library: the JSON REST client its reconciler writes with (resourceVersion preconditions, merge
 * patches, an AbortSignal, a timeout, its own User-Agent and fieldManager), the ops server
 * (`/metrics`, `/healthz`, `/readyz`) and a kubeconfig loader. See docs/client.md.
 *
 * @packageDocumentation
 */
import "../runtime/guard.js";

/** client-node's kubeconfig, as {@link loadKubeConfig} returns it and `createShardMember` takes it. */
export type { KubeConfig } from "@kubernetes/client-node";
export {
  ApiError,
  type ClientIdentity,
  DEFAULT_IDENTITY,
  isStatus,
  KubeHttp,
  type KubeList,
  type KubeObject,
  type Query,
  type RequestOptions,
  type WatchEvent,
} from "./http.js";
export { loadKubeConfig } from "./kubeconfig.js";
export {
  type Check,
  type OpsServer,
  type OpsServerOptions,
  parseListenAddress,
  startOpsServer,
} from "./ops-server.js";
