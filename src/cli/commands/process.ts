import { parseArgs } from 'node:util';
import { bootId, describeExit, hasCode, Pidfd, ProcessRef, signalName, signalNumber, type ExitStatus } from '../../pidfd/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { formatError, printJson, toJson } from '../output.js';

const usage = `Usage: holdfast process VERB ...

The pidfd guarantees for shell scripts: a PID with its pidfd id names one process for the whole boot.

  holdfast process show PID [--json]
      The process's PID, pidfd id and boot id (JSON: systemd's ProcessId form) and what the kernel
      tells about it: parent, credentials, cgroup id.
  holdfast process verify PID ID
      Exit 0 if the process that has PID now is the one with pidfd id ID; otherwise exit 1 and say
      whether it is gone or a different process.
  holdfast process signal [-s SIGNAL] PID [ID]
      Send SIGNAL (default SIGTERM). With ID the target is checked first and a recycled PID is
      refused (exit 1); without, the PID is opened once and the signal goes through that pidfd.
  holdfast process wait PID [ID] [--json]
      Wait until the process exits (it need not be our child), print how it ended where the
      kernel can tell ({"code":…,"signal":…,"coreDumped":…} with --json) and exit 0.

PID may also be given as PID:ID[:BOOTID] (the form 'show' prints as "ref").

Exit codes: 0 done; 1 the process is gone, is a different process, or the signal was refused;
2 bad usage.`;

function parsePid(text: string | undefined): number {
  if (text === undefined) throw new UsageError('a PID is required');
  if (!/^\d+$/.test(text) || Number(text) <= 0) throw new UsageError(`not a PID: ${text}`);
  return Number(text);
}

/** PID and optional id from `PID [ID]` or `PID:ID[:BOOT]`. */
function target(args: string[]): { pid: number; id: bigint | undefined; ref: ProcessRef | undefined } {
  const [first, second] = args;
  if (first !== undefined && first.includes(':')) {
    let ref: ProcessRef;
    try {
      ref = ProcessRef.fromString(first);
    } catch (error) {
      throw new UsageError(formatError(error));
    }
    return { pid: ref.pid, id: ref.pidfdId, ref };
  }
  const pid = parsePid(first);
  if (second === undefined) return { pid, id: undefined, ref: undefined };
  if (!/^[1-9]\d*$/.test(second)) throw new UsageError(`not a pidfd id: ${second}`);
  return { pid, id: BigInt(second), ref: undefined };
}

function open(pid: number, id: bigint | undefined, ref: ProcessRef | undefined): Pidfd {
  if (ref !== undefined) return ref.resolve();
  return id === undefined ? Pidfd.open(pid) : Pidfd.verify(pid, id);
}

/** The handle, or the exit code after saying in one line why there is none. */
function openOrRefuse(target: { pid: number; id: bigint | undefined; ref: ProcessRef | undefined }): Pidfd | number {
  try {
    return open(target.pid, target.id, target.ref);
  } catch (error) {
    return refusal(error, target.pid);
  }
}

/** One line for why a verified open failed, plus exit 1. */
function refusal(error: unknown, pid: number): number {
  if (hasCode(error, 'ESRCH')) {
    process.stderr.write(`holdfast process: no process has PID ${pid} any more: it is gone\n`);
  } else if (hasCode(error, 'ESTALE')) {
    process.stderr.write(`holdfast process: PID ${pid} is a different process now: ${formatError(error)}\n`);
  } else if (hasCode(error, 'EREMOTE')) {
    process.stderr.write(`holdfast process: ${formatError(error)}\n`);
  } else {
    throw error;
  }
  return 1;
}

async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1 && positionals.length !== 2) throw new UsageError('usage: holdfast process show PID [--json]');
  const { pid, id, ref } = target(positionals);
  const opened = openOrRefuse({ pid, id, ref });
  if (typeof opened === 'number') return opened;
  using handle = opened;
  const processRef = ProcessRef.of(handle);
  let info;
  try {
    info = handle.info();
  } catch (error) {
    if (!hasCode(error, 'ESRCH')) throw error;
  }
  const alive = handle.isAlive();
  if (values.json === true) {
    printJson({ ...processRef.toJSON(), alive, ...(info === undefined ? {} : { info }) });
    return 0;
  }
  const lines = [
    `pid:      ${handle.pid}`,
    `pidfd id: ${handle.id ?? '(this kernel gives no ids)'}`,
    `boot id:  ${bootId()}`,
    `ref:      ${processRef.toString()}`,
    `state:    ${alive ? 'running' : 'exited (zombie, not yet reaped)'}`,
  ];
  if (info !== undefined) {
    lines.push(`ppid:     ${info.ppid}`, `uid:      ${info.uid} (effective ${info.euid})`, `gid:      ${info.gid} (effective ${info.egid})`);
    if (info.cgroupId !== undefined) lines.push(`cgroup:   ${info.cgroupId}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('usage: holdfast process verify PID ID');
  const { pid, id, ref } = target(positionals);
  if (id === undefined) throw new UsageError('verify needs the pidfd id: holdfast process verify PID ID');
  const opened = openOrRefuse({ pid, id, ref });
  if (typeof opened === 'number') return opened;
  using handle = opened;
  if (!handle.verified) {
    process.stderr.write(`holdfast process: this kernel gives no pidfd ids; PID ${pid} exists but could not be verified\n`);
    return 1;
  }
  return 0;
}

async function signal(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { signal: { type: 'string', short: 's', default: 'SIGTERM' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('usage: holdfast process signal [-s SIGNAL] PID [ID]');
  let number: number;
  try {
    number = signalNumber(values.signal);
  } catch (error) {
    throw new UsageError(formatError(error));
  }
  const { pid, id, ref } = target(positionals);
  const opened = openOrRefuse({ pid, id, ref });
  if (typeof opened === 'number') return opened;
  using handle = opened;
  try {
    handle.signal(number);
  } catch (error) {
    if (hasCode(error, 'ESRCH')) return refusal(error, pid);
    throw error;
  }
  if (id !== undefined && !handle.verified) {
    process.stderr.write(`holdfast process: warning: this kernel gives no pidfd ids; ${signalName(number)} went to PID ${pid} unverified\n`);
  }
  return 0;
}

async function wait(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('usage: holdfast process wait PID [ID] [--json]');
  const { pid, id, ref } = target(positionals);
  const opened = openOrRefuse({ pid, id, ref });
  if (typeof opened === 'number') return opened;
  using handle = opened;
  const status: ExitStatus = await handle.exited;
  if (values.json === true) process.stdout.write(toJson(status) + '\n');
  else process.stdout.write(`process ${pid} ${describeExit(status)}\n`);
  return 0;
}

const verbs: Record<string, (args: string[]) => Promise<number>> = { show, verify, signal, wait };

const command: Command = {
  name: 'process',
  summary: 'show, verify, signal or wait for a process by PID and pidfd id',
  usage,
  async run(args) {
    const [verb, ...rest] = args;
    const run = verb === undefined ? undefined : verbs[verb];
    if (run === undefined) throw new UsageError(verb === undefined ? 'a verb is required: show, verify, signal or wait' : `unknown verb '${verb}': show, verify, signal or wait`);
    return run(rest);
  },
};
export default command;
