/** What every command receives: the process boundary and lazily created API access. */
import type { CliClient } from "./client.js";
import type { CliIO } from "./io.js";

/** Per-invocation context of a command. */
export interface CommandContext {
  io: CliIO;
  /** The API client; creating it loads the kubeconfig, so commands that need no server never do. */
  client(): CliClient;
  /** `-n/--namespace`, else the kubeconfig context's namespace, else "default". */
  namespace(): string;
  /** Whether `-n/--namespace` was given explicitly. */
  namespaceExplicit: boolean;
}
