import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { type OpsServer, type OpsServerOptions, startOpsServer } from "../../../src/kube/ops-server.js";

const servers: OpsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(opts: Omit<OpsServerOptions, "address">): Promise<(path: string) => Promise<number>> {
  const server = await startOpsServer({ address: "127.0.0.1:0", ...opts });
  servers.push(server);
  return async (path) => (await fetch(`http://127.0.0.1:${server.port}${path}`)).status;
}

const PATHS = ["/metrics", "/healthz", "/livez", "/readyz"];

describe("startOpsServer", () => {
  it("serves /metrics and the probes on one port by default", async () => {
    const get = await start({ registry: new Registry(), readyz: { x: () => "not yet" } });
    expect(await Promise.all(PATHS.map(get))).toEqual([200, 200, 200, 503]);
  });

  it("a metrics-only server (probes: false) answers 404 to the probes", async () => {
    const get = await start({ registry: new Registry(), probes: false });
    expect(await Promise.all(PATHS.map(get))).toEqual([200, 404, 404, 404]);
  });

  it("a probes-only server (no registry) answers 404 to /metrics", async () => {
    const get = await start({ healthz: { x: () => undefined } });
    expect(await Promise.all(PATHS.map(get))).toEqual([404, 200, 200, 200]);
  });

  it("names the field and the address when it cannot listen", async () => {
    const busy = await startOpsServer({ address: "127.0.0.1:0" });
    servers.push(busy);
    await expect(
      startOpsServer({ address: `127.0.0.1:${busy.port}`, field: "--health-probe-bind-address" }),
    ).rejects.toThrow(/^--health-probe-bind-address "127.0.0.1:\d+": cannot listen: .*EADDRINUSE/);
  });
});
