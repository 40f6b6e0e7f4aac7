/**
 * One lister process of the list-pages benchmark's "processes" rows: lists every resource named
 * on its command line with the adaptive page size and hashes each object's key (what a shard does
 * at least per listed object; nothing is kept), as one gainer of a leave does on its own process.
 * Protocol: it loads and connects, prints `ready`, waits for a line on stdin, lists, then prints
 * one JSON line `{ objects, cpuS }` (its own CPU over the lists) and exits.
 */
import { createInterface } from "node:readline";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeHttp } from "../../src/kube/http.js";
import { keySlot } from "../../src/slots/index.js";
import { listAndHash } from "./kube.js";

const [kubeconfig, ...resources] = process.argv.slice(2);
if (kubeconfig === undefined || resources.length === 0) {
  throw new Error("usage: list-child <kubeconfig> <resource>... (e.g. secrets configmaps)");
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const http = new KubeHttp(kc);
// Opens the connection and warms the code path before the clock starts.
await http.request("GET", "/api/v1/namespaces?limit=1");
keySlot("warm-up");
process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => lines.once("line", () => resolve()));
const c0 = process.cpuUsage();
const objects = await listAndHash(http, resources);
const c = process.cpuUsage(c0);
process.stdout.write(`${JSON.stringify({ objects, cpuS: (c.user + c.system) / 1e6 })}\n`);
lines.close();
await http.close();
