/**
 * Reading the variables of the service protocol (`$MAINPID`, `$MANAGERPIDFDID`, `$LISTEN_FDS`,
 * `$WATCHDOG_USEC`, …) strictly: a variable is either unset (`undefined`) or a valid value; anything
 * else is an `EINVAL` error that names the variable and quotes its value.
 *
 * Parsing is stricter than systemd's `safe_atou64()` (which also takes `0x…`, leading zeros and
 * whitespace): systemd and holdfast only ever write plain decimal, so anything else was written by
 * hand, usually by mistake, and is better reported than guessed at.
 */
import { errnoError } from '../pidfd/errors.js';

/** Where the variables are read from: `process.env` unless a test or caller passes another map. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** The largest PID Linux can hand out (`PID_MAX_LIMIT` on 64-bit). */
const PID_MAX_LIMIT = 4_194_304;

/** `"NAME=value"` as it appears in messages, with the value quoted so that blanks and empties show. */
function shown(name: string, value: string): string {
  return `$${name}=${JSON.stringify(value)}`;
}

/** The raw value, or `undefined` when the variable is not set. An empty value counts as set. */
export function rawVariable(name: string, env: Environment = process.env): string | undefined {
  return env[name];
}

/**
 * A PID variable: `undefined` when unset; otherwise a decimal integer from 1 to 4194304.
 * An empty value is an error, not "unset": systemd never writes an empty PID (its `parse_pid("")`
 * fails too), so an empty one comes from an override such as `Environment=MAINPID=` and is reported.
 */
export function pidVariable(name: string, env: Environment = process.env): number | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (value === '') throw errnoError('EINVAL', `${shown(name, value)} is set but empty; expected a PID (unset the variable instead)`, { variable: name, value });
  if (!/^[1-9]\d{0,6}$/.test(value) || Number(value) > PID_MAX_LIMIT) {
    throw errnoError('EINVAL', `${shown(name, value)} is not a PID (expected a decimal integer from 1 to ${PID_MAX_LIMIT})`, { variable: name, value });
  }
  return Number(value);
}

/** A pidfd id variable (`$MAINPIDFDID`, …): `undefined` when unset; otherwise a positive decimal u64. */
export function pidfdIdVariable(name: string, env: Environment = process.env): bigint | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (value === '') throw errnoError('EINVAL', `${shown(name, value)} is set but empty; expected a pidfd id (an id that cannot be computed is left unset, never empty)`, { variable: name, value });
  if (/^[1-9]\d{0,19}$/.test(value)) {
    const id = BigInt(value);
    if (id < 1n << 64n) return id;
  }
  throw errnoError('EINVAL', `${shown(name, value)} is not a pidfd id (expected a positive decimal 64-bit integer)`, { variable: name, value });
}

/** A non-negative decimal integer variable such as `$LISTEN_FDS`: `undefined` when unset. */
export function countVariable(name: string, env: Environment = process.env): number | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (!/^(0|[1-9]\d{0,8})$/.test(value)) {
    throw errnoError('EINVAL', `${shown(name, value)} is not a count (expected a decimal integer)`, { variable: name, value });
  }
  return Number(value);
}

/** A microsecond duration variable such as `$WATCHDOG_USEC`: `undefined` when unset; must be positive. */
export function usecVariable(name: string, env: Environment = process.env): bigint | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (/^[1-9]\d{0,19}$/.test(value)) {
    const usec = BigInt(value);
    // systemd's USEC_INFINITY (2^64-1) means "no timeout"; treat it like any other large value.
    if (usec < 1n << 64n) return usec;
  }
  throw errnoError('EINVAL', `${shown(name, value)} is not a duration in microseconds (expected a positive decimal integer)`, { variable: name, value });
}
