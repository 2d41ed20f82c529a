/**
 * `io.holdfast.Manager`: everything the CLI does, over Varlink. Processes appear as systemd's
 * `ProcessId` (pid + pidfd id + boot id).
 */
import { readFileSync } from 'node:fs';
import { native } from '../native.js';
import { hasCode, Pidfd, ProcessRef, signalNumber } from '../pidfd/index.js';
import type { JobOutcome, Manager } from '../manager/manager.js';
import type { LogRecord, ManagerEvent, UnitStatus } from '../manager/types.js';
import { unitNameProblem } from '../unit/unit-name.js';
import { VarlinkError, type JsonValue, type VarlinkCall, type VarlinkInterfaceImplementation } from './varlink/index.js';

export const MANAGER_INTERFACE = 'io.holdfast.Manager';

export const MANAGER_IDL = `# holdfast's service manager: units, jobs, logs and events.
interface io.holdfast.Manager

# A process: PID, pidfs inode id and boot id (systemd's ProcessId). pid 0 means the caller.
type ProcessId (pid: int, pidfdId: ?int, bootId: ?string)

type ExitInfo (code: ?int, signal: ?string)

type UnitStatus (
  name: string,
  description: string,
  loadState: string,
  loadErrors: ?[]string,
  activeState: string,
  subState: string,
  result: string,
  type: string,
  mainProcess: ?ProcessId,
  controlProcess: ?ProcessId,
  restarts: int,
  lastExit: ?ExitInfo,
  statusText: ?string,
  invocationId: ?string,
  stateChangeTimestamp: int,
  activeEnterTimestamp: ?int,
  fragmentPath: ?string,
  dropInPaths: []string,
  transient: bool,
  enabled: string,
  cgroup: ?string,
  memoryCurrent: ?int,
  cpuUsageUsec: ?int,
  tasks: ?int,
  cgroupUnavailable: ?string
)

# How a job ended: done, failed, skipped, canceled, timeout, unsupported, or queued (no-block).
type JobOutcome (unit: string, result: string, activeState: string, subState: string, serviceResult: string)

type LogRecord (time: int, stream: string, pid: ?int, pidfdId: ?string, invocationId: ?string, message: string)

method List() -> (units: []UnitStatus)
method Status(name: string) -> (unit: UnitStatus)
method Start(name: string, noBlock: ?bool) -> (job: JobOutcome)
method Stop(name: string, noBlock: ?bool) -> (job: JobOutcome)
method Restart(name: string, noBlock: ?bool) -> (job: JobOutcome)
method TryRestart(name: string, noBlock: ?bool) -> (job: JobOutcome)
method Reload(name: string, noBlock: ?bool) -> (job: JobOutcome)
# Signal by name or number to the main process or to all of the unit's processes.
method Kill(name: string, signal: ?string, whom: ?string) -> (count: int)
method ResetFailed(name: ?string) -> ()
method DaemonReload() -> (loaded: int, failed: int)
# Starts a transient service from unit file text.
method Run(name: string, unit: string, noBlock: ?bool) -> (job: JobOutcome)
method Enable(name: string, enable: bool) -> (units: []string)
# With more and follow, new records keep coming.
method Logs(name: string, lines: ?int, since: ?int, follow: ?bool) -> (records: []LogRecord)
# With more: one reply per state change or manager message.
method Subscribe() -> (event: object)
# Puts running processes under a new scope unit; pid 0 is the caller (taken from the socket, SO_PEERPIDFD).
method CreateScope(name: ?string, processes: []ProcessId, description: ?string) -> (unit: string)
# The unit of a process, verified against its pidfd just before the reply.
method UnitByProcess(process: ProcessId) -> (unit: string, process: ProcessId)

error NoSuchUnit (name: string)
error UnitLoadFailed (name: string, errors: []string)
error UnitExists (name: string)
error InvalidUnit (errors: []string)
error NoSuchProcess (pid: int)
error ProcessNotInUnit (pid: int)
# The process may not be put in a unit: PID 1, or the daemon itself.
error ProcessRefused (pid: int, reason: string)
error InvalidSignal (signal: string)
error NotSupported (reason: string)
`;

/** What the interface needs besides the manager: log reading and following. */
export interface LogReader {
  read(unit: string, options: { lines?: number; since?: number }): LogRecord[] | Promise<LogRecord[]>;
  tail(unit: string, options: { lines?: number; since?: number }, onRecord: (record: LogRecord) => void): Promise<{ records: LogRecord[]; stop: () => void }>;
}

function unitError(error: unknown, name: string): unknown {
  if (hasCode(error, 'ENOENT')) return new VarlinkError(`${MANAGER_INTERFACE}.NoSuchUnit`, { name });
  if (hasCode(error, 'EBADMSG')) return new VarlinkError(`${MANAGER_INTERFACE}.UnitLoadFailed`, { name, errors: [(error as Error).message] });
  if (hasCode(error, 'EEXIST')) return new VarlinkError(`${MANAGER_INTERFACE}.UnitExists`, { name });
  if (hasCode(error, 'EINVAL')) return new VarlinkError(`${MANAGER_INTERFACE}.InvalidUnit`, { errors: [(error as Error).message] });
  if (hasCode(error, 'ENOEXEC')) return new VarlinkError(`${MANAGER_INTERFACE}.NotSupported`, { reason: (error as Error).message });
  return error;
}

function statusJson(status: UnitStatus): object {
  return JSON.parse(JSON.stringify(status)) as object;
}

function recordJson(record: LogRecord): object {
  return { ...record };
}

type Job = (name: string) => Promise<JobOutcome>;

/** Builds the interface implementation bound to a manager. */
export function managerInterface(manager: Manager, logs: LogReader): VarlinkInterfaceImplementation {
  const job = (run: Job) => async (params: { name: string; noBlock?: boolean | null }) => {
    try {
      if (params.noBlock === true) {
        const unit = await manager.unit(params.name);
        run(params.name).catch(() => {});
        return { job: { unit: unit.name, result: 'queued', activeState: unit.activeState, subState: unit.subState, serviceResult: unit.result } };
      }
      return { job: await run(params.name) };
    } catch (error) {
      throw unitError(error, params.name);
    }
  };
  return {
    idl: MANAGER_IDL,
    methods: {
      List: () => ({ units: manager.list().map(statusJson) }),
      Status: async (params: { name: string }) => {
        try {
          return { unit: statusJson(await manager.status(params.name)) };
        } catch (error) {
          throw unitError(error, params.name);
        }
      },
      Start: job((name) => manager.start(name)),
      Stop: job((name) => manager.stop(name)),
      Restart: job((name) => manager.restart(name)),
      TryRestart: job((name) => manager.tryRestart(name)),
      Reload: job((name) => manager.reloadUnit(name)),
      Kill: async (params: { name: string; signal?: string | null; whom?: string | null }) => {
        let signal: number;
        try {
          signal = signalNumber(params.signal ?? 'SIGTERM');
        } catch {
          throw new VarlinkError(`${MANAGER_INTERFACE}.InvalidSignal`, { signal: params.signal ?? '' });
        }
        const whom = params.whom ?? 'all';
        if (whom !== 'main' && whom !== 'all') throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'whom' });
        try {
          return { count: await manager.sendSignal(params.name, signal, whom) };
        } catch (error) {
          throw unitError(error, params.name);
        }
      },
      ResetFailed: async (params: { name?: string | null }) => {
        try {
          await manager.resetFailed(params.name ?? undefined);
          return {};
        } catch (error) {
          throw unitError(error, params.name ?? '');
        }
      },
      DaemonReload: () => manager.reload(),
      Run: async (params: { name: string; unit: string; noBlock?: boolean | null }) => {
        checkTransientName(params.name.endsWith('.service') ? params.name : `${params.name}.service`, ['service']);
        try {
          if (params.noBlock === true) {
            const pending = manager.runTransient(params.name, params.unit);
            pending.catch(() => {});
            const unit = await manager.unit(params.name);
            return { job: { unit: unit.name, result: 'queued', activeState: unit.activeState, subState: unit.subState, serviceResult: unit.result } };
          }
          return { job: await manager.runTransient(params.name, params.unit) };
        } catch (error) {
          throw unitError(error, params.name);
        }
      },
      Enable: async (params: { name: string; enable: boolean }) => {
        try {
          return { units: await manager.enable(params.name, params.enable) };
        } catch (error) {
          throw unitError(error, params.name);
        }
      },
      Logs: async (params: { name: string; lines?: number | null; since?: number | null; follow?: boolean | null }, call: VarlinkCall) => {
        let unit: string;
        try {
          unit = (await manager.unit(params.name)).name;
        } catch (error) {
          if (!hasCode(error, 'EBADMSG')) throw unitError(error, params.name);
          unit = params.name.includes('.') ? params.name : `${params.name}.service`;
        }
        const options = {
          ...(params.lines === undefined || params.lines === null ? {} : { lines: params.lines }),
          ...(params.since === undefined || params.since === null ? {} : { since: params.since }),
        };
        if (params.follow !== true || !call.more) return { records: (await logs.read(unit, options)).map(recordJson) };
        // tail() hands over from the stored records to live ones with no gap and no duplicate.
        let chain = Promise.resolve();
        let started = false;
        const early: LogRecord[] = [];
        const { records, stop } = await logs.tail(unit, options, (record) => {
          if (!started) early.push(record);
          else chain = chain.then(() => call.notify({ records: [recordJson(record)] })).catch(() => undefined);
        });
        started = true;
        chain = chain.then(() => call.notify({ records: [...records, ...early].map(recordJson) })).catch(() => undefined);
        await new Promise<void>((resolve) => {
          if (call.signal.aborted) return resolve();
          call.signal.addEventListener('abort', () => resolve());
        });
        stop();
        return { records: [] };
      },
      Subscribe: async (_params: object, call: VarlinkCall) => {
        if (!call.more) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
        await new Promise<void>((resolve) => {
          let chain = Promise.resolve();
          const listener = (event: ManagerEvent): void => {
            chain = chain.then(() => call.notify({ event })).catch(() => undefined);
          };
          manager.on('event', listener);
          call.signal.addEventListener('abort', () => {
            manager.off('event', listener);
            resolve();
          });
        });
        return { event: {} };
      },
      CreateScope: (params: { name?: string | null; processes: JsonValue[]; description?: string | null }, call: VarlinkCall) => {
        if (params.processes.length === 0) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'processes' });
        const handles: Pidfd[] = [];
        try {
          if (params.name != null) checkTransientName(params.name.endsWith('.scope') || params.name.endsWith('.service') ? params.name : `${params.name}.scope`, ['scope', 'service']);
          for (const value of params.processes) {
            const handle = processHandle(value, call);
            handles.push(handle);
            refuseForeignProcess(handle, call);
          }
          const name = params.name ?? `run-${handles[0]!.pid}-${Date.now().toString(36)}.scope`;
          const unit = manager.createScope(name, handles, params.description ?? `Scope of PID ${handles.map((h) => h.pid).join(', ')}`);
          return { unit: unit.name };
        } catch (error) {
          for (const handle of handles) handle.close();
          throw unitError(error, params.name ?? '');
        }
      },
      UnitByProcess: (params: { process: JsonValue }, call: VarlinkCall) => {
        const handle = processHandle(params.process, call);
        try {
          const unit = manager.unitOfProcess(handle);
          if (unit === undefined) throw new VarlinkError(`${MANAGER_INTERFACE}.ProcessNotInUnit`, { pid: handle.pid });
          // Verified again right before the reply: the process must still be the one looked up.
          if (!handle.isAlive()) throw new VarlinkError(`${MANAGER_INTERFACE}.NoSuchProcess`, { pid: handle.pid });
          return { unit: unit.name, process: ProcessRef.of(handle).toJSON() };
        } finally {
          handle.close();
        }
      },
    },
  };
}

/** `io.holdfast.Daemon`: what concerns the daemon process itself rather than units. */
export const DAEMON_IDL = `# The holdfast daemon process.
interface io.holdfast.Daemon

# Re-executes the daemon (new code after an upgrade) keeping every service, pidfd, log pipe and
# socket. The reply comes before the re-exec; the daemon answers again once the new image runs.
method Reexecute() -> ()
`;

/** Builds \`io.holdfast.Daemon\`; \`reexec\` is called once the reply is on its way. */
export function reexecInterface(reexec: () => void): VarlinkInterfaceImplementation {
  return {
    idl: DAEMON_IDL,
    methods: {
      Reexecute: () => {
        setImmediate(reexec);
        return {};
      },
    },
  };
}

/** Refuses a transient unit name that could not be a unit file's name, before anything is made of it. */
function checkTransientName(name: string, types: readonly ('service' | 'scope')[]): void {
  const problem = unitNameProblem(name, types);
  if (problem !== undefined) throw new VarlinkError(`${MANAGER_INTERFACE}.InvalidUnit`, { errors: [`invalid unit name ${JSON.stringify(name)}: ${problem}`] });
}

/**
 * Refuses processes no unit may hold: PID 1 (init: stopping the scope would signal it), the daemon
 * itself (it would supervise, and on stop kill, itself), and, unless the caller is root, a process
 * the caller could not signal itself (the kernel's rule for kill(2): the caller's uid is the
 * process's real or saved uid); otherwise `stop` of the scope would let the daemon signal it on
 * the caller's behalf.
 */
function refuseForeignProcess(handle: Pidfd, call: VarlinkCall): void {
  const refuse = (reason: string): never => {
    throw new VarlinkError(`${MANAGER_INTERFACE}.ProcessRefused`, { pid: handle.pid, reason });
  };
  if (handle.pid === 1) refuse('PID 1 (init) cannot be put in a unit');
  if (handle.pid === process.pid) refuse('the holdfast daemon cannot be put in one of its own units');
  const caller = call.peer;
  if (caller === undefined) refuse('the caller could not be identified');
  if (caller!.uid === 0 || caller!.pid === handle.pid) return;
  let uids: number[] | undefined;
  try {
    const line = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${handle.pid}/status`, 'utf8'));
    if (line !== null) uids = [Number(line[1]), Number(line[3])];
  } catch {
    uids = undefined;
  }
  // Read by PID: it counts only if the pidfd's process is still the one that PID names.
  if (uids === undefined || !handle.isAlive()) throw new VarlinkError(`${MANAGER_INTERFACE}.NoSuchProcess`, { pid: handle.pid });
  if (!uids.includes(caller!.uid)) refuse(`it belongs to uid ${uids[0]}; only root may put another user's process in a unit`);
}

/** A verified handle for a `ProcessId` parameter; pid 0 is the caller, from the connection. */
function processHandle(value: JsonValue, call: VarlinkCall): Pidfd {
  let ref: ProcessRef;
  try {
    ref = ProcessRef.parse(value);
  } catch {
    throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'process' });
  }
  try {
    if (ref.pid !== 0) return ref.resolve();
    const peer = call.peer;
    // The server owns the peer pidfd; the handle gets a copy.
    if (peer?.pidfd !== undefined) return Pidfd.adopt(native.dup(peer.pidfd), { pid: peer.pid });
    if (peer !== undefined) return Pidfd.open(peer.pid);
  } catch (error) {
    if (error instanceof VarlinkError) throw error;
  }
  throw new VarlinkError(`${MANAGER_INTERFACE}.NoSuchProcess`, { pid: ref.pid });
}
