/** `kubectl slotmap keyslot <key>...`: the slot of a key, like redis-cli CLUSTER KEYSLOT. */
import { keySlot, objectKey, xxh64Hex } from "../../slots/index.js";
import type { CommandContext } from "../context.js";
import { type OutputFormat, writeStructured } from "../format.js";
import { UsageError } from "../io.js";

/** One key's hash. */
export interface KeySlotResult {
  key: string;
  /** XXH64 of the UTF-8 key, seed 0, as 16 lowercase hex digits. */
  xxh64: string;
  slot: number;
}

/** Options of `keyslot`. */
export interface KeySlotOptions {
  output?: OutputFormat | undefined;
  /** `--object`: build the key from group, kind, namespace and name parts. */
  object?: boolean | undefined;
}

/**
 * Parses `--object` input `group/kind/namespace/name` (empty group for core, empty namespace for
 * cluster-scoped, e.g. `/Secret/default/db` or `apps/Deployment/web/api`) into the canonical key.
 */
export function keyFromObjectArg(arg: string): string {
  const parts = arg.split("/");
  if (parts.length !== 4 || parts[1] === "" || parts[3] === "") {
    throw new UsageError(
      `--object ${JSON.stringify(arg)}: expected group/kind/namespace/name with kind and name non-empty (e.g. /Secret/default/db or apps/Deployment/web/api)`,
    );
  }
  const [group, kind, namespace, name] = parts as [string, string, string, string];
  return objectKey(group, kind, namespace, name);
}

/** Prints the slot of each key, one per line, in the order given. */
export function runKeySlot(ctx: CommandContext, keys: readonly string[], opts: KeySlotOptions): void {
  const results: KeySlotResult[] = keys.map((arg) => {
    const key = opts.object ? keyFromObjectArg(arg) : arg;
    return { key, xxh64: xxh64Hex(key), slot: keySlot(key) };
  });
  if (opts.output !== undefined) {
    writeStructured(ctx.io.stdout, opts.output, results.length === 1 ? results[0] : results);
    return;
  }
  for (const r of results) ctx.io.stdout.write(`${r.slot}\n`);
}
