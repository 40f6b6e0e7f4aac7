/** The logger interface of the client library, shared by the member, its rules and the runtime. */

/**
 * Structured logger; pino's `Logger` fits. Every record about membership carries `slotmap`,
 * `shard`, `generation` and `identity`; failures carry the Error itself under `err` (pino's
 * standard serializer keeps its stack).
 */
export interface ShardLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** A logger that drops everything (the default). */
export const silentLogger: ShardLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
