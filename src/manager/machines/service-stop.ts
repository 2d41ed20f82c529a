/**
 * The way down: ExecStop=, the kill phase per KillMode=, ExecStopPost=, the final kill, then dead,
 * failed or a scheduled restart. One function per transition, as systemd's service_enter_*().
 */
import { signalName } from '../../pidfd/index.js';
import { restartDelayMs, shouldRestart } from './service-policy.js';
import { STOPPING_STATES, isUp } from './service-states.js';
import { controlList, type StepContext } from './service-context.js';
import { beginStart, runControl } from './service-start.js';

/** The kill states, in pairs: the polite signal and the final one. */
export type KillState = 'stop-sigterm' | 'stop-sigkill' | 'final-sigterm' | 'final-sigkill';

/**
 * Begins the stop sequence. With `runExecStop`, ExecStop= runs first when there is something to
 * stop (a main process, or a unit that was up); a control process still running (a reload's) is
 * killed and waited for first. Without ExecStop=, a control process is killed with the rest.
 */
export function enterStop(c: StepContext, runExecStop: boolean): void {
  const { s } = c;
  if (STOPPING_STATES.has(s.sub)) return;
  c.cancel('watchdog');
  c.cancel('runtime-max');
  c.cancel('restart');
  c.cancel('pid-file');
  c.clearTimeout();
  s.pidFile = null;
  s.checkingConditions = false;
  c.jobDone('reload', 'failed');
  const wantExecStop = runExecStop && controlList(c.config, 'stop').length > 0 && (s.main !== null || isUp(s.sub));
  if (!wantExecStop) return enterSignal(c, 'stop-sigterm');
  c.enter('stop');
  if (s.control !== null) {
    c.signalControl(c.service.killSignal, { thenCont: true });
    s.stopAfterControl = true;
    c.armTimeout(c.service.timeoutStopMs);
    return;
  }
  runControl(c, 'stop', 0);
}

/** ExecStop= is done (or cut short): the kill phase. */
export function afterExecStop(c: StepContext): void {
  enterSignal(c, 'stop-sigterm');
}

const KILL_PAIR: Readonly<Record<KillState, KillState>> = {
  'stop-sigterm': 'stop-sigkill',
  'stop-sigkill': 'stop-sigkill',
  'final-sigterm': 'final-sigkill',
  'final-sigkill': 'final-sigkill',
};

function isPolite(state: KillState): boolean {
  return state === 'stop-sigterm' || state === 'final-sigterm';
}

/**
 * Signals what KillMode= says and waits for it to end. control-group: the main process and every
 * other process; mixed: the main process only, the rest get FinalKillSignal= once it has ended;
 * process: the main process only, and the stop is done when it has ended; none: nothing. A control
 * process still running is always signalled and waited for.
 */
export function enterSignal(c: StepContext, state: KillState): void {
  const { s, service } = c;
  const mode = service.killMode;
  const polite = isPolite(state);
  const signal = polite ? service.killSignal : service.finalKillSignal;
  const thenCont = signal !== 9 && signal !== 18;
  const thenHup = polite && service.sendSighup;
  const mainWaited = s.main !== null && mode !== 'none';
  const watchAll = mode === 'control-group' || (mode === 'mixed' && (!polite || s.main === null));
  if (!mainWaited && s.control === null && !watchAll) return afterKillPhase(c, state);
  if (mode === 'mixed' && polite && s.main === null) {
    // Nothing left to ask politely: the rest of a mixed unit is killed at once (no timeout passed).
    return enterMixedKill(c, state);
  }
  c.enter(state);
  s.membersGone = !watchAll;
  c.signalControl(signal, { thenCont, thenHup });
  if (mainWaited) c.signalMain(signal, { thenCont, thenHup });
  if (watchAll) {
    c.effects.push({
      type: 'signal-members',
      signal,
      except: mainWaited ? 'main' : 'none',
      thenCont,
      thenHup,
      ...(!polite && signal === 9 && mode === 'control-group' ? { useCgroupKill: true } : {}),
    });
    c.watchMembers();
  }
  c.armTimeout(service.timeoutStopMs);
}

/** KillMode=mixed once the main process has ended: FinalKillSignal= to the rest, without waiting for a timeout. */
function enterMixedKill(c: StepContext, from: KillState): void {
  const { s, service } = c;
  const state = KILL_PAIR[from];
  if (!service.sendSigkill && s.control === null) return afterKillPhase(c, from);
  c.enter(state);
  c.unwatchMembers();
  s.membersGone = false;
  c.signalControl(service.finalKillSignal);
  c.effects.push({ type: 'signal-members', signal: service.finalKillSignal, except: 'none' });
  c.watchMembers();
  c.armTimeout(service.timeoutStopMs);
}

/** In a kill state: whether everything waited for has ended, and if so, on. */
export function checkKillDone(c: StepContext): void {
  const { s, service } = c;
  const state = s.sub as KillState;
  if (service.killMode === 'mixed' && isPolite(state) && s.main === null) return enterMixedKill(c, state);
  const mainWaited = s.main !== null && service.killMode !== 'none';
  if (mainWaited || s.control !== null || !s.membersGone) return;
  afterKillPhase(c, state);
}

/** The kill phase timed out: escalate to FinalKillSignal= (unless SendSIGKILL=no), or give up after it. */
export function killTimedOut(c: StepContext): void {
  const { s, service } = c;
  const state = s.sub as KillState;
  if (isPolite(state)) {
    c.log('warning', `processes still running after TimeoutStopSec=; ${service.sendSigkill ? `sending ${signalName(service.finalKillSignal)}` : 'leaving them (SendSIGKILL=no)'}`);
    c.fail('timeout');
    if (service.sendSigkill) return enterSignal(c, KILL_PAIR[state]);
  } else {
    c.log('error', 'processes survived the final kill signal; giving up on them');
  }
  afterKillPhase(c, state);
}

function afterKillPhase(c: StepContext, state: KillState): void {
  c.clearTimeout();
  c.unwatchMembers();
  c.s.membersGone = false;
  if (state === 'stop-sigterm' || state === 'stop-sigkill') enterStopPost(c);
  else enterDeadOrFailed(c);
}

/** ExecStopPost=, then the final kill phase; without any, straight to dead or failed. */
export function enterStopPost(c: StepContext): void {
  if (controlList(c.config, 'stop-post').length === 0) return enterDeadOrFailed(c);
  c.enter('stop-post');
  runControl(c, 'stop-post', 0);
}

/** ExecStopPost= is done: what is left gets the final signals. */
export function afterStopPost(c: StepContext): void {
  enterSignal(c, 'final-sigterm');
}

/** The unit is down: dead or failed, or waiting to restart; jobs are answered; a queued start begins. */
export function enterDeadOrFailed(c: StepContext): void {
  const { s, service } = c;
  c.clearTimeout();
  c.unwatchMembers();
  c.releaseMain();
  c.releaseControl();
  c.releaseLauncher();
  s.stopAfterControl = false;
  s.membersGone = false;
  // The state is entered before the jobs are answered: whoever waited sees where the unit ended.
  const failed = s.result !== 'success';
  const jobResult = failed ? 'failed' : 'done';
  if (s.queuedStart !== null) {
    const invocationId = s.queuedStart;
    s.queuedStart = null;
    s.manualStop = false;
    c.enter(failed ? 'failed' : 'dead');
    c.jobDone('stop', 'done');
    c.jobDone('reload', 'failed');
    beginStart(c, false, invocationId);
    return;
  }
  if (!s.manualStop && shouldRestart(service, s.result, s.lastExit)) {
    enterAutoRestart(c);
  } else {
    c.enter(failed ? 'failed' : 'dead');
    if (failed) c.log('error', `failed with result '${s.result}'`);
  }
  c.jobDone('stop', 'done');
  c.jobDone('reload', 'failed');
  c.jobDone('start', jobResult);
}

/** Waits RestartSec= (with RestartSteps= backoff) before starting again; 0 arms a timer of 0. */
export function enterAutoRestart(c: StepContext): void {
  const delay = restartDelayMs(c.service, c.s.restarts);
  c.enter('auto-restart');
  c.log('info', `scheduling restart in ${Math.round(delay)} ms (result '${c.s.result}')`);
  c.arm('restart', delay);
}
