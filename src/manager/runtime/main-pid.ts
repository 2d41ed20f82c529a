/**
 * Who may become a unit's main process: a `MAINPID=`/`MAINPIDFD=1` candidate, or the PID a
 * PIDFile= names. Each is opened as a pidfd first and checked through it, so a PID that changed
 * hands is never taken: not the manager, not PID 1, not the unit's control process, alive, and a
 * process of the unit (its sessions), unless the sender of the datagram is root.
 */
import { readFileSync } from 'node:fs';
import { native } from '../../native.js';
import { Pidfd } from '../../pidfd/index.js';
import { sessionMembers, sessionOf } from '../session.js';

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

/** Why a process may not become the unit's main process, or undefined if it may. */
export function mainPidRefusal(
  handle: Pidfd,
  context: { self: Pidfd; controlPid: number | undefined; sessions: ReadonlySet<number>; senderUid: number },
): string | undefined {
  if (handle.pid === process.pid || (context.self.id !== undefined && handle.id === context.self.id)) return 'it is the manager';
  if (handle.pid === 1) return 'it is PID 1';
  if (context.controlPid !== undefined && context.controlPid === handle.pid) return 'it is the current control process';
  if (!handle.isAlive()) return 'it is gone or a zombie';
  const session = sessionOf(handle);
  if (session !== undefined && context.sessions.has(session)) return undefined;
  return context.senderUid === 0 ? undefined : 'it is not a process of this unit, and only root may name such a process';
}

/** The outcome of one read of PIDFile=. */
export type PidFileRead = { ok: true; handle: Pidfd } | { ok: false; reason: string; retry?: true };

/** Reads PIDFile= once. A file not there (or not yet a number) is worth another try; a stranger's PID is not. */
export function readPidFile(path: string, sessions: ReadonlySet<number>): PidFileRead {
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
  // A PID file is only trusted for a process of this unit's own sessions.
  const members = sessionMembers(sessions);
  const ours = members.some((m) => m.pid === handle.pid && m.id === handle.id);
  for (const m of members) m.close();
  if (!ours) {
    handle.close();
    return { ok: false, reason: `names PID ${text}, which is not a process of this unit; refusing it` };
  }
  return { ok: true, handle };
}
