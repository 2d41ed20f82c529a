/**
 * What a spawned process gets besides its command line: the account it runs as, its working
 * directory, limits, and its environment (spec section 2): the base variables, the protocol ones
 * the machine decided on, Environment=, EnvironmentFile= (read at each spawn, as systemd reads it
 * just before exec), PassEnvironment= and UnsetEnvironment=.
 */
import { homedir } from 'node:os';
import { loadEnvironmentFiles, type EnvironmentFileRef, type ServiceSection } from '../../unit/index.js';
import type { SpawnRequest as CommandSpawn } from '../spawner.js';
import { RLIMIT_RESOURCES } from '../rlimits.js';
import { groupsOf, lookupGroup, lookupUser, type Account } from '../users.js';
import type { SpawnRequest } from './ports.js';

/** What the manager itself contributes to every spawn. */
export interface SpawnContext {
  /** The manager's PID and pidfd id, for MANAGERPID=/MANAGERPIDFDID=. */
  readonly manager: { readonly pid: number; readonly pidfdId: bigint | undefined };
  /** The notify socket's path, when the daemon has one. */
  readonly notifySocket: string | undefined;
}

/** The spawn, decided: everything but the fds and the cgroup. */
export type SpawnPlan = Omit<CommandSpawn, 'fds' | 'cgroupFd'>;

/** Why a spawn cannot happen: systemd's exit code for the step, and the unit's result. */
export interface SpawnRefusal {
  readonly exitCode: number;
  readonly result: 'exit-code' | 'resources';
  readonly message: string;
}

const UNLIMITED = 2n ** 64n - 1n;

/** Variables of the daemon's own environment every service starts from. */
const INHERITED = ['LANG', 'LC_ALL', 'TZ', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'XDG_RUNTIME_DIR', 'TERM', 'HOLDFAST_UNITS_DIR'];

/** The environment every spawned process starts from (PATH, LANG, …). */
export function baseEnvironment(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const key of INHERITED) {
    const value = process.env[key];
    // A root daemon's TERM is the console's, not the service's business.
    if (value !== undefined && (key !== 'TERM' || process.getuid?.() !== 0)) env[key] = value;
  }
  return env;
}

/** Decides the spawn, or says why it cannot happen (an unknown user, a missing EnvironmentFile=). */
export function planSpawn(request: SpawnRequest, context: SpawnContext): SpawnPlan | SpawnRefusal {
  const s = request.config.service;
  const switchUser = !request.command.fullPrivileges && !request.command.noSetuid;
  const env = baseEnvironment();
  let account: Account | undefined;
  let gid: number | undefined;
  let groups: number[] | undefined;
  try {
    if (s.user !== undefined) {
      account = lookupUser(s.user);
      Object.assign(env, { USER: account.name, LOGNAME: account.name, HOME: account.home, SHELL: account.shell });
      if (switchUser) {
        gid = s.group !== undefined ? lookupGroup(s.group) : account.gid;
        groups = [...new Set([...groupsOf(account), ...s.supplementaryGroups.map(lookupGroup)])];
      }
    } else if (s.group !== undefined && switchUser) {
      gid = lookupGroup(s.group);
    }
  } catch (error) {
    return { exitCode: 217, result: 'exit-code', message: (error as Error).message };
  }
  const files = readEnvironmentFiles(s.environmentFiles);
  // Nothing is spawned, so there is no exit code; the machine records none for `resources`.
  if ('error' in files) return { exitCode: 0, result: 'resources', message: files.error };
  addProtocolVariables(env, request, context);
  Object.assign(env, s.environment, files.env);
  for (const name of s.passEnvironment) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  for (const entry of s.unsetEnvironment) {
    const eq = entry.indexOf('=');
    if (eq < 0) delete env[entry];
    else if (env[entry.slice(0, eq)] === entry.slice(eq + 1)) delete env[entry.slice(0, eq)];
  }
  return {
    command: request.command,
    env,
    cwd: workingDirectory(s, account),
    cwdOptional: s.workingDirectory.missingOk,
    ...(switchUser && account !== undefined ? { uid: account.uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ...(groups !== undefined ? { groups } : {}),
    umask: s.umask,
    ...(account !== undefined ? { shell: account.shell } : {}),
    rlimits: Object.entries(s.limits).map(([name, limit]) => [
      RLIMIT_RESOURCES[name]!,
      limit!.soft === Infinity ? UNLIMITED : limit!.soft,
      limit!.hard === Infinity ? UNLIMITED : limit!.hard,
    ]),
    watchdogEnv: request.kind === 'main' && request.env.watchdogUsec > 0,
  };
}

/** Whether the plan is a refusal. */
export function isRefusal(plan: SpawnPlan | SpawnRefusal): plan is SpawnRefusal {
  return 'exitCode' in plan;
}

function addProtocolVariables(env: Record<string, string>, request: SpawnRequest, context: SpawnContext): void {
  const protocol = request.env;
  env['INVOCATION_ID'] = protocol.invocationId;
  env['MANAGERPID'] = String(context.manager.pid);
  if (context.manager.pidfdId !== undefined) env['MANAGERPIDFDID'] = String(context.manager.pidfdId);
  if (protocol.mainPid && request.main !== undefined) {
    env['MAINPID'] = String(request.main.pid);
    if (request.main.pidfdId !== null) env['MAINPIDFDID'] = request.main.pidfdId;
  }
  if (protocol.notify && context.notifySocket !== undefined) env['NOTIFY_SOCKET'] = context.notifySocket;
  if (request.kind === 'main' && protocol.watchdogUsec > 0) env['WATCHDOG_USEC'] = String(Math.round(protocol.watchdogUsec));
  if (protocol.exitInfo !== undefined) {
    const { result, lastExit } = protocol.exitInfo;
    env['SERVICE_RESULT'] = result;
    if (lastExit !== null) {
      env['EXIT_CODE'] = lastExit.code !== null ? 'exited' : 'killed';
      env['EXIT_STATUS'] = lastExit.code !== null ? String(lastExit.code) : (lastExit.signal ?? '').replace(/^SIG/, '');
    }
  }
}

function workingDirectory(s: ServiceSection, account: Account | undefined): string {
  return s.workingDirectory.type === 'home' ? (account?.home ?? homedir()) : s.workingDirectory.path;
}

/** EnvironmentFile= entries, read now and merged in order; a missing required one is an error. */
export function readEnvironmentFiles(refs: readonly EnvironmentFileRef[]): { env: Record<string, string> } | { error: string } {
  const read = loadEnvironmentFiles(refs);
  return read.error === undefined ? { env: read.env } : { error: `EnvironmentFile=${read.error.path}: ${read.error.message}` };
}
