import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialScopeState, scopeMain, scopeStep, type ScopeEffect, type ScopeEvent, type ScopeMachineState } from '../../../src/manager/machines/scope-machine.js';
import { code, killed, unit } from './harness.js';

type Body = ScopeEvent extends infer E ? (E extends unknown ? Omit<E, 'now'> : never) : never;

/** A scope of three processes (PIDs 11, 12, 13), driven by hand. */
class Scope {
  state: ScopeMachineState = initialScopeState();
  last: ScopeEffect[] = [];
  now = 0;
  constructor(readonly service = unit('ExecStart=/bin/true\nTimeoutStopSec=5').service) {}
  send(event: Body): this {
    const { state, effects } = scopeStep(this.service, this.state, { ...event, now: this.now } as ScopeEvent);
    this.state = state;
    this.last = effects;
    return this;
  }
  adopt(): this {
    return this.send({ type: 'adopt', processes: [11, 12, 13].map((pid) => ({ pid, pidfdId: String(pid) })), invocationId: 'scope1' });
  }
  slotOf(pid: number): number {
    return this.state.members.find((m) => m.pid === pid)!.slot;
  }
  states(): string[] {
    return this.last.flatMap((e) => (e.type === 'emit-state' ? [e.subState] : []));
  }
  fire(): this {
    return this.send({ type: 'timer-fired', timer: 'timeout', generation: this.state.timeoutGeneration! });
  }
}

describe('scope machine', () => {
  it('is running while any process lives; the next one stands as main', () => {
    const scope = new Scope().adopt();
    assert.deepEqual(scope.last[0], { type: 'adopt-members', slots: [1, 2, 3] });
    assert.deepEqual(scope.states(), ['running']);
    assert.equal(scopeMain(scope.state)?.pid, 11);
    scope.send({ type: 'exited', slot: scope.slotOf(11), status: code(0) });
    assert.equal(scopeMain(scope.state)?.pid, 12);
    assert.deepEqual(scope.state.lastExit, { code: 0, signal: null });
    assert.equal(scope.state.sub, 'running');
    scope.send({ type: 'exited', slot: scope.slotOf(13), status: code(1) });
    assert.equal(scopeMain(scope.state)?.pid, 12);
    scope.send({ type: 'exited', slot: scope.slotOf(12), status: killed('SIGKILL') });
    assert.deepEqual(scope.states(), ['dead']);
    assert.ok(scope.last.some((e) => e.type === 'log' && e.text === 'scope process 12 killed by SIGKILL'));
  });

  it('a stop signals each process and the rest of the unit, and is done when all are gone', () => {
    const scope = new Scope().adopt().send({ type: 'stop' });
    assert.deepEqual(scope.states(), ['stop-sigterm']);
    assert.deepEqual(
      scope.last.filter((e) => e.type === 'signal-process').map((e) => e.type === 'signal-process' && e.slot),
      [1, 2, 3],
    );
    assert.ok(scope.last.some((e) => e.type === 'signal-members' && e.signal === 15));
    for (const pid of [11, 12, 13]) scope.send({ type: 'exited', slot: scope.slotOf(pid), status: killed('SIGTERM') });
    assert.equal(scope.state.sub, 'stop-sigterm');
    scope.send({ type: 'members-gone' });
    assert.deepEqual(scope.states(), ['dead']);
    assert.ok(scope.last.some((e) => e.type === 'job-done' && e.result === 'done'));
  });

  it('TimeoutStopSec=: FinalKillSignal= to what is left, result timeout', () => {
    const scope = new Scope().adopt().send({ type: 'stop' }).fire();
    assert.deepEqual(scope.states(), ['stop-sigkill']);
    assert.ok(scope.last.some((e) => e.type === 'signal-process' && e.signal === 9));
    assert.equal(scope.state.result, 'timeout');
    for (const pid of [11, 12, 13]) scope.send({ type: 'exited', slot: scope.slotOf(pid), status: killed('SIGKILL') });
    scope.send({ type: 'members-gone' });
    assert.equal(scope.state.sub, 'failed');
  });

  it('SendSIGKILL=no: left alone after the timeout, the scope failed', () => {
    const scope = new Scope(unit('ExecStart=/bin/true\nTimeoutStopSec=5\nSendSIGKILL=no').service).adopt().send({ type: 'stop' }).fire();
    assert.ok(!scope.last.some((e) => e.type === 'signal-process'));
    assert.equal(scope.state.sub, 'failed');
    assert.equal(scope.last.filter((e) => e.type === 'release').length, 3);
  });

  it('a stop of a scope that is gone is done at once; a stale exit changes nothing', () => {
    const scope = new Scope().send({ type: 'stop' });
    assert.deepEqual(scope.last, [{ type: 'job-done', job: 'stop', result: 'done' }]);
    scope.adopt().send({ type: 'exited', slot: 99, status: code(0) });
    assert.deepEqual(scope.last, []);
  });
});
