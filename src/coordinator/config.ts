import { hostname } from "node:os";
import { Command, CommanderError } from "commander";
import { z } from "zod";

/**
 * Configuration of the coordinator process: command-line flags, each also settable through an
 * environment variable (flag wins). Everything is validated with zod; a bad value stops the
 * process with one line naming the flag (or variable) and the value, never a stack trace.
 */

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
  metricsAddress: string;
  orphanAfterSeconds: number;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
}

/** A configuration error: names the flag or variable and the value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

interface FlagDef {
  key: keyof CoordinatorConfig;
  flag: string;
  env: string;
  help: string;
  schema: z.ZodType;
  defaultValue?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const seconds = (min: number, max: number) =>
  z.coerce
    .number({ error: "must be a number of seconds" })
    .refine((n) => Number.isFinite(n) && n >= min && n <= max, `must be between ${min} and ${max} seconds`);
const bool = z
  .enum(["true", "false", "1", "0"], { error: "must be true or false" })
  .transform((v) => v === "true" || v === "1");

const FLAGS: FlagDef[] = [
  {
    key: "kubeconfig",
    flag: "--kubeconfig <path>",
    env: "KUBECONFIG",
    help: "kubeconfig file; default: in-cluster config, else ~/.kube/config",
    schema: z.string().min(1).optional(),
  },
  {
    key: "identity",
    flag: "--identity <name>",
    env: "POD_NAME",
    help: "this replica's identity for leader election (default: POD_NAME, else hostname)",
    schema: z.string().min(1).max(253),
  },
  {
    key: "leaderElect",
    // Optional value: deploy/coordinator passes a bare `--leader-elect`, as with client-go binaries.
    flag: "--leader-elect [bool]",
    env: "SLOTMAP_LEADER_ELECT",
    help: "run leader election so that only one replica acts",
    schema: bool,
    defaultValue: "true",
  },
  {
    key: "leaderElectionNamespace",
    flag: "--leader-election-namespace <ns>",
    env: "POD_NAMESPACE",
    help: "namespace of the leader-election Lease",
    schema: z.string().regex(DNS_LABEL, "must be a DNS label (lowercase letters, digits, '-')"),
    defaultValue: "slotmap-system",
  },
  {
    key: "leaderElectionName",
    flag: "--leader-election-name <name>",
    env: "SLOTMAP_LEADER_ELECTION_NAME",
    help: "name of the leader-election Lease",
    schema: z.string().regex(DNS_SUBDOMAIN, "must be a DNS subdomain"),
    defaultValue: "slotmap-coordinator",
  },
  {
    key: "leaseDurationSeconds",
    flag: "--lease-duration <s>",
    env: "SLOTMAP_LEASE_DURATION",
    help: "leader-election lease duration",
    schema: seconds(1, 3600),
    defaultValue: "15",
  },
  {
    key: "renewDeadlineSeconds",
    flag: "--renew-deadline <s>",
    env: "SLOTMAP_RENEW_DEADLINE",
    help: "a leader that could not renew for this long steps down (< lease duration)",
    schema: seconds(0.1, 3600),
    defaultValue: "10",
  },
  {
    key: "retryPeriodSeconds",
    flag: "--retry-period <s>",
    env: "SLOTMAP_RETRY_PERIOD",
    help: "interval between leader-election attempts and renewals",
    schema: seconds(0.05, 600),
    defaultValue: "2",
  },
  {
    key: "metricsAddress",
    flag: "--metrics-address <addr>",
    env: "SLOTMAP_METRICS_ADDRESS",
    help: "listen address of /metrics, /healthz and /readyz (host:port, :port, or 0 to disable)",
    schema: z.string().regex(/^((\[[^\]]+\]|[^:]*):)?\d{1,5}$/, "must be host:port, :port or a port"),
    defaultValue: ":8080",
  },
  {
    key: "orphanAfterSeconds",
    flag: "--orphan-after <s>",
    env: "SLOTMAP_ORPHAN_AFTER",
    help: "delete a Dead shard's Lease after this long",
    schema: seconds(0, 86400),
    defaultValue: "60",
  },
  {
    key: "logLevel",
    flag: "--log-level <level>",
    env: "SLOTMAP_LOG_LEVEL",
    help: "trace, debug, info, warn, error or fatal",
    schema: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]),
    defaultValue: "info",
  },
];

function camel(flag: string): string {
  const long = flag.split(" ")[0]?.replace(/^--/, "") ?? "";
  return long.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses argv (without the node and script entries) and env into a validated config.
 * Throws {@link ConfigError} naming the flag or env var and the value. `--help` throws a
 * CommanderError with exitCode 0 after printing the help text through `out`.
 */
export function parseCoordinatorConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: { writeOut: (s: string) => void; writeErr: (s: string) => void } = {
    writeOut: (s) => process.stdout.write(s),
    writeErr: (s) => process.stderr.write(s),
  },
): CoordinatorConfig {
  const cmd = new Command("slotmap-coordinator")
    .description("Plans and commits the slot tables of SlotMaps; tracks shard Leases.")
    .exitOverride()
    .configureOutput({ ...out, outputError: () => {} }) // main prints the ConfigError once
    .allowExcessArguments(false);
  for (const f of FLAGS) cmd.option(f.flag, `${f.help} [env ${f.env}]`);
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) throw err;
    const msg = err instanceof Error ? err.message.replace(/^error: /, "") : String(err);
    throw new ConfigError(msg);
  }
  const flags = cmd.opts<Record<string, string | boolean | undefined>>();
  const result: Record<string, unknown> = {};
  for (const f of FLAGS) {
    const flagValue = flags[camel(f.flag)];
    const fromFlag = flagValue === true ? "true" : flagValue === false ? undefined : flagValue;
    const fromEnv = env[f.env] === "" ? undefined : env[f.env];
    let raw = fromFlag ?? fromEnv ?? f.defaultValue;
    if (f.key === "identity" && raw === undefined) raw = hostname();
    const flagName = f.flag.split(" ")[0];
    const source =
      fromFlag !== undefined
        ? flagName
        : fromEnv !== undefined
          ? `env ${f.env} (${flagName})`
          : `default of ${flagName}`;
    const parsed = f.schema.safeParse(raw);
    if (!parsed.success) {
      const why = parsed.error.issues[0]?.message ?? "invalid";
      throw new ConfigError(`${source}: ${JSON.stringify(raw)}: ${why}`);
    }
    result[f.key] = parsed.data;
  }
  const config = result as unknown as CoordinatorConfig;
  if (config.renewDeadlineSeconds >= config.leaseDurationSeconds) {
    throw new ConfigError(
      `--renew-deadline: ${config.renewDeadlineSeconds} must be below --lease-duration (${config.leaseDurationSeconds})`,
    );
  }
  if (config.retryPeriodSeconds >= config.renewDeadlineSeconds) {
    throw new ConfigError(
      `--retry-period: ${config.retryPeriodSeconds} must be below --renew-deadline (${config.renewDeadlineSeconds})`,
    );
  }
  return config;
}
