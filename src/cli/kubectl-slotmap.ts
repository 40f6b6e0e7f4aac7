#!/usr/bin/env node
/**
 * `kubectl-slotmap`: the kubectl plugin binary. On PATH, `kubectl slotmap ...` runs it with the
 * arguments after `slotmap`. See docs/cli.md.
 */
import { main } from "./main.js";

process.exitCode = await main(process.argv.slice(2));
