/**
 * A spawned process's standard fds: /dev/null, files, or pipes into the log store (StandardInput=,
 * StandardOutput=, StandardError=). Our copies of the child's ends are closed right after the spawn.
 */
import { closeSync, fchownSync, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readlinkSync, statSync, unlinkSync, constants as fsConstants, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import type { ServiceSection } from '../../unit/index.js';
import type { CaptureHandle, OutputSink } from '../manager.js';

/** The child's standard fds for one spawn, and what to do around the spawn. */
export interface SpawnIo {
  readonly fds: (number | null)[];
  /** Called right after the spawn attempt, success or not (closes our copies of the child's ends). */
  afterSpawn(): void;
  /** Called with the new process, so its output is attributed to it. */
  attach(writer: { pid: number; pidfdId: bigint | null }): void;
}

/** Hands a capture's read ends to whoever keeps them across a daemon crash; returns how to name the writer later. */
export type HoldCapture = (capture: CaptureHandle) => (writer: { pid: number; pidfdId: bigint | null }) => void;

/** Linux's O_CLOEXEC: fds the daemon opens must not leak into other services. */
const O_CLOEXEC = 0o2000000;

/** The user a unit runs as (User=), whose say over a path must not turn the daemon's open against others. */
export interface UnitUser {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

/** A path the daemon refuses to open for a unit, and why (systemd's 209/STDOUT). */
export class StdioPathRefused extends Error {
  override readonly name = 'StdioPathRefused';
}

/** Whether `user` may create, remove or rename entries in a directory with these stats. */
function writableBy(stats: Stats, user: UnitUser): boolean {
  if (user.uid === 0 || stats.uid === user.uid) return true;
  if ((stats.mode & 0o020) !== 0 && (stats.gid === user.gid || user.groups.includes(stats.gid))) return true;
  return (stats.mode & 0o002) !== 0;
}

const S_ISVTX = 0o1000;

/**
 * Whether `user` can change what `path` leads to: some directory on the way is one the user may
 * write, and the name looked up in it is not protected from them (in a sticky directory such as
 * /tmp, only names the user owns, or that do not exist yet, are theirs to replace).
 */
function userMayRedirect(path: string, user: UnitUser): boolean {
  for (let name = path, dir = dirname(path); name !== dir; name = dir, dir = dirname(dir)) {
    let stats: Stats;
    try {
      stats = statSync(dir);
    } catch {
      continue;
    }
    if (!writableBy(stats, user)) continue;
    if ((stats.mode & S_ISVTX) === 0 || stats.uid === user.uid) return true;
    try {
      if (lstatSync(name).uid === user.uid) return true;
    } catch {
      return true;
    }
  }
  return false;
}

/**
 * Opens a standard-fd path for a unit with User=, so that the user cannot point the daemon (root)
 * elsewhere: never through a symlink as the last component (O_NOFOLLOW), and where the user may
 * change any directory on the way (so could swap a name for a link to someone else's file), only a
 * file that user owns, or one made here and now in a directory the user may write, handed to them.
 */
function openForUser(path: string, flags: number, user: UnitUser): number {
  const refuse = (why: string): never => {
    throw new StdioPathRefused(`refusing ${path}: ${why}`);
  };
  const userControlsPath = userMayRedirect(path, user);
  const safeFlags = flags | O_CLOEXEC | fsConstants.O_NOFOLLOW | fsConstants.O_NOCTTY;
  if (!userControlsPath) {
    try {
      return openSync(path, safeFlags, 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') refuse('it is a symbolic link');
      throw error;
    }
  }
  const creating = (flags & fsConstants.O_CREAT) !== 0;
  let fd: number;
  let made = false;
  try {
    // O_TRUNC waits until the file is known to be the user's.
    fd = openSync(path, (safeFlags & ~fsConstants.O_CREAT & ~fsConstants.O_TRUNC) >>> 0, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') refuse(`it is a symbolic link, in a directory user ${user.uid} may change`);
    if (code !== 'ENOENT' || !creating) throw error;
    fd = openSync(path, (safeFlags | fsConstants.O_EXCL) >>> 0, 0o644);
    made = true;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() && !stats.isCharacterDevice() && !stats.isFIFO()) refuse('it is not a regular file, a FIFO or a device');
    if (made) {
      // Where it really is, whatever the names on the way were swapped for: a place the user may write.
      const where = dirname(readlinkSync(`/proc/self/fd/${fd}`));
      if (!writableBy(statSync(where), user)) {
        try {
          unlinkSync(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          // Already renamed away; it is empty and ours either way.
        }
        refuse(`the path led to ${where}, which user ${user.uid} may not write`);
      }
      fchownSync(fd, user.uid, user.gid);
    } else if (stats.uid !== user.uid) {
      refuse(`user ${user.uid} may change a directory on its path, and the file is owned by UID ${stats.uid}, not by that user`);
    } else if ((flags & fsConstants.O_TRUNC) !== 0 && stats.isFile()) {
      ftruncateSync(fd, 0);
    }
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Opens the fds one spawn of `unit` needs; with `user` (User=), paths are opened so that user cannot redirect them. */
export function makeIo(unit: string, invocationId: string | null, service: ServiceSection, logs: OutputSink, hold: HoldCapture, user?: UnitUser): SpawnIo {
  const opened: number[] = [];
  const openFile = (path: string, flags: number): number => {
    let fd: number;
    if (user === undefined || user.uid === 0 || path === '/dev/null') {
      mkdirSync(dirname(path), { recursive: true });
      fd = openSync(path, flags | O_CLOEXEC, 0o644);
    } else fd = openForUser(path, flags, user);
    opened.push(fd);
    return fd;
  };
  const closeOurs = (): void => {
    capture?.closeWriteEnds();
    for (const fd of opened.splice(0)) closeSync(fd);
  };
  let capture: CaptureHandle | undefined;
  try {
    const devNull = (): number => openFile('/dev/null', fsConstants.O_RDWR);
    const stdin = service.standardInput.type === 'file' ? openFile(service.standardInput.path, fsConstants.O_RDONLY) : devNull();
    const wantLog = service.standardOutput.type === 'log' || service.standardError.type === 'log';
    capture = wantLog
      ? logs.capture(unit, {
          invocationId,
          stdout: service.standardOutput.type === 'log',
          stderr: service.standardError.type === 'log' || (service.standardError.type === 'inherit' && service.standardOutput.type === 'log'),
        })
      : undefined;
    const target = (spec: ServiceSection['standardOutput'], captured: number | null | undefined): number => {
      switch (spec.type) {
        case 'log':
          return captured!;
        case 'null':
          return devNull();
        case 'file':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT);
        case 'append':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND);
        case 'truncate':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC);
      }
    };
    const rehold = capture === undefined ? undefined : hold(capture);
    const stdout = target(service.standardOutput, capture?.stdoutFd);
    // StandardError=inherit means "where stdout goes"; into the log it goes through its own pipe, so lines keep their stream.
    const stderr =
      service.standardError.type === 'inherit'
        ? service.standardOutput.type === 'log'
          ? capture!.stderrFd!
          : stdout
        : target(service.standardError, capture?.stderrFd);
    const attached = capture;
    return {
      fds: [stdin, stdout, stderr],
      afterSpawn: closeOurs,
      attach(writer) {
        attached?.attach(writer);
        rehold?.(writer);
      },
    };
  } catch (error) {
    closeOurs();
    throw error;
  }
}
