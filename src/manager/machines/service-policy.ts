/**
 * The service's policies as pure functions: how an exit classifies, whether a restart follows,
 * how long it waits, and whether a start is allowed by the start limit.
 */
import { signalNumber, type ExitStatus } from '../../pidfd/index.js';
import type { ExitStatusSet, RestartPolicy, ServiceSection, ServiceType, UnitSection } from '../../unit/index.js';
import type { LastExit, ServiceResult } from '../types.js';

/** Signals that end a non-oneshot service cleanly (systemd's is_clean_exit). */
export const CLEAN_SIGNALS: ReadonlySet<string> = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);

/** The number of a signal name, or -1 for a name no table knows. */
function numberOf(name: string): number {
  try {
    return signalNumber(name);
  } catch {
    return -1;
  }
}

/** Whether an exit is in a set of codes and signals (SuccessExitStatus=, RestartPreventExitStatus=, …). */
export function exitInSet(exit: LastExit | ExitStatus | null, set: ExitStatusSet): boolean {
  if (exit === null) return false;
  if (exit.code !== null) return set.codes.includes(exit.code);
  if (exit.signal !== null) return set.signals.includes(numberOf(exit.signal));
  return false;
}

/**
 * How the main process's exit counts: code 0, a SuccessExitStatus= entry or (except for oneshot) a
 * clean signal is success; an unknown status (not our child, no PIDFD_INFO_EXIT) is success too.
 */
export function classifyMainExit(status: ExitStatus, service: Pick<ServiceSection, 'successExitStatus'> & { type: ServiceType }): ServiceResult {
  if (status.code !== null) return status.code === 0 || service.successExitStatus.codes.includes(status.code) ? 'success' : 'exit-code';
  if (status.signal !== null) {
    if (service.successExitStatus.signals.includes(numberOf(status.signal))) return 'success';
    if (service.type !== 'oneshot' && CLEAN_SIGNALS.has(status.signal)) return 'success';
    return status.coreDumped ? 'core-dump' : 'signal';
  }
  return 'success';
}

/** How a control process's exit counts: only code 0 or a SuccessExitStatus= code is success; every signal fails. */
export function classifyControlExit(status: ExitStatus, service: Pick<ServiceSection, 'successExitStatus'>): ServiceResult {
  if (status.code !== null) return status.code === 0 || service.successExitStatus.codes.includes(status.code) ? 'success' : 'exit-code';
  if (status.signal !== null) return status.coreDumped ? 'core-dump' : 'signal';
  return 'success';
}

/** Whether an exit code of ExecCondition= skips the start (1–254) rather than failing it. */
export function conditionSkips(status: ExitStatus): boolean {
  return status.code !== null && status.code >= 1 && status.code <= 254;
}

/** Whether a `Restart=` value restarts after a stop with `result` (exit statuses aside). */
export function restartPolicyAllows(policy: RestartPolicy, result: ServiceResult): boolean {
  const clean = result === 'success';
  const uncleanSignal = result === 'signal' || result === 'core-dump';
  switch (policy) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'on-success':
      return clean;
    case 'on-failure':
      return !clean;
    case 'on-abnormal':
      return uncleanSignal || result === 'timeout' || result === 'watchdog';
    case 'on-abort':
      return uncleanSignal;
    case 'on-watchdog':
      return result === 'watchdog';
  }
}

/**
 * Whether the unit restarts after it went down with `result`, the main process having last ended
 * as `lastExit`. A start-limit hit never restarts; RestartPreventExitStatus= wins over
 * RestartForceExitStatus=, which wins over Restart=.
 */
export function shouldRestart(
  service: Pick<ServiceSection, 'restart' | 'restartPreventExitStatus' | 'restartForceExitStatus'>,
  result: ServiceResult,
  lastExit: LastExit | null,
): boolean {
  if (result === 'start-limit-hit') return false;
  if (exitInSet(lastExit, service.restartPreventExitStatus)) return false;
  if (exitInSet(lastExit, service.restartForceExitStatus)) return true;
  return restartPolicyAllows(service.restart, result);
}

/**
 * The delay before the restart numbered `restarts` (0 for the first): RestartSec=, growing
 * exponentially over RestartSteps= steps to RestartMaxDelaySec=, as systemd's service_restart_usec().
 */
export function restartDelayMs(service: Pick<ServiceSection, 'restartMs' | 'restartSteps' | 'restartMaxDelayMs'>, restarts: number): number {
  const { restartMs, restartSteps, restartMaxDelayMs } = service;
  if (restartSteps <= 0 || !Number.isFinite(restartMaxDelayMs) || restartMaxDelayMs <= restartMs) return restartMs;
  const step = Math.min(restarts, restartSteps);
  return restartMs * Math.pow(restartMaxDelayMs / Math.max(restartMs, 1), step / restartSteps);
}

/** What the start limit says about a start at `now`: allowed or not, and the start times to keep. */
export interface StartLimitVerdict {
  readonly allowed: boolean;
  readonly startTimes: readonly number[];
}

/**
 * StartLimitIntervalSec=/StartLimitBurst=: at most `burst` starts within any `interval`. The start
 * at `now` is added to the times when it is allowed; 0 for either disables the limit.
 */
export function checkStartLimit(unit: Pick<UnitSection, 'startLimitIntervalMs' | 'startLimitBurst'>, startTimes: readonly number[], now: number): StartLimitVerdict {
  const { startLimitIntervalMs: interval, startLimitBurst: burst } = unit;
  if (interval <= 0 || burst <= 0) return { allowed: true, startTimes };
  const recent = startTimes.filter((t) => now - t < interval);
  if (recent.length >= burst) return { allowed: false, startTimes: recent };
  return { allowed: true, startTimes: [...recent, now] };
}

/** `exited with code 3`, `killed by SIGKILL (core dumped)`, `ended`. */
export function describeStatus(status: ExitStatus | LastExit): string {
  if (status.code !== null) return `exited with code ${status.code}`;
  if (status.signal !== null) return `killed by ${status.signal}${'coreDumped' in status && status.coreDumped ? ' (core dumped)' : ''}`;
  return 'ended';
}
