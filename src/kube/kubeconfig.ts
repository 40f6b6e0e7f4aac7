import type { KubeConfig } from "@kubernetes/client-node";

/**
 * Loads a kubeconfig: the file `path` when given, else what kubectl would use (`KUBECONFIG`,
 * `~/.kube/config`, else the in-cluster service account).
 *
 * Asynchronous because it imports @kubernetes/client-node on first use: its module graph loads
 * every generated API model (about 1 s and 80 MiB), a cost paid only by a process that needs a
 * kubeconfig, not by every importer of slotmap.
 */
export async function loadKubeConfig(path?: string): Promise<KubeConfig> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}
