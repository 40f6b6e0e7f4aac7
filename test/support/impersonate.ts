// Requests sent as a ServiceAccount through impersonation headers, with the admin's credentials:
// what a pod holding that ServiceAccount's token would send. The pod-name extra is the one a
// projected ServiceAccount token bound to a pod carries; admission policies read it as
// request.userInfo.extra["authentication.kubernetes.io/pod-name"].
import https from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

/** Extra of a token bound to a pod: the pod's name. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";

/** A ServiceAccount, and the pod its token is bound to (absent: a token bound to no pod). */
export interface ServiceAccountIdentity {
  namespace: string;
  name: string;
  pod?: string | undefined;
}

/** An answer: its HTTP status and decoded body (a `Status` object on errors). */
export interface Answer {
  status: number;
  body: unknown;
  /** The `Status` message of an error answer; "" otherwise. */
  message: string;
}

/** One request. */
export interface ImpersonatedRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string> | undefined;
  body?: unknown;
  contentType?: string | undefined;
}

/** The username of a ServiceAccount, as the API server authenticates its tokens. */
export function serviceAccountUser(sa: Pick<ServiceAccountIdentity, "namespace" | "name">): string {
  return `system:serviceaccount:${sa.namespace}:${sa.name}`;
}

/**
 * The impersonation headers that make a request look like one sent by `sa`'s token. Impersonate-Group
 * is a list: node:https sends one header line per element, as the API server wants (fetch and
 * undici join them into one line, which names a single group "a, b, c").
 */
export function impersonationHeaders(sa: ServiceAccountIdentity): Record<string, string | string[]> {
  const h: Record<string, string | string[]> = {
    "Impersonate-User": serviceAccountUser(sa),
    "Impersonate-Group": [
      "system:serviceaccounts",
      `system:serviceaccounts:${sa.namespace}`,
      "system:authenticated",
    ],
  };
  // Header names cannot hold "/": the extra's key is percent-encoded (the API server decodes it).
  if (sa.pod !== undefined) h[`Impersonate-Extra-${encodeURIComponent(POD_NAME_EXTRA)}`] = sa.pod;
  return h;
}

/** Sends requests as a ServiceAccount, authenticated with `kc`'s (admin) credentials. */
export class Impersonator {
  constructor(private readonly kc: KubeConfig) {}

  /** Sends `req` as `sa`; never throws on an error answer (see {@link Answer.status}). */
  async send(sa: ServiceAccountIdentity, req: ImpersonatedRequest): Promise<Answer> {
    const server = this.kc.getCurrentCluster()?.server;
    if (!server) throw new Error("kubeconfig has no current cluster");
    const url = new URL(server + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    const opts: https.RequestOptions = { method: req.method };
    await this.kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string | string[]> = {
      ...(opts.headers as Record<string, string>),
      ...impersonationHeaders(sa),
      Accept: "application/json",
    };
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    if (body !== undefined) headers["Content-Type"] = req.contentType ?? "application/json";
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const r = https.request(url, { ...opts, headers }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      });
      r.on("error", reject);
      r.end(body);
    });
    let decoded: unknown;
    try {
      decoded = text ? JSON.parse(text) : undefined;
    } catch {
      decoded = text;
    }
    const message =
      status >= 300 && typeof decoded === "object" && decoded !== null && "message" in decoded
        ? String((decoded as { message: unknown }).message)
        : "";
    return { status, body: decoded, message };
  }
}
