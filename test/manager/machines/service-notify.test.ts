import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sim, code, killed, running, unit } from './harness.js';

describe('ExecReload=', () => {
  it('runs the commands in reload, then back to running; the job is done', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/a\nExecReload=/bin/b').reload();
    assert.deepEqual(sim.states(), ['reload']);
    assert.equal(sim.active, 'reloading');
    assert.deepEqual(sim.spawned(), ['control:reload#0']);
    assert.equal(sim.spawns()[0]!.env.mainPid, true);
    sim.exit('control', code(0));
    assert.deepEqual(sim.spawned(), ['control:reload#1']);
    sim.exit('control', code(0)).expectSub('running').expectJob('reload', 'done');
  });

  it('a failing command fails the reload but the service keeps running; "-" ignores it', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/a\nExecReload=/bin/b').reload().exit('control', code(1));
    sim.expectSub('running').expectJob('reload', 'failed');
    const ignored = running('ExecStart=/bin/app\nExecReload=-/bin/a\nExecReload=/bin/b').reload().exit('control', code(1));
    assert.deepEqual(ignored.spawned(), ['control:reload#1']);
  });

  it('without ExecReload= a reload is unsupported; a reload of an inactive unit fails; a second reload joins', () => {
    running('ExecStart=/bin/app').reload().expectJob('reload', 'unsupported');
    new Sim(unit('ExecStart=/bin/app\nExecReload=/bin/r')).reload().expectJob('reload', 'failed');
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/r').reload().reload();
    assert.deepEqual(sim.jobs(), []);
    sim.exit('control', code(0));
    assert.deepEqual(sim.allJobs(), ['start done', 'reload done']);
  });

  it('an exited oneshot reloads and goes back to exited', () => {
    const sim = new Sim(unit('Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/a\nExecReload=/bin/r')).start().exit('main', code(0));
    sim.reload().exit('control', code(0)).expectSub('exited').expectJob('reload', 'done');
  });

  it('the main process dying during a reload: the reload fails, the reload command is killed, ExecStop= runs', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/r\nExecStop=/bin/down').reload().exit('main', code(1));
    sim.expectJob('reload', 'failed');
    sim.expectSub('stop');
    assert.deepEqual(sim.signals(), ['control:15']);
    assert.deepEqual(sim.spawned(), []);
    sim.exit('control', killed('SIGTERM'));
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
  });

  it('a stop during a reload: the reload fails, its command is killed first, then ExecStop=', () => {
    const sim = running('ExecStart=/bin/app\nExecReload=/bin/r\nExecStop=/bin/down').reload().stop();
    sim.expectJob('reload', 'failed');
    assert.deepEqual(sim.signals(), ['control:15']);
    const reloadSlot = sim.state.control!.slot;
    sim.fire('timeout');
    assert.deepEqual(sim.signals(), ['control:9']);
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
    // The signal names the reload command, not the ExecStop= process that takes the role in the same step.
    const kill = sim.last.find((e) => e.type === 'signal');
    assert.ok(kill && kill.type === 'signal' && kill.slot === reloadSlot);
    assert.notEqual(sim.state.control!.slot, reloadSlot);
  });
});

describe('Type=notify-reload', () => {
  it('ReloadSignal= to the main process; RELOADING=1 with a fresh MONOTONIC_USEC=, then READY=1', () => {
    const sim = running('Type=notify-reload\nExecStart=/bin/app\nReloadSignal=SIGUSR1').reload(1000n);
    assert.deepEqual(sim.states(), ['reload-signal']);
    assert.deepEqual(sim.signals(), ['main:10']);
    // A stale RELOADING=1 (from before the request) does not count.
    sim.notify({ RELOADING: '1', MONOTONIC_USEC: '999' }).expectSub('reload-signal');
    sim.notify({ RELOADING: '1', MONOTONIC_USEC: '1000' }).expectSub('reload-notify');
    sim.notify({ READY: '1' }).expectSub('running').expectJob('reload', 'done');
  });

  it('RELOADING=1 and READY=1 in one datagram end the reload', () => {
    const sim = running('Type=notify-reload\nExecStart=/bin/app').reload();
    assert.deepEqual(sim.signals(), ['main:1']);
    sim.notify({ RELOADING: '1', READY: '1' }).expectSub('running').expectJob('reload', 'done');
  });

  it('no answer within TimeoutStartSec=: the reload times out, the service keeps running', () => {
    const sim = running('Type=notify-reload\nExecStart=/bin/app\nTimeoutStartSec=4').reload().fire('timeout');
    sim.expectSub('running').expectJob('reload', 'timeout');
  });

  it('a reload the service starts on its own (RELOADING=1 while running) needs no job', () => {
    const sim = running('Type=notify-reload\nExecStart=/bin/app').notify({ RELOADING: '1' });
    sim.expectSub('reload-notify');
    sim.notify({ READY: '1' }).expectSub('running');
    assert.deepEqual(sim.jobs(), []);
  });
});

describe('NotifyAccess=', () => {
  const table: [string, 'main' | 'control' | 'other', boolean][] = [
    ['none', 'main', false],
    ['main', 'main', true],
    ['main', 'control', false],
    ['main', 'other', false],
    ['exec', 'main', true],
    ['exec', 'control', true],
    ['exec', 'other', false],
    ['all', 'other', true],
  ];
  for (const [access, origin, allowed] of table) {
    it(`NotifyAccess=${access}, from the ${origin} process: ${allowed ? 'taken' : 'refused with a log line'}`, () => {
      const sim = running(`ExecStart=/bin/app\nNotifyAccess=${access}`).notify({ STATUS: 'hello' }, origin);
      assert.equal(sim.state.statusText, allowed ? 'hello' : null);
      if (!allowed) assert.match(sim.logs('warning')[0]!, /^notification from PID 4242 refused \(NotifyAccess=/);
      // The datagram was routed to this unit, so its sender is one of the unit's processes in every case.
      if (!allowed) assert.match(sim.logs('warning')[0]!, origin === 'other' ? /sender is a process of the unit other than its main and control processes\)$/ : new RegExp(`sender is the ${origin} process\\)$`));
    });
  }

  it('NOTIFYACCESS= overrides it until the next start', () => {
    const sim = running('Type=notify\nExecStart=/bin/app').notify({ NOTIFYACCESS: 'all' });
    sim.notify({ STATUS: 'from a child' }, 'other');
    assert.equal(sim.state.statusText, 'from a child');
    sim.stop().exit('main', killed('SIGTERM')).membersGone().start();
    assert.equal(sim.state.notifyAccess, null);
    sim.notify({ STATUS: 'x' }, 'other');
    assert.equal(sim.state.statusText, null);
  });

  it('STATUS= with an empty value clears the status; FDSTORE=1 is logged as ignored', () => {
    const sim = running('Type=notify\nExecStart=/bin/app').notify({ STATUS: 'a' }).notify({ STATUS: '', FDSTORE: '1' });
    assert.equal(sim.state.statusText, null);
    assert.deepEqual(sim.logs('info'), ['FDSTORE=1 ignored: this unit has no file descriptor store']);
  });
});

describe('MAINPID=', () => {
  const candidate = { accepted: true as const, pid: 777, pidfdId: '7770' };
  const states: [string, (sim: Sim) => void, boolean][] = [
    ['start', () => {}, true],
    ['running', (sim) => sim.notify({ READY: '1' }), true],
    ['reload-signal', (sim) => sim.notify({ READY: '1' }).reload(), true],
    ['stop-sigterm', (sim) => sim.notify({ READY: '1' }).stop(), true],
    ['dead', (sim) => sim.notify({ READY: '1' }).stop().exit('main', killed('SIGTERM')).membersGone(), false],
  ];
  for (const [sub, reach, accepted] of states) {
    it(`in ${sub}: ${accepted ? 'accepted' : 'ignored'}`, () => {
      const sim = new Sim(unit('Type=notify-reload\nExecStart=/bin/app\nNotifyAccess=all')).start();
      reach(sim);
      sim.expectSub(sub as never);
      const old = sim.state.main?.slot;
      sim.notify({ MAINPID: '777' }, 'other', { mainPid: candidate });
      const adopt = sim.last.find((e) => e.type === 'adopt');
      if (accepted) {
        assert.ok(adopt && adopt.type === 'adopt' && adopt.role === 'main');
        assert.equal(sim.state.main?.pid, 777);
        assert.deepEqual(sim.last.filter((e) => e.type === 'release'), [{ type: 'release', slot: old }]);
        assert.deepEqual(sim.logs('info'), ['main PID is now 777 (pidfd id 7770)']);
        assert.ok(sim.has('persist'));
      } else {
        assert.equal(adopt, undefined);
      }
    });
  }

  it('a refused candidate is logged with the driver\'s reason; the same process again changes nothing', () => {
    const sim = running('Type=notify\nExecStart=/bin/app').notify({ MAINPID: '1' }, 'main', { mainPid: { accepted: false, reason: 'PID 1 is not a process of this unit' } });
    assert.deepEqual(sim.logs('warning'), ['new main PID refused: PID 1 is not a process of this unit']);
    const same = { accepted: true as const, pid: sim.state.main!.pid!, pidfdId: sim.state.main!.pidfdId };
    sim.notify({ MAINPID: String(same.pid) }, 'main', { mainPid: same });
    assert.ok(!sim.has('adopt'));
  });

  it('the adopted main process\'s exit is the main exit; the old one\'s is stale', () => {
    const sim = running('Type=notify\nExecStart=/bin/app\nRestart=on-failure');
    const oldSlot = sim.state.main!.slot;
    sim.notify({ MAINPID: '777' }, 'main', { mainPid: candidate });
    sim.send({ type: 'exited', slot: oldSlot, status: code(0) });
    sim.expectSub('running');
    sim.exit('main', code(2)).membersGone().expectSub('auto-restart');
    assert.deepEqual(sim.state.lastExit, { code: 2, signal: null });
  });

  it('a forking service that names its main process by MAINPID= during start', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/launcher\nNotifyAccess=all')).start();
    sim.notify({ MAINPID: '777', READY: '1' }, 'other', { mainPid: candidate });
    sim.expectSub('running');
    assert.equal(sim.state.main?.pid, 777);
  });
});
