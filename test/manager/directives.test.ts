import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VarlinkClient } from '../../src/api/varlink/index.js';
import type { ManagerEvent, UnitStatus } from '../../src/manager/types.js';
import { Pidfd } from '../../src/index.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';
import { writtenPid } from '../helpers/processes.js';

const status = unitStatus;

async function start(d: TestDaemon, name: string): Promise<{ result: string; serviceResult: string; activeState: string }> {
  return (await d.call<{ job: { result: string; serviceResult: string; activeState: string } }>('Start', { name })).job;
}

describe('directives on a real daemon', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('User=, Group=, UMask=, WorkingDirectory=, LimitNOFILE=, Environment=, EnvironmentFile=, UnsetEnvironment=, StandardOutput=file:', async () => {
    const out = join(d.dir, 'exec.txt');
    const envFile = join(d.dir, 'env');
    writeFileSync(envFile, '# comment\nFROM_FILE="file value"\nOVERRIDE=file\n');
    d.unit(
      'execctx.service',
      `[Service]
Type=oneshot
User=nobody
Group=nogroup
UMask=0077
WorkingDirectory=/tmp
LimitNOFILE=123:456
Environment="GREETING=hello world" OVERRIDE=unit DROPME=1
EnvironmentFile=${envFile}
EnvironmentFile=-/nonexistent/optional
UnsetEnvironment=DROPME
StandardOutput=truncate:${out}
ExecStart=/bin/sh -c 'id -u; id -g; umask; pwd; ulimit -n; ulimit -Hn; echo "$GREETING|$FROM_FILE|$OVERRIDE|$\${DROPME:-unset}"'
`,
    );
    await d.call('DaemonReload');
    assert.equal((await start(d, 'execctx')).result, 'done');
    const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim();
    const nogroup = spawnSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).stdout.split(':')[2];
    assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [nobody, nogroup, '0077', '/tmp', '123', '456', 'hello world|file value|file|unset']);
  });

  it('a missing required EnvironmentFile= fails the start with result resources', async () => {
    d.unit('noenv.service', `[Service]\nEnvironmentFile=/nonexistent/required\nExecStart=/bin/true\n`);
    await d.call('DaemonReload');
    const job = await start(d, 'noenv');
    assert.equal(job.result, 'failed');
    assert.equal((await status(d, 'noenv')).result, 'resources');
  });

  it('ConditionPathExists= and ExecCondition= skip a start cleanly; ExecCondition= exit 255 fails it', async () => {
    d.unit('cond.service', `[Unit]\nConditionPathExists=/nonexistent\n[Service]\nExecStart=/bin/sleep 600\n`);
    d.unit('execcond.service', `[Service]\nExecCondition=/bin/sh -c 'exit 1'\nExecStart=/bin/sleep 600\n`);
    d.unit('execcondfail.service', `[Service]\nExecCondition=/bin/sh -c 'exit 255'\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    for (const name of ['cond', 'execcond']) {
      const job = await start(d, name);
      assert.equal(job.result, 'skipped', name);
      assert.equal(job.activeState, 'inactive', name);
    }
    const failed = await start(d, 'execcondfail');
    assert.equal(failed.result, 'failed');
    assert.equal((await status(d, 'execcondfail')).activeState, 'failed');
  });

  it('Requires= + After=: a failing dependency keeps the unit from starting; Wants= does not', async () => {
    d.unit('dep-bad.service', `[Service]\nType=oneshot\nExecStart=/bin/false\n`);
    d.unit('needs.service', `[Unit]\nRequires=dep-bad.service\nAfter=dep-bad.service\n[Service]\nExecStart=/bin/sleep 600\n`);
    d.unit('wants.service', `[Unit]\nWants=dep-bad.service\nAfter=dep-bad.service\n[Service]\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    assert.equal((await start(d, 'needs')).result, 'failed');
    assert.equal((await status(d, 'needs')).mainProcess, null);
    assert.equal((await start(d, 'wants')).result, 'done');
    await d.call('Stop', { name: 'wants' });
  });

  it('After= orders the start: the later unit sees the earlier one already done', async () => {
    const marker = join(d.dir, 'first-done');
    d.unit('first.service', `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'sleep 0.3; touch ${marker}'\n`);
    d.unit('second.service', `[Unit]\nRequires=first.service\nAfter=first.service\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'test -e ${marker}'\n`);
    await d.call('DaemonReload');
    assert.equal((await start(d, 'second')).result, 'done');
  });

  it('Conflicts= stops the other unit; PartOf= follows a stop', async () => {
    d.unit('left.service', `[Service]\nExecStart=/bin/sleep 600\n`);
    d.unit('right.service', `[Unit]\nConflicts=left.service\n[Service]\nExecStart=/bin/sleep 600\n`);
    d.unit('part.service', `[Unit]\nPartOf=right.service\n[Service]\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    await start(d, 'left');
    await start(d, 'right');
    assert.equal((await status(d, 'left')).activeState, 'inactive');
    await start(d, 'part');
    await d.call('Stop', { name: 'right' });
    assert.equal((await status(d, 'part')).activeState, 'inactive');
  });

  it('KillMode=process leaves other processes; SuccessExitStatus= and RestartPreventExitStatus= are honoured', async () => {
    const childFile = join(d.dir, 'km-child');
    d.unit('km.service', `[Service]\nKillMode=process\nExecStart=/bin/sh -c 'sleep 600 & echo $! > ${childFile}; exec sleep 600'\n`);
    d.unit('okexit.service', `[Service]\nExecStart=/bin/sh -c 'exit 42'\nSuccessExitStatus=42\n`);
    d.unit('noretry.service', `[Service]\nExecStart=/bin/sh -c 'exit 7'\nRestart=always\nRestartPreventExitStatus=7\n`);
    await d.call('DaemonReload');
    await start(d, 'km');
    const childPid = await eventually(() => writtenPid(childFile), 'child pid');
    using child = Pidfd.open(childPid);
    await d.call('Stop', { name: 'km' });
    assert.equal(child.isAlive(), true, 'KillMode=process spares the rest');
    child.signal('SIGKILL');
    await start(d, 'okexit');
    const ok = await eventually(async () => {
      const s = await status(d, 'okexit');
      return s.activeState === 'inactive' && s.lastExit !== null ? s : undefined;
    }, 'okexit to end');
    assert.equal(ok.result, 'success');
    await start(d, 'noretry');
    const nr = await eventually(async () => {
      const s = await status(d, 'noretry');
      return s.activeState === 'failed' ? s : undefined;
    }, 'noretry to fail');
    assert.equal(nr.restarts, 0);
  });

  it('TimeoutStartSec= fails a notify service that never says READY=1, and kills it', async () => {
    d.unit('mute.service', `[Service]\nType=notify\nTimeoutStartSec=400ms\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    const job = await start(d, 'mute');
    assert.equal(job.result, 'failed');
    assert.equal(job.serviceResult, 'timeout');
    assert.equal((await status(d, 'mute')).mainProcess, null);
  });

  it('streams state changes to a Subscribe call', async () => {
    d.unit('watched.service', `[Service]\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    const client = await VarlinkClient.connect(d.socket);
    const events: ManagerEvent[] = [];
    const stream = client.callMore<{ event: ManagerEvent }>('io.holdfast.Manager.Subscribe', {});
    const collecting = (async () => {
      for await (const reply of stream) {
        events.push(reply.event);
        if (reply.event.type === 'state' && reply.event.unit === 'watched.service' && reply.event.activeState === 'inactive') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await start(d, 'watched');
    await d.call('Stop', { name: 'watched' });
    await collecting;
    await client.close();
    const states = events.filter((e): e is Extract<ManagerEvent, { type: 'state' }> => e.type === 'state' && e.unit === 'watched.service').map((e) => `${e.activeState}/${e.subState}`);
    assert.deepEqual(states, ['activating/condition', 'activating/start', 'active/running', 'deactivating/stop-sigterm', 'inactive/dead']);
  });

  it('UnitByProcess names the unit of a process, from a ProcessId or for the caller (pid 0)', async () => {
    d.unit('owner.service', `[Service]\nExecStart=/bin/sh -c 'sleep 600 & exec sleep 600'\n`);
    await d.call('DaemonReload');
    await start(d, 'owner');
    const main = (await status(d, 'owner')).mainProcess!;
    const reply = await d.call<{ unit: string; process: { pid: number; pidfdId: number } }>('UnitByProcess', { process: main });
    assert.equal(reply.unit, 'owner.service');
    assert.deepEqual(reply.process.pidfdId, main.pidfdId);
    await assert.rejects(d.call('UnitByProcess', { process: { pid: main.pid, pidfdId: main.pidfdId! + 1 } }), { name: 'io.holdfast.Manager.NoSuchProcess' });
    await assert.rejects(d.call('UnitByProcess', { process: { pid: 0 } }), { name: 'io.holdfast.Manager.ProcessNotInUnit' });
    await d.call('Stop', { name: 'owner' });
  });

  it('speaks org.varlink.service to a client that is not ours', () => {
    const py = spawnSync(
      'python3',
      [
        '-c',
        `import socket, json, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(sys.argv[1])
def call(m, p):
    c.sendall(json.dumps({"method": m, "parameters": p}).encode() + b"\\0")
    buf = b""
    while not buf.endswith(b"\\0"): buf += c.recv(65536)
    return json.loads(buf[:-1])
info = call("org.varlink.service.GetInfo", {})
desc = call("org.varlink.service.GetInterfaceDescription", {"interface": "io.holdfast.Manager"})
print(json.dumps({"interfaces": info["parameters"]["interfaces"], "head": desc["parameters"]["description"].split("\\n")[1]}))`,
        d.socket,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(py.status, 0, py.stderr);
    const out = JSON.parse(py.stdout) as { interfaces: string[]; head: string };
    assert.ok(out.interfaces.includes('io.holdfast.Manager'));
    assert.ok(out.interfaces.includes('org.varlink.service'));
    assert.equal(out.head, 'interface io.holdfast.Manager');
  });

  it('enable marks a unit to start with the daemon; disable undoes it; a unit without [Install] refuses', async () => {
    d.unit('boot.service', `[Service]\nExecStart=/bin/sleep 600\n[Install]\nWantedBy=multi-user.target\n`);
    d.unit('static.service', `[Service]\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    const enabled = await d.cli(['enable', 'boot']);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal((await status(d, 'boot')).enabled, 'enabled');
    const refused = await d.cli(['enable', 'static']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no \[Install\] section/);
    assert.equal((await d.cli(['disable', 'boot'])).code, 0);
    assert.equal((await status(d, 'boot')).enabled, 'disabled');
  });
});

describe('holdfast status PID', () => {
  it('shows the unit a process belongs to, and says so when it belongs to none', async () => {
    const d = await startTestDaemon({ 'pidowner.service': "[Service]\nExecStart=/bin/sh -c 'sleep 600 & exec sleep 600'\n" });
    try {
      await d.call('Start', { name: 'pidowner' });
      const main = (await status(d, 'pidowner')).mainProcess!;
      const byPid = await d.cli(['status', String(main.pid), '--json']);
      assert.equal(byPid.code, 0, byPid.stderr);
      assert.equal((JSON.parse(byPid.stdout) as UnitStatus).name, 'pidowner.service');
      const byRef = await d.cli(['status', `${main.pid}:${main.pidfdId! + 1}`]);
      assert.equal(byRef.code, 1);
      assert.match(byRef.stderr, /no such process/);
      const stranger = await d.cli(['status', String(process.pid)]);
      assert.equal(stranger.code, 1);
      assert.match(stranger.stderr, /belongs to no unit/);
    } finally {
      await d.stop();
    }
  });
});
