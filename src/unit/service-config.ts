/**
 * The typed model of a `.service` unit, with systemd's defaults already applied, so the manager never
 * re-derives them. Built by {@link ./parse.ts} from the fragment and its drop-ins.
 *
 * Time spans are milliseconds (possibly fractional) or `Infinity`; signals are Linux signal numbers.
 */

import type { EnvironmentFileRef } from './environment-file.js';
import type { ExecCommand } from './exec-line.js';
import type { ManagerScope } from './specifiers.js';
import type { ResourceLimit, RlimitName } from './values.js';

/** `Type=`. `idle` is read as `simple` (with a warning); `dbus` is refused. */
export type ServiceType = 'simple' | 'exec' | 'forking' | 'oneshot' | 'notify' | 'notify-reload';
/** `Restart=`. */
export type RestartPolicy = 'no' | 'on-success' | 'on-failure' | 'on-abnormal' | 'on-watchdog' | 'on-abort' | 'always';
/** `NotifyAccess=`. */
export type NotifyAccess = 'none' | 'main' | 'exec' | 'all';
/** `KillMode=`. */
export type KillMode = 'control-group' | 'mixed' | 'process' | 'none';
/** `TimeoutStartFailureMode=` / `TimeoutStopFailureMode=`. */
export type TimeoutFailureMode = 'terminate' | 'abort' | 'kill';

/** Exit codes and signals, e.g. for `SuccessExitStatus=`; both sorted, without duplicates. */
export interface ExitStatusSet {
  readonly codes: readonly number[];
  readonly signals: readonly number[];
}

/** The path conditions and assertions holdfast evaluates. */
export type PathConditionKind =
  | 'PathExists'
  | 'PathExistsGlob'
  | 'PathIsDirectory'
  | 'PathIsSymbolicLink'
  | 'PathIsMountPoint'
  | 'PathIsReadWrite'
  | 'DirectoryNotEmpty'
  | 'FileNotEmpty'
  | 'FileIsExecutable';

/**
 * One `Condition…=` or `Assert…=`. A unit starts when every non-trigger condition holds and, if any
 * trigger (`|`) conditions exist, at least one of them holds.
 */
export interface PathCondition {
  readonly kind: PathConditionKind;
  readonly path: string;
  /** Written with `!`: the result is inverted. */
  readonly negate: boolean;
  /** Written with `|`. */
  readonly trigger: boolean;
}

/** `StandardInput=`. */
export type StandardInput = { readonly type: 'null' } | { readonly type: 'file'; readonly path: string };

/**
 * `StandardOutput=`. `log` is holdfast's per-unit log, the default, which journal, kmsg, journal+console,
 * kmsg+console and syslog all map to. `inherit` (duplicate stdin) also ends up as `log`, because
 * systemd does the same when stdin is not a terminal or socket.
 */
export type StandardOutput =
  | { readonly type: 'log' }
  | { readonly type: 'null' }
  | { readonly type: 'file' | 'append' | 'truncate'; readonly path: string };

/** `StandardError=`: like output, plus `inherit`, which means "the same file descriptor as stdout" (the default). */
export type StandardError = StandardOutput | { readonly type: 'inherit' };

/** `WorkingDirectory=`. `home` (`~`) is the home directory of `User=`, resolved at spawn time. */
export type WorkingDirectory = { readonly type: 'path'; readonly path: string; readonly missingOk: boolean } | { readonly type: 'home'; readonly missingOk: boolean };

/** A percentage of physical memory or of the system's task limit, e.g. `MemoryMax=50%`. */
export interface Percentage {
  readonly percent: number;
}

/** The [Unit] section. Dependency lists hold unit names, in file order, without duplicates. */
export interface UnitSection {
  readonly description: string;
  readonly documentation: readonly string[];
  readonly requires: readonly string[];
  readonly requisite: readonly string[];
  readonly wants: readonly string[];
  readonly bindsTo: readonly string[];
  readonly partOf: readonly string[];
  readonly upholds: readonly string[];
  readonly conflicts: readonly string[];
  readonly before: readonly string[];
  readonly after: readonly string[];
  readonly onFailure: readonly string[];
  readonly onSuccess: readonly string[];
  /** `StartLimitIntervalSec=`, default 10 s; 0 disables rate limiting. */
  readonly startLimitIntervalMs: number;
  /** `StartLimitBurst=`, default 5. */
  readonly startLimitBurst: number;
  readonly defaultDependencies: boolean;
  readonly stopWhenUnneeded: boolean;
  readonly refuseManualStart: boolean;
  readonly refuseManualStop: boolean;
  readonly conditions: readonly PathCondition[];
  readonly asserts: readonly PathCondition[];
}

/** The [Service] section, defaults applied. */
export interface ServiceSection {
  /** Explicit, or `simple` when there is an ExecStart= and `oneshot` otherwise. */
  readonly type: ServiceType;
  readonly remainAfterExit: boolean;
  readonly guessMainPid: boolean;
  /** Absolute; a relative `PIDFile=` is taken relative to the runtime directory, `/var/run` becomes `/run`. */
  readonly pidFile?: string;

  readonly execCondition: readonly ExecCommand[];
  readonly execStartPre: readonly ExecCommand[];
  readonly execStart: readonly ExecCommand[];
  readonly execStartPost: readonly ExecCommand[];
  readonly execReload: readonly ExecCommand[];
  readonly execStop: readonly ExecCommand[];
  readonly execStopPost: readonly ExecCommand[];

  readonly restart: RestartPolicy;
  /** `RestartSec=`, default 100 ms (lowered to RestartMaxDelaySec= if that is smaller). */
  readonly restartMs: number;
  /** `RestartSteps=`, default 0 (no backoff). */
  readonly restartSteps: number;
  /** `RestartMaxDelaySec=`, default `Infinity`. */
  readonly restartMaxDelayMs: number;
  readonly restartPreventExitStatus: ExitStatusSet;
  readonly restartForceExitStatus: ExitStatusSet;
  readonly successExitStatus: ExitStatusSet;

  /** `TimeoutStartSec=`, default 90 s; `Infinity` for oneshot unless set; 0 given in the file means `Infinity`. */
  readonly timeoutStartMs: number;
  /** `TimeoutStopSec=`, default 90 s; 0 means `Infinity`. */
  readonly timeoutStopMs: number;
  /** `TimeoutAbortSec=`, defaults to the stop timeout. */
  readonly timeoutAbortMs: number;
  readonly timeoutStartFailureMode: TimeoutFailureMode;
  readonly timeoutStopFailureMode: TimeoutFailureMode;
  /** `RuntimeMaxSec=`, default `Infinity`. */
  readonly runtimeMaxMs: number;
  /** `WatchdogSec=`, default 0 (off). */
  readonly watchdogMs: number;
  /** Raised from `none` to `main` for notify and notify-reload services and when a watchdog is set. */
  readonly notifyAccess: NotifyAccess;

  readonly killMode: KillMode;
  /** Default SIGTERM; always followed by SIGCONT. */
  readonly killSignal: number;
  /** Defaults to `killSignal`. */
  readonly restartKillSignal: number;
  /** Default SIGKILL. */
  readonly finalKillSignal: number;
  /** Default SIGABRT. */
  readonly watchdogSignal: number;
  /** Default SIGHUP (notify-reload). */
  readonly reloadSignal: number;
  readonly sendSigkill: boolean;
  readonly sendSighup: boolean;

  /** `Environment=`, specifiers expanded, no `$` expansion; later assignments win. */
  readonly environment: Readonly<Record<string, string>>;
  /** Read at spawn time with `loadEnvironmentFiles()`; they override `environment`. */
  readonly environmentFiles: readonly EnvironmentFileRef[];
  /** `UnsetEnvironment=`: names, or `NAME=VALUE` to remove only that exact assignment. */
  readonly unsetEnvironment: readonly string[];
  /** `PassEnvironment=`: names copied from the manager's own environment. */
  readonly passEnvironment: readonly string[];

  /** Default `/` for the system manager, the home directory for a per-user manager. */
  readonly workingDirectory: WorkingDirectory;
  /** User name or numeric id; undefined means the manager's own user. */
  readonly user?: string;
  readonly group?: string;
  readonly supplementaryGroups: readonly string[];
  /** Default 0o022. */
  readonly umask: number;

  readonly standardInput: StandardInput;
  readonly standardOutput: StandardOutput;
  readonly standardError: StandardError;
  /** `SyslogIdentifier=`: the name log lines carry; undefined means the process name. */
  readonly syslogIdentifier?: string;

  /** `Limit*=` that were set; unset ones are inherited from the manager. */
  readonly limits: Readonly<Partial<Record<RlimitName, ResourceLimit>>>;
  /** `MemoryMax=` in bytes, `Infinity`, or a share of RAM; parsed, not yet enforced by holdfast. */
  readonly memoryMax: number | Percentage;
  /** `CPUQuota=` in percent of one CPU; undefined means no quota. Parsed, not yet enforced. */
  readonly cpuQuotaPercent?: number;
  /** `TasksMax=`: a count, `Infinity`, or a share of the system limit; undefined keeps the default. Parsed, not yet enforced. */
  readonly tasksMax?: number | Percentage;
}

/** The [Install] section, as written (names after specifier expansion). */
export interface InstallSection {
  readonly wantedBy: readonly string[];
  readonly requiredBy: readonly string[];
  readonly upheldBy: readonly string[];
  readonly alias: readonly string[];
  readonly also: readonly string[];
  readonly defaultInstance?: string;
}

/** A loaded service unit. */
export interface ServiceUnitConfig {
  /** The unit's name: for an instance the instance name, for an alias the name it points to. */
  readonly name: string;
  /** Every name the unit is known by: `name` first, then aliases. */
  readonly names: readonly string[];
  /** For `foo@bar.service`: `foo@.service` and `bar`. */
  readonly template?: string;
  readonly instance?: string;
  readonly fragmentPath: string;
  /** Drop-ins that were applied, in the order they were applied. */
  readonly dropInPaths: readonly string[];
  readonly unit: UnitSection;
  readonly service: ServiceSection;
  readonly install: InstallSection;
}

/** systemd's built-in defaults (system.conf DefaultTimeoutStartSec= etc.). */
export const DEFAULTS = {
  timeoutStartMs: 90_000,
  timeoutStopMs: 90_000,
  restartMs: 100,
  startLimitIntervalMs: 10_000,
  startLimitBurst: 5,
  umask: 0o022,
  killSignal: 15,
  finalKillSignal: 9,
  watchdogSignal: 6,
  reloadSignal: 1,
} as const;

/** A section with its readonly fields and arrays made writable, for a draft being filled in. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer E)[] ? E[] : T[K] };

/** A mutable draft of {@link ServiceUnitConfig} that the directives fill in. */
export interface ServiceDraft {
  unit: Mutable<UnitSection>;
  service: {
    type?: ServiceType;
    typeLine?: number;
    remainAfterExit: boolean;
    guessMainPid: boolean;
    pidFile?: string;
    exec: Record<ExecKey, ExecCommand[]>;
    restart: RestartPolicy;
    restartMs: number;
    restartSteps: number;
    restartMaxDelayMs: number;
    restartPreventExitStatus: { codes: Set<number>; signals: Set<number> };
    restartForceExitStatus: { codes: Set<number>; signals: Set<number> };
    successExitStatus: { codes: Set<number>; signals: Set<number> };
    timeoutStartMs: number;
    timeoutStartSet: boolean;
    timeoutStopMs: number;
    timeoutAbortMs?: number;
    timeoutStartFailureMode: TimeoutFailureMode;
    timeoutStopFailureMode: TimeoutFailureMode;
    runtimeMaxMs: number;
    runtimeMaxLine?: number;
    watchdogMs: number;
    notifyAccess: NotifyAccess;
    killMode: KillMode;
    killSignal: number;
    restartKillSignal?: number;
    finalKillSignal: number;
    watchdogSignal: number;
    reloadSignal: number;
    sendSigkill: boolean;
    sendSighup: boolean;
    environment: Record<string, string>;
    environmentFiles: EnvironmentFileRef[];
    unsetEnvironment: string[];
    passEnvironment: string[];
    workingDirectory?: WorkingDirectory;
    user?: string;
    group?: string;
    supplementaryGroups: string[];
    umask: number;
    standardInput: StandardInput;
    standardOutput: StandardOutput | { type: 'inherit' };
    standardError: StandardError;
    syslogIdentifier?: string;
    limits: Partial<Record<RlimitName, ResourceLimit>>;
    memoryMax: number | Percentage;
    cpuQuotaPercent?: number;
    tasksMax?: number | Percentage;
  };
  install: Mutable<InstallSection>;
}

/** The `Exec*=` settings, in the order a start and stop run them. */
export const EXEC_KEYS = ['ExecCondition', 'ExecStartPre', 'ExecStart', 'ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost'] as const;
export type ExecKey = (typeof EXEC_KEYS)[number];

const emptyStatus = () => ({ codes: new Set<number>(), signals: new Set<number>() });

/** A draft holding systemd's defaults before any file is read. */
export function newServiceDraft(): ServiceDraft {
  return {
    unit: {
      description: '',
      documentation: [],
      requires: [],
      requisite: [],
      wants: [],
      bindsTo: [],
      partOf: [],
      upholds: [],
      conflicts: [],
      before: [],
      after: [],
      onFailure: [],
      onSuccess: [],
      startLimitIntervalMs: DEFAULTS.startLimitIntervalMs,
      startLimitBurst: DEFAULTS.startLimitBurst,
      defaultDependencies: true,
      stopWhenUnneeded: false,
      refuseManualStart: false,
      refuseManualStop: false,
      conditions: [],
      asserts: [],
    },
    service: {
      remainAfterExit: false,
      guessMainPid: true,
      exec: { ExecCondition: [], ExecStartPre: [], ExecStart: [], ExecStartPost: [], ExecReload: [], ExecStop: [], ExecStopPost: [] },
      restart: 'no',
      restartMs: DEFAULTS.restartMs,
      restartSteps: 0,
      restartMaxDelayMs: Infinity,
      restartPreventExitStatus: emptyStatus(),
      restartForceExitStatus: emptyStatus(),
      successExitStatus: emptyStatus(),
      timeoutStartMs: DEFAULTS.timeoutStartMs,
      timeoutStartSet: false,
      timeoutStopMs: DEFAULTS.timeoutStopMs,
      timeoutStartFailureMode: 'terminate',
      timeoutStopFailureMode: 'terminate',
      runtimeMaxMs: Infinity,
      watchdogMs: 0,
      notifyAccess: 'none',
      killMode: 'control-group',
      killSignal: DEFAULTS.killSignal,
      finalKillSignal: DEFAULTS.finalKillSignal,
      watchdogSignal: DEFAULTS.watchdogSignal,
      reloadSignal: DEFAULTS.reloadSignal,
      sendSigkill: true,
      sendSighup: false,
      environment: {},
      environmentFiles: [],
      unsetEnvironment: [],
      passEnvironment: [],
      supplementaryGroups: [],
      umask: DEFAULTS.umask,
      standardInput: { type: 'null' },
      standardOutput: { type: 'log' },
      standardError: { type: 'inherit' },
      limits: {},
      memoryMax: Infinity,
    },
    install: { wantedBy: [], requiredBy: [], upheldBy: [], alias: [], also: [] },
  };
}

const sortedStatus = (s: { codes: Set<number>; signals: Set<number> }): ExitStatusSet => ({
  codes: [...s.codes].sort((a, b) => a - b),
  signals: [...s.signals].sort((a, b) => a - b),
});

/** Where the whole-unit checks report their findings. */
export interface FinalizeReporter {
  error(line: number, message: string, key?: string): void;
  warning(line: number, message: string, key?: string): void;
}

/** Identity of the unit being finalized. */
export interface UnitIdentity {
  readonly name: string;
  readonly names: readonly string[];
  readonly template?: string;
  readonly instance?: string;
  readonly fragmentPath: string;
  readonly dropInPaths: readonly string[];
  readonly scope: ManagerScope;
  /** Line of the `[Service]` header in the fragment, or 1, for checks about the unit as a whole. */
  readonly serviceLine: number;
}

/**
 * Applies the defaults that depend on other settings and the consistency checks systemd makes after
 * loading (service.c `service_add_extras()` and `service_verify()`), then freezes the draft.
 */
export function finalizeService(draft: ServiceDraft, id: UnitIdentity, report: FinalizeReporter): ServiceUnitConfig {
  const s = draft.service;
  const line = id.serviceLine;
  const exec = s.exec;
  const type: ServiceType = s.type ?? (exec.ExecStart.length > 0 ? 'simple' : 'oneshot');

  if (exec.ExecStart.length === 0 && exec.ExecStop.length === 0) {
    report.error(line, 'Service has no ExecStart= and no ExecStop= setting. Refusing.');
  } else if (type !== 'oneshot' && exec.ExecStart.length === 0) {
    report.error(line, 'Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.');
  } else if (!s.remainAfterExit && exec.ExecStart.length === 0) {
    report.error(line, 'Service has no ExecStart= setting and does not have RemainAfterExit=yes. Refusing.');
  }
  if (type !== 'oneshot' && exec.ExecStart.length > 1) {
    report.error(exec.ExecStart[1]!.source.line, 'Service has more than one ExecStart= command, which is only allowed for Type=oneshot services. Refusing.', 'ExecStart');
  }
  if (type === 'oneshot' && (s.restart === 'always' || s.restart === 'on-success')) {
    report.error(line, `Service has Restart=${s.restart}, which is not allowed for Type=oneshot services. Refusing.`, 'Restart');
  }
  if (type === 'oneshot' && s.runtimeMaxMs !== Infinity) {
    report.warning(s.runtimeMaxLine ?? line, 'RuntimeMaxSec= has no effect in combination with Type=oneshot. Ignoring.', 'RuntimeMaxSec');
  }
  if (s.restartMaxDelayMs === Infinity && s.restartSteps > 0) report.warning(line, 'Service has RestartSteps= but no RestartMaxDelaySec= setting. Ignoring.', 'RestartSteps');
  if (s.restartMaxDelayMs !== Infinity && s.restartSteps === 0) report.warning(line, 'Service has RestartMaxDelaySec= but no RestartSteps= setting. Ignoring.', 'RestartMaxDelaySec');
  let restartMs = s.restartMs;
  if (s.restartMaxDelayMs < restartMs) {
    report.warning(line, 'RestartMaxDelaySec= is smaller than RestartSec=, lowering RestartSec= to RestartMaxDelaySec=.', 'RestartMaxDelaySec');
    restartMs = s.restartMaxDelayMs;
  }

  const timeoutStartMs = type === 'oneshot' && !s.timeoutStartSet ? Infinity : s.timeoutStartMs;
  const notifyAccess: NotifyAccess = s.notifyAccess === 'none' && (type === 'notify' || type === 'notify-reload' || s.watchdogMs > 0) ? 'main' : s.notifyAccess;
  const standardOutput: StandardOutput = s.standardOutput.type === 'inherit' ? { type: 'log' } : s.standardOutput;
  const workingDirectory: WorkingDirectory = s.workingDirectory ?? (id.scope === 'system' ? { type: 'path', path: '/', missingOk: false } : { type: 'home', missingOk: false });

  const service: ServiceSection = {
    type,
    remainAfterExit: s.remainAfterExit,
    guessMainPid: s.guessMainPid,
    ...(s.pidFile !== undefined ? { pidFile: s.pidFile } : {}),
    execCondition: exec.ExecCondition,
    execStartPre: exec.ExecStartPre,
    execStart: exec.ExecStart,
    execStartPost: exec.ExecStartPost,
    execReload: exec.ExecReload,
    execStop: exec.ExecStop,
    execStopPost: exec.ExecStopPost,
    restart: s.restart,
    restartMs,
    restartSteps: s.restartSteps,
    restartMaxDelayMs: s.restartMaxDelayMs,
    restartPreventExitStatus: sortedStatus(s.restartPreventExitStatus),
    restartForceExitStatus: sortedStatus(s.restartForceExitStatus),
    successExitStatus: sortedStatus(s.successExitStatus),
    timeoutStartMs,
    timeoutStopMs: s.timeoutStopMs,
    timeoutAbortMs: s.timeoutAbortMs ?? s.timeoutStopMs,
    timeoutStartFailureMode: s.timeoutStartFailureMode,
    timeoutStopFailureMode: s.timeoutStopFailureMode,
    runtimeMaxMs: s.runtimeMaxMs,
    watchdogMs: s.watchdogMs,
    notifyAccess,
    killMode: s.killMode,
    killSignal: s.killSignal,
    restartKillSignal: s.restartKillSignal ?? s.killSignal,
    finalKillSignal: s.finalKillSignal,
    watchdogSignal: s.watchdogSignal,
    reloadSignal: s.reloadSignal,
    sendSigkill: s.sendSigkill,
    sendSighup: s.sendSighup,
    environment: s.environment,
    environmentFiles: s.environmentFiles,
    unsetEnvironment: s.unsetEnvironment,
    passEnvironment: s.passEnvironment,
    workingDirectory,
    ...(s.user !== undefined ? { user: s.user } : {}),
    ...(s.group !== undefined ? { group: s.group } : {}),
    supplementaryGroups: s.supplementaryGroups,
    umask: s.umask,
    standardInput: s.standardInput,
    standardOutput,
    standardError: s.standardError,
    ...(s.syslogIdentifier !== undefined ? { syslogIdentifier: s.syslogIdentifier } : {}),
    limits: s.limits,
    memoryMax: s.memoryMax,
    ...(s.cpuQuotaPercent !== undefined ? { cpuQuotaPercent: s.cpuQuotaPercent } : {}),
    ...(s.tasksMax !== undefined ? { tasksMax: s.tasksMax } : {}),
  };
  const install: InstallSection = {
    wantedBy: draft.install.wantedBy,
    requiredBy: draft.install.requiredBy,
    upheldBy: draft.install.upheldBy,
    alias: draft.install.alias,
    also: draft.install.also,
    ...(draft.install.defaultInstance !== undefined ? { defaultInstance: draft.install.defaultInstance } : {}),
  };
  return {
    name: id.name,
    names: id.names,
    ...(id.template !== undefined ? { template: id.template } : {}),
    ...(id.instance !== undefined ? { instance: id.instance } : {}),
    fragmentPath: id.fragmentPath,
    dropInPaths: id.dropInPaths,
    unit: { ...draft.unit },
    service,
    install,
  };
}
