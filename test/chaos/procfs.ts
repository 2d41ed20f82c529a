/**
 * What the fault suite reads from /proc: processes by parent and by command line, their state and
 * memory. Every process the suite signals is opened as a pidfd first and confirmed after the open.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Pidfd } from '../../src/pidfd/index.js';

/** One process as /proc showed it a moment ago. */
export interface ProcessSnapshot {
  pid: number;
  ppid: number;
  /** The one-letter state of /proc/PID/stat (`R`, `S`, `Z`, …). */
  state: string;
  /** Start time in clock ticks since boot: with the PID, it tells two owners of one PID apart. */
  startTicks: number;
  argv: string[];
}

/** Reads one process, or undefined once it is gone. */
export function snapshot(pid: number): ProcessSnapshot | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces and parentheses: the fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part !== '');
    return { pid, ppid: Number(fields[1]), state: fields[0] ?? '?', startTicks: Number(fields[19]), argv };
  } catch {
    return undefined;
  }
}

/** Every process now; those that end while they are read are left out. */
export function allProcesses(): ProcessSnapshot[] {
  const out: ProcessSnapshot[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const process = snapshot(Number(name));
    if (process !== undefined) out.push(process);
  }
  return out;
}

/** The children of `ppid` now. */
export function childrenOf(ppid: number): ProcessSnapshot[] {
  return allProcesses().filter((p) => p.ppid === ppid);
}

/**
 * Opens a pidfd on a process seen in /proc and confirms, after the open, that it is still the
 * process that was seen (same start time and `confirm` still true): otherwise the PID went to
 * someone else meanwhile and the handle is closed again.
 */
export function openConfirmed(seen: ProcessSnapshot, confirm: (now: ProcessSnapshot) => boolean): Pidfd | undefined {
  let handle: Pidfd;
  try {
    handle = Pidfd.open(seen.pid);
  } catch {
    return undefined;
  }
  const now = snapshot(seen.pid);
  if (now === undefined || now.startTicks !== seen.startTicks || !confirm(now)) {
    handle.close();
    return undefined;
  }
  return handle;
}

/** SIGKILLs a process through a pidfd it holds and waits (bounded) until it has ended. */
export async function killAndWait(handle: Pidfd, timeoutMs = 5000): Promise<boolean> {
  try {
    handle.signal('SIGKILL');
  } catch {
    // Already ended and reaped.
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!handle.isAlive()) return true;
    await sleep(20);
  }
  return false;
}

/** A pause. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
