// Preloaded with `node --require` to run a process on a clock that is off by
// IMAGEGEN_TEST_CLOCK_SHIFT_MS, as a host with a skewed clock would be: Date.now() and
// new Date() both move; monotonic timers (setTimeout, performance.now) do not.
const shift = Number(process.env.IMAGEGEN_TEST_CLOCK_SHIFT_MS || 0);
if (shift !== 0) {
  const RealDate = Date;
  class ShiftedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(RealDate.now() + shift);
      else super(...args);
    }
    static now() {
      return RealDate.now() + shift;
    }
  }
  globalThis.Date = ShiftedDate;
}
