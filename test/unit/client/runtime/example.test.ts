import { createHash } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ConfigError, parseChecksumConfig } from "../../../../examples/checksum-controller/config.js";
import { secretChecksum } from "../../../../examples/checksum-controller/reconciler.js";
import { createShardMember, ShardMemberConfigError } from "../../../../src/client/index.js";

const quiet = { writeOut: () => {}, writeErr: () => {} };

describe("checksum controller config", () => {
  it("reads flags and env (flag wins) and applies defaults", () => {
    const c = parseChecksumConfig(
      ["--concurrency", "8"],
      { POD_NAME: "checksums-1", POD_NAMESPACE: "cs", SLOTMAP_CONCURRENCY: "2" },
      quiet,
    );
    expect(c).toMatchObject({
      shard: "checksums-1",
      slotMap: "checksums",
      leaseNamespace: "cs",
      concurrency: 8,
      metricsAddress: ":8080",
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
      stopTimeoutSeconds: 25,
      cache: "owned",
    });
    expect(parseChecksumConfig(["--shard", "s"], { SLOTMAP_CACHE: "all" }, quiet).cache).toBe("all");
    expect(
      parseChecksumConfig(["--shard", "s", "--metrics-address", "off"], {}, quiet).metricsAddress,
    ).toBeUndefined();
  });

  it("names the flag or variable and the value on bad input", () => {
    expect(() => parseChecksumConfig([], {}, quiet)).toThrow(
      /--shard: is required \(set --shard or POD_NAME\)/,
    );
    expect(() => parseChecksumConfig([], { POD_NAME: "Bad_Name" }, quiet)).toThrow(
      /env POD_NAME: "Bad_Name": must be a Lease name/,
    );
    expect(() => parseChecksumConfig(["--shard", "s", "--concurrency", "0"], {}, quiet)).toThrow(
      /--concurrency: "0": must be between 1 and 1000/,
    );
    expect(() => parseChecksumConfig(["--shard", "s", "--renew-deadline", "20"], {}, quiet)).toThrow(
      /--renew-deadline: 20 must be less than --lease-duration \(15\): the difference is the safety margin/,
    );
    expect(() => parseChecksumConfig(["--shard", "s", "--cache", "some"], {}, quiet)).toThrow(
      /--cache: "some": /,
    );
    expect(() => parseChecksumConfig(["--shard", "s", "--bogus"], {}, quiet)).toThrow(ConfigError);
  });
});

describe("secretChecksum", () => {
  it("is the SHA-256 of the sorted [key, value] pairs, independent of key order", () => {
    const expected = createHash("sha256").update('[["a","MQ=="],["b","Mg=="]]').digest("hex");
    expect(secretChecksum({ b: "Mg==", a: "MQ==" })).toBe(expected);
    expect(secretChecksum({ a: "MQ==", b: "Mg==" })).toBe(expected);
    expect(secretChecksum(undefined)).toBe(createHash("sha256").update("[]").digest("hex"));
    expect(secretChecksum({ a: "MQ==" })).not.toBe(expected);
  });
});

describe("createShardMember options", () => {
  const kc = new KubeConfig();
  it("rejects bad options synchronously, naming the field and value", () => {
    expect(() => createShardMember({ kubeConfig: kc, slotMap: "Bad", shard: "s" })).toThrow(
      ShardMemberConfigError,
    );
    expect(() => createShardMember({ kubeConfig: kc, slotMap: "Bad", shard: "s" })).toThrow(
      /slotMap.*"Bad"/s,
    );
    expect(() =>
      createShardMember({
        kubeConfig: kc,
        slotMap: "sm",
        shard: "s",
        leaseDurationSeconds: 5,
        renewDeadlineSeconds: 6,
      }),
    ).toThrow(/renewDeadlineSeconds: must be less than leaseDurationSeconds \(5\)[^\n]*; got 6/);
    // Every problem at once, each with its field and value, in the units the user wrote.
    let err: unknown;
    try {
      createShardMember({
        kubeConfig: kc,
        slotMap: "Bad",
        shard: "s",
        leaseDurationSeconds: 5,
        renewDeadlineSeconds: 4,
        retryPeriodSeconds: 4,
        weight: -1,
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShardMemberConfigError);
    expect((err as ShardMemberConfigError).errors.map((e) => [e.field, e.value])).toEqual([
      ["slotMap", "Bad"],
      ["weight", -1],
      ["retryPeriodSeconds", 4],
    ]);
    expect(() =>
      createShardMember({ kubeConfig: kc, slotMap: "sm", shard: "s", leaseDurationSeconds: 1.5 }),
    ).toThrow(/leaseDurationSeconds: must be a whole number of seconds; got 1.5/);
  });
});
