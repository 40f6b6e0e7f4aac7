// docs/operations.md carries the allow/deny table of deploy/'s RBAC and admission policies; the
// integration test test/integration/rbac-deploy.test.ts sends every row of it for real. This keeps
// the document equal to the test's table. After changing the cases, regenerate the section with
//   SLOTMAP_UPDATE_DOCS=1 npx vitest run test/unit/docs/rbac-table.test.ts
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CASES, renderCaseTable } from "../../integration/rbac-cases.js";

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../docs/operations.md");
const BEGIN = "<!-- BEGIN rbac-table: generated from test/integration/rbac-cases.ts -->";
const END = "<!-- END rbac-table -->";

describe("docs/operations.md least-privilege table", () => {
  it("is the table of test/integration/rbac-cases.ts", () => {
    const doc = readFileSync(DOC, "utf8");
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start, `docs/operations.md lacks the marker ${BEGIN}`).toBeGreaterThanOrEqual(0);
    expect(end, `docs/operations.md lacks the marker ${END}`).toBeGreaterThan(start);
    const want = `${BEGIN}\n${renderCaseTable()}\n${END}`;
    const have = doc.slice(start, end + END.length);
    if (have !== want && process.env.SLOTMAP_UPDATE_DOCS === "1") {
      writeFileSync(DOC, doc.slice(0, start) + want + doc.slice(end + END.length));
      return;
    }
    expect(have, "regenerate with SLOTMAP_UPDATE_DOCS=1 (see the file header)").toBe(want);
  });

  it("has one row per case, every case distinct", () => {
    const rows = renderCaseTable().split("\n").slice(2);
    expect(rows.length).toBe(CASES.length);
    expect(new Set(CASES.map((c) => `${c.actor}|${c.what}`)).size).toBe(CASES.length);
  });
});
