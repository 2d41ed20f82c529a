/**
 * One step of a service machine: the state being changed and the effects gathered, with the small
 * operations every transition uses (enter a state, arm a timer, spawn, answer a job).
 */
import type { ExecCommand, ServiceUnitConfig } from '../../unit/index.js';
import type { ControlKind, ServiceResult, SubState } from '../types.js';
import type { JobKind, JobResult, ServiceEffect, ServiceTimer, SpawnProtocolEnv } from './service-protocol.js';
import { activeStateOf, isUp } from './service-states.js';
import type { DraftState } from './service-state.js';

/** The command list a control kind runs from. */
export function controlList(config: ServiceUnitConfig, kind: ControlKind): readonly ExecCommand[] {
  const s = config.service;
  switch (kind) {
    case 'condition':
      return s.execCondition;
    case 'start-pre':
      return s.execStartPre;
    case 'start-post':
      return s.execStartPost;
    case 'reload':
      return s.execReload;
    case 'stop':
      return s.execStop;
    case 'stop-post':
      return s.execStopPost;
  }
}

/** The timeout of a control kind's commands. */
export function controlTimeoutMs(config: ServiceUnitConfig, kind: ControlKind): number {
  return kind === 'stop' || kind === 'stop-post' ? config.service.timeoutStopMs : config.service.timeoutStartMs;
}

/** The state under change and the effects so far. */
export class StepContext {
  readonly effects: ServiceEffect[] = [];

  constructor(
    readonly config: ServiceUnitConfig,
    readonly s: DraftState,
    readonly now: number,
  ) {}

  get service(): ServiceUnitConfig['service'] {
    return this.config.service;
  }

  log(level: 'info' | 'warning' | 'error', text: string): void {
    this.effects.push({ type: 'log', level, text });
  }

  /** Enters a sub state; the ActiveState follows from it. */
  enter(sub: SubState): void {
    if (this.s.sub === sub) return;
    this.s.sub = sub;
    this.effects.push({ type: 'emit-state', activeState: activeStateOf(sub), subState: sub, result: this.s.result });
  }

  /** Keeps the first failure: a later one does not overwrite it. */
  fail(result: ServiceResult): void {
    if (this.s.result === 'success') this.s.result = result;
  }

  /** Arms a timer (replacing an armed one); an infinite delay means no timer. */
  arm(timer: ServiceTimer, ms: number): void {
    if (!Number.isFinite(ms)) {
      this.cancel(timer);
      return;
    }
    const generation = ++this.s.timerGeneration;
    this.s.timers[timer] = generation;
    this.effects.push({ type: 'arm-timer', timer, ms: Math.max(0, ms), generation });
  }

  cancel(timer: ServiceTimer): void {
    if (this.s.timers[timer] === null) return;
    this.s.timers[timer] = null;
    this.effects.push({ type: 'cancel-timer', timer });
  }

  /** Arms the step timeout, remembering its deadline for EXTEND_TIMEOUT_USEC=. */
  armTimeout(ms: number): void {
    this.s.timeoutDeadline = Number.isFinite(ms) ? this.now + ms : null;
    this.arm('timeout', ms);
  }

  clearTimeout(): void {
    this.s.timeoutDeadline = null;
    this.cancel('timeout');
  }

  /** Answers a job taken earlier, once. */
  jobDone(job: JobKind, result: JobResult): void {
    if (!this.s.jobs[job]) return;
    this.s.jobs[job] = false;
    this.effects.push({ type: 'job-done', job, result });
  }

  /** Answers a job that was not kept (done at once, or refused). */
  answer(job: JobKind, result: JobResult): void {
    this.effects.push({ type: 'job-done', job, result });
  }

  /** What a process of `kind` is told through its environment (spec section 2). */
  env(kind: ControlKind | 'main'): SpawnProtocolEnv {
    const access = this.s.notifyAccess ?? this.service.notifyAccess;
    const isMain = kind === 'main';
    const mainAlive = this.s.main !== null && this.s.main.pid !== null;
    return {
      notify: isMain ? access !== 'none' : access === 'exec' || access === 'all',
      mainPid: !isMain && kind !== 'condition' && kind !== 'start-pre' && mainAlive,
      watchdogUsec: isMain ? this.s.watchdogUsec : 0,
      ...(kind === 'stop' || kind === 'stop-post' ? { exitInfo: { result: this.s.result, lastExit: this.s.lastExit } } : {}),
      invocationId: this.s.invocationId ?? '',
    };
  }

  /** Asks for the main process to run ExecStart= command `index`. */
  spawnMain(index: number): void {
    const command = this.service.execStart[index]!;
    const slot = this.s.nextSlot++;
    this.s.main = { slot, pid: null, pidfdId: null, index };
    this.effects.push({ type: 'spawn', slot, role: 'main', kind: 'main', command, index, env: this.env('main') });
  }

  /** Asks for a control process to run command `index` of `kind`'s list, under that step's timeout. */
  spawnControl(kind: ControlKind, index: number): void {
    const command = controlList(this.config, kind)[index]!;
    const env = this.env(kind);
    const slot = this.s.nextSlot++;
    this.s.control = { slot, pid: null, pidfdId: null, kind, index, timedOut: 0 };
    this.effects.push({ type: 'spawn', slot, role: 'control', kind, command, index, env });
    this.armTimeout(controlTimeoutMs(this.config, kind));
  }

  /** A signal to the main process, if there is one. */
  signalMain(signal: number, options: { thenCont?: boolean; thenHup?: boolean } = {}): void {
    if (this.s.main === null) return;
    this.effects.push({ type: 'signal', target: 'main', slot: this.s.main.slot, signal, ...options });
  }

  /** A signal to the control process, if there is one. */
  signalControl(signal: number, options: { thenCont?: boolean; thenHup?: boolean } = {}): void {
    if (this.s.control === null) return;
    this.effects.push({ type: 'signal', target: 'control', slot: this.s.control.slot, signal, ...options });
  }

  /** Stops tracking the main process (its handle is closed; it is not signalled). */
  releaseMain(): void {
    if (this.s.main === null) return;
    this.effects.push({ type: 'release', slot: this.s.main.slot });
    this.s.main = null;
  }

  /** Stops tracking a forking launcher still watched (it stays a member of the unit). */
  releaseLauncher(): void {
    if (this.s.launcher === null) return;
    this.effects.push({ type: 'release', slot: this.s.launcher.slot });
    this.s.launcher = null;
  }

  releaseControl(): void {
    if (this.s.control === null) return;
    this.effects.push({ type: 'release', slot: this.s.control.slot });
    this.s.control = null;
  }

  /** (Re)arms the watchdog while the unit is up with a main process to ping it and one is set; cancels it otherwise. */
  armWatchdog(): void {
    if (this.s.watchdogUsec > 0 && isUp(this.s.sub) && this.s.main !== null) this.arm('watchdog', this.s.watchdogUsec / 1000);
    else this.cancel('watchdog');
  }

  watchMembers(): void {
    this.s.watchingMembers = true;
    this.effects.push({ type: 'watch-members', except: 'none' });
  }

  unwatchMembers(): void {
    if (!this.s.watchingMembers) return;
    this.s.watchingMembers = false;
    this.effects.push({ type: 'unwatch-members' });
  }
}
