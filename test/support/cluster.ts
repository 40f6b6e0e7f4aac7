// Helpers for integration tests. The cluster is chosen by test/support/global-setup.ts
// and handed to test workers through environment variables.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";

export type Identity = "admin" | "tester";

export const ENV = {
  kubeconfig: "SLOTMAP_TEST_KUBECONFIG",
  testerKubeconfig: "SLOTMAP_TEST_TESTER_KUBECONFIG",
  kubectl: "SLOTMAP_TEST_KUBECTL",
  runId: "SLOTMAP_TEST_RUN_ID",
  testenvPid: "SLOTMAP_TEST_TESTENV_PID",
} as const;

/** Label put on every namespace made by freshNamespace, valued with the run id. */
export const TEST_RUN_LABEL = "slotmap.dev/test-run";

/**
 * Why tests that need the non-admin identity must skip, or undefined if they can run.
 * Use: `it.skipIf(testerSkipReason())(...)`, and mention the reason in the test name or a log.
 */
export function testerSkipReason(): string | undefined {
  return process.env[ENV.testerKubeconfig]
    ? undefined
    : "no non-admin identity: set SLOTMAP_TESTER_KUBECONFIG for an external cluster (SLOTMAP_KUBECONFIG)";
}

/**
 * Why tests that compact etcd must skip (an external cluster's etcd is out of reach), or
 * undefined if {@link compactEtcd} works.
 */
export function compactSkipReason(): string | undefined {
  return process.env[ENV.testenvPid]
    ? undefined
    : "needs the local control plane to compact etcd (not available with SLOTMAP_KUBECONFIG)";
}

/**
 * Asks the local control plane to compact etcd at its current revision (SIGUSR1), so that
 * watches and paged lists from older resourceVersions get 410 Gone. Asynchronous: wait for
 * the effect. Throws when {@link compactSkipReason} says it is unavailable.
 */
export function compactEtcd(): void {
  const reason = compactSkipReason();
  if (reason) throw new Error(reason);
  process.kill(Number(process.env[ENV.testenvPid]), "SIGUSR1");
}

export function kubeconfigPath(identity: Identity = "admin"): string {
  const name = identity === "admin" ? ENV.kubeconfig : ENV.testerKubeconfig;
  const p = process.env[name];
  if (!p) {
    throw new Error(
      identity === "admin"
        ? `${name} is not set: run integration tests through vitest (--project integration) so global-setup starts a cluster`
        : (testerSkipReason() ?? `${name} is not set`),
    );
  }
  return p;
}

export function kubeConfig(identity: Identity = "admin"): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath(identity));
  return kc;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl against the test cluster. Never throws on a non-zero exit: check `code`. */
export function kubectl(
  args: string[],
  opts: { input?: string; identity?: Identity; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  const bin = process.env[ENV.kubectl] || "kubectl";
  const fullArgs = ["--kubeconfig", kubeconfigPath(opts.identity ?? "admin"), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, fullArgs, {
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 60_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (err) => reject(new Error(`kubectl (${bin}) failed to start: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (signal) stderr += `\n[kubectl killed by ${signal}]`;
      resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.on("error", () => {}); // kubectl may exit before reading all input
    child.stdin.end(opts.input ?? "");
  });
}

/** Creates a uniquely named namespace (DNS-1123 label) and returns its name. */
export async function freshNamespace(prefix = "t"): Promise<string> {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "t";
  const name = `${clean}-${randomBytes(4).toString("hex")}`;
  const labels: Record<string, string> = {};
  const runId = process.env[ENV.runId];
  if (runId) labels[TEST_RUN_LABEL] = runId;
  await kubeConfig("admin")
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name, labels } } });
  return name;
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is awaited, for the timeout message: "lease to be renewed". */
  description?: string;
}

/**
 * Polls `fn` until it returns a value other than undefined, null or false, and returns it.
 * Errors thrown by `fn` count as "not yet"; the last one is reported on timeout.
 */
export async function waitFor<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 200;
  const started = Date.now();
  let attempts = 0;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    attempts++;
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
      lastValue = v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const what = opts.description ?? "condition";
      const last =
        lastError !== undefined
          ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
          : `last value: ${String(lastValue)}`;
      throw new Error(`timed out after ${elapsed} ms (${attempts} attempts) waiting for ${what}; ${last}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, timeoutMs - elapsed))));
  }
}
