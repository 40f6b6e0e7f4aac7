import { describe, expect, it } from "vitest";
import { parseFuzzArgs, UsageError } from "../../../tools/fuzz.js";

describe("npm run fuzz arguments", () => {
  it("parses a campaign and a replay", () => {
    const a = parseFuzzArgs(["--steps", "1_000_000", "--seed=-5", "--mutation", "ackBeforeDrain"]);
    expect(a).toMatchObject({ steps: 1_000_000, seed: -5, mutations: ["ackBeforeDrain"], maxCommands: 1500 });
    const r = parseFuzzArgs(["--seed", "7", "--batch", "3", "--path", "17:4:0"]);
    expect(r).toMatchObject({ seed: 7, batch: 3, path: "17:4:0" });
  });

  it.each([
    [["--steps", "0"], /--steps: expected an integer >= 1, got "0"/],
    [["--steps", "lots"], /--steps: expected an integer >= 1, got "lots"/],
    [
      ["--mutation", "ackAfterDrain"],
      /--mutation: unknown mutation "ackAfterDrain" \(known: .*ackBeforeDrain/,
    ],
    [
      ["--seed", "1", "--batch", "0", "--path", "1:x"],
      /--path: expected a counterexample path like "12:0:3", got "1:x"/,
    ],
    [["--path", "1:2"], /--path: a path is replayed from a seed and batch/],
    [["--shrink-seconds=-1"], /--shrink-seconds: expected an integer >= 0, got "-1"/],
    [["--frobnicate"], /Unknown option '--frobnicate'/],
    [["extra"], /Unexpected argument 'extra'/],
  ])("rejects %j with a message naming the flag and value", (argv, message) => {
    expect(() => parseFuzzArgs(argv)).toThrow(UsageError);
    expect(() => parseFuzzArgs(argv)).toThrow(message);
  });
});
