/**
 * Parsers for the scalar value types of unit files: time spans (systemd.time(7)), booleans, integers,
 * signals, exit statuses, sizes, percentages, modes, resource limits and paths. Each returns a
 * {@link ValueResult} and never throws.
 */

import { lookupSignalName, SIGRTMAX } from '../pidfd/signals.js';
import { WHITESPACE } from './words.js';

/** A parsed value, or a short reason it was refused (used after "Invalid X=…: "). */
export type ValueResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const ok = <T>(value: T): ValueResult<T> => ({ ok: true, value });
const fail = <T = never>(error: string): ValueResult<T> => ({ ok: false, error });

const U64_MAX = (1n << 64n) - 1n;

// ---------------------------------------------------------------------------------------------
// Time spans

const USEC_PER_SEC = 1_000_000n;
const USEC_PER_MINUTE = 60n * USEC_PER_SEC;
const USEC_PER_HOUR = 60n * USEC_PER_MINUTE;
const USEC_PER_DAY = 24n * USEC_PER_HOUR;
const USEC_PER_WEEK = 7n * USEC_PER_DAY;
const USEC_PER_MONTH = 2_629_800n * USEC_PER_SEC;
const USEC_PER_YEAR = 31_557_600n * USEC_PER_SEC;

// Order matters: the first suffix the text starts with wins, so longer spellings come first.
const TIME_UNITS: ReadonlyArray<readonly [string, bigint]> = [
  ['seconds', USEC_PER_SEC], ['second', USEC_PER_SEC], ['sec', USEC_PER_SEC], ['s', USEC_PER_SEC],
  ['minutes', USEC_PER_MINUTE], ['minute', USEC_PER_MINUTE], ['min', USEC_PER_MINUTE],
  ['months', USEC_PER_MONTH], ['month', USEC_PER_MONTH], ['M', USEC_PER_MONTH],
  ['msec', 1000n], ['ms', 1000n], ['m', USEC_PER_MINUTE],
  ['hours', USEC_PER_HOUR], ['hour', USEC_PER_HOUR], ['hr', USEC_PER_HOUR], ['h', USEC_PER_HOUR],
  ['days', USEC_PER_DAY], ['day', USEC_PER_DAY], ['d', USEC_PER_DAY],
  ['weeks', USEC_PER_WEEK], ['week', USEC_PER_WEEK], ['w', USEC_PER_WEEK],
  ['years', USEC_PER_YEAR], ['year', USEC_PER_YEAR], ['y', USEC_PER_YEAR],
  ['usec', 1n], ['us', 1n], ['\u03bcs', 1n], ['\u00b5s', 1n],
];

const isWs = (c: string | undefined) => c !== undefined && WHITESPACE.includes(c);
const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

/**
 * Parses a time span into microseconds (`'infinity'` for infinity), following systemd's
 * `parse_time()`: a sum of numbers each with an optional unit, e.g. `1min 30s`, `2h`, `1.5s`,
 * `300ms20s`. A number without a unit is in `defaultUnitUsec` (seconds unless said otherwise).
 */
export function parseTimeSpanUsec(text: string, defaultUnitUsec: bigint = USEC_PER_SEC): ValueResult<bigint | 'infinity'> {
  let p = 0;
  while (isWs(text[p])) p++;
  if (text.startsWith('infinity', p)) {
    for (let i = p + 8; i < text.length; i++) if (!isWs(text[i])) return fail('not a time span');
    return ok('infinity');
  }
  let usec = 0n;
  let something = false;
  for (;;) {
    while (isWs(text[p])) p++;
    if (p >= text.length) {
      if (!something) return fail('empty time span');
      break;
    }
    if (text[p] === '-') return fail('time spans cannot be negative');
    // strtoll(): an optional '+', then decimal digits.
    let e = p;
    if (text[e] === '+' && isDigit(text[e + 1])) e++;
    const digitsStart = e;
    while (isDigit(text[e])) e++;
    const intDigits = text.slice(digitsStart, e).replace(/^0+(?=.)/, '');
    if (intDigits.length > 20) return fail('time span too large');
    const l = e > digitsStart ? BigInt(intDigits) : 0n;
    if (e === digitsStart) e = p;
    const hasFraction = text[e] === '.';
    if (hasFraction) {
      p = e + 1;
      while (isDigit(text[p])) p++;
    } else if (e === p) return fail(`'${text.trim()}' is not a time span`);
    else p = e;

    let q = p;
    while (isWs(text[q])) q++;
    let multiplier = defaultUnitUsec;
    let s = q;
    for (const [suffix, usecs] of TIME_UNITS) {
      if (text.startsWith(suffix, q)) {
        multiplier = usecs;
        s = q + suffix.length;
        break;
      }
    }
    if (s === p && p < text.length) return fail(`'${text.trim()}' has an unknown time unit`);
    p = s;

    if (l >= U64_MAX / multiplier) return fail('time span too large');
    const k = l * multiplier;
    if (k >= U64_MAX - usec) return fail('time span too large');
    usec += k;
    something = true;

    if (hasFraction) {
      let m = multiplier / 10n;
      let b = e + 1;
      for (; isDigit(text[b]); b++, m /= 10n) {
        if (m === 0n) continue;
        const add = BigInt(text.charCodeAt(b) - 48) * m;
        if (add >= U64_MAX - usec) return fail('time span too large');
        usec += add;
      }
      if (b === e + 1) return fail(`'${text.trim()}' is not a time span`);
    }
  }
  return ok(usec);
}

/**
 * Parses a time span into milliseconds (possibly fractional) or `Infinity`: the representation the
 * model uses everywhere.
 */
export function parseTimeSpan(text: string, defaultUnitUsec: bigint = USEC_PER_SEC): ValueResult<number> {
  const r = parseTimeSpanUsec(text, defaultUnitUsec);
  if (!r.ok) return r;
  return ok(r.value === 'infinity' ? Infinity : Number(r.value) / 1000);
}

/** Formats milliseconds the way systemd prints spans (`1min 30s`, `100ms`, `infinity`). */
export function formatTimeSpan(ms: number): string {
  if (ms === Infinity) return 'infinity';
  let usec = BigInt(Math.round(ms * 1000));
  if (usec === 0n) return '0';
  const units: ReadonlyArray<readonly [string, bigint]> = [
    ['y', USEC_PER_YEAR], ['month', USEC_PER_MONTH], ['w', USEC_PER_WEEK], ['d', USEC_PER_DAY], ['h', USEC_PER_HOUR],
    ['min', USEC_PER_MINUTE], ['s', USEC_PER_SEC], ['ms', 1000n], ['us', 1n],
  ];
  const parts: string[] = [];
  for (const [name, size] of units) {
    if (usec >= size) {
      parts.push(`${usec / size}${name}`);
      usec %= size;
    }
  }
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Booleans and integers

/** systemd booleans: 1/yes/y/true/t/on and 0/no/n/false/f/off, any case. */
export function parseBoolean(text: string): ValueResult<boolean> {
  const v = text.toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(v)) return ok(true);
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(v)) return ok(false);
  return fail(`'${text}' is not a boolean`);
}

/**
 * An unsigned integer as systemd's `safe_atou*()` reads it: leading whitespace and `+` allowed, `0x`
 * hex, `0b` binary, `0o` and C-style leading-zero octal. `max` bounds the value.
 */
export function parseUnsigned(text: string, max: bigint = 0xffffffffn): ValueResult<number> {
  let s = text.replace(/^[ \t\n\r]+/, '');
  if (s.startsWith('-')) return /^-\d+$/.test(s) && BigInt(s) === 0n ? ok(0) : fail(`'${text}' is negative`);
  if (s.startsWith('+')) s = s.slice(1);
  let base = 10;
  let digits = s;
  if (/^0[bB]/.test(s)) {
    base = 2;
    digits = s.slice(2);
  } else if (/^0[oO]/.test(s)) {
    base = 8;
    digits = s.slice(2);
  } else if (/^0[xX]/.test(s)) {
    base = 16;
    digits = s.slice(2);
  } else if (/^0[0-9]/.test(s)) {
    base = 8;
    digits = s.slice(1);
  }
  const valid = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[base as 2 | 8 | 10 | 16];
  if (!valid.test(digits)) return fail(`'${text}' is not an unsigned integer`);
  digits = digits.replace(/^0+(?=.)/, '');
  // No 64-bit value needs more than 64 digits in any base; refusing early keeps huge inputs cheap.
  if (digits.length > 64) return fail(`'${text.slice(0, 40)}…' is out of range`);
  let v = 0n;
  for (const d of digits) v = v * BigInt(base) + BigInt(parseInt(d, 16));
  if (v > max) return fail(`'${text}' is out of range`);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`'${text}' is too large`);
  return ok(Number(v));
}

/** A signed integer in [min, max], decimal only. */
export function parseInteger(text: string, min: number, max: number): ValueResult<number> {
  if (!/^[+-]?\d+$/.test(text)) return fail(`'${text}' is not an integer`);
  const v = Number(text);
  if (!Number.isSafeInteger(v) || v < min || v > max) return fail(`'${text}' is out of range ${min}…${max}`);
  return ok(v);
}

/** File mode bits in octal, at most 07777 (`UMask=`). */
export function parseMode(text: string): ValueResult<number> {
  if (!/^[0-7]+$/.test(text)) return fail(`'${text}' is not an octal mode`);
  const v = parseInt(text, 8);
  return v > 0o7777 ? fail(`'${text}' is larger than 07777`) : ok(v);
}

// ---------------------------------------------------------------------------------------------
// Signals

export { SIGNALS, SIGRTMAX, SIGRTMIN, signalName } from '../pidfd/signals.js';

/** `SIGTERM`, `TERM`, `SIGIOT`, `15`, `RTMIN+3`, `SIGRTMAX-1` -> a signal number (names from the one table in pidfd/signals). */
export function parseSignal(text: string): ValueResult<number> {
  if (/^[+-]?\d+$/.test(text)) {
    const n = Number(text);
    return n >= 1 && n <= SIGRTMAX ? ok(n) : fail(`signal number ${text} is out of range`);
  }
  const found = lookupSignalName(text);
  if ('signal' in found) return ok(found.signal);
  return found.refused === 'out-of-range' ? fail(`signal '${text}' is out of range`) : fail(`'${text}' is not a signal`);
}

// ---------------------------------------------------------------------------------------------
// Exit statuses

/** Names `SuccessExitStatus=` and friends accept, without the `EXIT_`/`EX_` prefix (exit-status.c). */
export const EXIT_STATUS_NAMES: Readonly<Record<string, number>> = {
  SUCCESS: 0, FAILURE: 1,
  INVALIDARGUMENT: 2, NOTIMPLEMENTED: 3, NOPERMISSION: 4, NOTINSTALLED: 5, NOTCONFIGURED: 6, NOTRUNNING: 7,
  USAGE: 64, DATAERR: 65, NOINPUT: 66, NOUSER: 67, NOHOST: 68, UNAVAILABLE: 69, SOFTWARE: 70, OSERR: 71,
  OSFILE: 72, CANTCREAT: 73, IOERR: 74, TEMPFAIL: 75, PROTOCOL: 76, NOPERM: 77, CONFIG: 78,
  CHDIR: 200, NICE: 201, FDS: 202, EXEC: 203, MEMORY: 204, LIMITS: 205, OOM_ADJUST: 206, SIGNAL_MASK: 207,
  STDIN: 208, STDOUT: 209, CHROOT: 210, IOPRIO: 211, TIMERSLACK: 212, SECUREBITS: 213, SETSCHEDULER: 214,
  CPUAFFINITY: 215, GROUP: 216, USER: 217, CAPABILITIES: 218, CGROUP: 219, SETSID: 220, CONFIRM: 221,
  STDERR: 222, PAM: 224, NETWORK: 225, NAMESPACE: 226, NO_NEW_PRIVILEGES: 227, SECCOMP: 228,
  SELINUX_CONTEXT: 229, PERSONALITY: 230, APPARMOR: 231, ADDRESS_FAMILIES: 232, RUNTIME_DIRECTORY: 233,
  CHOWN: 235, SMACK_PROCESS_LABEL: 236, KEYRING: 237, STATE_DIRECTORY: 238, CACHE_DIRECTORY: 239,
  LOGS_DIRECTORY: 240, CONFIGURATION_DIRECTORY: 241, NUMA_POLICY: 242, CREDENTIALS: 243, BPF: 244, KSM: 245,
  EXCEPTION: 255,
};

/** An exit status: 0…255 or one of {@link EXIT_STATUS_NAMES} (case-sensitive, as in systemd). */
export function parseExitStatus(text: string): ValueResult<number> {
  if (Object.hasOwn(EXIT_STATUS_NAMES, text)) return ok(EXIT_STATUS_NAMES[text]!);
  const r = parseUnsigned(text, 255n);
  return r.ok ? r : fail(`'${text}' is not an exit status`);
}

// ---------------------------------------------------------------------------------------------
// Sizes and percentages

const IEC: ReadonlyArray<readonly [string, bigint]> = [
  ['E', 1n << 60n], ['P', 1n << 50n], ['T', 1n << 40n], ['G', 1n << 30n], ['M', 1n << 20n], ['K', 1n << 10n], ['B', 1n], ['', 1n],
];
const SI: ReadonlyArray<readonly [string, bigint]> = [
  ['E', 10n ** 18n], ['P', 10n ** 15n], ['T', 10n ** 12n], ['G', 10n ** 9n], ['M', 10n ** 6n], ['K', 1000n], ['B', 1n], ['', 1n],
];

/**
 * A size in bytes with optional K, M, G, T, P, E suffixes (base 1024 by default, 1000 for SI) and
 * decimals (`1.5G`); several parts add up (`1G 512M`), each with a smaller suffix than the previous.
 */
export function parseSizeBig(text: string, base: 1024 | 1000 = 1024): ValueResult<bigint> {
  const table = base === 1024 ? IEC : SI;
  let p = 0;
  let total = 0n;
  let start = 0;
  do {
    while (isWs(text[p])) p++;
    if (text[p] === '-') return fail('sizes cannot be negative');
    let e = p;
    if (text[e] === '+' && isDigit(text[e + 1])) e++;
    const ds = e;
    while (isDigit(text[e])) e++;
    if (e === ds) return fail(`'${text}' is not a size`);
    const wholeDigits = text.slice(ds, e).replace(/^0+(?=.)/, '');
    if (wholeDigits.length > 20) return fail('size too large');
    const whole = BigInt(wholeDigits);
    let fracDigits = '';
    if (text[e] === '.') {
      e++;
      const fs = e;
      while (isDigit(text[e])) e++;
      fracDigits = text.slice(fs, Math.min(e, fs + 20)); // beyond 20 digits nothing changes a 64-bit result
    }
    while (isWs(text[e])) e++;
    let i = start;
    for (; i < table.length; i++) if (text.startsWith(table[i]![0], e)) break;
    if (i >= table.length) return fail(`'${text}' has an unknown size suffix`);
    const [suffix, factor] = table[i]!;
    let part = whole * factor;
    if (fracDigits !== '') part += (BigInt(fracDigits) * factor) / 10n ** BigInt(fracDigits.length);
    total += part;
    if (total > U64_MAX) return fail('size too large');
    p = e + suffix.length;
    start = i + 1;
  } while (p < text.length);
  return ok(total);
}

/** {@link parseSizeBig} as a number; sizes beyond 2^53 are refused rather than rounded. */
export function parseSize(text: string, base: 1024 | 1000 = 1024): ValueResult<number> {
  const r = parseSizeBig(text, base);
  if (!r.ok) return r;
  return r.value > BigInt(Number.MAX_SAFE_INTEGER) ? fail(`'${text}' is too large`) : ok(Number(r.value));
}

/**
 * A percentage as systemd's `parse_permyriad()` reads it: `N%`, `N.N%`, `N.NN%`, `N‰`, `N.N‰`, `N‱`.
 * Returns the value in percent (e.g. `12.5`). `max` bounds it (100 unless said otherwise).
 */
export function parsePercent(text: string, max = 100): ValueResult<number> {
  let m = /^(\d+)‱$/.exec(text);
  let value: number | undefined;
  if (m) value = Number(m[1]) / 100;
  else if ((m = /^(\d+)(?:\.(\d))?‰$/.exec(text))) value = (Number(m[1]) * 10 + Number(m[2] ?? 0)) / 10 / 10;
  else if ((m = /^(\d+)(?:\.(\d{1,2}))?%$/.exec(text))) value = Number(m[1]) + Number((m[2] ?? '0').padEnd(2, '0')) / 100;
  if (value === undefined || !Number.isFinite(value)) return fail(`'${text}' is not a percentage`);
  if (value > max) return fail(`'${text}' is more than ${max}%`);
  return ok(value);
}

// ---------------------------------------------------------------------------------------------
// Resource limits

/** The `Limit*=` resources, named after their `RLIMIT_` constant. */
export const RLIMIT_NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NOFILE', 'AS', 'NPROC', 'MEMLOCK', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'] as const;
export type RlimitName = (typeof RLIMIT_NAMES)[number];

/**
 * One resource limit. `Infinity` is RLIM_INFINITY. Units are the kernel's: seconds for CPU,
 * microseconds for RTTIME, bytes for the sizes, and for NICE the raw 0…40 value (20 - nice level).
 */
export interface ResourceLimit {
  readonly soft: number;
  readonly hard: number;
}

const SIZE_LIMITS = new Set<RlimitName>(['FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'AS', 'MEMLOCK', 'MSGQUEUE']);

function parseRlimitOne(resource: RlimitName, text: string): ValueResult<number> {
  if (resource === 'CPU') {
    const r = parseTimeSpanUsec(text);
    if (!r.ok) return r;
    if (r.value === 'infinity') return ok(Infinity);
    return ok(Number((r.value + USEC_PER_SEC - 1n) / USEC_PER_SEC));
  }
  if (resource === 'RTTIME') {
    const r = parseTimeSpanUsec(text, 1n);
    if (!r.ok) return r;
    return r.value === 'infinity' ? ok(Infinity) : r.value > BigInt(Number.MAX_SAFE_INTEGER) ? fail('value too large') : ok(Number(r.value));
  }
  if (text === 'infinity') return ok(Infinity);
  if (SIZE_LIMITS.has(resource)) return parseSize(text, 1024);
  if (resource === 'NICE') {
    if (text.startsWith('+')) {
      const r = parseUnsigned(text.slice(1));
      if (!r.ok) return r;
      return r.value >= 20 ? fail(`nice level ${text} is out of range -20…19`) : ok(20 - r.value);
    }
    if (text.startsWith('-')) {
      const r = parseUnsigned(text.slice(1));
      if (!r.ok) return r;
      return r.value > 20 ? fail(`nice level ${text} is out of range -20…19`) : ok(20 + r.value);
    }
    const r = parseUnsigned(text);
    if (!r.ok) return r;
    return r.value > 40 ? fail(`raw nice limit ${text} is out of range 0…40`) : ok(r.value);
  }
  return parseUnsigned(text, U64_MAX - 1n);
}

/**
 * `Limit*=` values: `VALUE` for both limits or `SOFT:HARD`, each a number, `infinity`, a size with
 * K/M/G… (the size limits), a time span (CPU in seconds, RTTIME in microseconds by default) or a
 * nice level written `+N`/`-N` (NICE). The soft limit may not exceed the hard one.
 */
export function parseRlimit(resource: RlimitName, text: string): ValueResult<ResourceLimit> {
  const colon = text.indexOf(':');
  const softText = colon < 0 ? text : text.slice(0, colon);
  const hardText = colon < 0 ? undefined : text.slice(colon + 1);
  if (hardText !== undefined && hardText.includes(':')) return fail(`'${text}' has more than one ':'`);
  const soft = parseRlimitOne(resource, softText);
  if (!soft.ok) return soft;
  if (hardText === undefined) return ok({ soft: soft.value, hard: soft.value });
  const hard = parseRlimitOne(resource, hardText);
  if (!hard.ok) return hard;
  if (soft.value > hard.value) return fail(`soft limit ${softText} is above hard limit ${hardText}`);
  return ok({ soft: soft.value, hard: hard.value });
}

// ---------------------------------------------------------------------------------------------
// Paths

/** Longest path the kernel accepts, not counting the trailing NUL. */
const PATH_MAX = 4095;

/**
 * Checks and tidies a path as systemd's `path_simplify_and_warn()` does: it must be absolute (when
 * `absolute`), contain no `..` component and fit PATH_MAX and NAME_MAX; duplicate slashes, `.`
 * components and a trailing slash are removed.
 */
export function checkPath(text: string, absolute = true): ValueResult<string> {
  if (text === '') return fail('the path is empty');
  if (absolute && !text.startsWith('/')) return fail(`'${text}' is not an absolute path`);
  if (/[\x00]/.test(text)) return fail('the path contains a NUL byte');
  const parts = text.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) return fail(`'${text}' contains a '..' component`);
  if (parts.some((c) => Buffer.byteLength(c) > 255)) return fail(`'${text}' has a component longer than 255 bytes`);
  const simplified = (text.startsWith('/') ? '/' : '') + parts.join('/');
  if (Buffer.byteLength(simplified) > PATH_MAX) return fail('the path is too long');
  return ok(simplified === '' ? '.' : simplified);
}
