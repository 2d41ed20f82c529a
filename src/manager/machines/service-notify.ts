/**
 * sd_notify datagrams as service machine transitions (spec: the notify protocol). The driver has
 * parsed the datagram and checked any MAINPID=/MAINPIDFD=1 candidate; the machine decides whether
 * the sender may speak (NotifyAccess=) and what each field changes.
 */
import type { ServiceEvent } from './service-protocol.js';
import { MAINPID_STATES, isUp } from './service-states.js';
import type { StepContext } from './service-context.js';
import { enterStartPost } from './service-start.js';
import { enterStop } from './service-stop.js';

type NotifyEvent = Extract<ServiceEvent, { type: 'notify' }>;

const DIGITS = /^\d+$/;

/** Whether NotifyAccess= (or a NOTIFYACCESS= override) lets a datagram from `origin` through. */
export function notifyAllowed(access: 'none' | 'main' | 'exec' | 'all', origin: NotifyEvent['origin']): boolean {
  return access === 'all' || (access === 'main' && origin === 'main') || (access === 'exec' && origin !== 'other');
}

/** One datagram. Precedence within it, as systemd: STOPPING=1 over READY=1 over RELOADING=1. */
export function handleNotify(c: StepContext, event: NotifyEvent): void {
  const { s, service } = c;
  const access = s.notifyAccess ?? service.notifyAccess;
  if (!notifyAllowed(access, event.origin)) {
    c.log('warning', `notification from PID ${event.senderPid} refused (NotifyAccess=${access}, sender is ${event.origin === 'other' ? 'a process of the unit other than its main and control processes' : `the ${event.origin} process`})`);
    return;
  }
  const get = (key: string): string | undefined => event.fields[key];
  const status = get('STATUS');
  if (status !== undefined) s.statusText = status === '' ? null : status;
  const override = get('NOTIFYACCESS');
  if (override === 'none' || override === 'main' || override === 'exec' || override === 'all') s.notifyAccess = override;
  if (event.mainPid !== undefined) takeMainPid(c, event.mainPid);
  const watchdogUsec = get('WATCHDOG_USEC');
  if (watchdogUsec !== undefined && DIGITS.test(watchdogUsec)) {
    s.watchdogUsec = Number(watchdogUsec);
    c.armWatchdog();
  }
  if (get('WATCHDOG') === '1') c.armWatchdog();
  if (get('WATCHDOG') === 'trigger') watchdogExpired(c);
  const extend = get('EXTEND_TIMEOUT_USEC');
  if (extend !== undefined && DIGITS.test(extend) && s.timeoutDeadline !== null) {
    const deadline = Math.max(s.timeoutDeadline, c.now + Number(extend) / 1000);
    if (deadline !== s.timeoutDeadline) {
      s.timeoutDeadline = deadline;
      c.arm('timeout', deadline - c.now);
    }
  }
  if (get('RESTART_RESET') === '1') s.restarts = 0;
  if (get('FDSTORE') === '1') c.log('info', 'FDSTORE=1 ignored: this unit has no file descriptor store');

  if (get('STOPPING') === '1') {
    if (isUp(s.sub)) {
      c.log('info', 'the service says it is stopping');
      enterStop(c, true);
    }
    return;
  }
  const reloading = get('RELOADING') === '1';
  if (reloading && s.sub === 'reload-signal') {
    const mono = get('MONOTONIC_USEC');
    if (mono !== undefined && DIGITS.test(mono) && s.reloadStartUsec !== null && BigInt(mono) >= BigInt(s.reloadStartUsec)) c.enter('reload-notify');
  } else if (reloading && (s.sub === 'running' || s.sub === 'exited')) {
    // The service reloads on its own: no job, but the state shows it.
    c.enter('reload-notify');
  }
  if (get('READY') === '1') {
    if (s.sub === 'start' && (service.type === 'notify' || service.type === 'notify-reload') && s.main !== null) {
      enterStartPost(c);
    } else if ((s.sub === 'reload-notify' || (reloading && s.sub === 'reload-signal')) && s.control === null) {
      c.clearTimeout();
      s.reloadStartUsec = null;
      c.enter(s.main !== null ? 'running' : 'exited');
      c.jobDone('reload', 'done');
    }
  }
}

/** MAINPID=/MAINPIDFD=1: only while the unit has (or is getting) a main process. */
function takeMainPid(c: StepContext, candidate: NonNullable<NotifyEvent['mainPid']>): void {
  const { s } = c;
  if (!MAINPID_STATES.has(s.sub)) return;
  if (!candidate.accepted) {
    c.log('warning', `new main PID refused: ${candidate.reason}`);
    return;
  }
  if (s.main !== null && s.main.pid === candidate.pid && s.main.pidfdId === candidate.pidfdId) return;
  if (c.service.type === 'forking' && s.sub === 'start' && s.main !== null && s.main.index === 0 && s.launcher === null) {
    // The launcher's exit still decides the start; it is watched on.
    s.launcher = s.main;
  } else {
    // The old main process is no longer watched as main; it stays a member of the unit.
    c.releaseMain();
  }
  const slot = s.nextSlot++;
  s.main = { slot, pid: candidate.pid, pidfdId: candidate.pidfdId, index: -1 };
  c.effects.push({ type: 'adopt', slot, role: 'main' });
  c.log('info', `main PID is now ${candidate.pid}${candidate.pidfdId === null ? '' : ` (pidfd id ${candidate.pidfdId})`}`);
}

/** The watchdog ran out (or WATCHDOG=trigger): WatchdogSignal= to the main process, then the stop. */
export function watchdogExpired(c: StepContext): void {
  const { s, service } = c;
  c.cancel('watchdog');
  if (!isUp(s.sub)) return;
  c.log('error', 'watchdog timeout; killing the main process');
  s.result = 'watchdog';
  c.signalMain(service.watchdogSignal);
  enterStop(c, false);
}
