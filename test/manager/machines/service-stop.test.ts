import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sim, code, killed, running, unit } from './harness.js';

describe('KillMode=control-group', () => {
  it('SIGTERM (+SIGCONT) to the main process and every other process; done when all are gone', () => {
    const sim = running('ExecStart=/bin/app').stop();
    assert.deepEqual(sim.states(), ['stop-sigterm']);
    assert.deepEqual(sim.signals(), ['main:15', 'members-but-main:15']);
    assert.ok(sim.last.some((e) => e.type === 'signal' && e.thenCont === true && e.thenHup === false));
    assert.ok(sim.watching);
    assert.equal(sim.armed('timeout'), 90_000);
    sim.exit('main', killed('SIGTERM'));
    sim.expectSub('stop-sigterm');
    sim.membersGone().expectSub('dead').expectJob('stop', 'done');
    assert.equal(sim.state.result, 'success');
    assert.deepEqual(sim.pids.size, 0);
  });

  it('members gone before the main exit is reported: waits for the exit', () => {
    const sim = running('ExecStart=/bin/app').stop().membersGone().expectSub('stop-sigterm');
    sim.exit('main', killed('SIGTERM')).expectSub('dead');
  });

  it('TimeoutStopSec=: a warning, result timeout, FinalKillSignal= to all (cgroup.kill allowed)', () => {
    const sim = running('ExecStart=/bin/app\nTimeoutStopSec=5').stop().fire('timeout');
    assert.equal(sim.now, 5000);
    assert.deepEqual(sim.logs('warning'), ['processes still running after TimeoutStopSec=; sending SIGKILL']);
    assert.deepEqual(sim.states(), ['stop-sigkill']);
    assert.deepEqual(sim.signals(), ['main:9', 'members-but-main:9']);
    assert.ok(sim.last.some((e) => e.type === 'signal-members' && e.useCgroupKill === true));
    assert.equal(sim.state.result, 'timeout');
    sim.exit('main', killed('SIGKILL')).membersGone();
    sim.expectSub('failed').expectJob('stop', 'done');
  });

  it('processes that survive the final signal are given up after another TimeoutStopSec=', () => {
    const sim = running('ExecStart=/bin/app\nTimeoutStopSec=5').stop().fire('timeout').fire('timeout');
    assert.deepEqual(sim.logs('error').slice(0, 1), ['processes survived the final kill signal; giving up on them']);
    sim.expectSub('failed');
    assert.ok(sim.last.some((e) => e.type === 'release'));
  });

  it('SendSIGKILL=no leaves them after the timeout', () => {
    const sim = running('ExecStart=/bin/app\nTimeoutStopSec=5\nSendSIGKILL=no').stop().fire('timeout');
    assert.deepEqual(sim.logs('warning'), ['processes still running after TimeoutStopSec=; leaving them (SendSIGKILL=no)']);
    assert.deepEqual(sim.signals(), []);
    assert.ok(!sim.states().includes('stop-sigkill'));
    sim.expectSub('failed');
  });

  it('SendSIGHUP=yes adds SIGHUP after the kill signal; FinalKillSignal= and KillSignal= are used', () => {
    const sim = running('ExecStart=/bin/app\nSendSIGHUP=yes\nKillSignal=SIGINT\nFinalKillSignal=SIGQUIT\nTimeoutStopSec=1').stop();
    assert.deepEqual(sim.signals(), ['main:2', 'members-but-main:2']);
    assert.ok(sim.last.every((e) => e.type !== 'signal' || e.thenHup === true));
    sim.fire('timeout');
    assert.deepEqual(sim.signals(), ['main:3', 'members-but-main:3']);
    assert.ok(sim.last.some((e) => e.type === 'signal' && e.thenCont === true && e.thenHup === false));
    assert.ok(sim.last.every((e) => e.type !== 'signal-members' || e.useCgroupKill === undefined));
  });
});

describe('KillMode=process', () => {
  it('only the main process is signalled, and the stop is done once it has exited', () => {
    const sim = running('ExecStart=/bin/app\nKillMode=process').stop();
    assert.deepEqual(sim.signals(), ['main:15']);
    assert.ok(!sim.has('watch-members'));
    sim.exit('main', killed('SIGTERM'));
    sim.expectSub('dead').expectJob('stop', 'done');
  });

  it('with the main process already gone there is nothing to wait for', () => {
    const sim = new Sim(unit('Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/a\nKillMode=process')).start().exit('main', code(0));
    sim.stop();
    assert.deepEqual(sim.states(), ['dead']);
    assert.deepEqual(sim.signals(), []);
  });

  it('the timeout escalates to the main process only', () => {
    const sim = running('ExecStart=/bin/app\nKillMode=process\nTimeoutStopSec=2').stop().fire('timeout');
    assert.deepEqual(sim.signals(), ['main:9']);
    sim.exit('main', killed('SIGKILL')).expectSub('failed');
  });
});

describe('KillMode=none', () => {
  it('signals nothing; ExecStop= alone stops the service', () => {
    const sim = running('ExecStart=/bin/app\nKillMode=none\nExecStop=/bin/app-stop').stop();
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
    assert.equal(sim.spawns()[0]!.env.mainPid, true);
    sim.exit('control', code(0));
    assert.deepEqual(sim.signals(), []);
    sim.expectSub('dead').expectJob('stop', 'done');
  });
});

describe('KillMode=mixed', () => {
  it('SIGTERM to the main process only; once it exits, SIGKILL the rest at once, without a timeout warning', () => {
    const sim = running('ExecStart=/bin/nginx\nKillMode=mixed').stop();
    assert.deepEqual(sim.signals(), ['main:15']);
    assert.ok(!sim.has('watch-members'));
    sim.advance(3).exit('main', killed('SIGTERM'));
    assert.deepEqual(sim.states(), ['stop-sigkill']);
    assert.deepEqual(sim.signals(), ['members-all:9']);
    assert.deepEqual(sim.logs('warning'), []);
    assert.equal(sim.state.result, 'success');
    sim.membersGone().expectSub('dead');
  });

  it('the warning and result timeout only when TimeoutStopSec= really passed', () => {
    const sim = running('ExecStart=/bin/nginx\nKillMode=mixed\nTimeoutStopSec=4').stop().fire('timeout');
    assert.deepEqual(sim.logs('warning'), ['processes still running after TimeoutStopSec=; sending SIGKILL']);
    assert.deepEqual(sim.signals(), ['main:9', 'members-but-main:9']);
    assert.equal(sim.state.result, 'timeout');
    sim.exit('main', killed('SIGKILL')).membersGone().expectSub('failed');
  });
});

describe('ExecStop= and ExecStopPost=', () => {
  it('ExecStop=, the kill phase, ExecStopPost=, the final kill phase, in that order', () => {
    const sim = running('ExecStart=/bin/app\nExecStop=/bin/down\nExecStopPost=/bin/clean');
    sim.stop();
    assert.deepEqual(sim.states(), ['stop']);
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
    const env = sim.spawns()[0]!.env;
    assert.equal(env.mainPid, true);
    assert.deepEqual(env.exitInfo, { result: 'success', lastExit: null });
    assert.equal(sim.armed('timeout'), 90_000);
    sim.exit('main', code(0));
    sim.expectSub('stop');
    sim.exit('control', code(0));
    assert.deepEqual(sim.states(), ['stop-sigterm']);
    assert.deepEqual(sim.signals(), ['members-all:15']);
    sim.membersGone();
    assert.deepEqual(sim.states(), ['stop-post']);
    assert.deepEqual(sim.spawned(), ['control:stop-post#0']);
    assert.deepEqual(sim.spawns()[0]!.env.exitInfo, { result: 'success', lastExit: { code: 0, signal: null } });
    assert.equal(sim.spawns()[0]!.env.mainPid, false);
    sim.exit('control', code(0));
    assert.deepEqual(sim.states(), ['final-sigterm']);
    sim.membersGone().expectSub('dead').expectJob('stop', 'done');
  });

  it('a failing ExecStopPost= command does not stop the next one', () => {
    const sim = running('ExecStart=/bin/app\nExecStopPost=/bin/a\nExecStopPost=/bin/b\nKillMode=process').stop().exit('main', killed('SIGTERM'));
    sim.exit('control', code(3));
    assert.deepEqual(sim.spawned(), ['control:stop-post#1']);
  });

  it('an ExecStop= that runs too long is killed, the rest of ExecStop= skipped, the kill phase follows', () => {
    const sim = running('ExecStart=/bin/app\nExecStop=/bin/slow\nExecStop=/bin/never\nTimeoutStopSec=3').stop().fire('timeout');
    assert.deepEqual(sim.logs('warning'), ['stop command 101 timed out; killing it']);
    assert.deepEqual(sim.signals(), ['control:15']);
    sim.exit('control', killed('SIGTERM'));
    assert.deepEqual(sim.spawned(), []);
    assert.deepEqual(sim.states(), ['stop-sigterm']);
    assert.deepEqual(sim.signals(), ['main:15', 'members-but-main:15']);
  });

  it('a control process that ignores KillSignal= gets FinalKillSignal= after TimeoutStopSec=', () => {
    const sim = running('ExecStart=/bin/app\nExecStop=/bin/slow\nTimeoutStopSec=3').stop().fire('timeout').fire('timeout');
    assert.deepEqual(sim.signals(), ['control:9']);
    sim.exit('control', killed('SIGKILL')).expectSub('stop-sigterm');
  });

  it('after the main process exited on its own, ExecStop= still runs (the unit was up)', () => {
    const sim = running('ExecStart=/bin/app\nExecStop=/bin/down').exit('main', code(1));
    assert.deepEqual(sim.spawned(), ['control:stop#0']);
    assert.deepEqual(sim.spawns()[0]!.env.exitInfo, { result: 'exit-code', lastExit: { code: 1, signal: null } });
    assert.equal(sim.spawns()[0]!.env.mainPid, false);
  });
});

describe('jobs around a stop', () => {
  it('the state is told before the job is answered', () => {
    const sim = running('ExecStart=/bin/app').stop().exit('main', killed('SIGTERM')).membersGone();
    const order = sim.last.flatMap((e) => (e.type === 'emit-state' ? ['state'] : e.type === 'job-done' ? ['job'] : []));
    assert.deepEqual(order, ['state', 'job']);
  });

  it('a stop while stopping joins: one job-done', () => {
    const sim = running('ExecStart=/bin/app').stop();
    sim.stop();
    assert.deepEqual(sim.jobs(), []);
    sim.exit('main', killed('SIGTERM')).membersGone();
    assert.deepEqual(sim.allJobs(), ['start done', 'stop done']);
  });

  it('a stop of a dead unit is done at once; a start of a running one too', () => {
    const sim = new Sim(unit('ExecStart=/bin/app')).stop();
    sim.expectJob('stop', 'done').expectSub('dead');
    sim.start().start().expectJob('start', 'done');
  });

  it('a start during a stop waits for the stop, then starts', () => {
    const sim = running('ExecStart=/bin/app').stop().start();
    assert.deepEqual(sim.jobs(), []);
    sim.exit('main', killed('SIGTERM')).membersGone();
    assert.deepEqual(sim.jobs(), ['stop done', 'start done']);
    sim.expectSub('running');
    assert.equal(sim.state.manualStop, false);
    assert.equal(sim.state.invocationId, 'inv2');
  });

  it('a start while a failed start is being cleaned up joins it (and fails with it)', () => {
    const sim = new Sim(unit('ExecStartPre=/bin/prep\nExecStart=/bin/app')).start().exit('control', code(1));
    sim.expectSub('stop-sigterm');
    sim.start();
    assert.equal(sim.state.queuedStart, null);
    sim.membersGone();
    assert.deepEqual(sim.allJobs(), ['start failed']);
    sim.expectSub('failed');
  });

  it('a stop after a queued start cancels that start', () => {
    const sim = running('ExecStart=/bin/app').stop().start().stop();
    sim.expectJob('start', 'canceled');
    sim.exit('main', killed('SIGTERM')).membersGone().expectSub('dead');
  });

  it('a second start during a start joins it: one job-done answers both', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app')).start().start();
    assert.deepEqual(sim.jobs(), []);
    sim.notify({ READY: '1' });
    assert.deepEqual(sim.allJobs(), ['start done']);
  });
});

describe('a stop during every start phase cancels the start job', () => {
  const phases: [string, string, (sim: Sim) => void, string[]][] = [
    ['condition (checking)', '[Unit]\nConditionPathExists=/etc/x\n[Service]\nExecStart=/bin/app', () => {}, []],
    ['condition (ExecCondition=)', 'ExecCondition=/bin/check\nExecStart=/bin/app', () => {}, ['control:15']],
    ['start-pre', 'ExecStartPre=/bin/prep\nExecStart=/bin/app', () => {}, ['control:15']],
    ['start (notify)', 'Type=notify\nExecStart=/bin/app', () => {}, ['main:15']],
    ['start (oneshot)', 'Type=oneshot\nExecStart=/bin/app', () => {}, ['main:15']],
    ['start (forking)', 'Type=forking\nExecStart=/bin/app\nPIDFile=/run/a.pid', () => {}, ['main:15']],
    ['start-post', 'ExecStart=/bin/app\nExecStartPost=/bin/post', () => {}, ['control:15', 'main:15']],
  ];
  for (const [phase, text, setup, signals] of phases) {
    it(phase, () => {
      const sim = new Sim(unit(`${text}\nExecStop=/bin/never-runs`)).start();
      setup(sim);
      assert.equal(sim.active, 'activating');
      sim.stop();
      assert.deepEqual(sim.jobs(), ['start canceled']);
      assert.deepEqual(sim.spawned(), [], 'ExecStop= does not run for a unit that never came up');
      assert.deepEqual(sim.signals().filter((s) => !s.startsWith('members')), signals);
      sim.expectSub('stop-sigterm');
      if (sim.state.control !== null) sim.exit('control', killed('SIGTERM'));
      if (sim.state.main !== null) sim.exit('main', killed('SIGTERM'));
      sim.membersGone();
      sim.expectSub('dead');
      assert.deepEqual(sim.allJobs(), ['start canceled', 'stop done']);
      // Late answers to the canceled start change nothing.
      sim.send({ type: 'conditions-checked', failed: null });
      sim.send({ type: 'pid-file', result: { accepted: true, pid: 9, pidfdId: null } });
      assert.deepEqual(sim.last, []);
    });
  }
});

describe('STOPPING=1', () => {
  it('the service says it is stopping: the stop sequence runs, and Restart= still applies', () => {
    const sim = running('Type=notify\nExecStart=/bin/app\nRestart=always\nExecStop=/bin/down');
    sim.notify({ STOPPING: '1', READY: '1' });
    assert.deepEqual(sim.logs('info'), ['the service says it is stopping']);
    sim.expectSub('stop');
    sim.exit('control', code(0)).exit('main', code(0)).membersGone();
    sim.expectSub('auto-restart');
  });

  it('ignored while not up', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app')).start().notify({ STOPPING: '1' });
    sim.expectSub('start');
  });
});

describe('stale events', () => {
  it('an exit for a slot that is no longer the main process changes nothing', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always\nRestartSec=0');
    const oldSlot = sim.state.main!.slot;
    sim.exit('main', code(1)).membersGone().fire('restart');
    const before = sim.state;
    sim.send({ type: 'exited', slot: oldSlot, status: code(1) });
    assert.deepEqual(sim.last, []);
    assert.deepEqual(sim.state, before);
  });

  it('members-gone when nobody asked changes nothing', () => {
    const sim = running('ExecStart=/bin/app').membersGone();
    assert.deepEqual(sim.last, []);
  });

  it('a timer whose generation was replaced does nothing', () => {
    const sim = new Sim(unit('Type=notify\nExecStart=/bin/app\nTimeoutStartSec=5')).start();
    const old = sim.timers.get('timeout')!.generation;
    sim.notify({ READY: '1' });
    sim.send({ type: 'timer-fired', timer: 'timeout', generation: old });
    assert.deepEqual(sim.last, []);
  });
});

describe('the kill escalation per KillMode=, after a stop and after a start timeout', () => {
  const modes: [string, string[], boolean, string, string[]][] = [
    // mode, first signals, watches members, state once the main process exited, signals after TimeoutStopSec=
    ['control-group', ['main:15', 'members-but-main:15'], true, 'stop-sigterm', ['main:9', 'members-but-main:9']],
    ['mixed', ['main:15'], false, 'stop-sigkill', ['main:9', 'members-but-main:9']],
    ['process', ['main:15'], false, 'down', ['main:9']],
  ];
  const triggers: [string, string, (sim: Sim) => void][] = [
    ['stop', 'ExecStart=/bin/app', (sim) => sim.start().stop()],
    ['start timeout', 'Type=notify\nExecStart=/bin/app\nTimeoutStartSec=1', (sim) => sim.start().fire('timeout')],
  ];
  for (const [trigger, text, run] of triggers) {
    for (const [mode, first, watches, afterExit, escalated] of modes) {
      it(`${trigger}, KillMode=${mode}`, () => {
        const make = (): Sim => {
          const sim = new Sim(unit(`${text}\nKillMode=${mode}\nTimeoutStopSec=5`));
          run(sim);
          return sim;
        };
        const sim = make();
        assert.deepEqual(sim.signals(), first);
        assert.equal(sim.has('watch-members'), watches);
        sim.exit('main', killed('SIGTERM'));
        // Down means dead after a stop, failed after a start timeout.
        if (afterExit === 'down') assert.ok(sim.isDownNow());
        else assert.equal(sim.sub, afterExit);
        const slow = make().fire('timeout');
        assert.deepEqual(slow.signals(), escalated);
        assert.equal(slow.state.result, 'timeout');
      });
    }

    it(`${trigger}, KillMode=none: nothing signalled, the main process left alone (released)`, () => {
      const sim = new Sim(unit(`${text}\nKillMode=none`));
      run(sim);
      assert.deepEqual(sim.signals(), []);
      assert.ok(sim.isDownNow());
      assert.ok(sim.last.some((e) => e.type === 'release'));
    });
  }
});

describe('RemainAfterExit= for a service with a main process', () => {
  it('a clean exit leaves it active (exited); a failure stops it', () => {
    const clean = running('ExecStart=/bin/app\nRemainAfterExit=yes').exit('main', code(0));
    clean.expectSub('exited');
    assert.deepEqual(clean.signals(), []);
    const failed = running('ExecStart=/bin/app\nRemainAfterExit=yes').exit('main', code(1));
    failed.expectSub('stop-sigterm');
    failed.membersGone().expectSub('failed');
  });
});
