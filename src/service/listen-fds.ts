/** Socket activation: the fds a manager passes with `$LISTEN_FDS` (from fd 3 on), and serving on them. */
import { fstatSync } from 'node:fs';
import type { Server } from 'node:net';
import { native } from '../native.js';
import { errnoError } from '../pidfd/errors.js';
import { countVariable, pidfdIdVariable, pidVariable, type Environment } from './env.js';
import { ownPidfdId } from './self.js';

/** `SD_LISTEN_FDS_START`: passed fds always begin here. */
export const LISTEN_FDS_START = 3;

/** One inherited fd. */
export interface ListenFd {
  /** The file descriptor number (3, 4, …). */
  readonly fd: number;
  /** Its name from `$LISTEN_FDNAMES` (`FileDescriptorName=`, the socket unit's name, or `unknown`). */
  readonly name: string;
  /** Its position: 0 for fd 3. */
  readonly index: number;
}

/** Options of {@link listenFds}. */
export interface ListenFdsOptions {
  /**
   * Delete `LISTEN_PID`, `LISTEN_PIDFDID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from `process.env`
   * (whatever the outcome), so child processes do not see variables meant for this one.
   */
  unsetEnvironment?: boolean;
  /** Read the variables from here instead of `process.env`. */
  env?: Environment;
}

/** What {@link inspectListenFds} found: the fds, or why there are none for this process. */
export interface ListenFdsResult {
  readonly fds: readonly ListenFd[];
  /** Set when the variables are absent or meant for another process. */
  readonly ignored?: string;
}

const VARIABLES = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

let lastFound: readonly ListenFd[] | undefined;

/**
 * Like {@link listenFds}, but says why nothing was found: no `$LISTEN_PID`, a `$LISTEN_PID` of
 * another process, or a `$LISTEN_PIDFDID` that is not this process's own pidfd id (the PID matched
 * by chance: the variables were inherited by a process that got the same PID in another namespace,
 * or were copied around).
 */
export function inspectListenFds(options: ListenFdsOptions = {}): ListenFdsResult {
  const env = options.env ?? process.env;
  try {
    const pid = pidVariable('LISTEN_PID', env);
    if (pid === undefined) return { fds: [], ignored: '$LISTEN_PID is not set' };
    if (pid !== process.pid) return { fds: [], ignored: `$LISTEN_PID=${pid} is another process (this is ${process.pid})` };
    const id = pidfdIdVariable('LISTEN_PIDFDID', env);
    if (id !== undefined) {
      const own = ownPidfdId();
      // As sd_listen_fds(): where this process cannot compute its own id, the check is skipped.
      if (own !== undefined && own !== id) {
        return { fds: [], ignored: `$LISTEN_PIDFDID=${id} is another process (this process's pidfd id is ${own})` };
      }
    }
    const count = countVariable('LISTEN_FDS', env);
    if (count === undefined) return { fds: [], ignored: '$LISTEN_FDS is not set' };
    if (count <= 0) throw errnoError('EINVAL', `$LISTEN_FDS=${JSON.stringify(env['LISTEN_FDS'])} must be at least 1`, { variable: 'LISTEN_FDS' });
    const namesText = env['LISTEN_FDNAMES'];
    const names = namesText === undefined ? Array.from({ length: count }, () => 'unknown') : namesText.split(':');
    if (names.length !== count) {
      throw errnoError('EINVAL', `$LISTEN_FDNAMES=${JSON.stringify(namesText)} names ${names.length} fds but $LISTEN_FDS=${count}`, { variable: 'LISTEN_FDNAMES' });
    }
    const fds: ListenFd[] = [];
    for (let index = 0; index < count; index++) {
      const fd = LISTEN_FDS_START + index;
      try {
        // As sd_listen_fds(): the passed fds must not leak into programs we start. (Node 20 already
        // marks inherited fds close-on-exec at start-up; this keeps the guarantee explicit.)
        native.setCloexec(fd, true);
      } catch (error) {
        throw errnoError((error as NodeJS.ErrnoException).code ?? 'EBADF', `$LISTEN_FDS=${count} but fd ${fd} is not open`, { cause: error });
      }
      fds.push(Object.freeze({ fd, name: names[index]!, index }));
    }
    lastFound = Object.freeze(fds);
    return { fds: lastFound };
  } finally {
    if (options.unsetEnvironment === true) for (const name of VARIABLES) delete process.env[name];
  }
}

/**
 * The fds passed to this process by socket activation, with their names (`sd_listen_fds_with_names`):
 * fds 3, 4, … as `$LISTEN_FDS` says, accepted only when `$LISTEN_PID` is this process and, where
 * set, `$LISTEN_PIDFDID` is this process's own pidfd id; otherwise none (`[]`). Sets close-on-exec
 * on them. Malformed variables throw `EINVAL`.
 *
 * ```ts
 * const [web] = listenFds({ unsetEnvironment: true });
 * ```
 */
export function listenFds(options: ListenFdsOptions = {}): ListenFd[] {
  return [...inspectListenFds(options).fds];
}

/** Options of {@link listenOn}. */
export interface ListenOnOptions {
  /** Choose among these instead of the fds found by the last successful {@link listenFds} (or a fresh call). */
  fds?: readonly ListenFd[];
  /** `listen()` backlog; Node's default otherwise. */
  backlog?: number;
}

/**
 * Makes a `net.Server` (or `http.Server`, `https.Server`) serve on an inherited socket: by name
 * (`'web'`), by position (`0` is fd 3) or by the {@link ListenFd} itself. Resolves with that fd once
 * the server is listening; rejects with `ENOENT` when there is no such fd, `ENOTSOCK` when it is not
 * a socket, or with the server's `error`.
 */
export function listenOn(server: Server, which: string | number | ListenFd, options: ListenOnOptions = {}): Promise<ListenFd> {
  return new Promise<ListenFd>((resolve, reject) => {
    const list = options.fds ?? lastFound ?? listenFds();
    let entry: ListenFd | undefined;
    if (typeof which === 'string') entry = list.find((candidate) => candidate.name === which);
    else if (typeof which === 'number') entry = list[which];
    else entry = which;
    if (entry === undefined) {
      const have = list.length === 0 ? 'none were passed' : `have ${list.map((fd) => `${fd.index}:${fd.name} (fd ${fd.fd})`).join(', ')}`;
      return reject(errnoError('ENOENT', `listenOn: no inherited fd ${typeof which === 'string' ? `named ${JSON.stringify(which)}` : `at position ${which}`}; ${have}`));
    }
    try {
      if (!fstatSync(entry.fd).isSocket()) return reject(errnoError('ENOTSOCK', `listenOn: fd ${entry.fd} (${entry.name}) is not a socket`));
    } catch (error) {
      return reject(error);
    }
    const chosen = entry;
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(chosen);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options.backlog === undefined ? { fd: chosen.fd } : { fd: chosen.fd, backlog: options.backlog });
  });
}
