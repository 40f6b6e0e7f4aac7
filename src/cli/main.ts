/**
 * The `kubectl-slotmap` command line: commander parsing, kubectl-like global flags, error
 * reporting (`error: ...` on stderr) and exit codes (0 ok, 1 error, 2 usage error).
 * {@link main} takes argv and a {@link CliIO} so tests run it in-process.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { PACKAGE_VERSION } from "../runtime/version.js";
import { KeyError } from "../slots/index.js";
import { type CliClient, describeFailure, HttpCliClient } from "./client.js";
import { runDrain } from "./commands/drain.js";
import { runGet } from "./commands/get.js";
import { runKeySlot } from "./commands/keyslot.js";
import { runPlan } from "./commands/plan.js";
import { runView } from "./commands/view.js";
import { runWhich } from "./commands/which.js";
import type { CommandContext } from "./context.js";
import { checkNamespace, parseDuration, parseListFormat, parseOutputFormat } from "./format.js";
import { CliError, type CliIO, EXIT, processIO } from "./io.js";
import { loadKubeConfig } from "./kubeconfig.js";

/** Global flags, as kubectl names them. */
export interface GlobalFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

/** Injection points for tests. */
export interface MainDeps {
  io?: CliIO;
  /**
   * Creates the API client and the default namespace. Default: load the kubeconfig (flags,
   * KUBECONFIG, ~/.kube/config, in-cluster) and talk REST through src/kube/http.ts.
   */
  connect?: (flags: GlobalFlags, io: CliIO) => { client: CliClient; namespace: string };
  /** Poll interval of `drain` in milliseconds (default 1000). */
  drainIntervalMs?: number;
}

function defaultConnect(flags: GlobalFlags, io: CliIO): { client: CliClient; namespace: string } {
  const loaded = loadKubeConfig({ kubeconfig: flags.kubeconfig, context: flags.context, env: io.env });
  return { client: new HttpCliClient(loaded.kc), namespace: loaded.namespace };
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function positiveInt(flag: string) {
  return (value: string): number => {
    if (!/^[1-9][0-9]{0,8}$/.test(value))
      throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return Number(value);
  };
}

const outputOption = () => new Option("-o, --output <format>", "output format: json or yaml");

/** Builds the commander program; `run` wraps each action with the shared context. */
function buildProgram(io: CliIO, deps: MainDeps): Command {
  const program = new Command();
  let connection: { client: CliClient; namespace: string } | undefined;
  const context = (cmd: Command): CommandContext => {
    const flags = cmd.optsWithGlobals<GlobalFlags>();
    const connect = () => {
      connection ??= (deps.connect ?? defaultConnect)(flags, io);
      return connection;
    };
    return {
      io,
      client: () => connect().client,
      namespace: () =>
        flags.namespace !== undefined ? checkNamespace(flags.namespace) : connect().namespace,
      namespaceExplicit: flags.namespace !== undefined,
    };
  };

  program
    .name("kubectl slotmap")
    .description(
      "Inspect and operate SlotMaps: Redis-Cluster-style slot sharding for Kubernetes controllers.",
    )
    .version(`kubectl-slotmap ${PACKAGE_VERSION}`, "--version", "print the version")
    .exitOverride()
    .allowExcessArguments(false)
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      getOutHelpWidth: () => io.stdout.columns ?? 100,
      getErrHelpWidth: () => io.stderr.columns ?? 100,
    })
    .option("--kubeconfig <file>", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    .option("--context <name>", "the kubeconfig context to use")
    .option("-n, --namespace <namespace>", "namespace of the object (which); default: the context's");

  program
    .command("keyslot")
    .description(
      "print the slot of each key (xxh64 of the UTF-8 key, seed 0, mod 16384), like CLUSTER KEYSLOT",
    )
    .argument("<key...>", "keys such as /Secret/default/db (group/kind/namespace/name) or a hash-key value")
    .option("--object", "validate each key as group/kind/namespace/name")
    .addOption(outputOption())
    .action(async (keys: string[], opts: { output?: string; object?: boolean }, cmd: Command) => {
      runKeySlot(context(cmd), keys, { output: parseOutputFormat(opts.output), object: opts.object });
    });

  program
    .command("get")
    .description("list SlotMaps, or show one: shards, states, slots, acks, migrations, conditions")
    .argument("[slotmap]", "SlotMap name")
    .addOption(new Option("-o, --output <format>", "output format: json, yaml, name or wide"))
    .action(async (name: string | undefined, opts: { output?: string }, cmd: Command) => {
      await runGet(context(cmd), name, { output: parseListFormat(opts.output) });
    });

  program
    .command("which")
    .description("show the sharding key, slot and owning shard of a live object")
    .argument("<resource>", "resource type, e.g. secrets, cm, deployments.apps")
    .argument("<name>", "object name")
    .option("--slotmap <name>", "the SlotMap to check (default: every SlotMap sharding the resource)")
    .addOption(outputOption())
    .action(
      async (resource: string, name: string, opts: { output?: string; slotmap?: string }, cmd: Command) => {
        await runWhich(context(cmd), resource, name, {
          output: parseOutputFormat(opts.output),
          slotmap: opts.slotmap,
        });
      },
    );

  program
    .command("plan")
    .description("dry-run the planner from the live status with hypothetical changes; writes nothing")
    .argument("<slotmap>", "SlotMap name")
    .option("--add-shard <name>", "add a Ready shard of weight 1 (repeatable)", collect, [])
    .option(
      "--remove-shard <name>",
      "remove a shard: its Lease released, Dead at once (repeatable)",
      collect,
      [],
    )
    .option("--weight <name=w>", "set a shard's weight, 0 drains it (repeatable)", collect, [])
    .option("--max-steps <n>", "stop after this many planner steps", positiveInt("--max-steps"), 1000)
    .addOption(outputOption())
    .action(
      async (
        name: string,
        opts: {
          output?: string;
          addShard: string[];
          removeShard: string[];
          weight: string[];
          maxSteps: number;
        },
        cmd: Command,
      ) => {
        await runPlan(context(cmd), name, { ...opts, output: parseOutputFormat(opts.output) });
      },
    );

  program
    .command("drain")
    .description("set a shard's weight to 0 and wait until the coordinator has moved all its slots away")
    .argument("<shard>", "shard name (the name of its Lease)")
    .requiredOption("--slotmap <name>", "the SlotMap of the shard")
    .addOption(
      new Option(
        "--via <where>",
        "where to write the weight: the SlotMap's spec.weights, or the shard Lease's annotation",
      )
        .choices(["spec", "lease"])
        .default("spec"),
    )
    .option("--timeout <duration>", "give up after this long, e.g. 30s, 5m; 0 waits forever", "5m")
    .option("--no-wait", "set the weight and return without waiting")
    .action(
      async (
        shard: string,
        opts: { slotmap: string; via: "spec" | "lease"; timeout: string; wait: boolean },
        cmd: Command,
      ) => {
        await runDrain(context(cmd), shard, {
          slotmap: opts.slotmap,
          via: opts.via,
          timeoutMs: parseDuration(opts.timeout, "--timeout"),
          wait: opts.wait,
          intervalMs: deps.drainIntervalMs ?? 1000,
        });
      },
    );

  program
    .command("view")
    .description("draw the 16384 slots as a 128×128 grid coloured by owner (or write an SVG picture)")
    .argument("<slotmap>", "SlotMap name")
    .option("--svg <file>", "write an SVG picture to this file (- for stdout) instead of drawing")
    .option("--color <when>", "colours: auto (on a terminal without NO_COLOR), always or never", "auto")
    .action(async (name: string, opts: { svg?: string; color: string }, cmd: Command) => {
      await runView(context(cmd), name, opts);
    });

  return program;
}

/**
 * Runs the CLI on `argv` (the arguments after the program name) and returns the exit code.
 * Never throws and never calls process.exit.
 */
export async function main(argv: readonly string[], deps: MainDeps = {}): Promise<number> {
  const io = deps.io ?? processIO();
  const program = buildProgram(io, deps);
  if (argv.length === 0) {
    io.stderr.write(program.helpInformation());
    return EXIT.usage;
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message ("error: unknown option '--x'") or the help.
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.help" ||
        err.code === "commander.version"
      ) {
        return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      }
      return EXIT.usage;
    }
    if (err instanceof CliError) {
      io.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof KeyError) {
      io.stderr.write(`error: ${err.message}\n`);
      return EXIT.error;
    }
    io.stderr.write(`error: ${describeFailure(err)}\n`);
    return EXIT.error;
  }
}
