/**
 * The real clock: `performance.now()` for the machine's monotonic time, `Date.now()` for the
 * timestamps people read, and Node timers for the driver's timeouts.
 */
import { performance } from 'node:perf_hooks';
import type { ClockPort } from './ports.js';

/** The longest delay Node's setTimeout takes; longer ones are armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const linuxClock: ClockPort = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  monotonicUsec: () => process.hrtime.bigint() / 1000n,
  arm(ms, fire) {
    if (ms <= 0) {
      // Zero means now; setTimeout(0) would still wait a millisecond.
      const immediate = setImmediate(fire);
      return () => clearImmediate(immediate);
    }
    if (!Number.isFinite(ms)) return () => {};
    let timer: NodeJS.Timeout;
    const deadline = performance.now() + ms;
    const step = (): void => {
      const left = deadline - performance.now();
      if (left > 0 && left > MAX_TIMER_MS) timer = setTimeout(step, MAX_TIMER_MS);
      else fire();
    };
    timer = setTimeout(step, Math.min(ms, MAX_TIMER_MS));
    return () => clearTimeout(timer);
  },
};
