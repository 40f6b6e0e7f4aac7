/**
 * Go's `time.ParseDuration` syntax, which Kubernetes components (component-base, client-go,
 * kubebuilder's manager) accept for their duration flags: a sequence of decimal numbers, each
 * with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `15s`, `1m30s`, `1.5h`, `500ms`, and
 * the bare `0`.
 */

// Nanoseconds per unit: summing integers of nanoseconds keeps `500ms` exactly 0.5 s.
const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3, // U+00B5, as Go accepts
  μs: 1e3, // U+03BC
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const SIGN = /^[-+]?/;
// The longer units first, so that `ms` is not read as `m` followed by garbage.
const COMPONENT = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go duration into seconds.
 *
 * @returns the duration in seconds (negative for a leading `-`), or undefined when `text` is not
 *   a Go duration (no unit, an unknown unit, empty, stray characters).
 */
export function parseGoDuration(text: string): number | undefined {
  const sign = SIGN.exec(text)?.[0] ?? "";
  let rest = text.slice(sign.length);
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let ns = 0;
  while (rest !== "") {
    const m = COMPONENT.exec(rest);
    if (m === null) return undefined;
    ns += Number(m[1]) * (UNIT_NS[m[2] as string] ?? Number.NaN);
    rest = rest.slice(m[0].length);
  }
  const seconds = ns / 1e9;
  return sign === "-" ? -seconds : seconds;
}
