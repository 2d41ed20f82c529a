// Runs as PID 1 of a fresh PID namespace: a handle to a process whose PID is then taken by another.
import { spawn, spawnSync } from 'node:child_process';
import { Pidfd, ProcessRef } from '../../../src/index.js';
import { report, shrinkPidMax, takeOverPid } from '../../helpers/pid-reuse.js';

shrinkPidMax(400);
// After a wrap the kernel allocates from 300 up, so the target must sit above 300 to come round.
while ((spawnSync('/bin/true').pid ?? 0) < 310);
const target = spawn('sleep', ['600'], { stdio: 'ignore' });
const handle = Pidfd.fromChild(target);
const pid = handle.pid;
const id = handle.id;
const ref = ProcessRef.of(handle);
target.kill('SIGKILL');
const ended = await handle.exited;
await new Promise((resolve) => (target.exitCode !== null || target.signalCode !== null ? resolve(null) : target.once('exit', resolve)));

const usurper = await takeOverPid(pid);
const usurperHandle = Pidfd.open(pid);

const outcome = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return String((error as NodeJS.ErrnoException).code ?? error);
  }
};

const signalResult = outcome(() => handle.signal('SIGKILL'));
const verifyResult = outcome(() => Pidfd.verify(pid, id!).close());
const resolveResult = outcome(() => ref.resolve().close());
const usurperAlive = usurperHandle.isAlive();
usurperHandle.signal('SIGKILL');
const usurperEnd = await usurperHandle.exited;

report({
  pid,
  usurperPid: usurper.pid,
  oldId: id,
  newId: usurperHandle.id,
  ended,
  signalResult,
  verifyResult,
  resolveResult,
  usurperAlive,
  usurperEnd,
});
process.exit(0);
