// Preloaded (`node --import tsx --import ./test/support/inject-stuck.ts …`) by the end-to-end trust
// test (item 6 of issue 12): a reconcile that never returns and ignores its abort. Every ConfigMap
// create or update whose name starts with SLOTMAP_TEST_STUCK_PREFIX hangs for ever (the request is
// never sent), so the shard's drain of that slot can only end by the shard machine's escalation:
// stop renewing and exit 70.
import { KubeHttp } from "../../src/kube/http.js";

const prefix = process.env.SLOTMAP_TEST_STUCK_PREFIX;
if (prefix) {
  const request = KubeHttp.prototype.request;
  KubeHttp.prototype.request = function (this: KubeHttp, method, path, opts) {
    const body = opts?.body as { metadata?: { name?: string } } | undefined;
    const name = body?.metadata?.name ?? "";
    if ((method === "POST" || method === "PUT") && path.includes("/configmaps") && name.startsWith(prefix)) {
      process.stderr.write(`[inject-stuck] write of ConfigMap ${name} hangs for ever\n`);
      return new Promise(() => {});
    }
    return request.call(this, method, path, opts) as never;
  } as typeof request;
}
