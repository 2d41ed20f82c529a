/**
 * Who may become a unit's main process: a `MAINPID=`/`MAINPIDFD=1` candidate, or the PID a
 * PIDFile= names. Each is opened as a pidfd first and checked through it, so a PID that changed
 * hands is never taken: not the manager, not PID 1, not the unit's control process, alive, never a
 * process of another unit, and a process of the unit (its cgroup, or its live sessions) unless the
 * sender of the datagram is root.
 */
import { readFileSync } from 'node:fs';
import { native } from '../../native.js';
import { Pidfd } from '../../pidfd/index.js';

/** A candidate opened, or why it could not be. */
export type Opened = { ok: true; handle: Pidfd } | { ok: false; reason: string };

/** Opens the process a `MAINPID=` (with `MAINPIDFDID=`, verified) or a `MAINPIDFD=1` names. */
export function openClaim(claim: { kind: 'pid'; pid: string; pidfdId: string | undefined } | { kind: 'pidfd'; fds: readonly number[] }): Opened {
  if (claim.kind === 'pidfd') {
    if (claim.fds.length !== 1) {
      for (const fd of claim.fds) native.close(fd);
      return { ok: false, reason: `MAINPIDFD=1 with ${claim.fds.length === 0 ? 'no' : 'more than one'} fd, ignored` };
    }
    try {
      return { ok: true, handle: Pidfd.adopt(claim.fds[0]!) };
    } catch (error) {
      native.close(claim.fds[0]!);
      return { ok: false, reason: (error as Error).message };
    }
  }
  if (!/^\d+$/.test(claim.pid)) return { ok: false, reason: `MAINPID=${claim.pid} is not a PID` };
  try {
    const pid = Number(claim.pid);
    return { ok: true, handle: claim.pidfdId === undefined ? Pidfd.open(pid) : Pidfd.verify(pid, claim.pidfdId) };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** How a candidate is placed: whether it is the unit's, and which unit (if any) it belongs to. */
export interface Membership {
  /** The unit asking. */
  readonly unit: string;
  /** Whether a live process is the unit's (its cgroup, or a session the unit still holds). */
  isMember(handle: Pidfd): boolean;
  /** The unit a live process belongs to, if any. */
  owner(handle: Pidfd): string | undefined;
}

/** Why a process of another unit may not be taken, or undefined. */
function otherUnit(handle: Pidfd, membership: Membership): string | undefined {
  const owner = membership.owner(handle);
  return owner !== undefined && owner !== membership.unit ? `it belongs to ${owner}` : undefined;
}

/** Why a process may not become the unit's main process, or undefined if it may. */
export function mainPidRefusal(
  handle: Pidfd,
  context: Membership & { self: Pidfd; controlPid: number | undefined; senderUid: number },
): string | undefined {
  if (handle.pid === process.pid || (context.self.id !== undefined && handle.id === context.self.id)) return 'it is the manager';
  if (handle.pid === 1) return 'it is PID 1';
  if (context.controlPid !== undefined && context.controlPid === handle.pid) return 'it is the current control process';
  if (!handle.isAlive()) return 'it is gone or a zombie';
  // Not even root hands one unit's process to another: stopping this unit would then end it.
  const elsewhere = otherUnit(handle, context);
  if (elsewhere !== undefined) return elsewhere;
  if (context.isMember(handle)) return undefined;
  return context.senderUid === 0 ? undefined : 'it is not a process of this unit, and only root may name such a process';
}

/** The outcome of one read of PIDFile=. */
export type PidFileRead = { ok: true; handle: Pidfd } | { ok: false; reason: string; retry?: true };

/** Reads PIDFile= once. A file not there (or not yet a number) is worth another try; a stranger's PID is not. */
export function readPidFile(path: string, membership: Membership): PidFileRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return { ok: false, reason: 'not readable', retry: true };
  }
  if (!/^\d+$/.test(text)) return { ok: false, reason: `no PID in it yet`, retry: true };
  let handle: Pidfd;
  try {
    handle = Pidfd.open(Number(text));
  } catch (error) {
    return { ok: false, reason: `names PID ${text}: ${(error as Error).message}` };
  }
  // A PID file is only trusted for a live process of this unit (its cgroup or its live sessions).
  if (otherUnit(handle, membership) !== undefined || !membership.isMember(handle)) {
    handle.close();
    return { ok: false, reason: `names PID ${text}, which is not a process of this unit; refusing it` };
  }
  return { ok: true, handle };
}
