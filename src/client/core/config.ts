/**
 * Configuration of the shard state machine, validated with zod. Durations are milliseconds of the
 * machine clock. Defaults are client-go's leader election defaults (15 s / 10 s / 2 s).
 */
import { z } from "zod";
import { type FieldError, formatFieldErrors } from "../../api/errors.js";
import { leaseTimingProblems } from "../../api/lease.js";
import { LIMITS, PATTERNS, parseWith } from "../../api/v1alpha1.js";

/** Room kept in `holderIdentity` for `-<salt>-<n>` after the prefix (n < 10^9). */
const IDENTITY_SUFFIX_ROOM = 11;

const positiveMs = () =>
  z
    .int()
    .min(1)
    .max(LIMITS.maxHandoffTimeoutSeconds * 1000);

/** Schema of {@link ShardMachineOptions}; unknown options are rejected (a typo is an error). */
/**
 * The order lease timings must keep (client-go's): renewDeadline < leaseDuration (the difference
 * is the safety margin) and retryPeriod < renewDeadline. One check for the machine (ms) and the
 * shard member's options (seconds): `names` are the fields as the caller's user wrote them.
 */
export function checkLeaseTimings(
  ctx: z.RefinementCtx,
  t: { leaseDuration: number; renewDeadline: number; retryPeriod: number },
  names: { leaseDuration: string; renewDeadline: string; retryPeriod: string },
): void {
  for (const p of leaseTimingProblems(t, names)) {
    ctx.addIssue({ code: "custom", path: [names[p.timing]], message: p.message });
  }
}

export const ShardMachineOptionsSchema = z
  .strictObject({
    slotmap: z
      .string()
      .min(1)
      .max(LIMITS.nameLength)
      .regex(PATTERNS.dnsSubdomain, { error: "must be the name of the SlotMap (a DNS-1123 subdomain)" })
      .describe("Name of the SlotMap: the value of the slotmap.dev/slotmap label on the Lease."),
    shard: z
      .string()
      .min(1)
      .max(253)
      .regex(PATTERNS.dnsSubdomain, { error: "must be a Lease name (a DNS-1123 subdomain)" })
      .describe("Shard name = name of its Lease."),
    leaseNamespace: z
      .string()
      .min(1)
      .max(63)
      .regex(PATTERNS.dnsLabel, { error: "must be a namespace name (a DNS-1123 label)" })
      .describe("spec.leaseNamespace of the SlotMap."),
    holderIdentityPrefix: z.string().min(1).describe("Start of every holderIdentity, usually the pod name."),
    incarnationSalt: z
      .string()
      .min(4)
      .max(32)
      .regex(/^[a-z0-9]+$/, { error: "must be lowercase letters and digits (random per process start)" })
      .describe("Random string, new at every process start, so identities never repeat across processes."),
    leaseDurationMs: positiveMs()
      .multipleOf(1000, { error: "must be whole seconds (leaseDurationSeconds is an integer)" })
      .default(15_000),
    renewDeadlineMs: positiveMs().default(10_000),
    retryPeriodMs: positiveMs().default(2_000),
    writeTimeoutMs: positiveMs().optional().describe("Per-write timeout; default retryPeriodMs."),
    weight: z
      .int()
      .min(0)
      .max(LIMITS.maxWeight)
      .optional()
      .describe("Written as slotmap.dev/weight when set; left alone when not."),
    handoffEscalateAfterMs: positiveMs()
      .default(30_000)
      .describe(
        "A reconcile on lost slots still running this long after the loss: stop renewing and emit `escalate` (the process exits), so the coordinator fences the shard by Lease expiry and the handoff completes. The SlotMap's spec.policy.handoffTimeoutSeconds overrides it when the I/O layer passes it.",
      ),
    handoffAbortAfterMs: positiveMs()
      .optional()
      .describe("Abort in-flight reconciles on lost slots after this long (default: never, wait for them)."),
    wallClockOffsetMs: z
      .number()
      .refine(Number.isFinite, { error: "must be a finite number" })
      .default(0)
      .describe(
        "Wall clock = machine clock + offset; only used for acquireTime/renewTime, which nobody trusts.",
      ),
  })
  .superRefine((o, ctx) => {
    checkLeaseTimings(
      ctx,
      { leaseDuration: o.leaseDurationMs, renewDeadline: o.renewDeadlineMs, retryPeriod: o.retryPeriodMs },
      { leaseDuration: "leaseDurationMs", renewDeadline: "renewDeadlineMs", retryPeriod: "retryPeriodMs" },
    );
    if (o.writeTimeoutMs !== undefined && o.writeTimeoutMs > o.renewDeadlineMs) {
      ctx.addIssue({
        code: "custom",
        path: ["writeTimeoutMs"],
        message: `must be at most renewDeadlineMs (${o.renewDeadlineMs})`,
      });
    }
    const room = LIMITS.holderIdentityLength - IDENTITY_SUFFIX_ROOM - o.incarnationSalt.length;
    if (o.holderIdentityPrefix.length > room) {
      ctx.addIssue({
        code: "custom",
        path: ["holderIdentityPrefix"],
        message: `must be at most ${room} characters so that "<prefix>-<salt>-<n>" fits holderIdentity (${LIMITS.holderIdentityLength})`,
      });
    }
  });

/** Options of a shard machine, as given (defaults not applied). */
export type ShardMachineOptions = z.input<typeof ShardMachineOptionsSchema>;

/** Options with defaults applied and checked. */
export type ShardMachineConfig = Readonly<
  z.output<typeof ShardMachineOptionsSchema> & { writeTimeoutMs: number }
>;

/** Invalid shard machine options: `errors` names every bad field and its value. */
export class ShardConfigError extends Error {
  readonly errors: readonly FieldError[];

  constructor(errors: readonly FieldError[]) {
    super(`invalid shard machine options:\n${formatFieldErrors(errors)}`);
    this.name = "ShardConfigError";
    this.errors = errors;
  }
}

/**
 * Validates options and applies defaults.
 *
 * @throws ShardConfigError naming each bad field and its value.
 */
export function parseShardMachineOptions(options: unknown): ShardMachineConfig {
  const r = parseWith(ShardMachineOptionsSchema, options);
  if (!r.ok) {
    // parseWith words unknown keys for the SlotMap schema; say what they are here.
    throw new ShardConfigError(
      r.errors.map((e) =>
        e.message.startsWith("unknown field") ? { ...e, message: "unknown option (check the spelling)" } : e,
      ),
    );
  }
  return Object.freeze({ ...r.value, writeTimeoutMs: r.value.writeTimeoutMs ?? r.value.retryPeriodMs });
}
