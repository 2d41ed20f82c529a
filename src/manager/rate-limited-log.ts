/**
 * Log lines that outside input can provoke (a bad datagram, a misbehaving service) go through a
 * rate limit, so that a flood of bad input cannot flood the daemon's own log: at most `burst` lines
 * per `intervalMs`, then one line that says how many were suppressed.
 */

/** Severity of a line the manager's components report. */
export type LogLevel = 'debug' | 'info' | 'warning' | 'error';

/** Where a component sends its log lines; the daemon decides where they go. Must not throw. */
export type Logger = (level: LogLevel, text: string) => void;

/** Options of {@link RateLimitedLog}. */
export interface RateLimitOptions {
  /** Length of one window, ms. Default 10 000. */
  intervalMs?: number;
  /** Lines let through per window. Default 10. */
  burst?: number;
}

/** A {@link Logger} wrapper that lets at most `burst` lines through per window. */
export class RateLimitedLog {
  readonly #log: Logger;
  readonly #prefix: string;
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #inWindow = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param prefix put before the summary line (e.g. `notify: `), so it says whose lines were dropped.
   * @param now the clock, ms (tests may pass their own).
   */
  constructor(log: Logger, prefix: string, options: RateLimitOptions = {}, now: () => number = Date.now) {
    this.#log = log;
    this.#prefix = prefix;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#burst = options.burst ?? 10;
    this.#now = now;
    if (!(this.#intervalMs > 0) || !Number.isInteger(this.#burst) || this.#burst < 1) {
      throw new RangeError(`rate limit: intervalMs must be > 0 and burst a positive integer (got ${this.#intervalMs}, ${this.#burst})`);
    }
  }

  /** Lines suppressed in the current window and not yet reported. */
  get suppressed(): number {
    return this.#suppressed;
  }

  /** Logs `text` unless the window's budget is spent; returns whether it went out. */
  write(level: LogLevel, text: string): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= this.#intervalMs) {
      this.flush();
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow < this.#burst) {
      this.#inWindow++;
      safeLog(this.#log, level, text);
      return true;
    }
    this.#suppressed++;
    if (this.#timer === undefined) {
      const wait = Math.max(0, this.#windowStart + this.#intervalMs - now);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, wait);
      this.#timer.unref();
    }
    return false;
  }

  /** Reports the suppressed count now (if any) instead of at the end of the window. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#suppressed === 0) return;
    const count = this.#suppressed;
    this.#suppressed = 0;
    const seconds = this.#intervalMs / 1000;
    safeLog(this.#log, 'warning', `${this.#prefix}suppressed ${count} more similar log ${count === 1 ? 'line' : 'lines'} (at most ${this.#burst} per ${seconds} s)`);
  }

  /** Reports what is pending and stops the timer. */
  dispose(): void {
    this.flush();
  }
}

/** Calls a logger, never letting its failure reach the caller. */
export function safeLog(log: Logger, level: LogLevel, text: string): void {
  try {
    log(level, text);
  } catch {
    // A broken logger must not take the component down with it.
  }
}

/** The default logger: warnings and errors to stderr. */
export const stderrLogger: Logger = (level, text) => {
  if (level === 'warning' || level === 'error') process.stderr.write(`holdfast: ${level}: ${text}\n`);
};

/** Options of {@link KeyedRateLimitedLog}. */
export interface KeyedRateLimitOptions extends RateLimitOptions {
  /** Senders tracked at once; the longest unheard is flushed and forgotten beyond this. Default 64. */
  maxKeys?: number;
}

/**
 * One {@link RateLimitedLog} per sender (a uid, say), so that one flooding sender spends only its
 * own budget: others' lines still get through, and the summary says whose lines were dropped.
 * At most `maxKeys` senders are tracked, so a stranger cycling through uids bounds the memory too.
 */
export class KeyedRateLimitedLog<K extends string | number> {
  readonly #log: Logger;
  readonly #prefix: (key: K) => string;
  readonly #options: RateLimitOptions;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #limits = new Map<K, RateLimitedLog>();

  /** @param prefix the summary line's prefix for one sender (e.g. `notify from UID 1000: `). */
  constructor(log: Logger, prefix: (key: K) => string, options: KeyedRateLimitOptions = {}, now: () => number = Date.now) {
    this.#log = log;
    this.#prefix = prefix;
    const { maxKeys, ...rest } = options;
    this.#options = rest;
    this.#maxKeys = maxKeys ?? 64;
    this.#now = now;
  }

  /** Logs `text` for `key` unless that sender's budget is spent; returns whether it went out. */
  write(key: K, level: LogLevel, text: string): boolean {
    let limit = this.#limits.get(key);
    if (limit === undefined) {
      if (this.#limits.size >= this.#maxKeys) {
        const [oldest, old] = this.#limits.entries().next().value as [K, RateLimitedLog];
        old.dispose();
        this.#limits.delete(oldest);
      }
      limit = new RateLimitedLog(this.#log, this.#prefix(key), this.#options, this.#now);
    } else this.#limits.delete(key);
    // Most recently heard last: the first entry is the one to forget.
    this.#limits.set(key, limit);
    return limit.write(level, text);
  }

  /** Lines suppressed and not yet reported, over every sender. */
  get suppressed(): number {
    let total = 0;
    for (const limit of this.#limits.values()) total += limit.suppressed;
    return total;
  }

  /** Reports every pending count and forgets every sender. */
  dispose(): void {
    for (const limit of this.#limits.values()) limit.dispose();
    this.#limits.clear();
  }
}
