/**
 * A service unit as a pure state machine: `serviceStep(config, state, event)` returns the next
 * state and the effects the driver runs, in order. No I/O, no clock, no await: the event carries
 * the time, and every process, timer and datagram comes back as another event.
 *
 * Jobs: every `start`, `stop` and `reload` taken is answered by exactly one `job-done` of that kind;
 * one `job-done` answers every request of that kind that joined the job under way.
 *
 * The way through the states (each arrow one `enter*` function in service-start.ts/service-stop.ts):
 *
 *   dead/failed ─start→ condition (check-conditions, ExecCondition=) → start-pre (ExecStartPre=)
 *     → start (the main process; Type= says what ends it: the spawn, READY=1, its exit, the PID file)
 *     → start-post (ExecStartPost=) → running (main process) | exited (none) | stop (nothing to supervise)
 *   running ─reload→ reload (ExecReload=) | reload-signal → reload-notify (notify-reload) → running
 *   running ─stop, main exit, STOPPING=1, RuntimeMaxSec=→ stop (ExecStop=) → stop-sigterm → stop-sigkill
 *     → stop-post (ExecStopPost=) → final-sigterm → final-sigkill → dead | failed | auto-restart
 *   any start phase ─stop→ stop-sigterm (the start job is canceled; ExecStop= does not run)
 *   a start phase failing → stop-sigterm with the failure's result (the start job fails once down)
 *   auto-restart ─RestartSec= → condition (a restart: the start limit applies, the count goes up)
 *
 * A kill state waits for the main process (unless KillMode=none), the control process, and (for
 * control-group, and mixed once the main process is gone) `members-gone`; TimeoutStopSec= escalates.
 */
import type { ExitStatus } from '../../pidfd/index.js';
import type { ServiceUnitConfig } from '../../unit/index.js';
import type { ServiceResult } from '../types.js';
import type { ProcessSlot, ServiceEffect, ServiceEvent, ServiceTimer } from './service-protocol.js';
import { classifyControlExit, classifyMainExit, conditionSkips, describeStatus } from './service-policy.js';
import { KILLING_STATES, RELOADING_STATES, STARTING_STATES, STOPPING_STATES, isDown, isUp } from './service-states.js';
import { controlList, StepContext } from './service-context.js';
import { draftOf, recordedFacts, type ControlProcessState, type ServiceMachineState } from './service-state.js';
import { handleNotify, watchdogExpired } from './service-notify.js';
import {
  beginStart,
  enterCondition,
  enterRunning,
  enterStart,
  enterStartPost,
  enterStartPre,
  failStart,
  nextOneshotCommand,
  PID_FILE_RETRY_MS,
  readPidFile,
  runControl,
  skipStart,
} from './service-start.js';
import { afterExecStop, afterStopPost, checkKillDone, enterStop, killTimedOut } from './service-stop.js';

export { initialServiceState, type ServiceMachineState } from './service-state.js';

/** The outcome of one step. */
export interface ServiceStepResult {
  readonly state: ServiceMachineState;
  readonly effects: readonly ServiceEffect[];
}

/** Takes one event: the next state and the effects to run, in order. */
export function serviceStep(config: ServiceUnitConfig, state: ServiceMachineState, event: ServiceEvent): ServiceStepResult {
  const c = new StepContext(config, draftOf(state), event.now);
  dispatch(c, event);
  const next: ServiceMachineState = c.s;
  if (recordedFacts(next) !== recordedFacts(state)) c.effects.push({ type: 'persist' });
  return { state: next, effects: c.effects };
}

function dispatch(c: StepContext, event: ServiceEvent): void {
  const { s } = c;
  switch (event.type) {
    case 'start':
      return onStart(c, event.invocationId);
    case 'stop':
      return onStop(c);
    case 'reload':
      return onReload(c, event.monotonicUsec);
    case 'reset-failed':
      s.startTimes = [];
      s.result = 'success';
      if (s.sub === 'failed') c.enter('dead');
      return;
    case 'conditions-checked':
      if (!s.checkingConditions || s.sub !== 'condition') return;
      s.checkingConditions = false;
      if (event.failed !== null) return skipStart(c, `condition ${event.failed} not met; start skipped`);
      return enterCondition(c);
    case 'spawned':
      if (s.main?.slot === event.slot) {
        s.main = { ...s.main, pid: event.pid, pidfdId: event.pidfdId };
        if (s.sub === 'start' && (c.service.type === 'simple' || c.service.type === 'exec')) enterStartPost(c);
      } else if (s.control?.slot === event.slot) {
        s.control = { ...s.control, pid: event.pid, pidfdId: event.pidfdId };
      }
      return;
    case 'spawn-failed':
      return onSpawnFailed(c, event.slot, event.exitCode, event.result, event.message);
    case 'exited':
      if (s.main?.slot === event.slot) return onMainExited(c, event.status, event.unwatched === true);
      if (s.control?.slot === event.slot) return onControlExited(c, s.control, event.status, event.unwatched === true);
      if (s.launcher?.slot === event.slot) return onLauncherExited(c, event.status);
      return;
    case 'notify':
      return handleNotify(c, event);
    case 'pid-file':
      return onPidFile(c, event.result);
    case 'timer-fired':
      if (s.timers[event.timer] !== event.generation) return;
      s.timers[event.timer] = null;
      return onTimer(c, event.timer, event.invocationId);
    case 'members-gone':
      if (!s.watchingMembers) return;
      s.watchingMembers = false;
      s.membersGone = true;
      if (KILLING_STATES.has(s.sub)) checkKillDone(c);
      return;
  }
}

// ------------------------------------------------------------------------------------------ jobs

function onStart(c: StepContext, invocationId: string): void {
  const { s } = c;
  if (s.sub === 'auto-restart') {
    // Asked for by hand: a fresh start now, not the scheduled restart (the restart count stays).
    c.cancel('restart');
    s.manualStop = false;
    s.jobs.start = true;
    return beginStart(c, false, invocationId);
  }
  if (isUp(s.sub)) return c.answer('start', 'done');
  if (STARTING_STATES.has(s.sub)) {
    s.jobs.start = true;
    return;
  }
  if (STOPPING_STATES.has(s.sub)) {
    // A start whose failure is being cleaned up is still the start job under way: this one joins it.
    if (s.jobs.start) return;
    s.jobs.start = true;
    s.queuedStart = invocationId;
    return;
  }
  s.jobs.start = true;
  s.manualStop = false;
  beginStart(c, false, invocationId);
}

function onStop(c: StepContext): void {
  const { s } = c;
  s.manualStop = true;
  if (s.queuedStart !== null) {
    s.queuedStart = null;
    c.jobDone('start', 'canceled');
  }
  if (s.sub === 'auto-restart') {
    c.cancel('restart');
    c.enter(s.result === 'success' ? 'dead' : 'failed');
    return c.answer('stop', 'done');
  }
  if (isDown(s.sub)) return c.answer('stop', 'done');
  s.jobs.stop = true;
  if (STOPPING_STATES.has(s.sub)) return;
  // systemctl's start fails when its job is canceled by a stop.
  if (STARTING_STATES.has(s.sub)) c.jobDone('start', 'canceled');
  enterStop(c, isUp(s.sub));
}

function onReload(c: StepContext, monotonicUsec: bigint): void {
  const { s, service } = c;
  if (RELOADING_STATES.has(s.sub)) {
    s.jobs.reload = true;
    return;
  }
  if (!isUp(s.sub)) return c.answer('reload', 'failed');
  if (service.type === 'notify-reload' && s.main !== null) {
    s.jobs.reload = true;
    s.reloadStartUsec = monotonicUsec.toString();
    c.enter('reload-signal');
    c.signalMain(service.reloadSignal);
    c.armTimeout(service.timeoutStartMs);
    return;
  }
  if (service.execReload.length === 0) return c.answer('reload', 'unsupported');
  s.jobs.reload = true;
  c.enter('reload');
  runControl(c, 'reload', 0);
}

/** A reload is over: back to running (or exited, without a main process). */
export function finishReload(c: StepContext, result: 'done' | 'failed' | 'timeout'): void {
  c.clearTimeout();
  c.s.reloadStartUsec = null;
  c.enter(c.s.main !== null ? 'running' : 'exited');
  c.jobDone('reload', result);
}

// ------------------------------------------------------------------------------------ processes

function onSpawnFailed(c: StepContext, slot: ProcessSlot, exitCode: number, result: ServiceResult, message: string): void {
  const { s, service } = c;
  if (s.main?.slot === slot) {
    const index = s.main.index;
    const command = service.execStart[index];
    c.log('error', `failed to run main command ${command?.argv.join(' ') ?? ''}: ${message}`);
    s.main = null;
    // A spawn refused for want of resources (a missing EnvironmentFile=) ran nothing: there is no exit to record.
    if (result !== 'resources') s.lastExit = { code: exitCode, signal: null };
    s.mainResult = 'exit-code';
    if (s.sub !== 'start') return;
    if (service.type === 'oneshot' && command?.ignoreFailure === true) return nextOneshotCommand(c, index);
    return failStart(c, result);
  }
  if (s.control?.slot === slot) {
    const control = s.control;
    const command = controlList(c.config, control.kind)[control.index];
    c.log('error', `failed to run ${control.kind} command ${command?.argv.join(' ') ?? ''}: ${message}`);
    if (command?.ignoreFailure !== true && result !== 'resources') s.lastExit = { code: exitCode, signal: null };
    afterControl(c, control, { ok: command?.ignoreFailure === true, result, status: undefined });
  }
}

function onMainExited(c: StepContext, status: ExitStatus, unwatched: boolean): void {
  const { s, service } = c;
  const main = s.main!;
  const unknown = status.code === null && status.signal === null;
  s.main = null;
  s.lastExit = { code: status.code, signal: status.signal };
  let result = classifyMainExit(status, service);
  if (unwatched && unknown) {
    result = 'exit-code';
    c.log('warning', `main process ${main.pid ?? '?'} ended while no daemon was watching; how it ended is unknown`);
  } else {
    c.log(unwatched ? 'warning' : 'info', `main process ${main.pid ?? '?'} ${describeStatus(status)}${unwatched ? ' while no daemon was watching' : ''}`);
  }
  s.mainResult = result;
  const sub = s.sub;
  if (sub === 'start') {
    c.clearTimeout();
    if (service.type === 'oneshot') {
      if (result !== 'success' && service.execStart[main.index]?.ignoreFailure !== true) return failStart(c, result);
      return nextOneshotCommand(c, main.index);
    }
    if (service.type === 'notify' || service.type === 'notify-reload') return failStart(c, result === 'success' ? 'protocol' : result);
    if (service.type === 'forking') {
      if (result !== 'success') return failStart(c, result);
      if (service.pidFile !== undefined) return readPidFile(c, service.pidFile);
      return enterStartPost(c);
    }
    s.mainEndedInStart = true;
    return enterStartPost(c);
  }
  if (sub === 'start-post') {
    s.mainEndedInStart = true;
    return;
  }
  if (isUp(sub)) {
    c.cancel('watchdog');
    c.cancel('runtime-max');
    if (result === 'success' && service.remainAfterExit) {
      // A reload's command still running finishes first; the reload then lands in exited.
      if (s.control === null) finishReload(c, 'failed');
      return;
    }
    c.fail(result);
    return enterStop(c, true);
  }
  if (KILLING_STATES.has(sub)) checkKillDone(c);
}

/** Type=forking whose main process MAINPID= named during the start: the launcher's exit ends the start. */
function onLauncherExited(c: StepContext, status: ExitStatus): void {
  const { s, service } = c;
  s.launcher = null;
  const result = classifyMainExit(status, service);
  if (s.sub !== 'start') return;
  c.clearTimeout();
  if (result !== 'success') return failStart(c, result);
  enterStartPost(c);
}

interface ControlOutcome {
  readonly ok: boolean;
  readonly result: ServiceResult;
  readonly status: ExitStatus | undefined;
}

function onControlExited(c: StepContext, control: ControlProcessState, status: ExitStatus, unwatched: boolean): void {
  const command = controlList(c.config, control.kind)[control.index];
  const ignoreFailure = command?.ignoreFailure ?? true;
  const what = `${control.kind} command ${control.pid ?? '?'}`;
  if (control.timedOut > 0) return afterControl(c, control, { ok: false, result: 'timeout', status });
  if (unwatched && status.code === null && status.signal === null) {
    c.log('warning', `${what} ended while no daemon was watching; how it ended is unknown, so its step counts as failed`);
    return afterControl(c, control, { ok: false, result: 'exit-code', status: undefined });
  }
  const result = classifyControlExit(status, c.service);
  if (unwatched) c.log(result === 'success' || ignoreFailure ? 'info' : 'warning', `${what} ${describeStatus(status)} while no daemon was watching`);
  else if (result !== 'success' && !ignoreFailure) c.log('warning', `${what} ${describeStatus(status)}`);
  afterControl(c, control, { ok: result === 'success', result, status });
}

/** A control process is done: the next command of its list, or the next state. */
function afterControl(c: StepContext, control: ControlProcessState, outcome: ControlOutcome): void {
  const { s } = c;
  s.control = null;
  if (KILLING_STATES.has(s.sub)) return checkKillDone(c);
  c.clearTimeout();
  if (s.stopAfterControl) {
    s.stopAfterControl = false;
    if (!runControl(c, 'stop', 0)) afterExecStop(c);
    return;
  }
  const command = controlList(c.config, control.kind)[control.index];
  const passed = outcome.ok || (command?.ignoreFailure ?? true);
  const next = control.index + 1;
  switch (control.kind) {
    case 'condition':
      if (outcome.ok) return void (runControl(c, 'condition', next) || enterStartPre(c));
      if (outcome.status !== undefined && conditionSkips(outcome.status)) return skipStart(c, `ExecCondition= exited with ${outcome.status.code}; start skipped`);
      return failStart(c, outcome.result);
    case 'start-pre':
      if (!passed) return failStart(c, outcome.result);
      return void (runControl(c, 'start-pre', next) || enterStart(c));
    case 'start-post':
      if (!passed) return failStart(c, outcome.result);
      return void (runControl(c, 'start-post', next) || enterRunning(c));
    case 'reload':
      if (!passed) return finishReload(c, 'failed');
      return void (runControl(c, 'reload', next) || finishReload(c, 'done'));
    case 'stop':
      if (outcome.result === 'timeout') return afterExecStop(c);
      return void (runControl(c, 'stop', next) || afterExecStop(c));
    case 'stop-post':
      return void (runControl(c, 'stop-post', next) || afterStopPost(c));
  }
}

function onPidFile(c: StepContext, result: Extract<ServiceEvent, { type: 'pid-file' }>['result']): void {
  const { s, service } = c;
  const pending = s.pidFile;
  if (pending === null || s.sub !== 'start') return;
  const path = service.pidFile ?? '';
  if (result.accepted) {
    s.pidFile = null;
    s.main = { slot: pending.slot, pid: result.pid, pidfdId: result.pidfdId, index: -1 };
    c.effects.push({ type: 'adopt', slot: pending.slot, role: 'main' });
    return enterStartPost(c);
  }
  if ('retry' in result && result.retry && c.now < pending.deadline) return c.arm('pid-file', PID_FILE_RETRY_MS);
  s.pidFile = null;
  c.log('error', 'retry' in result && result.retry ? `PID file ${path} not readable after start` : `PID file ${path}: ${result.reason}`);
  failStart(c, 'protocol');
}

// ---------------------------------------------------------------------------------------- timers

function onTimer(c: StepContext, timer: ServiceTimer, invocationId: string | undefined): void {
  const { s, service } = c;
  switch (timer) {
    case 'restart':
      if (s.sub !== 'auto-restart') return;
      s.restarts++;
      return beginStart(c, true, invocationId ?? s.invocationId ?? '');
    case 'watchdog':
      return watchdogExpired(c);
    case 'runtime-max':
      if (!isUp(s.sub)) return;
      c.log('warning', 'RuntimeMaxSec= reached; stopping');
      s.result = 'timeout';
      return enterStop(c, true);
    case 'pid-file':
      if (s.pidFile !== null && s.sub === 'start' && service.pidFile !== undefined) c.effects.push({ type: 'read-pid-file', path: service.pidFile, slot: s.pidFile.slot });
      return;
    case 'timeout':
      return onTimeout(c);
  }
}

function onTimeout(c: StepContext): void {
  const { s, service } = c;
  if (s.timeoutDeadline !== null && c.now < s.timeoutDeadline) {
    // EXTEND_TIMEOUT_USEC= moved the deadline after the timer was armed.
    c.arm('timeout', s.timeoutDeadline - c.now);
    return;
  }
  s.timeoutDeadline = null;
  if (KILLING_STATES.has(s.sub)) return killTimedOut(c);
  const control = s.control;
  if (s.stopAfterControl && control !== null) {
    c.signalControl(service.finalKillSignal);
    c.releaseControl();
    s.stopAfterControl = false;
    if (!runControl(c, 'stop', 0)) afterExecStop(c);
    return;
  }
  if (control !== null) {
    if (control.timedOut === 0) {
      c.log('warning', `${control.kind} command ${control.pid ?? '?'} timed out; killing it`);
      c.signalControl(service.killSignal, { thenCont: true });
      s.control = { ...control, timedOut: 1 };
      c.arm('timeout', service.timeoutStopMs);
    } else if (control.timedOut === 1) {
      c.signalControl(service.finalKillSignal);
      s.control = { ...control, timedOut: 2 };
    }
    return;
  }
  if (s.sub === 'start') {
    c.log('warning', 'start operation timed out; terminating');
    return failStart(c, 'timeout');
  }
  if (s.sub === 'reload-signal' || s.sub === 'reload-notify') {
    c.log('warning', 'reload timed out');
    return finishReload(c, 'timeout');
  }
}

