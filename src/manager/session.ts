/**
 * Finding a service's processes without cgroups: every process holdfast spawns starts its own
 * session, and a session id stays reserved (the kernel does not hand out that PID again) while any
 * process of the session lives. Members are found in /proc and each is confirmed *after* its pidfd
 * is open, so a PID that changed hands between the read and the open is never signalled.
 *
 * A session id is only trusted while something held by pidfd proves it still names the same
 * session: {@link LiveSessions} keeps, for each session, its leader and one live member (the
 * anchor) as pidfds, never a bare number. While the anchor lives the id cannot be recycled; once it
 * has exited another member is looked for, and the session is dropped when none is left or when
 * its number has visibly gone to a new process.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { native } from '../native.js';
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

/** A handle of our own to the process `handle` holds (the caller keeps and closes `handle`). */
function duplicate(handle: Pidfd): Pidfd | undefined {
  if (handle.closed) return undefined;
  try {
    return Pidfd.adopt(native.dup(handle.fd), { pid: handle.pid });
  } catch {
    return undefined;
  }
}

/** One tracked session: its leader (if it was ever held) and a member that proves the id still reserved. */
interface Tracked {
  leader: Pidfd | undefined;
  anchor: Pidfd | undefined;
}

/** The sessions of one unit, each held by pidfds so that a recycled session id is never taken for the unit's. */
export class LiveSessions {
  readonly #sessions = new Map<number, Tracked>();

  /** Tracks the session `leader` leads (a process the unit just spawned, alive or already ended). */
  addLeader(leader: Pidfd): void {
    // Ended sessions go now, so that their handles do not pile up between two records.
    this.ids();
    const tracked = this.#sessions.get(leader.pid);
    if (tracked?.leader !== undefined && tracked.leader.id === leader.id && leader.id !== undefined) return;
    const own = duplicate(leader);
    if (own === undefined) return;
    if (tracked !== undefined) this.#forget(leader.pid);
    this.#sessions.set(leader.pid, { leader: own, anchor: duplicate(own) });
  }

  /**
   * Tracks the session of a live process the unit holds (a recorded process picked up again, a
   * `MAINPID=` process), with the process as anchor. With `only`, just if the session is among them.
   */
  addSessionOf(member: Pidfd, only?: readonly number[]): void {
    const session = sessionOf(member);
    if (session === undefined || (only !== undefined && !only.includes(session))) return;
    const tracked = this.#sessions.get(session);
    if (tracked !== undefined && this.#keep(session, tracked)) return;
    const anchor = duplicate(member);
    if (anchor === undefined) return;
    let leader: Pidfd | undefined;
    if (member.pid === session) leader = duplicate(member);
    else {
      // While the member lives the id is reserved, so a process that has it now is the true leader.
      try {
        leader = Pidfd.open(session);
        if (sessionOf(leader) !== session || !anchor.isAlive()) {
          leader.close();
          leader = undefined;
        }
      } catch {
        leader = undefined;
      }
    }
    this.#sessions.set(session, { leader, anchor });
  }

  /** Whether the live process `handle` holds is in one of these sessions (checked through its pidfd). */
  contains(handle: Pidfd): boolean {
    const session = sessionOf(handle);
    if (session === undefined) return false;
    const tracked = this.#sessions.get(session);
    return tracked !== undefined && this.#keep(session, tracked) && handle.isAlive();
  }

  /** The session ids still live, after dropping every one that ended (for the state record). */
  ids(): number[] {
    for (const [session, tracked] of [...this.#sessions]) this.#keep(session, tracked);
    return [...this.#sessions.keys()];
  }

  /** How many sessions are tracked, ended or not (for tests and diagnostics). */
  get size(): number {
    return this.#sessions.size;
  }

  /** The live processes of these sessions but `exclude`, as open, confirmed handles (the caller closes them). */
  members(exclude: ReadonlySet<number> = new Set()): Pidfd[] {
    const live = new Set(this.ids());
    const found = sessionMembers(live, exclude);
    // An anchor that ended during the scan leaves its session unproven: check it again.
    const unproven = new Set<number>();
    for (const session of live) {
      const tracked = this.#sessions.get(session);
      if (tracked !== undefined && !(tracked.anchor?.isAlive() ?? false) && !this.#keep(session, tracked)) unproven.add(session);
    }
    if (unproven.size === 0) return found;
    return found.filter((handle) => {
      const session = sessionOf(handle);
      if (session !== undefined && !unproven.has(session)) return true;
      handle.close();
      return false;
    });
  }

  /** Forgets every session (a new invocation, or the unit is done). */
  clear(): void {
    for (const session of [...this.#sessions.keys()]) this.#forget(session);
  }

  /** Whether `session` still names the unit's session; drops it if not. */
  #keep(session: number, tracked: Tracked): boolean {
    if (tracked.anchor?.isAlive() === true) return true;
    tracked.anchor?.close();
    tracked.anchor = undefined;
    if (tracked.leader === undefined || this.#recycled(session, tracked.leader)) {
      // Without its leader held, nothing can tell a recycled id from the unit's own: drop it.
      this.#forget(session);
      return false;
    }
    for (const member of sessionMembers(new Set([session]))) {
      if (tracked.anchor === undefined) tracked.anchor = member;
      else member.close();
    }
    // A recycle between the check and the scan shows as a new process holding the leader's PID.
    if (tracked.anchor === undefined || this.#recycled(session, tracked.leader)) {
      this.#forget(session);
      return false;
    }
    return true;
  }

  /** True when the leader has ended and its PID belongs to a process alive now: the id has been handed out again. */
  #recycled(session: number, leader: Pidfd): boolean {
    if (leader.isAlive()) return false;
    let now: Pidfd;
    try {
      now = Pidfd.open(session);
    } catch {
      return false;
    }
    try {
      return leader.id === undefined || now.id !== leader.id;
    } finally {
      now.close();
    }
  }

  #forget(session: number): void {
    const tracked = this.#sessions.get(session);
    if (tracked === undefined) return;
    tracked.anchor?.close();
    tracked.leader?.close();
    this.#sessions.delete(session);
  }
}
