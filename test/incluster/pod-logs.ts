/**
 * The logs of every container a set of pods ever ran, as users read them: `kubectl logs -f`,
 * one stream per container instance (container ID), started as soon as the container runs, so
 * that the logs of pods that are deleted later (a rollout, a scale-down, a forced delete) are
 * kept. Container restarts (probe failures, OOM kills) are recorded with their reason.
 *
 * For the auditor, a "process" is named from the reconcile lines themselves, `<pod>#<Lease holder
 * identity without its incarnation counter>` (`<prefix>-<random per process>-<n>`):
 * a stream opened just as its container was replaced may have read the next container's log,
 * and naming by file would then make one process look like two. Identical lines read twice are
 * counted once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { run } from "../../tools/node/exec.js";
import { type MalformedLine, parseReconcileLog, type ReconcileRecord } from "../e2e/auditor.js";

interface PodJson {
  metadata: { name: string; uid: string };
  status?: {
    containerStatuses?: Array<{
      name: string;
      containerID?: string;
      restartCount: number;
      state?: { running?: object; terminated?: object };
      lastState?: {
        terminated?: { reason?: string; exitCode?: number; finishedAt?: string; containerID?: string };
      };
    }>;
  };
}

interface Stream {
  child: ChildProcess | undefined;
  file: string;
  pod: string;
}

/** Follows the logs of the pods matching a selector (see the module comment). */
export class PodLogs {
  private readonly streams = new Map<string, Stream>();
  private readonly restartReasons = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;

  constructor(
    private readonly o: {
      kubectl: string;
      kubeconfig: string;
      namespace: string;
      selector: string;
      container: string;
      dir: string;
    },
  ) {
    fs.mkdirSync(o.dir, { recursive: true });
  }

  /** Starts polling the pods (every 500 ms). */
  start(): void {
    this.timer = setInterval(() => void this.poll(), 500);
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const r = await run(
        this.o.kubectl,
        [
          "--kubeconfig",
          this.o.kubeconfig,
          "-n",
          this.o.namespace,
          "get",
          "pods",
          "-l",
          this.o.selector,
          "-o",
          "json",
        ],
        { allowFailure: true, timeoutMs: 20_000 },
      );
      if (r.code !== 0) return;
      for (const pod of (JSON.parse(r.stdout) as { items: PodJson[] }).items) this.follow(pod);
    } finally {
      this.polling = false;
    }
  }

  private follow(pod: PodJson): void {
    const st = pod.status?.containerStatuses?.find((c) => c.name === this.o.container);
    const last = st?.lastState?.terminated;
    if (last?.containerID) {
      this.restartReasons.set(
        last.containerID,
        `${pod.metadata.name}: container ended ${last.reason ?? "?"} (exit ${last.exitCode ?? "?"}) at ${last.finishedAt ?? "?"}; restarts ${st?.restartCount}`,
      );
    }
    if (!st?.containerID || !(st.state?.running || st.state?.terminated)) return;
    const key = `${pod.metadata.name}#${st.containerID.replace(/^.*:\/\//, "").slice(0, 12)}`;
    const known = this.streams.get(key);
    // A stream that ended while its container still runs was cut (an API hiccup): read it all
    // again. An ended container's stream has everything.
    if (known && (known.child || !st.state.running)) return;
    const stream: Stream = known ?? {
      child: undefined,
      file: path.join(this.o.dir, `${key}.log`),
      pod: pod.metadata.name,
    };
    const out = fs.openSync(stream.file, "w");
    const child = spawn(
      this.o.kubectl,
      [
        "--kubeconfig",
        this.o.kubeconfig,
        "-n",
        this.o.namespace,
        "logs",
        "-f",
        pod.metadata.name,
        "-c",
        this.o.container,
      ],
      { stdio: ["ignore", out, "ignore"] },
    );
    fs.closeSync(out);
    stream.child = child;
    child.on("exit", () => {
      stream.child = undefined;
    });
    this.streams.set(key, stream);
  }

  /** Container instances whose logs were read. */
  get instances(): string[] {
    return [...this.streams.keys()];
  }

  /** Containers that ended and were restarted in their pod, with the reason Kubernetes gave. */
  get restarts(): string[] {
    return [...this.restartReasons.values()];
  }

  /** Reconcile records of every container instance so far (see the module comment). */
  reconciles(): { records: ReconcileRecord[]; malformed: MalformedLine[] } {
    const records = new Map<string, ReconcileRecord>();
    const malformed: MalformedLine[] = [];
    for (const [key, s] of this.streams) {
      const r = parseReconcileLog(fs.existsSync(s.file) ? fs.readFileSync(s.file, "utf8") : "", key);
      for (const rec of r.records) {
        const process = `${s.pod}#${processOf(rec.identity)}`;
        records.set(`${process} ${rec.key} ${rec.start} ${rec.end} ${rec.outcome}`, { ...rec, process });
      }
      malformed.push(...r.malformed);
    }
    return { records: [...records.values()], malformed };
  }

  /** Stops polling and every stream (after `flushMs`, for the last lines in flight). */
  async stop(flushMs = 2000): Promise<void> {
    clearInterval(this.timer);
    await this.poll();
    this.stopped = true;
    await new Promise((r) => setTimeout(r, flushMs));
    for (const s of this.streams.values()) s.child?.kill("SIGTERM");
  }
}

/**
 * The per-process part of a Lease holder identity `<prefix>-<salt>-<n>`: everything but the
 * incarnation counter `n` (the salt is random per process).
 */
export function processOf(identity: string): string {
  return identity.replace(/-\d+$/, "");
}
