import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sim, code, killed, running, unit } from './harness.js';

describe('Type=simple and exec', () => {
  for (const type of ['simple', 'exec']) {
    it(`${type}: running once the main process is spawned; its exit stops the unit`, () => {
      const sim = new Sim(unit(`Type=${type}\nExecStart=/bin/app`)).start();
      assert.deepEqual(sim.spawned(), ['main:main#0']);
      assert.deepEqual(sim.states(), ['condition', 'start', 'running']);
      sim.expectJob('start', 'done');
      assert.equal(sim.active, 'active');
      assert.equal(sim.state.main?.pid, 100);
      assert.equal(sim.state.invocationId, 'inv1');
      sim.exit('main', code(0));
      // control-group: what is left of the unit is signalled, then waited for.
      assert.deepEqual(sim.states(), ['stop-sigterm']);
      assert.deepEqual(sim.signals(), ['members-all:15']);
      sim.membersGone();
      assert.deepEqual(sim.states(), ['dead']);
      assert.equal(sim.state.lastExit?.code, 0);
    });
  }

  it('a spawn failure fails the start with the code the driver reports', () => {
    const sim = new Sim(unit('ExecStart=/bin/missing')).failNextSpawn(203).start();
    assert.deepEqual(sim.state.lastExit, { code: 203, signal: null });
    assert.equal(sim.state.result, 'exit-code');
    assert.ok(sim.logs('error').some((l) => l.includes('failed to run main command /bin/missing')));
    sim.membersGone();
    sim.expectSub('failed');
    sim.expectJob('start', 'failed');
  });

  it('217/USER and a missing EnvironmentFile= (resources) keep their result', () => {
    const user = new Sim(unit('ExecStart=/bin/app')).failNextSpawn(217, 'exit-code', 'no such user').start().membersGone();
    assert.deepEqual(user.state.lastExit, { code: 217, signal: null });
    assert.equal(user.state.result, 'exit-code');
    const res = new Sim(unit('ExecStart=/bin/app')).failNextSpawn(1, 'resources', 'EnvironmentFile= missing').start().membersGone();
    assert.equal(res.state.result, 'resources');
    assert.equal(res.state.lastExit, null, 'nothing ran, so nothing exited');
    res.expectSub('failed');
  });

  it('a clean signal (SIGTERM) is success; SIGKILL is not; a core dump is core-dump', () => {
    const term = running('ExecStart=/bin/app').exit('main', killed('SIGTERM')).membersGone();
    term.expectSub('dead');
    const kill = running('ExecStart=/bin/app').exit('main', killed('SIGKILL')).membersGone();
    kill.expectSub('failed');
    assert.equal(kill.state.result, 'signal');
    const core = running('ExecStart=/bin/app').exit('main', killed('SIGSEGV', true)).membersGone();
    assert.equal(core.state.result, 'core-dump');
  });

  it('SuccessExitStatus= makes codes and signals (SIGXCPU too) count as success', () => {
    const sim = running('ExecStart=/bin/app\nSuccessExitStatus=3 SIGXCPU').exit('main', code(3)).membersGone();
    sim.expectSub('dead');
    const sig = running('ExecStart=/bin/app\nSuccessExitStatus=3 SIGXCPU').exit('main', killed('SIGXCPU')).membersGone();
    sig.expectSub('dead');
  });

  it('the main process gets NOTIFY_SOCKET only with NotifyAccess= other than none, and WATCHDOG_USEC with a watchdog', () => {
    const plain = new Sim(unit('ExecStart=/bin/app')).start();
    assert.equal(plain.spawns()[0]!.env.notify, false);
    assert.equal(plain.spawns()[0]!.env.watchdogUsec, 0);
    assert.equal(plain.spawns()[0]!.env.invocationId, 'inv1');
    const dog = new Sim(unit('ExecStart=/bin/app\nWatchdogSec=2')).start();
    assert.equal(dog.spawns()[0]!.env.notify, true);
    assert.equal(dog.spawns()[0]!.env.watchdogUsec, 2_000_000);
    assert.equal(dog.spawns()[0]!.env.mainPid, false);
  });
});

describe('Type=notify', () => {
  it('waits in start for READY=1, with TimeoutStartSec= armed', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=5')).start();
    sim.expectSub('start');
    assert.equal(sim.armed('timeout'), 5000);
    assert.deepEqual(sim.jobs(), []);
    assert.equal(sim.spawns()[0]!.env.notify, true);
    sim.notify({ READY: '1', STATUS: 'serving' });
    sim.expectSub('running').expectJob('start', 'done');
    assert.equal(sim.armed('timeout'), undefined);
    assert.equal(sim.state.statusText, 'serving');
  });

  it('an exit before READY=1 fails with protocol (clean) or the exit result', () => {
    const clean = new Sim(unit('Type=notify\nExecStart=/bin/app')).start().exit('main', code(0)).membersGone();
    assert.equal(clean.state.result, 'protocol');
    clean.expectSub('failed');
    const bad = new Sim(unit('Type=notify\nExecStart=/bin/app')).start().exit('main', code(4)).membersGone();
    assert.equal(bad.state.result, 'exit-code');
    assert.deepEqual(bad.allJobs(), ['start failed']);
  });

  it('the start timeout kills the main process and fails with timeout', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=3')).start().fire('timeout');
    assert.equal(sim.now, 3000);
    sim.expectSub('stop-sigterm');
    assert.deepEqual(sim.signals(), ['main:15', 'members-but-main:15']);
    assert.equal(sim.state.result, 'timeout');
    sim.exit('main', killed('SIGTERM')).membersGone();
    sim.expectSub('failed');
    assert.deepEqual(sim.allJobs(), ['start failed']);
  });

  it('EXTEND_TIMEOUT_USEC= pushes the start deadline out', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=3')).start();
    sim.advance(2000).notify({ EXTEND_TIMEOUT_USEC: '5000000' });
    assert.equal(sim.armed('timeout'), 5000);
    assert.equal(sim.state.timeoutDeadline, 7000);
    sim.fire('timeout');
    assert.equal(sim.now, 7000);
    sim.expectSub('stop-sigterm');
    // A shorter extension does not shorten it.
    const short = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=3')).start();
    short.notify({ EXTEND_TIMEOUT_USEC: '1000' });
    assert.equal(short.armed('timeout'), 3000);
  });

  it('EXTEND_TIMEOUT_USEC= after the timer was armed: an early firing re-arms for the rest', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=3')).start();
    const generation = sim.timers.get('timeout')!.generation;
    sim.notify({ EXTEND_TIMEOUT_USEC: '10000000' });
    // The old timer's firing is stale now.
    sim.advance(3000).send({ type: 'timer-fired', timer: 'timeout', generation });
    sim.expectSub('start');
  });
});

describe('Type=forking', () => {
  it('the first process exits 0, then the PID file names the main process', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nPIDFile=/run/app.pid')).start();
    sim.expectSub('start');
    sim.exit('main', code(0));
    const read = sim.last.find((e) => e.type === 'read-pid-file');
    assert.ok(read && read.type === 'read-pid-file');
    assert.equal(read.path, '/run/app.pid');
    sim.send({ type: 'pid-file', result: { accepted: false, reason: 'not yet', retry: true } });
    assert.equal(sim.armed('pid-file'), 20);
    sim.fire('pid-file');
    assert.ok(sim.has('read-pid-file'));
    sim.send({ type: 'pid-file', result: { accepted: true, pid: 555, pidfdId: '5550' } });
    assert.deepEqual(sim.last.filter((e) => e.type === 'adopt'), [{ type: 'adopt', slot: read.slot, role: 'main' }]);
    sim.expectSub('running').expectJob('start', 'done');
    assert.equal(sim.state.main?.pid, 555);
  });

  it('a PID file that never appears fails with protocol after at most 5 s', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nPIDFile=/run/app.pid')).start().exit('main', code(0));
    sim.advance(5001).send({ type: 'pid-file', result: { accepted: false, reason: 'missing', retry: true } });
    assert.equal(sim.state.result, 'protocol');
    assert.ok(sim.logs('error').some((l) => l.includes('not readable after start')));
  });

  it('a PID file naming a stranger is refused', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nPIDFile=/run/app.pid')).start().exit('main', code(0));
    sim.send({ type: 'pid-file', result: { accepted: false, reason: 'not a process of this unit' } });
    assert.equal(sim.state.result, 'protocol');
    sim.expectSub('stop-sigterm');
  });

  it('without PIDFile= the unit is active (exited) once the first process exits', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon')).start().exit('main', code(0));
    sim.expectSub('exited').expectJob('start', 'done');
  });

  it('MAINPID= during the start: the main process is named, the launcher\'s exit still ends the start', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nPIDFile=/run/app.pid\nNotifyAccess=all')).start();
    const launcher = sim.state.main!.slot;
    sim.notify({ MAINPID: '555' }, 'other', { mainPid: { accepted: true, pid: 555, pidfdId: '5550' } });
    assert.ok(!sim.has('release'), 'the launcher is still watched');
    sim.expectSub('start');
    sim.send({ type: 'exited', slot: launcher, status: code(0) });
    assert.ok(!sim.has('read-pid-file'), 'the main process is known already');
    sim.expectSub('running').expectJob('start', 'done');
    assert.equal(sim.state.main?.pid, 555);
    assert.equal(sim.state.launcher, null);
  });

  it('MAINPID= during the start, then the launcher fails: the start fails', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nNotifyAccess=all')).start();
    const launcher = sim.state.main!.slot;
    sim.notify({ MAINPID: '555' }, 'other', { mainPid: { accepted: true, pid: 555, pidfdId: '5550' } });
    sim.send({ type: 'exited', slot: launcher, status: code(1) });
    assert.equal(sim.state.result, 'exit-code');
    assert.deepEqual(sim.signals(), ['main:15', 'members-but-main:15']);
  });

  it('a failing first process fails the start', () => {
    const sim = new Sim(unit('Type=forking\nExecStart=/bin/daemon\nPIDFile=/run/app.pid')).start().exit('main', code(1));
    assert.equal(sim.state.result, 'exit-code');
    assert.ok(!sim.has('read-pid-file'));
  });
});

describe('Type=oneshot', () => {
  it('runs each ExecStart= in turn, then is dead (job done)', () => {
    const sim = new Sim(unit('Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b')).start();
    assert.deepEqual(sim.spawned(), ['main:main#0']);
    assert.equal(sim.armed('timeout'), undefined, 'oneshot has no start timeout by default');
    sim.exit('main', code(0));
    assert.deepEqual(sim.spawned(), ['main:main#1']);
    sim.exit('main', code(0));
    sim.membersGone();
    sim.expectSub('dead');
    assert.deepEqual(sim.allJobs(), ['start done']);
  });

  it('RemainAfterExit=yes: active (exited) after the last command', () => {
    const sim = new Sim(unit('Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/a')).start().exit('main', code(0));
    sim.expectSub('exited').expectJob('start', 'done');
    sim.stop();
    sim.expectSub('stop-sigterm');
    sim.membersGone().expectSub('dead').expectJob('stop', 'done');
  });

  it('a failing command fails the start; `-` ignores it', () => {
    const sim = new Sim(unit('Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b')).start().exit('main', code(2));
    assert.deepEqual(sim.spawned(), []);
    assert.equal(sim.state.result, 'exit-code');
    const ignored = new Sim(unit('Type=oneshot\nExecStart=-/bin/a\nExecStart=/bin/b')).start().exit('main', code(2));
    assert.deepEqual(ignored.spawned(), ['main:main#1']);
  });

  it('SIGTERM is not clean for oneshot', () => {
    const sim = new Sim(unit('Type=oneshot\nExecStart=/bin/a')).start().exit('main', killed('SIGTERM'));
    assert.equal(sim.state.result, 'signal');
  });

  it('a spawn failure of an ignored command goes on to the next', () => {
    const sim = new Sim(unit('Type=oneshot\nExecStart=-/bin/missing\nExecStart=/bin/b')).failNextSpawn(203).start();
    assert.deepEqual(sim.spawned(), ['main:main#0', 'main:main#1']);
    sim.expectSub('start');
  });

  it('TimeoutStartSec= on a oneshot kills it with result timeout', () => {
    const sim = new Sim(unit('Type=oneshot\nExecStart=/bin/a\nTimeoutStartSec=2')).start().fire('timeout');
    assert.equal(sim.state.result, 'timeout');
    assert.deepEqual(sim.signals(), ['main:15', 'members-but-main:15']);
  });

  it('without ExecStart= (ExecStartPre= and ExecStop= only) and RemainAfterExit=yes it is exited; stop runs ExecStop=', () => {
    const sim = new Sim(unit('Type=oneshot\nRemainAfterExit=yes\nExecStartPre=/bin/prep\nExecStop=/bin/down')).start().exit('control', code(0));
    sim.expectSub('exited');
    sim.stop();
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
    assert.equal(sim.spawns()[0]!.env.mainPid, false);
    assert.deepEqual(sim.spawns()[0]!.env.exitInfo, { result: 'success', lastExit: null });
  });
});

describe('Type=notify-reload', () => {
  it('starts like notify', () => {
    const sim = running('Type=notify-reload\nExecStart=/bin/app');
    assert.equal(sim.state.main?.pid, 100);
  });
});
