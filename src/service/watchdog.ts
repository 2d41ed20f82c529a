/** The service watchdog: `$WATCHDOG_USEC` / `$WATCHDOG_PID`, and pinging on a timer. */
import { errnoError } from '../pidfd/errors.js';
import { pidVariable, usecVariable, type Environment } from './env.js';
import { notify, type NotifyOptions, type NotifyResult } from './notify.js';

/** Options of {@link watchdogInterval}. */
export interface WatchdogIntervalOptions {
  /** Read the variables from here instead of `process.env`. */
  env?: Environment;
  /** Delete `WATCHDOG_USEC` and `WATCHDOG_PID` from `process.env` afterwards (so children do not inherit them). */
  unsetEnvironment?: boolean;
}

/**
 * The watchdog timeout the manager expects pings within, in milliseconds (`$WATCHDOG_USEC` / 1000),
 * or `undefined` when there is none for this process: `$WATCHDOG_USEC` unset, or `$WATCHDOG_PID` set
 * to another process (the variables were inherited from a parent; `sd_watchdog_enabled` does the
 * same). Malformed or zero values throw `EINVAL` naming the variable.
 */
export function watchdogInterval(options: WatchdogIntervalOptions = {}): number | undefined {
  const env = options.env ?? process.env;
  try {
    const usec = usecVariable('WATCHDOG_USEC', env);
    if (usec === undefined) return undefined;
    const pid = pidVariable('WATCHDOG_PID', env);
    if (pid !== undefined && pid !== process.pid) return undefined;
    return Number(usec) / 1000;
  } finally {
    if (options.unsetEnvironment === true) {
      delete process.env['WATCHDOG_USEC'];
      delete process.env['WATCHDOG_PID'];
    }
  }
}

/** Options of {@link startWatchdog}. */
export interface StartWatchdogOptions extends WatchdogIntervalOptions {
  /**
   * Ping at this period instead of half of {@link watchdogInterval} (which leaves the manager a
   * full half-period of slack, as systemd recommends).
   */
  periodMs?: number;
  /** Where pings go and how: passed to `notify()` (a socket, credentials, …). */
  notifyOptions?: Omit<NotifyOptions, 'fds' | 'unsetEnvironment'>;
  /** Called when a ping fails; the timer keeps running. Default: a process warning, once per error code. */
  onError?: (error: Error) => void;
}

/** Stops the pings started by {@link startWatchdog}: call it (or `dispose` it); calling it again does nothing. */
export interface WatchdogStopper extends Disposable {
  (): void;
  /** The ping period in ms, or `undefined` when there is no watchdog for this process (then nothing runs). */
  readonly periodMs: number | undefined;
  /** True until stopped; false from the start when there is no watchdog. */
  readonly running: boolean;
  /** Pings sent so far (including the first, at start). */
  readonly pings: number;
}

/** setTimeout's limit: a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Pings the watchdog (`WATCHDOG=1`) once now and then every half of {@link watchdogInterval} on an
 * unref'd timer, so it never keeps the process alive. Returns a function that stops it, idempotent.
 * With no watchdog for this process (or no `$NOTIFY_SOCKET`) it does nothing and the stopper is
 * inert; malformed watchdog variables throw `EINVAL`.
 *
 * ```ts
 * const stop = startWatchdog();
 * process.on('SIGTERM', () => { stop(); server.close(); });
 * ```
 */
export function startWatchdog(options: StartWatchdogOptions = {}): WatchdogStopper {
  const interval = watchdogInterval(options);
  let period: number | undefined;
  if (interval !== undefined) {
    period = options.periodMs ?? interval / 2;
    if (!Number.isFinite(period) || period <= 0) throw errnoError('EINVAL', `startWatchdog: not a ping period: ${String(options.periodMs)}`);
    period = Math.min(Math.max(1, Math.floor(period)), MAX_TIMER_MS);
  }
  const warned = new Set<string>();
  const onError =
    options.onError ??
    ((error: Error): void => {
      const code = (error as NodeJS.ErrnoException).code ?? error.name;
      if (warned.has(code)) return;
      warned.add(code);
      process.emitWarning(`holdfast watchdog ping failed: ${error.message}`, { code: 'HOLDFAST_WATCHDOG' });
    });
  let timer: NodeJS.Timeout | undefined;
  let pings = 0;
  const ping = (): NotifyResult | undefined => {
    try {
      const result = notify({ WATCHDOG: 1 }, options.notifyOptions ?? {});
      if (result.sent) pings++;
      return result;
    } catch (error) {
      onError(error as Error);
      return undefined;
    }
  };
  if (period !== undefined) {
    const first = ping();
    // No socket at all: nobody to ping, so do not keep a timer running for nothing.
    if (first === undefined || first.sent) {
      timer = setInterval(ping, period);
      timer.unref();
    }
  }
  const stop = (): void => {
    if (timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  };
  return Object.defineProperties(stop, {
    periodMs: { get: () => period, enumerable: true },
    running: { get: () => timer !== undefined, enumerable: true },
    pings: { get: () => pings, enumerable: true },
    [Symbol.dispose]: { value: stop },
  }) as WatchdogStopper;
}
