/**
 * Random walks through the service machine (seeded, so a failure replays): after every step, the
 * invariants that make the state trustworthy must hold, whatever came before.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceTimer } from '../../../src/manager/machines/service-protocol.js';
import type { FoundProcess } from '../../../src/manager/machines/service-restore.js';
import { RELOADING_STATES, STARTING_STATES, STOPPING_STATES, activeStateOf, isDown } from '../../../src/manager/machines/service-states.js';
import { Sim, code, killed, unit } from './harness.js';
import { seededRandom } from '../../helpers/random.js';


const UNITS = [
  'ExecStart=/bin/app\nRestart=on-failure\nRestartSec=0',
  'Type=notify\nExecStart=/bin/app\nWatchdogSec=3\nTimeoutStartSec=5\nTimeoutStopSec=5\nRestart=always\nExecStop=/bin/down\nExecStopPost=/bin/post',
  'Type=notify-reload\nExecStart=/bin/app\nExecStartPre=-/bin/prep\nExecStartPost=/bin/post\nKillMode=mixed\nTimeoutStopSec=2',
  'Type=oneshot\nExecStart=/bin/a\nExecStart=-/bin/b\nRemainAfterExit=yes\nExecReload=/bin/r\nKillMode=process',
  'Type=forking\nExecStart=/bin/d\nPIDFile=/run/d.pid\nExecStopPost=/bin/clean\nNotifyAccess=all\nKillMode=none\nExecStop=/bin/down',
  '[Unit]\nConditionPathExists=/x\nStartLimitBurst=3\n[Service]\nExecCondition=/bin/c\nExecStart=/bin/app\nExecReload=/bin/r\nRuntimeMaxSec=9\nSendSIGKILL=no\nRestart=always',
];

const STATUSES = [code(0), code(1), code(2), code(255), killed('SIGTERM'), killed('SIGKILL'), killed('SIGSEGV', true)];

function step(sim: Sim, rnd: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const s = sim.state;
  // Requests are rarer than what the world reports, so that walks get deep into each state.
  if ((s.sub === 'running' || s.sub === 'exited') && rnd() < 0.15) {
    sim.reload(BigInt(Math.floor(rnd() * 3000)));
    return 'reload';
  }
  if (rnd() < 0.2) {
    const [name, run] = pick<[string, () => void]>([
      ['start', () => sim.start()],
      ['start', () => sim.start()],
      ['stop', () => sim.stop()],
      ['reload', () => sim.reload(BigInt(Math.floor(rnd() * 3000)))],
      ['reload', () => sim.reload(BigInt(Math.floor(rnd() * 3000)))],
      ['reset-failed', () => sim.send({ type: 'reset-failed' })],
    ]);
    run();
    return name;
  }
  if (sim.pendingSpawnFailures === 0 && rnd() < 0.03) sim.failNextSpawn(rnd() < 0.5 ? 203 : 217);
  const choices: [string, () => void][] = [
    ['members-gone', () => sim.membersGone()],
    ['stale exit', () => sim.send({ type: 'exited', slot: 9999, status: code(0) })],
    ['conditions', () => sim.send({ type: 'conditions-checked', failed: rnd() < 0.2 ? 'ConditionPathExists=/x' : null })],
    ['pid-file', () => sim.send({ type: 'pid-file', result: rnd() < 0.5 ? { accepted: true, pid: 900, pidfdId: '9000' } : rnd() < 0.5 ? { accepted: false, reason: 'no', retry: true } : { accepted: false, reason: 'no' } })],
    ['notify', () => sim.notify(pick<Record<string, string>>([{ READY: '1' }, { STOPPING: '1' }, { RELOADING: '1', MONOTONIC_USEC: '2000' }, { WATCHDOG: '1' }, { WATCHDOG: 'trigger' }, { EXTEND_TIMEOUT_USEC: '1000000' }, { STATUS: 'x' }]), pick(['main', 'control', 'other'] as const))],
    ['mainpid', () => sim.notify({ MAINPID: '901' }, 'main', { mainPid: { accepted: true, pid: 901 + Math.floor(rnd() * 5), pidfdId: null } })],
    ['advance', () => sim.advance(Math.floor(rnd() * 15000))],
  ];
  if (s.main !== null && rnd() < 0.5) choices.push(['main exits', () => sim.exit('main', pick(STATUSES))]);
  if (s.sub === 'start' || s.sub.startsWith('reload')) choices.push(['ready', () => sim.notify({ READY: '1' })], ['ready', () => sim.notify({ READY: '1' })]);
  if (s.sub === 'reload-signal') choices.push(['reloading', () => sim.notify({ RELOADING: '1', MONOTONIC_USEC: '5000' })]);
  if (s.control !== null) choices.push(['control exits', () => sim.exit('control', pick(STATUSES))], ['control exits', () => sim.exit('control', code(0))]);
  if (s.launcher !== null) choices.push(['launcher exits', () => sim.send({ type: 'exited', slot: s.launcher!.slot, status: pick(STATUSES) })]);
  for (const timer of sim.timers.keys()) choices.push([`fire ${timer}`, () => sim.fire(timer as ServiceTimer)]);
  const [name, run] = pick(choices);
  run();
  return name;
}

function checkInvariants(sim: Sim, before: Sim['state'], history: string[]): void {
  const s = sim.state;
  const where = `after ${history.slice(-8).join(' → ')} (state ${s.sub})`;
  assert.ok(activeStateOf(s.sub), where);
  // The states entered, in order, end in the state held.
  const entered = sim.states();
  if (entered.length > 0) assert.equal(entered[entered.length - 1], s.sub, where);
  if (isDown(s.sub) || s.sub === 'auto-restart') {
    assert.equal(s.main, null, `no main process when down, ${where}`);
    assert.equal(s.control, null, `no control process when down, ${where}`);
    assert.equal(s.launcher, null, where);
    assert.equal(s.watchingMembers, false, where);
    assert.equal(s.timers.timeout, null, `no timeout when down, ${where}`);
    assert.equal(s.timers.watchdog, null, where);
    assert.equal(s.timers['runtime-max'], null, where);
    assert.deepEqual(s.jobs, { start: false, stop: false, reload: false }, `no job left unanswered when down, ${where}`);
  }
  assert.equal(s.timers.restart !== null, s.sub === 'auto-restart', `the restart timer is armed exactly in auto-restart, ${where}`);
  if (s.jobs.start) assert.ok(STARTING_STATES.has(s.sub) || STOPPING_STATES.has(s.sub), `a start job only while starting (or failing), ${where}`);
  if (s.jobs.stop) assert.ok(STOPPING_STATES.has(s.sub), `a stop job only while stopping, ${where}`);
  if (s.jobs.reload) assert.ok(RELOADING_STATES.has(s.sub), `a reload job only while reloading, ${where}`);
  // A change of state is told (emit-state) and recorded (persist); so is a control process coming or going.
  if (s.sub !== before.sub) assert.ok(sim.has('emit-state') && sim.has('persist'), `state change ${before.sub} → ${s.sub} told and recorded, ${where}`);
  if ((s.control?.slot ?? null) !== (before.control?.slot ?? null)) assert.ok(sim.has('persist'), `control process change recorded, ${where}`);
  if ((s.main?.slot ?? null) !== (before.main?.slot ?? null)) assert.ok(sim.has('persist'), `main process change recorded, ${where}`);
  // What follows holds within one machine; a restored one is new.
  if (history[history.length - 1]!.startsWith('restored')) return;
  // Slots are handed out once, and every spawn takes a new one.
  for (const effect of sim.last) {
    if (effect.type === 'spawn') assert.ok(effect.slot >= before.nextSlot && effect.slot < s.nextSlot, where);
  }
  // A job is answered only if it was taken before or asked for in this step.
  const asked = history[history.length - 1];
  for (const effect of sim.last) {
    if (effect.type !== 'job-done') continue;
    assert.ok(before.jobs[effect.job] || asked === effect.job || (effect.job === 'start' && before.queuedStart !== null), `unexpected job-done ${effect.job} ${where}`);
  }
}

/** The daemon dies here: a new one restores the unit from its record, finding each process alive, ended or lost. */
function crashAndRestore(sim: Sim, rnd: () => number): Sim {
  const record = JSON.parse(JSON.stringify(sim.record()));
  const find = (pid: number | undefined): FoundProcess => {
    const r = rnd();
    if (pid !== undefined && r < 0.5) return { state: 'alive', pid, pidfdId: String(pid * 10) };
    if (r < 0.75) return { state: 'ended', status: r < 0.6 ? code(0) : r < 0.7 ? killed('SIGKILL') : null };
    return { state: 'lost', reason: 'PID reused' };
  };
  const found = { main: find(record.main?.pid), control: find(record.control?.process.pid) };
  return Sim.restored(sim.config, record, found, sim.now + Math.floor(rnd() * 5000));
}

describe('service machine invariants over random walks', () => {
  for (const [index, text] of UNITS.entries()) {
    it(`unit ${index}: ${text.split('\n').find((l) => l.startsWith('Type=')) ?? 'Type=simple'}, 60 walks of 60 events, with daemon crashes`, () => {
      const config = unit(text);
      for (let walk = 0; walk < 60; walk++) {
        const rnd = seededRandom(index * 1000 + walk);
        let sim = new Sim(config);
        const history: string[] = [];
        for (let n = 0; n < 60; n++) {
          const before = sim.state;
          if (rnd() < 0.05) {
            sim = crashAndRestore(sim, rnd);
            history.push(`restored into ${sim.state.sub}`);
          } else {
            history.push(step(sim, rnd));
          }
          if (history[history.length - 1] === 'advance') continue;
          checkInvariants(sim, before, history);
        }
      }
    });
  }
});
