// src/kube/http.ts transport against a real API server: who the writes are attributed to
// (User-Agent and fieldManager in managedFields), a request timeout, and a rotated CA file
// picked up by the same client (a new connection pool for new TLS material).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_IDENTITY, KubeHttp, type KubeObject } from "../../src/kube/http.js";
import { freshNamespace, kubeConfig } from "../support/cluster.js";

interface Managed extends KubeObject {
  metadata: KubeObject["metadata"] & { managedFields?: Array<{ manager: string; operation: string }> };
}

let ns: string;
const dir = mkdtempSync(join(tmpdir(), "slotmap-transport-"));
beforeAll(async () => {
  ns = await freshNamespace("transport");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cmPath = (name = "") => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ""}`;
const managers = (o: Managed) => (o.metadata.managedFields ?? []).map((f) => `${f.manager}:${f.operation}`);

describe("writer identity", () => {
  it("writes as slotmap-shard by default: User-Agent and fieldManager", async () => {
    const http = new KubeHttp(kubeConfig());
    expect(http.identity).toEqual(DEFAULT_IDENTITY);
    expect(DEFAULT_IDENTITY.userAgent).toMatch(/^slotmap-shard\/\d+\.\d+\.\d+/);
    const created = await http.request<Managed>("POST", cmPath(), {
      body: { metadata: { name: "default-identity" }, data: { a: "1" } },
    });
    expect(managers(created)).toEqual(["slotmap-shard:Update"]);
    await http.close();
  });

  it("writes as the identity it is given, for create, replace and merge patch", async () => {
    const http = new KubeHttp(kubeConfig(), { userAgent: "slotmap-coordinator/9.9.9" });
    expect(http.identity.fieldManager).toBe("slotmap-coordinator");
    const created = await http.request<Managed>("POST", cmPath(), {
      body: { metadata: { name: "named-identity" }, data: { a: "1" } },
    });
    expect(managers(created)).toEqual(["slotmap-coordinator:Update"]);
    const other = new KubeHttp(kubeConfig(), { userAgent: "kubectl-slotmap/9.9.9", fieldManager: "drain" });
    const patched = await other.request<Managed>("PATCH", cmPath("named-identity"), {
      body: { metadata: { resourceVersion: created.metadata.resourceVersion }, data: { b: "2" } },
      contentType: "application/merge-patch+json",
    });
    expect(managers(patched).sort()).toEqual(["drain:Update", "slotmap-coordinator:Update"]);
    await Promise.all([http.close(), other.close()]);
  });
});

describe("transport", () => {
  it("bounds a request by timeoutMs and names the timeout", async () => {
    const http = new KubeHttp(kubeConfig());
    // A watch that the server holds open: the answer's body never completes within 300 ms.
    const started = performance.now();
    const err = await http
      .request("GET", cmPath(), { query: { watch: "true", timeoutSeconds: 30 }, timeoutMs: 300 })
      .catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(String(err)).toMatch(/GET https:\/\/[^ ]+\/configmaps: no answer within 300 ms/);
    expect(took).toBeLessThan(5_000);
    await http.close();
  });

  it("picks up a rotated CA file without a new client", async () => {
    const base = kubeConfig();
    const cluster = base.getCurrentCluster()!;
    const user = base.getCurrentUser()!;
    const goodCa = cluster.caData
      ? Buffer.from(cluster.caData, "base64").toString()
      : (await import("node:fs")).readFileSync(cluster.caFile!, "utf8");
    const caFile = join(dir, "ca.crt");
    // Some other CA: the API server's certificate does not verify against it.
    writeFileSync(caFile, OTHER_CA);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: cluster.server, caFile }],
      users: [{ ...user, name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const http = new KubeHttp(kc);
    const first = await http.request("GET", cmPath()).catch((e: unknown) => e);
    expect(String(first)).toMatch(/request failed: .*(certificate|self.signed|verify)/i);
    writeFileSync(caFile, goodCa);
    const list = await http.request<{ items: unknown[] }>("GET", cmPath());
    expect(Array.isArray(list.items)).toBe(true);
    await http.close();
  });
});

// A throwaway self-signed CA (openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256).
const OTHER_CA = `-----BEGIN CERTIFICATE-----
MIIBljCCAT2gAwIBAgIUdFa+Csz29phobQoszzbodMA6ClowCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVc2xvdG1hcC10ZXN0LW90aGVyLWNhMCAXDTI2MTIwMzE4MDkw
OFoYDzIxMjYxMTA5MTgwOTA4WjAgMR4wHAYDVQQDDBVzbG90bWFwLXRlc3Qtb3Ro
ZXItY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAReKSlc+qJq5SYyFV8DnuW4
P5u/W2h1K2ipO6XIMUThWiu9p80Q2UWgUGwYmzoeAmk9J6lXBfFVKRneG2dNHjWO
o1MwUTAdBgNVHQ4EFgQUDsPfXzImaSnmClMtM5lNkqCryTMwHwYDVR0jBBgwFoAU
DsPfXzImaSnmClMtM5lNkqCryTMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNHADBEAiBKerWCrgWrjdqFuXwxVP5h7HZgXv/pUH2vOpgT81BpcgIgNa+NoKP3
gGFrTei4UDQw910/v15AEreaEXCAAJRJ4BM=
-----END CERTIFICATE-----
`;
