import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACTIVE_STATE_OF, CONTROL_STATES, KILLING_STATES, MAINPID_STATES, MAIN_PROCESS_STATES, RELOADING_STATES, STARTED_STATES, STARTING_STATES, STOPPING_STATES, activeStateOf } from '../../../src/manager/machines/service-states.js';
import { classifyControlExit, classifyMainExit, conditionSkips, describeStatus, exitInSet } from '../../../src/manager/machines/service-policy.js';
import type { SubState } from '../../../src/manager/types.js';
import { code, killed, unit } from './harness.js';

describe('the state translation table', () => {
  const expected: Record<string, SubState[]> = {
    inactive: ['dead'],
    failed: ['failed'],
    activating: ['condition', 'start-pre', 'start', 'start-post', 'auto-restart'],
    active: ['running', 'exited'],
    reloading: ['reload', 'reload-signal', 'reload-notify'],
    deactivating: ['stop', 'stop-sigterm', 'stop-sigkill', 'stop-post', 'final-sigterm', 'final-sigkill'],
  };
  for (const [active, subs] of Object.entries(expected)) {
    it(`${subs.join(', ')} → ${active}`, () => {
      for (const sub of subs) assert.equal(activeStateOf(sub), active);
    });
  }

  it('covers every sub state, and the named sets agree with it', () => {
    assert.equal(Object.keys(ACTIVE_STATE_OF).length, Object.values(expected).flat().length);
    for (const sub of STARTING_STATES) assert.equal(activeStateOf(sub), 'activating');
    for (const sub of STOPPING_STATES) assert.equal(activeStateOf(sub), 'deactivating');
    for (const sub of KILLING_STATES) assert.ok(STOPPING_STATES.has(sub));
    for (const sub of RELOADING_STATES) assert.ok(STARTED_STATES.has(sub));
    for (const sub of MAINPID_STATES) assert.ok(MAIN_PROCESS_STATES.has(sub));
    for (const sub of ['dead', 'failed', 'auto-restart', 'running', 'exited', 'start'] as SubState[]) assert.ok(!CONTROL_STATES.has(sub));
  });
});

describe('exit classification', () => {
  const simple = unit('ExecStart=/bin/app\nSuccessExitStatus=3 SIGUSR1').service;
  const oneshot = unit('Type=oneshot\nExecStart=/bin/app').service;
  const table: [string, ReturnType<typeof code>, string, string, string][] = [
    // status, main (simple), main (oneshot), control
    ['0', code(0), 'success', 'success', 'success'],
    ['1', code(1), 'exit-code', 'exit-code', 'exit-code'],
    ['3 (SuccessExitStatus=)', code(3), 'success', 'exit-code', 'success'],
    ['SIGTERM', killed('SIGTERM'), 'success', 'signal', 'signal'],
    ['SIGHUP', killed('SIGHUP'), 'success', 'signal', 'signal'],
    ['SIGINT', killed('SIGINT'), 'success', 'signal', 'signal'],
    ['SIGPIPE', killed('SIGPIPE'), 'success', 'signal', 'signal'],
    ['SIGUSR1 (SuccessExitStatus=)', killed('SIGUSR1'), 'success', 'signal', 'signal'],
    ['SIGKILL', killed('SIGKILL'), 'signal', 'signal', 'signal'],
    ['SIGSEGV, core', killed('SIGSEGV', true), 'core-dump', 'core-dump', 'core-dump'],
    ['unknown', { code: null, signal: null, coreDumped: false }, 'success', 'success', 'success'],
  ];
  for (const [name, status, main, mainOneshot, control] of table) {
    it(`${name}: main ${main}, oneshot main ${mainOneshot}, control ${control}`, () => {
      assert.equal(classifyMainExit(status, simple), main);
      assert.equal(classifyMainExit(status, oneshot), mainOneshot);
      assert.equal(classifyControlExit(status, simple), control);
    });
  }

  it('ExecCondition= skips for 1–254 only', () => {
    assert.deepEqual([0, 1, 254, 255].map((n) => conditionSkips(code(n))), [false, true, true, false]);
    assert.equal(conditionSkips(killed('SIGTERM')), false);
  });

  it('exit sets match codes and signals by number, from the one signal table', () => {
    const set = { codes: [7], signals: [24] };
    assert.equal(exitInSet(code(7), set), true);
    assert.equal(exitInSet(killed('SIGXCPU'), set), true);
    assert.equal(exitInSet(killed('SIGNOPE'), set), false);
    assert.equal(exitInSet(null, set), false);
  });

  it('describes exits as the log shows them', () => {
    assert.equal(describeStatus(code(3)), 'exited with code 3');
    assert.equal(describeStatus(killed('SIGSEGV', true)), 'killed by SIGSEGV (core dumped)');
    assert.equal(describeStatus({ code: null, signal: null }), 'ended');
  });
});
