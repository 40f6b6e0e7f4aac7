/**
 * The placement of a SlotMap's resources: which are roots (sharded by their own key) and which
 * follow their controller owner. It decides an object's reconcile key, so a change of it can move
 * an object to another slot: a Secret that was a root on slot 17 is, once it follows its
 * controller, reconciled with that controller on slot 9000. Shards and the coordinator compare
 * placements by {@link placementFingerprint}; a change goes through the drain barrier
 * (docs/design-decisions.md "Sharding-rule changes").
 *
 * `namespaceSelector` is not part of it: it decides whether an object is reconciled at all, never
 * on which slot, so two shards that apply different selectors still never share an object.
 */
import { xxh64Hex } from "./hash.js";

/** The parts of a `spec.resources` entry that decide placement. */
export interface PlacementResource {
  readonly group?: string | undefined;
  readonly resource: string;
  readonly controlledResources?: ReadonlyArray<{
    readonly group?: string | undefined;
    readonly resource: string;
  }>;
}

/** `resource.group` (`resource` for the core group): how kubectl names a resource. */
export const groupResourceName = (r: { group?: string | undefined; resource: string }): string =>
  r.group ? `${r.resource}.${r.group}` : r.resource;

/**
 * A short fingerprint of the placement: 16 hex digits of XXH64 over the roots and their controlled
 * resources, both sorted, so reordering entries does not count as a change.
 */
export function placementFingerprint(resources: readonly PlacementResource[]): string {
  const canonical = resources
    .map(
      (r) =>
        `${groupResourceName(r)}<${(r.controlledResources ?? []).map(groupResourceName).sort().join(",")}>`,
    )
    .sort()
    .join(";");
  return xxh64Hex(canonical);
}
