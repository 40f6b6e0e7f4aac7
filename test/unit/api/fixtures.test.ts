// Every sample document through the zod schemas: valid ones parse, invalid ones are rejected with
// an error naming the field their `# expect-field:` line names (the same field the API server
// names; see test/integration/crd.test.ts).
import { describe, expect, it } from "vitest";
import { formatFieldErrors, parseSlotMap } from "../../../src/api/index.js";
import { tableFromStatus } from "../../../src/slots/table.js";
import { loadSlotMapFixtures } from "../../fixtures/slotmaps/load.js";

const valid = loadSlotMapFixtures("valid");
const invalid = loadSlotMapFixtures("invalid");

describe("valid SlotMap fixtures", () => {
  it("has the documented samples", () => {
    expect(valid.length).toBeGreaterThanOrEqual(3);
    expect(valid.map((f) => f.name)).toEqual(
      expect.arrayContaining(["minimal.yaml", "full.yaml", "with-status.yaml"]),
    );
  });

  it.each(valid.map((f) => [f.name, f] as const))("%s parses", (_name, f) => {
    const r = parseSlotMap(f.doc);
    if (!r.ok) expect.fail(formatFieldErrors(r.errors));
    expect(r.value.metadata.name).toBe((f.doc.metadata as { name: string }).name);
    if (r.value.status) {
      // The slot core reads the same status: the two agree on what a valid table is.
      expect(() => tableFromStatus(r.value.status!)).not.toThrow();
    }
  });
});

describe("invalid SlotMap fixtures", () => {
  it("has at least 8 samples, each naming the field its error must mention", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(8);
    for (const f of invalid) expect(f.expectField, f.name).toBeTruthy();
  });

  it.each(invalid.map((f) => [f.name, f] as const))("%s is rejected naming its field", (_name, f) => {
    const r = parseSlotMap(f.doc);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = formatFieldErrors(r.errors);
    expect(text).toContain(f.expectField!);
    // The structured error names the field too, and carries the bad value when there is one.
    const e = r.errors.find((x) => x.field.startsWith(f.expectField!) || f.expectField!.startsWith(x.field));
    expect(e, text).toBeDefined();
    expect(e!.message.length).toBeGreaterThan(0);
  });
});
