/**
 * The one signal table of holdfast: Linux signal names and numbers, for the CLI, the unit-file
 * parser and the manager alike. Written out rather than taken from `os.constants.signals`, which
 * lacks the real-time signals and differs between platforms; the numbers are those every Linux
 * architecture holdfast runs on shares (x86, ARM, RISC-V, PowerPC, s390).
 */

/** The classic signals 1–31 by name without the `SIG` prefix, as `kill -l` lists them. */
export const SIGNALS: Readonly<Record<string, number>> = Object.freeze({
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
});

/**
 * Other names of the same signals (glibc's `<signal.h>`; procps' `kill -l` prints `POLL` for 29).
 * Accepted on input, never printed: {@link signalName} always gives the name in {@link SIGNALS}.
 */
export const SIGNAL_ALIASES: Readonly<Record<string, number>> = Object.freeze({ IOT: 6, POLL: 29, CLD: 17 });

/** First real-time signal as glibc programs see it (glibc keeps 32 and 33 for its threads). */
export const SIGRTMIN = 34;
/** Last real-time signal. */
export const SIGRTMAX = 64;

const byNumber = new Map<number, string>(Object.entries(SIGNALS).map(([name, number]) => [number, `SIG${name}`]));

/**
 * What a signal name denotes: its number, or why it is none. `refused: 'out-of-range'` is a
 * well-formed real-time name past the end (`RTMIN+31`), which deserves its own message.
 */
export type SignalLookup = { readonly signal: number } | { readonly refused: 'unknown' | 'out-of-range' };

/**
 * A signal name as unit files write it: `SIGTERM` or `TERM`, an alias (`SIGIOT`), `RTMIN`,
 * `SIGRTMIN+n`, `RTMAX`, `SIGRTMAX-n`. Upper case only and no numbers, as systemd's
 * `signal_from_string` (numbers are the caller's business: their range differs by use).
 */
export function lookupSignalName(name: string): SignalLookup {
  const bare = name.startsWith('SIG') ? name.slice(3) : name;
  const classic = Object.hasOwn(SIGNALS, bare) ? SIGNALS[bare] : Object.hasOwn(SIGNAL_ALIASES, bare) ? SIGNAL_ALIASES[bare] : undefined;
  if (classic !== undefined) return { signal: classic };
  for (const [base, first, sign] of [['RTMIN', SIGRTMIN, '+'], ['RTMAX', SIGRTMAX, '-']] as const) {
    if (!bare.startsWith(base)) continue;
    const rest = bare.slice(base.length);
    if (rest === '') return { signal: first };
    if (!new RegExp(`^\\${sign}\\d+$`).test(rest)) break;
    const signal = first + Number(rest);
    return signal >= SIGRTMIN && signal <= SIGRTMAX ? { signal } : { refused: 'out-of-range' };
  }
  return { refused: 'unknown' };
}

/**
 * A signal given by name or number, as a number, for command lines and APIs: `SIGTERM`, `TERM`,
 * `term`, ` 15 `, `SIGRTMIN+2`, `SIGIOT`; numbers 0–64 (0 checks that a process exists). Throws
 * `EINVAL` on anything else.
 */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 0 && signal <= SIGRTMAX) return signal;
  } else {
    const trimmed = signal.trim();
    if (/^\d+$/.test(trimmed)) return signalNumber(Number(trimmed));
    const found = lookupSignalName(trimmed.toUpperCase());
    if ('signal' in found) return found.signal;
  }
  const error = new Error(`unknown signal: ${String(signal)}`) as NodeJS.ErrnoException;
  error.code = 'EINVAL';
  throw error;
}

/**
 * The usual name of a signal number: `SIGTERM` (never an alias), `SIGRTMIN`, `SIGRTMIN+n`; any other
 * number as text.
 */
export function signalName(number: number): string {
  const name = byNumber.get(number);
  if (name !== undefined) return name;
  if (number === SIGRTMIN) return 'SIGRTMIN';
  if (number > SIGRTMIN && number <= SIGRTMAX) return `SIGRTMIN+${number - SIGRTMIN}`;
  return String(number);
}
