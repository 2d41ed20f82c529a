/**
 * A minimal driver for service machine tests: it applies the effects just enough for scenarios to
 * read like a story ("start; expect spawn main; PID 12 exits with 1; expect auto-restart armed
 * 100 ms; fire it; …"). Spawns get PIDs at once (unless a failure is queued), armed timers are
 * remembered with their generation, and a hand-advanced clock stamps every event.
 */
import assert from 'node:assert/strict';
import type { ExitStatus } from '../../../src/pidfd/index.js';
import { parseServiceUnitText, formatDiagnostic, type ServiceUnitConfig } from '../../../src/unit/index.js';
import { serviceStep, initialServiceState, type ServiceMachineState } from '../../../src/manager/machines/service-machine.js';
import type { JobKind, JobResult, ServiceEffect, ServiceEventBody, ServiceTimer } from '../../../src/manager/machines/service-protocol.js';
import { activeStateOf } from '../../../src/manager/machines/service-states.js';
import type { ActiveState, SubState, UnitRecord } from '../../../src/manager/types.js';
import { recordOf, restoreServiceState, type FoundProcesses } from '../../../src/manager/machines/service-restore.js';
import { HOST } from '../../unit/fixtures.js';

/** A config from unit file text; `[Service]` lines may be given alone. */
export function unit(text: string, name = 'app.service'): ServiceUnitConfig {
  const body = /^\s*\[/.test(text) ? text : `[Service]\n${text}`;
  const r = parseServiceUnitText(body.replace(/^[ \t]+/gm, ''), `/etc/holdfast/units/${name}`, { unitName: name, host: HOST });
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  assert.ok(r.config);
  return r.config;
}

export const code = (n: number): ExitStatus => ({ code: n, signal: null, coreDumped: false });
export const killed = (signal: string, coreDumped = false): ExitStatus => ({ code: null, signal, coreDumped });

type Spawn = Extract<ServiceEffect, { type: 'spawn' }>;
type Signal = Extract<ServiceEffect, { type: 'signal' | 'signal-members' }>;

/** The machine with a fake world around it. */
export class Sim {
  state: ServiceMachineState;
  now = 0;
  /** Every effect so far, and those of the last `send`. */
  readonly all: ServiceEffect[] = [];
  last: ServiceEffect[] = [];
  /** Armed timers: generation and due time. */
  readonly timers = new Map<ServiceTimer, { generation: number; due: number; ms: number }>();
  /** PID of each slot the fake world holds. */
  readonly pids = new Map<number, number>();
  watching = false;
  #nextPid = 100;
  #spawnFailures: { kind: string | undefined; exitCode: number; result: 'exit-code' | 'resources'; message: string }[] = [];
  #invocations = 0;

  constructor(
    readonly config: ServiceUnitConfig,
    state: ServiceMachineState = initialServiceState(),
  ) {
    this.state = state;
  }

  get sub(): SubState {
    return this.state.sub;
  }

  /** Dead or failed. */
  isDownNow(): boolean {
    return this.state.sub === 'dead' || this.state.sub === 'failed';
  }

  get active(): ActiveState {
    return activeStateOf(this.state.sub);
  }

  /** Feeds an event; effects are applied (spawns answered) and collected in `last`. */
  send(event: ServiceEventBody): this {
    this.last = [];
    this.#feed(event);
    return this;
  }

  #feed(event: ServiceEventBody): void {
    const { state, effects } = serviceStep(this.config, this.state, { ...event, now: this.now } as never);
    this.state = state;
    for (const answer of this.#apply(effects)) this.#feed(answer);
  }

  /** Applies effects as a driver would; returns the events the fake world answers with. */
  #apply(effects: readonly ServiceEffect[]): ServiceEventBody[] {
    this.last.push(...effects);
    this.all.push(...effects);
    const answers: ServiceEventBody[] = [];
    for (const effect of effects) {
      switch (effect.type) {
        case 'spawn': {
          const at = this.#spawnFailures.findIndex((f) => f.kind === undefined || f.kind === effect.kind);
          const failure = at < 0 ? undefined : this.#spawnFailures.splice(at, 1)[0];
          if (failure !== undefined) {
            answers.push({ type: 'spawn-failed', slot: effect.slot, exitCode: failure.exitCode, result: failure.result, message: failure.message });
          } else {
            const pid = this.#nextPid++;
            this.pids.set(effect.slot, pid);
            answers.push({ type: 'spawned', slot: effect.slot, pid, pidfdId: String(pid * 10) });
          }
          break;
        }
        case 'arm-timer':
          this.timers.set(effect.timer, { generation: effect.generation, due: this.now + effect.ms, ms: effect.ms });
          break;
        case 'cancel-timer':
          this.timers.delete(effect.timer);
          break;
        case 'watch-members':
          this.watching = true;
          break;
        case 'unwatch-members':
          this.watching = false;
          break;
        case 'release':
          this.pids.delete(effect.slot);
          break;
        case 'adopt':
          this.pids.set(effect.slot, effect.role === 'main' ? (this.state.main?.pid ?? 0) : (this.state.control?.pid ?? 0));
          break;
        default:
          break;
      }
    }
    return answers;
  }

  /** A machine rebuilt from a record, as a new daemon does: its effects applied, then what happened meanwhile fed. */
  static restored(config: ServiceUnitConfig, record: UnitRecord, found: FoundProcesses, now = 0): Sim {
    const result = restoreServiceState(config, record, found, now);
    const sim = new Sim(config, result.state);
    sim.now = now;
    for (const answer of sim.#apply(result.effects)) sim.#feed(answer);
    for (const event of result.meanwhile) sim.#feed(event);
    return sim;
  }

  /** The record a daemon would write now (references made up from the fake PIDs). */
  record(): UnitRecord {
    return recordOf(this.config, this.state, {
      refOf: (slot) => {
        const pid = this.pids.get(slot);
        return pid === undefined ? null : { pid, pidfdId: pid * 10, bootId: 'fedcba9876543210fedcba9876543210' };
      },
      activeEnterTimestamp: null,
      sessions: [],
    });
  }

  get pendingSpawnFailures(): number {
    return this.#spawnFailures.length;
  }

  /** The next spawn fails as the driver reports it (203/EXEC, 217/USER, resources for EnvironmentFile=). */
  failNextSpawn(exitCode = 203, result: 'exit-code' | 'resources' = 'exit-code', message = 'No such file or directory', kind?: string): this {
    this.#spawnFailures.push({ kind, exitCode, result, message });
    return this;
  }

  start(): this {
    return this.send({ type: 'start', invocationId: `inv${++this.#invocations}` });
  }

  stop(): this {
    return this.send({ type: 'stop' });
  }

  reload(monotonicUsec = 1000n): this {
    return this.send({ type: 'reload', monotonicUsec });
  }

  /** The main (or control) process exits. */
  exit(role: 'main' | 'control', status: ExitStatus = code(0)): this {
    const slot = role === 'main' ? this.state.main?.slot : this.state.control?.slot;
    assert.notEqual(slot, undefined, `no ${role} process to exit (state ${this.sub})`);
    // The driver drops its handle to a process that ended; `release` is for those still alive.
    this.pids.delete(slot!);
    return this.send({ type: 'exited', slot: slot!, status });
  }

  notify(fields: Record<string, string>, origin: 'main' | 'control' | 'other' = 'main', extra: Partial<Extract<ServiceEventBody, { type: 'notify' }>> = {}): this {
    return this.send({ type: 'notify', origin, senderPid: 4242, fields, monotonicUsec: 5000n, ...extra });
  }

  membersGone(): this {
    return this.send({ type: 'members-gone' });
  }

  /** Advances the clock to an armed timer's due time and fires it. */
  fire(timer: ServiceTimer): this {
    const armed = this.timers.get(timer);
    assert.ok(armed, `timer ${timer} is not armed (state ${this.sub}); armed: ${[...this.timers.keys()].join(', ') || 'none'}`);
    this.now = Math.max(this.now, armed.due);
    this.timers.delete(timer);
    return this.send({ type: 'timer-fired', timer, generation: armed.generation, invocationId: `inv${++this.#invocations}` });
  }

  advance(ms: number): this {
    this.now += ms;
    return this;
  }

  // -------------------------------------------------------------------------------- expectations

  spawns(): Spawn[] {
    return this.last.filter((e): e is Spawn => e.type === 'spawn');
  }

  /** `main:main#0`, `control:start-pre#1`: what the last step spawned. */
  spawned(): string[] {
    return this.spawns().map((e) => `${e.role}:${e.kind}#${e.index}`);
  }

  signals(): string[] {
    return this.last
      .filter((e): e is Signal => e.type === 'signal' || e.type === 'signal-members')
      .map((e) => (e.type === 'signal' ? `${e.target}:${e.signal}` : `members-${e.except === 'main' ? 'but-main' : 'all'}:${e.signal}`));
  }

  /** The sub states entered in the last step, in order. */
  states(): SubState[] {
    return this.last.flatMap((e) => (e.type === 'emit-state' ? [e.subState] : []));
  }

  jobs(): string[] {
    return this.last.flatMap((e) => (e.type === 'job-done' ? [`${e.job} ${e.result}`] : []));
  }

  allJobs(): string[] {
    return this.all.flatMap((e) => (e.type === 'job-done' ? [`${e.job} ${e.result}`] : []));
  }

  logs(level?: 'info' | 'warning' | 'error'): string[] {
    return this.last.flatMap((e) => (e.type === 'log' && (level === undefined || e.level === level) ? [e.text] : []));
  }

  armed(timer: ServiceTimer): number | undefined {
    return this.timers.get(timer)?.ms;
  }

  has(type: ServiceEffect['type']): boolean {
    return this.last.some((e) => e.type === type);
  }

  expectJob(job: JobKind, result: JobResult): this {
    assert.deepEqual(this.jobs(), [`${job} ${result}`]);
    return this;
  }

  expectSub(sub: SubState): this {
    assert.equal(this.sub, sub);
    return this;
  }
}

/** A unit started to `running` (simple, or notify once READY=1 came). */
export function running(text: string): Sim {
  const sim = new Sim(unit(text)).start();
  if (sim.sub === 'start' && (sim.config.service.type === 'notify' || sim.config.service.type === 'notify-reload')) sim.notify({ READY: '1' });
  assert.equal(sim.sub, 'running');
  return sim;
}
