/**
 * Turning a `PID` + `PIDFDID` pair of variables into a handle, the way every consumer of the protocol
 * must: open the PID first, then compare the id of what was opened, so that the check is race-free.
 */
import { errnoError, hasCode } from '../pidfd/errors.js';
import { Pidfd } from '../pidfd/pidfd.js';
import { pidfdIdVariable, pidVariable, type Environment } from './env.js';

/** Options shared by {@link managerProcess} and {@link mainProcess}. */
export interface ProcessFromEnvironmentOptions {
  /** Read the variables from here instead of `process.env`. */
  env?: Environment;
  /**
   * Refuse (`EINVAL`) when the PID variable comes without its pidfd id variable, instead of
   * returning an unverified handle. Default false: systemd accepts a PID without an id as is.
   */
  requireId?: boolean;
}

/**
 * The process named by `$<pidName>` and checked against `$<idName>`:
 * - both unset: `null`;
 * - the id set without the PID, either of them empty or malformed: `EINVAL` naming the variable;
 * - no process has the PID: `ESRCH`; another process has it now (the PID was recycled): `ESTALE`;
 * - the PID without an id, or a kernel that gives no ids: a handle with `verified: false`.
 */
export function processFromEnvironment(pidName: string, idName: string, options: ProcessFromEnvironmentOptions = {}): Pidfd | null {
  const env = options.env ?? process.env;
  const pid = pidVariable(pidName, env);
  const id = pidfdIdVariable(idName, env);
  if (pid === undefined) {
    if (id !== undefined) {
      throw errnoError('EINVAL', `$${idName}=${id} is set but $${pidName} is not: the environment names no process`, { variable: pidName });
    }
    return null;
  }
  if (id === undefined) {
    if (options.requireId === true) {
      throw errnoError('EINVAL', `$${pidName}=${pid} comes without $${idName}, so it cannot be verified`, { variable: idName });
    }
    return withContext(() => Pidfd.open(pid), pidName, idName, pid, id);
  }
  return withContext(() => Pidfd.verify(pid, id), pidName, idName, pid, id);
}

function withContext(open: () => Pidfd, pidName: string, idName: string, pid: number, id: bigint | undefined): Pidfd {
  try {
    return open();
  } catch (error) {
    const where = `$${pidName}=${pid}${id === undefined ? '' : ` $${idName}=${id}`}`;
    if (hasCode(error, 'ESTALE')) {
      throw errnoError('ESTALE', `${where}: the PID now belongs to a different process (it was recycled); refusing it`, {
        pid,
        expectedId: id,
        actualId: (error as { actualId?: bigint }).actualId,
        cause: error,
      });
    }
    if (hasCode(error, 'ESRCH')) throw errnoError('ESRCH', `${where}: no such process (it has exited)`, { pid, cause: error });
    throw error;
  }
}
