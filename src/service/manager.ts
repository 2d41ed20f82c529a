/** Who runs this process: the service manager named by `$MANAGERPID` + `$MANAGERPIDFDID`. */
import type { Pidfd } from '../pidfd/pidfd.js';
import { processFromEnvironment, type ProcessFromEnvironmentOptions } from './verified-process.js';

/**
 * The service manager that started this process, as a handle checked against `$MANAGERPIDFDID`,
 * or `null` when `$MANAGERPID` is unset (not run by a manager that says so: systemd sets it only
 * for `--user` managers and not for `PrivatePIDs=` services; holdfast sets it for every process).
 *
 * Throws `ESTALE` when the PID was recycled, `ESRCH` when the manager is gone, `EINVAL` for an
 * empty or malformed variable (or `$MANAGERPIDFDID` without `$MANAGERPID`). Without
 * `$MANAGERPIDFDID`, or on a kernel without pidfd ids, the handle has `verified: false`.
 * The caller owns the handle: close it (or use `using`).
 */
export function managerProcess(options: ProcessFromEnvironmentOptions = {}): Pidfd | null {
  return processFromEnvironment('MANAGERPID', 'MANAGERPIDFDID', options);
}

/**
 * Whether this process's parent is the service manager itself (not a shell or wrapper in between):
 * `process.ppid` equals the manager opened and verified by {@link managerProcess}. The parent is
 * read after the manager was opened, so a manager that died in between cannot be mistaken for
 * whoever took over its PID (we would have been re-parented first).
 * False when there is no manager; errors of {@link managerProcess} are thrown.
 */
export function isDirectChildOfManager(options: ProcessFromEnvironmentOptions = {}): boolean {
  const manager = managerProcess(options);
  if (manager === null) return false;
  try {
    return process.ppid === manager.pid;
  } finally {
    manager.close();
  }
}
