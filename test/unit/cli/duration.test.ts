import { describe, expect, it } from "vitest";
import { parseDuration } from "../../../src/cli/format.js";
import { UsageError } from "../../../src/cli/io.js";

describe("kubectl-slotmap --timeout durations", () => {
  it("takes Go durations (the coordinator's flags' parser) and 0 for no limit", () => {
    expect(parseDuration("0", "--timeout")).toBe(0);
    expect(parseDuration("90s", "--timeout")).toBe(90_000);
    expect(parseDuration("1h30m", "--timeout")).toBe(5_400_000);
    expect(parseDuration("500ms", "--timeout")).toBe(500);
    expect(parseDuration("1.5h", "--timeout")).toBe(5_400_000);
    expect(parseDuration("2m0.5s", "--timeout")).toBe(120_500);
  });

  it("refuses what is not a duration, or a negative one, naming flag and value", () => {
    for (const bad of ["", "5", "5x", "-1s", "1h-", "s"]) {
      expect(() => parseDuration(bad, "--timeout")).toThrow(UsageError);
      expect(() => parseDuration(bad, "--timeout")).toThrow(
        `--timeout ${JSON.stringify(bad)}: not a duration`,
      );
    }
  });
});
