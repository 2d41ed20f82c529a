import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExitStatus } from '../../../src/pidfd/index.js';
import { checkStartLimit, restartDelayMs, shouldRestart, restartPolicyAllows } from '../../../src/manager/machines/service-policy.js';
import type { RestartPolicy } from '../../../src/unit/index.js';
import type { ServiceResult } from '../../../src/manager/types.js';
import { Sim, code, killed, running, unit } from './harness.js';

/** How each result is produced in a scenario, from a running simple service with WatchdogSec=1. */
const RESULTS: Record<string, (sim: Sim) => void> = {
  success: (sim) => sim.exit('main', code(0)).membersGone(),
  'exit-code': (sim) => sim.exit('main', code(1)).membersGone(),
  signal: (sim) => sim.exit('main', killed('SIGKILL')).membersGone(),
  'core-dump': (sim) => sim.exit('main', killed('SIGSEGV', true)).membersGone(),
  watchdog: (sim) => sim.fire('watchdog').exit('main', killed('SIGABRT', true)).membersGone(),
  timeout: (sim) => sim.fire('runtime-max').exit('main', killed('SIGTERM')).membersGone(),
};

const EXPECTED: Record<RestartPolicy, readonly string[]> = {
  no: [],
  always: ['success', 'exit-code', 'signal', 'core-dump', 'watchdog', 'timeout'],
  'on-success': ['success'],
  'on-failure': ['exit-code', 'signal', 'core-dump', 'watchdog', 'timeout'],
  'on-abnormal': ['signal', 'core-dump', 'watchdog', 'timeout'],
  'on-abort': ['signal', 'core-dump'],
  'on-watchdog': ['watchdog'],
};

describe('Restart= × result', () => {
  for (const [policy, restarting] of Object.entries(EXPECTED) as [RestartPolicy, readonly string[]][]) {
    for (const [result, produce] of Object.entries(RESULTS)) {
      const restarts = restarting.includes(result);
      it(`Restart=${policy}, result ${result}: ${restarts ? 'restarts' : 'stays down'}`, () => {
        const sim = running(`ExecStart=/bin/app\nRestart=${policy}\nWatchdogSec=1\nRuntimeMaxSec=60`);
        produce(sim);
        assert.equal(sim.state.result, result);
        if (restarts) {
          sim.expectSub('auto-restart');
          assert.equal(sim.armed('restart'), 100);
          sim.fire('restart');
          sim.expectSub('running');
          assert.equal(sim.state.restarts, 1);
          assert.equal(sim.state.result, 'success');
          assert.notEqual(sim.state.invocationId, 'inv1');
        } else {
          sim.expectSub(result === 'success' ? 'dead' : 'failed');
          assert.equal(sim.armed('restart'), undefined);
        }
      });
    }
  }

  it('the pure policy agrees with the table, and start-limit-hit never restarts', () => {
    for (const [policy, restarting] of Object.entries(EXPECTED) as [RestartPolicy, readonly string[]][]) {
      for (const result of Object.keys(RESULTS) as ServiceResult[]) assert.equal(restartPolicyAllows(policy, result), restarting.includes(result), `${policy} ${result}`);
      const service = { restart: policy, restartPreventExitStatus: { codes: [], signals: [] }, restartForceExitStatus: { codes: [], signals: [] } };
      assert.equal(shouldRestart(service, 'start-limit-hit', null), false);
    }
  });
});

describe('RestartPreventExitStatus= and RestartForceExitStatus=', () => {
  const cases: [string, ExitStatus, boolean][] = [
    ['Restart=always\nRestartPreventExitStatus=3', code(3), false],
    ['Restart=always\nRestartPreventExitStatus=3', code(4), true],
    ['Restart=always\nRestartPreventExitStatus=SIGKILL', killed('SIGKILL'), false],
    ['Restart=no\nRestartForceExitStatus=7', code(7), true],
    ['Restart=no\nRestartForceExitStatus=SIGUSR1', killed('SIGUSR1'), true],
    ['Restart=on-success\nRestartForceExitStatus=7', code(8), false],
    ['Restart=no\nRestartForceExitStatus=7\nRestartPreventExitStatus=7', code(7), false],
  ];
  for (const [lines, status, restarts] of cases) {
    it(`${lines.replaceAll('\n', ' ')}, exit ${status.code ?? status.signal}: ${restarts ? 'restarts' : 'stays down'}`, () => {
      const sim = running(`ExecStart=/bin/app\n${lines}`).exit('main', status).membersGone();
      assert.equal(sim.sub === 'auto-restart', restarts);
    });
  }
});

describe('restart scheduling', () => {
  it('RestartSec=0 arms a restart timer of 0', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always\nRestartSec=0').exit('main', code(1)).membersGone();
    assert.equal(sim.armed('restart'), 0);
    assert.ok(sim.logs('info').includes("scheduling restart in 0 ms (result 'exit-code')"));
  });

  it('RestartSteps= grows the delay to RestartMaxDelaySec=', () => {
    const service = unit('ExecStart=/bin/app\nRestartSec=1\nRestartSteps=2\nRestartMaxDelaySec=4').service;
    assert.deepEqual([0, 1, 2, 3].map((n) => Math.round(restartDelayMs(service, n))), [1000, 2000, 4000, 4000]);
    const sim = running('ExecStart=/bin/app\nRestart=always\nRestartSec=1\nRestartSteps=2\nRestartMaxDelaySec=4');
    sim.exit('main', code(1)).membersGone();
    assert.equal(sim.armed('restart'), 1000);
    sim.fire('restart').exit('main', code(1)).membersGone();
    assert.equal(Math.round(sim.armed('restart')!), 2000);
  });

  it('RESTART_RESET=1 sets the restart count back to 0', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always\nNotifyAccess=main');
    sim.exit('main', code(1)).membersGone().fire('restart');
    assert.equal(sim.state.restarts, 1);
    sim.notify({ RESTART_RESET: '1' });
    assert.equal(sim.state.restarts, 0);
    assert.ok(sim.has('persist'));
  });

  it('a stop while waiting to restart cancels the restart; the unit is failed (or dead after success)', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always').exit('main', code(1)).membersGone();
    sim.stop();
    assert.ok(sim.has('cancel-timer'));
    sim.expectSub('failed').expectJob('stop', 'done');
    const ok = running('ExecStart=/bin/app\nRestart=always').exit('main', code(0)).membersGone().stop();
    ok.expectSub('dead');
  });

  it('a start while waiting to restart starts at once (not counted as a restart)', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always').exit('main', code(1)).membersGone();
    sim.start();
    sim.expectSub('running').expectJob('start', 'done');
    assert.equal(sim.state.restarts, 0);
    assert.equal(sim.armed('restart'), undefined);
  });

  it('a stopped unit (manual stop) never restarts, whatever Restart= says', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always').stop();
    sim.exit('main', killed('SIGTERM')).membersGone();
    sim.expectSub('dead');
    assert.equal(sim.state.manualStop, true);
  });

  it('a stale restart timer (from before a stop and start) does nothing', () => {
    const sim = running('ExecStart=/bin/app\nRestart=always').exit('main', code(1)).membersGone();
    const generation = sim.timers.get('restart')!.generation;
    sim.stop().start();
    const slot = sim.state.main!.slot;
    sim.send({ type: 'timer-fired', timer: 'restart', generation });
    assert.deepEqual(sim.last, []);
    assert.equal(sim.state.main!.slot, slot);
  });
});

describe('the start limit', () => {
  it('the pure limit keeps only recent starts', () => {
    const u = { startLimitIntervalMs: 1000, startLimitBurst: 2 };
    assert.deepEqual(checkStartLimit(u, [], 0), { allowed: true, startTimes: [0] });
    assert.deepEqual(checkStartLimit(u, [0, 500], 900), { allowed: false, startTimes: [0, 500] });
    assert.deepEqual(checkStartLimit(u, [0, 500], 1000), { allowed: true, startTimes: [500, 1000] });
    assert.deepEqual(checkStartLimit({ startLimitIntervalMs: 0, startLimitBurst: 2 }, [0, 0, 0], 0).allowed, true);
  });

  it('automatic restarts hit StartLimitBurst= and the unit fails with start-limit-hit, without a restart', () => {
    const sim = running('[Unit]\nStartLimitIntervalSec=10\nStartLimitBurst=3\n[Service]\nExecStart=/bin/app\nRestart=always\nRestartSec=0');
    for (let i = 0; i < 2; i++) sim.exit('main', code(1)).membersGone().fire('restart').expectSub('running');
    sim.exit('main', code(1)).membersGone().fire('restart');
    sim.expectSub('failed');
    assert.equal(sim.state.result, 'start-limit-hit');
    assert.ok(sim.logs('error')[0]!.startsWith('start request repeated too quickly'));
    assert.equal(sim.armed('restart'), undefined);
  });

  it('a manual start over the limit fails at once; reset-failed forgets the history', () => {
    const sim = new Sim(unit('[Unit]\nStartLimitIntervalSec=10\nStartLimitBurst=1\n[Service]\nExecStart=/bin/app'));
    sim.start().stop().exit('main', killed('SIGTERM')).membersGone();
    sim.start();
    sim.expectJob('start', 'failed').expectSub('failed');
    sim.send({ type: 'reset-failed' });
    sim.expectSub('dead');
    assert.equal(sim.state.result, 'success');
    sim.start().expectSub('running');
  });

  it('starts spread over more than the interval are allowed', () => {
    const sim = new Sim(unit('[Unit]\nStartLimitIntervalSec=1\nStartLimitBurst=1\n[Service]\nExecStart=/bin/app'));
    sim.start().stop().exit('main', killed('SIGTERM')).membersGone();
    sim.advance(1000).start().expectSub('running');
  });
});
