// PID 1 of a fresh PID namespace: unit A (User=nobody) runs ExecStartPre=, whose PID P was a session
// leader of A's; P comes round again as unit B's main process (a root service, leader of its own
// session P); A then sends MAINPID=P and is stopped. B's process must be neither taken nor signalled.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pidfd } from '../../../src/index.js';
import type { UnitStatus } from '../../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus } from '../../helpers/daemon.js';
import { report, shrinkPidMax } from '../../helpers/pid-reuse.js';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

shrinkPidMax(400);
while ((spawnSync('/bin/true').pid ?? 0) < 310);

const d = await startTestDaemon();
chmodSync(d.dir, 0o755);
const share = join(d.dir, 'share');
mkdirSync(share, { mode: 0o777 });
chmodSync(share, 0o777);
// A's main process: waits for the PID to claim, sends MAINPID= itself (so the sender stays alive), sleeps.
const claimer = [
  'import os, socket, time',
  `p = '${share}/claim'`,
  'while not (os.path.exists(p) and open(p).read().strip()): time.sleep(0.05)',
  "a = os.environ['NOTIFY_SOCKET']",
  "a = '\\0' + a[1:] if a.startswith('@') else a",
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  "s.sendto(('MAINPID=' + open(p).read().strip()).encode(), a)",
  "open(p + '.sent', 'w').write('1')",
  'time.sleep(600)',
].join('\n');
writeFileSync(join(share, 'claimer.py'), claimer);
d.unit(
  'a.service',
  `[Service]\nUser=nobody\nNotifyAccess=all\nExecStartPre=/bin/sh -c 'echo $$$$ > ${share}/pre.pid'\nExecStart=/usr/bin/python3 ${share}/claimer.py\n`,
);
d.unit('b.service', '[Service]\nExecStart=/bin/sleep 600\n');

await d.call('Start', { name: 'a' });
const stalePid = Number(readFileSync(join(share, 'pre.pid'), 'utf8').trim());
const aMain = (await unitStatus(d, 'a')).mainProcess!;

// Bring P round again as B's main process: move the PID counter to just before P, then start B.
// PIDs are handed out cyclically: after X comes the lowest free PID above X. So the last spawn here
// must take the highest free PID below P, every PID between being in use (threads count).
const before = (): number => {
  const used = new Set<number>();
  for (const p of readdirSync('/proc')) if (/^\d+$/.test(p)) for (const t of safeList(`/proc/${p}/task`)) used.add(Number(t));
  let x = stalePid - 1;
  while (x >= 300 && used.has(x)) x--;
  return x < 300 ? 399 : x;
};
let b: UnitStatus | undefined;
let attempts = 0;
for (; attempts < 100; attempts++) {
  const target = before();
  for (let i = 0; i < 300 && spawnSync('/bin/true').pid !== target; i++);
  await d.call('Start', { name: 'b' });
  b = await unitStatus(d, 'b');
  if (b.mainProcess?.pid === stalePid) break;
  await d.call('Stop', { name: 'b' });
}
if (b?.mainProcess?.pid !== stalePid) {
  report({ reused: false, attempts });
  await d.stop();
  process.exit(0);
}
const bMain = Pidfd.verify(b.mainProcess.pid, b.mainProcess.pidfdId!);

writeFileSync(join(share, 'claim'), String(stalePid));
await eventually(() => (readFileSync(join(share, 'claim'), 'utf8') && existsSent() ? true : undefined), 'the claim sent');
await wait(500);
const aAfterClaim = (await unitStatus(d, 'a')).mainProcess;
await d.call('Stop', { name: 'a' });
await wait(300);
const bAliveAfterStopA = bMain.isAlive();
const bStatus = await unitStatus(d, 'b');
const log = d.stderr();
await d.call('Stop', { name: 'b' });
await d.stop();
report({
  reused: true,
  attempts,
  stalePid,
  aMain,
  bMain: b.mainProcess,
  aMainAfterClaim: aAfterClaim,
  bAliveAfterStopA,
  bActiveAfterStopA: bStatus.activeState,
  refusal: log.split('\n').filter((l) => /PID \d+: /.test(l) || /main PID/.test(l)),
});
process.exit(0);

function safeList(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function existsSent(): boolean {
  try {
    readFileSync(join(share, 'claim.sent'));
    return true;
  } catch {
    return false;
  }
}
