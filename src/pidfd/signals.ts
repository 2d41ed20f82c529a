import { constants } from 'node:os';

const byName = constants.signals as Record<string, number>;
const byNumber = new Map<number, string>();
for (const [name, number] of Object.entries(byName)) {
  // Aliases (SIGIOT = SIGABRT, SIGPOLL = SIGIO) must not shadow the usual name.
  if (!byNumber.has(number) || name === 'SIGABRT' || name === 'SIGIO') byNumber.set(number, name);
}

/** A signal given by name (`SIGTERM`, `TERM`, `term`) or number, as a number; throws `EINVAL` on anything else. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 0 && signal <= 64) return signal;
  } else {
    const trimmed = signal.trim();
    if (/^\d+$/.test(trimmed)) return signalNumber(Number(trimmed));
    const upper = trimmed.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    const number = byName[name];
    if (number !== undefined) return number;
    const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
    if (rt !== null) {
      const offset = Number(rt[1] ?? 0);
      const value = name.startsWith('SIGRTMIN') ? 34 + offset : 64 - offset;
      if (value >= 34 && value <= 64) return value;
    }
  }
  const error = new Error(`unknown signal: ${String(signal)}`) as NodeJS.ErrnoException;
  error.code = 'EINVAL';
  throw error;
}

/** The usual name of a signal number (`SIGTERM`), or `SIGRTMIN+n` / the number as text. */
export function signalName(number: number): string {
  const name = byNumber.get(number);
  if (name !== undefined) return name;
  if (number >= 34 && number <= 64) return `SIGRTMIN+${number - 34}`;
  return String(number);
}
