/**
 * The sharding rules a simulated runtime applies: two placements of the simulated objects, and a
 * namespace selector on or off. A person switches them with `specEdit`; each process resolves the
 * spec's rules after its own delay (discovery), as membership.ts does.
 *
 * - Placement A: every key is a root, reconciled on its own slot.
 * - Placement B: key 2i is the controller of key 2i+1, which follows it: a reconcile of 2i also
 *   works on object 2i+1, on 2i's slot. Object 2i+1 thus changes slot between A and B, the threat
 *   of an edit of `spec.resources` (a resource moved between roots and controlled resources).
 * - The selector leaves the pairs with `⌊key/2⌋ % 3 === 2` out of scope: it changes what is
 *   reconciled, never where.
 */
import { placementFingerprint } from "../../src/slots/placement.js";
import type { SimSpec } from "./apiserver.js";

/** `spec.resources` of placement A: one root resource. */
export const RESOURCES_A: SimSpec["resources"] = [{ resource: "secrets" }];
/** `spec.resources` of placement B: the Secrets follow their controller. */
export const RESOURCES_B: SimSpec["resources"] = [
  { resource: "configmaps", controlledResources: [{ resource: "secrets" }] },
];
/** The selector `specEdit` toggles. */
export const SELECTOR = { matchLabels: { team: "a" } } as const;

/** Rules as a runtime applies them. */
export interface SimRules {
  readonly placement: "A" | "B";
  readonly selector: boolean;
  /** `placementFingerprint` of the spec's resources: what the runtime reports to its machine. */
  readonly fingerprint: string;
  /** Identity for "same rules" (placement and selector). */
  readonly key: string;
}

/** The rules a spec means. */
export function rulesOf(spec: SimSpec): SimRules {
  const placement = spec.resources.some((r) => (r.controlledResources?.length ?? 0) > 0) ? "B" : "A";
  const selector = spec.namespaceSelector !== undefined;
  return {
    placement,
    selector,
    fingerprint: placementFingerprint(spec.resources),
    key: `${placement}${selector ? "+selector" : ""}`,
  };
}

/** The reconcile key an event of object `key` enqueues. */
export function rootOf(rules: SimRules, key: number): number {
  return rules.placement === "B" && key % 2 === 1 ? key - 1 : key;
}

/** The objects a reconcile of root `key` works on (`count` objects exist). */
export function objectsOf(rules: SimRules, key: number, count: number): number[] {
  return rules.placement === "B" && key % 2 === 0 && key + 1 < count ? [key, key + 1] : [key];
}

/** Whether object `key` is in a selected namespace. */
export function inScope(rules: SimRules, key: number): boolean {
  return !rules.selector || Math.floor(key / 2) % 3 !== 2;
}
