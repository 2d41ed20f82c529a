/**
 * What the pidfd identity check costs next to the check it replaces.
 * Run: npm run bench -- pidfd   (or: node dist/bench/pidfd.js)
 *
 * - floor: the raw syscalls, pidfd_open + close, through the addon;
 * - Pidfd.open + id + close: a handle with its pidfs id (fstatfs + name_to_handle_at);
 * - Pidfd.verify: open + id + compare (what a consumer of MAINPID/MAINPIDFDID does);
 * - /proc/PID/stat start time: the usual PID-file check (read, parse field 22, compare). It is racy
 *   (the PID can be recycled right after the read); the pidfd check is not.
 */
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { native } from '../src/native.js';
import { Pidfd } from '../src/index.js';
import { printTable, timePerCall } from './stats.js';

function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

export async function run(): Promise<void> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  const pid = child.pid!;
  const handle = Pidfd.fromChild(child);
  const id = handle.id!;
  const expectedStart = startTime(pid);

  const rows = [
    { name: 'floor: pidfd_open + close (addon)', value: timePerCall(() => native.close(native.pidfdOpen(pid))), unit: 'ns' },
    { name: 'Pidfd.open + id + close', value: timePerCall(() => Pidfd.open(pid).close()), unit: 'ns' },
    { name: 'Pidfd.verify(pid, id) + close', value: timePerCall(() => Pidfd.verify(pid, id).close()), unit: 'ns' },
    {
      name: '/proc/PID/stat start-time check',
      value: timePerCall(() => {
        if (startTime(pid) !== expectedStart) throw new Error('changed');
      }),
      unit: 'ns',
    },
  ];
  printTable('Identity check of one live process (median ns per call, ratio to the floor)', rows);
  handle.signal('SIGKILL');
  await handle.exited;
  handle.close();
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
