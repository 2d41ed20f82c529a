// Runs as PID 1 of a fresh PID namespace: $MAINPID / $MANAGERPID naming a PID that was recycled.
import { spawn, spawnSync } from 'node:child_process';
import { Pidfd } from '../../../src/pidfd/index.js';
import { mainProcess, managerProcess } from '../../../src/service/index.js';
import { report, shrinkPidMax, takeOverPid } from '../../helpers/pid-reuse.js';

shrinkPidMax(400);
// After wrap-around the kernel hands out PIDs from 300 up, never below: start the target above 300.
for (let i = 0; i < 1000 && (spawnSync('/bin/true').pid ?? 0) <= 300; i++);
const target = spawn('sleep', ['600'], { stdio: 'ignore' });
const original = Pidfd.fromChild(target);
const pid = original.pid;
const oldId = original.id!;
target.kill('SIGKILL');
await original.exited;
await new Promise((resolve) => (target.exitCode !== null || target.signalCode !== null ? resolve(null) : target.once('exit', resolve)));
original.close();

const usurper = await takeOverPid(pid);
const usurperHandle = Pidfd.open(pid);
const newId = usurperHandle.id!;

const outcome = (fn: () => Pidfd | null): unknown => {
  try {
    const handle = fn();
    if (handle === null) return null;
    const seen = { pid: handle.pid, id: handle.id?.toString(), verified: handle.verified };
    handle.close();
    return seen;
  } catch (error) {
    return { code: (error as NodeJS.ErrnoException).code, message: (error as Error).message };
  }
};

const results: Record<string, unknown> = {};
for (const [label, pidVar, idVar, open] of [
  ['main', 'MAINPID', 'MAINPIDFDID', mainProcess],
  ['manager', 'MANAGERPID', 'MANAGERPIDFDID', managerProcess],
] as const) {
  process.env[pidVar] = String(pid);
  process.env[idVar] = String(oldId);
  results[`${label}Stale`] = outcome(() => open());
  process.env[idVar] = String(newId);
  results[`${label}Current`] = outcome(() => open());
  delete process.env[pidVar];
  delete process.env[idVar];
}

usurperHandle.signal('SIGKILL');
await usurperHandle.exited;
usurperHandle.close();
report({ pid, usurperPid: usurper.pid, oldId, newId, ...results });
process.exit(0);
