import type { RawExit } from '../native.js';
import { signalName } from './signals.js';

/** How a process ended. Exactly one of `code` and `signal` is set when the kernel could tell; both are null when it could not. */
export interface ExitStatus {
  /** The exit code, when the process called exit. */
  code: number | null;
  /** The name of the signal that killed it (`SIGKILL`). */
  signal: string | null;
  /** Whether the kernel wrote a core dump. */
  coreDumped: boolean;
}

/** The status used when the kernel cannot say how a process ended (not our child, no `PIDFD_INFO_EXIT`). */
export const UNKNOWN_EXIT: Readonly<ExitStatus> = Object.freeze({ code: null, signal: null, coreDumped: false });

/** From the addon's decoded wait status to the public form. */
export function exitStatusFromRaw(raw: RawExit): ExitStatus {
  return {
    code: raw.code,
    signal: raw.signal === null ? null : signalName(raw.signal),
    coreDumped: raw.coreDumped,
  };
}

/** `exited with code 3`, `killed by SIGKILL (core dumped)`, `ended (status unknown)`. */
export function describeExit(status: ExitStatus): string {
  if (status.code !== null) return `exited with code ${status.code}`;
  if (status.signal !== null) return `killed by ${status.signal}${status.coreDumped ? ' (core dumped)' : ''}`;
  return 'ended (the kernel cannot tell how)';
}
