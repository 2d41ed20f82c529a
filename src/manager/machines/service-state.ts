/**
 * The data a service machine keeps between events. Plain, serializable values only: the driver
 * may store it, compare it, or print it; the machine never holds a handle, a promise or a timer.
 */
import type { NotifyAccess } from '../../unit/index.js';
import type { ControlKind, LastExit, ServiceResult, SubState } from '../types.js';
import type { JobKind, ProcessSlot, ServiceTimer } from './service-protocol.js';

/** The main process: its slot, and its PID once the driver reported it. */
export interface MainProcessState {
  readonly slot: ProcessSlot;
  readonly pid: number | null;
  readonly pidfdId: string | null;
  /** Index in ExecStart= (oneshot runs them in turn); -1 for one adopted from MAINPID=/PIDFile= or a restore. */
  readonly index: number;
}

/** The control process: which command of which list it runs. */
export interface ControlProcessState {
  readonly slot: ProcessSlot;
  readonly pid: number | null;
  readonly pidfdId: string | null;
  readonly kind: ControlKind;
  readonly index: number;
  /** 0 while within its timeout; 1 once sent KillSignal= for running too long; 2 once sent FinalKillSignal=. */
  readonly timedOut: 0 | 1 | 2;
}

/** A service machine's state. `sub` is the state; everything else is bookkeeping. */
export interface ServiceMachineState {
  readonly sub: SubState;
  readonly result: ServiceResult;
  readonly main: MainProcessState | null;
  readonly control: ControlProcessState | null;
  /** The next slot number to hand out; slots are never reused. */
  readonly nextSlot: number;
  /** Times of recent starts (ms, driver clock), for StartLimitIntervalSec=/StartLimitBurst=. */
  readonly startTimes: readonly number[];
  readonly restarts: number;
  /** How the last main process ended. */
  readonly lastExit: LastExit | null;
  /** How that exit classified. */
  readonly mainResult: ServiceResult;
  /** The main process ended while ExecStartPost= ran: decided when the start is done. */
  readonly mainEndedInStart: boolean;
  readonly statusText: string | null;
  readonly invocationId: string | null;
  /** NOTIFYACCESS= sent by the service, which overrides NotifyAccess= until the next start. */
  readonly notifyAccess: NotifyAccess | null;
  /** The watchdog interval in µs (WatchdogSec=, or WATCHDOG_USEC= from the service); 0 for none. */
  readonly watchdogUsec: number;
  /** When the timeout armed for the current step runs out (ms, driver clock), or null. */
  readonly timeoutDeadline: number | null;
  /** CLOCK_MONOTONIC µs (decimal text) when the current notify-reload began. */
  readonly reloadStartUsec: string | null;
  /** The stop under way (or that ended the unit) was asked for: no restart follows it. */
  readonly manualStop: boolean;
  /** Jobs taken and not yet answered with `job-done`. */
  readonly jobs: Readonly<Record<JobKind, boolean>>;
  /** A start asked for during a stop: it begins when the stop is done, with this invocation id. */
  readonly queuedStart: string | null;
  /** The generation of each armed timer, null when not armed. */
  readonly timers: Readonly<Record<ServiceTimer, number | null>>;
  /** The last timer generation handed out. */
  readonly timerGeneration: number;
  /** Waiting for `conditions-checked`. */
  readonly checkingConditions: boolean;
  /** In a kill state: the unit's other processes are gone (or are not waited for). */
  readonly membersGone: boolean;
  /** Waiting for `members-gone` (a `watch-members` is outstanding). */
  readonly watchingMembers: boolean;
  /** A stop waits for a reload's control process to end before it runs ExecStop=. */
  readonly stopAfterControl: boolean;
  /** A PIDFile= read under way: the slot its process will take and when to give up (ms). */
  readonly pidFile: { readonly slot: ProcessSlot; readonly deadline: number } | null;
  /**
   * Type=forking: the ExecStart= process, still watched after MAINPID= named the main process
   * before it exited; its exit (not the main process's) ends the start.
   */
  readonly launcher: MainProcessState | null;
}

/** A state that can be changed in place during one step. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type DraftState = Mutable<Omit<ServiceMachineState, 'jobs' | 'timers' | 'startTimes'>> & {
  jobs: Record<JobKind, boolean>;
  timers: Record<ServiceTimer, number | null>;
  startTimes: number[];
};

/** A unit that never ran. */
export function initialServiceState(): ServiceMachineState {
  return {
    sub: 'dead',
    result: 'success',
    main: null,
    control: null,
    nextSlot: 1,
    startTimes: [],
    restarts: 0,
    lastExit: null,
    mainResult: 'success',
    mainEndedInStart: false,
    statusText: null,
    invocationId: null,
    notifyAccess: null,
    watchdogUsec: 0,
    timeoutDeadline: null,
    reloadStartUsec: null,
    manualStop: false,
    jobs: { start: false, stop: false, reload: false },
    queuedStart: null,
    timers: { timeout: null, watchdog: null, restart: null, 'runtime-max': null, 'pid-file': null },
    timerGeneration: 0,
    checkingConditions: false,
    membersGone: false,
    watchingMembers: false,
    stopAfterControl: false,
    pidFile: null,
    launcher: null,
  };
}

/** A deep copy that one step may change. */
export function draftOf(state: ServiceMachineState): DraftState {
  return {
    ...state,
    jobs: { ...state.jobs },
    timers: { ...state.timers },
    startTimes: [...state.startTimes],
  };
}

/** The facts a state record holds; a change in them means `persist`. */
export function recordedFacts(state: ServiceMachineState): string {
  return JSON.stringify([
    state.sub,
    state.result,
    state.restarts,
    state.invocationId,
    state.statusText,
    state.lastExit,
    state.main === null ? null : [state.main.slot, state.main.pid, state.main.index],
    state.launcher === null ? null : state.launcher.slot,
    state.control === null ? null : [state.control.slot, state.control.pid, state.control.kind, state.control.index],
    state.manualStop,
    state.watchdogUsec,
    state.notifyAccess,
  ]);
}
