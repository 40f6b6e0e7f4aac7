/**
 * Flags and environment of the checksum controller, validated with zod. Every flag has an
 * environment variable (the flag wins); a bad value is one line naming the flag or variable and
 * the value, never a stack trace.
 */

import {
  boundedNumber,
  checkLeaseTimings,
  DNS_LABEL,
  DNS_SUBDOMAIN,
  type FlagOutput,
  type FlagSpec,
  LOG_LEVEL_FLAG,
  parseFlags,
  STDIO,
} from "slotmap/flags";
import { z } from "zod";

export { ConfigError } from "slotmap/flags";

/** Validated configuration. */
export interface ChecksumConfig {
  shard: string;
  slotMap: string;
  leaseNamespace: string | undefined;
  kubeconfig: string | undefined;
  concurrency: number;
  /** The controller's `cache` option. */
  cache: "owned" | "all";
  /** `host:port`, `:port`, `:0` (any free port), or undefined (no ops server: `0` or `off`). */
  metricsAddress: string | undefined;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  weight: number | undefined;
  handoffAbortAfterSeconds: number | undefined;
  stopTimeoutSeconds: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
}

const number = boundedNumber;
const integer = (min: number, max: number, unit = "") =>
  number(min, max, unit).refine(Number.isInteger, `must be a whole number${unit}`);

const FLAGS: FlagSpec<keyof ChecksumConfig>[] = [
  {
    key: "shard",
    flag: "--shard <name>",
    env: ["POD_NAME"],
    help: "shard name = name of its Lease (required; in a StatefulSet, the pod name)",
    schema: z
      .string({ error: "is required (set --shard or POD_NAME)" })
      .max(253)
      .regex(DNS_SUBDOMAIN, "must be a Lease name (lowercase letters, digits, '-' and '.')"),
  },
  {
    key: "slotMap",
    flag: "--slotmap <name>",
    env: ["SLOTMAP_NAME"],
    help: "name of the SlotMap",
    schema: z
      .string()
      .max(63)
      .regex(DNS_SUBDOMAIN, "must be a SlotMap name (lowercase letters, digits, '-' and '.')"),
    defaultValue: "checksums",
  },
  {
    key: "leaseNamespace",
    flag: "--lease-namespace <ns>",
    env: ["POD_NAMESPACE"],
    help: "namespace of the shard Lease (default: the SlotMap's spec.leaseNamespace)",
    schema: z.string().max(63).regex(DNS_LABEL, "must be a namespace name (a DNS label)").optional(),
  },
  {
    key: "kubeconfig",
    flag: "--kubeconfig <path>",
    env: ["KUBECONFIG"],
    help: "kubeconfig file (default: KUBECONFIG, ~/.kube/config, else in-cluster)",
    schema: z.string().min(1).optional(),
  },
  {
    key: "concurrency",
    flag: "--concurrency <n>",
    env: ["SLOTMAP_CONCURRENCY"],
    help: "reconciles running at once",
    schema: integer(1, 1000),
    defaultValue: "4",
  },
  {
    key: "cache",
    flag: "--cache <what>",
    env: ["SLOTMAP_CACHE"],
    help: 'objects kept in memory: "owned" (of owned slots) or "all" (every object: gained slots need no list; joins after the first list)',
    schema: z.enum(["owned", "all"]),
    defaultValue: "owned",
  },
  {
    key: "metricsAddress",
    flag: "--metrics-address <addr>",
    env: ["SLOTMAP_METRICS_ADDRESS"],
    help: "listen address of /metrics, /healthz, /readyz: host:port, :port, :0 for any free port, 0 or off for none",
    schema: z
      .string()
      .regex(/^(off|((\[[^\]]+\]|[^:]*):)?\d{1,5})$/, "must be host:port, :port, :0, 0 or off")
      .transform((v) => (v === "off" || v === "0" ? undefined : v)),
    defaultValue: ":8080",
  },
  {
    key: "leaseDurationSeconds",
    flag: "--lease-duration <s>",
    env: ["SLOTMAP_LEASE_DURATION"],
    help: "shard Lease duration (whole seconds)",
    schema: integer(1, 3600, " seconds"),
    defaultValue: "15",
  },
  {
    key: "renewDeadlineSeconds",
    flag: "--renew-deadline <s>",
    env: ["SLOTMAP_RENEW_DEADLINE"],
    help: "stop starting reconciles when the Lease was not renewed for this long (< lease duration)",
    schema: number(0.1, 3600, " seconds"),
    defaultValue: "10",
  },
  {
    key: "retryPeriodSeconds",
    flag: "--retry-period <s>",
    env: ["SLOTMAP_RETRY_PERIOD"],
    help: "renew interval and retry backoff (< renew deadline)",
    schema: number(0.05, 600, " seconds"),
    defaultValue: "2",
  },
  {
    key: "weight",
    flag: "--weight <w>",
    env: ["SLOTMAP_WEIGHT"],
    help: "shard weight written to the Lease (0 drains it; default: leave the annotation alone)",
    schema: integer(0, 1_000_000).optional(),
  },
  {
    key: "handoffAbortAfterSeconds",
    flag: "--handoff-abort-after <s>",
    env: ["SLOTMAP_HANDOFF_ABORT_AFTER"],
    help: "abort reconciles that hold up a handoff this long (default: wait for them)",
    schema: number(0.1, 86_400, " seconds").optional(),
  },
  {
    key: "stopTimeoutSeconds",
    flag: "--stop-timeout <s>",
    env: ["SLOTMAP_STOP_TIMEOUT"],
    help: "on SIGTERM, wait this long for in-flight reconciles and the Lease release",
    schema: number(0, 3600, " seconds"),
    defaultValue: "25",
  },
  LOG_LEVEL_FLAG,
];

/**
 * Parses argv (without node and the script) and env. `--help` throws a CommanderError with exit
 * code 0 after printing the help through `out`.
 *
 * @throws ConfigError naming the flag or variable and the value.
 */
export function parseChecksumConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: FlagOutput = STDIO,
): ChecksumConfig {
  const c = parseFlags(
    {
      name: "checksum-controller",
      description:
        "Example sharded controller: a ConfigMap <secret>-checksum with the SHA-256 of every Secret.",
    },
    FLAGS,
    argv,
    env,
    out,
  ) as unknown as ChecksumConfig;
  checkLeaseTimings(c);
  return c;
}
