import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Runs `slotmap-coordinator` from source as a separate process. */
function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(
    path.join(root, "node_modules/.bin/node"),
    ["--import", "tsx", path.join(root, "src/coordinator/main.ts"), ...args],
    {
      cwd: root,
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", ...env },
      timeout: 60_000,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("slotmap-coordinator process", { timeout: 60_000 }, () => {
  it("--help prints the flags with their env vars and exits 0", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--orphan-after <duration>");
    expect(r.stdout).toContain("[env SLOTMAP_ORPHAN_AFTER]");
  });

  it("a bad flag prints one `error:` line naming flag and value, exit 2", () => {
    const r = run(["--leader-elect-lease-duration", "abc"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: --leader-elect-lease-duration: "abc": must be a duration such as 15s, 1m30s or 500ms, or a number of seconds\n',
    );
  });

  it("a deprecated flag name warns on stderr, then the run goes on", () => {
    const r = run(["--lease-duration", "20", "--kubeconfig", "/nonexistent/kubeconfig"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "warning: --lease-duration is deprecated: use --leader-elect-lease-duration\n" +
        'error: --kubeconfig "/nonexistent/kubeconfig": cannot read the kubeconfig: no such file\n',
    );
  });

  it("an unreadable kubeconfig is a one-line error, exit 2", () => {
    const r = run(["--kubeconfig", "/nonexistent/kubeconfig"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: --kubeconfig "/nonexistent/kubeconfig": cannot read the kubeconfig: no such file\n',
    );
  });
});
