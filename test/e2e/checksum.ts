/**
 * The checksum the example controller must write into `<secret>-checksum`, computed here
 * independently of examples/checksum-controller so that a bug there cannot hide itself.
 *
 * Definition (examples/checksum-controller/reconciler.ts documents the same): SHA-256, hex, of
 * the JSON text of the array of `[key, base64 value]` pairs of the Secret's `data`, sorted by
 * key, e.g. `sha256('[["password","aHVudGVyMg=="],["user","YWRtaW4="]]')`. An absent `data`
 * hashes as `[]`.
 */
import { createHash } from "node:crypto";

/** Expected `data.checksum` of the ConfigMap of a Secret whose `data` (base64 values) is given. */
export function secretChecksum(data: Readonly<Record<string, string>> | undefined): string {
  const d = data ?? {};
  // Written out by hand rather than JSON.stringify of pairs: an independent rendering of the text.
  const pairs = Object.keys(d)
    .sort()
    .map((k) => `[${JSON.stringify(k)},${JSON.stringify(d[k])}]`);
  return createHash("sha256")
    .update(`[${pairs.join(",")}]`)
    .digest("hex");
}
