/**
 * What each `Key=` of a service unit means: one handler per directive that parses the value and
 * updates the {@link ServiceDraft}. A value that cannot be parsed is an error at its line and leaves the
 * setting as it was; keys systemd knows but holdfast does not implement are warnings.
 */

import type { DiagnosticSink } from './diagnostics.js';
import { isValidEnvName } from './env-expand.js';
import { parseExecLine } from './exec-line.js';
import { SYSTEMD_KEYS } from './known-keys.js';
import type { Assignment } from './lexer.js';
import type { ExecKey, KillMode, NotifyAccess, PathConditionKind, RestartPolicy, ServiceDraft, ServiceType, StandardOutput, TimeoutFailureMode } from './service-config.js';
import { expandSpecifiers, type SpecifierContext, type SpecifierSet } from './specifiers.js';
import { isValidInstance, parseUnitName } from './unit-name.js';
import {
  checkPath,
  parseBoolean,
  parseExitStatus,
  parsePercent,
  parseRlimit,
  parseSignal,
  parseSize,
  parseTimeSpan,
  parseUnsigned,
  parseMode,
  RLIMIT_NAMES,
  type RlimitName,
  type ValueResult,
} from './values.js';
import { splitWords, type ExtractOptions } from './words.js';

/** The state a directive handler works with. */
export interface DirectiveContext {
  readonly draft: ServiceDraft;
  readonly spec: SpecifierContext;
  readonly sink: DiagnosticSink;
  readonly assignment: Assignment;
}

type Handler = (ctx: DirectiveContext, value: string) => void;

/** The sections a service unit may have. */
export const SERVICE_SECTIONS = ['Unit', 'Service', 'Install'] as const;
type SectionName = (typeof SERVICE_SECTIONS)[number];

// ---------------------------------------------------------------------------------------------
// Helpers shared by the handlers

function invalid(ctx: DirectiveContext, why: string): void {
  const { key, line } = ctx.assignment;
  ctx.sink.error(line, `Invalid ${key}=: ${why}`, key);
}

function expand(ctx: DirectiveContext, text: string, set: SpecifierSet = 'full'): string | undefined {
  const r = expandSpecifiers(text, ctx.spec, set);
  if (r.ok) return r.value;
  const { key, line } = ctx.assignment;
  ctx.sink.error(line, `${key}=: ${r.error}`, key);
  return undefined;
}

/** Splits a value into words; reports and returns undefined on bad quoting or escapes. */
function words(ctx: DirectiveContext, value: string, options: ExtractOptions): string[] | undefined {
  const r = splitWords(value, options);
  if (r.error !== undefined) {
    invalid(ctx, r.error === 'quote' ? 'unbalanced quoting' : r.error === 'escape' ? 'unknown escape sequence' : 'trailing backslash');
    return undefined;
  }
  if (r.invalidUtf8) invalid(ctx, 'an escape sequence produces invalid UTF-8');
  return r.invalidUtf8 ? undefined : r.words;
}

function value<T>(ctx: DirectiveContext, r: ValueResult<T>, set: (v: T) => void): void {
  if (r.ok) set(r.value);
  else invalid(ctx, r.error);
}

function enumOf<T extends string>(allowed: readonly T[], set: (d: ServiceDraft, v: T, ctx: DirectiveContext) => void): Handler {
  return (ctx, v) => {
    if ((allowed as readonly string[]).includes(v)) set(ctx.draft, v as T, ctx);
    else invalid(ctx, `'${v}' is not one of ${allowed.join(', ')}`);
  };
}

const bool = (set: (d: ServiceDraft, v: boolean) => void): Handler => (ctx, v) => value(ctx, parseBoolean(v), (b) => set(ctx.draft, b));
const time = (set: (d: ServiceDraft, ms: number, ctx: DirectiveContext) => void): Handler => (ctx, v) => value(ctx, parseTimeSpan(v), (ms) => set(ctx.draft, ms, ctx));
/** Timeouts where 0 historically meant "no timeout". */
const timeFix0 = (set: (d: ServiceDraft, ms: number) => void): Handler => (ctx, v) => value(ctx, parseTimeSpan(v), (ms) => set(ctx.draft, ms === 0 ? Infinity : ms));
const unsigned = (set: (d: ServiceDraft, n: number) => void): Handler => (ctx, v) => value(ctx, parseUnsigned(v), (n) => set(ctx.draft, n));
const signal = (set: (d: ServiceDraft, n: number) => void): Handler => (ctx, v) => value(ctx, parseSignal(v), (n) => set(ctx.draft, n));

function pushUnique(list: string[], item: string): void {
  if (!list.includes(item)) list.push(item);
}

/** A list of unit names (dependencies, [Install]); names that cannot be units are errors. */
function unitNames(pick: (d: ServiceDraft) => string[], options: { resetOnEmpty: boolean; allowTemplate?: boolean; check?: (ctx: DirectiveContext, name: string) => boolean }): Handler {
  return (ctx, v) => {
    const list = pick(ctx.draft);
    if (v === '') {
      if (options.resetOnEmpty) list.length = 0;
      return;
    }
    const ws = words(ctx, v, { retainEscape: true });
    if (ws === undefined) return;
    for (const w of ws) {
      const name = expand(ctx, w, 'name');
      if (name === undefined) continue;
      const parts = parseUnitName(name);
      if (parts === undefined || (parts.kind === 'template' && options.allowTemplate !== true)) {
        invalid(ctx, `'${name}' is not a valid unit name`);
        continue;
      }
      if (options.check !== undefined && !options.check(ctx, name)) continue;
      pushUnique(list, name);
    }
  };
}

function pathCondition(kind: PathConditionKind, which: 'conditions' | 'asserts'): Handler {
  return (ctx, v) => {
    const list = ctx.draft.unit[which];
    if (v === '') {
      list.length = 0;
      return;
    }
    let rest = v;
    const trigger = rest.startsWith('|');
    if (trigger) rest = rest.slice(1);
    const negate = rest.startsWith('!');
    if (negate) rest = rest.slice(1);
    const p = expand(ctx, rest);
    if (p === undefined) return;
    value(ctx, checkPath(p), (path) => list.push({ kind, path, negate, trigger }));
  };
}

function execHandler(key: ExecKey): Handler {
  return (ctx, v) => {
    const cmds = parseExecLine(v, key, ctx.assignment.line, ctx.spec, ctx.sink);
    if (cmds === null) ctx.draft.service.exec[key] = [];
    else ctx.draft.service.exec[key].push(...cmds);
  };
}

function exitStatusSet(pick: (d: ServiceDraft) => { codes: Set<number>; signals: Set<number> }): Handler {
  return (ctx, v) => {
    const set = pick(ctx.draft);
    if (v === '') {
      set.codes.clear();
      set.signals.clear();
      return;
    }
    const ws = words(ctx, v, {});
    if (ws === undefined) return;
    for (const w of ws) {
      // Numbers are exit statuses, never signals, as in systemd.
      const code = parseExitStatus(w);
      if (code.ok) {
        set.codes.add(code.value);
        continue;
      }
      const sig = parseSignal(w);
      if (sig.ok) set.signals.add(sig.value);
      else invalid(ctx, `'${w}' is neither an exit status nor a signal`);
    }
  };
}

function userOrGroupName(name: string): boolean {
  if (name === '') return false;
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n < 0xffffffff && n !== 0xffff; // 65535 and 2^32-1 are not valid ids
  }
  if (name.startsWith(' ') || name.endsWith(' ')) return false;
  if (/[\x00-\x1f\x7f:/]/.test(name)) return false;
  if (/^-\d+$/.test(name)) return false;
  return name !== '.' && name !== '..';
}

function userHandler(set: (d: ServiceDraft, v: string | undefined) => void): Handler {
  return (ctx, v) => {
    if (v === '') return set(ctx.draft, undefined);
    const name = expand(ctx, v);
    if (name === undefined) return;
    if (!userOrGroupName(name)) return invalid(ctx, `'${name}' is not a valid user or group name or numeric id`);
    set(ctx.draft, name);
  };
}

function outputHandler(which: 'standardOutput' | 'standardError'): Handler {
  return (ctx, v) => {
    const s = ctx.draft.service;
    const setTo = (o: StandardOutput | { type: 'inherit' }) => {
      if (which === 'standardOutput') s.standardOutput = o;
      else s.standardError = o;
    };
    const fileMode = /^(file|append|truncate):(.*)$/s.exec(v);
    if (fileMode) {
      const p = expand(ctx, fileMode[2]!);
      if (p === undefined) return;
      return value(ctx, checkPath(p), (path) => setTo({ type: fileMode[1] as 'file' | 'append' | 'truncate', path }));
    }
    switch (v) {
      case 'inherit':
        return setTo({ type: 'inherit' });
      case 'null':
        return setTo({ type: 'null' });
      case 'journal':
      case 'kmsg':
      case 'journal+console':
      case 'kmsg+console':
        return setTo({ type: 'log' });
      case 'syslog':
      case 'syslog+console':
        ctx.sink.notice(ctx.assignment.line, `${ctx.assignment.key}=${v} is obsolete; it is the same as journal, holdfast's log.`, ctx.assignment.key);
        return setTo({ type: 'log' });
      case 'tty':
      case 'socket':
        ctx.sink.warning(ctx.assignment.line, `${ctx.assignment.key}=${v} is not supported by holdfast; using its log instead.`, ctx.assignment.key);
        return setTo({ type: 'log' });
      default:
        if (v.startsWith('fd:')) {
          ctx.sink.warning(ctx.assignment.line, `${ctx.assignment.key}=fd: is not supported by holdfast; using its log instead.`, ctx.assignment.key);
          return setTo({ type: 'log' });
        }
        return invalid(ctx, `'${v}' is not an output setting`);
    }
  };
}

function limitHandler(name: RlimitName): Handler {
  return (ctx, v) => value(ctx, parseRlimit(name, v), (l) => (ctx.draft.service.limits[name] = l));
}

// ---------------------------------------------------------------------------------------------
// [Unit]

const PATH_CONDITIONS: readonly PathConditionKind[] = [
  'PathExists', 'PathExistsGlob', 'PathIsDirectory', 'PathIsSymbolicLink', 'PathIsMountPoint', 'PathIsReadWrite', 'DirectoryNotEmpty', 'FileNotEmpty', 'FileIsExecutable',
];

const DOC_URL = /^(https?:\/\/|file:|info:|man:)[\x21-\x7e]*$/;

const UNIT: Record<string, Handler> = {
  Description: (ctx, v) => {
    const d = expand(ctx, v);
    if (d !== undefined) ctx.draft.unit.description = d;
  },
  Documentation: (ctx, v) => {
    if (v === '') return void (ctx.draft.unit.documentation.length = 0);
    const ws = words(ctx, v, { unquote: true });
    for (const w of ws ?? []) {
      const url = expand(ctx, w);
      if (url === undefined) continue;
      if (DOC_URL.test(url)) pushUnique(ctx.draft.unit.documentation, url);
      else ctx.sink.warning(ctx.assignment.line, `Invalid URL in Documentation=, ignoring: ${url}`, 'Documentation');
    }
  },
  Requires: unitNames((d) => d.unit.requires, { resetOnEmpty: false }),
  Requisite: unitNames((d) => d.unit.requisite, { resetOnEmpty: false }),
  Wants: unitNames((d) => d.unit.wants, { resetOnEmpty: false }),
  BindsTo: unitNames((d) => d.unit.bindsTo, { resetOnEmpty: false }),
  BindTo: unitNames((d) => d.unit.bindsTo, { resetOnEmpty: false }),
  PartOf: unitNames((d) => d.unit.partOf, { resetOnEmpty: false }),
  Upholds: unitNames((d) => d.unit.upholds, { resetOnEmpty: false }),
  Conflicts: unitNames((d) => d.unit.conflicts, { resetOnEmpty: false }),
  Before: unitNames((d) => d.unit.before, { resetOnEmpty: false }),
  After: unitNames((d) => d.unit.after, { resetOnEmpty: false }),
  OnFailure: unitNames((d) => d.unit.onFailure, { resetOnEmpty: false }),
  OnSuccess: unitNames((d) => d.unit.onSuccess, { resetOnEmpty: false }),
  StartLimitIntervalSec: time((d, ms) => (d.unit.startLimitIntervalMs = ms)),
  StartLimitInterval: time((d, ms) => (d.unit.startLimitIntervalMs = ms)),
  StartLimitBurst: unsigned((d, n) => (d.unit.startLimitBurst = n)),
  DefaultDependencies: bool((d, b) => (d.unit.defaultDependencies = b)),
  StopWhenUnneeded: bool((d, b) => (d.unit.stopWhenUnneeded = b)),
  RefuseManualStart: bool((d, b) => (d.unit.refuseManualStart = b)),
  RefuseManualStop: bool((d, b) => (d.unit.refuseManualStop = b)),
};
for (const kind of PATH_CONDITIONS) {
  UNIT[`Condition${kind}`] = pathCondition(kind, 'conditions');
  UNIT[`Assert${kind}`] = pathCondition(kind, 'asserts');
}

// ---------------------------------------------------------------------------------------------
// [Service]

const SERVICE_TYPES: readonly string[] = ['simple', 'exec', 'forking', 'oneshot', 'notify', 'notify-reload', 'dbus', 'idle'];
const RESTART: readonly RestartPolicy[] = ['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always'];
const NOTIFY: readonly NotifyAccess[] = ['none', 'main', 'exec', 'all'];
const KILL_MODES: readonly KillMode[] = ['control-group', 'mixed', 'process', 'none'];
const FAILURE_MODES: readonly TimeoutFailureMode[] = ['terminate', 'abort', 'kill'];
const NON_API_VFS = ['/proc', '/sys', '/dev'];

const SERVICE: Record<string, Handler> = {
  Type: (ctx, v) => {
    if (!SERVICE_TYPES.includes(v)) return invalid(ctx, `'${v}' is not one of simple, exec, forking, oneshot, notify, notify-reload`);
    const line = ctx.assignment.line;
    if (v === 'dbus') return ctx.sink.error(line, 'Type=dbus is not supported by holdfast (it does not watch D-Bus names); use Type=notify or Type=exec.', 'Type');
    if (v === 'idle') ctx.sink.warning(line, 'Type=idle is treated as Type=simple by holdfast (it has no console to keep quiet).', 'Type');
    ctx.draft.service.type = v === 'idle' ? 'simple' : (v as ServiceType);
    ctx.draft.service.typeLine = line;
  },
  RemainAfterExit: bool((d, b) => (d.service.remainAfterExit = b)),
  GuessMainPID: bool((d, b) => (d.service.guessMainPid = b)),
  PIDFile: (ctx, v) => {
    const s = ctx.draft.service;
    if (v === '') return void delete s.pidFile;
    const p = expand(ctx, v);
    if (p === undefined) return;
    const absolute = p.startsWith('/') ? p : `${ctx.spec.dirs.runtime}/${p}`;
    const checked = checkPath(absolute);
    if (!checked.ok) return invalid(ctx, checked.error);
    let result = checked.value;
    if (NON_API_VFS.some((d) => result === d || result.startsWith(d + '/'))) return invalid(ctx, `'${result}' is below an API file system`);
    if (result.startsWith('/var/run/')) {
      const updated = '/run/' + result.slice('/var/run/'.length);
      ctx.sink.notice(ctx.assignment.line, `PIDFile= references a path below legacy directory /var/run/, updating ${result} → ${updated}; please update the unit file accordingly.`, 'PIDFile');
      result = updated;
    }
    s.pidFile = result;
  },
  Restart: enumOf(RESTART, (d, v) => (d.service.restart = v)),
  RestartSec: time((d, ms) => (d.service.restartMs = ms)),
  RestartSteps: unsigned((d, n) => (d.service.restartSteps = n)),
  RestartMaxDelaySec: time((d, ms) => (d.service.restartMaxDelayMs = ms)),
  RestartPreventExitStatus: exitStatusSet((d) => d.service.restartPreventExitStatus),
  RestartForceExitStatus: exitStatusSet((d) => d.service.restartForceExitStatus),
  SuccessExitStatus: exitStatusSet((d) => d.service.successExitStatus),
  TimeoutSec: timeFix0((d, ms) => {
    d.service.timeoutStartMs = ms;
    d.service.timeoutStartSet = true;
    d.service.timeoutStopMs = ms;
  }),
  TimeoutStartSec: timeFix0((d, ms) => {
    d.service.timeoutStartMs = ms;
    d.service.timeoutStartSet = true;
  }),
  TimeoutStopSec: timeFix0((d, ms) => (d.service.timeoutStopMs = ms)),
  TimeoutAbortSec: (ctx, v) => {
    if (v === '') return void delete ctx.draft.service.timeoutAbortMs;
    value(ctx, parseTimeSpan(v), (ms) => (ctx.draft.service.timeoutAbortMs = ms));
  },
  TimeoutStartFailureMode: enumOf(FAILURE_MODES, (d, v) => (d.service.timeoutStartFailureMode = v)),
  TimeoutStopFailureMode: enumOf(FAILURE_MODES, (d, v) => (d.service.timeoutStopFailureMode = v)),
  RuntimeMaxSec: time((d, ms, ctx) => {
    d.service.runtimeMaxMs = ms;
    d.service.runtimeMaxLine = ctx.assignment.line;
  }),
  WatchdogSec: time((d, ms) => (d.service.watchdogMs = ms)),
  NotifyAccess: enumOf(NOTIFY, (d, v) => (d.service.notifyAccess = v)),
  KillMode: enumOf(KILL_MODES, (d, v, ctx) => {
    if (v === 'none') ctx.sink.warning(ctx.assignment.line, 'KillMode=none is unsafe: processes left behind by the service are not stopped. Consider KillMode=mixed or control-group.', 'KillMode');
    d.service.killMode = v;
  }),
  KillSignal: signal((d, n) => (d.service.killSignal = n)),
  RestartKillSignal: signal((d, n) => (d.service.restartKillSignal = n)),
  FinalKillSignal: signal((d, n) => (d.service.finalKillSignal = n)),
  WatchdogSignal: signal((d, n) => (d.service.watchdogSignal = n)),
  ReloadSignal: signal((d, n) => (d.service.reloadSignal = n)),
  SendSIGKILL: bool((d, b) => (d.service.sendSigkill = b)),
  SendSIGHUP: bool((d, b) => (d.service.sendSighup = b)),
  Environment: (ctx, v) => {
    const env = ctx.draft.service.environment;
    if (v === '') {
      for (const k of Object.keys(env)) delete env[k];
      return;
    }
    const ws = words(ctx, v, { unquote: true, cunescape: true });
    for (const w of ws ?? []) {
      const assignment = expand(ctx, w);
      if (assignment === undefined) continue;
      const eq = assignment.indexOf('=');
      if (eq <= 0 || !isValidEnvName(assignment.slice(0, eq))) {
        invalid(ctx, `'${assignment}' is not a NAME=VALUE assignment with a valid name`);
        continue;
      }
      const name = assignment.slice(0, eq);
      delete env[name];
      env[name] = assignment.slice(eq + 1);
    }
  },
  EnvironmentFile: (ctx, v) => {
    const files = ctx.draft.service.environmentFiles;
    if (v === '') return void (files.length = 0);
    const p = expand(ctx, v);
    if (p === undefined) return;
    const optional = p.startsWith('-');
    value(ctx, checkPath(optional ? p.slice(1) : p), (path) => files.push({ path, optional }));
  },
  UnsetEnvironment: (ctx, v) => {
    const list = ctx.draft.service.unsetEnvironment;
    if (v === '') return void (list.length = 0);
    for (const w of words(ctx, v, { unquote: true, cunescape: true }) ?? []) {
      const e = expand(ctx, w);
      if (e === undefined) continue;
      const eq = e.indexOf('=');
      if (!isValidEnvName(eq < 0 ? e : e.slice(0, eq))) invalid(ctx, `'${e}' is not a variable name or NAME=VALUE assignment`);
      else pushUnique(list, e);
    }
  },
  PassEnvironment: (ctx, v) => {
    const list = ctx.draft.service.passEnvironment;
    if (v === '') return void (list.length = 0);
    for (const w of words(ctx, v, { unquote: true }) ?? []) {
      const e = expand(ctx, w);
      if (e === undefined) continue;
      if (!isValidEnvName(e)) invalid(ctx, `'${e}' is not a valid variable name`);
      else pushUnique(list, e);
    }
  },
  WorkingDirectory: (ctx, v) => {
    const s = ctx.draft.service;
    if (v === '') return void delete s.workingDirectory;
    const missingOk = v.startsWith('-');
    const rest = missingOk ? v.slice(1) : v;
    if (rest === '~') return void (s.workingDirectory = { type: 'home', missingOk });
    const p = expand(ctx, rest);
    if (p === undefined) return;
    value(ctx, checkPath(p), (path) => (s.workingDirectory = { type: 'path', path, missingOk }));
  },
  User: userHandler((d, v) => (v === undefined ? delete d.service.user : (d.service.user = v))),
  Group: userHandler((d, v) => (v === undefined ? delete d.service.group : (d.service.group = v))),
  SupplementaryGroups: (ctx, v) => {
    const list = ctx.draft.service.supplementaryGroups;
    if (v === '') return void (list.length = 0);
    for (const w of words(ctx, v, {}) ?? []) {
      const g = expand(ctx, w);
      if (g === undefined) continue;
      if (!userOrGroupName(g)) invalid(ctx, `'${g}' is not a valid group name or numeric id`);
      else pushUnique(list, g);
    }
  },
  UMask: (ctx, v) => value(ctx, parseMode(v), (m) => (ctx.draft.service.umask = m)),
  StandardInput: (ctx, v) => {
    if (v === 'null') return void (ctx.draft.service.standardInput = { type: 'null' });
    if (v.startsWith('file:')) {
      const p = expand(ctx, v.slice(5));
      if (p === undefined) return;
      return value(ctx, checkPath(p), (path) => (ctx.draft.service.standardInput = { type: 'file', path }));
    }
    if (['tty', 'tty-force', 'tty-fail', 'socket', 'data'].includes(v) || v.startsWith('fd:')) {
      return ctx.sink.error(ctx.assignment.line, `StandardInput=${v} is not supported by holdfast; only null and file:PATH are.`, 'StandardInput');
    }
    invalid(ctx, `'${v}' is not an input setting`);
  },
  StandardOutput: outputHandler('standardOutput'),
  StandardError: outputHandler('standardError'),
  SyslogIdentifier: (ctx, v) => {
    const id = expand(ctx, v);
    if (id === undefined) return;
    if (id === '') delete ctx.draft.service.syslogIdentifier;
    else ctx.draft.service.syslogIdentifier = id;
  },
  MemoryMax: (ctx, v) => {
    const s = ctx.draft.service;
    if (v === '' || v === 'infinity') return void (s.memoryMax = Infinity);
    if (v.endsWith('%') || v.endsWith('‰') || v.endsWith('‱')) return value(ctx, parsePercent(v), (percent) => (s.memoryMax = { percent }));
    value(ctx, parseSize(v), (bytes) => (bytes > 0 ? (s.memoryMax = bytes) : invalid(ctx, 'the limit must be above 0')));
  },
  CPUQuota: (ctx, v) => {
    const s = ctx.draft.service;
    if (v === '') return void delete s.cpuQuotaPercent;
    value(ctx, parsePercent(v, Infinity), (p) => (p > 0 ? (s.cpuQuotaPercent = p) : invalid(ctx, 'the quota must be above 0%')));
  },
  TasksMax: (ctx, v) => {
    const s = ctx.draft.service;
    if (v === '') return void delete s.tasksMax;
    if (v === 'infinity') return void (s.tasksMax = Infinity);
    if (v.endsWith('%') || v.endsWith('‰') || v.endsWith('‱')) return value(ctx, parsePercent(v), (percent) => (s.tasksMax = { percent }));
    value(ctx, parseUnsigned(v, (1n << 64n) - 2n), (n) => (n > 0 ? (s.tasksMax = n) : invalid(ctx, 'the limit must be above 0')));
  },
  // Compatibility spellings that systemd still accepts in [Service].
  StartLimitInterval: time((d, ms) => (d.unit.startLimitIntervalMs = ms)),
  StartLimitBurst: unsigned((d, n) => (d.unit.startLimitBurst = n)),
};
for (const key of ['ExecCondition', 'ExecStartPre', 'ExecStart', 'ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost'] as const) SERVICE[key] = execHandler(key);
for (const name of RLIMIT_NAMES) SERVICE[`Limit${name}`] = limitHandler(name);

// ---------------------------------------------------------------------------------------------
// [Install]

const sameType = (ctx: DirectiveContext, name: string): boolean => {
  const own = parseUnitName(ctx.spec.unitName);
  const alias = parseUnitName(name);
  if (own !== undefined && alias !== undefined && alias.type !== own.type) {
    invalid(ctx, `alias '${name}' must have the same type as the unit (.${own.type})`);
    return false;
  }
  return true;
};

const INSTALL: Record<string, Handler> = {
  WantedBy: unitNames((d) => d.install.wantedBy, { resetOnEmpty: true }),
  RequiredBy: unitNames((d) => d.install.requiredBy, { resetOnEmpty: true }),
  UpheldBy: unitNames((d) => d.install.upheldBy, { resetOnEmpty: true }),
  Alias: unitNames((d) => d.install.alias, { resetOnEmpty: true, allowTemplate: true, check: sameType }),
  Also: unitNames((d) => d.install.also, { resetOnEmpty: true, allowTemplate: true }),
  DefaultInstance: (ctx, v) => {
    if (v === '') return void delete ctx.draft.install.defaultInstance;
    const i = expand(ctx, v, 'name');
    if (i === undefined) return;
    if (!isValidInstance(i)) return invalid(ctx, `'${i}' is not a valid instance name`);
    ctx.draft.install.defaultInstance = i;
  },
};

const TABLE: Readonly<Record<SectionName, Readonly<Record<string, Handler>>>> = { Unit: UNIT, Service: SERVICE, Install: INSTALL };

/** True when holdfast implements `section`/`key` for service units. */
export function isSupportedKey(section: string, key: string): boolean {
  const t = (TABLE as Record<string, Record<string, Handler>>)[section];
  return t !== undefined && Object.hasOwn(t, key);
}

/**
 * Applies one assignment to the draft. Unknown keys and keys holdfast does not implement are
 * warnings (`X-` keys are silently ignored, as in systemd).
 */
export function applyAssignment(ctx: DirectiveContext): void {
  const { section, key, line } = ctx.assignment;
  const table = (TABLE as Record<string, Record<string, Handler>>)[section];
  if (table === undefined) return;
  const handler = Object.hasOwn(table, key) ? table[key] : undefined;
  if (handler !== undefined) {
    handler(ctx, ctx.assignment.value);
    return;
  }
  if (key.startsWith('X-')) return;
  if ((SYSTEMD_KEYS as Record<string, readonly string[]>)[section]?.includes(key)) {
    ctx.sink.warning(line, `${key}= is not supported by holdfast, ignoring.`, key);
  } else {
    ctx.sink.warning(line, `Unknown key '${key}' in section [${section}], ignoring.`, key);
  }
}
