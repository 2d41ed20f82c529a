/**
 * Finding a service's processes without cgroups: every process holdfast spawns starts its own
 * session, and a session id stays reserved (the kernel does not hand out that PID again) while any
 * process of the session lives. Members are found in /proc and each is confirmed *after* its pidfd
 * is open, so a PID that changed hands between the read and the open is never signalled.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { hasCode, Pidfd } from '../pidfd/index.js';

interface StatFields {
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses; fields count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) };
}

/** The live processes of the given sessions, as open, confirmed handles (the caller closes them). */
export function sessionMembers(sessions: ReadonlySet<number>, exclude: ReadonlySet<number> = new Set()): Pidfd[] {
  if (sessions.size === 0) return [];
  const members: Pidfd[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (exclude.has(pid) || pid === process.pid) continue;
    const before = readStat(pid);
    if (before === undefined || !sessions.has(before.session) || before.state === 'Z') continue;
    let handle: Pidfd;
    try {
      handle = Pidfd.open(pid);
    } catch (error) {
      if (hasCode(error, 'ESRCH', 'EINVAL')) continue;
      throw error;
    }
    const after = readStat(pid);
    // The stat read after the open describes the process the handle holds only if it still lives.
    if (after !== undefined && sessions.has(after.session) && handle.isAlive()) members.push(handle);
    else handle.close();
  }
  return members;
}

/** The session id of a live process, read through /proc and confirmed by its handle. */
export function sessionOf(handle: Pidfd): number | undefined {
  const stat = readStat(handle.pid);
  return stat !== undefined && handle.isAlive() ? stat.session : undefined;
}
