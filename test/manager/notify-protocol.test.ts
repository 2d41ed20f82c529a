import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

const status = unitStatus;

async function logText(d: TestDaemon, name: string): Promise<string> {
  return (await d.cli(['logs', name])).stdout;
}

describe('the notify protocol, manager side', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('refuses MAINPID= with a wrong MAINPIDFDID= and MAINPIDFD=1 with two fds; accepts MAINPIDFD=1 with one', async () => {
    const script = join(d.dir, 'mainpid.py');
    const report = join(d.dir, 'mainpid.json');
    writeFileSync(
      script,
      `import array, os, socket, subprocess, time, json
child = subprocess.Popen(['sleep', '600'])
fd = os.pidfd_open(child.pid)
ino = os.fstat(fd).st_ino
addr = os.environ['NOTIFY_SOCKET']
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
json.dump({'pid': child.pid, 'id': ino}, open(${JSON.stringify(report)}, 'w'))
s.sendto(f'MAINPID={child.pid}\\nMAINPIDFDID={ino + 1}'.encode(), addr)
rights = lambda fds: [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))]
s.sendmsg([b'MAINPIDFD=1'], rights([fd, fd]), 0, addr)
time.sleep(0.2)
s.sendmsg([b'MAINPIDFD=1\\nREADY=1\\nSTATUS=handed over'], rights([fd]), 0, addr)
time.sleep(600)
`,
    );
    d.unit('handover.service', `[Service]\nType=notify\nNotifyAccess=all\nExecStart=/usr/bin/env python3 ${script}\n`);
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string } }>('Start', { name: 'handover' });
    assert.equal(job.result, 'done');
    const expected = JSON.parse(readFileSync(report, 'utf8')) as { pid: number; id: number };
    const s = await status(d, 'handover');
    assert.equal(s.statusText, 'handed over');
    assert.deepEqual({ pid: s.mainProcess!.pid, id: s.mainProcess!.pidfdId }, { pid: expected.pid, id: expected.id });
    const logs = await logText(d, 'handover');
    assert.match(logs, /new main PID refused: PID \d+ now belongs to a different process/);
    assert.match(logs, /MAINPIDFD=1 with more than one fd, ignored/);
    using main = Pidfd.verify(expected.pid, expected.id);
    await d.call('Stop', { name: 'handover' });
    assert.equal((await main.exited).signal, 'SIGTERM');
  });

  it('NotifyAccess=main refuses a message from another process of the unit', async () => {
    const sender = join(d.dir, 'child-ready.py');
    writeFileSync(sender, "import os, socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n");
    d.unit('strict.service', `[Service]\nType=notify\nNotifyAccess=main\nTimeoutStartSec=1500ms\nExecStart=/bin/sh -c 'python3 ${sender}; exec sleep 600'\n`);
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string; serviceResult: string } }>('Start', { name: 'strict' });
    assert.equal(job.result, 'failed', 'READY=1 from a child of the main process does not count');
    assert.equal(job.serviceResult, 'timeout');
    assert.match(await logText(d, 'strict'), /notification from PID \d+ refused \(NotifyAccess=main/);
  });

  it('libsystemd\'s own sd_notify() is a client the manager understands', async (t) => {
    const dir = d.dir;
    writeFileSync(join(dir, 'sdn.c'), '#include <systemd/sd-daemon.h>\n#include <unistd.h>\nint main(void){ sd_notify(0, "STATUS=from libsystemd\\nREADY=1"); pause(); return 0; }\n');
    const flags = spawnSync('pkg-config', ['--cflags', '--libs', 'libsystemd'], { encoding: 'utf8' });
    if (flags.status !== 0) return t.skip('libsystemd-dev (pkg-config libsystemd) is not installed');
    const cc = spawnSync('cc', ['-o', join(dir, 'sdn'), join(dir, 'sdn.c'), ...flags.stdout.trim().split(/\s+/)], { encoding: 'utf8' });
    if (cc.error !== undefined) return t.skip('no C compiler');
    assert.equal(cc.status, 0, cc.stderr);
    d.unit('libsd.service', `[Service]\nType=notify\nExecStart=${join(dir, 'sdn')}\n`);
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string } }>('Start', { name: 'libsd' });
    assert.equal(job.result, 'done');
    assert.equal((await status(d, 'libsd')).statusText, 'from libsystemd');
    await d.call('Stop', { name: 'libsd' });
  });

  it('a missed watchdog gives result watchdog, kills with WatchdogSignal= and restarts per Restart=on-watchdog', async () => {
    d.unit('sleepy.service', `[Service]\nExecStart=/bin/sleep 600\nWatchdogSec=300ms\nRestart=on-watchdog\nRestartSec=100ms\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'sleepy' });
    const s = await eventually(async () => {
      const st = await status(d, 'sleepy');
      return st.restarts >= 1 && st.activeState === 'active' ? st : undefined;
    }, 'a watchdog restart');
    assert.deepEqual(s.lastExit, { code: null, signal: 'SIGABRT' });
    assert.match(await logText(d, 'sleepy'), /watchdog timeout/);
    await d.call('Stop', { name: 'sleepy' });
  });

  it('Type=notify-reload: reload sends SIGHUP and waits for RELOADING=1 … READY=1 from the example server', async () => {
    const server = fileURLToPath(new URL('../../examples/socket-activated-server/server.js', import.meta.url));
    assert.ok(existsSync(server), server);
    const config = join(d.dir, 'config.json');
    writeFileSync(config, '{"greeting":"hello"}');
    d.unit(
      'reloader.service',
      `[Service]\nType=notify-reload\nExecStart=${process.execPath} ${server}\nEnvironment=PORT=0 SERVER_CONFIG=${config}\n`,
    );
    await d.call('DaemonReload');
    assert.equal((await d.call<{ job: { result: string } }>('Start', { name: 'reloader' })).job.result, 'done');
    writeFileSync(config, '{"greeting":"bonjour"}');
    const { job } = await d.call<{ job: { result: string } }>('Reload', { name: 'reloader' });
    assert.equal(job.result, 'done');
    const s = await status(d, 'reloader');
    assert.equal(s.activeState, 'active');
    assert.equal(s.subState, 'running');
    await d.call('Stop', { name: 'reloader' });
  });
});

describe('holdfast logs -f', () => {
  it('follows a unit with no gap and no duplicate after the last N lines', async () => {
    const d = await startTestDaemon({ 'tick.service': "[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done'\n" });
    try {
      await d.call('Start', { name: 'tick' });
      await eventually(async () => ((await logText(d, 'tick')).includes('tick 5') ? true : undefined), 'five ticks');
      const { spawn } = await import('node:child_process');
      const { HOLDFAST_BIN } = await import('../helpers/cli.js');
      const follower = spawn(process.execPath, [HOLDFAST_BIN, 'logs', '-f', '-n', '3', 'tick'], { env: { ...process.env, HOLDFAST_SOCKET: d.socket, NO_COLOR: '1' } });
      let out = '';
      follower.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      await eventually(() => ((out.match(/tick \d+/g) ?? []).length >= 15 ? true : undefined), 'fifteen followed lines');
      follower.kill('SIGINT');
      await new Promise((r) => follower.once('close', r));
      const numbers = (out.match(/tick (\d+)/g) ?? []).map((m) => Number(m.slice(5)));
      for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[0]! + i, `consecutive: ${numbers.join(',')}`);
      assert.ok(numbers[0]! >= 3, 'starts from the last lines, not the beginning');
    } finally {
      await d.stop();
    }
  });
});
