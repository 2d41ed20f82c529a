/**
 * The manager's public vocabulary: unit states and results as systemd names them, the status
 * snapshot the API and CLI show, and the events a subscriber sees.
 */
import type { ProcessIdJson } from '../pidfd/index.js';

/** systemd's ActiveState. */
export type ActiveState = 'active' | 'reloading' | 'inactive' | 'failed' | 'activating' | 'deactivating';

/** systemd's SubState for services. */
export type SubState =
  | 'dead'
  | 'condition'
  | 'start-pre'
  | 'start'
  | 'start-post'
  | 'running'
  | 'exited'
  | 'reload'
  | 'reload-signal'
  | 'reload-notify'
  | 'stop'
  | 'stop-sigterm'
  | 'stop-sigkill'
  | 'stop-post'
  | 'final-sigterm'
  | 'final-sigkill'
  | 'failed'
  | 'auto-restart';

/** systemd's service Result. */
export type ServiceResult =
  | 'success'
  | 'exit-code'
  | 'signal'
  | 'core-dump'
  | 'timeout'
  | 'watchdog'
  | 'start-limit-hit'
  | 'resources'
  | 'protocol';

/** How the last main process ended. */
export interface LastExit {
  code: number | null;
  signal: string | null;
}

/** What `status --json` and `list --json` show for one unit. */
export interface UnitStatus {
  name: string;
  description: string;
  loadState: 'loaded' | 'error' | 'not-found';
  /** Why the unit did not load, one `FILE:LINE: message` per problem. */
  loadErrors?: string[];
  activeState: ActiveState;
  subState: SubState;
  result: ServiceResult;
  type: string;
  mainProcess: ProcessIdJson | null;
  controlProcess: ProcessIdJson | null;
  restarts: number;
  lastExit: LastExit | null;
  statusText: string | null;
  invocationId: string | null;
  /** Wall-clock time of the last change into the current active state, ms since the epoch. */
  stateChangeTimestamp: number;
  /** When the unit last entered `active`, ms since the epoch (null if never). */
  activeEnterTimestamp: number | null;
  /** File the unit came from, and its drop-ins. */
  fragmentPath: string | null;
  dropInPaths: string[];
  transient: boolean;
  enabled: 'enabled' | 'disabled' | 'static' | 'transient';
  /** The unit's cgroup v2 path, when the daemon has cgroups. */
  cgroup?: string | null;
  /** memory.current in bytes, where the memory controller is enabled. */
  memoryCurrent?: number | null;
  /** CPU time used, in µs (cpu.stat usage_usec). */
  cpuUsageUsec?: number | null;
  /** Processes in the cgroup. */
  tasks?: number | null;
  /** Why the daemon has no cgroups (then units are tracked by process sessions). */
  cgroupUnavailable?: string;
}

/** One event on the subscription stream. */
export type ManagerEvent =
  | { type: 'state'; unit: string; activeState: ActiveState; subState: SubState; result: ServiceResult; mainProcess: ProcessIdJson | null; timestamp: number }
  | { type: 'log'; unit: string; record: LogRecord }
  | { type: 'message'; unit: string | null; level: 'info' | 'warning' | 'error'; text: string; timestamp: number };

/** One captured line of a service's output. */
export interface LogRecord {
  /** Microseconds since the epoch when the daemon read the line. */
  time: number;
  /** Which stream it came from; `manager` for the daemon's own notes about the unit. */
  stream: 'stdout' | 'stderr' | 'manager';
  /** The process that was spawned with this pipe (its children inherit it and are attributed to it). */
  pid: number | null;
  pidfdId: string | null;
  /** The invocation the line belongs to. */
  invocationId: string | null;
  message: string;
}

/** What the daemon records per unit (its state record, state-slots.ts) so that a new daemon on the same boot can pick it up. */
export interface UnitRecord {
  name: string;
  activeState: ActiveState;
  subState: SubState;
  result: ServiceResult;
  restarts: number;
  invocationId: string | null;
  statusText: string | null;
  lastExit: LastExit | null;
  activeEnterTimestamp: number | null;
  main: ProcessIdJson | null;
  /** The control process running when this was written (absent in files of older daemons). */
  control?: ControlRecord | null;
  /** Whether the stop under way (or that ended the unit) was asked for, so no restart follows it. */
  manualStop?: boolean;
  /** Which ExecStart= command the main process runs (oneshot runs them in turn); absent or -1 when not spawned from one. */
  mainIndex?: number;
  /** The watchdog interval in µs in force (WATCHDOG_USEC= may have changed WatchdogSec=). */
  watchdogUsec?: number;
  /** A NOTIFYACCESS= override sent by the service. */
  notifyAccess?: 'none' | 'main' | 'exec' | 'all' | null;
  sessions: number[];
  /** The unit file text of a transient unit, which has no file to load again. */
  transientText?: string;
}

/** The command lists a control process can run from, as the state machine names them. */
export type ControlKind = 'condition' | 'start-pre' | 'start-post' | 'reload' | 'stop' | 'stop-post';

/** A running control process: which command of which list it runs (index into that list, from 0). */
export interface ControlRecord {
  process: ProcessIdJson;
  kind: ControlKind;
  index: number;
}

/** The daemon's state file. */
export interface DaemonState {
  bootId: string;
  written: number;
  units: UnitRecord[];
}
