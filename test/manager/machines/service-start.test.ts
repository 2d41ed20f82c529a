import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sim, code, killed, running, unit } from './harness.js';

describe('conditions', () => {
  const text = '[Unit]\nConditionPathExists=/etc/app.conf\n[Service]\nExecStart=/bin/app';

  it('asks the driver to check them; met: the start goes on', () => {
    const sim = new Sim(unit(text)).start();
    sim.expectSub('condition');
    assert.ok(sim.has('check-conditions'));
    assert.deepEqual(sim.spawned(), []);
    sim.send({ type: 'conditions-checked', failed: null });
    sim.expectSub('running').expectJob('start', 'done');
  });

  it('not met: the start is skipped and the unit stays dead', () => {
    const sim = new Sim(unit(text)).start().send({ type: 'conditions-checked', failed: 'ConditionPathExists=/etc/app.conf' });
    sim.expectSub('dead').expectJob('start', 'skipped');
    assert.deepEqual(sim.logs('info'), ['condition ConditionPathExists=/etc/app.conf not met; start skipped']);
    assert.equal(sim.state.result, 'success');
  });

  it('without conditions nothing is asked', () => {
    const sim = new Sim(unit('ExecStart=/bin/app')).start();
    assert.ok(!sim.has('check-conditions'));
  });
});

describe('ExecCondition=', () => {
  const cases: [number | string, string, string][] = [
    [0, 'running', 'start done'],
    [1, 'dead', 'start skipped'],
    [254, 'dead', 'start skipped'],
    [255, 'failed', 'start failed'],
    ['SIGKILL', 'failed', 'start failed'],
  ];
  for (const [status, sub, job] of cases) {
    it(`exit ${status}: ${sub}`, () => {
      const sim = new Sim(unit('ExecCondition=/bin/check\nExecStart=/bin/app')).start();
      assert.deepEqual(sim.spawned(), ['control:condition#0']);
      const env = sim.spawns()[0]!.env;
      assert.equal(env.mainPid, false);
      assert.equal(env.notify, false);
      sim.exit('control', typeof status === 'number' ? code(status) : killed(status));
      if (sub === 'failed') sim.membersGone();
      sim.expectSub(sub as never);
      assert.deepEqual(sim.allJobs(), [job]);
    });
  }

  it('several run in turn', () => {
    const sim = new Sim(unit('ExecCondition=/bin/a\nExecCondition=/bin/b\nExecStart=/bin/app')).start().exit('control', code(0));
    assert.deepEqual(sim.spawned(), ['control:condition#1']);
  });
});

describe('ExecStartPre= and ExecStartPost=', () => {
  it('run in order, under TimeoutStartSec=, before and after the main process', () => {
    const sim = new Sim(unit('ExecStartPre=/bin/a\nExecStartPre=/bin/b\nExecStart=/bin/app\nExecStartPost=/bin/c\nTimeoutStartSec=7')).start();
    assert.deepEqual(sim.states(), ['condition', 'start-pre']);
    assert.deepEqual(sim.spawned(), ['control:start-pre#0']);
    assert.equal(sim.armed('timeout'), 7000);
    sim.exit('control', code(0));
    assert.deepEqual(sim.spawned(), ['control:start-pre#1']);
    sim.exit('control', code(0));
    assert.deepEqual(sim.spawned(), ['main:main#0', 'control:start-post#0']);
    assert.equal(sim.spawns()[1]!.env.mainPid, true);
    sim.expectSub('start-post');
    sim.exit('control', code(0));
    sim.expectSub('running').expectJob('start', 'done');
  });

  for (const kind of ['ExecStartPre', 'ExecStartPost']) {
    it(`a failing ${kind}= fails the start; with "-" it is ignored`, () => {
      const failing = new Sim(unit(`${kind}=/bin/x\nExecStart=/bin/app`)).start().exit('control', code(1));
      assert.equal(failing.state.result, 'exit-code');
      assert.ok(failing.logs('warning').some((l) => l.endsWith('exited with code 1')));
      if (failing.state.main !== null) failing.exit('main', killed('SIGTERM'));
      failing.membersGone().expectSub('failed');
      assert.deepEqual(failing.allJobs(), ['start failed']);
      const ignored = new Sim(unit(`${kind}=-/bin/x\nExecStart=/bin/app`)).start().exit('control', code(1));
      ignored.expectSub('running');
      assert.equal(ignored.state.result, 'success');
    });

    it(`a ${kind}= that cannot be spawned fails the start; with "-" it is ignored`, () => {
      const list = kind === 'ExecStartPre' ? 'start-pre' : 'start-post';
      const sim = new Sim(unit(`${kind}=/bin/x\nExecStart=/bin/app`)).failNextSpawn(203, 'exit-code', 'No such file', list).start();
      assert.equal(sim.state.result, 'exit-code');
      assert.deepEqual(sim.state.lastExit, { code: 203, signal: null });
      assert.ok(sim.logs('error')[0]!.startsWith(`failed to run ${list} command /bin/x`));
      const ignored = new Sim(unit(`${kind}=-/bin/x\nExecStart=/bin/app`)).failNextSpawn(203, 'exit-code', 'No such file', list).start();
      ignored.expectSub('running').expectJob('start', 'done');
      assert.equal(ignored.state.lastExit, null);
    });
  }

  it('an ExecStartPre= that runs too long is killed and the start fails with timeout', () => {
    const sim = new Sim(unit('ExecStartPre=/bin/slow\nExecStart=/bin/app\nTimeoutStartSec=2\nTimeoutStopSec=3')).start().fire('timeout');
    assert.deepEqual(sim.signals(), ['control:15']);
    assert.equal(sim.armed('timeout'), 3000);
    sim.exit('control', killed('SIGTERM'));
    assert.equal(sim.state.result, 'timeout');
    sim.membersGone().expectSub('failed');
  });

  it('the main process ending during ExecStartPost=: decided when it is done', () => {
    const fail = new Sim(unit('ExecStart=/bin/app\nExecStartPost=/bin/post')).start().exit('main', code(3));
    fail.expectSub('start-post');
    fail.exit('control', code(0));
    assert.equal(fail.state.result, 'exit-code');
    fail.membersGone().expectSub('failed');
    const remain = new Sim(unit('ExecStart=/bin/app\nExecStartPost=/bin/post\nRemainAfterExit=yes')).start().exit('main', code(0)).exit('control', code(0));
    remain.expectSub('exited').expectJob('start', 'done');
    const clean = new Sim(unit('ExecStart=/bin/app\nExecStartPost=/bin/post')).start().exit('main', code(0)).exit('control', code(0));
    clean.expectSub('stop-sigterm');
    clean.membersGone().expectSub('dead');
    assert.deepEqual(clean.allJobs(), ['start done']);
  });

  it('helpers get NOTIFY_SOCKET only with NotifyAccess=exec or all', () => {
    const exec = new Sim(unit('ExecStartPre=/bin/a\nExecStart=/bin/app\nNotifyAccess=exec')).start();
    assert.equal(exec.spawns()[0]!.env.notify, true);
    const main = new Sim(unit('ExecStartPre=/bin/a\nExecStart=/bin/app\nNotifyAccess=main')).start();
    assert.equal(main.spawns()[0]!.env.notify, false);
  });
});

describe('RuntimeMaxSec= and the watchdog', () => {
  it('RuntimeMaxSec= stops the unit with result timeout', () => {
    const sim = running('ExecStart=/bin/app\nRuntimeMaxSec=30');
    assert.equal(sim.armed('runtime-max'), 30_000);
    sim.fire('runtime-max');
    assert.deepEqual(sim.logs('warning'), ['RuntimeMaxSec= reached; stopping']);
    assert.equal(sim.state.result, 'timeout');
    sim.exit('main', killed('SIGTERM')).membersGone().expectSub('failed');
  });

  it('WatchdogSec=: armed when running, re-armed by WATCHDOG=1, fires WatchdogSignal= then the stop', () => {
    const sim = running('Type=notify\nExecStart=/bin/app\nWatchdogSec=10');
    assert.equal(sim.armed('watchdog'), 10_000);
    sim.advance(9000).notify({ WATCHDOG: '1' });
    assert.equal(sim.timers.get('watchdog')!.due, 19_000);
    sim.fire('watchdog');
    assert.deepEqual(sim.logs('error'), ['watchdog timeout; killing the main process']);
    assert.deepEqual(sim.signals(), ['main:6', 'main:15', 'members-but-main:15']);
    assert.equal(sim.state.result, 'watchdog');
    sim.exit('main', killed('SIGABRT', true)).membersGone().expectSub('failed');
    assert.equal(sim.state.result, 'watchdog');
  });

  it('WATCHDOG_USEC= changes the interval; WATCHDOG=trigger fires at once; WatchdogSignal= is used', () => {
    const sim = running('Type=notify\nExecStart=/bin/app\nWatchdogSec=10\nWatchdogSignal=SIGUSR2');
    sim.notify({ WATCHDOG_USEC: '2000000' });
    assert.equal(sim.armed('watchdog'), 2000);
    assert.equal(sim.state.watchdogUsec, 2_000_000);
    sim.notify({ WATCHDOG: 'trigger' });
    assert.deepEqual(sim.signals()[0], 'main:12');
    assert.equal(sim.state.result, 'watchdog');
  });

  it('no watchdog before the unit is up; the start resets a WATCHDOG_USEC= override', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nWatchdogSec=10')).start();
    assert.equal(sim.armed('watchdog'), undefined);
    sim.notify({ WATCHDOG: '1' });
    assert.equal(sim.armed('watchdog'), undefined);
    sim.notify({ WATCHDOG_USEC: '1000000' });
    sim.notify({ READY: '1' });
    assert.equal(sim.armed('watchdog'), 1000);
    sim.stop().exit('main', killed('SIGTERM')).membersGone().start();
    assert.equal(sim.spawns()[0]!.env.watchdogUsec, 10_000_000);
  });

  it('the main process exiting cancels the watchdog and RuntimeMaxSec=', () => {
    const sim = running('ExecStart=/bin/app\nWatchdogSec=5\nRuntimeMaxSec=9').exit('main', code(0));
    assert.equal(sim.armed('watchdog'), undefined);
    assert.equal(sim.armed('runtime-max'), undefined);
  });
});

describe('the protocol environment of each process', () => {
  // kind spawned, in which unit, after what: NOTIFY_SOCKET, MAINPID, WATCHDOG_USEC, exit info
  const cases: [string, string, (sim: Sim) => void, string, [boolean, boolean, number, boolean]][] = [
    ['condition', 'ExecCondition=/bin/c\nExecStart=/bin/app\nNotifyAccess=all', () => {}, 'condition', [true, false, 0, false]],
    ['start-pre', 'ExecStartPre=/bin/c\nExecStart=/bin/app\nNotifyAccess=exec', () => {}, 'start-pre', [true, false, 0, false]],
    ['main (notify)', 'Type=notify\nExecStart=/bin/app\nWatchdogSec=3', () => {}, 'main', [true, false, 3_000_000, false]],
    ['main (simple, NotifyAccess=none)', 'ExecStart=/bin/app', () => {}, 'main', [false, false, 0, false]],
    ['start-post', 'ExecStartPost=/bin/c\nExecStart=/bin/app\nNotifyAccess=main', () => {}, 'start-post', [false, true, 0, false]],
    ['reload', 'ExecReload=/bin/c\nExecStart=/bin/app\nNotifyAccess=all', (s) => s.reload(), 'reload', [true, true, 0, false]],
    ['stop', 'ExecStop=/bin/c\nExecStart=/bin/app', (s) => s.stop(), 'stop', [false, true, 0, true]],
    ['stop-post', 'ExecStopPost=/bin/c\nExecStart=/bin/app\nKillMode=process', (s) => s.stop().exit('main', killed('SIGTERM')), 'stop-post', [false, false, 0, true]],
  ];
  for (const [name, text, reach, kind, [notify, mainPid, watchdogUsec, exitInfo]] of cases) {
    it(name, () => {
      const sim = new Sim(unit(text)).start();
      reach(sim);
      const spawn = sim.all.filter((e) => e.type === 'spawn' && e.kind === kind).pop();
      assert.ok(spawn && spawn.type === 'spawn');
      assert.equal(spawn.env.notify, notify, 'NOTIFY_SOCKET');
      assert.equal(spawn.env.mainPid, mainPid, 'MAINPID');
      assert.equal(spawn.env.watchdogUsec, watchdogUsec, 'WATCHDOG_USEC');
      assert.equal(spawn.env.exitInfo !== undefined, exitInfo, 'exit info');
      assert.equal(spawn.env.invocationId, 'inv1');
    });
  }
});

describe('the watchdog needs a main process', () => {
  it('a unit active without one (exited) arms no watchdog', () => {
    const sim = new Sim(unit('Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/a\nWatchdogSec=2\nNotifyAccess=all')).start().exit('main', code(0));
    sim.expectSub('exited');
    assert.equal(sim.armed('watchdog'), undefined);
    sim.notify({ WATCHDOG: '1' }, 'other');
    assert.equal(sim.armed('watchdog'), undefined);
  });
});

describe('the demo web server (examples/units/web.service)', () => {
  it('gets WATCHDOG_USEC on its first start, and pinging every 5 s keeps the 10 s watchdog from firing', () => {
    const sim = new Sim(unit('[Unit]\nDescription=Demo web server\n[Service]\nType=notify\nExecStart=/usr/bin/env node web.js\nWatchdogSec=10s\nRestart=on-failure')).start();
    assert.equal(sim.spawns()[0]!.env.watchdogUsec, 10_000_000, 'a fresh start passes WATCHDOG_USEC, not only a restart');
    sim.advance(300).notify({ READY: '1' });
    for (let second = 5; second <= 60; second += 5) {
      sim.advance(5000).notify({ WATCHDOG: '1' });
      assert.ok(sim.timers.get('watchdog')!.due > sim.now + 9000);
    }
    sim.expectSub('running');
  });
});
