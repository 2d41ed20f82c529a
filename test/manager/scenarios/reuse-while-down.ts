// PID 1 of a fresh PID namespace: a service's main process dies while no daemon (and no keeper)
// runs, its PID goes to another process, and a new daemon must not adopt that process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VarlinkClient } from '../../../src/api/varlink/index.js';
import { Pidfd } from '../../../src/index.js';
import { native } from '../../../src/native.js';
import type { UnitStatus } from '../../../src/manager/types.js';
import { report, shrinkPidMax, takeOverPid } from '../../helpers/pid-reuse.js';

const BIN = fileURLToPath(new URL('../../../../bin/holdfast.js', import.meta.url));
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

shrinkPidMax(400);
while ((spawnSync('/bin/true').pid ?? 0) < 310);

const dir = mkdtempSync(join(tmpdir(), 'holdfast-reuse-'));
mkdirSync(join(dir, 'units'));
writeFileSync(join(dir, 'units', 'victim.service'), '[Service]\nExecStart=/bin/sleep 600\n');
const socket = join(dir, 'control');
let log = '';

async function startDaemon(): Promise<{ child: ChildProcess; client: VarlinkClient }> {
  const child = spawn(process.execPath, [BIN, 'daemon', '--units', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (log += s));
  for (let i = 0; i < 400 && !existsSync(socket); i++) await wait(25);
  return { child, client: await VarlinkClient.connect(socket) };
}

let { child: daemon, client } = await startDaemon();
await client.call('io.holdfast.Manager.Start', { name: 'victim' });
const recorded = (await client.call<{ unit: UnitStatus }>('io.holdfast.Manager.Status', { name: 'victim' })).unit.mainProcess!;
const victim = Pidfd.verify(recorded.pid, recorded.pidfdId!);
const keeperPath = join(dir, 'state', 'keeper.json');
for (let i = 0; i < 400 && !(existsSync(keeperPath) && readFileSync(keeperPath, 'utf8').includes('pidfd:')); i++) await wait(25);
const keeperInfo = JSON.parse(readFileSync(keeperPath, 'utf8')) as { pid: number; pidfdId: string };
const keeper = Pidfd.verify(keeperInfo.pid, keeperInfo.pidfdId);
client.destroy();

// The daemon and its keeper die; so does the service, while nobody watches.
Pidfd.fromChild(daemon).signal('SIGKILL');
await new Promise((r) => daemon.once('exit', r));
keeper.signal('SIGKILL');
victim.signal('SIGKILL');
// Orphans come to PID 1 (us): reap both, which frees the victim's PID.
await keeper.exited;
await victim.exited;
native.waitPidfd(keeper.fd, 0);
native.waitPidfd(victim.fd, 0);
const usurper = await takeOverPid(recorded.pid);
const usurperHandle = Pidfd.open(recorded.pid);

rmSync(socket, { force: true });
({ child: daemon, client } = await startDaemon());
await wait(300);
const after = (await client.call<{ unit: UnitStatus }>('io.holdfast.Manager.Status', { name: 'victim' })).unit;
const usurperAlive = usurperHandle.isAlive();
client.destroy();
Pidfd.fromChild(daemon).signal('SIGTERM');
await new Promise((r) => daemon.once('exit', r));
usurper.kill('SIGKILL');
report({
  recorded,
  usurperPid: usurper.pid,
  usurperId: usurperHandle.id,
  after: { activeState: after.activeState, mainProcess: after.mainProcess, lastExit: after.lastExit },
  usurperAliveAfterRestart: usurperAlive,
  refusedInLog: /cannot be re-adopted \(ESTALE\)/.test(log),
});
process.exit(0);
