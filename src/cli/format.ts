/** Text output helpers shared by the commands: kubectl-style tables, ages, JSON and YAML. */
import { stringify } from "yaml";
import { parseGoDuration } from "../config/duration.js";
import { CliError, type TextSink, UsageError } from "./io.js";

/** Machine-readable output formats (`-o`). */
export type OutputFormat = "json" | "yaml";

/** Validates `-o`; undefined means human-readable text. */
export function parseOutputFormat(value: string | undefined): OutputFormat | undefined {
  if (value === undefined) return undefined;
  if (value === "json" || value === "yaml") return value;
  throw new UsageError(`-o/--output ${JSON.stringify(value)}: unsupported output format (use json or yaml)`);
}

/** Output formats of listing commands (`get`): the machine-readable ones, `name` and `wide`. */
export type ListFormat = OutputFormat | "name" | "wide";

/** Validates `-o` of a listing command; undefined means the default table. */
export function parseListFormat(value: string | undefined): ListFormat | undefined {
  if (value === "name" || value === "wide") return value;
  if (value === undefined || value === "json" || value === "yaml") return value;
  throw new UsageError(
    `-o/--output ${JSON.stringify(value)}: unsupported output format (use json, yaml, name or wide)`,
  );
}

/** Writes `value` as JSON (2-space indent, trailing newline) or YAML. */
export function writeStructured(out: TextSink, format: OutputFormat, value: unknown): void {
  out.write(format === "json" ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 }));
}

/**
 * Lays out rows as kubectl does: a header row, columns left-aligned and separated by three
 * spaces, no trailing spaces. Widths count code points so that `→` and `…` align.
 */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return align([header, ...rows]);
}

/** Aligns rows into columns separated by three spaces (no header); one line per row. */
export function align(rows: ReadonlyArray<readonly string[]>): string {
  const width = (s: string) => [...s].length;
  const n = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: n }, (_, c) => Math.max(0, ...rows.map((r) => width(r[c] ?? ""))));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell + " ".repeat((widths[c] ?? 0) - width(cell) + 3)))
        .join("")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** A duration in kubectl's short form: 45s, 12m, 3h, 5d, 2y (`-` for unknown). */
export function shortAge(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Age of an RFC 3339 timestamp relative to `now`, in {@link shortAge} form. */
export function ageOf(timestamp: unknown, now: number): string {
  if (typeof timestamp !== "string") return "-";
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? "-" : shortAge(now - t);
}

/**
 * Parses a Go duration (`90s`, `5m`, `1h30m`, `500ms`, `1.5h`; a bare `0` means no limit) into
 * milliseconds, with the one Go-duration parser the coordinator's flags use too.
 *
 * @throws UsageError naming `flag` and the value (not a duration, or negative).
 */
export function parseDuration(value: string, flag: string): number {
  const seconds = parseGoDuration(value);
  if (seconds === undefined || seconds < 0) {
    throw new UsageError(
      `${flag} ${JSON.stringify(value)}: not a duration (use e.g. 30s, 5m, 1h30m; 0 waits forever)`,
    );
  }
  return Math.round(seconds * 1000);
}

/** `1m30s`-style rendering of milliseconds, for messages. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h > 0 ? `${h}h` : ""}${h > 0 || m > 0 ? `${m}m` : ""}${sec}s`;
}

/** Asserts a name is a DNS-1123 subdomain (SlotMap, shard and object names). */
export function checkName(value: string, what: string): string {
  if (
    value.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value)
  ) {
    throw new UsageError(
      `${what} ${JSON.stringify(value)}: not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
    );
  }
  return value;
}

/** Asserts a namespace name is a DNS-1123 label. */
export function checkNamespace(value: string, what = "-n/--namespace"): string {
  if (value.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value)) {
    throw new UsageError(
      `${what} ${JSON.stringify(value)}: not a valid namespace name (lowercase letters, digits and '-', at most 63)`,
    );
  }
  return value;
}

/** Plural helper: `1 slot`, `2 slots`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Throws a CliError with the lines of a multi-line explanation. */
export function fail(lines: readonly string[]): never {
  throw new CliError(lines.join("\n"));
}
