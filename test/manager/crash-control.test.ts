/**
 * The daemon SIGKILLed while a control process (ExecStartPre=, ExecStop=, ExecReload=, …) runs: a
 * new daemon on the same directory re-adopts it if it verifies, waits for it, and goes on from
 * there; it never spawns a command twice, never loses or orphans a process, and never signals a
 * process it could not verify. Real processes, real signals; shell scripts leave markers.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { ControlRecord, DaemonState, UnitStatus } from '../../src/manager/types.js';
import { readSlots, SlotWriter } from '../../src/manager/state-slots.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

const status = unitStatus;

/** Lines a unit's scripts appended to a marker file ([] while there is none). */
function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** A shell loop that waits for `gate` to exist. */
function waitFor(gate: string): string {
  return `while [ ! -e ${gate} ]; do sleep 0.05; done`;
}

/** Waits until the daemon's state record has command `index` of list `kind` as `unit`'s control process, and the keeper holds its pidfd. */
async function recordedControl(d: TestDaemon, unit: string, kind: ControlRecord['kind'], index = 0): Promise<ControlRecord> {
  const control = await eventually(() => {
    const state = readSlots<DaemonState>(join(d.dir, 'state', 'state'));
    const record = state?.units.find((u) => u.name === unit)?.control;
    return record?.kind === kind && record.index === index ? record : undefined;
  }, `the state record to have the ${kind} process ${index} of ${unit}`);
  const keeperPath = join(d.dir, 'state', 'keeper.json');
  await eventually(
    () => (existsSync(keeperPath) && readFileSync(keeperPath, 'utf8').includes(`"pidfd:${control.process.pid}:`) ? true : undefined),
    `the keeper to hold the pidfd of ${unit}'s ${kind} process`,
  );
  return control;
}

/** The part of a test before the crash: if it fails, the daemon is stopped so that no service is left behind. */
async function beforeCrash<T>(d: TestDaemon, steps: () => Promise<T>): Promise<T> {
  try {
    return await steps();
  } catch (error) {
    await d.stop();
    throw error;
  }
}

/** Waits for a unit to reach a state, and returns its status then. */
function reaches(d: TestDaemon, unit: string, check: (s: UnitStatus) => boolean, what: string): Promise<UnitStatus> {
  return eventually(async () => {
    const s = await status(d, unit);
    return check(s) ? s : undefined;
  }, `${unit}: ${what}`, 600);
}

describe('the daemon killed while a control process runs', () => {
  it('mid-ExecStartPre=: the new daemon waits for the same process, then runs the rest once and starts the main process once', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const gate = join(d.dir, 'gate');
    d.unit(
      'prep.service',
      [
        '[Service]',
        `ExecStartPre=/bin/sh -c 'echo pre1 >> ${runs}'`,
        `ExecStartPre=/bin/sh -c 'echo pre2 >> ${runs}; ${waitFor(gate)}; echo pre2-done >> ${runs}'`,
        `ExecStartPre=/bin/sh -c 'echo pre3 >> ${runs}'`,
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        '',
      ].join('\n'),
    );
    const control = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'prep', noBlock: true });
      // The second ExecStartPre= is the one that waits.
      return recordedControl(d, 'prep.service', 'start-pre', 1);
    });
    using pre = Pidfd.verify(control.process.pid, control.process.pidfdId!);

    await d.crash();
    assert.equal(pre.isAlive(), true, 'the control process outlives the daemon');
    d = await startTestDaemon({}, d.dir);
    let mainHandle: Pidfd | undefined;
    try {
      const waiting = await status(d, 'prep');
      assert.equal(waiting.activeState, 'activating');
      assert.equal(waiting.subState, 'start-pre');
      assert.equal(waiting.controlProcess?.pid, control.process.pid);
      assert.equal(waiting.controlProcess?.pidfdId, control.process.pidfdId, 'the same process, by pidfd id, is the control process again');
      assert.equal(waiting.mainProcess, null, 'no main process before ExecStartPre= is done');

      writeFileSync(gate, '');
      const active = await reaches(d, 'prep', (s) => s.activeState === 'active' && s.mainProcess !== null, 'active');
      assert.equal(active.subState, 'running');
      assert.equal(active.controlProcess, null);
      assert.equal((await pre.exited).code, 0);
      mainHandle = Pidfd.verify(active.mainProcess!.pid, active.mainProcess!.pidfdId!);
      await eventually(() => (lines(runs).includes('main') ? true : undefined), 'the main process to run');
      assert.deepEqual(lines(runs), ['pre1', 'pre2', 'pre2-done', 'pre3', 'main'], 'every command ran once, in order, and the main process started once');
      assert.match((await d.cli(['logs', 'prep'])).stdout, /re-adopted start-pre command/);
    } finally {
      await d.stop();
    }
    assert.equal(mainHandle?.isAlive(), false, 'the main process is stopped with the daemon, not left behind');
    mainHandle?.close();
  });

  it('mid-ExecStop=: the stop completes (ExecStop= once, kill phase, ExecStopPost=), the main process is gone and nothing restarts', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const gate = join(d.dir, 'gate');
    d.unit(
      'stopper.service',
      [
        '[Service]',
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        `ExecStop=/bin/sh -c 'echo stop >> ${runs}; ${waitFor(gate)}; echo stop-done >> ${runs}'`,
        `ExecStopPost=/bin/sh -c 'echo stop-post >> ${runs}'`,
        'Restart=always',
        'RestartSec=0',
        '',
      ].join('\n'),
    );
    const { main, control } = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'stopper' });
      const running = (await status(d, 'stopper')).mainProcess!;
      // The start job of a Type=simple unit is done at the spawn; its first line may come later.
      await eventually(() => (lines(runs).includes('main') ? true : undefined), 'the main process to run');
      await d.call('Stop', { name: 'stopper', noBlock: true });
      return { main: running, control: await recordedControl(d, 'stopper.service', 'stop') };
    });
    using mainHandle = Pidfd.verify(main.pid, main.pidfdId!);
    using stop = Pidfd.verify(control.process.pid, control.process.pidfdId!);

    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const stopping = await status(d, 'stopper');
      assert.equal(stopping.activeState, 'deactivating');
      assert.equal(stopping.subState, 'stop');
      assert.equal(stopping.controlProcess?.pidfdId, control.process.pidfdId);
      assert.equal(mainHandle.isAlive(), true, 'the main process is not killed before ExecStop= is done');

      writeFileSync(gate, '');
      const s = await reaches(d, 'stopper', (st) => st.activeState === 'inactive', 'inactive');
      assert.equal(s.mainProcess, null);
      assert.equal(s.controlProcess, null);
      assert.equal((await stop.exited).code, 0);
      assert.equal((await mainHandle.exited).signal, 'SIGTERM', 'the new daemon\'s kill phase ended the main process');
      assert.deepEqual(lines(runs), ['main', 'stop', 'stop-done', 'stop-post']);
      await new Promise((r) => setTimeout(r, 500));
      const later = await status(d, 'stopper');
      assert.equal(later.activeState, 'inactive', 'an asked-for stop is not followed by Restart=always');
      assert.equal(later.restarts, s.restarts);
      assert.deepEqual(lines(runs), ['main', 'stop', 'stop-done', 'stop-post'], 'nothing ran again');
    } finally {
      await d.stop();
    }
  });

  it('mid-ExecReload=: the reload completes, the next ExecReload= runs once, and the main process is untouched (same pidfd id)', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const gate = join(d.dir, 'gate');
    d.unit(
      'reloader.service',
      [
        '[Service]',
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        `ExecReload=/bin/sh -c 'echo reload1 >> ${runs}; ${waitFor(gate)}; echo reload1-done >> ${runs}'`,
        `ExecReload=/bin/sh -c 'echo reload2 >> ${runs}'`,
        '',
      ].join('\n'),
    );
    const { main, control } = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'reloader' });
      const running = (await status(d, 'reloader')).mainProcess!;
      await eventually(() => (lines(runs).includes('main') ? true : undefined), 'the main process to run');
      await d.call('Reload', { name: 'reloader', noBlock: true });
      return { main: running, control: await recordedControl(d, 'reloader.service', 'reload', 0) };
    });
    using mainHandle = Pidfd.verify(main.pid, main.pidfdId!);

    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const reloading = await status(d, 'reloader');
      assert.equal(reloading.activeState, 'reloading');
      assert.equal(reloading.controlProcess?.pidfdId, control.process.pidfdId);
      writeFileSync(gate, '');
      const s = await reaches(d, 'reloader', (st) => st.activeState === 'active' && st.controlProcess === null, 'active again');
      assert.equal(s.subState, 'running');
      assert.deepEqual(s.mainProcess, main, 'the same main process, by pidfd id');
      assert.equal(mainHandle.isAlive(), true);
      assert.deepEqual(lines(runs), ['main', 'reload1', 'reload1-done', 'reload2']);
      assert.doesNotMatch((await d.cli(['logs', 'reloader'])).stdout, /main process \d+ (exited|killed)/);
    } finally {
      await d.stop();
    }
    assert.equal(mainHandle.isAlive(), false);
  });

  it('a control process that fails while no daemon runs: its recorded exit decides, the unit fails, and the restart policy applies', async () => {
    let d = await startTestDaemon();
    const gate = join(d.dir, 'gate');
    const runs = { once: join(d.dir, 'runs-once'), again: join(d.dir, 'runs-again'), ignored: join(d.dir, 'runs-ignored') };
    const unit = (marker: string, restart: string, prefix = ''): string =>
      [
        '[Service]',
        `ExecStartPre=${prefix}/bin/sh -c 'echo pre >> ${marker}; ${waitFor(gate)}; exit 7'`,
        `ExecStart=/bin/sh -c 'echo main >> ${marker}; exec sleep 600'`,
        `Restart=${restart}`,
        'RestartSec=1h',
        '',
      ].join('\n');
    d.unit('once.service', unit(runs.once, 'no'));
    d.unit('again.service', unit(runs.again, 'on-failure'));
    d.unit('ignored.service', unit(runs.ignored, 'no', '-'));
    const controls = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      for (const name of ['once', 'again', 'ignored']) await d.call('Start', { name, noBlock: true });
      const found: ControlRecord[] = [];
      for (const name of ['once', 'again', 'ignored']) found.push(await recordedControl(d, `${name}.service`, 'start-pre'));
      return found;
    });
    const handles = controls.map((c) => Pidfd.verify(c.process.pid, c.process.pidfdId!));

    await d.crash();
    writeFileSync(gate, '');
    for (const handle of handles) {
      // Not our child: its status comes once init has reaped it.
      const ended = await handle.exited;
      assert.ok(ended.code === 7 || ended.code === null, `the control process ended by itself (${JSON.stringify(ended)})`);
      handle.close();
    }
    d = await startTestDaemon({}, d.dir);
    try {
      const once = await reaches(d, 'once', (s) => s.activeState === 'failed', 'failed');
      assert.equal(once.result, 'exit-code');
      assert.equal(once.mainProcess, null);
      const again = await reaches(d, 'again', (s) => s.subState === 'auto-restart', 'waiting to restart');
      assert.equal(again.result, 'exit-code', 'Restart=on-failure applies to a failure seen late');
      assert.deepEqual(lines(runs.once), ['pre'], 'ExecStart= never ran');
      assert.deepEqual(lines(runs.again), ['pre']);
      assert.match((await d.cli(['logs', 'once'])).stdout, /start-pre command \d+ exited with code 7 while no daemon was watching/);
      const ignored = await reaches(d, 'ignored', (s) => s.activeState === 'active' && s.mainProcess !== null, 'active despite the failure (ExecStartPre=-)');
      assert.equal(ignored.result, 'success');
      await eventually(() => (lines(runs.ignored).length >= 2 ? true : undefined), 'the main process of ignored.service to run');
      assert.deepEqual(lines(runs.ignored), ['pre', 'main']);
    } finally {
      await d.stop();
    }
  });

  it('a re-adopted control process that outlasts its timeout is killed through its pidfd and the start fails', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    d.unit(
      'slowpre.service',
      [
        '[Service]',
        `ExecStartPre=/bin/sh -c 'echo pre >> ${runs}; exec sleep 600'`,
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        'TimeoutStartSec=6s',
        '',
      ].join('\n'),
    );
    const control = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'slowpre', noBlock: true });
      return recordedControl(d, 'slowpre.service', 'start-pre');
    });
    using pre = Pidfd.verify(control.process.pid, control.process.pidfdId!);
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const s = await reaches(d, 'slowpre', (st) => st.activeState === 'failed', 'failed');
      assert.equal(s.result, 'timeout');
      assert.equal((await pre.exited).signal, 'SIGTERM', 'the new daemon ended it with KillSignal= through the re-adopted pidfd');
      assert.deepEqual(lines(runs), ['pre'], 'ExecStart= never ran');
      const log = (await d.cli(['logs', 'slowpre'])).stdout;
      assert.match(log, new RegExp(`re-adopted start-pre command ${control.process.pid}[^]*start-pre command ${control.process.pid} timed out`), 'the new daemon, not the old one, timed it out');
    } finally {
      await d.stop();
    }
  });

  it('a stop asked for during ExecStartPre=: the new daemon finishes the stop and never starts the main process', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const release = join(d.dir, 'release');
    d.unit(
      'halted.service',
      [
        '[Service]',
        // On SIGTERM it lingers until released, so the stop is still waiting for it when the daemon dies.
        `ExecStartPre=/bin/sh -c 'trap "echo term >> ${runs}; ${waitFor(release)}; exit 0" TERM; echo pre >> ${runs}; while :; do sleep 0.05; done'`,
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        'Restart=always',
        '',
      ].join('\n'),
    );
    const control = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'halted', noBlock: true });
      const recorded = await recordedControl(d, 'halted.service', 'start-pre');
      await d.call('Stop', { name: 'halted', noBlock: true });
      await eventually(() => (lines(runs).includes('term') ? true : undefined), 'the stop to reach ExecStartPre=');
      await eventually(() => (readSlots<DaemonState>(join(d.dir, 'state', 'state'))?.units.find((u) => u.name === 'halted.service')?.manualStop === true ? true : undefined), 'the stop to be recorded');
      return recorded;
    });
    using pre = Pidfd.verify(control.process.pid, control.process.pidfdId!);
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      writeFileSync(release, '');
      const s = await reaches(d, 'halted', (st) => st.activeState === 'inactive' || st.activeState === 'failed', 'stopped');
      assert.equal(s.mainProcess, null);
      assert.equal(pre.isAlive(), false);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await status(d, 'halted')).activeState, s.activeState, 'not started again (Restart=always does not undo a stop)');
      assert.ok(!lines(runs).includes('main'), `the main process never started (${lines(runs).join(', ')})`);
    } finally {
      await d.stop();
    }
  });

  it('mid-ExecStopPost= after a failure: the stop finishes and the restart policy applies', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const gate = join(d.dir, 'gate');
    const started = join(d.dir, 'started');
    d.unit(
      'post.service',
      [
        '[Service]',
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; if [ -e ${started} ]; then exec sleep 600; fi; touch ${started}; exit 4'`,
        `ExecStopPost=/bin/sh -c 'echo stop-post >> ${runs}; ${waitFor(gate)}'`,
        'Restart=on-failure',
        'RestartSec=0',
        '',
      ].join('\n'),
    );
    const control = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'post', noBlock: true });
      return recordedControl(d, 'post.service', 'stop-post');
    });
    using stopPost = Pidfd.verify(control.process.pid, control.process.pidfdId!);

    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const s = await status(d, 'post');
      assert.equal(s.subState, 'stop-post');
      assert.equal(s.controlProcess?.pidfdId, control.process.pidfdId);
      writeFileSync(gate, '');
      const restarted = await reaches(d, 'post', (st) => st.activeState === 'active' && st.mainProcess !== null, 'restarted and active');
      assert.equal(restarted.restarts, 1);
      assert.equal((await stopPost.exited).code, 0);
      await eventually(() => (lines(runs).length >= 3 ? true : undefined), 'the restarted main process to run');
      assert.deepEqual(lines(runs), ['main', 'stop-post', 'main'], 'ExecStopPost= once, then one restart');
    } finally {
      await d.stop();
    }
  });

  it('a recorded control process whose PID cannot be verified is never signalled; its step counts as failed', async () => {
    let d = await startTestDaemon();
    const runs = join(d.dir, 'runs');
    const signals = join(d.dir, 'signals');
    const gate = join(d.dir, 'gate');
    const traps = ['TERM', 'INT', 'HUP', 'CONT', 'USR1', 'USR2', 'QUIT'].map((sig) => `trap "echo ${sig} >> ${signals}" ${sig}`).join('; ');
    d.unit(
      'stranger.service',
      [
        '[Service]',
        `ExecStartPre=/bin/sh -c '${traps}; echo pre >> ${runs}; ${waitFor(gate)}'`,
        `ExecStart=/bin/sh -c 'echo main >> ${runs}; exec sleep 600'`,
        // Its shell shrugs off SIGTERM: should a stop reach it after all, the test must not wait long.
        'TimeoutStopSec=5s',
        '',
      ].join('\n'),
    );
    const control = await beforeCrash(d, async () => {
      await d.call('DaemonReload');
      await d.call('Start', { name: 'stranger', noBlock: true });
      return recordedControl(d, 'stranger.service', 'start-pre');
    });
    await d.crash();

    // Forge the record as if the PID had gone to another process while the daemon was down: same PID, another id.
    const statePath = join(d.dir, 'state', 'state');
    const state = readSlots<DaemonState>(statePath)!;
    for (const unit of state.units) if (unit.name === 'stranger.service' && unit.control != null) unit.control.process.pidfdId = control.process.pidfdId! + 1000000;
    const forger = new SlotWriter(statePath);
    forger.write(state);
    forger.close();
    const keeperPath = join(d.dir, 'state', 'keeper.json');
    const keeper = JSON.parse(readFileSync(keeperPath, 'utf8')) as { entries: { kind: string }[] };
    keeper.entries = keeper.entries.filter((e) => e.kind !== 'pidfd');
    writeFileSync(keeperPath, JSON.stringify(keeper));
    using stranger = Pidfd.verify(control.process.pid, control.process.pidfdId!);
    // A process that took over a recycled PID would sit outside the unit's cgroup: put it there.
    const cgroupLine = /^0::(.*)$/m.exec(readFileSync(`/proc/${control.process.pid}/cgroup`, 'utf8'))?.[1] ?? '';
    if (cgroupLine.endsWith('/stranger.service')) {
      const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2')![4]!;
      writeFileSync(join(mount, 'cgroup.procs'), String(control.process.pid));
    }

    d = await startTestDaemon({}, d.dir);
    try {
      const s = await reaches(d, 'stranger', (st) => st.activeState === 'failed', 'failed');
      assert.equal(s.result, 'exit-code');
      assert.equal(s.controlProcess, null, 'the stranger is not taken for the control process');
      assert.equal(s.mainProcess, null);
      assert.match((await d.cli(['logs', 'stranger'])).stdout, /cannot be re-adopted/);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(stranger.isAlive(), true, 'the process that really has the PID was not killed');
      assert.deepEqual(lines(signals), [], 'nor signalled at all');
      assert.deepEqual(lines(runs), ['pre'], 'ExecStart= never ran');
    } finally {
      await d.stop();
      stranger.signal('SIGKILL');
    }
  });
});
