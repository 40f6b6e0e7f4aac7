/**
 * Field-level validation errors shared by the SlotMap schema and the shard Lease parser.
 * Every error names the field (in the dotted/bracket form kubectl prints) and the bad value,
 * so that a bad input is reported as `spec.leaseNamespace: must be ...; got "Bad_NS"` rather
 * than as a stack trace.
 */

/** One invalid field of an input document. */
export interface FieldError {
  /** Path of the field, e.g. `spec.resources[0].resource` or `metadata.annotations["slotmap.dev/weight"]`. */
  field: string;
  /** The offending value as found in the input (`undefined` when the field is missing). */
  value: unknown;
  /** What is wrong, without the field name (see {@link formatFieldError} for a full line). */
  message: string;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * Formats a path the way kubectl and the API server name fields: `a.b[0].c`. Keys that are not
 * identifiers (map keys such as annotation names or shard names) are quoted: `a["slotmap.dev/weight"]`.
 */
export function formatFieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") {
      out += `[${seg}]`;
    } else if (typeof seg === "string" && IDENTIFIER.test(seg)) {
      out += out === "" ? seg : `.${seg}`;
    } else {
      out += `[${JSON.stringify(String(seg))}]`;
    }
  }
  return out;
}

// One segment of a formatted path: `.name` (the dot absent at the start), `[3]` or `["a/b"]`.
const SEGMENT = /^(?:(^|\.)([A-Za-z_$][A-Za-z0-9_$]*)|\[(0|[1-9][0-9]*)\]|\[("(?:[^"\\]|\\.)*")\])/;

/**
 * The inverse of {@link formatFieldPath}: `status.shards[2].slots` → `["status", "shards", 2, "slots"]`.
 * Lets an error that names its field as text (the slot core's `SlotTableError.field`) become a
 * zod issue path. Returns undefined for text formatFieldPath would not write.
 */
export function parseFieldPath(field: string): PropertyKey[] | undefined {
  const path: PropertyKey[] = [];
  let rest = field;
  while (rest !== "") {
    const m = SEGMENT.exec(rest);
    if (m === null) return undefined;
    const [text, dot, name, index, quoted] = m;
    if (name !== undefined) {
      // `a.b`: a dot between names, none before the first.
      if ((dot === ".") !== path.length > 0) return undefined;
      path.push(name);
    } else if (index !== undefined) {
      path.push(Number(index));
    } else {
      path.push(JSON.parse(quoted!) as string);
    }
    rest = rest.slice(text.length);
  }
  return path;
}

/** Renders a value for an error message: JSON, shortened so that a huge input can't flood a log line. */
export function renderValue(value: unknown, maxLength = 120): string {
  let text: string;
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") {
    text = `${value}n`;
  } else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > maxLength ? `${text.slice(0, maxLength)}…(${text.length} chars)` : text;
}

/** One error as a single line: `field: message; got <value>` (the value is left out when missing). */
export function formatFieldError(error: FieldError): string {
  const got = error.value === undefined ? "" : `; got ${renderValue(error.value)}`;
  return `${error.field || "<root>"}: ${error.message}${got}`;
}

/** All errors, one per line, in the order given. */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map(formatFieldError).join("\n");
}
