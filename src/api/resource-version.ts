/**
 * resourceVersion ordering, in one place. Kubernetes documents resourceVersions as opaque; the API
 * server with etcd issues decimal etcd revisions, which KEP-5504 makes officially comparable, and
 * slotmap relies on that order to tell a newer observation from a late or replayed one. Anything
 * not decimal is left unordered (callers then keep their conservative default).
 */

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Whether `rv` is a decimal resourceVersion (no sign, no leading zero). */
export function isDecimalResourceVersion(rv: string): boolean {
  return DECIMAL.test(rv);
}

/** Orders two resourceVersions when both are decimal: -1, 0 or 1; undefined otherwise. */
export function compareResourceVersions(a: string, b: string): number | undefined {
  if (!DECIMAL.test(a) || !DECIMAL.test(b)) return undefined;
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `b` is older than `a` (false when either is absent or not decimal). */
export function isOlderResourceVersion(b: string | undefined, a: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return (compareResourceVersions(b, a) ?? 0) < 0;
}
