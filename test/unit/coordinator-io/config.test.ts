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
      metricsBindAddress: ":8080",
      healthProbeBindAddress: ":8081",
      logLevel: "info",
    });
    expect(parse([], { SLOTMAP_ORPHAN_AFTER: "9" }).orphanAfterSeconds).toBe(9);
  });

  it.each([
    [["--leader-elect-lease-duration", "abc"], "--leader-elect-lease-duration", '"abc"'],
    [["--leader-elect-renew-deadline", "10x"], "--leader-elect-renew-deadline", '"10x"'],
    [["--leader-elect-retry-period", "1m-2s"], "--leader-elect-retry-period", '"1m-2s"'],
    [["--leader-elect", "yes"], "--leader-elect", '"yes"'],
    [["--leader-elect-resource-namespace", "Bad_NS"], "--leader-elect-resource-namespace", '"Bad_NS"'],
    [["--leader-elect-resource-name", "Bad_Name"], "--leader-elect-resource-name", '"Bad_Name"'],
    [["--metrics-bind-address", "localhost"], "--metrics-bind-address", '"localhost"'],
    [["--health-probe-bind-address", "8081:"], "--health-probe-bind-address", '"8081:"'],
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

  it("checks the relation of the leader-election timings, naming the flags", () => {
    expect(() =>
      parse(["--leader-elect-lease-duration", "10s", "--leader-elect-renew-deadline", "10"]),
    ).toThrow(
      /^--leader-elect-renew-deadline: 10 must be less than --leader-elect-lease-duration \(10\): the difference is the safety margin$/,
    );
    expect(() => parse(["--leader-elect-retry-period", "12s"])).toThrow(
      /^--leader-elect-retry-period: 12 must be less than --leader-elect-renew-deadline \(10\), or a single failed renewal ends the tenure$/,
    );
    expect(() => parse([], { SLOTMAP_LEASE_DURATION: "1m", SLOTMAP_RENEW_DEADLINE: "1m30s" })).toThrow(
      /--leader-elect-renew-deadline: 90 must be less than --leader-elect-lease-duration \(60\)/,
    );
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
    expect(text).toContain("--leader-elect-lease-duration <duration>");
    expect(text).toContain("--health-probe-bind-address <addr>");
    // Deprecated aliases work but are not advertised.
    expect(text).not.toContain("--lease-duration ");
    expect(text).not.toContain("--metrics-address");
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
    expect(() => parse(["--leader-elect-lease-duration", "abc"])).toThrow(
      /^--leader-elect-lease-duration: "abc": must be a duration such as 15s, 1m30s or 500ms, or a number of seconds$/,
    );
    expect(() => parse(["--leader-elect-lease-duration", "2h"])).toThrow(
      /^--leader-elect-lease-duration: "2h": must be between 1 and 3600 seconds$/,
    );
  });
});

describe("coordinator config: durations", () => {
  const timings = (argv: string[], env: Record<string, string> = {}) => {
    const c = parse(argv, env);
    return [c.leaseDurationSeconds, c.renewDeadlineSeconds, c.retryPeriodSeconds];
  };

  it("defaults to component-base's 15s, 10s and 2s", () => {
    expect(timings([])).toEqual([15, 10, 2]);
  });

  it("accepts Go durations as component-base does", () => {
    expect(
      timings([
        "--leader-elect-lease-duration",
        "1m30s",
        "--leader-elect-renew-deadline",
        "1m",
        "--leader-elect-retry-period",
        "500ms",
      ]),
    ).toEqual([90, 60, 0.5]);
    expect(timings(["--leader-elect-lease-duration=0.75h", "--leader-elect-renew-deadline=0.5h"])).toEqual([
      2700, 1800, 2,
    ]);
  });

  it("--orphan-after takes a Go duration or plain seconds (default 1m)", () => {
    expect(parse([]).orphanAfterSeconds).toBe(60);
    expect(parse(["--orphan-after", "90s"]).orphanAfterSeconds).toBe(90);
    expect(parse(["--orphan-after", "2m30s"]).orphanAfterSeconds).toBe(150);
    expect(parse([], { SLOTMAP_ORPHAN_AFTER: "1h" }).orphanAfterSeconds).toBe(3600);
    expect(() => parse(["--orphan-after", "-1s"])).toThrow(/--orphan-after: "-1s": must be between/);
    expect(() => parse(["--orphan-after", "25h"])).toThrow(/--orphan-after: "25h": must be between/);
  });

  it("accepts plain seconds, as flags and as env vars", () => {
    expect(
      timings(["--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3"], {
        SLOTMAP_RETRY_PERIOD: "0.5",
      }),
    ).toEqual([4, 3, 0.5]);
    expect(timings([], { SLOTMAP_LEASE_DURATION: "20s", SLOTMAP_RENEW_DEADLINE: "12" })).toEqual([20, 12, 2]);
  });

  it.each([
    ["15x", "must be a duration such as 15s, 1m30s or 500ms, or a number of seconds"],
    ["1m30", "must be a duration such as 15s, 1m30s or 500ms, or a number of seconds"],
    ["1 s", "must be a duration such as 15s, 1m30s or 500ms, or a number of seconds"],
    ["-1s", "must be between 0.05 and 600 seconds"],
    ["10ms", "must be between 0.05 and 600 seconds"],
    ["11m", "must be between 0.05 and 600 seconds"],
  ])("a bad duration %j names the variable and the value", (value, why) => {
    expect(() => parse([], { SLOTMAP_RETRY_PERIOD: value })).toThrow(
      new ConfigError(`env SLOTMAP_RETRY_PERIOD: ${JSON.stringify(value)}: ${why}`),
    );
  });
});

describe("coordinator config: bind addresses", () => {
  it("separates the metrics and the health-probe address, as kubebuilder does", () => {
    const c = parse(["--metrics-bind-address", "127.0.0.1:9090", "--health-probe-bind-address", ":9091"]);
    expect(c).toMatchObject({ metricsBindAddress: "127.0.0.1:9090", healthProbeBindAddress: ":9091" });
    expect(parse([], { SLOTMAP_HEALTH_PROBE_ADDRESS: "[::1]:8000" }).healthProbeBindAddress).toBe(
      "[::1]:8000",
    );
  });

  it('"0" disables either', () => {
    expect(parse(["--metrics-bind-address", "0"])).toMatchObject({
      metricsBindAddress: "0",
      healthProbeBindAddress: ":8081",
    });
    expect(parse(["--health-probe-bind-address", "0"])).toMatchObject({
      metricsBindAddress: ":8080",
      healthProbeBindAddress: "0",
    });
  });
});

describe("coordinator config: deprecated flag names", () => {
  const warned = (argv: string[]) => {
    let err = "";
    const c = parseCoordinatorConfig(argv, {}, { writeOut: () => {}, writeErr: (s) => (err += s) });
    return { c, err };
  };

  it.each([
    ["--lease-duration", "20", "--leader-elect-lease-duration", { leaseDurationSeconds: 20 }],
    ["--renew-deadline", "5", "--leader-elect-renew-deadline", { renewDeadlineSeconds: 5 }],
    ["--retry-period", "1", "--leader-elect-retry-period", { retryPeriodSeconds: 1 }],
    [
      "--leader-election-namespace",
      "ops",
      "--leader-elect-resource-namespace",
      { leaderElectionNamespace: "ops" },
    ],
    ["--leader-election-name", "coord", "--leader-elect-resource-name", { leaderElectionName: "coord" }],
  ])("%s still works, with one warning naming the new flag", (old, value, now, expected) => {
    const { c, err } = warned([old, value]);
    expect(c).toMatchObject(expected);
    expect(err).toBe(`warning: ${old} is deprecated: use ${now}\n`);
  });

  it("--metrics-address sets the metrics address only and says where the probes went", () => {
    const { c, err } = warned(["--metrics-address", ":9090"]);
    expect(c).toMatchObject({ metricsBindAddress: ":9090", healthProbeBindAddress: ":8081" });
    expect(err).toBe(
      "warning: --metrics-address is deprecated: use --metrics-bind-address (/healthz and /readyz are now served on --health-probe-bind-address, default :8081)\n",
    );
  });

  it("the new name wins over the old one; a bad value names the flag it came from", () => {
    expect(
      warned(["--lease-duration", "20", "--leader-elect-lease-duration", "30s"]).c.leaseDurationSeconds,
    ).toBe(30);
    expect(() => parse(["--lease-duration", "abc"])).toThrow(/^--lease-duration: "abc": must be a duration/);
  });
});
