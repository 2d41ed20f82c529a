/**
 * The ports through which the driver touches the world. The real ones (linux-*.ts) call the
 * native addon, /proc, cgroupfs and the file system; the tests' fakes (test/helpers/fake-ports.ts)
 * keep a process table a test drives by hand ("PID 12 exited with 1") and a clock it advances.
 *
 * Every port is made for one unit: the process port knows the unit's sessions and cgroup, the
 * event sink knows whose state it reports.
 */
import type { ExitStatus, Pidfd, ProcessIdJson } from '../../pidfd/index.js';
import type { ExecCommand, ServiceUnitConfig } from '../../unit/index.js';
import type { ActiveState, ControlKind, ServiceResult, SubState } from '../types.js';
import type { SpawnProtocolEnv } from '../machines/service-protocol.js';

/** A process held by the process port (a pidfd in the real one). */
export interface HeldProcess {
  readonly pid: number;
  /** The pidfs id, as decimal text, where the kernel has them. */
  readonly pidfdId: string | null;
  /** The reference that can be recorded and verified later (boot id + pid + pidfd id). */
  ref(): ProcessIdJson;
  /** Sends a signal through the handle; false if the process is gone (ESRCH). */
  signal(signal: number): boolean;
  /** Stops watching and closes the handle. Never signals. */
  release(): void;
}

/** What a spawn needs besides the command: the machine decided the protocol part, the port adds the rest. */
export interface SpawnRequest {
  readonly config: ServiceUnitConfig;
  readonly kind: ControlKind | 'main';
  readonly command: ExecCommand;
  readonly env: SpawnProtocolEnv;
  /** The current main process, for MAINPID=/MAINPIDFDID=. */
  readonly main: HeldProcess | undefined;
}

/** A spawn's outcome; a failure's `message` says what went wrong, the machine says which command it was. */
export type SpawnOutcome =
  | { readonly ok: true; readonly process: HeldProcess }
  | { readonly ok: false; readonly exitCode: number; readonly result: 'exit-code' | 'resources'; readonly message: string };

/** A `MAINPID=` or `MAINPIDFD=1` of a datagram, before it is checked. */
export type MainPidClaim =
  | { readonly kind: 'pid'; readonly pid: string; readonly pidfdId: string | undefined }
  | { readonly kind: 'pidfd'; readonly fds: readonly number[] };

/** Where a candidate main process stands: held (still to be given a slot), or refused with a reason. */
export type ClaimOutcome = { readonly ok: true; readonly process: HeldProcess } | { readonly ok: false; readonly reason: string };

/** Spawning, signalling and finding one unit's processes. */
export interface ProcessPort {
  /** Spawns synchronously: the handle exists before this returns. */
  spawn(request: SpawnRequest): SpawnOutcome;
  /**
   * Calls `onExit` once with how the process ended (reaped if our child, else through its pidfd).
   * The real port lets queued notify datagrams through first: a READY=1 sent just before the exit counts.
   */
  watchExit(process: HeldProcess, onExit: (status: ExitStatus) => void): void;
  /** Signals every process of the unit but those in `except`; returns how many were signalled. */
  signalMembers(signal: number, except: readonly HeldProcess[], options?: { cgroupKill?: boolean; thenCont?: boolean; thenHup?: boolean }): number;
  /** Calls `onGone` once no process of the unit is left but those in `except`; returns a cancel function. */
  watchMembers(except: readonly HeldProcess[], onGone: () => void): () => void;
  /** Checks a `MAINPID=` candidate: alive, not the manager, PID 1 or `control`, and of the unit unless the sender is root. */
  claimMain(claim: MainPidClaim, senderUid: number, control: HeldProcess | undefined): ClaimOutcome;
  /** Reads PIDFile= once: the process it names, checked to be of the unit; `retry` while the file is not there yet. */
  readPidFile(path: string): ClaimOutcome | { readonly ok: false; readonly reason: string; readonly retry: true };
  /**
   * Takes a process found elsewhere (a previous daemon's record, a scope) under the unit. With
   * `recordedSessions`, the process's own session counts as the unit's if it is among them.
   */
  hold(handle: Pidfd, recordedSessions?: readonly number[]): HeldProcess;
  /** A process that became the main process by `MAINPID=` or PIDFile=: its session is the unit's too. */
  adoptSession(process: HeldProcess): void;
  /**
   * Session ids of the unit's processes (how they are found without cgroups): only sessions still
   * live and proven the unit's through a pidfd, never a number whose session has ended.
   */
  readonly sessions: ReadonlySet<number>;
  /** Whether a live process is the unit's: in its cgroup where there is one, else in one of its live sessions. */
  isMember(handle: Pidfd): boolean;
  /** A new invocation begins: what earlier ones spawned is no longer looked for. */
  newInvocation(): void;
}

/** The first condition that fails, as text, or null (ConditionPathExists= and friends). */
export type ConditionCheck = (config: ServiceUnitConfig) => string | null;

/** Time, for timeouts and restart delays. The fake one is advanced by the test. */
export interface ClockPort {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Wall-clock ms since the epoch, for timestamps shown to people. */
  wallNow(): number;
  /** CLOCK_MONOTONIC in µs, the clock of MONOTONIC_USEC=. */
  monotonicUsec(): bigint;
  /** Calls `fire` after `ms` (on a later turn, also for 0); returns a cancel function. */
  arm(ms: number, fire: () => void): () => void;
}

/** Where the unit's facts go: the state record, the event stream, the unit's log. */
export interface EventSink {
  /** Something recorded changed; the sink coalesces writes. */
  persist(): void;
  /** The unit entered a state (one step of its machine may pass several). */
  state(change: { readonly activeState: ActiveState; readonly subState: SubState; readonly result: ServiceResult }): void;
  log(level: 'info' | 'warning' | 'error', text: string): void;
}

/** Everything one unit's driver runs on. */
export interface UnitPorts {
  readonly processes: ProcessPort;
  readonly clock: ClockPort;
  readonly events: EventSink;
  readonly conditions: ConditionCheck;
}

/** What the ports may ask of the unit they serve. */
export interface PortedUnit {
  readonly name: string;
  readonly invocationId: string | null;
  readonly main: HeldProcess | undefined;
}

/** Makes the ports of each unit (the manager's real host, or a test's fakes). */
export interface UnitHost {
  portsFor(unit: PortedUnit): UnitPorts;
}
