/** Talking to the daemon from the CLI: connect, call, and turn errors into one line and an exit code. */
import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { clientSocketPath, ensureOwnDirectory, UnsafeDirectoryError } from '../manager/paths.js';
import { VarlinkClient, VarlinkError } from '../api/varlink/index.js';
import { MANAGER_INTERFACE } from '../api/manager-interface.js';
import { UsageError } from './command.js';

/** `--socket` and `--json`, accepted by every client verb. */
export const clientOptions = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Connects to the daemon, runs `fn`, and closes. A daemon that is not there is one clear line. */
export async function withDaemon<T>(socketFlag: string | undefined, fn: (client: VarlinkClient) => Promise<T>): Promise<T> {
  const path = clientSocketPath(socketFlag);
  // The default path may lie in a directory another user made first (/tmp without
  // $XDG_RUNTIME_DIR): talk only to a socket in a directory of our own. A path given explicitly is
  // the caller's choice.
  if (socketFlag === undefined && process.env['HOLDFAST_SOCKET'] === undefined) refuseForeignSocket(path);
  let client: VarlinkClient;
  try {
    client = await VarlinkClient.connect(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ECONNREFUSED' ? 'is the daemon running? start it with `holdfast daemon`' : String((error as Error).message);
    throw new UsageError(`cannot reach the holdfast daemon at ${path}: ${why}`, 1);
  }
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Refuses a socket that someone other than this user or root could have put in place. */
function refuseForeignSocket(path: string): void {
  const uid = process.getuid?.() ?? 0;
  try {
    if (!ensureOwnDirectory(dirname(path), { create: false })) return;
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st !== undefined && st.uid !== uid && st.uid !== 0) {
      throw new UnsafeDirectoryError(path, st.uid, st.mode, `the control socket must belong to uid ${uid} or root`);
    }
  } catch (error) {
    if (!(error instanceof UnsafeDirectoryError)) throw error;
    throw new UsageError(`will not talk to the daemon at ${path}: ${error.message}`, 1);
  }
}

/** The method name of holdfast's interface. */
export function method(name: string): string {
  return `${MANAGER_INTERFACE}.${name}`;
}

/** One line and an exit code (systemctl's where it has one) for an error reply. */
export function explain(error: unknown, unitExitCode = 5): never {
  if (error instanceof VarlinkError) {
    const p = error.parameters as Record<string, unknown>;
    switch (error.name) {
      case method('NoSuchUnit'):
        throw new UsageError(`unit ${String(p['name'])} not found`, unitExitCode);
      case method('UnitLoadFailed'):
        throw new UsageError(`unit ${String(p['name'])} failed to load: ${(p['errors'] as string[]).join('; ')}`, 1);
      case method('UnitExists'):
        throw new UsageError(`unit ${String(p['name'])} already exists`, 1);
      case method('InvalidUnit'):
        throw new UsageError(`invalid unit: ${(p['errors'] as string[]).join('; ')}`, 1);
      case method('InvalidSignal'):
        throw new UsageError(`unknown signal: ${String(p['signal'])}`, 2);
      case method('NotSupported'):
        throw new UsageError(String(p['reason']), 1);
      case method('NoSuchProcess'):
        throw new UsageError(`no such process: ${String(p['pid'])}`, 1);
      case method('ProcessRefused'):
        throw new UsageError(`process ${String(p['pid'])} refused: ${String(p['reason'])}`, 1);
      case method('ProcessNotInUnit'):
        throw new UsageError(`process ${String(p['pid'])} belongs to no unit`, 1);
      default:
        throw new UsageError(`${error.name}${Object.keys(p).length > 0 ? ` ${JSON.stringify(p)}` : ''}`, 1);
    }
  }
  throw error;
}

/** Adds `.service` to a bare name. */
export function unitName(name: string): string {
  return name.includes('.') ? name : `${name}.service`;
}
