// The attacks and the legitimate requests tried against deploy/'s RBAC and admission policies, as
// data: rbac-deploy.test.ts sends each one for real as the ServiceAccount (impersonation headers,
// pod-name extra included) and checks who answers; docs/operations.md carries the table rendered
// from it (renderCaseTable; test/unit/docs/rbac-table.test.ts keeps the two equal).
import { TAKEOVER_HOLDER } from "../../src/coordinator/core/types.js";

export const LEASE_NAMESPACE = "checksums-system";
export const SLOTMAP = "checksums";
/** The shard the attacker holds the token of, and another shard of the same SlotMap. */
export const OWN = "checksums-0";
export const OTHER = "checksums-1";
/** A namespace whose Secrets are sharded (the example's SlotMap shards every namespace). */
export const SHARDED_NAMESPACE = "slotmap-rbac-probe";
/** A namespace holding a slotmap-labelled Lease but bound to no coordinator RoleBinding. */
export const FOREIGN_NAMESPACE = "slotmap-rbac-foreign";
export const LEADER = { namespace: "slotmap-system", name: "slotmap-coordinator" } as const;
/** Created by the test in kube-node-lease: what a kubelet's node Lease looks like. */
export const NODE_LEASE = "slotmap-rbac-node";
export const VICTIM_CONFIGMAP = "slotmap-rbac-victim";

export type Actor = "shard" | "shard-no-pod" | "coordinator";

/** Who answers: the request is allowed, or RBAC denies it, or the named admission policy does. */
export type Outcome =
  | "allowed"
  | "RBAC"
  | "shard-leases.slotmap.dev"
  | "coordinator-leases.slotmap.dev"
  | "checksum-configmaps.slotmap.dev";

/** What the test knows at run time (names and uids that only exist in the cluster). */
export interface CaseEnv {
  slotmapUid: string;
  /** Name of the kube-apiserver's identity Lease in kube-system. */
  apiserverLease: string;
}

/** A Lease as the fixtures and the requests write it. */
export interface LeaseBody {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    uid?: string;
  };
  spec: Record<string, unknown>;
}

/**
 * The request: `update` reads the object as the admin, applies `mutate` and PUTs it as the actor
 * (with its resourceVersion, as every client here does).
 */
export type CaseRequest =
  | { op: "get" | "list" | "delete"; path: string; query?: Record<string, string> }
  | { op: "create"; path: string; body: unknown; query?: Record<string, string> }
  | { op: "patch"; path: string; body: unknown }
  | { op: "update"; path: string; mutate: (obj: LeaseBody) => void; query?: Record<string, string> };

export interface AccessCase {
  actor: Actor;
  /** The row of the table: what is tried. */
  what: string;
  expect: Outcome;
  request: (env: CaseEnv) => CaseRequest;
  /** The SlotMap's spec.policy.maxLeaseDurationSeconds for this case (default: 60, its default). */
  maxLeaseDurationSeconds?: number;
}

/** The SlotMap's cap on shard Lease durations when a case does not set one (the CRD's default). */
export const DEFAULT_MAX_LEASE_DURATION_SECONDS = 60;

const leases = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
const lease = (ns: string, name: string) => `${leases(ns)}/${name}`;
const slotmaps = "/apis/slotmap.dev/v1alpha1/slotmaps";
const projections = (ns: string) => `/apis/slotmap.dev/v1alpha1/namespaces/${ns}/slotmapshards`;
/** A SlotMapShard projection as the coordinator writes it (valid for the CRD). */
const projection = (namespace: string, shard: string, slots: string) => ({
  apiVersion: "slotmap.dev/v1alpha1",
  kind: "SlotMapShard",
  metadata: { name: `${SLOTMAP}.${shard}`, namespace, labels: { "slotmap.dev/slotmap": SLOTMAP } },
  spec: {
    slotMap: SLOTMAP,
    slotMapUid: "00000000-0000-0000-0000-000000000000",
    shard,
    assignmentGeneration: 1,
    drainBarrier: false,
    entry: { slots },
    migrations: [],
  },
});
const microNow = () => new Date().toISOString().replace(/Z$/, "000Z");

/** A shard Lease as a shard creates it (src/client/core/shard-machine.ts). */
export function shardLease(
  name: string,
  opts: {
    namespace?: string;
    labels?: Record<string, string> | null;
    annotations?: Record<string, string>;
    holder?: string;
    durationSeconds?: number;
  } = {},
): LeaseBody {
  const labels = opts.labels === null ? undefined : (opts.labels ?? { "slotmap.dev/slotmap": SLOTMAP });
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name,
      namespace: opts.namespace ?? LEASE_NAMESPACE,
      ...(labels ? { labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      holderIdentity: opts.holder ?? `${name}-0a1b2c3d-1`,
      leaseDurationSeconds: opts.durationSeconds ?? 15,
      acquireTime: microNow(),
      renewTime: microNow(),
      leaseTransitions: 0,
    },
  };
}

/** The Leases every case starts from (re-created before each case by the admin). */
export function fixtureLeases(): LeaseBody[] {
  return [
    shardLease(OWN),
    shardLease(OTHER),
    shardLease("unlabelled", { labels: null, holder: "someone-else" }),
    shardLease("elsewhere-0", { namespace: FOREIGN_NAMESPACE }),
    shardLease(NODE_LEASE, {
      namespace: "kube-node-lease",
      labels: null,
      holder: NODE_LEASE,
      durationSeconds: 40,
    }),
  ];
}

const annotate = (l: LeaseBody, k: string, v: string) => {
  l.metadata.annotations = { ...(l.metadata.annotations ?? {}), [k]: v };
};
const ack = (generation: string, uid: string) => (l: LeaseBody) => {
  annotate(l, "slotmap.dev/observed-generation", generation);
  annotate(l, "slotmap.dev/slotmap-uid", uid);
};
const takeover = (l: LeaseBody) => {
  l.spec.holderIdentity = TAKEOVER_HOLDER;
  l.spec.renewTime = microNow();
  l.spec.acquireTime = microNow();
};
/** An Event about the SlotMap (cluster-scoped: any namespace) or, with `lease`, about a Lease in `ns`. */
const event = (ns: string, lease?: string) => ({
  apiVersion: "v1",
  kind: "Event",
  metadata: { generateName: "slotmap-rbac-", namespace: ns },
  involvedObject:
    lease === undefined
      ? { apiVersion: "slotmap.dev/v1alpha1", kind: "SlotMap", name: SLOTMAP }
      : { apiVersion: "coordination.k8s.io/v1", kind: "Lease", name: lease, namespace: ns },
  reason: "Probe",
  message: "sent by the RBAC test",
  type: "Normal",
  source: { component: "slotmap-rbac-test" },
});
const dryRun = { dryRun: "All" };

/** Every case, in table order: the shard's first, then the coordinator's. */
export const CASES: readonly AccessCase[] = [
  // --- a shard, with its pod-bound token -----------------------------------------------------
  {
    actor: "shard",
    what: "create its own Lease (named after its pod, labelled, 15 s)",
    expect: "allowed",
    request: () => ({ op: "create", path: leases(LEASE_NAMESPACE), body: shardLease(`${OWN}`) }),
  },
  {
    actor: "shard",
    what: "renew its own Lease",
    expect: "allowed",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => {
        l.spec.renewTime = microNow();
      },
    }),
  },
  {
    actor: "shard",
    what: "acknowledge a generation on its own Lease (observed-generation, slotmap-uid)",
    expect: "allowed",
    request: (env) => ({ op: "update", path: lease(LEASE_NAMESPACE, OWN), mutate: ack("3", env.slotmapUid) }),
  },
  {
    actor: "shard",
    what: "release its own Lease (empty holderIdentity)",
    expect: "allowed",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => {
        l.spec.holderIdentity = "";
      },
    }),
  },
  {
    actor: "shard",
    what: "create its own Lease without the slotmap.dev/slotmap label",
    expect: "shard-leases.slotmap.dev",
    request: () => ({ op: "create", path: leases(LEASE_NAMESPACE), body: shardLease(OWN, { labels: null }) }),
  },
  {
    actor: "shard",
    what: "create its own Lease labelled for another SlotMap",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease(OWN, { labels: { "slotmap.dev/slotmap": "another" } }),
    }),
  },
  {
    actor: "shard",
    what: "create its own Lease with leaseDurationSeconds 3600 (cap 60)",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease(OWN, { durationSeconds: 3600 }),
    }),
  },
  {
    actor: "shard",
    what: "lengthen its own Lease to 3600 s",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => {
        l.spec.leaseDurationSeconds = 3600;
      },
    }),
  },
  {
    actor: "shard",
    what: "create its own Lease with leaseDurationSeconds 90, its SlotMap's cap raised to 120",
    expect: "allowed",
    maxLeaseDurationSeconds: 120,
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease(OWN, { durationSeconds: 90 }),
    }),
  },
  {
    actor: "shard",
    what: "renew its own 15 s Lease, its SlotMap's cap lowered to 10",
    expect: "shard-leases.slotmap.dev",
    maxLeaseDurationSeconds: 10,
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => {
        l.spec.renewTime = microNow();
      },
    }),
  },
  {
    actor: "shard",
    what: "create its own Lease with weight 1000000",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease(OWN, { annotations: { "slotmap.dev/weight": "1000000" } }),
    }),
  },
  {
    actor: "shard",
    what: "change its own weight (annotation slotmap.dev/weight: 0)",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => annotate(l, "slotmap.dev/weight", "0"),
    }),
  },
  {
    actor: "shard",
    what: "hold its own Lease under a holderIdentity that is not its pod's",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OWN),
      mutate: (l) => {
        l.spec.holderIdentity = "x";
      },
    }),
  },
  {
    actor: "shard",
    what: "patch its own Lease (merge patch)",
    expect: "RBAC",
    request: () => ({
      op: "patch",
      path: lease(LEASE_NAMESPACE, OWN),
      body: { metadata: { annotations: { "slotmap.dev/observed-generation": "99999999999" } } },
    }),
  },
  {
    actor: "shard",
    what: "create a rogue Lease (labelled, holder x, 3600 s, weight 1000000)",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease("rogue", {
        holder: "x",
        durationSeconds: 3600,
        annotations: { "slotmap.dev/weight": "1000000" },
      }),
    }),
  },
  {
    actor: "shard",
    what: "create an unlabelled Lease not named after its pod in the lease namespace",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease("side-lease", { labels: null }),
    }),
  },
  {
    actor: "shard",
    what: "hijack another shard's Lease (holderIdentity)",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => {
        l.spec.holderIdentity = `${OWN}-0a1b2c3d-9`;
      },
    }),
  },
  {
    actor: "shard",
    what: "drain another shard (its weight annotation: 0)",
    expect: "shard-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => annotate(l, "slotmap.dev/weight", "0"),
    }),
  },
  {
    actor: "shard",
    what: "forge an ack on another shard's Lease",
    expect: "shard-leases.slotmap.dev",
    request: (env) => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: ack("99999999999", env.slotmapUid),
    }),
  },
  {
    actor: "shard",
    what: "delete its own Lease",
    expect: "RBAC",
    request: () => ({ op: "delete", path: lease(LEASE_NAMESPACE, OWN) }),
  },
  {
    actor: "shard",
    what: "delete another shard's Lease",
    expect: "RBAC",
    request: () => ({ op: "delete", path: lease(LEASE_NAMESPACE, OTHER) }),
  },
  {
    actor: "shard-no-pod",
    what: "create its Lease with a token bound to no pod",
    expect: "shard-leases.slotmap.dev",
    request: () => ({ op: "create", path: leases(LEASE_NAMESPACE), body: shardLease(OWN) }),
  },
  {
    actor: "shard",
    what: "create a Lease in namespace default",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: leases("default"),
      body: shardLease(OWN, { namespace: "default" }),
    }),
  },
  {
    actor: "shard",
    what: "update a node Lease in kube-node-lease",
    expect: "RBAC",
    request: () => ({ op: "update", path: lease("kube-node-lease", NODE_LEASE), mutate: takeover }),
  },
  {
    actor: "shard",
    what: "delete a node Lease in kube-node-lease",
    expect: "RBAC",
    request: () => ({ op: "delete", path: lease("kube-node-lease", NODE_LEASE) }),
  },
  {
    actor: "shard",
    what: "update the kube-apiserver identity Lease in kube-system (dry run)",
    expect: "RBAC",
    request: (env) => ({
      op: "update",
      path: lease("kube-system", env.apiserverLease),
      mutate: () => {},
      query: dryRun,
    }),
  },
  {
    actor: "shard",
    what: "list Secrets in all namespaces (its runtime's watch needs it)",
    expect: "allowed",
    request: () => ({ op: "list", path: "/api/v1/secrets", query: { limit: "1" } }),
  },
  {
    actor: "shard",
    what: "list Secrets in kube-system (every namespace is sharded)",
    expect: "allowed",
    request: () => ({ op: "list", path: "/api/v1/namespaces/kube-system/secrets", query: { limit: "1" } }),
  },
  {
    actor: "shard",
    what: "get a Secret by name in kube-system",
    expect: "RBAC",
    request: () => ({ op: "get", path: "/api/v1/namespaces/kube-system/secrets/any" }),
  },
  {
    actor: "shard",
    what: "create the checksum ConfigMap of a Secret (owned by it) in a sharded namespace",
    expect: "allowed",
    request: () => ({
      op: "create",
      path: `/api/v1/namespaces/${SHARDED_NAMESPACE}/configmaps`,
      body: checksumConfigMap(SHARDED_NAMESPACE, "s1"),
    }),
  },
  {
    actor: "shard",
    what: "create a ConfigMap that is not a Secret's checksum",
    expect: "checksum-configmaps.slotmap.dev",
    request: () => ({
      op: "create",
      path: `/api/v1/namespaces/${SHARDED_NAMESPACE}/configmaps`,
      body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "not-a-checksum" }, data: { a: "b" } },
    }),
  },
  {
    actor: "shard",
    what: "update a ConfigMap in kube-system",
    expect: "checksum-configmaps.slotmap.dev",
    request: () => ({
      op: "update",
      path: `/api/v1/namespaces/kube-system/configmaps/${VICTIM_CONFIGMAP}`,
      mutate: (o) => {
        (o as unknown as { data: Record<string, string> }).data = { hijacked: "yes" };
      },
    }),
  },
  {
    actor: "shard",
    what: "delete a ConfigMap in kube-system",
    expect: "RBAC",
    request: () => ({ op: "delete", path: `/api/v1/namespaces/kube-system/configmaps/${VICTIM_CONFIGMAP}` }),
  },
  {
    actor: "shard",
    what: "create an Event (core/v1) in default",
    expect: "RBAC",
    request: () => ({ op: "create", path: "/api/v1/namespaces/default/events", body: event("default") }),
  },
  {
    actor: "shard",
    what: "create an Event (events.k8s.io/v1) in default",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: "/apis/events.k8s.io/v1/namespaces/default/events",
      body: eventsV1("default"),
    }),
  },
  {
    actor: "shard",
    what: "get its SlotMap",
    expect: "allowed",
    request: () => ({ op: "get", path: `${slotmaps}/${SLOTMAP}` }),
  },
  {
    actor: "shard",
    what: "list its SlotMap (field selector metadata.name)",
    expect: "allowed",
    request: () => ({ op: "list", path: slotmaps, query: { fieldSelector: `metadata.name=${SLOTMAP}` } }),
  },
  {
    actor: "shard",
    what: "watch its SlotMapShard projection (list, field selector metadata.name)",
    expect: "allowed",
    request: () => ({
      op: "list",
      path: projections(LEASE_NAMESPACE),
      query: { fieldSelector: `metadata.name=${SLOTMAP}.${OWN}` },
    }),
  },
  {
    actor: "shard",
    what: "create a SlotMapShard granting itself every slot (dry run)",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: projections(LEASE_NAMESPACE),
      body: projection(LEASE_NAMESPACE, OWN, "0-16383"),
      query: dryRun,
    }),
  },
  {
    actor: "shard",
    what: "delete another shard's SlotMapShard",
    expect: "RBAC",
    request: () => ({ op: "delete", path: `${projections(LEASE_NAMESPACE)}/${SLOTMAP}.${OTHER}` }),
  },
  {
    actor: "shard",
    what: "list all SlotMaps",
    expect: "RBAC",
    request: () => ({ op: "list", path: slotmaps }),
  },
  {
    actor: "shard",
    what: "write its SlotMap's status",
    expect: "RBAC",
    request: () => ({ op: "update", path: `${slotmaps}/${SLOTMAP}/status`, mutate: () => {} }),
  },
  {
    actor: "shard",
    what: "write its SlotMap's spec (spec.weights)",
    expect: "RBAC",
    request: () => ({
      op: "patch",
      path: `${slotmaps}/${SLOTMAP}`,
      body: { spec: { weights: { [OTHER]: 0 } } },
    }),
  },
  {
    actor: "shard",
    what: "delete its SlotMap (dry run)",
    expect: "RBAC",
    request: () => ({ op: "delete", path: `${slotmaps}/${SLOTMAP}`, query: dryRun }),
  },

  // --- the coordinator -----------------------------------------------------------------------
  {
    actor: "coordinator",
    what: "create its leader-election Lease slotmap-system/slotmap-coordinator",
    expect: "allowed",
    request: () => ({
      op: "create",
      path: leases(LEADER.namespace),
      body: shardLease(LEADER.name, {
        namespace: LEADER.namespace,
        labels: null,
        holder: "slotmap-coordinator-abc",
      }),
    }),
  },
  {
    actor: "coordinator",
    what: "create another Lease in slotmap-system",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({
      op: "create",
      path: leases(LEADER.namespace),
      body: shardLease("other-election", { namespace: LEADER.namespace, labels: null }),
    }),
  },
  {
    actor: "coordinator",
    what: "create a shard Lease in the lease namespace",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: leases(LEASE_NAMESPACE),
      body: shardLease("rogue", { holder: "x" }),
    }),
  },
  {
    actor: "coordinator",
    what: "take over an expired shard Lease (holderIdentity: the takeover marker)",
    expect: "allowed",
    request: () => ({ op: "update", path: lease(LEASE_NAMESPACE, OTHER), mutate: takeover }),
  },
  {
    actor: "coordinator",
    what: "delete an orphaned shard Lease",
    expect: "allowed",
    request: () => ({ op: "delete", path: lease(LEASE_NAMESPACE, OTHER) }),
  },
  {
    actor: "coordinator",
    what: "take over a shard Lease and forge its ack",
    expect: "coordinator-leases.slotmap.dev",
    request: (env) => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => {
        takeover(l);
        ack("7", env.slotmapUid)(l);
      },
    }),
  },
  {
    actor: "coordinator",
    what: "take over a shard Lease and set its weight",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => {
        takeover(l);
        annotate(l, "slotmap.dev/weight", "0");
      },
    }),
  },
  {
    actor: "coordinator",
    what: "hand a shard Lease to another holder",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => {
        l.spec.holderIdentity = "x";
      },
    }),
  },
  {
    actor: "coordinator",
    what: "remove the slotmap.dev/slotmap label of a shard Lease",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({
      op: "update",
      path: lease(LEASE_NAMESPACE, OTHER),
      mutate: (l) => {
        takeover(l);
        delete l.metadata.labels;
      },
    }),
  },
  {
    actor: "coordinator",
    what: "update an unlabelled Lease in the lease namespace",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({ op: "update", path: lease(LEASE_NAMESPACE, "unlabelled"), mutate: takeover }),
  },
  {
    actor: "coordinator",
    what: "delete an unlabelled Lease in the lease namespace",
    expect: "coordinator-leases.slotmap.dev",
    request: () => ({ op: "delete", path: lease(LEASE_NAMESPACE, "unlabelled") }),
  },
  {
    actor: "coordinator",
    what: "take over a labelled Lease in a namespace with no coordinator RoleBinding",
    expect: "RBAC",
    request: () => ({ op: "update", path: lease(FOREIGN_NAMESPACE, "elsewhere-0"), mutate: takeover }),
  },
  {
    actor: "coordinator",
    what: "update a node Lease in kube-node-lease",
    expect: "RBAC",
    request: () => ({ op: "update", path: lease("kube-node-lease", NODE_LEASE), mutate: takeover }),
  },
  {
    actor: "coordinator",
    what: "delete a node Lease in kube-node-lease",
    expect: "RBAC",
    request: () => ({ op: "delete", path: lease("kube-node-lease", NODE_LEASE) }),
  },
  {
    actor: "coordinator",
    what: "update the kube-apiserver identity Lease in kube-system (dry run)",
    expect: "RBAC",
    request: (env) => ({
      op: "update",
      path: lease("kube-system", env.apiserverLease),
      mutate: () => {},
      query: dryRun,
    }),
  },
  {
    actor: "coordinator",
    what: "delete the kube-apiserver identity Lease in kube-system (dry run)",
    expect: "RBAC",
    request: (env) => ({ op: "delete", path: lease("kube-system", env.apiserverLease), query: dryRun }),
  },
  {
    actor: "coordinator",
    what: "list shard Leases in all namespaces (label slotmap.dev/slotmap)",
    expect: "allowed",
    request: () => ({
      op: "list",
      path: "/apis/coordination.k8s.io/v1/leases",
      query: { labelSelector: "slotmap.dev/slotmap" },
    }),
  },
  {
    actor: "coordinator",
    what: "list SlotMapShard projections in all namespaces (label slotmap.dev/slotmap)",
    expect: "allowed",
    request: () => ({
      op: "list",
      path: "/apis/slotmap.dev/v1alpha1/slotmapshards",
      query: { labelSelector: "slotmap.dev/slotmap" },
    }),
  },
  {
    actor: "coordinator",
    what: "create a shard's SlotMapShard in the lease namespace (dry run)",
    expect: "allowed",
    request: () => ({
      op: "create",
      path: projections(LEASE_NAMESPACE),
      body: projection(LEASE_NAMESPACE, OWN, "0-16383"),
      query: dryRun,
    }),
  },
  {
    actor: "coordinator",
    what: "create a SlotMapShard in a namespace with no coordinator RoleBinding (dry run)",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: projections(FOREIGN_NAMESPACE),
      body: projection(FOREIGN_NAMESPACE, "elsewhere-0", ""),
      query: dryRun,
    }),
  },
  {
    actor: "coordinator",
    what: "write a SlotMap's status",
    expect: "allowed",
    request: () => ({ op: "update", path: `${slotmaps}/${SLOTMAP}/status`, mutate: () => {} }),
  },
  {
    actor: "coordinator",
    what: "write a SlotMap's spec (spec.weights)",
    expect: "RBAC",
    request: () => ({
      op: "patch",
      path: `${slotmaps}/${SLOTMAP}`,
      body: { spec: { weights: { [OTHER]: 0 } } },
    }),
  },
  {
    actor: "coordinator",
    what: "delete a SlotMap (dry run)",
    expect: "RBAC",
    request: () => ({ op: "delete", path: `${slotmaps}/${SLOTMAP}`, query: dryRun }),
  },
  {
    actor: "coordinator",
    what: "list Secrets in all namespaces",
    expect: "RBAC",
    request: () => ({ op: "list", path: "/api/v1/secrets", query: { limit: "1" } }),
  },
  {
    actor: "coordinator",
    what: "get a Secret by name in kube-system",
    expect: "RBAC",
    request: () => ({ op: "get", path: "/api/v1/namespaces/kube-system/secrets/any" }),
  },
  {
    actor: "coordinator",
    what: "create an Event about a SlotMap in default",
    expect: "allowed",
    request: () => ({ op: "create", path: "/api/v1/namespaces/default/events", body: event("default") }),
  },
  {
    actor: "coordinator",
    what: "create an Event about a shard Lease in the lease namespace",
    expect: "allowed",
    request: () => ({
      op: "create",
      path: `/api/v1/namespaces/${LEASE_NAMESPACE}/events`,
      body: event(LEASE_NAMESPACE, OTHER),
    }),
  },
  {
    actor: "coordinator",
    what: "create an Event (about a Lease) in kube-system",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: "/api/v1/namespaces/kube-system/events",
      body: event("kube-system", "any"),
    }),
  },
  {
    actor: "coordinator",
    what: "create an Event (events.k8s.io/v1) in default",
    expect: "RBAC",
    request: () => ({
      op: "create",
      path: "/apis/events.k8s.io/v1/namespaces/default/events",
      body: eventsV1("default"),
    }),
  },
  {
    actor: "coordinator",
    what: "delete a ConfigMap in kube-system",
    expect: "RBAC",
    request: () => ({ op: "delete", path: `/api/v1/namespaces/kube-system/configmaps/${VICTIM_CONFIGMAP}` }),
  },
];

/** The ConfigMap the checksum reconciler writes for Secret `secret` (its owner, uid made up). */
export function checksumConfigMap(namespace: string, secret: string): unknown {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: `${secret}-checksum`,
      namespace,
      ownerReferences: [
        {
          apiVersion: "v1",
          kind: "Secret",
          name: secret,
          uid: "00000000-0000-0000-0000-000000000001",
          controller: true,
        },
      ],
    },
    data: { checksum: "0".repeat(64) },
  };
}

function eventsV1(ns: string): unknown {
  return {
    apiVersion: "events.k8s.io/v1",
    kind: "Event",
    metadata: { generateName: "slotmap-rbac-", namespace: ns },
    eventTime: microNow(),
    reportingController: "slotmap.dev/rbac-test",
    reportingInstance: "rbac-test",
    action: "Probe",
    reason: "Probe",
    type: "Normal",
    regarding: { apiVersion: "slotmap.dev/v1alpha1", kind: "SlotMap", name: SLOTMAP },
  };
}

const ACTOR_LABEL: Record<Actor, string> = {
  shard: `shard (pod ${OWN})`,
  "shard-no-pod": "shard (token bound to no pod)",
  coordinator: "coordinator",
};

const OUTCOME_LABEL = (o: Outcome): string =>
  o === "allowed" ? "allowed" : o === "RBAC" ? "denied by RBAC" : `denied by admission: \`${o}\``;

/** The verb of a request, as RBAC names it. */
export function verbOf(r: CaseRequest): string {
  return r.op === "list" && r.query?.watch === "true" ? "watch" : r.op;
}

/** The markdown table of every case (docs/operations.md "Least privilege"). */
export function renderCaseTable(cases: readonly AccessCase[] = CASES): string {
  const env: CaseEnv = { slotmapUid: "<uid>", apiserverLease: "apiserver-<id>" };
  const rows = cases.map((c) => {
    const r = c.request(env);
    return `| ${ACTOR_LABEL[c.actor]} | ${verbOf(r)} | ${c.what} | ${OUTCOME_LABEL(c.expect)} |`;
  });
  return ["| as | verb | request | result |", "|---|---|---|---|", ...rows].join("\n");
}
