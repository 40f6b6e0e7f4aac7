/**
 * Progress of a drain on stderr: a bar redrawn in place on a terminal, plain lines (one per
 * change) otherwise, so logs of CI jobs stay readable.
 */
import type { TextSink } from "./io.js";

/** One observation of the drain. */
export interface DrainProgress {
  /** Slots the shard still owns or is handing off. */
  remaining: number;
  /** Of which in migrations from the shard (waiting for its ack). */
  migrating: number;
  generation: number;
}

/** Renders a bar `[█████░░░░░]` of `width` cells for `fraction` in 0..1. */
export function bar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${"█".repeat(full)}${"░".repeat(width - full)}]`;
}

/** Reports drain progress for one shard. */
export class ProgressReporter {
  private total: number | undefined;
  private lastLine = "";
  private drawn = false;

  constructor(
    private readonly out: TextSink,
    private readonly shard: string,
  ) {}

  /** Reports an observation; the first one fixes the total. */
  update(p: DrainProgress): void {
    this.total ??= Math.max(p.remaining, 1);
    const total = Math.max(this.total, p.remaining);
    const moved = total - p.remaining;
    const pct = Math.floor((100 * moved) / total);
    const detail = `${this.shard}: ${p.remaining} slot${p.remaining === 1 ? "" : "s"} left${
      p.migrating > 0 ? ` (${p.migrating} migrating)` : ""
    }, generation ${p.generation}`;
    if (this.out.isTTY) {
      const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - detail.length - 10));
      this.out.write(`\r\x1b[2K${bar(moved / total, width)} ${String(pct).padStart(3)}% ${detail}`);
      this.drawn = true;
      return;
    }
    if (detail !== this.lastLine) {
      this.out.write(`${detail}\n`);
      this.lastLine = detail;
    }
  }

  /** Ends the bar line (on a terminal) so that the next message starts on its own line. */
  finish(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
