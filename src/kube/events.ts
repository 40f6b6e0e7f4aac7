import { randomBytes } from "node:crypto";
import { isStatus, type KubeHttp } from "./http.js";

/**
 * Records Events (`core/v1`) for the coordinator and for reconcilers, aggregating repeats the way client-go's
 * event correlator does: an Event identical to one already sent (same object, type, reason,
 * message and reporter) bumps `count` and `lastTimestamp` of the existing Event (PATCH) instead
 * of creating another one, so a flapping problem does not flood the namespace.
 *
 * Events are best effort: a failure is logged and counted, never retried (the core already counts
 * the Event as sent).
 */

/** Events about cluster-scoped objects (the SlotMap) go here, as kubectl and client-go do. */
export const CLUSTER_SCOPED_EVENT_NAMESPACE = "default";

/** The object an Event is about. */
export interface EventObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  /** Absent for cluster-scoped objects. */
  readonly namespace?: string | undefined;
  readonly uid: string;
  readonly resourceVersion?: string | undefined;
}

/** One Event to record. */
export interface EventRecord {
  readonly involvedObject: EventObjectRef;
  readonly eventType: "Normal" | "Warning";
  /** CamelCase, e.g. `HandoffTimeout`. */
  readonly reason: string;
  readonly message: string;
  /** Which process reports (a pod name, a holder identity). */
  readonly reportingInstance: string;
}

/** Options of {@link EventRecorder}. */
export interface EventRecorderOptions {
  http: Pick<KubeHttp, "request">;
  logger: { warn(fields: object, msg: string): void };
  /** `source.component` and `reportingComponent`, e.g. `slotmap-coordinator`. */
  component: string;
  /** Told about every write (for a metric of API writes). */
  onWrite?: ((verb: "create" | "patch", result: "ok" | "notfound" | "error") => void) | undefined;
  /** Wall clock; injected by tests. */
  now?: () => Date;
  /** Distinct Events remembered for aggregation (least recently used are forgotten). Default 4096. */
  maxEntries?: number;
}

interface Sent {
  namespace: string;
  name: string;
  count: number;
}

/** Kubernetes `metav1.Time`: RFC 3339 UTC, whole seconds. */
function metaTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Creates or aggregates Events; see the module comment. */
export class EventRecorder {
  private readonly sent = new Map<string, Sent>();
  private readonly now: () => Date;
  private readonly maxEntries: number;

  constructor(private readonly opts: EventRecorderOptions) {
    this.now = opts.now ?? (() => new Date());
    this.maxEntries = opts.maxEntries ?? 4096;
  }

  /** Sends one Event (create, or bump the count of an identical one). Never throws. */
  async record(a: EventRecord, signal?: AbortSignal): Promise<void> {
    const ref = a.involvedObject;
    const namespace = ref.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE;
    const key = JSON.stringify([
      namespace,
      ref.apiVersion,
      ref.kind,
      ref.name,
      ref.uid,
      a.eventType,
      a.reason,
      a.message,
      a.reportingInstance,
    ]);
    const at = metaTime(this.now());
    const previous = this.sent.get(key);
    try {
      if (previous !== undefined) {
        this.sent.delete(key); // re-inserted below: most recently used last
        const count = previous.count + 1;
        try {
          await this.opts.http.request(
            "PATCH",
            `/api/v1/namespaces/${encodeURIComponent(namespace)}/events/${encodeURIComponent(previous.name)}`,
            {
              body: { count, lastTimestamp: at },
              contentType: "application/merge-patch+json",
              signal,
            },
          );
          this.opts.onWrite?.("patch", "ok");
          this.remember(key, { ...previous, count });
          return;
        } catch (err) {
          // The Event expired (the API server keeps Events for an hour): create it anew.
          if (!isStatus(err, 404)) throw err;
          this.opts.onWrite?.("patch", "notfound");
        }
      }
      const name = `${ref.name.slice(0, 200)}.${randomBytes(8).toString("hex")}`;
      await this.opts.http.request("POST", `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, {
        body: {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: ref.apiVersion,
            kind: ref.kind,
            name: ref.name,
            uid: ref.uid,
            ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}),
            ...(ref.resourceVersion !== undefined ? { resourceVersion: ref.resourceVersion } : {}),
          },
          type: a.eventType,
          reason: a.reason,
          message: a.message,
          source: { component: this.opts.component },
          reportingComponent: this.opts.component,
          reportingInstance: a.reportingInstance,
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        },
        signal,
      });
      this.opts.onWrite?.("create", "ok");
      this.remember(key, { namespace, name, count: 1 });
    } catch (err) {
      this.opts.onWrite?.(previous !== undefined ? "patch" : "create", "error");
      if (previous !== undefined && !this.sent.has(key)) this.remember(key, previous);
      if (signal?.aborted) return;
      this.opts.logger.warn(
        {
          reason: a.reason,
          kind: ref.kind,
          name: ref.name,
          namespace,
          err,
        },
        "could not record Event (not retried)",
      );
    }
  }

  private remember(key: string, entry: Sent): void {
    this.sent.set(key, entry);
    while (this.sent.size > this.maxEntries) {
      const oldest = this.sent.keys().next().value;
      if (oldest === undefined) break;
      this.sent.delete(oldest);
    }
  }
}
