import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { ConfigError, parseCoordinatorConfig } from "../../../src/coordinator/config.js";

const quiet = { writeOut: () => {}, writeErr: () => {} };
const parse = (argv: string[], env: Record<string, string> = {}) => parseCoordinatorConfig(argv, env, quiet);

describe("coordinator config", () => {
  it("applies defaults, env, then flags (flag wins)", () => {
    const c = parse(["--orphan-after", "5"], {
      POD_NAME: "coord-0",
      SLOTMAP_ORPHAN_AFTER: "9",
      POD_NAMESPACE: "ops",
    });
    expect(c).toMatchObject({
      identity: "coord-0",
      leaderElect: true,
      leaderElectionNamespace: "ops",
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      orphanAfterSeconds: 5,
      metricsAddress: ":8080",
      logLevel: "info",
    });
    expect(parse([], { SLOTMAP_ORPHAN_AFTER: "9" }).orphanAfterSeconds).toBe(9);
  });

  it.each([
    [["--lease-duration", "abc"], "--lease-duration", '"abc"'],
    [["--leader-elect", "yes"], "--leader-elect", '"yes"'],
    [["--leader-election-namespace", "Bad_NS"], "--leader-election-namespace", '"Bad_NS"'],
    [["--metrics-address", "localhost"], "--metrics-address", '"localhost"'],
    [["--log-level", "loud"], "--log-level", '"loud"'],
    [["--orphan-after", "-1"], "--orphan-after", '"-1"'],
  ])("rejects %j naming the flag and value", (argv, flag, value) => {
    expect(() => parse(argv)).toThrow(ConfigError);
    expect(() => parse(argv)).toThrow(new RegExp(`${flag}.*${value.replace(/[-[\]"]/g, "\\$&")}`));
  });

  it("names the env var when the bad value came from the environment", () => {
    expect(() => parse([], { SLOTMAP_LEASE_DURATION: "0" })).toThrow(/env SLOTMAP_LEASE_DURATION.*"0"/);
  });

  it("rejects unknown flags and stray arguments", () => {
    expect(() => parse(["--bogus"])).toThrow(/unknown option '--bogus'/);
    expect(() => parse(["extra"])).toThrow(ConfigError);
  });

  it("checks the relation of the leader-election timings", () => {
    expect(() => parse(["--lease-duration", "10", "--renew-deadline", "10"])).toThrow(
      /--renew-deadline: 10 must be below --lease-duration \(10\)/,
    );
    expect(() => parse(["--retry-period", "12"])).toThrow(/--retry-period: 12 must be below/);
  });

  it("--help exits 0 through commander", () => {
    let text = "";
    try {
      parseCoordinatorConfig(["--help"], {}, { writeOut: (s) => (text += s), writeErr: () => {} });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CommanderError);
      expect((err as CommanderError).exitCode).toBe(0);
    }
    expect(text).toContain("--orphan-after");
    expect(text).toContain("SLOTMAP_ORPHAN_AFTER");
  });
});

describe("coordinator config: flag forms", () => {
  it("accepts a bare --leader-elect (as deploy/coordinator passes it) and an explicit value", () => {
    expect(parse(["--leader-elect"]).leaderElect).toBe(true);
    expect(parse(["--leader-elect", "false"]).leaderElect).toBe(false);
    expect(parse(["--leader-elect=false"]).leaderElect).toBe(false);
    expect(parse([], { SLOTMAP_LEADER_ELECT: "0" }).leaderElect).toBe(false);
  });

  it("names the flag once in an error about a flag value", () => {
    expect(() => parse(["--lease-duration", "abc"])).toThrow(
      /^--lease-duration: "abc": must be a number of seconds$/,
    );
  });
});
