import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundProcess, FoundProcesses } from '../../../src/manager/machines/service-restore.js';
import type { UnitRecord } from '../../../src/manager/types.js';
import { Sim, code, killed, running, unit } from './harness.js';

const alive = (pid: number): FoundProcess => ({ state: 'alive', pid, pidfdId: String(pid * 10) });
const ended = (status: ReturnType<typeof code> | null): FoundProcess => ({ state: 'ended', status });
const lost: FoundProcess = { state: 'lost', reason: 'its PID now belongs to another process' };

/** Runs a unit to some state, writes its record, and restores a new machine from it. */
function crash(text: string, reach: (sim: Sim) => void, found: (record: UnitRecord) => FoundProcesses): { before: Sim; record: UnitRecord; after: Sim } {
  const config = unit(text);
  const before = new Sim(config).start();
  reach(before);
  const record = JSON.parse(JSON.stringify(before.record())) as UnitRecord;
  const after = Sim.restored(config, record, found(record), before.now + 1000);
  return { before, record, after };
}

describe('the record', () => {
  it('holds the sub state, its active state, the processes and the facts', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/r').reload();
    const record = sim.record();
    assert.equal(record.activeState, 'reloading');
    assert.equal(record.subState, 'reload');
    assert.deepEqual(record.main, { pid: 100, pidfdId: 1000, bootId: 'fedcba9876543210fedcba9876543210' });
    assert.deepEqual(record.control, { process: { pid: 101, pidfdId: 1010, bootId: 'fedcba9876543210fedcba9876543210' }, kind: 'reload', index: 0 });
    assert.equal(record.invocationId, 'inv1');
    assert.equal(record.mainIndex, 0);
    assert.equal(record.manualStop, false);
  });

  it('what the record holds comes back after a restore', () => {
    const sim = running('Type=notify\nExecStart=/bin/app\nRestart=always\nWatchdogSec=4');
    sim.exit('main', code(3)).membersGone().fire('restart').notify({ READY: '1', STATUS: 'serving', NOTIFYACCESS: 'all', WATCHDOG_USEC: '2000000' });
    const record = JSON.parse(JSON.stringify(sim.record())) as UnitRecord;
    const after = Sim.restored(sim.config, record, { main: alive(sim.state.main!.pid!) });
    for (const key of ['sub', 'result', 'restarts', 'invocationId', 'statusText', 'lastExit', 'notifyAccess', 'watchdogUsec'] as const) {
      assert.deepEqual(after.state[key], sim.state[key], key);
    }
    assert.equal(after.state.restarts, 1);
    assert.equal(after.armed('watchdog'), 2000);
  });

  it('a control process coming and going is persisted', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/r').reload();
    assert.ok(sim.has('persist'));
    sim.exit('control', code(0));
    assert.ok(sim.has('persist'));
    assert.equal(sim.record().control, null);
  });

  it('a stop is recorded at once (manualStop)', () => {
    const sim = running('ExecStart=/bin/app').stop();
    assert.ok(sim.has('persist'));
    assert.equal(sim.record().manualStop, true);
  });
});

describe('restore: running', () => {
  it('main process alive: re-adopted in a new slot, running, watchdog armed again', () => {
    const { after, record } = crash('Type=notify\nExecStart=/bin/app\nWatchdogSec=5', (s) => s.notify({ READY: '1' }), () => ({ main: alive(100) }));
    after.expectSub('running');
    assert.equal(record.subState, 'running');
    const adopt = after.all.find((e) => e.type === 'adopt');
    assert.ok(adopt && adopt.type === 'adopt' && adopt.role === 'main' && adopt.slot === after.state.main!.slot);
    assert.equal(after.armed('watchdog'), 5000);
    assert.equal(after.state.invocationId, 'inv1');
    assert.ok(after.all.some((e) => e.type === 'emit-state' && e.subState === 'running'));
    // It goes on as before.
    after.exit('main', code(0)).membersGone().expectSub('dead');
  });

  it('main process ended meanwhile with a status: handled as if seen (ExecStop=, kill, restart policy)', () => {
    const { after } = crash('ExecStart=/bin/app\nRestart=on-failure\nExecStop=/bin/down', () => {}, () => ({ main: ended(code(3)) }));
    assert.ok(after.all.some((e) => e.type === 'log' && e.text === 'main process 100 exited with code 3 while no daemon was watching'));
    assert.equal(after.state.result, 'exit-code');
    after.expectSub('stop');
    after.exit('control', code(0)).membersGone().expectSub('auto-restart');
  });

  it('main process ended meanwhile, how unknown: counts as a failure', () => {
    const { after } = crash('ExecStart=/bin/app\nRestart=on-failure', () => {}, () => ({ main: ended(null) }));
    assert.equal(after.state.result, 'exit-code');
    after.membersGone().expectSub('auto-restart');
  });

  it('main process lost: never signalled, taken as ended', () => {
    const { after } = crash('ExecStart=/bin/app', () => {}, () => ({ main: lost }));
    assert.ok(!after.all.some((e) => e.type === 'signal' && e.target === 'main'));
    assert.ok(!after.all.some((e) => e.type === 'adopt'));
    after.membersGone().expectSub('failed');
  });

  it('a record without a main process although running: what is left is stopped (resources)', () => {
    const config = unit('ExecStart=/bin/app');
    const record = running('ExecStart=/bin/app').record();
    const after = Sim.restored(config, { ...record, main: null }, {});
    assert.equal(after.state.result, 'resources');
    after.expectSub('stop-sigterm');
  });

  it('a reload under way (its requester is gone): simply running', () => {
    const { after } = crash('Type=notify-reload\nExecStart=/bin/app', (s) => s.notify({ READY: '1' }).reload(), () => ({ main: alive(100) }));
    after.expectSub('running');
  });
});

describe('restore: start', () => {
  it('notify, main alive: keeps waiting for READY=1, the start timeout counted from now', () => {
    const { after } = crash('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=10', (s) => s.advance(8000), () => ({ main: alive(100) }));
    after.expectSub('start');
    assert.equal(after.timers.get('timeout')!.due, 9000 + 10_000);
    after.notify({ READY: '1' }).expectSub('running');
  });

  it('notify, main alive, no READY=1: the timeout fails the start', () => {
    const { after } = crash('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=10', () => {}, () => ({ main: alive(100) }));
    after.fire('timeout');
    assert.equal(after.state.result, 'timeout');
    after.expectSub('stop-sigterm');
  });

  it('notify, main ended meanwhile: the start fails (protocol)', () => {
    const { after } = crash('Type=notify\nExecStart=/bin/app', () => {}, () => ({ main: ended(code(0)) }));
    assert.equal(after.state.result, 'protocol');
  });

  it('oneshot, the first command alive: its exit runs the second', () => {
    const { after } = crash('Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b', () => {}, () => ({ main: alive(100) }));
    after.exit('main', code(0));
    assert.deepEqual(after.spawned(), ['main:main#1']);
  });

  it('oneshot, the first command ended meanwhile: the second runs at once', () => {
    const { after } = crash('Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b', () => {}, () => ({ main: ended(code(0)) }));
    assert.ok(after.all.some((e) => e.type === 'spawn' && e.index === 1));
  });

  it('forking waiting for its PID file: reads it again', () => {
    const { after } = crash('Type=forking\nExecStart=/bin/d\nPIDFile=/run/d.pid', (s) => s.exit('main', code(0)), () => ({}));
    after.expectSub('start');
    assert.ok(after.all.some((e) => e.type === 'read-pid-file'));
  });
});

describe('restore: a control process of each kind', () => {
  const kinds: [string, string, (sim: Sim) => void][] = [
    ['condition', 'ExecCondition=/bin/c\nExecStart=/bin/app', () => {}],
    ['start-pre', 'ExecStartPre=/bin/c\nExecStart=/bin/app', () => {}],
    ['start-post', 'ExecStartPost=/bin/c\nExecStart=/bin/app', () => {}],
    ['reload', 'ExecReload=/bin/c\nExecStart=/bin/app', (s) => s.reload()],
    ['stop', 'ExecStop=/bin/c\nExecStart=/bin/app\nRestart=always', (s) => s.stop()],
    ['stop-post', 'ExecStopPost=/bin/c\nExecStart=/bin/app\nRestart=always\nKillMode=process', (s) => s.stop().exit('main', killed('SIGTERM'))],
  ];
  /** What follows the control process's successful end, per kind. */
  const next: Record<string, string> = {
    condition: 'running',
    'start-pre': 'running',
    'start-post': 'running',
    reload: 'running',
    stop: 'stop-sigterm',
    'stop-post': 'dead', // KillMode=process: no final kill phase with the main process gone
  };
  for (const [kind, text, reach] of kinds) {
    const mainOf = (record: UnitRecord): FoundProcesses['main'] => (record.main === null ? undefined : alive(record.main.pid));

    it(`${kind}, control alive: waited for (not spawned again), timeout from now, then on`, () => {
      const { after, record } = crash(text, reach, (r) => ({ control: alive(r.control!.process.pid), ...(r.main === null ? {} : { main: mainOf(r) }) }));
      assert.equal(record.control?.kind, kind);
      after.expectSub(kind as never);
      assert.ok(!after.all.some((e) => e.type === 'spawn'));
      assert.ok(after.all.some((e) => e.type === 'adopt' && e.role === 'control'));
      assert.equal(after.timers.get('timeout')!.due, after.now + (kind.startsWith('stop') ? 90_000 : 90_000));
      after.exit('control', code(0));
      after.expectSub(next[kind] as never);
    });

    it(`${kind}, control ended meanwhile with 0: the step counts as done`, () => {
      const { after } = crash(text, reach, (r) => ({ control: ended(code(0)), ...(r.main === null ? {} : { main: mainOf(r) }) }));
      after.expectSub(next[kind] as never);
      assert.ok(after.all.some((e) => e.type === 'log' && /command 10\d exited with code 0 while no daemon was watching/.test(e.text)));
    });

    it(`${kind}, control lost: never signalled, its step counts as failed`, () => {
      const { after } = crash(text, reach, (r) => ({ control: lost, ...(r.main === null ? {} : { main: mainOf(r) }) }));
      assert.ok(!after.all.some((e) => e.type === 'signal' && e.target === 'control'));
      assert.ok(after.all.some((e) => e.type === 'log' && e.text.includes('cannot be re-adopted')));
      if (kind === 'condition' || kind === 'start-pre' || kind === 'start-post') {
        assert.equal(after.state.result, 'exit-code');
        assert.notEqual(after.active, 'active');
      } else if (kind === 'reload') {
        after.expectSub('running');
      } else {
        after.expectSub(next[kind] as never);
      }
    });
  }

  it('ExecCondition= that ended meanwhile with 1: the start is skipped', () => {
    const { after } = crash('ExecCondition=/bin/c\nExecStart=/bin/app', () => {}, () => ({ control: ended(code(1)) }));
    after.expectSub('dead');
  });

  it('start-post with the main process ended meanwhile: decided after the control step', () => {
    const { after } = crash('ExecStartPost=/bin/c\nExecStart=/bin/app', () => {}, () => ({ control: alive(101), main: ended(code(4)) }));
    after.expectSub('start-post');
    after.exit('control', code(0));
    assert.equal(after.state.result, 'exit-code');
  });

  it('reload with the main process ended meanwhile: the unit stops, the reload command first', () => {
    const { after } = crash('ExecReload=/bin/r\nExecStop=/bin/down\nExecStart=/bin/app', (s) => s.reload(), () => ({ control: alive(101), main: ended(code(1)) }));
    after.expectSub('stop');
    assert.ok(after.all.some((e) => e.type === 'signal' && e.target === 'control'));
    after.exit('control', killed('SIGTERM'));
    assert.deepEqual(after.spawned(), ['control:stop#0']);
  });

  it('a stop that was asked for does not restart after the restore', () => {
    const { after } = crash('ExecStop=/bin/c\nExecStart=/bin/app\nRestart=always', (s) => s.stop(), (r) => ({ control: alive(r.control!.process.pid), main: alive(100) }));
    assert.equal(after.state.manualStop, true);
    after.exit('control', code(0)).exit('main', killed('SIGTERM')).membersGone().expectSub('dead');
  });

  it('a reload command killed for a stop (stop, control of kind reload): ExecStop= follows', () => {
    const { after } = crash('ExecReload=/bin/r\nExecStop=/bin/down\nExecStart=/bin/app', (s) => s.reload().stop(), (r) => ({ control: alive(r.control!.process.pid), main: alive(100) }));
    after.expectSub('stop');
    assert.equal(after.state.stopAfterControl, true);
    after.exit('control', killed('SIGTERM'));
    assert.deepEqual(after.spawned(), ['control:stop#0']);
  });
});

describe('restore: deactivating, auto-restart, exited, failed, dead', () => {
  it('stop-sigterm with the main process alive: the signals go out again, the stop is finished, no restart', () => {
    const { after, record } = crash('ExecStart=/bin/app\nRestart=always', (s) => s.stop(), () => ({ main: alive(100) }));
    assert.equal(record.subState, 'stop-sigterm');
    after.expectSub('stop-sigterm');
    assert.ok(after.all.some((e) => e.type === 'signal' && e.target === 'main' && e.signal === 15));
    after.exit('main', killed('SIGTERM')).membersGone().expectSub('dead');
  });

  for (const [what, main] of [
    ['ended meanwhile', ended(killed('SIGTERM'))],
    ['lost', lost],
  ] as const) {
    it(`stop-sigterm with the main process ${what}: nothing is sent to it, the rest is finished`, () => {
      const { after } = crash('ExecStart=/bin/app', (s) => s.stop(), () => ({ main }));
      after.expectSub('stop-sigterm');
      assert.ok(!after.all.some((e) => e.type === 'signal'), 'no signal to a process that is gone');
      assert.ok(after.all.some((e) => e.type === 'signal-members' && e.except === 'none'));
      assert.equal(after.state.main, null);
      after.membersGone().expectSub('dead');
    });
  }

  it('stop-sigterm with a start-pre command lost (a stop during the start): it is never signalled', () => {
    const { after, record } = crash('ExecStartPre=/bin/prep\nExecStart=/bin/app', (s) => s.stop(), () => ({ control: lost }));
    assert.equal(record.control?.kind, 'start-pre');
    assert.ok(!after.all.some((e) => e.type === 'signal' && e.target === 'control'));
    after.membersGone().expectSub('dead');
  });

  it('stop-sigterm after a watchdog kill (not asked for): Restart= still applies', () => {
    const { after } = crash('ExecStart=/bin/app\nRestart=on-watchdog\nWatchdogSec=1', (s) => s.fire('watchdog'), () => ({ main: alive(100) }));
    assert.equal(after.state.manualStop, false);
    after.exit('main', killed('SIGABRT', true)).membersGone().expectSub('auto-restart');
  });

  it('an older record without manualStop: deactivating counts as asked for', () => {
    const config = unit('ExecStart=/bin/app\nRestart=always');
    const record = running('ExecStart=/bin/app\nRestart=always').stop().record();
    const { manualStop: _drop, mainIndex: _i, watchdogUsec: _w, notifyAccess: _n, ...old } = record;
    const after = Sim.restored(config, old as UnitRecord, { main: alive(100) });
    assert.equal(after.state.manualStop, true);
  });

  it('stop-sigkill: FinalKillSignal= again', () => {
    const { after } = crash('ExecStart=/bin/app\nTimeoutStopSec=2', (s) => s.stop().fire('timeout'), () => ({ main: alive(100) }));
    after.expectSub('stop-sigkill');
    assert.ok(after.all.some((e) => e.type === 'signal' && e.signal === 9));
  });

  it('final-sigterm: finishes into dead', () => {
    const { after, record } = crash('ExecStart=/bin/app\nExecStopPost=/bin/p', (s) => s.stop().exit('main', killed('SIGTERM')).membersGone().exit('control', code(0)), () => ({}));
    assert.equal(record.subState, 'final-sigterm');
    after.expectSub('final-sigterm');
    after.membersGone().expectSub('dead');
  });

  it('auto-restart: the restart still happens', () => {
    const { after } = crash('ExecStart=/bin/app\nRestart=always\nRestartSec=2', (s) => s.exit('main', code(1)).membersGone(), () => ({}));
    after.expectSub('auto-restart');
    assert.equal(after.armed('restart'), 2000);
    after.fire('restart').expectSub('running');
    assert.equal(after.state.restarts, 1);
  });

  it('exited stays exited; failed stays failed with its result; dead stays dead', () => {
    crash('Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/a', (s) => s.exit('main', code(0)), () => ({})).after.expectSub('exited');
    const failed = crash('ExecStart=/bin/app', (s) => s.exit('main', code(2)).membersGone(), () => ({})).after;
    failed.expectSub('failed');
    assert.equal(failed.state.result, 'exit-code');
    assert.deepEqual(failed.state.lastExit, { code: 2, signal: null });
    crash('ExecStart=/bin/app', (s) => s.stop().exit('main', killed('SIGTERM')).membersGone(), () => ({})).after.expectSub('dead');
  });

  it('a main or control process recorded for a state that has none is let go', () => {
    const config = unit('ExecStart=/bin/app\nRestart=always');
    const record = running('ExecStart=/bin/app\nExecReload=/bin/r\nRestart=always').reload().record();
    const after = Sim.restored(config, { ...record, subState: 'auto-restart', activeState: 'activating' }, { main: alive(100), control: alive(101) });
    after.expectSub('auto-restart');
    assert.ok(!after.all.some((e) => e.type === 'adopt'));
    assert.equal(after.state.main, null);
    assert.equal(after.state.control, null);
  });

  it('a found process the restored state has no use for gets no adopt (the driver releases it)', () => {
    const config = unit('ExecStart=/bin/app');
    const after = Sim.restored(config, { ...running('ExecStart=/bin/app').record(), subState: 'dead', activeState: 'inactive', main: null }, { main: alive(100) });
    assert.ok(!after.all.some((e) => e.type === 'adopt'));
  });
});
