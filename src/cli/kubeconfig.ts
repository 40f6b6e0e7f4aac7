/**
 * Loads a kubeconfig the way kubectl does: `--kubeconfig` wins, else every file of `KUBECONFIG`
 * (path-list; missing files skipped; for each name the first file defining it wins, including
 * `current-context`), else `~/.kube/config`, else the in-cluster service account. Then
 * `--context` selects the context. Authentication and TLS are @kubernetes/client-node's.
 */
import fs from "node:fs";
import path from "node:path";
import { type Cluster, type Context, KubeConfig, type User } from "@kubernetes/client-node";
import { CliError, UsageError } from "./io.js";

/** Where to look, from flags and the environment. */
export interface KubeConfigSource {
  /** `--kubeconfig`. */
  kubeconfig?: string | undefined;
  /** `--context`. */
  context?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
}

/** A loaded kubeconfig and what the CLI reads from it. */
export interface LoadedKubeConfig {
  kc: KubeConfig;
  /** The context's namespace, else "default". */
  namespace: string;
  /** Files read, for messages. */
  files: string[];
}

function readFile(file: string, flag: string): KubeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new UsageError(`${flag} ${JSON.stringify(file)}: cannot read the kubeconfig: ${why}`);
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
    kc.makePathsAbsolute(path.dirname(path.resolve(file)));
  } catch (err) {
    throw new CliError(`${flag} ${JSON.stringify(file)}: not a valid kubeconfig: ${(err as Error).message}`);
  }
  return kc;
}

function firstWins<T extends { name: string }>(lists: ReadonlyArray<readonly T[]>): T[] {
  const out = new Map<string, T>();
  for (const list of lists) for (const item of list ?? []) if (!out.has(item.name)) out.set(item.name, item);
  return [...out.values()];
}

/** Merges kubeconfigs with kubectl's rule: the first file to define a name (or current-context) wins. */
export function mergeKubeConfigs(configs: readonly KubeConfig[]): KubeConfig {
  const merged = new KubeConfig();
  merged.loadFromOptions({
    clusters: firstWins<Cluster>(configs.map((c) => c.clusters)),
    users: firstWins<User>(configs.map((c) => c.users)),
    contexts: firstWins<Context>(configs.map((c) => c.contexts)),
    currentContext: configs.map((c) => c.currentContext).find((c) => typeof c === "string" && c !== "") ?? "",
  });
  return merged;
}

/**
 * Loads the kubeconfig for the CLI.
 *
 * @throws UsageError for a bad `--kubeconfig` or `--context`; CliError when no configuration is
 *   found or the files are not kubeconfigs.
 */
export function loadKubeConfig(src: KubeConfigSource): LoadedKubeConfig {
  let kc: KubeConfig;
  let files: string[];
  if (src.kubeconfig !== undefined) {
    if (src.kubeconfig === "") throw new UsageError('--kubeconfig "": must name a file');
    kc = readFile(src.kubeconfig, "--kubeconfig");
    files = [src.kubeconfig];
  } else if (src.env.KUBECONFIG) {
    files = src.env.KUBECONFIG.split(path.delimiter).filter((f) => f !== "" && fs.existsSync(f));
    if (files.length === 0) {
      throw new CliError(`KUBECONFIG ${JSON.stringify(src.env.KUBECONFIG)}: none of its files exists`);
    }
    kc = mergeKubeConfigs(files.map((f) => readFile(f, "KUBECONFIG file")));
  } else {
    const home = src.env.HOME ?? src.env.USERPROFILE;
    const dflt = home ? path.join(home, ".kube", "config") : undefined;
    if (dflt !== undefined && fs.existsSync(dflt)) {
      kc = readFile(dflt, "kubeconfig");
      files = [dflt];
    } else if (src.env.KUBERNETES_SERVICE_HOST) {
      kc = new KubeConfig();
      kc.loadFromCluster();
      files = [];
    } else {
      throw new CliError("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config");
    }
  }

  const names = kc.getContexts().map((c) => c.name);
  if (src.context !== undefined) {
    if (!names.includes(src.context)) {
      throw new UsageError(
        `--context ${JSON.stringify(src.context)}: no such context in the kubeconfig (contexts: ${names.join(", ") || "none"})`,
      );
    }
    kc.setCurrentContext(src.context);
  }
  const current = kc.getCurrentContext();
  const ctx = current ? kc.getContextObject(current) : null;
  if (ctx === null) {
    throw new CliError(
      current
        ? `kubeconfig current-context ${JSON.stringify(current)} names no context (contexts: ${names.join(", ") || "none"}); pass --context`
        : `kubeconfig has no current-context; pass --context (contexts: ${names.join(", ") || "none"})`,
    );
  }
  if (kc.getCluster(ctx.cluster) === null) {
    throw new CliError(
      `kubeconfig context ${JSON.stringify(ctx.name)} names no cluster ${JSON.stringify(ctx.cluster)}`,
    );
  }
  return { kc, namespace: ctx.namespace || "default", files };
}
