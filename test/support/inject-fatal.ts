// Preloaded (`node --import tsx --import ./test/support/inject-fatal.ts …`) by the fault-injection
// tests: SIGUSR2 makes the process throw an uncaught exception from a timer, as an unhandled
// socket or emitter error would, to check that a dying process still releases its Lease.
process.on("SIGUSR2", () => {
  setImmediate(() => {
    throw new Error("injected fatal error (SIGUSR2)");
  });
});
