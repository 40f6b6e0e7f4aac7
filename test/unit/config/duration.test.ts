import { describe, expect, it } from "vitest";
import { parseGoDuration } from "../../../src/config/duration.js";

describe("parseGoDuration (Go's time.ParseDuration syntax)", () => {
  it.each([
    ["15s", 15],
    ["1m30s", 90],
    ["500ms", 0.5],
    ["1.5h", 5400],
    [".5s", 0.5],
    ["1h2m3s4ms5us6ns", 3723.004005006],
    ["5µs", 0.000005],
    ["5μs", 0.000005],
    ["0", 0],
    ["+2s", 2],
    ["-1s", -1],
  ])("%j is %d s", (text, seconds) => {
    expect(parseGoDuration(text)).toBe(seconds);
  });

  it.each(["", "15", "1m30", "s", "1x", "1s ", " 1s", "1.s.5", "1d", "--1s", "1S"])(
    "%j is not a duration",
    (text) => {
      expect(parseGoDuration(text)).toBeUndefined();
    },
  );
});
