/**
 * Which rules a shard applies: the SlotMap's `spec.resources` resolved through API discovery
 * (retried with backoff until the API server serves them), and, while the spec has a
 * `namespaceSelector`, a watch of Namespaces (names and labels) that the rules read the selection
 * from. The {@link ShardMember} feeds it every valid spec and hands the rules on to the runtime and
 * to its shard machine.
 *
 * Rules are handed over only once they can place every object: with a namespace selector, after
 * the first Namespace list, since before it every namespaced object would look unselected (and the
 * runtime would list everything a second time when the labels arrive).
 */
import type { SlotMapSpec } from "../api/v1alpha1.js";
import type { KubeHttp, KubeObject } from "../kube/http.js";
import { Reflector } from "../kube/reflector.js";
import { keyOf, ObjectCache } from "../kube/store.js";
import { backoffDelay } from "../runtime/backoff.js";
import { placementFingerprint } from "../slots/placement.js";
import { DiscoveryError, ResourceResolver } from "./discovery.js";
import type { ShardLogger } from "./logger.js";
import { SlotRules } from "./rules.js";

/** Options of {@link RulesSource}. */
export interface RulesSourceOptions {
  /** The API server: discovery, and the Namespace watch. */
  http: KubeHttp;
  /** Resolves `spec.resources`. Default: discovery through `http`. */
  resolver?: ResourceResolver | undefined;
  log: ShardLogger;
  /** The fields every log record carries (the member's slotmap, shard, generation, identity). */
  fields: () => object;
  /**
   * A new rule set is resolved and can place objects; `fingerprint` is the placementFingerprint
   * of the spec it came from. Called synchronously after {@link RulesSource.rules} returns them and
   * the `whenRules` waiters were resolved, so the caller can hand them on in the same block.
   */
  onRules: (rules: SlotRules, fingerprint: string) => void;
  /** A namespace started or stopped matching the current rules' namespace selector. */
  onNamespacesChanged: () => void;
}

interface NamespaceObject extends KubeObject {
  metadata?: KubeObject["metadata"] & { name?: string };
}

/** The SlotMap's resource rules of one shard, kept current with the spec. */
export class RulesSource {
  readonly #http: KubeHttp;
  readonly #resolver: ResourceResolver;
  readonly #log: ShardLogger;
  readonly #fields: () => object;
  readonly #onRules: (rules: SlotRules, fingerprint: string) => void;
  readonly #onNamespacesChanged: () => void;
  /** Aborts the waits and backoff sleeps of a resolution in progress. */
  readonly #stopping = new AbortController();
  #stopped = false;

  /** resources + namespaceSelector of the last spec: other spec edits do not re-resolve. */
  #specJson: string | undefined;
  /** Bumped by every new spec: a resolution of an older one gives up. */
  #epoch = 0;
  #rules: SlotRules | undefined;
  #waiters: Array<(r: SlotRules) => void> = [];

  #namespaceReflector: Reflector<NamespaceObject> | undefined;
  /** Resolves once the namespace watch listed once (see #syncNamespaceWatch). */
  #namespacesKnown: Promise<void> = Promise.resolve();
  /** Namespaces (for their labels), while the SlotMap has a namespace selector. */
  readonly #namespaces = new ObjectCache<NamespaceObject>();

  constructor(options: RulesSourceOptions) {
    this.#http = options.http;
    this.#resolver = options.resolver ?? new ResourceResolver(options.http);
    this.#log = options.log;
    this.#fields = options.fields;
    this.#onRules = options.onRules;
    this.#onNamespacesChanged = options.onNamespacesChanged;
  }

  /** The rules last handed over (undefined before the first). */
  get rules(): SlotRules | undefined {
    return this.#rules;
  }

  /** Resolves with the rules as soon as they are known. */
  whenRules(): Promise<SlotRules> {
    if (this.#rules !== undefined) return Promise.resolve(this.#rules);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * A valid SlotMap spec was observed: resolves its rules unless its resources and namespace
   * selector are those of the previous spec. A newer spec wins over a resolution in progress.
   */
  applySpec(spec: SlotMapSpec): void {
    const json = JSON.stringify([spec.resources, spec.namespaceSelector ?? null]);
    if (json === this.#specJson) return;
    this.#specJson = json;
    void this.#resolve(spec, ++this.#epoch);
  }

  /** Stops the Namespace watch and any resolution in progress; resolves once the watch ended. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    return this.#namespaceReflector?.stop() ?? Promise.resolve();
  }

  async #resolve(spec: SlotMapSpec, epoch: number): Promise<void> {
    for (let attempt = 0; !this.#stopped && epoch === this.#epoch; attempt++) {
      try {
        const rules = await SlotRules.fromSpec(spec, this.#resolver);
        if (epoch !== this.#epoch || this.#stopped) return;
        rules.useNamespaceLabels({
          labelsOf: (ns) => {
            const o = this.#namespaces.get(ns);
            return o === undefined ? undefined : (o.metadata?.labels ?? {});
          },
        });
        // With a namespace selector, only once the labels are known (see the file header).
        await this.#untilStopped(this.#syncNamespaceWatch(rules));
        if (epoch !== this.#epoch || this.#stopped) return;
        this.#rules = rules;
        this.#log.info(
          {
            ...this.#fields(),
            resources: rules.resources.map((r) => `${r.resource.path}${r.controlled ? " (controlled)" : ""}`),
          },
          "SlotMap resources resolved",
        );
        for (const w of this.#waiters.splice(0)) w(rules);
        this.#onRules(rules, placementFingerprint(spec.resources));
        return;
      } catch (err) {
        const delay = backoffDelay(attempt, 500, 30_000);
        this.#log[err instanceof DiscoveryError ? "error" : "warn"](
          { ...this.#fields(), err, retryInMs: delay },
          "cannot resolve the SlotMap's resources; retrying",
        );
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.#stopping.signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    }
  }

  /** `p`, or {@link stop}, whichever comes first. */
  #untilStopped(p: Promise<void>): Promise<void> {
    const stopping = this.#stopping.signal;
    if (stopping.aborted) return Promise.resolve();
    return Promise.race([
      p,
      new Promise<void>((resolve) => stopping.addEventListener("abort", () => resolve(), { once: true })),
    ]);
  }

  /**
   * Watches namespaces (names and labels only) while the SlotMap has a namespace selector.
   * Resolves once their labels are known (the first list), at once without a selector.
   */
  #syncNamespaceWatch(rules: SlotRules): Promise<void> {
    if (rules.namespaceSelector === undefined) {
      if (this.#namespaceReflector !== undefined) {
        void this.#namespaceReflector.stop();
        this.#namespaceReflector = undefined;
        this.#namespaces.clear();
      }
      return Promise.resolve();
    }
    if (this.#namespaceReflector !== undefined) return this.#namespacesKnown;
    let first = true;
    let known!: () => void;
    this.#namespacesKnown = new Promise<void>((resolve) => {
      known = resolve;
    });
    this.#namespaceReflector = new Reflector<NamespaceObject>({
      http: this.#http,
      path: "/api/v1/namespaces",
      handler: {
        onListStart: () => this.#namespaces.beginList(),
        onEvent: (type, obj, listed) => {
          const name = obj.metadata?.name;
          if (name === undefined) return;
          // Judged by the rules handed over: rules still resolving are not the runtime's yet.
          const before = this.#rules?.namespaceSelected(name);
          if (type === "DELETED") this.#namespaces.remove(keyOf(obj), obj);
          else this.#namespaces.put(obj);
          if (!listed && this.#rules?.namespaceSelected(name) !== before) this.#onNamespacesChanged();
        },
        onSynced: () => {
          this.#namespaces.endList(); // namespaces deleted while the watch was down
          // The first list only makes the labels known: the runtime starts after it.
          if (!first) this.#onNamespacesChanged();
          first = false;
          known();
        },
        onError: (err) => this.#log.warn({ ...this.#fields(), err }, "Namespace watch failed; retrying"),
      },
    });
    void this.#namespaceReflector.start().catch(() => {});
    return this.#namespacesKnown;
  }
}
