/**
 * Imported FIRST by the executables (slotmap-coordinator, kubectl-slotmap): on an unsupported
 * Node.js they print one line naming the required and the found version and exit 1, before any
 * dependency that would crash is evaluated (ES modules are evaluated in import order).
 */
import { basename } from "node:path";
import { nodeVersionProblem } from "./node-version.js";

const name = basename(process.argv[1] ?? "slotmap").replace(/\.[cm]?[jt]s$/, "");
const problem = nodeVersionProblem(name === "main" ? "slotmap-coordinator" : name);
if (problem !== undefined) {
  process.stderr.write(`error: ${problem}\n`);
  process.exit(1);
}
