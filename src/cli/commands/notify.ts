import { fstatSync, lstatSync, readFileSync } from 'node:fs';
import { Pidfd } from '../../pidfd/pidfd.js';
import { hasCode } from '../../pidfd/errors.js';
import { barrier } from '../../service/barrier.js';
import { managerProcess } from '../../service/manager.js';
import { checkFdName, monotonicUsec, notify } from '../../service/notify.js';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { formatError } from '../output.js';

const usage = `Usage: holdfast notify [OPTIONS...] [VARIABLE=VALUE...]

Notify the service manager (holdfast or systemd) about service status updates, over
$NOTIFY_SOCKET. A drop-in for systemd-notify(1): the same options, message and exit codes.

  --ready           Start-up (or a reload) is complete: READY=1
  --reloading       A reload has begun: RELOADING=1 and MONOTONIC_USEC=
  --stopping        The service is shutting down: STOPPING=1
  --status=TEXT     Set the status text: STATUS=TEXT
  --pid[=PID]       Set the main PID: MAINPID= with MAINPIDFDID= (the pidfd id of that process,
                    read after opening it). PID may be a number, 'self', 'parent' (refused if the
                    parent is the service manager or PID 1) or 'auto' (the default without a
                    value: the parent, unless it is the manager or PID 1, else this process)
  --uid=USER        Send with this user's credentials (name or number; root only)
  --fd=N            Pass file descriptor N to the manager's fd store (FDSTORE=1); repeatable
  --fdname=NAME     Name for the passed fds (FDNAME=NAME)
  --no-block        Do not wait until the manager has processed the message
  --booted          Exit 0 if the system was booted with systemd, 1 otherwise
  --version         Show the version

VARIABLE=VALUE arguments are sent as given after the ones the options make; a variable given twice
takes the later value. Values may not contain newlines.

Unless --pid is given, the message is sent on behalf of the parent process (the service that ran
this command), as systemd-notify does; that needs root, otherwise it goes with our own credentials.
Then it waits (up to 5 s) until the manager has processed it (BARRIER=1), unless --no-block.

Exit codes: 0 sent; 1 anything else, including no $NOTIFY_SOCKET and bad usage (as systemd-notify).`;

type ArgKind = 'none' | 'required' | 'optional';
const OPTIONS: Record<string, ArgKind> = {
  help: 'none',
  version: 'none',
  ready: 'none',
  reloading: 'none',
  stopping: 'none',
  pid: 'optional',
  status: 'required',
  booted: 'none',
  uid: 'required',
  'no-block': 'none',
  fd: 'required',
  fdname: 'required',
};

interface Parsed {
  options: { name: string; value: string | undefined }[];
  positionals: string[];
}

/** getopt_long as systemd-notify uses it: `--opt=value`, `--opt value` for required arguments, unique prefixes, `--`. */
function parse(args: string[]): Parsed {
  const parsed: Parsed = { options: [], positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      parsed.positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      parsed.options.push({ name: 'help', value: undefined });
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`invalid option -- '${arg.slice(1)}'`, 1);
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const given = arg.slice(2, eq < 0 ? undefined : eq);
    let name = given in OPTIONS ? given : undefined;
    if (name === undefined) {
      const candidates = Object.keys(OPTIONS).filter((option) => option.startsWith(given));
      if (candidates.length === 1) name = candidates[0];
      else if (candidates.length > 1) throw new UsageError(`option '--${given}' is ambiguous; possibilities: ${candidates.map((c) => `'--${c}'`).join(' ')}`, 1);
      else throw new UsageError(`unrecognized option '--${given}'`, 1);
    }
    const kind = OPTIONS[name!]!;
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (kind === 'none' && value !== undefined) throw new UsageError(`option '--${name}' doesn't allow an argument`, 1);
    if (kind === 'required' && value === undefined) {
      value = args[++i];
      if (value === undefined) throw new UsageError(`option '--${name}' requires an argument`, 1);
    }
    parsed.options.push({ name: name!, value });
  }
  return parsed;
}

/** Our parent, opened race-free: re-read the parent PID after opening, in case we were re-parented meanwhile. */
function openParent(): Pidfd {
  for (;;) {
    const ppid = process.ppid;
    if (ppid <= 0) throw Object.assign(new Error('this process has no parent in its PID namespace'), { code: 'ESRCH' });
    const handle = Pidfd.open(ppid);
    if (process.ppid === ppid) return handle;
    handle.close();
  }
}

/** The verified manager, or null; a bad or stale $MANAGERPID counts as none, with a warning for a bad one (as systemd-notify). */
function managerOrNull(): Pidfd | null {
  try {
    return managerProcess();
  } catch (error) {
    if (!hasCode(error, 'ESTALE')) process.stderr.write(`holdfast notify: warning: ignoring $MANAGERPID: ${formatError(error)}\n`);
    return null;
  }
}

function sameProcess(a: Pidfd, b: Pidfd): boolean {
  if (a.pid !== b.pid) return false;
  return a.id === undefined || b.id === undefined || a.id === b.id;
}

/** Why the parent must not be named, or undefined if it may. */
function parentIsManager(parent: Pidfd): string | undefined {
  if (parent.pid === 1) return 'it is PID 1';
  const manager = managerOrNull();
  if (manager === null) return undefined;
  try {
    return sameProcess(parent, manager) ? 'it is the service manager ($MANAGERPID)' : undefined;
  } finally {
    manager.close();
  }
}

/** systemd-notify's --pid=auto and default sender: the parent, unless it is the manager or PID 1; then ourselves. */
function parentIfApplicable(): Pidfd {
  const parent = openParent();
  if (parentIsManager(parent) === undefined) return parent;
  parent.close();
  return Pidfd.self();
}

function resolvePid(value: string | undefined): Pidfd {
  try {
    if (value === undefined || value === '' || value === 'auto') return parentIfApplicable();
    if (value === 'self') return Pidfd.self();
    if (value === 'parent') {
      const parent = openParent();
      const why = parentIsManager(parent);
      if (why !== undefined) {
        parent.close();
        throw new UsageError(`--pid=parent: refusing to name the parent process ${parent.pid} as the main process: ${why}`, 1);
      }
      return parent;
    }
    if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`Failed to parse PID ${value}.`, 1);
    return Pidfd.open(Number(value));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`Failed to refer to --pid='${value ?? ''}': ${formatError(error)}`, 1);
  }
}

/** A user name or number: [uid, gid] (the gid only for a name found in /etc/passwd). */
function resolveUser(user: string): [number, number | undefined] {
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    // No passwd file: only numbers work.
  }
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user && fields.length >= 4) return [Number(fields[2]), Number(fields[3])];
  }
  if (/^\d+$/.test(user) && Number(user) < 0xffffffff) return [Number(user), undefined];
  throw new UsageError(`Can't resolve user ${user}: no such user`, 1);
}

function keyOf(assignment: string): string {
  const eq = assignment.indexOf('=');
  return eq < 0 ? assignment : assignment.slice(0, eq);
}

/** strv_env_merge: later assignments replace earlier ones of the same variable, in place. */
function merge(ours: string[], given: string[]): string[] {
  const merged = [...ours];
  for (const assignment of given) {
    const index = merged.findIndex((existing) => keyOf(existing) === keyOf(assignment));
    if (index >= 0) merged[index] = assignment;
    else merged.push(assignment);
  }
  return merged;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `holdfast ${pkg.version}`;
}

function isBooted(): boolean {
  try {
    lstatSync('/run/systemd/system/');
    return true;
  } catch {
    return false;
  }
}

async function run(args: string[]): Promise<number> {
  const { options, positionals } = parse(args);
  let ready = false;
  let reloading = false;
  let stopping = false;
  let booted = false;
  let noBlock = false;
  let status: string | undefined;
  let pidHandle: Pidfd | undefined;
  let uid: number | undefined;
  let gid: number | undefined;
  let fdName: string | undefined;
  const fds: number[] = [];
  try {
    for (const { name, value } of options) {
      switch (name) {
        case 'help':
          process.stdout.write(usage + '\n');
          return 0;
        case 'version':
          process.stdout.write(version() + '\n');
          return 0;
        case 'ready':
          ready = true;
          break;
        case 'reloading':
          reloading = true;
          break;
        case 'stopping':
          stopping = true;
          break;
        case 'booted':
          booted = true;
          break;
        case 'no-block':
          noBlock = true;
          break;
        case 'status':
          status = value!;
          break;
        case 'pid':
          pidHandle?.close();
          pidHandle = resolvePid(value);
          break;
        case 'uid':
          [uid, gid] = resolveUser(value!);
          break;
        case 'fd': {
          if (!/^\d+$/.test(value!)) throw new UsageError(`Failed to parse file descriptor: ${value}`, 1);
          const fd = Number(value);
          if (fds.includes(fd)) throw new UsageError(`Specified file descriptor '${fd}' not passed or specified more than once`, 1);
          try {
            fstatSync(fd);
          } catch {
            throw new UsageError(`Specified file descriptor '${fd}' not passed or specified more than once`, 1);
          }
          fds.push(fd);
          break;
        }
        case 'fdname':
          try {
            checkFdName(value!);
          } catch {
            throw new UsageError(`File descriptor name invalid: ${value}`, 1);
          }
          fdName = value;
          break;
      }
    }
    if (fdName !== undefined && fds.length === 0) throw new UsageError('No file descriptors passed, but --fdname= set, refusing.', 1);
    for (const assignment of [...positionals, ...(status === undefined ? [] : [status])]) {
      if (assignment.includes('\n') || assignment.includes('\0')) {
        throw new UsageError(`refusing a value with a newline or NUL byte (it would be read as more assignments): ${JSON.stringify(assignment)}`, 1);
      }
    }
    const haveMessage = ready || reloading || stopping || status !== undefined || pidHandle !== undefined || fds.length > 0 || positionals.length > 0;
    if (booted) {
      if (haveMessage) process.stderr.write('holdfast notify: Notify message specified along with --booted, ignoring.\n');
      return isBooted() ? 0 : 1;
    }
    if (!haveMessage) {
      process.stdout.write(usage + '\n');
      return 1;
    }

    const ours: string[] = [];
    if (reloading) ours.push('RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`);
    if (ready) ours.push('READY=1');
    if (stopping) ours.push('STOPPING=1');
    if (status !== undefined) ours.push(`STATUS=${status}`);
    if (pidHandle !== undefined) {
      ours.push(`MAINPID=${pidHandle.pid}`);
      if (pidHandle.id !== undefined) ours.push(`MAINPIDFDID=${pidHandle.id}`);
    }
    if (fds.length > 0) {
      ours.push('FDSTORE=1');
      if (fdName !== undefined) ours.push(`FDNAME=${fdName}`);
    }
    const message = merge(ours, positionals);

    // Without --pid the message speaks for our parent (the service that ran us), as systemd-notify's.
    let sender = pidHandle;
    if (sender === undefined) {
      try {
        sender = parentIfApplicable();
      } catch {
        sender = undefined;
      }
    }
    const sendOptions = { pid: sender?.pid, uid, gid };
    let result;
    try {
      result = notify(message, { ...sendOptions, fds });
    } catch (error) {
      if (hasCode(error, 'E2BIG')) throw new UsageError('Too many file descriptors passed.', 1);
      throw new UsageError(`Failed to notify init system: ${formatError(error)}`, 1);
    } finally {
      if (sender !== pidHandle) sender?.close();
    }
    if (!result.sent) throw new UsageError('No status data could be sent: $NOTIFY_SOCKET was not set', 1);
    if (!noBlock) {
      try {
        await barrier(5000, sendOptions);
      } catch (error) {
        throw new UsageError(`Failed to invoke barrier: ${formatError(error)}`, 1);
      }
    }
    return 0;
  } finally {
    pidHandle?.close();
  }
}

const command: Command = {
  name: 'notify',
  summary: 'tell the service manager about readiness, status and the main PID (systemd-notify)',
  usage,
  run,
};
export default command;
