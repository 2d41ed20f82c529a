/** The service's main process, as handed to `ExecStartPost=`/`ExecReload=`/`ExecStop=` commands. */
import type { Pidfd } from '../pidfd/pidfd.js';
import { processFromEnvironment, type ProcessFromEnvironmentOptions } from './verified-process.js';

/**
 * The service's main process from `$MAINPID`, checked against `$MAINPIDFDID`, or `null` when
 * `$MAINPID` is unset (the manager sets it for ExecStartPost=, ExecReload=, ExecStop= and, while a
 * main process exists, ExecStopPost= — never for the main process itself).
 *
 * - The PID now belongs to another process (recycled): throws `ESTALE`; gone: `ESRCH`.
 * - Empty `MAINPID=` is an error (`EINVAL`), not "unset": neither systemd nor holdfast ever writes
 *   an empty value, so it comes from an override such as `Environment=MAINPID=`; unset it instead.
 * - Malformed values, or `$MAINPIDFDID` without `$MAINPID`: `EINVAL` naming the variable and value.
 * - `$MAINPID` without `$MAINPIDFDID` (a manager or kernel without pidfd ids): a handle with
 *   `verified: false`, as systemd accepts such a PID; pass `requireId: true` to refuse it instead.
 *
 * ```ts
 * using main = mainProcess();
 * main?.signal('SIGHUP');   // reaches the main process or nobody, never a recycled PID
 * ```
 * The caller owns the handle: close it (or use `using`).
 */
export function mainProcess(options: ProcessFromEnvironmentOptions = {}): Pidfd | null {
  return processFromEnvironment('MAINPID', 'MAINPIDFDID', options);
}
