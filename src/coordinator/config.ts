/**
 * Configuration of the coordinator process: command-line flags, each also settable through an
 * environment variable (flag wins). Everything is validated with zod; a bad value stops the
 * process with one line naming the flag (or variable) and the value, never a stack trace.
 */
import { hostname } from "node:os";
import { z } from "zod";
import {
  booleanFlag,
  checkLeaseTimings,
  DNS_LABEL,
  DNS_SUBDOMAIN,
  durationSeconds,
  type FlagOutput,
  type FlagSpec,
  LOG_LEVEL_FLAG,
  parseFlags,
  STDIO,
} from "../config/flags.js";

export { ConfigError } from "../config/flags.js";

/** Validated coordinator configuration. */
export interface CoordinatorConfig {
  kubeconfig: string | undefined;
  identity: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionName: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  /** Listen address of `/metrics`; "0" disables it. */
  metricsBindAddress: string;
  /** Listen address of `/healthz` and `/readyz`; "0" disables it. */
  healthProbeBindAddress: string;
  orphanAfterSeconds: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
}

const LISTEN_ADDRESS = z
  .string()
  .regex(/^((\[[^\]]+\]|[^:]*):)?\d{1,5}$/, "must be host:port, :port or a port (0 disables)");

/** The flag names of the leader-election timings, as component-base spells them. */
const TIMING_FLAGS = {
  leaseDuration: "--leader-elect-lease-duration",
  renewDeadline: "--leader-elect-renew-deadline",
  retryPeriod: "--leader-elect-retry-period",
} as const;

// Flag names follow Kubernetes component-base (leader election) and kubebuilder (bind addresses);
// the former names stay accepted as deprecated aliases. See docs/coordinator.md.

const FLAGS: FlagSpec<keyof CoordinatorConfig>[] = [
  {
    key: "kubeconfig",
    flag: "--kubeconfig <path>",
    env: ["KUBECONFIG"],
    help: "kubeconfig file; default: in-cluster config, else ~/.kube/config",
    schema: z.string().min(1).optional(),
  },
  {
    key: "identity",
    flag: "--identity <name>",
    env: ["POD_NAME"],
    help: "this replica's identity for leader election (default: POD_NAME, else hostname)",
    schema: z.string().min(1).max(253),
    defaultValue: () => hostname(),
  },
  {
    key: "leaderElect",
    // Optional value: deploy/coordinator passes a bare `--leader-elect`, as with client-go binaries.
    flag: "--leader-elect [bool]",
    env: ["SLOTMAP_LEADER_ELECT"],
    help: "run leader election so that only one replica acts",
    schema: booleanFlag,
    defaultValue: "true",
  },
  {
    key: "leaderElectionNamespace",
    flag: "--leader-elect-resource-namespace <ns>",
    deprecatedAliases: [{ flag: "--leader-election-namespace" }],
    env: ["POD_NAMESPACE"],
    help: "namespace of the leader-election Lease",
    schema: z.string().regex(DNS_LABEL, "must be a DNS label (lowercase letters, digits, '-')"),
    defaultValue: "slotmap-system",
  },
  {
    key: "leaderElectionName",
    flag: "--leader-elect-resource-name <name>",
    deprecatedAliases: [{ flag: "--leader-election-name" }],
    env: ["SLOTMAP_LEADER_ELECTION_NAME"],
    help: "name of the leader-election Lease",
    schema: z.string().regex(DNS_SUBDOMAIN, "must be a DNS subdomain"),
    defaultValue: "slotmap-coordinator",
  },
  {
    key: "leaseDurationSeconds",
    flag: `${TIMING_FLAGS.leaseDuration} <duration>`,
    deprecatedAliases: [{ flag: "--lease-duration" }],
    env: ["SLOTMAP_LEASE_DURATION"],
    help: "how long a standby waits after the leader's last renewal before taking over (15s, 1m; plain numbers are seconds)",
    schema: durationSeconds(1, 3600),
    defaultValue: "15s",
  },
  {
    key: "renewDeadlineSeconds",
    flag: `${TIMING_FLAGS.renewDeadline} <duration>`,
    deprecatedAliases: [{ flag: "--renew-deadline" }],
    env: ["SLOTMAP_RENEW_DEADLINE"],
    help: "a leader that could not renew for this long steps down (below the lease duration)",
    schema: durationSeconds(0.1, 3600),
    defaultValue: "10s",
  },
  {
    key: "retryPeriodSeconds",
    flag: `${TIMING_FLAGS.retryPeriod} <duration>`,
    deprecatedAliases: [{ flag: "--retry-period" }],
    env: ["SLOTMAP_RETRY_PERIOD"],
    help: "interval between leader-election attempts and renewals (below the renew deadline)",
    schema: durationSeconds(0.05, 600),
    defaultValue: "2s",
  },
  {
    key: "metricsBindAddress",
    flag: "--metrics-bind-address <addr>",
    deprecatedAliases: [
      {
        flag: "--metrics-address",
        note: "/healthz and /readyz are now served on --health-probe-bind-address, default :8081",
      },
    ],
    env: ["SLOTMAP_METRICS_ADDRESS"],
    help: "listen address of /metrics (host:port, :port, or 0 to disable)",
    schema: LISTEN_ADDRESS,
    defaultValue: ":8080",
  },
  {
    key: "healthProbeBindAddress",
    flag: "--health-probe-bind-address <addr>",
    env: ["SLOTMAP_HEALTH_PROBE_ADDRESS"],
    help: "listen address of /healthz and /readyz (host:port, :port, or 0 to disable)",
    schema: LISTEN_ADDRESS,
    defaultValue: ":8081",
  },
  {
    key: "orphanAfterSeconds",
    flag: "--orphan-after <duration>",
    env: ["SLOTMAP_ORPHAN_AFTER"],
    help: "delete a Dead shard's Lease after this long (1m, 90s; plain numbers are seconds)",
    schema: durationSeconds(0, 86400),
    defaultValue: "1m",
  },
  LOG_LEVEL_FLAG,
];

/**
 * Parses argv (without the node and script entries) and env into a validated config.
 * Throws {@link ConfigError} naming the flag or env var and the value. `--help` throws a
 * CommanderError with exitCode 0 after printing the help text through `out`.
 */
export function parseCoordinatorConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: FlagOutput = STDIO,
): CoordinatorConfig {
  const config = parseFlags(
    {
      name: "slotmap-coordinator",
      description: "Plans and commits the slot tables of SlotMaps; tracks shard Leases.",
    },
    FLAGS,
    argv,
    env,
    out,
  ) as unknown as CoordinatorConfig;
  checkLeaseTimings(config, TIMING_FLAGS);
  return config;
}
