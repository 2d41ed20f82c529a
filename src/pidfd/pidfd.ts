import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { native, POLLHUP, POLLIN, PIDFD_SIGNAL_PROCESS_GROUP, type RawWatcher } from '../native.js';
import { errnoError, hasCode } from './errors.js';
import { exitStatusFromRaw, UNKNOWN_EXIT, type ExitStatus } from './exit-status.js';
import { features } from './features.js';
import { signalNumber } from './signals.js';

/** What `PIDFD_GET_INFO` (or /proc where the kernel lacks it) tells about a process. */
export interface PidfdInfo {
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  /** The cgroup v2 id, where the kernel reports it. */
  cgroupId?: bigint;
  /** How it ended, once it was reaped and where the kernel keeps it (6.15+). */
  exit?: ExitStatus;
}

/** Who reaps the process, which decides how its exit status is learned. */
type Reaper =
  /** Our own child from the native spawn: this handle reaps it with `waitid(P_PIDFD)`. */
  | 'handle'
  /** Anyone else (libuv for `child_process` children, or another parent): we only look. */
  | 'other';

/** Options of {@link Pidfd.adopt}. */
export interface AdoptOptions {
  /** The PID, when the caller knows it (saves a lookup). */
  pid?: number;
  /** The handle reaps the process: only for children spawned natively by this process. */
  reap?: boolean;
}

const registry = new FinalizationRegistry<number>((fd) => {
  try {
    native.close(fd);
  } catch {
    // The fd was closed behind our back: nothing left to release.
  }
});

/** Exit information of a process that is not our child appears only once its parent reaps it. */
const REAP_POLL_STEPS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1000, 1000, 1000];

/**
 * A handle bound to one process for its whole life: a Linux pidfd.
 *
 * Unlike a PID, it never follows the number to another process, so {@link Pidfd.signal} cannot
 * hit a process that took over a recycled PID. Close it with {@link Pidfd.close} (or `using`); a
 * handle that is collected without being closed is closed then.
 */
export class Pidfd implements Disposable {
  /** The PID the process had when the handle was made. */
  readonly pid: number;
  /** The pidfs inode id, unique within this boot; `undefined` where the kernel gives none (before 6.9). */
  readonly id: bigint | undefined;
  /** Whether the handle was checked against an expected id ({@link Pidfd.verify}); false where the kernel gives no ids. */
  readonly verified: boolean;

  #fd: number;
  readonly #reaper: Reaper;
  #exitStatus: ExitStatus | undefined;
  #exited: Promise<ExitStatus> | undefined;
  #watcher: RawWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #referenced = true;

  private constructor(fd: number, pid: number, reaper: Reaper, verified: boolean, id: bigint | undefined = native.pidfdId(fd)) {
    this.#fd = fd;
    this.pid = pid;
    this.#reaper = reaper;
    this.id = id;
    this.verified = verified;
    registry.register(this, fd, this);
  }

  /**
   * Opens a handle to the process that has `pid` now. Throws `ESRCH` if there is none.
   * Between learning a PID and this call the PID may have been recycled: prefer
   * {@link Pidfd.verify} with an id, or {@link Pidfd.fromChild} for a child.
   */
  static open(pid: number): Pidfd {
    return new Pidfd(openPidfd(pid), pid, 'other', false);
  }

  /** A handle to this process. */
  static self(): Pidfd {
    return Pidfd.open(process.pid);
  }

  /**
   * Opens `pid` and checks that it is the process with pidfd id `id`.
   * Throws `ESTALE` when another process now has that PID, `ESRCH` when none has it.
   * Where the kernel gives no ids the handle is returned with `verified: false`.
   */
  static verify(pid: number, id: bigint | number | string): Pidfd {
    const expected = parsePidfdId(id);
    const fd = openPidfd(pid);
    let actual: bigint | undefined;
    try {
      actual = native.pidfdId(fd);
    } catch (error) {
      native.close(fd);
      throw error;
    }
    if (actual !== undefined && actual !== expected) {
      native.close(fd);
      throw errnoError(
        'ESTALE',
        `PID ${pid} now belongs to a different process (pidfd id ${actual}, expected ${expected}): the PID was recycled`,
        { pid, expectedId: expected, actualId: actual },
      );
    }
    return new Pidfd(fd, pid, 'other', actual !== undefined, actual);
  }

  /**
   * A handle to a `child_process` child. Race-free as long as Node has not yet reaped the child,
   * which it only does after reporting its exit; throws `ESRCH` if that already happened (the PID
   * may already belong to someone else, so no handle can be trusted).
   */
  static fromChild(child: ChildProcess): Pidfd {
    const pid = child.pid;
    if (pid === undefined) throw errnoError('ESRCH', 'the child process was never started (it has no PID)');
    if (child.exitCode !== null || child.signalCode !== null) {
      throw errnoError('ESRCH', `child ${pid} has already exited and been reaped; its PID cannot be trusted any more`);
    }
    // libuv reaps only in its poll phase, never while JS runs: until the exit is reported the
    // PID still names our child (alive or zombie), so this open cannot catch a stranger.
    const handle = Pidfd.open(pid);
    return handle;
  }

  /**
   * Takes ownership of a pidfd that came from elsewhere: the native spawn, `SCM_RIGHTS`,
   * `SCM_PIDFD` or `SO_PEERPIDFD`. The PID is looked up through the fd itself.
   */
  static adopt(fd: number, options: AdoptOptions = {}): Pidfd {
    const pid = options.pid ?? pidOfPidfd(fd);
    return new Pidfd(fd, pid, options.reap === true ? 'handle' : 'other', false);
  }

  /** The file descriptor. It is borrowed: do not close it yourself, call {@link Pidfd.close}. */
  get fd(): number {
    if (this.#fd < 0) throw errnoError('EBADF', `the pidfd for PID ${this.pid} is closed`);
    return this.#fd;
  }

  /** Whether {@link Pidfd.close} was called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Sends a signal (name or number, default `SIGTERM`). It reaches this process or nobody: once
   * the process was reaped it throws `ESRCH`, never touching whoever has the PID now. A zombie
   * (exited, not yet reaped) takes the signal harmlessly.
   * With `processGroup`, the whole process group that this process leads gets it (6.9+).
   */
  signal(signal: string | number = 'SIGTERM', options: { processGroup?: boolean } = {}): void {
    const number = signalNumber(signal);
    try {
      native.pidfdSendSignal(this.fd, number, options.processGroup === true ? PIDFD_SIGNAL_PROCESS_GROUP : 0);
    } catch (error) {
      if (hasCode(error, 'ESRCH')) throw errnoError('ESRCH', `process ${this.pid} has exited; signal not sent`, { pid: this.pid });
      throw error;
    }
  }

  /** True while the process runs; false once it has exited (zombie or reaped). */
  isAlive(): boolean {
    if (this.#exitStatus !== undefined) return false;
    return (native.pollFd(this.fd, POLLIN, 0) & (POLLIN | POLLHUP)) === 0;
  }

  /**
   * Settles when the process exits, child or not, with how it ended. For a process that is not
   * our child the status comes from `PIDFD_INFO_EXIT` once its parent reaps it; where the kernel
   * cannot tell, `code` and `signal` are both null.
   * While a wait is pending the handle keeps the event loop alive unless {@link Pidfd.unref} was called.
   */
  get exited(): Promise<ExitStatus> {
    this.#exited ??= new Promise<ExitStatus>((resolve, reject) => {
      if (this.#exitStatus !== undefined) return resolve(this.#exitStatus);
      let fd: number;
      try {
        fd = this.fd;
      } catch (error) {
        return reject(error);
      }
      const onReadable = (readable: boolean, hangup: boolean, status: number): void => {
        if (!readable && !hangup && status === 0) return;
        this.#stopWatching();
        this.#settleAfterExit(resolve, 0);
      };
      try {
        this.#watcher = native.watch(fd, onReadable, false);
      } catch (error) {
        return reject(error);
      }
      if (!this.#referenced) this.#watcher.ref(false);
    });
    return this.#exited;
  }

  /**
   * How the process ended, where known: `undefined` while it runs, or where the kernel cannot
   * tell (a non-child before it is reaped, or a kernel without `PIDFD_INFO_EXIT`).
   */
  exitStatus(): ExitStatus | undefined {
    if (this.#exitStatus !== undefined || this.#fd < 0) return this.#exitStatus;
    if ((native.pollFd(this.#fd, POLLIN, 0) & (POLLIN | POLLHUP)) === 0) return undefined;
    this.#exitStatus = this.#readExit();
    return this.#exitStatus;
  }

  /** What the kernel tells about the process: pid, parent, credentials, cgroup, and its exit once reaped. */
  info(): PidfdInfo {
    if (features().getInfo) {
      let raw;
      try {
        raw = native.pidfdGetInfo(this.fd, features().infoExit);
      } catch (error) {
        if (hasCode(error, 'ESRCH')) throw errnoError('ESRCH', `process ${this.pid} has been reaped; the kernel keeps no information on it`);
        throw error;
      }
      const info: PidfdInfo = {
        pid: raw.pid ?? this.pid,
        ppid: raw.ppid ?? 0,
        uid: raw.ruid ?? -1,
        gid: raw.rgid ?? -1,
        euid: raw.euid ?? -1,
        egid: raw.egid ?? -1,
      };
      if (raw.cgroupId !== undefined) info.cgroupId = raw.cgroupId;
      if (raw.exit !== undefined) info.exit = exitStatusFromRaw(raw.exit);
      return info;
    }
    return infoFromProc(this);
  }

  /** Lets a pending {@link Pidfd.exited} keep the event loop alive (the default). */
  ref(): this {
    this.#referenced = true;
    this.#watcher?.ref(true);
    this.#timer?.ref();
    return this;
  }

  /** Lets the process exit while {@link Pidfd.exited} is pending. */
  unref(): this {
    this.#referenced = false;
    this.#watcher?.ref(false);
    this.#timer?.unref();
    return this;
  }

  /** Closes the fd. Safe to call twice. A pending {@link Pidfd.exited} stays pending forever. */
  close(): void {
    if (this.#fd < 0) return;
    this.#stopWatching();
    const fd = this.#takeFd();
    native.close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** `Pidfd(pid 1234, id 5678)`. */
  toString(): string {
    return `Pidfd(pid ${this.pid}${this.id === undefined ? '' : `, id ${this.id}`}${this.closed ? ', closed' : ''})`;
  }

  #takeFd(): number {
    const fd = this.#fd;
    this.#fd = -1;
    registry.unregister(this);
    return fd;
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #settleAfterExit(resolve: (status: ExitStatus) => void, attempt: number): void {
    if (this.#fd < 0) return;
    const status = this.#readExit();
    if (status !== undefined) {
      this.#exitStatus = status;
      return resolve(status);
    }
    // Not our child and not reaped yet: its parent will reap it soon, then the kernel has the status.
    const delay = REAP_POLL_STEPS_MS[attempt];
    if (delay === undefined) {
      this.#exitStatus = { ...UNKNOWN_EXIT };
      return resolve(this.#exitStatus);
    }
    this.#timer = setTimeout(() => this.#settleAfterExit(resolve, attempt + 1), delay);
    if (!this.#referenced) this.#timer.unref();
  }

  /** The exit status of an exited process, or undefined while it cannot be known yet. */
  #readExit(): ExitStatus | undefined {
    if (this.#reaper === 'handle') {
      const reaped = native.waitPidfd(this.#fd, 1);
      if (reaped !== null) return exitStatusFromRaw(reaped);
    } else {
      try {
        const peeked = native.waitPidfd(this.#fd, 1 | 2);
        if (peeked !== null) return exitStatusFromRaw(peeked);
      } catch (error) {
        if (!hasCode(error, 'ECHILD')) throw error;
      }
    }
    const have = features();
    if (!have.getInfo || !have.infoExit) {
      // Without PIDFD_INFO_EXIT a non-child's status is lost to us; say so rather than wait.
      return { ...UNKNOWN_EXIT };
    }
    try {
      const raw = native.pidfdGetInfo(this.#fd, true);
      if (raw.exit !== undefined) return exitStatusFromRaw(raw.exit);
    } catch (error) {
      if (!hasCode(error, 'ESRCH')) throw error;
    }
    return undefined;
  }
}

/** A pidfd id from a bigint, a safe integer or a strict decimal string; throws `EINVAL` otherwise. */
export function parsePidfdId(id: bigint | number | string): bigint {
  if (typeof id === 'bigint' && id > 0n && id < 1n << 64n) return id;
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return BigInt(id);
  if (typeof id === 'string' && /^[1-9]\d{0,19}$/.test(id)) {
    const value = BigInt(id);
    if (value < 1n << 64n) return value;
  }
  throw errnoError('EINVAL', `not a pidfd id: ${String(id)} (expected a positive decimal 64-bit integer)`);
}

/** pidfd_open with the errors explained in terms of the PID. */
function openPidfd(pid: number): number {
  assertPid(pid);
  try {
    return native.pidfdOpen(pid, true);
  } catch (error) {
    throw explainOpenError(error, pid);
  }
}

function assertPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) {
    throw errnoError('EINVAL', `not a PID: ${String(pid)}`);
  }
}

function explainOpenError(error: unknown, pid: number): unknown {
  if (hasCode(error, 'ESRCH')) return errnoError('ESRCH', `no process has PID ${pid}`, { pid });
  if (hasCode(error, 'ENOSYS')) {
    return errnoError('ENOSYS', 'this kernel has no pidfd_open (Linux 5.3+); holdfast cannot hold processes race-free here', { pid });
  }
  if (hasCode(error, 'EINVAL')) return errnoError('EINVAL', `PID ${pid} is a thread, not a process`, { pid });
  return error;
}

/** The PID a pidfd refers to, from `PIDFD_GET_INFO` or `/proc/self/fdinfo`; `ESRCH` once reaped. */
export function pidOfPidfd(fd: number): number {
  if (features().getInfo) {
    try {
      const info = native.pidfdGetInfo(fd, false);
      if (info.pid !== undefined) return info.pid;
    } catch (error) {
      if (!hasCode(error, 'ESRCH')) throw error;
    }
  }
  const text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^Pid:\s*(-?\d+)/m.exec(text);
  if (match === null) throw errnoError('EBADF', `fd ${fd} is not a pidfd`);
  const pid = Number(match[1]);
  if (pid === -1) throw errnoError('ESRCH', `the process of pidfd ${fd} has been reaped`);
  if (pid === 0) throw errnoError('EREMOTE', `the process of pidfd ${fd} is in another PID namespace`);
  return pid;
}

function infoFromProc(handle: Pidfd): PidfdInfo {
  const status = readFileSync(`/proc/${handle.pid}/status`, 'utf8');
  // The numbers are only ours if the pidfd still names that PID after the read.
  if (pidOfPidfd(handle.fd) !== handle.pid) throw errnoError('ESRCH', `process ${handle.pid} is gone`);
  const field = (name: string): number[] => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').split(/\s+/).map(Number);
  const uids = field('Uid');
  const gids = field('Gid');
  return {
    pid: handle.pid,
    ppid: field('PPid')[0] ?? 0,
    uid: uids[0] ?? -1,
    euid: uids[1] ?? -1,
    gid: gids[0] ?? -1,
    egid: gids[1] ?? -1,
  };
}
