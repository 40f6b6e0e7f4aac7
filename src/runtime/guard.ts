/**
 * Imported FIRST by the package entry points (src/index.ts, src/client/index.ts): ES modules are
 * evaluated in import order, so this throws a plain explanation before any dependency that needs
 * a newer Node.js is evaluated.
 */
import { nodeVersionProblem } from "./node-version.js";

const problem = nodeVersionProblem("slotmap");
if (problem !== undefined) throw new Error(problem);
