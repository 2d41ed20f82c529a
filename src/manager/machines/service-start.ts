/**
 * The way up, one function per transition as systemd's service_enter_*(): the start limit, the
 * conditions, ExecCondition=, ExecStartPre=, the main process per Type=, ExecStartPost=, running.
 * Each ends by spawning, arming a timer or entering the next state; none waits.
 */
import type { ControlKind, ServiceResult } from '../types.js';
import { checkStartLimit } from './service-policy.js';
import { controlList, type StepContext } from './service-context.js';
import { enterStop } from './service-stop.js';

/** How long a PIDFile= is waited for at most, retried every {@link PID_FILE_RETRY_MS}. */
export const PID_FILE_WAIT_MS = 5000;
export const PID_FILE_RETRY_MS = 20;

/** A start from dead, failed or auto-restart: the start limit, a fresh invocation, then the conditions. */
export function beginStart(c: StepContext, isRestart: boolean, invocationId: string): void {
  const { s, config } = c;
  const verdict = checkStartLimit(config.unit, s.startTimes, c.now);
  s.startTimes = [...verdict.startTimes];
  if (!verdict.allowed) {
    s.result = 'start-limit-hit';
    c.log('error', `start request repeated too quickly (${config.unit.startLimitBurst} starts within ${config.unit.startLimitIntervalMs / 1000}s); refusing to start`);
    c.enter('failed');
    c.jobDone('start', 'failed');
    return;
  }
  s.invocationId = invocationId;
  s.result = 'success';
  s.statusText = null;
  s.notifyAccess = null;
  s.mainResult = 'success';
  s.mainEndedInStart = false;
  s.watchdogUsec = Math.round(c.service.watchdogMs * 1000);
  if (!isRestart) c.log('info', `starting ${config.unit.description || config.name}`);
  c.enter('condition');
  if (config.unit.conditions.length > 0) {
    s.checkingConditions = true;
    c.effects.push({ type: 'check-conditions' });
    return;
  }
  enterCondition(c);
}

/** The conditions hold (or there are none): ExecCondition=, else on. */
export function enterCondition(c: StepContext): void {
  if (!runControl(c, 'condition', 0)) enterStartPre(c);
}

/** The conditions do not hold: the start is skipped, the unit stays dead. */
export function skipStart(c: StepContext, why: string): void {
  c.log('info', why);
  c.enter('dead');
  c.jobDone('start', 'skipped');
}

export function enterStartPre(c: StepContext): void {
  if (controlList(c.config, 'start-pre').length === 0) return enterStart(c);
  c.enter('start-pre');
  runControl(c, 'start-pre', 0);
}

/** Spawns the main process (or oneshot's first command) and waits as Type= says. */
export function enterStart(c: StepContext): void {
  const { service } = c;
  c.enter('start');
  if (service.execStart.length === 0) return enterStartPost(c);
  c.spawnMain(0);
  // simple and exec go on when the driver reports the spawn; the others wait for an exit or READY=1.
  if (service.type !== 'simple' && service.type !== 'exec') c.armTimeout(service.timeoutStartMs);
}

/** Oneshot: the next ExecStart= command, or on to ExecStartPost= after the last one. */
export function nextOneshotCommand(c: StepContext, after: number): void {
  if (after + 1 >= c.service.execStart.length) return enterStartPost(c);
  c.spawnMain(after + 1);
  c.armTimeout(c.service.timeoutStartMs);
}

/** Forking: the main process is the one PIDFile= names. */
export function readPidFile(c: StepContext, path: string): void {
  const slot = c.s.nextSlot++;
  c.s.pidFile = { slot, deadline: c.now + Math.min(c.service.timeoutStartMs, PID_FILE_WAIT_MS) };
  c.effects.push({ type: 'read-pid-file', path, slot });
}

export function enterStartPost(c: StepContext): void {
  c.clearTimeout();
  if (controlList(c.config, 'start-post').length === 0) return enterRunning(c);
  c.enter('start-post');
  runControl(c, 'start-post', 0);
}

/** The start is done: running with a main process, exited without one, or (nothing to supervise) stopped at once. */
export function enterRunning(c: StepContext): void {
  const { s, service } = c;
  c.clearTimeout();
  if (s.mainEndedInStart) {
    // The main process ended while ExecStartPost= ran: decide now, as systemd does on entering running.
    s.mainEndedInStart = false;
    if (s.mainResult !== 'success') return failStart(c, s.mainResult);
    if (service.remainAfterExit) return becomeActive(c, 'exited');
  }
  if (s.main === null && service.type !== 'forking' && !service.remainAfterExit) {
    // A oneshot (or a main process that already ended) with nothing left to supervise.
    enterStop(c, true);
    return;
  }
  becomeActive(c, s.main === null ? 'exited' : 'running');
}

function becomeActive(c: StepContext, sub: 'running' | 'exited'): void {
  c.enter(sub);
  c.armWatchdog();
  if (sub === 'running' && Number.isFinite(c.service.runtimeMaxMs)) c.arm('runtime-max', c.service.runtimeMaxMs);
  c.jobDone('start', 'done');
}

/** The start failed: the unit stops (without ExecStop=) with this result; the start job fails when it is down. */
export function failStart(c: StepContext, result: ServiceResult): void {
  c.clearTimeout();
  c.fail(result);
  enterStop(c, false);
}

/**
 * Spawns the first command of `kind`'s list at or after `from`. False when there is none left:
 * the caller goes on to the next state.
 */
export function runControl(c: StepContext, kind: ControlKind, from: number): boolean {
  const list = controlList(c.config, kind);
  if (from >= list.length) return false;
  c.spawnControl(kind, from);
  return true;
}
