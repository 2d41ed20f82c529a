/**
 * The driver of one service: it holds the service machine's state (plain data), feeds it events
 * stamped with the clock, and carries out the effects the machine returns, in order, through the
 * unit's ports. An event raised while effects run (a spawn answers at once) waits in a queue until
 * the current step's effects are done, so the machine always sees one event at a time.
 *
 * Processes are named by slots between the machine and the driver; the driver maps each slot to
 * the handle the process port gave it.
 */
import { randomBytes } from 'node:crypto';
import type { ExitStatus, Pidfd, ProcessRef } from '../../pidfd/index.js';
import type { ServiceUnitConfig } from '../../unit/index.js';
import { serviceStep } from '../machines/service-machine.js';
import { recordOf, restoreServiceState, type FoundProcess, type FoundProcesses } from '../machines/service-restore.js';
import type { JobKind, JobResult, ProcessSlot, ServiceEffect, ServiceEvent, ServiceEventBody, ServiceTimer } from '../machines/service-protocol.js';
import { initialServiceState, type ServiceMachineState } from '../machines/service-state.js';
import { activeStateOf } from '../machines/service-states.js';
import type { ActiveState, LastExit, ServiceResult, SubState, UnitRecord, UnitStatus } from '../types.js';
import { notifyEvent, type NotifyInput } from './notify-event.js';
import type { HeldProcess, UnitHost, UnitPorts } from './ports.js';
import type { RecoveredControl } from './recovered.js';
import { DriverHandles, runEffects } from './driver-handles.js';
import { ScopeRun } from './scope.js';
import { RateLimitedLog } from '../rate-limited-log.js';

export type { JobResult } from '../machines/service-protocol.js';
export type { RecoveredControl } from './recovered.js';
export type { NotifyInput } from './notify-event.js';

type Candidates = { main?: HeldProcess; control?: HeldProcess };

/** One event waiting for the machine, with a process found for it (a MAINPID= or PIDFile= candidate). */
interface Queued {
  readonly body: ServiceEventBody;
  readonly candidates?: Candidates;
}

/** A service unit under supervision. */
export class ServiceUnit {
  config: ServiceUnitConfig;
  readonly transient: boolean;
  /** Wall-clock time of the last change of the active state. */
  stateChangeTimestamp: number;
  /** When the unit last became active (wall clock), or null. */
  activeEnterTimestamp: number | null = null;

  readonly #ports: UnitPorts;
  #state: ServiceMachineState = initialServiceState();
  readonly #held: DriverHandles<ServiceTimer>;
  readonly #queue: Queued[] = [];
  #stepping = false;
  /** Whether the step running is a notification's (its log lines go through {@link #notifyLog}). */
  #inNotifyStep = false;
  readonly #notifyLog: RateLimitedLog;
  #candidates: Candidates | undefined;
  readonly #jobWaiters: Record<JobKind, ((result: JobResult) => void)[]> = { start: [], stop: [], reload: [] };
  #stateWaiters: (() => void)[] = [];
  #lastActive: ActiveState = 'inactive';
  #lastInvocation: string | null = null;
  #scope: ScopeRun | undefined;

  constructor(config: ServiceUnitConfig, host: UnitHost, transient = false) {
    this.config = config;
    this.transient = transient;
    this.#ports = host.portsFor(this);
    this.#held = new DriverHandles(this.#ports);
    const events = this.#ports.events;
    this.#notifyLog = new RateLimitedLog((level, text) => events.log(level === 'debug' ? 'info' : level, text), 'notifications: ', {}, () => this.#ports.clock.now());
    this.stateChangeTimestamp = this.#ports.clock.wallNow();
  }

  get name(): string {
    return this.config.name;
  }

  get subState(): SubState {
    return this.#scope?.subState ?? this.#state.sub;
  }

  /** Looked up from the sub state (systemd's translation table): never set on its own. */
  get activeState(): ActiveState {
    return activeStateOf(this.subState);
  }

  get result(): ServiceResult {
    return this.#scope?.result ?? this.#state.result;
  }

  get restarts(): number {
    return this.#state.restarts;
  }

  get lastExit(): LastExit | null {
    return this.#scope?.lastExit ?? this.#state.lastExit;
  }

  get statusText(): string | null {
    return this.#state.statusText;
  }

  get invocationId(): string | null {
    return this.#scope?.invocationId ?? this.#state.invocationId;
  }

  /** The main process, while there is one. */
  get main(): HeldProcess | undefined {
    if (this.#scope !== undefined) return this.#scope.main;
    return this.#held.get(this.#state.main?.slot);
  }

  /** The control process (ExecStartPre=, ExecReload=, ExecStop=, …), while one runs. */
  get control(): HeldProcess | undefined {
    return this.#held.get(this.#state.control?.slot);
  }

  /** The machine's state, for tests and diagnostics. */
  get machineState(): ServiceMachineState {
    return this.#state;
  }

  /** Session ids of this unit's processes still live (what the state record keeps). */
  get sessions(): ReadonlySet<number> {
    return this.#ports.processes.sessions;
  }

  /** Whether a live process is one of this unit's (its cgroup, or one of its live sessions), checked through its pidfd. */
  hasMember(handle: Pidfd): boolean {
    return this.#ports.processes.isMember(handle);
  }

  /** The snapshot `status` and `list` show. */
  status(): Omit<UnitStatus, 'loadState' | 'enabled'> {
    return {
      name: this.name,
      description: this.config.unit.description || this.name,
      activeState: this.activeState,
      subState: this.subState,
      result: this.result,
      type: this.config.service.type,
      mainProcess: this.main?.ref() ?? null,
      controlProcess: this.control?.ref() ?? null,
      restarts: this.restarts,
      lastExit: this.lastExit,
      statusText: this.statusText,
      invocationId: this.invocationId,
      stateChangeTimestamp: this.stateChangeTimestamp,
      activeEnterTimestamp: this.activeEnterTimestamp,
      fragmentPath: this.config.fragmentPath,
      dropInPaths: [...this.config.dropInPaths],
      transient: this.transient,
    };
  }

  /** Whether a process is the main or a control process of this unit (compared by pidfd id where known). */
  owns(ref: ProcessRef): 'main' | 'control' | undefined {
    if (sameProcess(this.main, ref)) return 'main';
    if (sameProcess(this.control, ref)) return 'control';
    return undefined;
  }

  // ------------------------------------------------------------------------------------ jobs

  /** Starts the unit; resolves when the start job is done (active, skipped or failed). */
  start(): Promise<JobResult> {
    if (this.#scope !== undefined) return Promise.resolve(this.#scope.active ? 'done' : 'failed');
    return this.#job('start', { type: 'start', invocationId: randomBytes(16).toString('hex') });
  }

  /** Stops the unit; resolves once it is inactive or failed. */
  stop(): Promise<JobResult> {
    if (this.#scope !== undefined) return this.#scope.stop();
    return this.#job('stop', { type: 'stop' });
  }

  /** Stop, then start. */
  async restart(): Promise<JobResult> {
    await this.stop();
    return this.start();
  }

  /** Reloads per ExecReload= or the notify-reload protocol; the service keeps running if it fails. */
  reload(): Promise<JobResult> {
    if (this.#scope !== undefined) return Promise.resolve('unsupported');
    return this.#job('reload', { type: 'reload', monotonicUsec: this.#ports.clock.monotonicUsec() });
  }

  #job(kind: JobKind, body: ServiceEventBody): Promise<JobResult> {
    return new Promise((resolve) => {
      this.#jobWaiters[kind].push(resolve);
      this.#dispatch({ body });
    });
  }

  /** Sends a signal to the main process or to all of the unit's processes, each through its pidfd. */
  sendSignal(signal: number, whom: 'main' | 'all'): number {
    if (this.#scope !== undefined) return this.#scope.signal(signal, whom);
    const main = this.main;
    const control = this.control;
    let sent = main?.signal(signal) === true ? 1 : 0;
    if (whom === 'all') {
      if (control?.signal(signal) === true) sent++;
      sent += this.#ports.processes.signalMembers(signal, [main, control].filter((p) => p !== undefined));
    }
    return sent;
  }

  /** Forgets a failed state and the start-rate history. */
  resetFailed(): void {
    if (this.#scope === undefined) this.#dispatch({ body: { type: 'reset-failed' } });
  }

  /** Resolves at the next state change. */
  nextStateChange(): Promise<void> {
    return new Promise((resolve) => this.#stateWaiters.push(resolve));
  }

  // ---------------------------------------------------------------------------------- notify

  /** A datagram from one of this unit's processes (or any, for NotifyAccess=all). */
  handleNotify(message: NotifyInput, origin: 'main' | 'control' | 'other'): void {
    if (this.#scope !== undefined) return;
    const { body, candidate } = notifyEvent(message, origin, { sub: this.#state.sub, control: this.control, processes: this.#ports.processes, clock: this.#ports.clock });
    this.#dispatch(candidate === undefined ? { body } : { body, candidates: { main: candidate } });
  }

  // ---------------------------------------------------------------------------------- driver

  /** Feeds an event to the machine, or queues it while a step's effects run. */
  #dispatch(entry: Queued): void {
    this.#queue.push(entry);
    if (this.#stepping) return;
    this.#stepping = true;
    try {
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
        this.#step(next);
      }
    } finally {
      this.#stepping = false;
    }
  }

  #step(entry: Queued): void {
    const event: ServiceEvent = { ...entry.body, now: this.#ports.clock.now() };
    // A process that ended has nothing left to tell: its handle goes before the machine hears of it,
    // so nothing of this step (MAINPID=, a status) names a dead process.
    if (event.type === 'exited') this.#held.release(event.slot);
    const { state, effects } = serviceStep(this.config, this.#state, event);
    this.#state = state;
    this.#inNotifyStep = event.type === 'notify';
    try {
      this.#apply(effects, entry.candidates);
    } finally {
      this.#inNotifyStep = false;
    }
  }

  /** Runs one step's effects; a process found for the step that the machine did not adopt is let go. */
  #apply(effects: readonly ServiceEffect[], candidates: Candidates | undefined): void {
    this.#candidates = candidates;
    try {
      runEffects(effects, (effect) => this.#run(effect), this.#ports);
    } finally {
      // A candidate the machine did not adopt in this step is let go (closed, never signalled).
      for (const left of Object.values(this.#candidates ?? {})) left?.release();
      this.#candidates = undefined;
    }
  }

  #run(effect: ServiceEffect): void {
    const ports = this.#ports;
    switch (effect.type) {
      case 'check-conditions':
        this.#queue.push({ body: { type: 'conditions-checked', failed: ports.conditions(this.config) } });
        return;
      case 'spawn':
        return this.#spawn(effect);
      case 'adopt': {
        const process = this.#candidates?.[effect.role];
        if (process === undefined) return;
        delete this.#candidates![effect.role];
        this.#bind(effect.slot, process);
        if (effect.role === 'main') ports.processes.adoptSession(process);
        return;
      }
      case 'signal':
        // The slot, not the state's current main/control: one step may signal a process and then hand its role on.
        return this.#held.signal(effect.slot, effect.signal, effect);
      case 'signal-members': {
        const except = effect.except === 'main' && this.main !== undefined ? [this.main] : [];
        ports.processes.signalMembers(effect.signal, except, {
          ...(effect.useCgroupKill === undefined ? {} : { cgroupKill: effect.useCgroupKill }),
          ...(effect.thenCont === undefined ? {} : { thenCont: effect.thenCont }),
          ...(effect.thenHup === undefined ? {} : { thenHup: effect.thenHup }),
        });
        return;
      }
      case 'watch-members':
        return this.#held.watchMembers(effect.except === 'main' && this.main !== undefined ? [this.main] : [], () => this.#dispatch({ body: { type: 'members-gone' } }));
      case 'unwatch-members':
        return this.#held.unwatchMembers();
      case 'read-pid-file': {
        const read = ports.processes.readPidFile(effect.path);
        if (read.ok) {
          this.#queue.push({ body: { type: 'pid-file', result: { accepted: true, pid: read.process.pid, pidfdId: read.process.pidfdId } }, candidates: { main: read.process } });
        } else {
          this.#queue.push({ body: { type: 'pid-file', result: 'retry' in read ? { accepted: false, reason: read.reason, retry: true } : { accepted: false, reason: read.reason } } });
        }
        return;
      }
      case 'release':
        return this.#held.release(effect.slot);
      case 'arm-timer': {
        const { timer, generation } = effect;
        return this.#held.arm(timer, effect.ms, generation, () =>
          this.#dispatch({ body: { type: 'timer-fired', timer, generation, invocationId: randomBytes(16).toString('hex') } }),
        );
      }
      case 'cancel-timer':
        return this.#held.cancel(effect.timer);
      case 'persist':
        ports.events.persist();
        return;
      case 'emit-state':
        return this.#stateEntered(effect.activeState, effect.subState, effect.result);
      case 'log':
        // What a notification provokes, the unit's processes can provoke once per datagram: rate-limited.
        if (this.#inNotifyStep) this.#notifyLog.write(effect.level, effect.text);
        else ports.events.log(effect.level, effect.text);
        return;
      case 'job-done': {
        const waiters = this.#jobWaiters[effect.job].splice(0);
        for (const resolve of waiters) resolve(effect.result);
        return;
      }
    }
  }

  #spawn(effect: Extract<ServiceEffect, { type: 'spawn' }>): void {
    const processes = this.#ports.processes;
    if (effect.env.invocationId !== this.#lastInvocation) {
      // What an earlier invocation spawned is no longer looked for as the unit's.
      if (this.#lastInvocation !== null) processes.newInvocation();
      this.#lastInvocation = effect.env.invocationId;
    }
    const outcome = processes.spawn({ config: this.config, kind: effect.kind, command: effect.command, env: effect.env, main: this.main });
    if (!outcome.ok) {
      this.#queue.push({ body: { type: 'spawn-failed', slot: effect.slot, exitCode: outcome.exitCode, result: outcome.result, message: outcome.message } });
      return;
    }
    this.#bind(effect.slot, outcome.process);
    this.#queue.push({ body: { type: 'spawned', slot: effect.slot, pid: outcome.process.pid, pidfdId: outcome.process.pidfdId } });
  }

  /** Names a process by its slot and watches it to its end. */
  #bind(slot: ProcessSlot, process: HeldProcess): void {
    this.#held.bind(slot, process, (status: ExitStatus) => this.#dispatch({ body: { type: 'exited', slot, status } }));
  }

  #stateEntered(activeState: ActiveState, subState: SubState, result: ServiceResult): void {
    const now = this.#ports.clock.wallNow();
    if (activeState !== this.#lastActive) {
      this.stateChangeTimestamp = now;
      // Back from a reload is not a new activation.
      if (activeState === 'active' && this.#lastActive !== 'reloading') this.activeEnterTimestamp = now;
      this.#lastActive = activeState;
    }
    this.#ports.events.state({ activeState, subState, result });
    const waiters = this.#stateWaiters;
    this.#stateWaiters = [];
    for (const waiter of waiters) waiter();
  }

  // ------------------------------------------------------------------------- crash survival

  /** What a daemon records about this unit so that a new daemon can pick it up. */
  record(): UnitRecord {
    if (this.#scope !== undefined) return this.#scope.record(this.name, this.sessions);
    return recordOf(this.config, this.#state, {
      refOf: (slot) => this.#held.get(slot)?.ref() ?? null,
      activeEnterTimestamp: this.activeEnterTimestamp,
      sessions: [...this.sessions],
    });
  }

  /**
   * Picks the unit up from a previous daemon's record. `main` is a verified handle to the recorded
   * main process (alive or dead) or undefined when it could not be had; `exit` is how it ended where
   * the kernel kept that; `control` is what could be found of the recorded control process.
   */
  restore(record: UnitRecord, main: Pidfd | undefined, exit: ExitStatus | undefined, control?: RecoveredControl): void {
    const processes = this.#ports.processes;
    const candidates: Candidates = {};
    const found: { main?: FoundProcess; control?: FoundProcess } = {};
    if (record.main !== null) {
      if (main !== undefined && main.isAlive()) {
        candidates.main = processes.hold(main, record.sessions);
        found.main = { state: 'alive', pid: candidates.main.pid, pidfdId: candidates.main.pidfdId };
      } else {
        main?.close();
        found.main = { state: 'ended', status: known(exit) };
      }
    } else if (main !== undefined) main.close();
    if (record.control != null && control !== undefined) {
      if (control.state === 'alive') {
        candidates.control = processes.hold(control.handle, record.sessions);
        found.control = { state: 'alive', pid: candidates.control.pid, pidfdId: candidates.control.pidfdId };
      } else {
        found.control = control.state === 'ended' ? { state: 'ended', status: known(control.exit) } : control;
      }
    } else if (control?.state === 'alive') control.handle.close();
    this.activeEnterTimestamp = record.activeEnterTimestamp;
    this.#lastInvocation = record.invocationId;
    const restored = restoreServiceState(this.config, record, found as FoundProcesses, this.#ports.clock.now());
    this.#state = restored.state;
    this.#lastActive = activeStateOf(restored.state.sub);
    this.#stepping = true;
    try {
      this.#apply(restored.effects, candidates);
    } finally {
      this.#stepping = false;
    }
    // What happened while no daemon watched, then anything the effects raised, in order.
    this.#queue.unshift(...restored.meanwhile.map((body) => ({ body })));
    const next = this.#queue.shift();
    if (next !== undefined) this.#dispatch(next);
  }

  /**
   * Makes this unit a scope of processes started elsewhere (`holdfast run --scope`): it is active
   * while any of them lives, and stopping it signals each through its pidfd. The handles are the
   * unit's from now on.
   */
  adoptScope(handles: Pidfd[]): void {
    const held = handles.map((handle) => this.#ports.processes.hold(handle));
    this.#scope = new ScopeRun(this.#ports, () => this.config.service, held, randomBytes(16).toString('hex'), (active, sub, result) => this.#stateEntered(active, sub, result));
  }

  /** Stops timers and watches so the daemon can exit (processes are left to the caller). */
  dispose(): void {
    this.#notifyLog.dispose();
    this.#held.dispose();
    this.#scope?.dispose();
  }
}

/** An exit status that says how the process ended, or null where the kernel kept nothing. */
function known(exit: ExitStatus | undefined): ExitStatus | null {
  return exit === undefined || (exit.code === null && exit.signal === null) ? null : exit;
}

function sameProcess(process: HeldProcess | undefined, ref: ProcessRef): boolean {
  if (process === undefined || process.pid !== ref.pid) return false;
  return ref.pidfdId === undefined || process.pidfdId === null || ref.pidfdId.toString() === process.pidfdId;
}
