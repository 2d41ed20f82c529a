/**
 * The manager: loads units, runs jobs on them, routes notify datagrams and exits, and reports
 * every change as an event. It holds no PID without a pidfd.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';
import { bootId, Pidfd, ProcessRef, type ExitStatus, type ProcessIdJson } from '../pidfd/index.js';
import {
  formatDiagnostic,
  loadServiceUnit,
  UnitDirectories,
  parseServiceUnitText,
  type ServiceUnitConfig,
} from '../unit/index.js';
import { ChildReaper } from './reaper.js';
import { CgroupTree } from './cgroups.js';
import { withTimeout } from './timers.js';
import { ServiceUnit, type JobResult, type RecoveredControl } from './runtime/service-unit.js';
import { LinuxHost } from './runtime/linux-host.js';
import type { PortedUnit, UnitHost } from './runtime/ports.js';
import type { NotifyMessage, NotifyServer } from './notify-server.js';
import type { Keeper, RecoveredFd } from './keeper.js';
import { readJson, writeJsonAtomic } from './state-file.js';
import { readSlots, SlotWriter } from './state-slots.js';
import { sessionOf } from './session.js';
import type { DaemonState, LogRecord, ManagerEvent, UnitRecord, UnitStatus } from './types.js';

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

/** A unit that failed to load, kept so `status` can say why. */
interface BrokenUnit {
  name: string;
  errors: string[];
  fragmentPath: string | null;
}

/** A job's outcome as the API reports it. */
export interface JobOutcome {
  unit: string;
  result: JobResult;
  activeState: string;
  subState: string;
  serviceResult: string;
}

/** The service manager. */
export class Manager extends EventEmitter {
  readonly units = new Map<string, ServiceUnit>();
  readonly broken = new Map<string, BrokenUnit>();
  readonly reaper: ChildReaper;
  readonly #options: ManagerOptions;
  readonly #self: Pidfd;
  readonly #host: UnitHost;
  #enabled = new Set<string>();

  constructor(options: ManagerOptions) {
    super();
    this.#options = options;
    this.#self = Pidfd.self();
    this.#self.unref();
    this.reaper = new ChildReaper((pid, status) => this.#log('info', `reaped orphan PID ${pid} (${describeStatus(status)})`));
    this.#host = this.#makeHost();
    if (options.notify !== undefined) options.notify.onMessage = (message) => this.#onNotify(message);
    mkdirSync(options.stateDir, { recursive: true });
    this.#enabled = new Set(readJson<string[]>(join(options.stateDir, 'enabled.json')) ?? []);
    this.on('event', () => this.#schedulePersist());
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

  /** Starts reaping (as subreaper unless disabled) and loads every unit. */
  async open(): Promise<void> {
    await this.reload();
    await this.#restore();
    // Reaping starts only now: a child that ended meanwhile (across a re-exec) stays a zombie, so
    // its status is still there for the restored unit that tracks it.
    this.reaper.install(this.#options.subreaper !== false);
    const queued = this.#pendingNotify ?? [];
    this.#pendingNotify = undefined;
    for (const message of queued) this.#onNotify(message);
    this.#persistNow();
  }

  /** Picks up what a previous daemon on this boot recorded and what its keeper held. */
  async #restore(): Promise<void> {
    const recovered = this.#options.recovered ?? [];
    const used = new Set<RecoveredFd>();
    // `state.json` is where holdfast before the slotted record kept it: read after an upgrade by daemon-reexec.
    const state = readSlots<DaemonState>(join(this.#options.stateDir, 'state')) ?? readJson<DaemonState>(join(this.#options.stateDir, 'state.json'));
    if (state !== undefined && state.bootId === bootId()) {
      for (const record of state.units) {
        let unit = this.units.get(record.name);
        if (unit === undefined && record.transientText !== undefined) {
          const parsed = parseServiceUnitText(record.transientText, `transient:${record.name}`, { unitName: record.name });
          if (parsed.config !== undefined) {
            unit = new ServiceUnit(parsed.config, this.#host, true);
            this.units.set(record.name, unit);
            this.#transientTexts.set(record.name, record.transientText);
          }
        }
        if (unit === undefined) {
          if (record.main !== null) this.#log('warning', `${record.name} was running (main PID ${record.main.pid}) but its unit file is gone; leaving it alone`);
          if (record.control != null) this.#log('warning', `${record.name} was running a control process (PID ${record.control.process.pid}) but its unit file is gone; leaving it alone`);
          continue;
        }
        let main: Pidfd | undefined;
        let exit: ExitStatus | undefined;
        if (record.main !== null) {
          const held = recovered.find((r) => r.kind === 'pidfd' && r.pid === record.main!.pid && r.pidfdId === String(record.main!.pidfdId));
          if (held !== undefined) {
            used.add(held);
            main = Pidfd.adopt(held.fd, { pid: record.main.pid });
          } else {
            try {
              main = ProcessRef.parse(record.main).resolve();
            } catch (error) {
              this.#log('warning', `${record.name}: recorded main process ${record.main.pid} cannot be re-adopted (${(error as NodeJS.ErrnoException).code})`);
            }
          }
          if (main !== undefined && !main.isAlive()) {
            // Its new parent (init, or a subreaper) reaps it soon; only then does the kernel tell how it ended.
            const ended = await withTimeout(main.unref().exited, 3000);
            exit = ended === 'timeout' ? undefined : ended;
          }
        }
        const control = record.control != null ? await this.#recoverControl(record.name, record.control.process, recovered, used) : undefined;
        unit.restore(record, main, exit, control);
      }
    }
    // Output the previous daemon never read is still in the pipes: read it now.
    for (const entry of recovered) {
      if (entry.kind === 'log' && entry.unit !== undefined) {
        used.add(entry);
        const capture = this.#options.logs.captureFromFds(entry.unit, {
          invocationId: entry.invocationId ?? null,
          ...(entry.stream === 'stderr' ? { stderrReadFd: entry.fd, stderrSpool: entry.spool ?? null } : { stdoutReadFd: entry.fd, stdoutSpool: entry.spool ?? null }),
          writer: { pid: entry.pid ?? null, pidfdId: entry.pidfdId ?? null },
        });
        this.#holdCapture(entry.unit, capture, { pid: entry.pid ?? null, pidfdId: entry.pidfdId ?? null, invocationId: entry.invocationId ?? null });
      }
    }
    for (const entry of recovered) if (!used.has(entry) && entry.kind !== 'notify') native.close(entry.fd);
    // Spools whose pipes did not come back (the keeper died too) still hold what was read into them.
    const spooled = await this.#options.logs.recoverSpools?.();
    if (spooled !== undefined && spooled > 0) this.#log('warning', `recovered ${spooled} line(s) from spools whose pipes were lost`);
  }

  /**
   * A recorded control process, as the main process is found: the keeper's pidfd, or `pidfd_open` +
   * id comparison. One that ended comes with how it ended (`PIDFD_INFO_EXIT`); one that does not
   * verify (a recycled PID) is never opened for good, let alone signalled.
   */
  async #recoverControl(unit: string, ref: ProcessIdJson, recovered: RecoveredFd[], used: Set<RecoveredFd>): Promise<RecoveredControl> {
    let handle: Pidfd;
    const held = recovered.find((r) => r.kind === 'pidfd' && r.pid === ref.pid && r.pidfdId === String(ref.pidfdId));
    if (held !== undefined) {
      used.add(held);
      handle = Pidfd.adopt(held.fd, { pid: ref.pid });
    } else {
      try {
        handle = ProcessRef.parse(ref).resolve();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        this.#log('warning', `${unit}: recorded control process ${ref.pid} cannot be re-adopted (${code})`);
        return { state: 'lost', reason: code === 'ESTALE' ? 'its PID now belongs to another process' : code === 'ESRCH' ? 'it is gone and the kernel kept no status' : code };
      }
    }
    if (handle.isAlive()) return { state: 'alive', handle };
    // Its new parent (init, or a subreaper) reaps it soon; only then does the kernel tell how it ended.
    const ended = await withTimeout(handle.unref().exited, 3000);
    handle.close();
    return { state: 'ended', exit: ended === 'timeout' ? undefined : ended };
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
  readonly #transientTexts = new Map<string, string>();

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
      const text = this.#transientTexts.get(unit.name);
      return text === undefined ? record : { ...record, transientText: text };
    });
    const state: DaemonState = { bootId: bootId(), written: Date.now(), units };
    try {
      const first = this.#stateWriter === undefined;
      this.#stateWriter ??= new SlotWriter(join(this.#options.stateDir, 'state'));
      this.#stateWriter.write(state);
      // The record of a holdfast from before the slots has been read (if any) and is superseded.
      if (first) rmSync(join(this.#options.stateDir, 'state.json'), { force: true });
    } catch (error) {
      this.#log('error', `could not record the daemon state: ${(error as Error).message}`);
    }
  }

  #captureSeq = 0;
  #stateWriter: SlotWriter | undefined;

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
        const key = `log:${unit}:${seq}:${stream}`;
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

  /** Reads the unit directories again (`daemon-reload`); running units keep running with the new config for their next start. */
  async reload(): Promise<{ loaded: number; failed: number }> {
    // One scan of the directories serves every unit of this reload.
    const directories = await UnitDirectories.open({ unitDirs: this.#options.unitDirs });
    const entries = await directories.list();
    const seen = new Set<string>();
    let failed = 0;
    for (const entry of entries) {
      if (entry.kind !== 'service') continue;
      seen.add(entry.name);
      if (!(await this.#loadOne(entry.name, directories))) failed++;
    }
    for (const [name, unit] of this.units) {
      if (!seen.has(name) && !unit.transient && !name.includes('@') && unit.activeState === 'inactive') this.units.delete(name);
    }
    for (const name of this.broken.keys()) if (!seen.has(name)) this.broken.delete(name);
    return { loaded: this.units.size, failed };
  }

  async #loadOne(name: string, directories?: UnitDirectories): Promise<boolean> {
    const result = directories === undefined ? await loadServiceUnit(name, { unitDirs: this.#options.unitDirs }) : await directories.load(name);
    const errors = result.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    for (const d of result.diagnostics) if (d.severity === 'warning') this.#log('warning', formatDiagnostic(d));
    if (result.config === undefined || errors.length > 0) {
      this.broken.set(name, { name, errors: errors.length > 0 ? errors : [`${name}: ${result.state}`], fragmentPath: result.sourcePaths[0] ?? null });
      for (const error of errors) this.#log('error', error);
      return false;
    }
    this.broken.delete(name);
    const existing = this.units.get(name);
    if (existing !== undefined) existing.config = result.config;
    else this.units.set(name, new ServiceUnit(result.config, this.#host));
    return true;
  }

  /** A bare name means the scope of that name if there is one, else the service. */
  #fullName(name: string): string {
    if (name.includes('.')) return name;
    return this.units.has(`${name}.scope`) ? `${name}.scope` : `${name}.service`;
  }

  /** The unit, loading an instance of a template on first use. Throws `ENOENT` if there is none. */
  async unit(name: string): Promise<ServiceUnit> {
    const full = this.#fullName(name);
    const existing = this.units.get(full);
    if (existing !== undefined) return existing;
    const broken = this.broken.get(full);
    if (broken !== undefined) throw Object.assign(new Error(`unit ${full} failed to load: ${broken.errors.join('; ')}`), { code: 'EBADMSG' });
    if (full.includes('@') && (await this.#loadOne(full))) return this.units.get(full)!;
    const err = this.broken.get(full);
    if (err !== undefined) throw Object.assign(new Error(`unit ${full} failed to load: ${err.errors.join('; ')}`), { code: 'EBADMSG' });
    throw Object.assign(new Error(`unit ${full} not found`), { code: 'ENOENT' });
  }

  // ------------------------------------------------------------------------------------ jobs

  /** Starts a unit and what it Requires=/Wants=/BindsTo=, ordered by After=/Before=. */
  async start(name: string): Promise<JobOutcome> {
    const unit = await this.unit(name);
    const deps = [...unit.config.unit.requires, ...unit.config.unit.bindsTo, ...unit.config.unit.wants];
    const required = new Set([...unit.config.unit.requires, ...unit.config.unit.bindsTo]);
    for (const conflict of unit.config.unit.conflicts) {
      const other = this.units.get(conflict);
      if (other !== undefined && other.activeState !== 'inactive' && other.activeState !== 'failed') await other.stop();
    }
    const before: Promise<[string, JobOutcome | Error]>[] = [];
    for (const dep of deps) {
      if (!dep.endsWith('.service')) continue;
      const job = this.start(dep).then(
        (outcome): [string, JobOutcome | Error] => [dep, outcome],
        (error: Error): [string, JobOutcome | Error] => [dep, error],
      );
      if (unit.config.unit.after.includes(dep)) before.push(job);
    }
    for (const other of this.units.values()) {
      // Before= on the other side orders us after it too, if it is being started.
      if (other.config.unit.before.includes(unit.name) && other.activeState === 'activating') before.push(other.start().then((r) => [other.name, this.#outcome(other, r)]));
    }
    for (const [dep, outcome] of await Promise.all(before)) {
      const failed = outcome instanceof Error || outcome.result === 'failed';
      if (failed && required.has(dep)) {
        this.#noteUnit(unit, 'error', `dependency ${dep} failed; not starting`);
        return { unit: unit.name, result: 'failed', activeState: unit.activeState, subState: unit.subState, serviceResult: 'resources' };
      }
    }
    if (!(await unit.loadEnvironmentFiles())) {
      unit.result = 'resources';
      return this.#outcome(unit, 'failed');
    }
    return this.#outcome(unit, await unit.start());
  }

  /** Stops a unit and the units that Require=/BindsTo=/PartOf= it. */
  async stop(name: string): Promise<JobOutcome> {
    const unit = await this.unit(name);
    await Promise.all(this.#dependents(unit.name).map((u) => u.stop()));
    return this.#outcome(unit, await unit.stop());
  }

  async restart(name: string): Promise<JobOutcome> {
    const unit = await this.unit(name);
    await Promise.all(this.#partOf(unit.name).map((u) => u.stop()));
    await unit.stop();
    const outcome = await this.start(name);
    await Promise.all(this.#partOf(unit.name).map((u) => this.start(u.name)));
    return outcome;
  }

  /** Restarts only if running. */
  async tryRestart(name: string): Promise<JobOutcome> {
    const unit = await this.unit(name);
    if (unit.activeState !== 'active' && unit.activeState !== 'reloading' && unit.activeState !== 'activating') return this.#outcome(unit, 'done');
    return this.restart(name);
  }

  async reloadUnit(name: string): Promise<JobOutcome> {
    const unit = await this.unit(name);
    return this.#outcome(unit, await unit.reload());
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
    const full = name.endsWith('.service') ? name : `${name}.service`;
    if (this.units.has(full)) {
      const existing = this.units.get(full)!;
      if (!existing.transient || (existing.activeState !== 'inactive' && existing.activeState !== 'failed')) {
        throw Object.assign(new Error(`unit ${full} already exists`), { code: 'EEXIST' });
      }
    }
    const parsed = parseServiceUnitText(unitText, `transient:${full}`, { unitName: full });
    const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0 || parsed.config === undefined) {
      throw Object.assign(new Error(errors.map(formatDiagnostic).join('; ') || 'invalid transient unit'), { code: 'EINVAL' });
    }
    const unit = new ServiceUnit(parsed.config as ServiceUnitConfig, this.#host, true);
    this.units.set(full, unit);
    this.#transientTexts.set(full, unitText);
    return this.start(full);
  }

  /** Puts processes that were started elsewhere under a new scope unit (`holdfast run --scope`). */
  createScope(name: string, handles: Pidfd[], description: string): ServiceUnit {
    const full = name.endsWith('.scope') || name.endsWith('.service') ? name : `${name}.scope`;
    const existing = this.units.get(full);
    if (existing !== undefined && (!existing.transient || (existing.activeState !== 'inactive' && existing.activeState !== 'failed'))) {
      throw Object.assign(new Error(`unit ${full} already exists`), { code: 'EEXIST' });
    }
    // A scope runs nothing itself: the placeholder command is never executed.
    const text = `[Unit]\nDescription=${description.replace(/[\n%]/g, ' ')}\n[Service]\nExecStart=/bin/true\n`;
    const parsed = parseServiceUnitText(text, `transient:${full}`, { unitName: full.replace(/\.scope$/, '.service') });
    if (parsed.config === undefined) throw Object.assign(new Error('invalid scope'), { code: 'EINVAL' });
    const unit = new ServiceUnit({ ...parsed.config, name: full, names: [full] }, this.#host, true);
    this.units.set(full, unit);
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
    for (const n of names) {
      if (on) this.#enabled.add(n);
      else this.#enabled.delete(n);
    }
    writeJsonAtomic(join(this.#options.stateDir, 'enabled.json'), [...this.#enabled].sort(), true);
    return names;
  }

  /** Units to start with the daemon. */
  enabledUnits(): string[] {
    return [...this.#enabled].filter((n) => this.units.has(n));
  }

  /** The snapshot of one unit. */
  async status(name: string): Promise<UnitStatus> {
    const full = this.#fullName(name);
    const broken = this.broken.get(full);
    if (broken !== undefined) return brokenStatus(broken);
    const unit = await this.unit(full);
    return this.#statusOf(unit);
  }

  /** Every loaded (or broken) unit. */
  list(): UnitStatus[] {
    const all = [...[...this.units.values()].map((u) => this.#statusOf(u, false)), ...[...this.broken.values()].map(brokenStatus)];
    return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The unit a process belongs to, checked against its pidfd. */
  unitOfProcess(handle: Pidfd): ServiceUnit | undefined {
    const ref = ProcessRef.of(handle);
    for (const unit of this.units.values()) if (unit.owns(ref) !== undefined) return unit;
    if (this.cgroups !== undefined) {
      // One read of the process's own cgroup, instead of listing every unit's members.
      const path = this.cgroups.cgroupOf(handle);
      if (path !== undefined) for (const unit of this.units.values()) if (this.cgroups.path(unit.name) === path) return unit;
    }
    const session = sessionOf(handle);
    if (session === undefined) return undefined;
    for (const unit of this.units.values()) if (unit.sessions.has(session)) return unit;
    return undefined;
  }

  /** Stops every unit (in reverse start order, roughly) and releases what the manager holds. */
  async shutdown(): Promise<void> {
    const active = [...this.units.values()].filter((u) => u.activeState !== 'inactive' && u.activeState !== 'failed');
    // Units ordered After= others stop first.
    active.sort((a, b) => (a.config.unit.after.includes(b.name) ? -1 : b.config.unit.after.includes(a.name) ? 1 : 0));
    await Promise.all(active.map((u) => u.stop()));
    for (const unit of this.units.values()) unit.dispose();
    this.#persistNow();
    this.cgroups?.removeAll(this.units.keys());
    this.reaper.reap();
    this.reaper.uninstall();
    this.#self.close();
  }

  /** One unit's snapshot; resource figures (a few cgroupfs reads each) only when asked for. */
  #statusOf(unit: ServiceUnit, withStats = true): UnitStatus {
    const enabled = unit.transient ? 'transient' : this.#enabled.has(unit.name) ? 'enabled' : hasInstall(unit.config) ? 'disabled' : 'static';
    const path = this.cgroups?.path(unit.name);
    const stats = withStats && this.cgroups !== undefined && path !== undefined && existsSync(path) ? this.cgroups.stats(unit.name) : undefined;
    return {
      ...unit.status(),
      loadState: 'loaded',
      enabled,
      cgroup: stats?.path ?? (path !== undefined && existsSync(path) ? path : null),
      memoryCurrent: stats?.memoryCurrent ?? null,
      cpuUsageUsec: stats?.cpuUsageUsec ?? null,
      tasks: stats?.tasks ?? null,
      ...(this.cgroupsUnavailable === undefined ? {} : { cgroupUnavailable: this.cgroupsUnavailable }),
    };
  }

  #outcome(unit: ServiceUnit, result: JobResult): JobOutcome {
    return { unit: unit.name, result, activeState: unit.activeState, subState: unit.subState, serviceResult: unit.result };
  }

  #dependents(name: string): ServiceUnit[] {
    return [...this.units.values()].filter(
      (u) => u.name !== name && (u.config.unit.requires.includes(name) || u.config.unit.bindsTo.includes(name) || u.config.unit.partOf.includes(name)),
    );
  }

  #partOf(name: string): ServiceUnit[] {
    return [...this.units.values()].filter((u) => u.name !== name && u.config.unit.partOf.includes(name));
  }

  // ------------------------------------------------------------------------------ notify

  #onNotify(message: NotifyMessage): void {
    // Until the units are picked up from the previous daemon, their processes cannot be recognised.
    if (this.#pendingNotify !== undefined) {
      this.#pendingNotify.push(message);
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
      this.#log('warning', `notification from PID ${message.sender.pid}, which belongs to no unit; ignored`);
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

function hasInstall(config: ServiceUnitConfig): boolean {
  return config.install.wantedBy.length > 0 || config.install.requiredBy.length > 0 || config.install.alias.length > 0;
}

function brokenStatus(broken: BrokenUnit): UnitStatus {
  return {
    name: broken.name,
    description: broken.name,
    loadState: 'error',
    loadErrors: broken.errors,
    activeState: 'inactive',
    subState: 'dead',
    result: 'success',
    type: 'unknown',
    mainProcess: null,
    controlProcess: null,
    restarts: 0,
    lastExit: null,
    statusText: null,
    invocationId: null,
    stateChangeTimestamp: Date.now(),
    activeEnterTimestamp: null,
    fragmentPath: broken.fragmentPath,
    dropInPaths: [],
    transient: false,
    enabled: 'static',
  };
}

function describeStatus(status: ExitStatus): string {
  return status.code !== null ? `exit code ${status.code}` : status.signal !== null ? `signal ${status.signal}` : 'unknown status';
}
