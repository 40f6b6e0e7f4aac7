import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/**
 * The operational HTTP endpoints every slotmap process serves: `/metrics` (Prometheus text
 * format), `/healthz` (the process is alive and its loops are running) and `/readyz` (it is
 * ready to do its job: caches synced, and for the coordinator either leading or standing by).
 * One server serves all three by default; the coordinator runs two, as kubebuilder's managers
 * do: one with only `/metrics` (`probes: false`) and one with only the probes (no `registry`).
 */

/** A named check; returns undefined when fine, else the reason it is not. */
export type Check = () => string | undefined;

/** Options of {@link startOpsServer}. */
export interface OpsServerOptions {
  /** `host:port`, `:port` or a port number; port 0 picks a free port. */
  address: string | number;
  /** The flag or option that gave `address`, for error messages. Default `--metrics-address`. */
  field?: string;
  /**
   * What `/metrics` serves; a function when the metrics exist only later (the server binds
   * before the shard member starts): until it returns a registry, `/metrics` answers 503.
   * Absent: this server has no `/metrics` (404).
   */
  registry?: Registry | (() => Registry | undefined);
  /** Serve `/healthz`, `/livez` and `/readyz`. Default true; false: they answer 404. */
  probes?: boolean;
  healthz?: Record<string, Check>;
  readyz?: Record<string, Check>;
}

/** A running ops server. */
export interface OpsServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Parses `host:port`, `:port` or `port` into host and port, naming the flag on error. */
export function parseListenAddress(value: string | number, field: string): { host: string; port: number } {
  const text = String(value);
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) {
    throw new Error(
      `${field}: ${JSON.stringify(text)} is not a listen address (want host:port, :port or port)`,
    );
  }
  const host = m[1] ? m[1].replace(/^\[|\]$/g, "") : "0.0.0.0";
  return { host, port };
}

function runChecks(checks: Record<string, Check> | undefined): { ok: boolean; body: string } {
  const lines: string[] = [];
  let ok = true;
  for (const [name, check] of Object.entries(checks ?? {})) {
    let reason: string | undefined;
    try {
      reason = check();
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    if (reason !== undefined) ok = false;
    lines.push(reason === undefined ? `[+]${name} ok` : `[-]${name} failed: ${reason}`);
  }
  lines.push(ok ? "ok" : "not ok");
  return { ok, body: `${lines.join("\n")}\n` };
}

/**
 * Starts the ops server; resolves once it listens.
 *
 * @throws Error naming the field and the address when it cannot listen (in use, not an address of
 *   this host, no permission), so a process can exit before it starts any work.
 */
export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const field = opts.field ?? "--metrics-address";
  const { host, port } = parseListenAddress(opts.address, field);
  const { registry: source, probes = true } = opts;
  const registryOf = typeof source === "function" ? source : () => source;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const registry = path === "/metrics" ? registryOf() : undefined;
    if (path === "/metrics" && source !== undefined && registry === undefined) {
      res.writeHead(503, { "Content-Type": "text/plain" });
      res.end("metrics not ready yet\n");
      return;
    }
    if (path === "/metrics" && registry !== undefined) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "Content-Type": registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { "Content-Type": "text/plain" });
          res.end(String(err));
        },
      );
      return;
    }
    if (probes && (path === "/healthz" || path === "/livez" || path === "/readyz")) {
      const { ok, body } = runChecks(path === "/readyz" ? opts.readyz : opts.healthz);
      res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" });
      res.end(body);
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new Error(`${field} ${JSON.stringify(String(opts.address))}: cannot listen: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  // After listening, a server error (e.g. EMFILE on accept) must not kill the process unhandled.
  server.on("error", () => {});
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
