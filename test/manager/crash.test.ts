import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { LogRecord } from '../../src/manager/types.js';
import { readSlots, SlotWriter } from '../../src/manager/state-slots.js';
import { eventually, startTestDaemon, unitStatus } from '../helpers/daemon.js';

const status = unitStatus;

describe('the daemon dies, the services do not', () => {
  it('after SIGKILL a new daemon re-adopts running services, loses no log line, and learns how a service that died meanwhile ended', async () => {
    const units = {
      'counter.service': "[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.005; done'\n",
      'dies.service': '',
      'speaker.service': '',
    };
    let d = await startTestDaemon(units);
    const gate = join(d.dir, 'gate');
    d.unit('dies.service', `[Service]\nExecStart=/bin/sh -c 'while [ ! -e ${gate} ]; do sleep 0.02; done; exit 3'\nRestart=on-failure\nRestartSec=1h\n`);
    const speak = join(d.dir, 'speak.py');
    writeFileSync(
      speak,
      `import os, socket, time\nwhile not os.path.exists(${JSON.stringify(gate)}): time.sleep(0.02)\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'STATUS=said while no daemon listened', os.environ['NOTIFY_SOCKET'])\ntime.sleep(600)\n`,
    );
    d.unit('speaker.service', `[Service]\nNotifyAccess=main\nExecStart=/usr/bin/env python3 ${speak}\n`);
    await d.call('DaemonReload');
    for (const name of ['counter', 'dies', 'speaker']) await d.call('Start', { name });
    const counterBefore = (await status(d, 'counter')).mainProcess!;
    const diesBefore = (await status(d, 'dies')).mainProcess!;
    using counter = Pidfd.verify(counterBefore.pid, counterBefore.pidfdId!);
    await eventually(async () => ((await d.call<{ records: LogRecord[] }>('Logs', { name: 'counter' })).records.length > 20 ? true : undefined), 'some output');

    await d.crash();
    writeFileSync(gate, '');
    // The services keep running (and writing) while no daemon exists.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(counter.isAlive(), true, 'a service writing into its log pipe survives the daemon (no SIGPIPE)');

    d = await startTestDaemon({}, d.dir);
    try {
      const after = await status(d, 'counter');
      assert.equal(after.activeState, 'active');
      assert.deepEqual(after.mainProcess, counterBefore, 'the same process, by pidfd id, is the main process again');

      const dies = await eventually(async () => {
        const s = await status(d, 'dies');
        return s.lastExit !== null ? s : undefined;
      }, 'the exit of dies.service');
      assert.deepEqual(dies.lastExit, { code: 3, signal: null }, 'exit status through the kept pidfd (PIDFD_INFO_EXIT)');
      assert.equal(dies.subState, 'auto-restart', 'Restart=on-failure applies to an exit seen late');
      assert.notDeepEqual(dies.mainProcess, diesBefore);

      const speaker = await eventually(async () => {
        const s = await status(d, 'speaker');
        return s.statusText !== null ? s : undefined;
      }, 'the queued STATUS=');
      assert.equal(speaker.statusText, 'said while no daemon listened', 'a datagram sent while no daemon listened is not lost');

      await new Promise((r) => setTimeout(r, 300));
      const lines = (await d.call<{ records: LogRecord[] }>('Logs', { name: 'counter' })).records.filter((r) => r.stream === 'stdout').map((r) => Number(r.message.split(' ')[1]));
      assert.equal(lines[0], 1);
      // Every line, once, in order: what the dying daemon had read but not stored is still in the spool.
      for (let i = 1; i < lines.length; i++) assert.equal(lines[i], lines[i - 1]! + 1, `line ${lines[i - 1]! + 1} lost or repeated`);
      assert.ok(lines.length > 100, `lines written while the daemon was down arrived (${lines.length})`);
      const keeper = JSON.parse(readFileSync(join(d.dir, 'state', 'keeper.json'), 'utf8')) as { pid: number };
      assert.ok(existsSync(`/proc/${keeper.pid}`), 'a new keeper runs');
    } finally {
      await d.stop();
    }
    assert.equal(counter.isAlive(), false, 'a clean stop of the new daemon stops the re-adopted service');
  });

  it('reads the state.json of a holdfast from before the slotted record (an upgrade by restart or daemon-reexec), then replaces it', async () => {
    let d = await startTestDaemon({ 'old.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    await d.call('Start', { name: 'old' });
    const main = (await status(d, 'old')).mainProcess!;
    await d.crash();
    const stateDir = join(d.dir, 'state');
    const state = readSlots<object>(join(stateDir, 'state'))!;
    rmSync(join(stateDir, 'state.0'));
    rmSync(join(stateDir, 'state.1'));
    writeFileSync(join(stateDir, 'state.json'), JSON.stringify(state));
    d = await startTestDaemon({}, d.dir);
    try {
      assert.deepEqual((await status(d, 'old')).mainProcess, main, 're-adopted from the old format');
      await eventually(() => (!existsSync(join(stateDir, 'state.json')) ? true : undefined), 'the old file to go');
      assert.ok(readSlots(join(stateDir, 'state')) !== undefined);
    } finally {
      await d.stop();
    }
  });

  it('a recorded main process whose PID was taken by another is never adopted', async () => {
    let d = await startTestDaemon({ 'short.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    await d.call('Start', { name: 'short' });
    const main = (await status(d, 'short')).mainProcess!;
    const keeperPath = join(d.dir, 'state', 'keeper.json');
    await eventually(() => (existsSync(keeperPath) && readFileSync(keeperPath, 'utf8').includes('pidfd:') ? true : undefined), 'the keeper to hold the pidfd');
    await d.crash();
    // Forge the record: same PID, another id, as if the PID had been reused while the daemon was down.
    const statePath = join(d.dir, 'state', 'state');
    const state = readSlots<{ units: { name: string; main: { pid: number; pidfdId: number } | null }[] }>(statePath)!;
    for (const unit of state.units) if (unit.name === 'short.service' && unit.main !== null) unit.main.pidfdId += 1000000;
    const forger = new SlotWriter(statePath);
    forger.write(state);
    forger.close();
    const keeper = JSON.parse(readFileSync(keeperPath, 'utf8')) as { entries: { kind: string }[] };
    keeper.entries = keeper.entries.filter((e) => e.kind !== 'pidfd');
    writeFileSync(keeperPath, JSON.stringify(keeper));
    using original = Pidfd.verify(main.pid, main.pidfdId!);
    // A process that took over a recycled PID would sit outside the unit's cgroup: put it there.
    const cgroupLine = /^0::(.*)$/m.exec(readFileSync(`/proc/${main.pid}/cgroup`, 'utf8'))?.[1] ?? '';
    if (cgroupLine.endsWith('/short.service')) {
      const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2')![4]!;
      writeFileSync(join(mount, 'cgroup.procs'), String(main.pid));
    }
    d = await startTestDaemon({}, d.dir);
    try {
      const s = await status(d, 'short');
      assert.notEqual(s.mainProcess?.pidfdId, main.pidfdId! + 1000000);
      assert.equal(original.isAlive(), true, 'the process that really has the PID was not signalled');
      assert.match((await d.cli(['logs', 'short'])).stdout, /ended while no daemon was watching|cannot be re-adopted/);
    } finally {
      await d.stop();
      original.signal('SIGKILL');
    }
  });
});

describe('the daemon killed mid-job', () => {
  it('mid-start: a Type=notify service still waiting for READY=1 becomes active when it arrives at the new daemon', async () => {
    let d = await startTestDaemon();
    const gate = join(d.dir, 'ready-gate');
    d.unit('slowstart.service', `[Service]\nType=notify\nNotifyAccess=all\nExecStart=/bin/sh -c 'while [ ! -e ${gate} ]; do sleep 0.05; done; systemd-notify --ready; exec sleep 600'\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'slowstart', noBlock: true });
    const starting = await eventually(async () => {
      const s = await status(d, 'slowstart');
      return s.subState === 'start' && s.mainProcess !== null ? s : undefined;
    }, 'the start to be under way');
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const waiting = await status(d, 'slowstart');
      assert.equal(waiting.activeState, 'activating');
      writeFileSync(gate, '');
      const s = await eventually(async () => {
        const st = await status(d, 'slowstart');
        return st.activeState === 'active' ? st : undefined;
      }, 'READY=1 at the new daemon');
      assert.deepEqual(s.mainProcess, starting.mainProcess);
    } finally {
      await d.stop();
    }
  });

  it('mid-stop: the new daemon finishes the stop and does not restart the unit', async () => {
    let d = await startTestDaemon({ 'slowstop.service': "[Service]\nExecStart=/bin/sh -c 'trap \"sleep 1; exit 0\" TERM; while :; do sleep 0.05; done'\nRestart=always\nTimeoutStopSec=20s\n" });
    await d.call('Start', { name: 'slowstop' });
    const main = (await status(d, 'slowstop')).mainProcess!;
    using handle = Pidfd.verify(main.pid, main.pidfdId!);
    await d.call('Stop', { name: 'slowstop', noBlock: true });
    await eventually(async () => ((await status(d, 'slowstop')).activeState === 'deactivating' ? true : undefined), 'the stop to be under way');
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const s = await eventually(async () => {
        const st = await status(d, 'slowstop');
        return st.activeState === 'inactive' ? st : undefined;
      }, 'the stop to finish');
      assert.equal(s.mainProcess, null);
      assert.equal(handle.isAlive(), false);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await status(d, 'slowstop')).activeState, 'inactive', 'not restarted');
    } finally {
      await d.stop();
    }
  });
});

describe('the daemon killed mid-restart', () => {
  it('a unit waiting in auto-restart is restarted by the new daemon', async () => {
    let d = await startTestDaemon();
    const marker = join(d.dir, 'starts');
    d.unit('bouncy.service', `[Service]\nExecStart=/bin/sh -c 'echo x >> ${marker}; exit 1'\nRestart=on-failure\nRestartSec=1s\nStartLimitIntervalSec=0\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'bouncy' });
    await eventually(async () => ((await status(d, 'bouncy')).subState === 'auto-restart' ? true : undefined), 'auto-restart');
    await d.crash();
    const before = readFileSync(marker, 'utf8').length;
    d = await startTestDaemon({}, d.dir);
    try {
      await eventually(() => (readFileSync(marker, 'utf8').length > before ? true : undefined), 'the restart by the new daemon');
    } finally {
      await d.stop();
    }
  });
});

describe('PID reuse while the daemon is down (real, in a PID namespace)', () => {
  it('a new daemon never adopts the process that took a dead service\'s PID', async (t) => {
    const { pidReuseUnsupported, runInFreshPidNamespace } = await import('../helpers/pid-reuse.js');
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(reason);
    const { fileURLToPath } = await import('node:url');
    const result = await runInFreshPidNamespace<{
      recorded: { pid: number; pidfdId: number };
      usurperPid: number;
      usurperId: string;
      after: { activeState: string; mainProcess: { pid: number; pidfdId: number } | null };
      usurperAliveAfterRestart: boolean;
      refusedInLog: boolean;
    }>(fileURLToPath(new URL('./scenarios/reuse-while-down.js', import.meta.url)));
    assert.equal(result.usurperPid, result.recorded.pid, 'the PID came round to another process');
    assert.notEqual(result.usurperId, String(result.recorded.pidfdId));
    assert.equal(result.refusedInLog, true, 'the new daemon refused the recorded PID (ESTALE)');
    assert.notEqual(result.after.mainProcess?.pidfdId, Number(result.usurperId), 'the usurper is not the main process');
    assert.equal(result.usurperAliveAfterRestart, true, 'the usurper was not signalled');
  });
});
