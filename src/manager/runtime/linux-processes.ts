/**
 * The real process port of one unit: spawns through the native spawner (a pidfd from birth, in
 * the unit's cgroup where there is one), holds every process by its pidfd, finds the unit's other
 * processes in its cgroup or, without cgroups, in the sessions it spawned, and signals each of
 * them only through a pidfd opened and confirmed first.
 */
import { closeSync } from 'node:fs';
import { hasCode, ProcessRef, type ExitStatus, type Pidfd, type ProcessIdJson } from '../../pidfd/index.js';
import type { CgroupTree } from '../cgroups.js';
import type { OutputSink } from '../manager.js';
import { LiveSessions, sessionOf } from '../session.js';
import { spawnCommand, type SpawnError } from '../spawner.js';
import type { ExitWatch } from './exit-watch.js';
import { mainPidRefusal, openClaim, readPidFile } from './main-pid.js';
import type { ClaimOutcome, HeldProcess, MainPidClaim, ProcessPort, SpawnOutcome, SpawnRequest } from './ports.js';
import { isRefusal, planSpawn, type SpawnContext } from './spawn-environment.js';
import { makeIo, type HoldCapture, type UnitUser } from './stdio.js';
import type { ServiceSection } from '../../unit/index.js';
import { groupsOf, lookupUser } from '../users.js';

/** systemd's exit code when the standard fds cannot be set up (209/STDOUT). */
const EXIT_STDOUT = 209;
const SIGKILL = 9;
const SIGCONT = 18;
const SIGHUP = 1;

/** What every unit's process port shares: the daemon's own handle, its log store, cgroups, exit watch. */
export interface LinuxProcessContext {
  readonly self: Pidfd;
  readonly spawnContext: () => SpawnContext;
  readonly logs: OutputSink;
  readonly holdCapture: (unit: string, invocationId: string | null) => HoldCapture;
  readonly cgroups: () => CgroupTree | undefined;
  readonly exits: ExitWatch;
  /** The unit a live process belongs to, if any (its main or control process, its cgroup, its live sessions). */
  readonly unitOf: (handle: Pidfd) => string | undefined;
}

/** The user of a unit with User= (already known to exist: the spawn plan looked it up), else undefined. */
function unitUser(service: ServiceSection): UnitUser | undefined {
  if (service.user === undefined) return undefined;
  const account = lookupUser(service.user);
  return { uid: account.uid, gid: account.gid, groups: groupsOf(account) };
}

/** A process of the unit, held by its pidfd. */
class PidfdProcess implements HeldProcess {
  readonly pid: number;
  readonly pidfdId: string | null;
  readonly #ref: ProcessIdJson;
  readonly handle: Pidfd;
  stopWatching: (() => void) | undefined;

  constructor(handle: Pidfd) {
    this.handle = handle;
    this.pid = handle.pid;
    this.pidfdId = handle.id?.toString() ?? null;
    this.#ref = ProcessRef.of(handle).toJSON();
  }

  ref(): ProcessIdJson {
    return this.#ref;
  }

  signal(signal: number): boolean {
    if (this.handle.closed) return false;
    try {
      this.handle.signal(signal);
      return true;
    } catch (error) {
      if (hasCode(error, 'ESRCH')) return false;
      throw error;
    }
  }

  release(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.handle.close();
  }
}

/** The process port of one unit on Linux. */
export class LinuxProcessPort implements ProcessPort {
  readonly #unit: string;
  readonly #context: LinuxProcessContext;
  readonly #note: (level: 'info' | 'warning' | 'error', text: string) => void;
  readonly #sessions = new LiveSessions();

  constructor(unit: string, context: LinuxProcessContext, note: (level: 'info' | 'warning' | 'error', text: string) => void) {
    this.#unit = unit;
    this.#context = context;
    this.#note = note;
  }

  get sessions(): ReadonlySet<number> {
    return new Set(this.#sessions.ids());
  }

  isMember(handle: Pidfd): boolean {
    const tree = this.#context.cgroups();
    if (tree !== undefined) return tree.cgroupOf(handle) === tree.path(this.#unit);
    return this.#sessions.contains(handle);
  }

  newInvocation(): void {
    this.#sessions.clear();
  }

  spawn(request: SpawnRequest): SpawnOutcome {
    const plan = planSpawn(request, this.#context.spawnContext());
    if (isRefusal(plan)) return { ok: false, exitCode: plan.exitCode, result: plan.result, message: plan.message };
    const service = request.config.service;
    let io;
    try {
      io = makeIo(this.#unit, request.env.invocationId, service, this.#context.logs, this.#context.holdCapture(this.#unit, request.env.invocationId), unitUser(service));
    } catch (error) {
      return { ok: false, exitCode: EXIT_STDOUT, result: 'exit-code', message: `setting up standard input/output failed: ${(error as Error).message}` };
    }
    let cgroup: { fd: number; close(): void } | undefined;
    let spawned;
    try {
      cgroup = this.#cgroupForSpawn(request);
      spawned = spawnCommand({ ...plan, fds: io.fds, ...(cgroup === undefined ? {} : { cgroupFd: cgroup.fd }) });
    } catch (error) {
      const e = error as SpawnError;
      return { ok: false, exitCode: e.exitCode ?? 203, result: 'exit-code', message: e.message };
    } finally {
      io.afterSpawn();
      cgroup?.close();
    }
    const handle = spawned.handle;
    io.attach({ pid: handle.pid, pidfdId: handle.id ?? null });
    if (spawned.unsetVariables.length > 0) this.#note('info', `referenced but unset environment variables: ${spawned.unsetVariables.join(', ')}`);
    // Every spawned process leads its own session: the session id finds its descendants later,
    // for as long as the leader, held by pidfd, or another member proves the id still the unit's.
    this.#sessions.addLeader(handle);
    return { ok: true, process: new PidfdProcess(handle) };
  }

  #cgroupForSpawn(request: SpawnRequest): { fd: number; close(): void } | undefined {
    const tree = this.#context.cgroups();
    if (tree === undefined) return undefined;
    const { fd, unapplied } = tree.prepare(this.#unit, request.config.service);
    for (const what of unapplied) this.#note('warning', `${what} not applied`);
    return { fd, close: () => closeSync(fd) };
  }

  watchExit(process: HeldProcess, onExit: (status: ExitStatus) => void): void {
    const held = process as PidfdProcess;
    held.stopWatching = this.#context.exits.watch(held.handle, (status) => {
      held.stopWatching = undefined;
      onExit(status);
    });
  }

  /** The unit's live processes but `except`: its cgroup is the whole truth where there is one, else its sessions. */
  members(except: readonly HeldProcess[]): Pidfd[] {
    const excluded = new Set(except.map((p) => p.pid));
    const tree = this.#context.cgroups();
    if (tree === undefined) return this.#sessions.members(excluded);
    return tree.members(this.#unit).filter((handle) => {
      if (!excluded.has(handle.pid)) return true;
      handle.close();
      return false;
    });
  }

  signalMembers(signal: number, except: readonly HeldProcess[], options: { cgroupKill?: boolean; thenCont?: boolean; thenHup?: boolean } = {}): number {
    const members = this.members(except);
    try {
      // cgroup.kill reaches everything in the cgroup at once, including processes forked after the scan.
      if (options.cgroupKill === true && signal === SIGKILL && except.length === 0 && this.#context.cgroups()?.killAll(this.#unit) === true) return members.length;
      let sent = 0;
      for (const handle of members) {
        try {
          handle.signal(signal);
          sent++;
          if (options.thenCont === true && signal !== SIGKILL && signal !== SIGCONT) handle.signal(SIGCONT);
          if (options.thenHup === true) handle.signal(SIGHUP);
        } catch (error) {
          if (!hasCode(error, 'ESRCH')) throw error;
        }
      }
      return sent;
    } finally {
      for (const handle of members) handle.close();
    }
  }

  watchMembers(except: readonly HeldProcess[], onGone: () => void): () => void {
    let cancelled = false;
    let current: Pidfd[] = [];
    const closeCurrent = (): void => {
      for (const handle of current.splice(0)) handle.close();
    };
    const round = (): void => {
      if (cancelled) return;
      closeCurrent();
      current = this.members(except);
      const tree = this.#context.cgroups();
      const cgroupBusy = tree !== undefined && except.length === 0 && tree.populated(this.#unit);
      if (current.length === 0 && !cgroupBusy) {
        cancelled = true;
        onGone();
        return;
      }
      const waits: Promise<unknown>[] = current.map((handle) => handle.exited.catch(() => undefined));
      if (cgroupBusy) waits.push(tree.whenEmpty(this.#unit, Infinity));
      // Processes forked meanwhile are found by the next round.
      void Promise.all(waits).then(round);
    };
    round();
    return () => {
      cancelled = true;
      closeCurrent();
    };
  }

  claimMain(claim: MainPidClaim, senderUid: number, control: HeldProcess | undefined): ClaimOutcome {
    const opened = openClaim(claim);
    if (!opened.ok) return opened;
    const refusal = mainPidRefusal(opened.handle, {
      self: this.#context.self,
      controlPid: control?.pid,
      isMember: (handle) => this.isMember(handle),
      owner: (handle) => this.#context.unitOf(handle),
      unit: this.#unit,
      senderUid,
    });
    if (refusal !== undefined) {
      opened.handle.close();
      return { ok: false, reason: `PID ${opened.handle.pid}: ${refusal}` };
    }
    return { ok: true, process: new PidfdProcess(opened.handle) };
  }

  readPidFile(path: string): ClaimOutcome | { ok: false; reason: string; retry: true } {
    const read = readPidFile(path, {
      isMember: (handle) => this.isMember(handle),
      owner: (handle) => this.#context.unitOf(handle),
      unit: this.#unit,
    });
    if (read.ok) return { ok: true, process: new PidfdProcess(read.handle) };
    return read.retry === true ? { ok: false, reason: read.reason, retry: true } : { ok: false, reason: read.reason };
  }

  hold(handle: Pidfd, recordedSessions?: readonly number[]): HeldProcess {
    // Recorded session ids are not trusted on their own: while no daemon watched, a session may have
    // ended and its number gone to a stranger. Only the session of a verified, living process counts.
    if (recordedSessions !== undefined) this.#sessions.addSessionOf(handle, recordedSessions);
    return new PidfdProcess(handle);
  }

  adoptSession(process: HeldProcess): void {
    // Only a session the new main process leads (a daemon that forked and called setsid()), held by
    // pidfd: never a session it merely sits in, which may be a login's or another service's.
    const held = process as PidfdProcess;
    if (!held.handle.closed && sessionOf(held.handle) === held.pid) this.#sessions.addSessionOf(held.handle);
  }
}
