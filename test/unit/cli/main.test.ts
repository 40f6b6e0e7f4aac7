// The command line itself: keyslot output, argument validation, error format and exit codes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXIT } from "../../../src/cli/io.js";
import { loadKubeConfig } from "../../../src/cli/kubeconfig.js";
import vectors from "../../vectors/hash-vectors.json" with { type: "json" };
import { FakeClient, fixture, run } from "./helpers.js";

describe("keyslot", () => {
  it("prints the slot of each key, one per line, matching the published vectors", async () => {
    const sample = vectors.slice(0, 8);
    const r = await run(["keyslot", ...sample.map((v) => v.key)]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(sample.map((v) => `${v.slot}\n`).join(""));
  });

  it("-o json gives key, xxh64 and slot", async () => {
    const v = vectors[2]!;
    const r = await run(["keyslot", v.key, "-o", "json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ key: v.key, xxh64: v.xxh64, slot: v.slot });
  });

  it("-o yaml lists several keys", async () => {
    const r = await run(["keyslot", "-o", "yaml", "a", "abc"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("- key: a\n");
    expect(r.stdout).toContain(`slot: ${vectors.find((v) => v.key === "abc")!.slot}`);
  });

  it("--object validates group/kind/namespace/name", async () => {
    const ok = await run(["keyslot", "--object", "/Secret/default/db"]);
    const plain = await run(["keyslot", "/Secret/default/db"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(plain.stdout);
    const bad = await run(["keyslot", "--object", "Secret/db"]);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toMatch(/^error: --object "Secret\/db": expected group\/kind\/namespace\/name/);
  });

  it("needs no kubeconfig", async () => {
    // run() without a client throws if the CLI tries to connect.
    expect((await run(["keyslot", "x"])).code).toBe(0);
  });
});

describe("usage errors exit 2 with `error: ...` naming the argument", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["no command", [], /Usage: kubectl slotmap/],
    ["unknown command", ["bogus"], /^error: unknown command 'bogus'/],
    ["missing argument", ["keyslot"], /^error: missing required argument 'key'/],
    ["bad output format", ["get", "-o", "xml"], /^error: -o\/--output "xml": unsupported output format/],
    ["too many arguments", ["get", "a", "b"], /^error: too many arguments for 'get'/],
    ["unknown option", ["get", "--bogus"], /^error: unknown option '--bogus'/],
    ["bad slotmap name", ["get", "Bad_Name"], /^error: slotmap "Bad_Name": not a valid name/],
    ["drain without --slotmap", ["drain", "s-0"], /^error: required option '--slotmap <name>' not specified/],
    ["bad --via", ["drain", "s-0", "--slotmap", "x", "--via", "etcd"], /argument 'etcd' is invalid/],
    [
      "bad --timeout",
      ["drain", "s-0", "--slotmap", "x", "--timeout", "soon"],
      /^error: --timeout "soon": not a duration/,
    ],
    ["bad --weight", ["plan", "x", "--weight", "s-0"], /^error: --weight "s-0": expected NAME=WEIGHT/],
    [
      "negative --weight",
      ["plan", "x", "--weight", "s-0=-1"],
      /^error: --weight "s-0=-1": weight "-1" must be an integer/,
    ],
    ["bad --max-steps", ["plan", "x", "--max-steps", "0"], /argument '0' is invalid/],
    [
      "bad --color",
      ["view", "x", "--color", "rainbow"],
      /^error: --color "rainbow": must be auto, always or never/,
    ],
    [
      "bad namespace",
      ["which", "secrets", "db", "-n", "Not_A_Namespace"],
      /^error: -n\/--namespace "Not_A_Namespace": not a valid namespace/,
    ],
    ["bad resource", ["which", "secrets/db", "db"], /^error: <resource> "secrets\/db"/],
  ];
  it.each(cases)("%s", async (_name, argv, message) => {
    const client = new FakeClient();
    client.addSlotMap(fixture("checksums.yaml"));
    client.addObject("secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "db", namespace: "default" },
    });
    const r = await run(argv, { client });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it("--help exits 0 and prints usage on stdout", async () => {
    const r = await run(["plan", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--add-shard <name>");
  });
});

describe("errors exit 1", () => {
  it("a missing SlotMap is named", async () => {
    const r = await run(["get", "nope"], { client: new FakeClient() });
    expect(r.code).toBe(EXIT.error);
    expect(r.stderr).toBe('error: slotmap "nope" not found\n');
  });

  it("an invalid SlotMap from the server names the field and value", async () => {
    const client = new FakeClient();
    const doc = fixture("with-status.yaml");
    client.addSlotMap(doc);
    client.setStatus("with-status", {
      ...(doc.status as object),
      shards: [{ name: "x", state: "Sleeping" }],
    });
    const r = await run(["get", "with-status"], { client });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: slotmap "with-status" is invalid:');
    expect(r.stderr).toContain(
      'status.shards[0].state: must be one of "Ready", "Expired", "Dead"; got "Sleeping"',
    );
  });

  it("any other failure becomes one `error:` line", async () => {
    const client = new FakeClient();
    client.listSlotMaps = async () => {
      throw new Error("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:6443") });
    };
    const r = await run(["get"], { client });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: fetch failed: connect ECONNREFUSED 127.0.0.1:6443\n");
  });
});

describe("kubeconfig loading", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotmap-kc-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, ctx: string, server: string, current?: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{name: ${ctx}, cluster: {server: "${server}"}}]`,
        `users: [{name: ${ctx}, user: {token: t}}]`,
        `contexts: [{name: ${ctx}, context: {cluster: ${ctx}, user: ${ctx}, namespace: ns-${ctx}}}]`,
        current ? `current-context: ${current}` : "",
      ].join("\n"),
    );
    return file;
  };
  const a = write("a.yaml", "a", "https://a.example:6443", "a");
  const b = write("b.yaml", "b", "https://b.example:6443", "b");

  it("KUBECONFIG: files merged, the first current-context wins, missing files skipped", () => {
    const env = { KUBECONFIG: [path.join(dir, "missing"), a, b].join(path.delimiter) };
    const l = loadKubeConfig({ env });
    expect(l.kc.getCurrentContext()).toBe("a");
    expect(l.namespace).toBe("ns-a");
    expect(l.kc.getContexts().map((c) => c.name)).toEqual(["a", "b"]);
    const withCtx = loadKubeConfig({ env, context: "b" });
    expect(withCtx.kc.getCurrentCluster()?.server).toBe("https://b.example:6443");
    expect(withCtx.namespace).toBe("ns-b");
  });

  it("--kubeconfig wins over KUBECONFIG", () => {
    const l = loadKubeConfig({ kubeconfig: b, env: { KUBECONFIG: a } });
    expect(l.kc.getCurrentContext()).toBe("b");
  });

  it("an unknown --context is a usage error naming it and the known ones", async () => {
    const r = await runReal(["get", "--kubeconfig", a, "--context", "zzz"]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toBe('error: --context "zzz": no such context in the kubeconfig (contexts: a)\n');
  });

  it("a missing --kubeconfig file is a usage error naming it", async () => {
    const missing = path.join(dir, "nope.yaml");
    const r = await runReal(["get", "--kubeconfig", missing]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toBe(
      `error: --kubeconfig ${JSON.stringify(missing)}: cannot read the kubeconfig: no such file\n`,
    );
  });

  it("no configuration at all is an error", async () => {
    const r = await runReal(["get"], { HOME: path.join(dir, "empty-home") });
    expect(r.code).toBe(EXIT.error);
    expect(r.stderr).toMatch(/^error: no kubeconfig found/);
  });
});

/** Runs main with the default (real) kubeconfig loader. */
async function runReal(argv: string[], env: Record<string, string> = {}) {
  const { main } = await import("../../../src/cli/main.js");
  const { testIO } = await import("./helpers.js");
  const io = testIO({ env });
  const code = await main(argv, { io });
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}

describe("--version", () => {
  it("prints the package version and exits 0", async () => {
    const r = await run(["--version"]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toMatch(/^kubectl-slotmap \d+\.\d+\.\d+\n$/);
  });
});
