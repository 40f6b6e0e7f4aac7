/** metav1.LabelSelector matching (for `spec.namespaceSelector`), with Kubernetes semantics. */
import type { LabelSelector } from "./v1alpha1.js";

/**
 * Whether `labels` match `selector`. An absent or empty selector matches everything; `NotIn` and
 * `DoesNotExist` match when the label is absent, as in apimachinery.
 */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case "In":
        if (!has || !values.includes(value ?? "")) return false;
        break;
      case "NotIn":
        if (has && values.includes(value ?? "")) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Whether a selector matches everything (absent, or neither labels nor expressions). */
export function selectorIsEmpty(selector: LabelSelector | undefined): boolean {
  return (
    selector === undefined ||
    (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)
  );
}

/** Label key as metav1 validates it: optional DNS-subdomain prefix and `/`, a name of ≤ 63. */
export const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** Label value: empty, or alphanumerics with `-_.` inside. */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Splits on commas outside parentheses (`a in (x,y),b` → `a in (x,y)`, `b`). */
function requirements(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

/**
 * Why `text` is not a label selector in the list/watch `labelSelector` syntax (`app=demo`,
 * `tier!=cache`, `env in (a,b)`, `env notin (c)`, `release`, `!legacy`), or undefined when it is.
 */
export function labelSelectorStringError(text: string): string | undefined {
  if (text.trim() === "") return "must not be empty (leave the field out to select everything)";
  for (const r of requirements(text)) {
    const set = /^([^\s!=(]+)\s+(in|notin)\s*\((.*)\)$/.exec(r);
    if (set !== null) {
      if (!LABEL_KEY.test(set[1]!)) return `"${set[1]}" in "${r}" is not a label key`;
      const values = set[3]!.split(",").map((v) => v.trim());
      const bad = values.find((v) => !LABEL_VALUE.test(v));
      if (bad !== undefined) return `"${bad}" in "${r}" is not a label value`;
      continue;
    }
    const eq = /^([^\s!=]+)\s*(==|=|!=)\s*(\S*)$/.exec(r);
    if (eq !== null) {
      if (!LABEL_KEY.test(eq[1]!)) return `"${eq[1]}" in "${r}" is not a label key`;
      if (!LABEL_VALUE.test(eq[3]!)) return `"${eq[3]}" in "${r}" is not a label value`;
      continue;
    }
    const exists = /^!?\s*(\S+)$/.exec(r);
    if (exists !== null && LABEL_KEY.test(exists[1]!)) continue;
    return `"${r}" is not a requirement such as app=demo, tier!=cache, env in (a,b), release or !legacy`;
  }
  return undefined;
}

/** Why `text` is not a field selector (`metadata.name=x`, `status.phase!=Running`), or undefined. */
export function fieldSelectorStringError(text: string): string | undefined {
  if (text.trim() === "") return "must not be empty (leave the field out to select everything)";
  for (const r of text.split(",").map((x) => x.trim())) {
    if (!/^[A-Za-z0-9._-]+\s*(==|=|!=)\s*[^=!]*$/.test(r))
      return `"${r}" is not a requirement such as metadata.name=demo or status.phase!=Running`;
  }
  return undefined;
}
