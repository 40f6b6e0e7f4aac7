import { describe, expect, it } from "vitest";
import { secretChecksum as exampleChecksum } from "../../../examples/checksum-controller/reconciler.js";
import {
  type AuditInput,
  audit,
  compareResourceVersions,
  type FinalConfigMap,
  type FinalSecret,
  formatViolations,
  type ObjectWrite,
  objectName,
  parseReconcileLog,
  type ReconcileRecord,
  secretSlot,
  summaryLine,
} from "../../e2e/auditor.js";
import { secretChecksum } from "../../e2e/checksum.js";

const NS = "e2e";
const T0 = Date.parse("2030-01-01T00:00:00Z");

/** A reconcile of Secret NS/name by `process`, [start, end] in ms after T0. */
function rec(
  process: string,
  name: string,
  start: number,
  end: number,
  resourceVersion = "1",
  extra: Partial<ReconcileRecord> = {},
): ReconcileRecord {
  return {
    process,
    shard: process.split("#")[0]!,
    identity: `${process}-id`,
    key: `${NS}/${name}`,
    slot: secretSlot(NS, name),
    generation: 1,
    start: T0 + start,
    end: T0 + end,
    resourceVersion,
    outcome: "ok",
    ...extra,
  };
}

function write(
  name: string,
  sentAt: number,
  resourceVersion: string,
  op: ObjectWrite["op"] = "update",
): ObjectWrite {
  return { key: `${NS}/${name}`, op, sentAt: T0 + sentAt, doneAt: T0 + sentAt + 5, resourceVersion };
}

function input(partial: Partial<AuditInput>): AuditInput {
  return { reconciles: [], writes: [], checksumOf: secretChecksum, ...partial };
}

/** Two distinct Secret names of NS with the same slot (found by search: deterministic). */
function sameSlotPair(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const name = `s-${i}`;
    const slot = secretSlot(NS, name);
    const other = seen.get(slot);
    if (other !== undefined) return [other, name];
    seen.set(slot, name);
  }
}

describe("parseReconcileLog", () => {
  const line = (o: Record<string, unknown>) => JSON.stringify(o);
  const good = {
    event: "reconcile",
    shard: "shard-0",
    identity: "shard-0-abc-1",
    key: `${NS}/a`,
    slot: secretSlot(NS, "a"),
    generation: 3,
    start: T0,
    end: "2030-01-01T00:00:00.250Z",
    resourceVersion: "17",
  };

  it("keeps reconcile lines, ignores logs and non-JSON, accepts epoch ms and RFC 3339 times", () => {
    const text = [
      line({ level: 30, msg: "started" }),
      "plain text",
      line(good),
      line({ ...good, event: "other" }),
      "",
    ].join("\n");
    const { records, malformed } = parseReconcileLog(text, "shard-0");
    expect(malformed).toEqual([]);
    expect(records).toEqual([
      {
        process: "shard-0",
        shard: "shard-0",
        identity: "shard-0-abc-1",
        key: `${NS}/a`,
        slot: good.slot,
        generation: 3,
        start: T0,
        end: T0 + 250,
        resourceVersion: "17",
        outcome: "ok",
      },
    ]);
  });

  it("reads outcome, and takes a missing resourceVersion as a deleted object", () => {
    const { resourceVersion: _, ...deleted } = good;
    const { records, malformed } = parseReconcileLog(
      [line({ ...good, outcome: "error", error: "409" }), line(deleted)].join("\n"),
      "p",
    );
    expect(malformed).toEqual([]);
    expect(records.map((r) => [r.outcome, r.resourceVersion])).toEqual([
      ["error", "17"],
      ["ok", ""],
    ]);
  });

  it("rejects a reconcile line without a Lease identity", () => {
    const { identity: _, ...noIdentity } = good;
    const { records, malformed } = parseReconcileLog(line(noIdentity), "p");
    expect(records).toEqual([]);
    expect(malformed[0]!.problem).toBe("field identity: missing: must be a string");
  });

  it("names the field of a malformed reconcile line", () => {
    const { records, malformed } = parseReconcileLog(
      [line({ ...good, slot: "12" }), line({ ...good, start: "yesterday" }), line(good)].join("\n"),
      "p",
    );
    expect(records).toHaveLength(1);
    expect(malformed.map((m) => [m.line, m.problem])).toEqual([
      [1, 'field slot: "12": must be a number'],
      [2, 'field start: "yesterday": must be epoch ms or an RFC 3339 time'],
    ]);
  });

  it("tolerates a torn last line (SIGKILL) but not a torn line in the middle", () => {
    const torn = line(good).slice(0, 40);
    expect(parseReconcileLog(`${line(good)}\n${torn}`, "p").malformed).toEqual([]);
    const mid = parseReconcileLog(`${torn}\n${line(good)}`, "p");
    expect(mid.malformed).toHaveLength(1);
    expect(mid.malformed[0]!.problem).toBe("not valid JSON");
  });

  it("turns malformed lines into violations", () => {
    const { malformed } = parseReconcileLog(line({ ...good, key: 5 }), "p");
    const report = audit(input({ malformed }));
    expect(report.ok).toBe(false);
    expect(report.violations[0]).toMatchObject({ kind: "malformed-log-line", process: "p", line: 1 });
  });
});

describe("keys and resourceVersions", () => {
  it("reads namespace/name and group/Kind/namespace/name keys", () => {
    expect(objectName("ns/x")).toEqual({ namespace: "ns", name: "x" });
    expect(objectName("/Secret/ns/x")).toEqual({ namespace: "ns", name: "x" });
    expect(objectName("x")).toBeUndefined();
    expect(objectName("a/b/c")).toBeUndefined();
  });

  it("compares decimal resourceVersions as numbers, others only for equality", () => {
    expect(compareResourceVersions("9", "10")).toBe(-1);
    expect(compareResourceVersions("10", "9")).toBe(1);
    expect(compareResourceVersions("123456789012345678901", "123456789012345678901")).toBe(0);
    expect(compareResourceVersions("abc", "abc")).toBe(0);
    expect(compareResourceVersions("abc", "abd")).toBeNaN();
  });
});

describe("exclusivity", () => {
  it("flags one object reconciled by two processes at overlapping times", () => {
    const report = audit(input({ reconciles: [rec("shard-0", "a", 0, 100), rec("shard-1", "a", 50, 150)] }));
    expect(report.ok).toBe(false);
    expect(report.stats.doubleReconciles).toBe(1);
    expect(report.violations).toHaveLength(1);
    expect(report.violations[0]).toMatchObject({
      kind: "double-reconcile",
      key: `${NS}/a`,
      a: { process: "shard-0" },
      b: { process: "shard-1" },
    });
    expect(formatViolations(report.violations)).toMatch(/^double reconcile of e2e\/a/);
  });

  it("accepts back-to-back reconciles (touching ends) and overlaps within one process", () => {
    const report = audit(
      input({
        reconciles: [
          rec("shard-0", "a", 0, 100),
          rec("shard-1", "a", 100, 200),
          rec("shard-1", "b", 150, 250),
          rec("shard-1", "b", 160, 170),
        ],
      }),
    );
    expect(report.violations).toEqual([]);
    expect(report.stats.doubleReconciles).toBe(0);
  });

  it("flags a slot reconciled by two processes at once, even for different objects", () => {
    const [x, y] = sameSlotPair();
    const report = audit(input({ reconciles: [rec("shard-0", x, 0, 100), rec("shard-1", y, 99, 120)] }));
    expect(report.stats.slotOverlaps).toBe(1);
    expect(report.stats.doubleReconciles).toBe(0);
    expect(report.violations[0]).toMatchObject({ kind: "slot-overlap", slot: secretSlot(NS, x) });
  });

  it("does not confuse different slots", () => {
    const report = audit(input({ reconciles: [rec("shard-0", "a", 0, 100), rec("shard-1", "b", 0, 100)] }));
    expect(secretSlot(NS, "a")).not.toBe(secretSlot(NS, "b"));
    expect(report.violations).toEqual([]);
  });

  it("treats two processes of the same shard name as different writers", () => {
    const report = audit(input({ reconciles: [rec("shard-0", "a", 0, 100), rec("shard-0#2", "a", 10, 20)] }));
    expect(report.stats.doubleReconciles).toBe(1);
  });

  it("checks every open interval, not only the latest one", () => {
    // shard-0's long reconcile overlaps a later one of shard-2, across a short one of shard-1.
    const report = audit(
      input({
        reconciles: [rec("shard-0", "a", 0, 1000), rec("shard-0", "a", 0, 5), rec("shard-2", "a", 900, 950)],
      }),
    );
    expect(report.stats.doubleReconciles).toBe(1);
  });

  it("normalises DESIGN keys so both key forms meet", () => {
    const report = audit(
      input({
        reconciles: [rec("shard-0", "a", 0, 100), { ...rec("shard-1", "a", 50, 60), key: `/Secret/${NS}/a` }],
      }),
    );
    expect(report.stats.doubleReconciles).toBe(1);
  });
});

describe("hashing", () => {
  it("flags a logged slot that is not the object's slot", () => {
    const r = rec("shard-0", "a", 0, 1, "1", { slot: (secretSlot(NS, "a") + 1) % 16384 });
    const report = audit(input({ reconciles: [r] }));
    expect(report.violations).toEqual([
      expect.objectContaining({ kind: "wrong-slot", key: `${NS}/a`, expected: secretSlot(NS, "a") }),
    ]);
  });
});

describe("liveness and pauses", () => {
  it("flags an object whose last write no reconcile read", () => {
    const report = audit(
      input({
        writes: [write("a", 0, "9", "create"), write("a", 100, "12")],
        reconciles: [rec("shard-0", "a", 10, 20, "9"), rec("shard-0", "a", 150, 160, "11")],
      }),
    );
    expect(report.violations).toEqual([
      expect.objectContaining({
        kind: "not-reconciled-after-last-change",
        key: `${NS}/a`,
        lastResourceVersion: "11",
      }),
    ]);
    expect(formatViolations(report.violations)).toContain("not reconciled after its last update");
  });

  it("accepts a reconcile that read a newer resourceVersion (numeric, not string order)", () => {
    const report = audit(
      input({
        writes: [write("a", 0, "9", "create")],
        reconciles: [rec("shard-0", "a", 10, 20, "10")],
      }),
    );
    expect(report.violations).toEqual([]);
  });

  it("does not count a failed reconcile as having acted on the change", () => {
    const report = audit(
      input({
        writes: [write("a", 0, "9", "create")],
        reconciles: [
          rec("shard-0", "a", 10, 20, "9", { outcome: "error" }),
          rec("shard-0", "a", 30, 40, "9", { outcome: "aborted" }),
        ],
      }),
    );
    expect(report.violations).toEqual([
      expect.objectContaining({ kind: "not-reconciled-after-last-change", lastResourceVersion: "9" }),
    ]);
    expect(report.stats.outcomes).toEqual({ error: 1, aborted: 1 });
    const fixed = audit(
      input({
        writes: [write("a", 0, "9", "create")],
        reconciles: [
          rec("shard-0", "a", 10, 20, "9", { outcome: "error" }),
          rec("shard-0", "a", 50, 60, "9"),
        ],
      }),
    );
    expect(fixed.violations).toEqual([]);
    expect(fixed.stats.pause.maxMs).toBe(50);
  });

  it("counts a failed reconcile for exclusivity: it may have written", () => {
    const report = audit(
      input({
        reconciles: [rec("shard-0", "a", 0, 100, "1", { outcome: "error" }), rec("shard-1", "a", 50, 60)],
      }),
    );
    expect(report.stats.doubleReconciles).toBe(1);
  });

  it("flags an object written and never reconciled", () => {
    const report = audit(input({ writes: [write("a", 0, "5", "create")] }));
    expect(report.violations[0]).toMatchObject({
      kind: "not-reconciled-after-last-change",
      lastReconcile: undefined,
    });
  });

  it("measures pause from the write to the start of the first reconcile that saw it", () => {
    const report = audit(
      input({
        writes: [
          write("a", 0, "5", "create"),
          write("a", 1000, "8"),
          write("a", 1100, "9"),
          write("b", 0, "6", "create"),
        ],
        reconciles: [
          rec("shard-0", "a", 30, 40, "5"),
          rec("shard-0", "b", 500, 510, "6"),
          // The update at 1000 is only seen by this reconcile, which already reads the one at 1100.
          rec("shard-1", "a", 4000, 4010, "9"),
        ],
      }),
    );
    expect(report.violations).toEqual([]);
    expect(report.stats.pause).toMatchObject({
      count: 4,
      maxMs: 3000,
      max: { key: `${NS}/a`, op: "update", sentAt: T0 + 1000, reconcileStart: T0 + 4000 },
      p50Ms: 500,
    });
    expect(report.stats.updatePause).toMatchObject({ count: 2, maxMs: 3000, p50Ms: 2900 });
  });

  it("does not count a reconcile that started before the write as having seen it", () => {
    const report = audit(
      input({
        writes: [write("a", 100, "5", "create")],
        // An rv >= the write's but started before it: impossible in reality, so not a pause end.
        reconciles: [rec("shard-0", "a", 50, 60, "5"), rec("shard-0", "a", 300, 310, "5")],
      }),
    );
    expect(report.stats.pause.maxMs).toBe(200);
  });

  it("checks only the namespaces asked for", () => {
    const other: ObjectWrite = { ...write("a", 0, "5"), key: "elsewhere/a" };
    expect(audit(input({ writes: [other], namespaces: [NS] })).violations).toEqual([]);
    expect(audit(input({ writes: [other] })).violations).toHaveLength(1);
  });
});

describe("final state", () => {
  const data = { password: Buffer.from("hunter2").toString("base64") };
  const secret = (name: string): FinalSecret => ({ namespace: NS, name, uid: `uid-${name}`, data });
  const cm = (name: string, checksum: string | undefined, owner = true): FinalConfigMap => ({
    namespace: NS,
    name: `${name}-checksum`,
    data: checksum === undefined ? {} : { checksum },
    ownerReferences: owner ? [{ kind: "Secret", name, uid: `uid-${name}`, controller: true }] : [],
  });

  it("counts Secrets whose ConfigMap is right as converged", () => {
    const report = audit(
      input({ finalSecrets: [secret("a")], finalConfigMaps: [cm("a", secretChecksum(data))] }),
    );
    expect(report.violations).toEqual([]);
    expect(report.stats).toMatchObject({ secrets: 1, converged: 1 });
  });

  it("flags missing ConfigMaps, wrong checksums and ConfigMaps without the Secret as controller", () => {
    const report = audit(
      input({
        finalSecrets: [secret("a"), secret("b"), secret("c"), secret("d")],
        finalConfigMaps: [
          cm("b", "0".repeat(64)),
          cm("c", secretChecksum(data), false),
          {
            ...cm("d", secretChecksum(data)),
            ownerReferences: [{ kind: "Secret", name: "d", uid: "other", controller: true }],
          },
        ],
      }),
    );
    expect(report.violations.map((v) => [v.kind, "key" in v ? v.key : ""])).toEqual([
      ["missing-configmap", `${NS}/a`],
      ["wrong-checksum", `${NS}/b`],
      ["configmap-not-controlled", `${NS}/c`],
      ["configmap-not-controlled", `${NS}/d`],
    ]);
    expect(report.stats).toMatchObject({ secrets: 4, converged: 0 });
  });
});

describe("statistics", () => {
  it("counts reconciles per shard and process, identities, slot handoffs and migrations", () => {
    const report = audit(
      input({
        reconciles: [
          rec("shard-0", "a", 0, 10, "1", { generation: 1 }),
          rec("shard-0", "a", 20, 30, "1", { generation: 1 }),
          rec("shard-1", "a", 40, 50, "1", { generation: 3 }),
          rec("shard-0#2", "a", 60, 70, "1", { generation: 5 }),
          rec("shard-1", "b", 0, 10, "1", { generation: 3 }),
        ],
        slotMapHistory: [
          { at: T0, generation: 2, migrations: [{ from: "shard-0", to: "shard-1", generation: 2 }] },
          { at: T0 + 1, generation: 2, migrations: [{ from: "shard-0", to: "shard-1", generation: 2 }] },
          { at: T0 + 2, generation: 3, migrations: [] },
        ],
      }),
    );
    expect(report.stats).toMatchObject({
      reconciles: 5,
      perShard: { "shard-0": 3, "shard-1": 2 },
      perProcess: { "shard-0": 2, "shard-1": 2, "shard-0#2": 1 },
      identities: 3,
      objectsReconciled: 2,
      generationsInLogs: 3,
      slotOwnerChanges: 2,
      slotsHandedOff: 1,
      generationsObserved: 2,
      migrationsObserved: 1,
    });
  });

  it("writes a summary line with the figures and the verdict", () => {
    const ok = audit(input({ reconciles: [rec("shard-0", "a", 0, 10)] }));
    expect(summaryLine(ok, 61_000)).toMatch(
      /^PASS: 0\/0 objects converged, 0 double reconciles, .* 1 reconciles, .* 61 s$/,
    );
    const bad = audit(input({ reconciles: [rec("shard-0", "a", 0, 100), rec("shard-1", "a", 50, 150)] }));
    expect(summaryLine(bad, 1000)).toMatch(/^FAIL: .* 1 double reconciles/);
  });
});

describe("secretChecksum", () => {
  it("is SHA-256 of the JSON [key, base64 value] pairs sorted by key (values from sha256sum)", () => {
    // printf '%s' '[["password","aHVudGVyMg=="],["user","YWRtaW4="]]' | sha256sum
    const want = "c0ad6038f82d6376cb610abd8e94b0245d0758b6fa046ff07ddda0ceb8c9597d";
    expect(secretChecksum({ user: "YWRtaW4=", password: "aHVudGVyMg==" })).toBe(want);
    expect(secretChecksum({ password: "aHVudGVyMg==", user: "YWRtaW4=" })).toBe(want);
    // printf '%s' '[]' | sha256sum
    expect(secretChecksum({})).toBe("4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945");
    expect(secretChecksum(undefined)).toBe(secretChecksum({}));
  });

  it("agrees with the example controller's implementation", () => {
    const samples: Array<Record<string, string> | undefined> = [
      undefined,
      {},
      { "b.key": "eQ==", a: "eA==", "ü-key": Buffer.from('quote " and \\').toString("base64") },
    ];
    for (let i = 0; i < 20; i++) {
      samples.push({ [`k${i}`]: Buffer.from(String(i * 7919)).toString("base64"), value: "dmFsdWU=" });
    }
    for (const d of samples) expect(secretChecksum(d)).toBe(exampleChecksum(d));
  });
});
