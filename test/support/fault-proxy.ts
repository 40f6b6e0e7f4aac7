// A loopback TCP proxy in front of the real API server that injects connection faults, for the
// fault-injection tests (test/integration/process-faults.test.ts). It forwards bytes untouched
// (TLS passes through; the API server's certificate is valid for 127.0.0.1), so clients behave
// exactly as against the API server itself, until a fault is switched on:
//
// - `stall`: bytes stop flowing both ways on every connection, and new connections are accepted
//   but never forwarded (a black-holed network or a frozen peer);
// - `reset`: every connection is reset (TCP RST), and so is every new one until `pass`;
// - `halfClose()`: every current connection gets a FIN from the "server" side while its reads
//   stay open (a peer that closed its write side), then is cut after a moment.
import net from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export type FaultMode = "pass" | "stall" | "reset";

export interface FaultProxy {
  readonly port: number;
  /** Open client connections. */
  readonly connections: number;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Switches the mode; `reset` also resets every open connection now. */
  mode(m: FaultMode): void;
  /** Sends FIN to every open client connection (server half-close); cuts them after `cutAfterMs`. */
  halfClose(cutAfterMs?: number): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Bytes held while stalled, per direction. */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

/** Starts a proxy on 127.0.0.1 (a free port) to `target` (`https://host:port`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const url = new URL(target);
  const pairs = new Set<Pair>();
  let mode: FaultMode = "pass";
  let accepted = 0;

  const destroy = (p: Pair, reset: boolean): void => {
    pairs.delete(p);
    for (const s of [p.client, p.upstream]) {
      if (!s || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  };
  const forward = (p: Pair, from: net.Socket, to: () => net.Socket | undefined, held: Buffer[]): void => {
    from.on("data", (chunk: Buffer) => {
      const dest = to();
      if (mode === "stall" || dest === undefined || dest.connecting) held.push(chunk);
      else dest.write(chunk);
    });
    from.on("end", () => {
      const dest = to();
      if (dest && !dest.destroyed) dest.end();
    });
    from.on("error", () => destroy(p, false));
    from.on("close", () => destroy(p, false));
  };
  const flush = (p: Pair): void => {
    if (!p.upstream || p.upstream.connecting) return;
    for (const b of p.held.toUpstream.splice(0)) p.upstream.write(b);
    for (const b of p.held.toClient.splice(0)) p.client.write(b);
  };

  const server = net.createServer((client) => {
    accepted++;
    const p: Pair = { client, upstream: undefined, held: { toUpstream: [], toClient: [] } };
    pairs.add(p);
    if (mode === "reset") {
      destroy(p, true);
      return;
    }
    const upstream = net.connect(Number(url.port || 443), url.hostname);
    p.upstream = upstream;
    forward(p, client, () => p.upstream, p.held.toUpstream);
    forward(p, upstream, () => p.client, p.held.toClient);
    upstream.on("connect", () => {
      if (mode !== "stall") flush(p);
    });
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    mode(m) {
      mode = m;
      if (m === "reset") for (const p of [...pairs]) destroy(p, true);
      if (m === "pass") for (const p of pairs) flush(p);
    },
    halfClose(cutAfterMs = 2_000) {
      for (const p of [...pairs]) {
        p.client.end();
        setTimeout(() => destroy(p, false), cutAfterMs).unref();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of [...pairs]) destroy(p, false);
        server.close(() => resolve());
      }),
  };
}

/** The same credentials as `kc`, with the current cluster reached through `port` on 127.0.0.1. */
export function kubeConfigVia(kc: KubeConfig, port: number): KubeConfig {
  const current = kc.getCurrentCluster()!;
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c) =>
      c.name === current.name ? { ...c, server: `https://127.0.0.1:${port}` } : c,
    ),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return out;
}
