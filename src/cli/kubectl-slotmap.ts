#!/usr/bin/env node
/**
 * `kubectl-slotmap`: the kubectl plugin binary. On PATH, `kubectl slotmap ...` runs it with the
 * arguments after `slotmap`. See docs/cli.md.
 */
// First: on an unsupported Node.js, one line and exit 1 before any dependency is evaluated.
import "../runtime/guard-bin.js";
import { main } from "./main.js";

process.exitCode = await main(process.argv.slice(2));
