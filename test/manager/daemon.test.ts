import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { UnitStatus } from '../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';
import { pythonPidfdId } from '../helpers/processes.js';

function readEnv(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\0')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

const status = unitStatus;

describe('holdfast daemon: lifecycle and the v258 environment', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('hands each Exec*= kind exactly the variables of spec section 2, with ids that verify', async () => {
    const out = d.dir;
    const dump = (name: string): string => `/bin/sh -c 'cat /proc/self/environ > ${out}/${name}.env'`;
    d.unit(
      'envcheck.service',
      `[Service]
ExecCondition=${dump('condition')}
ExecStartPre=${dump('pre')}
ExecStart=/bin/sh -c 'cat /proc/self/environ > ${out}/main.env; exec sleep 600'
ExecStartPost=${dump('post')}
ExecReload=${dump('reload')}
ExecStop=${dump('stop')}
ExecStopPost=${dump('stoppost')}
`,
    );
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string } }>('Start', { name: 'envcheck.service' });
    assert.equal(job.result, 'done');
    const running = await status(d, 'envcheck');
    assert.equal(running.activeState, 'active');
    assert.equal(running.subState, 'running');
    const main = running.mainProcess!;
    assert.equal(BigInt(main.pidfdId!), pythonPidfdId(main.pid), 'the status shows the real pidfd id');
    assert.equal((await d.call<{ job: { result: string } }>('Reload', { name: 'envcheck' })).job.result, 'done');
    await d.call('Stop', { name: 'envcheck' });

    const daemonId = pythonPidfdId(d.process.pid!);
    const env = Object.fromEntries(['condition', 'pre', 'main', 'post', 'reload', 'stop', 'stoppost'].map((k) => [k, readEnv(join(out, `${k}.env`))]));
    for (const [kind, vars] of Object.entries(env)) {
      assert.equal(vars['MANAGERPID'], String(d.process.pid), `${kind}: MANAGERPID`);
      assert.equal(vars['MANAGERPIDFDID'], String(daemonId), `${kind}: MANAGERPIDFDID`);
      assert.equal(vars['INVOCATION_ID'], running.invocationId, `${kind}: INVOCATION_ID`);
      assert.equal(vars['NOTIFY_SOCKET'], undefined, `${kind}: NotifyAccess=none gives no NOTIFY_SOCKET`);
    }
    assert.match(running.invocationId!, /^[0-9a-f]{32}$/);
    for (const kind of ['condition', 'pre', 'main', 'stoppost']) {
      assert.equal(env[kind]!['MAINPID'], undefined, `${kind} must not get MAINPID`);
      assert.equal(env[kind]!['MAINPIDFDID'], undefined, `${kind} must not get MAINPIDFDID`);
    }
    for (const kind of ['post', 'reload', 'stop']) {
      assert.equal(env[kind]!['MAINPID'], String(main.pid), `${kind}: MAINPID`);
      assert.equal(env[kind]!['MAINPIDFDID'], String(main.pidfdId), `${kind}: MAINPIDFDID`);
    }
    assert.equal(env['stoppost']!['SERVICE_RESULT'], 'success');
  });

  it('Type=notify: start returns once systemd-notify sends READY=1, with STATUS= and NOTIFY_SOCKET for main only', async (t) => {
    if (spawnSync('systemd-notify', ['--version']).error !== undefined) return t.skip('systemd-notify is not installed');
    d.unit(
      'notifier.service',
      `[Service]
Type=notify
NotifyAccess=all
ExecStartPre=/bin/sh -c 'echo "pre:$NOTIFY_SOCKET" > ${d.dir}/notify-pre'
ExecStart=/bin/sh -c 'echo "main:$NOTIFY_SOCKET" > ${d.dir}/notify-main; sleep 0.3; systemd-notify --ready --status="warmed up"; exec sleep 600'
`,
    );
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string; activeState: string } }>('Start', { name: 'notifier' });
    assert.equal(job.result, 'done');
    assert.equal(job.activeState, 'active');
    const s = await status(d, 'notifier');
    assert.equal(s.statusText, 'warmed up');
    assert.match(readFileSync(join(d.dir, 'notify-main'), 'utf8'), /^main:\/.+notify\n$/);
    assert.match(readFileSync(join(d.dir, 'notify-pre'), 'utf8'), /^pre:\/.+notify\n$/, 'NotifyAccess=all gives control processes the socket too');
    await d.call('Stop', { name: 'notifier' });
  });

  it('Restart=on-failure restarts a crashed service; Restart=no leaves it failed', async () => {
    d.unit('crasher.service', `[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 3'\nRestart=on-failure\nRestartSec=50ms\nStartLimitIntervalSec=0\n`);
    d.unit('once.service', `[Service]\nExecStart=/bin/sh -c 'exit 4'\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'crasher' });
    const restarted = await eventually(async () => {
      const s = await status(d, 'crasher');
      return s.restarts >= 2 ? s : undefined;
    }, 'two restarts');
    assert.deepEqual(restarted.lastExit, { code: 3, signal: null });
    await d.call('Stop', { name: 'crasher' });
    assert.equal((await status(d, 'crasher')).activeState, 'inactive');

    await d.call('Start', { name: 'once' });
    const failed = await eventually(async () => {
      const s = await status(d, 'once');
      return s.activeState === 'failed' ? s : undefined;
    }, 'once.service to fail');
    assert.equal(failed.result, 'exit-code');
    assert.equal(failed.restarts, 0);
    assert.equal((await d.cli(['is-failed', 'once'])).code, 0);
    assert.equal((await d.cli(['is-active', 'once'])).code, 3);
    await d.call('ResetFailed', { name: 'once' });
    assert.equal((await status(d, 'once')).activeState, 'inactive');
  });

  it('stops at the start rate limit with result start-limit-hit', async () => {
    d.unit('flappy.service', `[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nExecStart=/bin/false\nRestart=always\nRestartSec=10ms\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'flappy' });
    const s = await eventually(async () => {
      const st = await status(d, 'flappy');
      return st.result === 'start-limit-hit' ? st : undefined;
    }, 'start-limit-hit');
    assert.equal(s.activeState, 'failed');
    assert.equal(s.restarts, 3, 'the third restart was attempted and refused, as systemd counts it');
  });

  it('escalates to SIGKILL after TimeoutStopSec= for a process that ignores SIGTERM, and kills the whole session', async () => {
    d.unit(
      'stubborn.service',
      `[Service]\nExecStart=/bin/sh -c 'trap "" TERM; sleep 600 & echo $! > ${d.dir}/child; while :; do sleep 0.1; done'\nTimeoutStopSec=500ms\n`,
    );
    await d.call('DaemonReload');
    await d.call('Start', { name: 'stubborn' });
    const childPid = await eventually(() => (existsSync(join(d.dir, 'child')) ? Number(readFileSync(join(d.dir, 'child'), 'utf8')) : undefined), 'the child PID');
    using child = Pidfd.open(childPid);
    const { job } = await d.call<{ job: { result: string; serviceResult: string } }>('Stop', { name: 'stubborn' });
    assert.equal(job.result, 'done');
    assert.equal(child.isAlive(), false, 'the background child was killed too');
    const s = await status(d, 'stubborn');
    assert.equal(s.activeState, 'failed');
    assert.equal(s.result, 'timeout');
  });

  it('oneshot with RemainAfterExit stays active (exited) with no main process', async () => {
    d.unit('setup.service', `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\nExecStart=/bin/sh -c 'echo second'\n`);
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string } }>('Start', { name: 'setup' });
    assert.equal(job.result, 'done');
    const s = await status(d, 'setup');
    assert.equal(s.activeState, 'active');
    assert.equal(s.subState, 'exited');
    assert.equal(s.mainProcess, null);
  });

  it('a main process that ends while ExecStartPost= runs is not left as a dead "running" main process', async () => {
    d.unit('diespost.service', `[Service]\nExecStart=/bin/sh -c 'exit 3'\nExecStartPost=/bin/sleep 0.3\n`);
    d.unit('donepost.service', `[Service]\nExecStart=/bin/true\nExecStartPost=/bin/sleep 0.3\n`);
    d.unit('keptpost.service', `[Service]\nRemainAfterExit=yes\nExecStart=/bin/true\nExecStartPost=/bin/sleep 0.3\n`);
    await d.call('DaemonReload');
    const failed = await d.call<{ job: { result: string } }>('Start', { name: 'diespost' });
    assert.equal(failed.job.result, 'failed');
    const dies = await status(d, 'diespost');
    assert.deepEqual([dies.activeState, dies.result, dies.mainProcess, dies.lastExit], ['failed', 'exit-code', null, { code: 3, signal: null }]);
    await d.call('Start', { name: 'donepost' });
    const done = await eventually(async () => {
      const st = await status(d, 'donepost');
      return st.activeState === 'inactive' ? st : undefined;
    }, 'donepost to end');
    assert.deepEqual([done.result, done.mainProcess], ['success', null]);
    await d.call('Start', { name: 'keptpost' });
    const kept = await status(d, 'keptpost');
    assert.deepEqual([kept.activeState, kept.subState, kept.mainProcess], ['active', 'exited', null]);
  });

  it('Type=forking adopts the daemon named by PIDFile= (verified to be of the unit)', async () => {
    const pidFile = join(d.dir, 'forker.pid');
    d.unit('forker.service', `[Service]\nType=forking\nPIDFile=${pidFile}\nExecStart=/bin/sh -c 'sleep 600 & echo $! > ${pidFile}'\n`);
    await d.call('DaemonReload');
    const { job } = await d.call<{ job: { result: string } }>('Start', { name: 'forker' });
    assert.equal(job.result, 'done');
    const s = await status(d, 'forker');
    assert.equal(s.mainProcess!.pid, Number(readFileSync(pidFile, 'utf8')));
    using main = Pidfd.verify(s.mainProcess!.pid, s.mainProcess!.pidfdId!);
    await d.call('Stop', { name: 'forker' });
    assert.equal((await main.exited).signal, 'SIGTERM');
  });

  it('captures output into holdfast logs with the writer pid', async () => {
    d.unit('talker.service', `[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo hello out; echo hello err >&2'\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'talker' });
    const lines = await eventually(async () => {
      const { stdout } = await d.cli(['logs', 'talker', '--json']);
      const records = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { stream: string; message: string; pid: number });
      return records.some((r) => r.message === 'hello err') ? records : undefined;
    }, 'logs');
    const out = lines.find((r) => r.message === 'hello out')!;
    const err = lines.find((r) => r.message === 'hello err')!;
    assert.equal(out.stream, 'stdout');
    assert.equal(err.stream, 'stderr');
    assert.equal(out.pid, err.pid);
  });

  it('holdfast run starts a transient service', async () => {
    const marker = join(d.dir, 'ran');
    const { code, stderr } = await d.cli(['run', '--unit', 'adhoc', '-p', 'Type=oneshot', '--', '/bin/sh', '-c', `echo '$HOME %n' > ${marker}`]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /Running as unit: adhoc.service/);
    assert.equal(readFileSync(marker, 'utf8'), '$HOME %n\n', 'arguments are taken literally');
  });

  it('a unit file with errors does not load, says why, and the rest keep running', async () => {
    d.unit('keeper.service', `[Service]\nExecStart=/bin/sleep 600\n`);
    d.unit('broken.service', `[Service]\nExecStart=/bin/true\nRestart=sometimes\nTimeoutStopSec=soon\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'keeper' });
    const reply = await d.call<{ loaded: number; failed: number }>('DaemonReload');
    assert.equal(reply.failed, 1);
    const broken = await status(d, 'broken');
    assert.equal(broken.loadState, 'error');
    assert.ok(broken.loadErrors!.some((e) => /broken\.service:3: .*Restart/.test(e)), broken.loadErrors!.join('\n'));
    const start = await d.cli(['start', 'broken']);
    assert.equal(start.code, 1);
    assert.match(start.stderr, /failed to load/);
    assert.equal((await status(d, 'keeper')).activeState, 'active');
    await d.call('Stop', { name: 'keeper' });
  });

  it('survives garbage on the notify socket and on the control socket', async () => {
    const notify = join(d.socket, '..', '..', 'run', 'notify');
    const socketPath = existsSync(notify) ? notify : join(d.socket, '..', 'notify');
    const py = spawnSync(
      'python3',
      [
        '-c',
        `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for m in [b'\\0\\0\\0', b'READY=1\\0X', b'x'*5000, b'MAINPID=abc', b'BARRIER=1', bytes(range(256))]:
    s.sendto(m, sys.argv[1])
c=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[2])
c.sendall(b'{not json}\\0' + b'\\xff'*100 + b'\\0' + b'{"method":"io.holdfast.Manager.Start","parameters":{"name":42}}\\0')
c.settimeout(2)
try:
    print(len(c.recv(65536)))
except Exception as e:
    print('closed', e)
`,
        socketPath,
        d.socket,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(py.status, 0, py.stderr);
    const list = await d.cli(['list', '--json']);
    assert.equal(list.code, 0);
    assert.equal(d.process.exitCode, null, 'the daemon is still running');
  });
});

describe('holdfast daemon: status output and exit codes', () => {
  it('prints a status block and uses systemctl\'s exit codes', async () => {
    const d = await startTestDaemon({ 'web.service': '[Unit]\nDescription=Web thing\n[Service]\nExecStart=/bin/sleep 600\n' });
    try {
      assert.equal((await d.cli(['start', 'web'])).code, 0);
      const out = await d.cli(['status', 'web']);
      assert.equal(out.code, 0);
      assert.match(out.stdout, /^● web\.service - Web thing$/m);
      assert.match(out.stdout, /Active: active \(running\) since/);
      assert.match(out.stdout, /Main PID: \d+ \(pidfd id \d+\)/);
      const json = JSON.parse((await d.cli(['status', 'web', '--json'])).stdout) as UnitStatus;
      for (const key of ['name', 'description', 'activeState', 'subState', 'result', 'mainProcess', 'restarts', 'lastExit', 'statusText', 'invocationId']) {
        assert.ok(key in json, key);
      }
      assert.equal((await d.cli(['stop', 'web'])).code, 0);
      assert.equal((await d.cli(['status', 'web'])).code, 3);
      assert.equal((await d.cli(['status', 'nope'])).code, 4);
      assert.equal((await d.cli(['start', 'nope'])).code, 5);
      const list = await d.cli(['list']);
      assert.match(list.stdout, /web\.service +loaded +inactive +dead/);
    } finally {
      await d.stop();
    }
  });

  it('exits cleanly on SIGTERM, stopping its services', async () => {
    const d = await startTestDaemon({ 'svc.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    await d.call('Start', { name: 'svc' });
    const main = (await status(d, 'svc')).mainProcess!;
    using handle = Pidfd.verify(main.pid, main.pidfdId!);
    const code = await d.stop();
    assert.equal(code, 0);
    assert.equal(handle.isAlive(), false);
  });

  it('refuses a client with a clear message when no daemon runs', async () => {
    const d = await startTestDaemon();
    const socket = d.socket;
    await d.stop();
    const { holdfast } = await import('../helpers/cli.js');
    const out = await holdfast(['list'], { env: { HOLDFAST_SOCKET: socket } });
    assert.equal(out.code, 1);
    assert.match(out.stderr, /cannot reach the holdfast daemon/);
  });
});
