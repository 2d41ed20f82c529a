/**
 * Turns an `Exec*=` command and a resolved context into a running process with a pidfd from birth
 * (clone3 with CLONE_PIDFD, in the addon). The daemon owns the reaping of everything it spawns.
 */
import { native, type RawSpawnOptions } from '../native.js';
import { errnoError, Pidfd } from '../pidfd/index.js';
import { buildExecInvocation, findExecutable, type ExecCommand } from '../unit/index.js';

/** Everything one spawn needs, already decided by the service. */
export interface SpawnRequest {
  command: ExecCommand;
  /** The final environment, before `$VAR` expansion of the command line. */
  env: Readonly<Record<string, string>>;
  cwd?: string;
  cwdOptional?: boolean;
  uid?: number;
  gid?: number;
  groups?: number[];
  umask?: number;
  /** The user's login shell, for `|` commands. */
  shell?: string;
  /** Child fds 0, 1, 2 (and 3… for socket activation); null leaves one closed. */
  fds: (number | null)[];
  rlimits?: RawSpawnOptions['rlimits'];
  /** Put WATCHDOG_PID= (the child's own PID) in its environment. */
  watchdogEnv?: boolean;
  /** Put LISTEN_PID= / LISTEN_PIDFDID= (the child's own) in its environment. */
  listenEnv?: boolean;
  /** Start the child in this cgroup (an fd of its directory). */
  cgroupFd?: number;
}

/** A spawned process. */
export interface Spawned {
  handle: Pidfd;
  argv: string[];
  /** Names the command line referred to that were not set (logged by the caller). */
  unsetVariables: string[];
}

/** systemd's exit codes for a failure before exec, so `status` reads the same as under systemd. */
const STEP_EXIT_CODES: Record<string, number> = {
  chdir: 200,
  sigprocmask: 207,
  dup2: 208,
  setrlimit: 205,
  setgroups: 216,
  setresgid: 216,
  setresuid: 217,
  execve: 203,
  setsid: 220,
  'pidfd_open(self)': 203,
};

/** A spawn that failed before exec: `exitCode` is systemd's number for the step (203 = EXEC). */
export interface SpawnError extends NodeJS.ErrnoException {
  exitCode: number;
}

/** Spawns the command; throws a {@link SpawnError} when the child could not exec. */
export function spawnCommand(request: SpawnRequest): Spawned {
  const invocation = buildExecInvocation(request.command, request.env, request.shell === undefined ? {} : { shell: request.shell });
  const file = invocation.file.startsWith('/') ? invocation.file : findExecutable(invocation.file);
  if (file === undefined) {
    throw Object.assign(errnoError('ENOENT', `${invocation.file}: command not found in the search path`, { syscall: 'execve' }), { exitCode: 203 });
  }
  const env = Object.entries(request.env).map(([key, value]) => `${key}=${value}`);
  const options: RawSpawnOptions = {
    file,
    argv: invocation.argv,
    env,
    fds: request.fds,
    session: 'setsid',
    ...(request.cwd === undefined ? {} : { cwd: request.cwd, cwdOptional: request.cwdOptional === true }),
    ...(request.uid === undefined ? {} : { uid: request.uid }),
    ...(request.gid === undefined ? {} : { gid: request.gid }),
    ...(request.groups === undefined ? {} : { groups: request.groups }),
    ...(request.umask === undefined ? {} : { umask: request.umask }),
    ...(request.rlimits === undefined ? {} : { rlimits: request.rlimits }),
    watchdogEnv: request.watchdogEnv === true,
    listenEnv: request.listenEnv === true,
    ...(request.cgroupFd === undefined ? {} : { cgroupFd: request.cgroupFd }),
  };
  let raw: { pid: number; pidfd: number };
  try {
    raw = native.spawn(options);
  } catch (error) {
    const e = error as SpawnError;
    e.exitCode = STEP_EXIT_CODES[e.syscall ?? ''] ?? 203;
    e.message = `${file}: ${e.message}`;
    throw e;
  }
  return { handle: Pidfd.adopt(raw.pidfd, { pid: raw.pid }), argv: invocation.argv, unsetVariables: invocation.unset };
}
