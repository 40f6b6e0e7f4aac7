import { Command, CommanderError, Option } from "commander";
import { z } from "zod";
import { leaseTimingProblems } from "../api/lease.js";
import { parseGoDuration } from "./duration.js";

/**
 * Flag tables for slotmap's processes (coordinator, example shards): every flag also has
 * environment variables (the flag wins), every value is validated with zod, and a bad value is
 * one {@link ConfigError} line naming the flag or variable and the value, never a stack trace.
 */

/** A configuration error: names the flag or variable and the value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** One flag: `--name <value>` (or `--name [value]` for an optional value, e.g. booleans). */
export interface FlagSpec<K extends string = string> {
  key: K;
  flag: string;
  /** Environment variables consulted in order when the flag is absent. */
  env: readonly string[];
  help: string;
  schema: z.ZodType;
  /** Raw default, parsed by `schema` like any other value. */
  defaultValue?: string | (() => string | undefined);
  /**
   * Former names of this flag (`--old-name`), still accepted with a one-line warning on stderr
   * naming the new flag (and `note`, when the meaning changed too). Hidden from `--help`.
   */
  deprecatedAliases?: readonly { flag: string; note?: string }[];
}

/** Where help and errors go (injected by tests). */
export interface FlagOutput {
  writeOut: (s: string) => void;
  writeErr: (s: string) => void;
}

/** The process's stdout and stderr. */
export const STDIO: FlagOutput = {
  writeOut: (s) => process.stdout.write(s),
  writeErr: (s) => process.stderr.write(s),
};

/** Lowercase DNS label (namespaces, Lease-free names). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Lowercase DNS subdomain (object names such as Leases). */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A number within [min, max]; `unit` is appended to messages (e.g. " seconds"). */
export function boundedNumber(min: number, max: number, unit = ""): z.ZodType<number> {
  return z.coerce
    .number({ error: `must be a number${unit ? ` of${unit}` : ""}` })
    .refine((n) => Number.isFinite(n) && n >= min && n <= max, `must be between ${min} and ${max}${unit}`);
}

/**
 * A duration in seconds within [min, max] seconds: a Go duration as Kubernetes components accept
 * (`15s`, `1m30s`, `500ms`, see {@link parseGoDuration}) or a plain number of seconds (`15`,
 * `0.5`).
 */
export function durationSeconds(min: number, max: number): z.ZodType<number> {
  return z
    .string()
    .transform((v, ctx) => {
      const s = /^\d+(\.\d+)?$/.test(v) ? Number(v) : parseGoDuration(v);
      if (s === undefined) {
        ctx.issues.push({
          code: "custom",
          input: v,
          message: "must be a duration such as 15s, 1m30s or 500ms, or a number of seconds",
        });
        return z.NEVER;
      }
      return s;
    })
    .refine((s) => s >= min && s <= max, `must be between ${min} and ${max} seconds`);
}

/** `true`/`false`/`1`/`0`. */
export const booleanFlag = z
  .enum(["true", "false", "1", "0"], { error: "must be true or false" })
  .transform((v) => v === "true" || v === "1");

/** pino log levels. */
export const logLevel = z.enum(["trace", "debug", "info", "warn", "error", "fatal"]);

/** `--log-level` / `SLOTMAP_LOG_LEVEL`, the same for every slotmap process. */
export const LOG_LEVEL_FLAG: FlagSpec<"logLevel"> = {
  key: "logLevel",
  flag: "--log-level <level>",
  env: ["SLOTMAP_LOG_LEVEL"],
  help: "trace, debug, info, warn, error or fatal",
  schema: logLevel,
  defaultValue: "info",
};

function optionName(flag: string): string {
  const long = flag.split(" ")[0]?.replace(/^--/, "") ?? "";
  return long.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses argv (without node and the script) and env against a flag table.
 *
 * @returns the parsed value of every flag, by key.
 * @throws ConfigError naming the flag or variable and the value; `--help` throws commander's
 * CommanderError with exit code 0 after printing the help through `out`.
 */
export function parseFlags<K extends string>(
  command: { name: string; description: string },
  flags: readonly FlagSpec<K>[],
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: FlagOutput = STDIO,
): Record<K, unknown> {
  const cmd = new Command(command.name)
    .description(command.description)
    .exitOverride()
    .configureOutput({ ...out, outputError: () => {} }) // the caller prints the ConfigError once
    .allowExcessArguments(false);
  for (const f of flags) {
    cmd.option(f.flag, `${f.help} [env ${f.env.join(", ")}]`);
    const argument = f.flag.slice(f.flag.indexOf(" "));
    for (const a of f.deprecatedAliases ?? []) cmd.addOption(new Option(`${a.flag}${argument}`).hideHelp());
  }
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) throw err;
    throw new ConfigError(err instanceof Error ? err.message.replace(/^error: /, "") : String(err));
  }
  const given = cmd.opts<Record<string, string | boolean | undefined>>();
  const result: Partial<Record<K, unknown>> = {};
  for (const f of flags) {
    const alias = f.deprecatedAliases?.find((a) => given[optionName(a.flag)] !== undefined);
    let flagName = f.flag.split(" ")[0] ?? f.flag;
    let value = given[optionName(f.flag)];
    if (alias !== undefined) {
      out.writeErr(
        `warning: ${alias.flag} is deprecated: use ${flagName}${alias.note ? ` (${alias.note})` : ""}\n`,
      );
      if (value === undefined) {
        value = given[optionName(alias.flag)];
        flagName = alias.flag;
      }
    }
    // `--leader-elect` without a value means true.
    const fromFlag = value === true ? "true" : value === false ? undefined : value;
    const envName = f.env.find((e) => env[e] !== undefined && env[e] !== "");
    const fromEnv = envName === undefined ? undefined : env[envName];
    const fallback = typeof f.defaultValue === "function" ? f.defaultValue() : f.defaultValue;
    const raw = fromFlag ?? fromEnv ?? fallback;
    const source = fromFlag !== undefined ? flagName : envName !== undefined ? `env ${envName}` : flagName;
    const parsed = f.schema.safeParse(raw);
    if (!parsed.success) {
      const why = parsed.error.issues[0]?.message ?? "invalid";
      throw new ConfigError(
        raw === undefined ? `${source}: ${why}` : `${source}: ${JSON.stringify(raw)}: ${why}`,
      );
    }
    result[f.key] = parsed.data;
  }
  return result as Record<K, unknown>;
}

/** The flags {@link checkLeaseTimings} names in its errors. */
export interface LeaseTimingFlags {
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
}

/**
 * The leader-election style timing rule shared by coordinator and shards.
 *
 * @param flags the flag names for messages; default `--lease-duration`, `--renew-deadline`,
 *   `--retry-period` (the example shard's).
 */
export function checkLeaseTimings(
  c: {
    leaseDurationSeconds: number;
    renewDeadlineSeconds: number;
    retryPeriodSeconds: number;
  },
  flags: LeaseTimingFlags = {
    leaseDuration: "--lease-duration",
    renewDeadline: "--renew-deadline",
    retryPeriod: "--retry-period",
  },
): void {
  const t = {
    leaseDuration: c.leaseDurationSeconds,
    renewDeadline: c.renewDeadlineSeconds,
    retryPeriod: c.retryPeriodSeconds,
  };
  const p = leaseTimingProblems(t, flags)[0];
  if (p !== undefined) throw new ConfigError(`${flags[p.timing]}: ${p.value} ${p.message}`);
}
