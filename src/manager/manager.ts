/**
 * The manager: a thin facade over the unit registry (what is loaded, on demand), the job engine
 * (requests become transactions over the dependency graph) and the units themselves; it routes
 * notify datagrams and exits, and reports every change as an event. It holds no PID without a pidfd.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { bootId, Pidfd, ProcessRef, type ExitStatus } from '../pidfd/index.js';
import { ChildReaper } from './reaper.js';
import { CgroupTree } from './cgroups.js';
import { ServiceUnit, type JobResult } from './runtime/service-unit.js';
import { LinuxHost } from './runtime/linux-host.js';
import type { PortedUnit, UnitHost } from './runtime/ports.js';
import type { NotifyMessage, NotifyServer } from './notify-server.js';
import type { Keeper, RecoveredFd } from './keeper/keeper.js';
import { logPipeKey } from './keeper/protocol.js';
import { Enablement } from './enablement.js';
import { JobRunner, type JobEnd, type JobTarget, type RequestType } from './jobs/index.js';
import { UnitRegistry, type BrokenUnit } from './registry.js';
import { restoreUnits } from './restore.js';
import { StateRecord } from './state-record.js';
import { brokenStatus, statusOf } from './unit-status.js';
import type { LogRecord, ManagerEvent, UnitRecord, UnitStatus } from './types.js';

export type { BrokenUnit } from './registry.js';

/** Where captured output goes (the log store satisfies it). */
export interface OutputSink {
  capture(
    unit: string,
    options: { invocationId: string | null; stdout: boolean; stderr: boolean },
  ): CaptureHandle;
  captureFromFds(
    unit: string,
    options: {
      invocationId: string | null;
      stdoutReadFd?: number | null;
      stderrReadFd?: number | null;
      writer?: { pid: number | null; pidfdId?: string | null };
      stdoutSpool?: string | null;
      stderrSpool?: string | null;
    },
  ): CaptureHandle;
  append(unit: string, record: LogRecord): void;
  /** Stores what spools of pipes nobody brought back still hold (after a crash of daemon and keeper). */
  recoverSpools?(): Promise<number>;
}

/** One process's output capture (the log store's LogCapture satisfies it). */
export interface CaptureHandle {
  stdoutFd: number | null;
  stderrFd: number | null;
  readonly readFds: { readonly stdout: number | null; readonly stderr: number | null };
  /** Where each stream's reader is in its spool, for whoever reads the pipe next. */
  readonly spoolIds?: { readonly stdout: string | null; readonly stderr: string | null };
  readonly done: Promise<void>;
  attach(writer: { pid: number; pidfdId: bigint | null }): void;
  closeWriteEnds(): void;
}

/** Options of {@link Manager}. */
export interface ManagerOptions {
  /** Unit directories, lowest priority first. */
  unitDirs: string[];
  /** Where enablement and state live. */
  stateDir: string;
  logs: OutputSink;
  notify?: NotifyServer;
  /** Reap children and orphans (the daemon does; tests that share a process may not). */
  subreaper?: boolean;
  /** Log line for the daemon's own events. */
  log?: (level: 'info' | 'warning' | 'error', text: string) => void;
  /** Holds copies of log pipes and pidfds so they outlive a daemon crash. */
  keeper?: Keeper;
  /** What a previous daemon's keeper held, taken back at start (see {@link Keeper.takeOver}). */
  recovered?: RecoveredFd[];
  /** Use cgroups where the machine allows (default true). */
  cgroups?: boolean;
}

/** A job's outcome as the API reports it. */
export interface JobOutcome {
  unit: string;
  result: JobResult;
  activeState: string;
  subState: string;
  serviceResult: string;
}

/** Notifications kept while the units are picked up from a previous daemon. */
const PENDING_NOTIFY_MAX = 4096;

/** The service manager. */
export class Manager extends EventEmitter {
  /** Loaded units and the ones that would not load; also the graph the job engine reads. */
  readonly registry: UnitRegistry;
  readonly reaper: ChildReaper;
  readonly #options: ManagerOptions;
  readonly #self: Pidfd;
  readonly #host: UnitHost;
  readonly #jobs: JobRunner;
  readonly #record: StateRecord;
  readonly #enabled: Enablement;

  constructor(options: ManagerOptions) {
    super();
    this.#options = options;
    this.#self = Pidfd.self();
    this.#self.unref();
    this.reaper = new ChildReaper((pid, status) => this.#log('info', `reaped orphan PID ${pid} (${describeStatus(status)})`));
    this.#host = this.#makeHost();
    this.registry = new UnitRegistry({
      unitDirs: options.unitDirs,
      create: (config, transient) => new ServiceUnit(config, this.#host, transient),
      log: (level, text) => this.#log(level, text),
    });
    this.#jobs = new JobRunner({
      graph: this.registry,
      target: (name) => this.#target(name),
      note: (name, level, text) => this.#noteName(name, level, text),
      // Dependencies on units of other types (.socket, .target) are not loaded; they are reported, not required.
      mustExist: (name) => name.endsWith('.service'),
    });
    if (options.notify !== undefined) options.notify.onMessage = (message) => this.#onNotify(message);
    mkdirSync(options.stateDir, { recursive: true });
    this.#record = new StateRecord(options.stateDir);
    this.#enabled = new Enablement(options.stateDir);
    this.on('event', (event: ManagerEvent) => {
      this.#schedulePersist();
      if (event.type === 'state' && (event.activeState === 'inactive' || event.activeState === 'failed')) this.#wentDown(event.unit);
    });
    const tree = options.cgroups === false ? 'disabled by the daemon\'s options' : CgroupTree.open(options.stateDir);
    if (typeof tree === 'string') {
      this.cgroupsUnavailable = tree;
      this.#log('info', `no cgroups (${tree}): units are tracked by process sessions`);
    } else {
      this.cgroups = tree;
    }
  }

  /** The daemon's cgroup subtree, where the machine gives one. */
  readonly cgroups: CgroupTree | undefined;
  /** Why there are no cgroups, when there are none. */
  readonly cgroupsUnavailable: string | undefined;

  /** Loaded units by name. */
  get units(): Map<string, ServiceUnit> {
    return this.registry.units;
  }

  /** Units whose files did not load, by name. */
  get broken(): Map<string, BrokenUnit> {
    return this.registry.broken;
  }

  /** Starts reaping (as subreaper unless disabled), loads every unit and picks up what a previous daemon ran. */
  async open(): Promise<void> {
    await this.reload();
    // Enabled instances have no file of their own to be listed by: they load from their template.
    for (const name of this.#enabled.names()) if (name.includes('@') && this.registry.get(name) === undefined) await this.registry.load(name);
    await restoreUnits({
      registry: this.registry,
      state: this.#record.read(),
      recovered: this.#options.recovered ?? [],
      logs: this.#options.logs,
      holdCapture: (unit, capture, writer) => void this.#holdCapture(unit, capture, writer),
      log: (level, text) => this.#log(level, text),
    });
    // Reaping starts only now: a child that ended meanwhile (across a re-exec) stays a zombie, so
    // its status is still there for the restored unit that tracks it.
    this.reaper.install(this.#options.subreaper !== false);
    const queued = this.#pendingNotify ?? [];
    this.#pendingNotify = undefined;
    for (const message of queued) this.#onNotify(message);
    this.#persistNow();
  }

  #persistPending = false;
  #detaching = false;

  /** Whether every unit is in a settled state (no job half done). */
  settled(): boolean {
    return [...this.units.values()].every((u) => u.activeState === 'active' || u.activeState === 'inactive' || u.activeState === 'failed' || u.subState === 'auto-restart');
  }

  /**
   * Lets go of everything without touching a process, for daemon-reexec: the state is recorded,
   * timers stop, reaping stops (children that end meanwhile stay zombies for the next image), and
   * what the keeper holds stays with it.
   */
  detach(): void {
    this.#detaching = true;
    for (const unit of this.units.values()) unit.dispose();
    this.#persistNow();
    this.reaper.uninstall();
  }
  #pendingNotify: NotifyMessage[] | undefined = [];

  #schedulePersist(): void {
    if (this.#persistPending) return;
    this.#persistPending = true;
    setImmediate(() => {
      this.#persistPending = false;
      this.#persistNow();
    });
  }

  /** Records every unit's state and processes: written on each change, read by the next daemon. */
  #persistNow(): void {
    const units: UnitRecord[] = [...this.units.values()].map((unit) => {
      const record = unit.record();
      const text = this.registry.transientTexts.get(unit.name);
      return text === undefined ? record : { ...record, transientText: text };
    });
    try {
      this.#record.write(units);
    } catch (error) {
      this.#log('error', `could not record the daemon state: ${(error as Error).message}`);
    }
  }

  #captureSeq = 0;

  /** Gives the keeper copies of a capture's read ends, and takes them back once it is done. */
  #holdCapture(unit: string, capture: CaptureHandle, writer: { pid: number | null; pidfdId: string | null; invocationId: string | null }): (w: { pid: number; pidfdId: bigint | null }) => void {
    const keeper = this.#options.keeper;
    if (keeper === undefined) return () => {};
    const seq = ++this.#captureSeq;
    const keys: string[] = [];
    const hold = (w: { pid: number | null; pidfdId: string | null }): void => {
      for (const stream of ['stdout', 'stderr'] as const) {
        const fd = capture.readFds[stream];
        if (fd === null) continue;
        const key = logPipeKey(unit, seq, stream);
        if (!keys.includes(key)) keys.push(key);
        keeper.hold({ key, kind: 'log', unit, stream, invocationId: writer.invocationId, pid: w.pid, pidfdId: w.pidfdId, spool: capture.spoolIds?.[stream] ?? null }, fd);
      }
    };
    hold(writer);
    void capture.done.then(() => {
      // A capture ending because this daemon lets go (re-exec) must stay with the keeper.
      if (!this.#detaching) for (const key of keys) keeper.drop(key);
    });
    return (w) => hold({ pid: w.pid, pidfdId: w.pidfdId?.toString() ?? null });
  }


  /** Reads the unit directories and every loaded unit again (`daemon-reload`); running units keep running with the new config for their next start. */
  reload(): Promise<{ loaded: number; failed: number }> {
    return this.registry.reload();
  }

  /** The unit, loaded from its file on first use. Throws `ENOENT` if there is none, `EBADMSG` if it does not load. */
  unit(name: string): Promise<ServiceUnit> {
    return this.registry.unit(name);
  }

  // ------------------------------------------------------------------------------------ jobs

  /** Starts a unit and what it Requires=/Wants=/BindsTo=/Upholds=, checks Requisite=, stops Conflicts=, ordered by After=/Before=. */
  start(name: string): Promise<JobOutcome> {
    return this.#request('start', name);
  }

  /** Stops a unit and the units that Require=/BindsTo=/are PartOf= it. */
  stop(name: string): Promise<JobOutcome> {
    return this.#request('stop', name);
  }

  /** Stops and starts a unit; what Requires=/BindsTo=/is PartOf= it and runs is restarted with it. */
  restart(name: string): Promise<JobOutcome> {
    return this.#request('restart', name);
  }

  /** Restarts only if running. */
  tryRestart(name: string): Promise<JobOutcome> {
    return this.#request('try-restart', name);
  }

  /** Reloads a unit (ExecReload=, or the notify-reload protocol). */
  reloadUnit(name: string): Promise<JobOutcome> {
    return this.#request('reload', name);
  }

  /** Runs one request through the job engine; resolves with its anchor job's outcome. */
  async #request(type: RequestType, name: string): Promise<JobOutcome> {
    const unit = await this.registry.unit(name);
    if (type !== 'stop' && type !== 'reload') await this.registry.loadDependencies(unit.name);
    const submission = this.#jobs.submit({ type, unit: unit.name });
    const { missing, errors } = submission.transaction;
    const ignored = [...new Set(missing.filter((m) => !m.name.endsWith('.service')).map((m) => m.name))];
    if (ignored.length > 0) this.#noteUnit(unit, 'warning', `ignoring dependencies on units holdfast does not load: ${ignored.join(', ')}`);
    for (const error of errors) this.#noteUnit(unit, 'error', `${type} refused: ${error}`);
    // The caller hears back once every job of its request is done (a conflicting unit is down, the
    // units that are part of this one are stopped too), with the result of the job it asked for.
    await submission.settled;
    return this.#outcome(unit, await submission.anchor);
  }

  #outcome(unit: ServiceUnit, end: JobEnd): JobOutcome {
    const result: JobResult = end.result === 'dependency' ? 'failed' : end.result;
    // A job that failed for a reason outside the unit (a dependency, a refused transaction) leaves the unit's own result alone.
    const outside = end.result === 'dependency' || (end.result === 'failed' && end.message !== undefined);
    const serviceResult = outside ? 'resources' : unit.result;
    return { unit: unit.name, result, activeState: unit.activeState, subState: unit.subState, serviceResult };
  }

  /** What a job does to a unit: the unit's own start (EnvironmentFile= is read at each spawn), stop and reload. */
  #target(name: string): JobTarget | undefined {
    const unit = this.registry.get(name);
    if (unit === undefined) return undefined;
    return {
      start: () => unit.start(),
      stop: () => unit.stop(),
      reload: () => unit.reload(),
    };
  }

  /** A unit went down: what is bound to it follows, and a unit whose file is gone is unloaded. */
  #wentDown(name: string): void {
    this.#jobs.unitChanged(name);
    // After the unit's own flow has finished with it.
    if (this.registry.notFound.has(name)) setImmediate(() => this.registry.dropIfGone(name));
  }

  async sendSignal(name: string, signal: number, whom: 'main' | 'all'): Promise<number> {
    return (await this.unit(name)).sendSignal(signal, whom);
  }

  async resetFailed(name?: string): Promise<void> {
    if (name !== undefined) return (await this.unit(name)).resetFailed();
    for (const unit of this.units.values()) unit.resetFailed();
  }

  /** Runs a command as a transient service (`holdfast run`). */
  async runTransient(name: string, unitText: string): Promise<JobOutcome> {
    const unit = this.registry.createTransient(name, unitText);
    return this.start(unit.name);
  }

  /** Puts processes that were started elsewhere under a new scope unit (`holdfast run --scope`). */
  createScope(name: string, handles: Pidfd[], description: string): ServiceUnit {
    const unit = this.registry.createScope(name, description);
    unit.adoptScope(handles);
    return unit;
  }

  /** Marks a unit to start with the daemon, as `[Install] WantedBy=` would. */
  async enable(name: string, on: boolean): Promise<string[]> {
    const unit = await this.unit(name);
    const install = unit.config.install;
    if (on && install.wantedBy.length === 0 && install.requiredBy.length === 0 && install.alias.length === 0) {
      throw Object.assign(new Error(`${unit.name} has no [Install] section (WantedBy=, RequiredBy= or Alias=); nothing to enable`), { code: 'ENOEXEC' });
    }
    const names = [unit.name, ...install.also.filter((n) => this.units.has(n))];
    this.#enabled.set(names, on);
    return names;
  }

  /** Units to start with the daemon (enabled instances included, loaded from their template at open). */
  enabledUnits(): string[] {
    return this.#enabled.names().filter((n) => this.units.has(n));
  }

  /** The snapshot of one unit. */
  async status(name: string): Promise<UnitStatus> {
    const full = this.registry.fullName(name);
    const broken = this.broken.get(full);
    if (broken !== undefined) return brokenStatus(broken);
    return this.#statusOf(await this.unit(full));
  }

  /** Every loaded (or broken) unit. */
  list(): UnitStatus[] {
    const all = [...[...this.units.values()].map((u) => this.#statusOf(u, false)), ...[...this.broken.values()].map(brokenStatus)];
    return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The unit a live process belongs to, checked against its pidfd: its main or control process, else
   * its cgroup where there are cgroups, else one of its sessions that is still live (never a
   * session number whose processes have all ended, which the kernel may have handed out again).
   */
  unitOfProcess(handle: Pidfd): ServiceUnit | undefined {
    const ref = ProcessRef.of(handle);
    for (const unit of this.units.values()) if (unit.owns(ref) !== undefined) return unit;
    if (this.cgroups !== undefined) {
      // One read of the process's own cgroup, instead of listing every unit's members.
      const path = this.cgroups.cgroupOf(handle);
      if (path !== undefined) for (const unit of this.units.values()) if (this.cgroups.path(unit.name) === path) return unit;
      return undefined;
    }
    for (const unit of this.units.values()) if (unit.hasMember(handle)) return unit;
    return undefined;
  }

  /** Stops every unit through the job engine (ordered as After=/Before= say, in reverse) and releases what the manager holds. */
  async shutdown(): Promise<void> {
    const active = [...this.units.values()].filter((u) => u.activeState !== 'inactive' && u.activeState !== 'failed');
    await Promise.all(active.map((u) => this.#jobs.submit({ type: 'stop', unit: u.name }).settled));
    for (const unit of this.units.values()) unit.dispose();
    this.#persistNow();
    this.cgroups?.removeAll(this.units.keys());
    this.reaper.reap();
    this.reaper.uninstall();
    this.#self.close();
  }

  #statusOf(unit: ServiceUnit, withStats = true): UnitStatus {
    return statusOf(unit, {
      enabled: this.#enabled.has(unit.name),
      notFound: this.registry.notFound.has(unit.name),
      cgroups: this.cgroups,
      cgroupsUnavailable: this.cgroupsUnavailable,
      withStats,
    });
  }

  #noteName(name: string, level: 'info' | 'warning' | 'error', text: string): void {
    const unit = this.registry.get(name);
    if (unit !== undefined) this.#noteUnit(unit, level, text);
    else this.#log(level, `${name}: ${text}`);
  }

  // ------------------------------------------------------------------------------ notify

  #onNotify(message: NotifyMessage): void {
    // Until the units are picked up from the previous daemon, their processes cannot be recognised.
    if (this.#pendingNotify !== undefined) {
      // Bounded: anyone may send, and the queue lives only until the restore is done.
      if (this.#pendingNotify.length < PENDING_NOTIFY_MAX) this.#pendingNotify.push(message);
      else this.#options.notify?.logAboutSender(message.sender, 'warning', `notification from PID ${message.sender.pid} dropped: ${PENDING_NOTIFY_MAX} wait for the units to be picked up`);
      return;
    }
    const ref = new ProcessRef(message.sender.pid, message.sender.pidfdId, message.sender.pidfdId === undefined ? undefined : bootId());
    let target: ServiceUnit | undefined;
    let origin: 'main' | 'control' | 'other' = 'other';
    for (const unit of this.units.values()) {
      const owned = unit.owns(ref);
      if (owned !== undefined) {
        target = unit;
        origin = owned;
        break;
      }
    }
    if (target === undefined) {
      // NotifyAccess=all: any process of the unit's sessions may speak for it.
      let handle: Pidfd | undefined;
      try {
        handle = message.sender.pidfdId === undefined ? Pidfd.open(message.sender.pid) : Pidfd.verify(message.sender.pid, message.sender.pidfdId);
        target = this.unitOfProcess(handle);
      } catch {
        target = undefined;
      } finally {
        handle?.close();
      }
    }
    if (target === undefined) {
      // Anyone may send to the socket: what strangers provoke goes through their uid's rate limit.
      this.#options.notify?.logAboutSender(message.sender, 'warning', `notification from PID ${message.sender.pid} (UID ${message.sender.uid}), which belongs to no unit; ignored`);
      return;
    }
    target.handleNotify(message, origin);
  }

  // ------------------------------------------------------------------------------ host

  #makeHost(): UnitHost {
    return new LinuxHost({
      self: this.#self,
      notify: this.#options.notify,
      reaper: this.reaper,
      keeper: this.#options.keeper,
      cgroups: () => this.cgroups,
      logs: this.#options.logs,
      holdCapture: (unit, capture, invocationId) => this.#holdCapture(unit, capture, { pid: null, pidfdId: null, invocationId }),
      persist: () => this.#schedulePersist(),
      emit: (event) => this.emit('event', event),
      note: (unit, level, text) => this.#noteUnit(unit, level, text),
      unitOf: (handle) => this.unitOfProcess(handle)?.name,
    });
  }

  #noteUnit(unit: PortedUnit, level: 'info' | 'warning' | 'error', text: string): void {
    this.#log(level, `${unit.name}: ${text}`);
    const record: LogRecord = { time: Date.now() * 1000, stream: 'manager', pid: process.pid, pidfdId: this.#self.id?.toString() ?? null, invocationId: unit.invocationId, message: text };
    try {
      this.#options.logs.append(unit.name, record);
    } catch (error) {
      this.#log('error', `could not store a log line of ${unit.name}: ${String(error)}`);
    }
    this.emit('event', { type: 'message', unit: unit.name, level, text, timestamp: Date.now() } satisfies ManagerEvent);
  }

  #log(level: 'info' | 'warning' | 'error', text: string): void {
    this.#options.log?.(level, text);
  }
}

function describeStatus(status: ExitStatus): string {
  return status.code !== null ? `exit code ${status.code}` : status.signal !== null ? `signal ${status.signal}` : 'unknown status';
}
