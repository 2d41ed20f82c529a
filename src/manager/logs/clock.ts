/** Wall-clock time in microseconds, as log records carry it. */
import { performance } from 'node:perf_hooks';

let last = 0;

/**
 * Microseconds since the epoch: `Date.now()` for the wall clock, the monotonic clock's fraction
 * for the sub-millisecond part. Never runs backwards by less than a millisecond (the two clocks
 * are not aligned within one), so lines read in order keep their order; a real clock step
 * backwards (NTP, an admin) is followed.
 */
export function nowMicros(): number {
  const wall = Date.now() * 1000;
  const fraction = Math.floor((performance.now() * 1000) % 1000);
  let now = wall + fraction;
  if (now <= last && last - now < 1000) now = last;
  last = now;
  return now;
}
