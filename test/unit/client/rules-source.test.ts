import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseSlotMapSpec, type SlotMapSpec, type SlotMapSpecInput } from "../../../src/api/v1alpha1.js";
import {
  DiscoveryError,
  type GroupResourceRef,
  type ResolvedResource,
  ResourceResolver,
} from "../../../src/client/discovery.js";
import type { SlotRules } from "../../../src/client/rules.js";
import { RulesSource } from "../../../src/client/rules-source.js";
import { KubeHttp } from "../../../src/kube/http.js";
import { placementFingerprint } from "../../../src/slots/placement.js";

// Discovery answered in memory: the resolution logic (dedupe, epochs, retries) needs no server.
// The Namespace watch does; with a namespace selector this suite only checks that the rules wait
// for it (the integration suite covers the rest against a real kube-apiserver).

function spec(input: Partial<SlotMapSpecInput> = {}): SlotMapSpec {
  const r = parseSlotMapSpec({ leaseNamespace: "ns", resources: [{ resource: "secrets" }], ...input });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

/** Resolves core/v1 resources; each call can be held (gate) or failed (failures) first. */
class MemoryResolver extends ResourceResolver {
  calls: string[] = [];
  failures: unknown[] = [];
  gate: Promise<void> | undefined;

  constructor() {
    super(new KubeHttp(new KubeConfig()));
  }

  override async resolve(ref: GroupResourceRef, _field: string): Promise<ResolvedResource> {
    this.calls.push(ref.resource);
    await this.gate;
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    const kind = ref.resource.slice(0, 1).toUpperCase() + ref.resource.slice(1, -1);
    return {
      group: "",
      version: "v1",
      apiVersion: "v1",
      resource: ref.resource,
      kind,
      namespaced: true,
      path: `/api/v1/${ref.resource}`,
    };
  }
}

function source() {
  const resolver = new MemoryResolver();
  const handed: Array<{ rules: SlotRules; fingerprint: string }> = [];
  const logs: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const record =
    (level: string) =>
    (fields: object, msg: string): void => {
      logs.push({ level, msg, fields: fields as Record<string, unknown> });
    };
  const rules = new RulesSource({
    http: new KubeHttp(new KubeConfig()),
    resolver,
    log: { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") },
    fields: () => ({ shard: "s-0" }),
    onRules: (r, fingerprint) => {
      // Handed over after `rules` and the waiters, in the same synchronous block.
      expect(rules.rules).toBe(r);
      handed.push({ rules: r, fingerprint });
    },
    onNamespacesChanged: () => {},
  });
  return { rules, resolver, handed, logs };
}

/** Lets every pending promise continuation run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe("RulesSource", () => {
  it("hands over the rules of a spec once, with its placement fingerprint", async () => {
    const { rules, handed, logs } = source();
    const waiting = rules.whenRules();
    expect(rules.rules).toBeUndefined();
    const s = spec({
      resources: [{ resource: "secrets", controlledResources: [{ resource: "configmaps" }] }],
    });
    rules.applySpec(s);
    const r = await waiting;
    expect(handed).toEqual([{ rules: r, fingerprint: placementFingerprint(s.resources) }]);
    expect(r.resources.map((x) => [x.resource.path, x.controlled])).toEqual([
      ["/api/v1/secrets", false],
      ["/api/v1/configmaps", true],
    ]);
    expect(await rules.whenRules()).toBe(r);
    expect(logs).toEqual([
      {
        level: "info",
        msg: "SlotMap resources resolved",
        fields: { shard: "s-0", resources: ["/api/v1/secrets", "/api/v1/configmaps (controlled)"] },
      },
    ]);
    await rules.stop();
  });

  it("re-resolves only when the resources or the namespace selector change", async () => {
    const { rules, resolver, handed } = source();
    rules.applySpec(spec());
    await rules.whenRules();
    // Another lease namespace or policy: the same rules.
    rules.applySpec(spec({ leaseNamespace: "other", policy: { handoffTimeoutSeconds: 60 } }));
    await settle();
    expect(resolver.calls).toEqual(["secrets"]);
    expect(handed).toHaveLength(1);

    rules.applySpec(spec({ resources: [{ resource: "services" }] }));
    await settle();
    expect(resolver.calls).toEqual(["secrets", "services"]);
    expect(handed.map((h) => h.rules.resources[0]?.resource.resource)).toEqual(["secrets", "services"]);
    expect(rules.rules).toBe(handed[1]?.rules);
    await rules.stop();
  });

  it("a newer spec wins over a resolution in progress", async () => {
    const { rules, resolver, handed } = source();
    let release!: () => void;
    resolver.gate = new Promise((resolve) => {
      release = resolve;
    });
    rules.applySpec(spec());
    rules.applySpec(spec({ resources: [{ resource: "services" }] }));
    release();
    await settle();
    expect(resolver.calls).toEqual(["secrets", "services"]);
    expect(handed.map((h) => h.rules.resources[0]?.resource.resource)).toEqual(["services"]);
    await rules.stop();
  });

  it("retries with backoff: a resource not served at error, other failures at warn", async () => {
    vi.useFakeTimers();
    const { rules, resolver, handed, logs } = source();
    resolver.failures = [
      new Error("connect ECONNREFUSED"),
      new DiscoveryError("spec.resources[0]", { group: "", resource: "secrets" }, "not served"),
    ];
    rules.applySpec(spec());
    await vi.advanceTimersByTimeAsync(0);
    expect(logs.map((l) => [l.level, l.msg, l.fields.retryInMs])).toEqual([
      ["warn", "cannot resolve the SlotMap's resources; retrying", 500],
    ]);
    await vi.advanceTimersByTimeAsync(499);
    expect(resolver.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(logs.map((l) => [l.level, l.fields.retryInMs])).toEqual([
      ["warn", 500],
      ["error", 1000],
    ]);
    expect(logs[1]?.fields.err).toBeInstanceOf(DiscoveryError);
    await vi.advanceTimersByTimeAsync(1000);
    expect(resolver.calls).toHaveLength(3);
    expect(handed).toHaveLength(1);
    await rules.stop();
  });

  it("stop ends a backoff sleep: no retry, no rules", async () => {
    vi.useFakeTimers();
    const { rules, resolver, handed } = source();
    resolver.failures = [new Error("connect ECONNREFUSED")];
    rules.applySpec(spec());
    await vi.advanceTimersByTimeAsync(0);
    await rules.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(resolver.calls).toHaveLength(1);
    expect(handed).toHaveLength(0);
  });

  it("with a namespace selector, hands the rules over only after the first Namespace list", async () => {
    // A kubeconfig without a cluster: the Namespace list fails before any I/O, and is retried.
    const { rules, resolver, handed, logs } = source();
    rules.applySpec(spec({ namespaceSelector: { matchLabels: { team: "a" } } }));
    await vi.waitFor(() => expect(logs.map((l) => l.msg)).toContain("Namespace watch failed; retrying"));
    expect(resolver.calls).toEqual(["secrets"]);
    expect(handed).toHaveLength(0);
    expect(rules.rules).toBeUndefined();
    await rules.stop();
    await settle();
    expect(handed).toHaveLength(0);
  });
});
