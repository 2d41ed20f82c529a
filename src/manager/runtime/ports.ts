/**
 * The ports through which the driver touches the world. The real ones (linux-*.ts) call the
 * native addon, /proc, cgroupfs and the file system; the tests' fakes (test/helpers/fake-ports.ts)
 * keep a process table a test drives by hand ("PID 12 exited with 1") and a clock it advances.
 */
import type { ExitStatus, ProcessIdJson } from '../../pidfd/index.js';
import type { ExecCommand, ServiceUnitConfig } from '../../unit/index.js';
import type { ControlKind } from '../types.js';
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

/** What a spawn needs besides the command: the unit decides, the port carries it out. */
export interface SpawnRequest {
  readonly unit: string;
  readonly config: ServiceUnitConfig;
  readonly kind: ControlKind | 'main';
  readonly command: ExecCommand;
  readonly env: SpawnProtocolEnv;
  /** The current main process, for MAINPID=. */
  readonly main: HeldProcess | undefined;
}

export type SpawnOutcome =
  | { readonly ok: true; readonly process: HeldProcess }
  | { readonly ok: false; readonly exitCode: number; readonly result: 'exit-code' | 'resources'; readonly message: string };

/** Spawning, signalling and finding a unit's processes. */
export interface ProcessPort {
  /** Spawns synchronously: the pidfd exists before this returns. */
  spawn(request: SpawnRequest): SpawnOutcome;
  /** Calls `onExit` once with how the process ended (reaped if our child, else through its pidfd). */
  watchExit(process: HeldProcess, onExit: (status: ExitStatus) => void): void;
  /** Signals every process of the unit but those in `except`; returns how many were signalled. */
  signalMembers(unit: string, signal: number, except: readonly HeldProcess[], options?: { cgroupKill?: boolean }): number;
  /** Calls `onGone` once no process of the unit is left but those in `except`; returns a cancel function. */
  watchMembers(unit: string, except: readonly HeldProcess[], onGone: () => void): () => void;
}

/** Time, for timeouts and restart delays. The fake one is advanced by the test. */
export interface ClockPort {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Wall-clock ms since the epoch, for timestamps shown to people. */
  wallNow(): number;
  monotonicUsec(): bigint;
  /** Calls `fire` after `ms` (at once, on the next turn, for 0); returns a cancel function. */
  arm(ms: number, fire: () => void): () => void;
}

/** Where the unit's facts go: the state record, the event stream, the unit's log. */
export interface RecordPort {
  /** Something recorded changed; the port coalesces writes. */
  persist(): void;
}
