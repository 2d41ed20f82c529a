/**
 * The vocabulary between a service's state machine and the driver that runs it: the events the
 * machine takes and the effects it returns. The machine does no I/O and never awaits; the driver
 * (runtime/) turns effects into syscalls, timers and records through its ports, and turns what
 * happens in the world (an exit, a datagram, a timer) back into events.
 *
 * Processes are named by a `ProcessSlot` the machine hands out in its `spawn` effect; the driver
 * answers with `spawned` or `spawn-failed` for that slot and later `exited`. An event about a slot
 * that is no longer the unit's main or control process is stale and changes nothing.
 */
import type { ExecCommand } from '../../unit/index.js';
import type { ExitStatus } from '../../pidfd/index.js';
import type { ActiveState, ControlKind, LastExit, ServiceResult, SubState } from '../types.js';

/** A number the machine gives each process it asks for; never reused within one machine. */
export type ProcessSlot = number;

/** The timers a service machine arms; at most one of each is armed at a time. */
export type ServiceTimer = 'timeout' | 'watchdog' | 'restart' | 'runtime-max' | 'pid-file';

/** How a job the machine was asked for ended, as systemctl reports it. */
export type JobResult = 'done' | 'failed' | 'skipped' | 'canceled' | 'unsupported' | 'timeout';

/** The jobs a service machine takes. Restart is a stop job followed by a start job (jobs/). */
export type JobKind = 'start' | 'stop' | 'reload';

/**
 * What the driver learned about a `MAINPID=`/`MAINPIDFD=1` (or PIDFile=) candidate before handing it
 * on. An accepted candidate is held by the driver for the length of one step: it becomes the main
 * process only if the machine answers with an `adopt` effect for role `main`; otherwise the driver
 * releases it.
 */
export type MainPidCandidate =
  | { accepted: true; pid: number; pidfdId: string | null }
  | { accepted: false; reason: string };

/** An event, stamped by the driver with the clock's time. */
export type ServiceEvent = ServiceEventBody & {
  /** Milliseconds on the driver's clock (monotonic). */
  readonly now: number;
};

export type ServiceEventBody =
  /** `invocationId` is the id a start that begins now takes (the machine makes no random ids). */
  | { readonly type: 'start'; readonly invocationId: string }
  | { readonly type: 'stop' }
  /** `monotonicUsec`: CLOCK_MONOTONIC in µs when the reload was asked for (notify-reload compares MONOTONIC_USEC= with it). */
  | { readonly type: 'reload'; readonly monotonicUsec: bigint }
  /** The answer to a `check-conditions` effect: the first failed condition as text, or null. */
  | { readonly type: 'conditions-checked'; readonly failed: string | null }
  | { readonly type: 'spawned'; readonly slot: ProcessSlot; readonly pid: number; readonly pidfdId: string | null }
  /** `exitCode` is systemd's code for the failed step (203/EXEC, 217/USER, …); `result` is usually exit-code, resources for a missing EnvironmentFile=. */
  | { readonly type: 'spawn-failed'; readonly slot: ProcessSlot; readonly exitCode: number; readonly result: ServiceResult; readonly message: string }
  /**
   * `unwatched`: the process ended while no daemon watched (fed after a restore); a status with
   * neither code nor signal then means "unknown", and the step counts as failed.
   */
  | { readonly type: 'exited'; readonly slot: ProcessSlot; readonly status: ExitStatus; readonly unwatched?: boolean }
  /** A datagram from a process of the unit (`origin` says which) or, for NotifyAccess=all, any process of it. */
  | {
      readonly type: 'notify';
      readonly origin: 'main' | 'control' | 'other';
      readonly senderPid: number;
      readonly fields: Readonly<Record<string, string>>;
      /** CLOCK_MONOTONIC in µs when the datagram was read (compared with MONOTONIC_USEC=). */
      readonly monotonicUsec: bigint;
      /** Present when the datagram named a new main process. */
      readonly mainPid?: MainPidCandidate;
    }
  /** The answer to `read-pid-file`: the PID named, checked to belong to the unit, or why not. */
  | { readonly type: 'pid-file'; readonly result: MainPidCandidate | { accepted: false; reason: string; retry: true } }
  /** `invocationId`: a fresh id for the start a `restart` timer begins (the driver passes one with every timer). */
  | { readonly type: 'timer-fired'; readonly timer: ServiceTimer; readonly generation: number; readonly invocationId?: string }
  /** The answer to `watch-members`: nothing of the unit is left besides (optionally) the main process. */
  | { readonly type: 'members-gone' }
  | { readonly type: 'reset-failed' };

/** What the machine asks the driver to do, in order. */
export type ServiceEffect =
  | { readonly type: 'check-conditions' }
  | {
      readonly type: 'spawn';
      readonly slot: ProcessSlot;
      readonly role: 'main' | 'control';
      /** Which list the command is from ('main' for ExecStart=). */
      readonly kind: ControlKind | 'main';
      readonly command: ExecCommand;
      /** Index of the command within its list. */
      readonly index: number;
      /** The protocol variables the machine decided on; the driver adds the rest (user, files, …). */
      readonly env: SpawnProtocolEnv;
    }
  /**
   * One signal to the main or the control process through its pidfd (ESRCH is not an error).
   * `slot` names the process: the same step may let it go or start another in its role afterwards.
   */
  | { readonly type: 'signal'; readonly target: 'main' | 'control'; readonly slot: ProcessSlot; readonly signal: number; readonly thenCont?: boolean; readonly thenHup?: boolean }
  /** A signal to every process of the unit but `except` (cgroup members, else session members). `useCgroupKill` allows cgroup.kill for SIGKILL. */
  | { readonly type: 'signal-members'; readonly signal: number; readonly except: 'main' | 'none'; readonly thenCont?: boolean; readonly thenHup?: boolean; readonly useCgroupKill?: boolean }
  /** Report `members-gone` once no process of the unit is left but (with `except: 'main'`) the main process. At once if none is. */
  | { readonly type: 'watch-members'; readonly except: 'main' | 'none' }
  | { readonly type: 'unwatch-members' }
  /** Read PIDFile= and answer with `pid-file`. */
  | { readonly type: 'read-pid-file'; readonly path: string; readonly slot: ProcessSlot }
  /**
   * The candidate the driver holds for `role` (the MAINPID=/PIDFile= candidate of this event, or a
   * process found alive at restore) becomes `slot`: keep its handle and report its exit for that slot.
   */
  | { readonly type: 'adopt'; readonly slot: ProcessSlot; readonly role: 'main' | 'control' }
  /** The driver closes its handle to a process the machine no longer tracks (not a signal). */
  | { readonly type: 'release'; readonly slot: ProcessSlot }
  | { readonly type: 'arm-timer'; readonly timer: ServiceTimer; readonly ms: number; readonly generation: number }
  | { readonly type: 'cancel-timer'; readonly timer: ServiceTimer }
  /** The state record changed: write it (coalesced by the driver). */
  | { readonly type: 'persist' }
  /** The (active, sub) state changed: tell subscribers. Carries the state entered, since one step may pass several. */
  | { readonly type: 'emit-state'; readonly activeState: ActiveState; readonly subState: SubState; readonly result: ServiceResult }
  | { readonly type: 'log'; readonly level: 'info' | 'warning' | 'error'; readonly text: string }
  | { readonly type: 'job-done'; readonly job: JobKind; readonly result: JobResult };

/** What the machine decides about a spawned process's environment (spec section 2). */
export interface SpawnProtocolEnv {
  /** Set NOTIFY_SOCKET. */
  readonly notify: boolean;
  /** Set MAINPID/MAINPIDFDID from the current main process. */
  readonly mainPid: boolean;
  /** WATCHDOG_USEC (and WATCHDOG_PID set by the child), or 0 for none. */
  readonly watchdogUsec: number;
  /** SERVICE_RESULT, EXIT_CODE, EXIT_STATUS for ExecStop=/ExecStopPost=. */
  readonly exitInfo?: { readonly result: ServiceResult; readonly lastExit: LastExit | null };
  readonly invocationId: string;
}

/** The sub-state is the machine's state; everything else is derived or bookkeeping. */
export type { SubState };
