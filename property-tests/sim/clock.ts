/**
 * Per-process monotonic clocks. Simulated real time `T` (ms) is global; each process reads its own
 * clock `local(T) = base + (T - startReal) * rate`, with `rate` within `1 ± drift`. The cores only
 * ever see local times; nothing compares clocks of two processes except through the model.
 */
export class ProcessClock {
  /**
   * @param startReal - real time at which the process started
   * @param base - the local reading at `startReal` (arbitrary: monotonic clocks have no epoch)
   * @param rate - local ms per real ms
   * @param wallOffsetMs - wall clock = real time + this (only written into objects)
   */
  constructor(
    readonly startReal: number,
    readonly base: number,
    readonly rate: number,
    readonly wallOffsetMs: number,
  ) {
    if (!(rate > 0)) throw new RangeError(`rate: must be > 0; got ${rate}`);
  }

  /** The process's monotonic clock at real time `real`. */
  local(real: number): number {
    return this.base + (real - this.startReal) * this.rate;
  }

  /** The earliest real time at which the local clock reads at least `local` (rounding-safe). */
  realAt(local: number): number {
    let r = this.startReal + (local - this.base) / this.rate;
    for (let i = 0; i < 8 && this.local(r) < local; i++) r += Math.max(1e-9, Math.abs(r) * 1e-15) * 2 ** i;
    return r;
  }
}
