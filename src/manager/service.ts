/**
 * One service unit's state machine: systemd's states, results and timeouts, with every process
 * held by a pidfd from birth. The flows (start, stop, reload, restart) are async functions; a
 * generation counter makes a flow that was overtaken (a stop during a start) stand down at its
 * next step instead of acting on a state it no longer owns.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, accessSync, constants as fsConstants, readdirSync } from 'node:fs';
import { ProcessRef, hasCode, signalName, type ExitStatus, type Pidfd } from '../pidfd/index.js';
import { loadEnvironmentFiles, type ExecCommand, type PathCondition, type ServiceUnitConfig } from '../unit/index.js';
import { sessionMembers, sessionOf } from './session.js';
import { spawnCommand, type SpawnError } from './spawner.js';
import type { NotifyInput, ServiceHost } from './service-host.js';
import { deferred, sleep, withTimeout } from './timers.js';
import type { ActiveState, ControlKind, ControlRecord, LastExit, ServiceResult, SubState, UnitRecord, UnitStatus } from './types.js';
import { groupsOf, lookupGroup, lookupUser, type Account } from './users.js';
import { RLIMIT_RESOURCES } from './rlimits.js';

/** How a job ended, as systemctl reports it. */
export type JobResult = 'done' | 'failed' | 'skipped' | 'canceled' | 'unsupported' | 'timeout';

/** One process of the service (main or control). */
interface Proc {
  handle: Pidfd;
  ref: ProcessRef;
  exited: Promise<ExitStatus>;
  status?: ExitStatus;
}

type ProcessKind = ControlKind | 'main';

/** The order of a unit's phases: a flow resumed at one phase skips the phases before it. */
const PHASES: readonly (ControlKind | 'start')[] = ['condition', 'start-pre', 'start', 'start-post', 'reload', 'stop', 'stop-post'];

/** What a new daemon found of a recorded control process. */
export type RecoveredControl =
  | { state: 'alive'; handle: Pidfd }
  | { state: 'ended'; exit: ExitStatus | undefined }
  | { state: 'lost'; reason: string };

/** Where a flow picks up after a daemon crash: the control process it was waiting for. */
interface ResumePoint {
  kind: ControlKind;
  index: number;
  pid: number;
  found: RecoveredControl;
  /** The re-adopted process, tracked, when it was alive. */
  proc: Proc | undefined;
  consumed: boolean;
}

/** One command of a control list; `command` is undefined for a resumed one the unit file no longer has. */
interface Step {
  command: ExecCommand | undefined;
  index: number;
  ignoreFailure: boolean;
}

type ControlOutcome = { ok: boolean; result: ServiceResult; status?: ExitStatus };

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);

/** A service unit under supervision. */
export class ServiceUnit {
  config: ServiceUnitConfig;
  readonly transient: boolean;

  activeState: ActiveState = 'inactive';
  subState: SubState = 'dead';
  result: ServiceResult = 'success';
  restarts = 0;
  lastExit: LastExit | null = null;
  statusText: string | null = null;
  invocationId: string | null = null;
  stateChangeTimestamp = Date.now();
  activeEnterTimestamp: number | null = null;
  main: Proc | undefined;
  control: Proc | undefined;
  /** Which command the control process runs, recorded with it. */
  #controlAt: { kind: ControlKind; index: number } | undefined;

  readonly #host: ServiceHost;
  /** Session ids of everything spawned for this activation: how its processes are found without cgroups. */
  readonly #sessions = new Set<number>();
  #generation = 0;
  #startTimes: number[] = [];
  #notifyAccessOverride: ServiceUnitConfig['service']['notifyAccess'] | undefined;
  #ready = deferred<void>();
  #reloadDone: ((ok: boolean) => void) | undefined;
  #reloadStartedUsec = 0n;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #watchdogMs = 0;
  #restartTimer: { cancel(): void } | undefined;
  #runtimeTimer: NodeJS.Timeout | undefined;
  #timeout: { deadline: number } | undefined;
  #manualStop = false;
  #stopping: Promise<void> | undefined;
  #stateWaiters: (() => void)[] = [];
  /** How the last main process's exit classifies, for a start that outlived its main process. */
  #lastMainResult: ServiceResult = 'success';

  constructor(config: ServiceUnitConfig, host: ServiceHost, transient = false) {
    this.config = config;
    this.#host = host;
    this.transient = transient;
  }

  get name(): string {
    return this.config.name;
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
      mainProcess: this.main?.ref.toJSON() ?? null,
      controlProcess: this.control?.ref.toJSON() ?? null,
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
    if (this.main !== undefined && this.main.ref.equals(ref) && this.main.status === undefined) return 'main';
    if (this.control !== undefined && this.control.ref.equals(ref) && this.control.status === undefined) return 'control';
    return undefined;
  }

  /** Sessions of this unit's processes (for finding the unit of a PID). */
  get sessions(): ReadonlySet<number> {
    return this.#sessions;
  }

  // ---------------------------------------------------------------------------------------- jobs

  /** Starts the unit; resolves when the start job is done (active, skipped or failed). */
  async start(): Promise<JobResult> {
    if (this.#restartTimer !== undefined) {
      this.#restartTimer.cancel();
      this.#restartTimer = undefined;
    }
    if (this.activeState === 'active' || this.activeState === 'reloading') return 'done';
    if (this.activeState === 'activating' && this.subState !== 'auto-restart') return this.#waitForStartJob();
    if (this.#stopping !== undefined) await this.#stopping;
    this.#manualStop = false;
    return this.#startFlow(false);
  }

  /** Stops the unit; resolves once it is inactive or failed. */
  async stop(): Promise<JobResult> {
    this.#manualStop = true;
    // Recorded at once: a daemon that dies before the next state change must not resume a start instead.
    this.#host.recordChanged(this);
    if (this.#restartTimer !== undefined) {
      this.#restartTimer.cancel();
      this.#restartTimer = undefined;
      this.#setState(this.result === 'success' ? 'inactive' : 'failed', this.result === 'success' ? 'dead' : 'failed');
      return 'done';
    }
    if (this.activeState === 'inactive' || this.activeState === 'failed') return 'done';
    if (this.#stopping !== undefined) {
      await this.#stopping;
      return 'done';
    }
    const wasStarted = this.activeState === 'active' || this.activeState === 'reloading';
    await this.#stop(wasStarted);
    return 'done';
  }

  /** Stop, then start. */
  async restart(): Promise<JobResult> {
    await this.stop();
    return this.start();
  }

  /** Reloads per ExecReload= or the notify-reload protocol; the service keeps running if it fails. */
  async reload(): Promise<JobResult> {
    if (this.activeState !== 'active') return 'failed';
    const s = this.config.service;
    if (s.type === 'notify-reload' && this.main !== undefined) {
      const done = new Promise<boolean>((resolve) => (this.#reloadDone = resolve));
      this.#reloadStartedUsec = monotonicUsec();
      this.#setState('reloading', 'reload-signal');
      try {
        this.main.handle.signal(s.reloadSignal);
      } catch (error) {
        this.#note('warning', `sending the reload signal failed: ${String(error)}`);
        this.#reloadDone = undefined;
        this.#setState('active', 'running');
        return 'failed';
      }
      const outcome = await withTimeout(done, s.timeoutStartMs);
      this.#reloadDone = undefined;
      if (this.#isReloading()) this.#setState('active', 'running');
      return outcome === true ? 'done' : outcome === 'timeout' ? 'timeout' : 'failed';
    }
    if (s.execReload.length === 0) return 'unsupported';
    this.#setState('reloading', 'reload');
    return this.#execReload();
  }

  /** The ExecReload= commands (from the resumed one, after a crash), then back to running. */
  async #execReload(resume?: ResumePoint): Promise<JobResult> {
    const s = this.config.service;
    let ok = true;
    for (const step of this.#steps('reload', s.execReload, resume)) {
      const outcome = await this.#controlStep(step, 'reload', s.timeoutStartMs, resume);
      if (!outcome.ok && !step.ignoreFailure) {
        ok = false;
        break;
      }
    }
    if (this.#isReloading()) this.#setState('active', this.main !== undefined || !s.remainAfterExit ? 'running' : 'exited');
    return ok ? 'done' : 'failed';
  }

  /** Sends a signal to the main process or to all of the unit's processes, each through its pidfd. */
  sendSignal(signal: number, whom: 'main' | 'all'): number {
    const targets: Pidfd[] = [];
    if (this.main !== undefined && this.main.status === undefined) targets.push(this.main.handle);
    const extra: Pidfd[] = [];
    if (whom === 'all') {
      if (this.control !== undefined && this.control.status === undefined) targets.push(this.control.handle);
      extra.push(...sessionMembers(this.#sessions, new Set(targets.map((t) => t.pid))));
    }
    let sent = 0;
    for (const handle of [...targets, ...extra]) {
      try {
        handle.signal(signal);
        sent++;
      } catch (error) {
        if (!hasCode(error, 'ESRCH')) throw error;
      }
    }
    for (const handle of extra) handle.close();
    return sent;
  }

  /** Forgets a failed state and the start-rate history. */
  resetFailed(): void {
    this.#startTimes = [];
    if (this.activeState === 'failed') {
      this.result = 'success';
      this.#setState('inactive', 'dead');
    } else {
      this.result = 'success';
    }
  }

  /** Resolves at the next state change. */
  nextStateChange(): Promise<void> {
    return new Promise((resolve) => this.#stateWaiters.push(resolve));
  }

  // ------------------------------------------------------------------------------------- notify

  /** A datagram from one of this unit's processes (or any, for NotifyAccess=all). */
  handleNotify(message: NotifyInput, origin: 'main' | 'control' | 'other'): void {
    const access = this.#notifyAccessOverride ?? this.config.service.notifyAccess;
    const allowed = access === 'all' || (access === 'main' && origin === 'main') || (access === 'exec' && origin !== 'other');
    if (!allowed) {
      this.#note('warning', `notification from PID ${message.sender.pid} refused (NotifyAccess=${access}, sender is ${origin === 'other' ? 'not a process of the unit' : `the ${origin} process`})`);
      return;
    }
    const get = (key: string): string | undefined => message.get(key);
    const status = get('STATUS');
    if (status !== undefined) this.statusText = status === '' ? null : status;
    const access2 = get('NOTIFYACCESS');
    if (access2 === 'none' || access2 === 'main' || access2 === 'exec' || access2 === 'all') this.#notifyAccessOverride = access2;
    if (get('MAINPIDFD') === '1' || get('MAINPID') !== undefined) this.#notifyMainPid(message);
    const watchdogUsec = get('WATCHDOG_USEC');
    if (watchdogUsec !== undefined && /^\d+$/.test(watchdogUsec)) {
      this.#watchdogMs = Number(watchdogUsec) / 1000;
      this.#armWatchdog();
    }
    if (get('WATCHDOG') === '1') this.#armWatchdog();
    if (get('WATCHDOG') === 'trigger') this.#watchdogExpired();
    const extend = get('EXTEND_TIMEOUT_USEC');
    if (extend !== undefined && /^\d+$/.test(extend) && this.#timeout !== undefined) {
      this.#timeout.deadline = Math.max(this.#timeout.deadline, Date.now() + Number(extend) / 1000);
    }
    if (get('RESTART_RESET') === '1') this.restarts = 0;
    if (get('FDSTORE') === '1') this.#note('info', 'FDSTORE=1 ignored: this unit has no file descriptor store');

    // Precedence within one message: STOPPING > READY > RELOADING.
    if (get('STOPPING') === '1') {
      if (this.activeState === 'active' || this.activeState === 'reloading') {
        this.#note('info', 'the service says it is stopping');
        void this.#stop(true);
      }
      return;
    }
    const reloading = get('RELOADING') === '1';
    if (reloading && this.subState === 'reload-signal') {
      const mono = get('MONOTONIC_USEC');
      if (mono !== undefined && /^\d+$/.test(mono) && BigInt(mono) >= this.#reloadStartedUsec) this.#setState('reloading', 'reload-notify');
    } else if (reloading && this.activeState === 'active') {
      this.#setState('reloading', 'reload-notify');
    }
    if (get('READY') === '1') {
      this.#ready.resolve();
      if (this.activeState === 'reloading' && (this.subState === 'reload-notify' || reloading)) {
        this.#setState('active', 'running');
        this.#reloadDone?.(true);
      }
    }
  }

  #notifyMainPid(message: NotifyInput): void {
    const allowedStates: SubState[] = ['start', 'start-post', 'running', 'reload', 'reload-signal', 'reload-notify', 'stop', 'stop-sigterm'];
    if (!allowedStates.includes(this.subState)) return;
    let handle: Pidfd | undefined;
    try {
      if (message.get('MAINPIDFD') === '1') {
        const fds = message.takeFds();
        if (fds.length !== 1) {
          for (const fd of fds) this.#host.closeFd(fd);
          this.#note('warning', `MAINPIDFD=1 with ${fds.length === 0 ? 'no' : 'more than one'} fd, ignored`);
          return;
        }
        handle = this.#host.adoptPidfd(fds[0]!);
      } else {
        const pidText = message.get('MAINPID')!;
        if (!/^\d+$/.test(pidText)) return this.#note('warning', `MAINPID=${pidText} is not a PID, ignored`);
        const idText = message.get('MAINPIDFDID');
        handle = idText === undefined ? this.#host.openPid(Number(pidText)) : this.#host.verifyPid(Number(pidText), idText);
      }
    } catch (error) {
      this.#note('warning', `new main PID refused: ${(error as Error).message}`);
      return;
    }
    const refusal = this.#host.mainPidRefusal(handle, this, message.sender.uid);
    if (refusal !== undefined) {
      handle.close();
      this.#note('warning', `new main PID ${handle.pid} refused: ${refusal}`);
      return;
    }
    if (this.main !== undefined && this.main.ref.equals(ProcessRef.of(handle))) {
      handle.close();
      return;
    }
    this.#adoptMain(handle);
    this.#note('info', `main PID is now ${handle.pid}${handle.id === undefined ? '' : ` (pidfd id ${handle.id})`}`);
  }

  // -------------------------------------------------------------------------------- start flow

  /**
   * The start sequence. With `resume` (after a daemon crash) it picks up at the recorded control
   * process: what came before it is not done again, and that process is waited for, not spawned.
   */
  async #startFlow(isRestart: boolean, resume?: ResumePoint): Promise<JobResult> {
    const generation = ++this.#generation;
    const s = this.config.service;
    const u = this.config.unit;
    if (resume === undefined) {
      const now = Date.now();
      if (u.startLimitIntervalMs > 0 && u.startLimitBurst > 0) {
        this.#startTimes = this.#startTimes.filter((t) => now - t < u.startLimitIntervalMs);
        if (this.#startTimes.length >= u.startLimitBurst) {
          this.result = 'start-limit-hit';
          this.#note('error', `start request repeated too quickly (${u.startLimitBurst} starts within ${u.startLimitIntervalMs / 1000}s); refusing to start`);
          this.#setState('failed', 'failed');
          return 'failed';
        }
        this.#startTimes.push(now);
      }
      this.invocationId = randomBytes(16).toString('hex');
      this.result = 'success';
      this.statusText = null;
      this.#notifyAccessOverride = undefined;
      this.#ready = deferred<void>();
      this.#sessions.clear();
      if (!isRestart) this.#note('info', `starting ${u.description || this.name}`);

      this.#setState('activating', 'condition');
      const failed = conditionFailure(u.conditions);
      if (failed !== undefined) {
        this.#note('info', `condition ${failed} not met; start skipped`);
        this.#setState('inactive', 'dead');
        return 'skipped';
      }
    }
    for (const step of this.#steps('condition', s.execCondition, resume)) {
      const outcome = await this.#controlStep(step, 'condition', s.timeoutStartMs, resume);
      if (generation !== this.#generation) return 'canceled';
      if (outcome.ok) continue;
      if (outcome.status !== undefined && outcome.status.code !== null && outcome.status.code >= 1 && outcome.status.code <= 254) {
        this.#note('info', `ExecCondition= exited with ${outcome.status.code}; start skipped`);
        this.#setState('inactive', 'dead');
        return 'skipped';
      }
      return this.#failStart(generation, outcome.result);
    }

    const startPre = this.#steps('start-pre', s.execStartPre, resume);
    if (startPre.length > 0) this.#setState('activating', 'start-pre');
    for (const step of startPre) {
      const outcome = await this.#controlStep(step, 'start-pre', s.timeoutStartMs, resume);
      if (generation !== this.#generation) return 'canceled';
      if (!outcome.ok && !step.ignoreFailure) return this.#failStart(generation, outcome.result);
    }

    // A start resumed in ExecStartPost= has its main process already (or had: its exit is recorded).
    if (resume === undefined || PHASES.indexOf(resume.kind) < PHASES.indexOf('start')) {
      this.#setState('activating', 'start');
      if (s.type === 'oneshot') {
        for (const command of s.execStart) {
          const proc = this.#spawnMain(command);
          if (proc === undefined) {
            if (command.ignoreFailure) continue;
            return this.#failStart(generation, 'exit-code');
          }
          const status = await withTimeout(proc.exited, s.timeoutStartMs, this.#newTimeout(s.timeoutStartMs));
          if (generation !== this.#generation) return 'canceled';
          if (status === 'timeout') return this.#failStart(generation, 'timeout');
          if (this.main === proc) this.main = undefined;
          const result = this.#classify(status);
          if (result !== 'success' && !command.ignoreFailure) return this.#failStart(generation, result, false);
        }
      } else if (s.execStart.length > 0) {
        const command = s.execStart[0]!;
        const proc = this.#spawnMain(command);
        if (proc === undefined) return this.#failStart(generation, 'exit-code');
        if (s.type === 'notify' || s.type === 'notify-reload') {
          const outcome = await withTimeout(
            Promise.race([this.#ready.promise.then(() => 'ready' as const), proc.exited.then(() => 'exited' as const)]),
            s.timeoutStartMs,
            this.#newTimeout(s.timeoutStartMs),
          );
          if (generation !== this.#generation) return 'canceled';
          if (outcome === 'timeout') return this.#failStart(generation, 'timeout');
          if (outcome === 'exited') {
            const result = this.#classify(proc.status!);
            return this.#failStart(generation, result === 'success' ? 'protocol' : result, false);
          }
        } else if (s.type === 'forking') {
          const status = await withTimeout(proc.exited, s.timeoutStartMs, this.#newTimeout(s.timeoutStartMs));
          if (generation !== this.#generation) return 'canceled';
          if (status === 'timeout') return this.#failStart(generation, 'timeout');
          const result = this.#classify(status);
          if (result !== 'success') return this.#failStart(generation, result, false);
          if (this.main === proc || this.main === undefined) {
            this.main = undefined;
            if (s.pidFile !== undefined) {
              const adopted = await this.#mainFromPidFile(s.pidFile, s.timeoutStartMs);
              if (generation !== this.#generation) return 'canceled';
              if (!adopted) return this.#failStart(generation, 'protocol');
            }
          }
        }
      }
    }
    this.#timeout = undefined;

    const startPost = this.#steps('start-post', s.execStartPost, resume);
    if (startPost.length > 0) this.#setState('activating', 'start-post');
    for (const step of startPost) {
      const outcome = await this.#controlStep(step, 'start-post', s.timeoutStartMs, resume);
      if (generation !== this.#generation) return 'canceled';
      if (!outcome.ok && !step.ignoreFailure) return this.#failStart(generation, outcome.result);
    }

    if (this.main !== undefined && this.main.status !== undefined) {
      // The main process ended while ExecStartPost= ran (its exit was seen, but a unit still
      // activating waits): decide now, as systemd does when it would enter running.
      this.main = undefined;
      if (this.#lastMainResult !== 'success') return this.#failStart(generation, this.#lastMainResult, false);
      if (s.remainAfterExit) {
        this.activeEnterTimestamp = Date.now();
        this.#setState('active', 'exited');
        return 'done';
      }
    }
    if (this.main === undefined && s.type !== 'forking' && !s.remainAfterExit) {
      // A oneshot (or a main process that already ended) with nothing left to supervise.
      if (this.lastExit !== null && this.#lastMainResult !== 'success' && s.type !== 'oneshot') {
        return this.#failStart(generation, this.#lastMainResult, false);
      }
      this.activeEnterTimestamp = Date.now();
      await this.#stop(true, 'success');
      return 'done';
    }
    this.activeEnterTimestamp = Date.now();
    this.#setState('active', this.main === undefined ? 'exited' : 'running');
    this.#watchdogMs = s.watchdogMs;
    this.#armWatchdog();
    if (Number.isFinite(s.runtimeMaxMs)) {
      this.#runtimeTimer = setTimeout(() => {
        this.#note('warning', `RuntimeMaxSec= reached; stopping`);
        this.result = 'timeout';
        void this.#stop(true, 'timeout');
      }, s.runtimeMaxMs);
    }
    return 'done';
  }

  async #failStart(generation: number, result: ServiceResult, runStop = false): Promise<JobResult> {
    if (generation !== this.#generation) return 'canceled';
    this.#timeout = undefined;
    if (this.result === 'success') this.result = result;
    await this.#stop(runStop, result);
    return 'failed';
  }

  #waitForStartJob(): Promise<JobResult> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.activeState === 'active' || this.activeState === 'reloading') resolve('done');
        else if (this.activeState === 'failed') resolve('failed');
        else if (this.activeState === 'inactive') resolve(this.result === 'success' ? 'done' : 'failed');
        else void this.nextStateChange().then(check);
      };
      check();
    });
  }

  // --------------------------------------------------------------------------------- stop flow

  /**
   * The stop sequence; with `runExecStop` the ExecStop= commands run first. With `resume` (after a
   * daemon crash) it picks up at the recorded ExecStop= or ExecStopPost= process.
   */
  #stop(runExecStop: boolean, result?: ServiceResult, resume?: ResumePoint): Promise<void> {
    if (this.#stopping !== undefined) return this.#stopping;
    ++this.#generation;
    if (result !== undefined && this.result === 'success') this.result = result;
    this.#stopping = this.#stopSequence(runExecStop, resume).finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #stopSequence(runExecStop: boolean, resume?: ResumePoint): Promise<void> {
    const s = this.config.service;
    this.#clearRunTimers();
    this.#reloadDone?.(false);
    this.#reloadDone = undefined;
    if (this.control !== undefined && this.control.status === undefined) {
      // A control process still running (e.g. ExecStartPre= when the stop came) ends first.
      try {
        this.control.handle.signal(s.killSignal);
      } catch (error) {
        if (!hasCode(error, 'ESRCH')) throw error;
      }
      await withTimeout(this.control.exited, s.timeoutStopMs);
    }
    if (resume !== undefined && resume.kind === 'stop') {
      this.#setState('deactivating', 'stop');
      for (const step of this.#steps('stop', s.execStop, resume)) {
        const outcome = await this.#controlStep(step, 'stop', s.timeoutStopMs, resume);
        if (outcome.result === 'timeout') break;
      }
    } else if (resume !== undefined) {
      // Resumed in ExecStopPost=: ExecStop= and the kill phase are behind us.
    } else if (runExecStop && s.execStop.length > 0 && this.main !== undefined && this.main.status === undefined) {
      this.#setState('deactivating', 'stop');
      for (const step of this.#steps('stop', s.execStop)) {
        const outcome = await this.#controlStep(step, 'stop', s.timeoutStopMs);
        if (outcome.result === 'timeout') break;
      }
    } else if (runExecStop && s.execStop.length > 0 && (this.activeState === 'active' || this.activeState === 'reloading')) {
      this.#setState('deactivating', 'stop');
      for (const step of this.#steps('stop', s.execStop)) await this.#controlStep(step, 'stop', s.timeoutStopMs);
    }
    // Resumed in ExecStopPost=, the kill phase already ran; running it again would kill that process.
    if (resume === undefined || resume.kind === 'stop') await this.#killPhase('stop-sigterm', 'stop-sigkill', this.#manualStop ? s.killSignal : s.killSignal);

    const stopPost = this.#steps('stop-post', s.execStopPost, resume);
    if (stopPost.length > 0) {
      this.#setState(this.activeState === 'failed' ? 'failed' : 'deactivating', 'stop-post');
      for (const step of stopPost) await this.#controlStep(step, 'stop-post', s.timeoutStopMs, resume);
      await this.#killPhase('final-sigterm', 'final-sigkill', s.killSignal);
    }
    this.main = undefined;
    this.control = undefined;
    this.#timeout = undefined;
    const failed = this.result !== 'success';
    if (!this.#manualStop && this.#shouldRestart()) {
      this.#scheduleRestart();
      return;
    }
    this.#setState(failed ? 'failed' : 'inactive', failed ? 'failed' : 'dead');
    if (failed) this.#note('error', `failed with result '${this.result}'`);
  }

  /** Signals every remaining process and waits; escalates to FinalKillSignal= after TimeoutStopSec=. */
  async #killPhase(termState: SubState, killState: SubState, signal: number): Promise<void> {
    const s = this.config.service;
    if (s.killMode === 'none') return;
    const main = this.main !== undefined && this.main.status === undefined ? this.main : undefined;
    const collect = (): Pidfd[] => {
      if (s.killMode === 'process') return [];
      const scope = this.#scopeMembers.filter((m) => m.status === undefined).flatMap((m) => {
        try {
          return [m.ref.resolve()];
        } catch {
          return [];
        }
      });
      const exclude = new Set(main === undefined ? [] : [main.handle.pid]);
      // With a cgroup it is the whole truth about the unit's processes; sessions are the fallback.
      const grouped = this.#host.cgroupMembers(this)?.filter((h) => {
        if (!exclude.has(h.pid)) return true;
        h.close();
        return false;
      });
      return [...scope, ...(grouped ?? sessionMembers(this.#sessions, exclude))];
    };
    let others = collect();
    if (main === undefined && others.length === 0) return;
    this.#setState(this.activeState === 'failed' ? 'failed' : 'deactivating', termState);
    const send = (handle: Pidfd, sig: number): void => {
      try {
        handle.signal(sig);
        if (sig !== 9 && sig !== 18) handle.signal('SIGCONT');
        if (s.sendSighup && sig === s.killSignal) handle.signal('SIGHUP');
      } catch (error) {
        if (!hasCode(error, 'ESRCH')) throw error;
      }
    };
    if (main !== undefined) send(main.handle, signal);
    // KillMode=mixed: only the main process gets the first signal; the rest are killed outright later.
    if (s.killMode !== 'mixed') for (const handle of others) send(handle, signal);
    const everyone = (): Promise<unknown> => Promise.all([main?.exited, ...others.map((h) => h.exited), this.#host.cgroupEmpty(this, Infinity)]);
    let outcome = await withTimeout(everyone(), s.killMode === 'mixed' && main === undefined ? 0 : s.timeoutStopMs);
    if (outcome === 'timeout' || s.killMode === 'mixed') {
      for (const handle of others) handle.close();
      others = collect();
      const mainAlive = main !== undefined && main.status === undefined;
      if (mainAlive || others.length > 0) {
        if (outcome === 'timeout') {
          this.#note('warning', `processes still running after TimeoutStopSec=; ${s.sendSigkill ? `sending ${signalName(s.finalKillSignal)}` : 'leaving them (SendSIGKILL=no)'}`);
          if (this.result === 'success') this.result = 'timeout';
        }
        if (s.sendSigkill || s.killMode === 'mixed') {
          this.#setState(this.activeState === 'failed' ? 'failed' : 'deactivating', killState);
          if (mainAlive && outcome === 'timeout') send(main.handle, s.finalKillSignal);
          // cgroup.kill reaches everything in the cgroup at once, including processes forked after the scan.
          const wholeGroupKilled = s.finalKillSignal === 9 && s.killMode !== 'mixed' && this.#host.cgroupKill(this);
          if (!wholeGroupKilled) for (const handle of others) send(handle, s.finalKillSignal);
          outcome = await withTimeout(everyone(), s.timeoutStopMs);
          if (outcome === 'timeout') this.#note('error', 'processes survived the final kill signal; giving up on them');
        }
      }
    }
    for (const handle of others) handle.close();
  }

  #shouldRestart(): boolean {
    const s = this.config.service;
    if (this.result === 'start-limit-hit') return false;
    const exit = this.lastExit;
    const code = exit?.code ?? null;
    const signalNumber = exit?.signal === null || exit?.signal === undefined ? null : signalNumberOf(exit.signal);
    const inSet = (set: { codes: readonly number[]; signals: readonly number[] }): boolean =>
      (code !== null && set.codes.includes(code)) || (signalNumber !== null && set.signals.includes(signalNumber));
    if (exit !== null && inSet(s.restartPreventExitStatus)) return false;
    if (exit !== null && inSet(s.restartForceExitStatus)) return true;
    const r = this.result;
    const clean = r === 'success';
    const uncleanSignal = r === 'signal' || r === 'core-dump';
    switch (s.restart) {
      case 'no':
        return false;
      case 'always':
        return true;
      case 'on-success':
        return clean;
      case 'on-failure':
        return !clean;
      case 'on-abnormal':
        return uncleanSignal || r === 'timeout' || r === 'watchdog';
      case 'on-abort':
        return uncleanSignal;
      case 'on-watchdog':
        return r === 'watchdog';
    }
  }

  #scheduleRestart(): void {
    const s = this.config.service;
    let delay = s.restartMs;
    if (s.restartSteps > 0 && Number.isFinite(s.restartMaxDelayMs) && s.restartMaxDelayMs > s.restartMs) {
      const step = Math.min(this.restarts, s.restartSteps);
      delay = s.restartMs * Math.pow(s.restartMaxDelayMs / Math.max(s.restartMs, 1), step / s.restartSteps);
    }
    this.#setState('activating', 'auto-restart');
    this.#note('info', `scheduling restart in ${Math.round(delay)} ms (result '${this.result}')`);
    const restart = (): void => {
      this.#restartTimer = undefined;
      this.restarts++;
      void this.#startFlow(true);
    };
    // RestartSec=0 means now: setTimeout(0) would still wait a millisecond.
    if (delay > 0) {
      const timer = setTimeout(restart, delay);
      this.#restartTimer = { cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(restart);
      this.#restartTimer = { cancel: () => clearImmediate(immediate) };
    }
  }

  // ----------------------------------------------------------------------------- processes

  #spawnMain(command: ExecCommand): Proc | undefined {
    const proc = this.#spawn(command, 'main');
    if (proc === undefined) return undefined;
    this.#adoptMainProc(proc);
    return proc;
  }

  #adoptMain(handle: Pidfd): void {
    this.#sessions.add(handle.pid);
    this.#adoptMainProc(this.#track(handle, true));
  }

  /** Watches a process of this unit until it ends; its exit is recorded before anyone awaiting it runs. */
  #track(handle: Pidfd, isMain: boolean): Proc {
    const proc: Proc = { handle, ref: ProcessRef.of(handle), exited: Promise.resolve({ code: null, signal: null, coreDumped: false }) };
    proc.exited = this.#host.trackChild(handle).then((status) => {
      proc.status = status;
      if (isMain || proc === this.main) {
        this.lastExit = { code: status.code, signal: status.signal };
        this.#lastMainResult = this.#classify(status);
      }
      handle.close();
      return status;
    });
    return proc;
  }

  #adoptMainProc(proc: Proc): void {
    const previous = this.main;
    this.main = proc;
    if (previous !== undefined && previous !== proc && previous.status === undefined) {
      // The old main process is no longer watched as main; it is still a member of the sessions.
      previous.handle.close();
    }
    proc.exited.then(() => {
      if (this.main !== proc) return;
      this.#onMainExit(proc);
    }, () => {});
  }

  #onMainExit(proc: Proc): void {
    const status = proc.status!;
    this.#host.drainNotify();
    this.#note('info', `${this.#isScope ? 'scope process' : 'main process'} ${proc.handle.pid} ${describe(status)}`);
    if (this.#isScope && (this.activeState === 'active' || this.activeState === 'reloading')) {
      // A scope is active while any of its processes lives; the next one stands for it.
      const next = this.#scopeMembers.find((m) => m.status === undefined);
      if (next !== undefined) {
        this.#scopeMembers = this.#scopeMembers.filter((m) => m !== next);
        this.#adoptMainProc(next);
        return;
      }
      this.main = undefined;
      this.#setState('inactive', 'dead');
      return;
    }
    const result = this.#classify(status);
    if (this.activeState === 'active' || this.activeState === 'reloading') {
      this.main = undefined;
      this.#clearRunTimers();
      if (this.#reloadDone !== undefined) {
        this.#reloadDone(false);
        this.#reloadDone = undefined;
      }
      if (result === 'success' && this.config.service.remainAfterExit) {
        this.#setState('active', 'exited');
        return;
      }
      if (this.result === 'success') this.result = result;
      void this.#stop(true);
    }
  }

  #classify(status: ExitStatus): ServiceResult {
    const s = this.config.service;
    if (status.code !== null) return status.code === 0 || s.successExitStatus.codes.includes(status.code) ? 'success' : 'exit-code';
    if (status.signal !== null) {
      const number = signalNumberOf(status.signal);
      if (s.successExitStatus.signals.includes(number)) return 'success';
      if (s.type !== 'oneshot' && CLEAN_SIGNALS.has(status.signal)) return 'success';
      return status.coreDumped ? 'core-dump' : 'signal';
    }
    return 'success';
  }

  /** The commands of a control list a flow runs: all of them, or after a crash those from the resumed one on. */
  #steps(kind: ControlKind, list: readonly ExecCommand[], resume?: ResumePoint): Step[] {
    const all = (from: number): Step[] => list.slice(from).map((command, i) => ({ command, index: from + i, ignoreFailure: command.ignoreFailure }));
    if (resume === undefined || resume.consumed) return all(0);
    const phase = PHASES.indexOf(kind);
    const resumed = PHASES.indexOf(resume.kind);
    if (phase > resumed) return all(0);
    if (phase < resumed) return [];
    const steps = all(resume.index);
    // The unit file changed meanwhile and has no such command any more: the process is still waited for.
    if (steps.length === 0) steps.push({ command: undefined, index: resume.index, ignoreFailure: true });
    return steps;
  }

  /** Runs one step of a control list, or waits for the re-adopted process where a flow resumes. */
  #controlStep(step: Step, kind: ControlKind, timeoutMs: number, resume?: ResumePoint): Promise<ControlOutcome> {
    if (resume !== undefined && !resume.consumed && resume.kind === kind && resume.index === step.index) {
      resume.consumed = true;
      return Promise.resolve(this.#resumedStep(resume, step, timeoutMs));
    }
    return this.#runControl(step.command!, kind, step.index, timeoutMs);
  }

  /** Runs one control command to its end; `ok` says whether it counts as success. */
  async #runControl(command: ExecCommand, kind: ControlKind, index: number, timeoutMs: number): Promise<ControlOutcome> {
    const proc = this.#spawn(command, kind);
    if (proc === undefined) return { ok: command.ignoreFailure, result: 'exit-code' };
    return this.#awaitControl(proc, kind, index, command.ignoreFailure, timeoutMs);
  }

  /** Waits for a control process (spawned, or re-adopted after a crash) with the step's timeout. */
  async #awaitControl(proc: Proc, kind: ControlKind, index: number, ignoreFailure: boolean, timeoutMs: number): Promise<ControlOutcome> {
    this.control = proc;
    this.#controlAt = { kind, index };
    this.#host.recordChanged(this);
    try {
      const status = await withTimeout(proc.exited, timeoutMs, this.#newTimeout(timeoutMs));
      if (status === 'timeout') {
        this.#note('warning', `${kind} command ${proc.handle.pid} timed out; killing it`);
        try {
          proc.handle.signal(this.config.service.killSignal);
          const after = await withTimeout(proc.exited, this.config.service.timeoutStopMs);
          if (after === 'timeout') proc.handle.signal(this.config.service.finalKillSignal);
        } catch (error) {
          if (!hasCode(error, 'ESRCH')) throw error;
        }
        await proc.exited;
        return { ok: false, result: 'timeout' };
      }
      const result = this.#classifyControl(status);
      if (result !== 'success' && !ignoreFailure) this.#note('warning', `${kind} command ${proc.handle.pid} ${describe(status)}`);
      return { ok: result === 'success', result, status };
    } finally {
      if (this.control === proc) {
        this.control = undefined;
        this.#controlAt = undefined;
        this.#host.recordChanged(this);
      }
    }
  }

  /**
   * The step a daemon crash interrupted: its process re-adopted and waited for (the timeout counted
   * from now), or how it ended while no daemon watched. One that cannot be re-adopted is never
   * signalled; its step counts as failed.
   */
  #resumedStep(resume: ResumePoint, step: Step, timeoutMs: number): Promise<ControlOutcome> | ControlOutcome {
    const what = `${resume.kind} command ${resume.pid}`;
    if (resume.proc !== undefined) return this.#awaitControl(resume.proc, resume.kind, resume.index, step.ignoreFailure, timeoutMs);
    const found = resume.found;
    if (found.state === 'ended' && found.exit !== undefined && (found.exit.code !== null || found.exit.signal !== null)) {
      const status = found.exit;
      const result = this.#classifyControl(status);
      this.#note(result === 'success' || step.ignoreFailure ? 'info' : 'warning', `${what} ${describe(status)} while no daemon was watching`);
      return { ok: result === 'success', result, status };
    }
    if (found.state === 'lost') this.#note('warning', `${what} cannot be re-adopted (${found.reason}); it is left alone and its step counts as failed`);
    else this.#note('warning', `${what} ended while no daemon was watching; how it ended is unknown, so its step counts as failed`);
    return { ok: false, result: 'exit-code' };
  }

  #classifyControl(status: ExitStatus): ServiceResult {
    if (status.code !== null) return status.code === 0 || this.config.service.successExitStatus.codes.includes(status.code) ? 'success' : 'exit-code';
    if (status.signal !== null) return status.coreDumped ? 'core-dump' : 'signal';
    return 'success';
  }

  #spawn(command: ExecCommand, kind: ProcessKind): Proc | undefined {
    const s = this.config.service;
    const isMain = kind === 'main';
    let account: Account | undefined;
    let gid: number | undefined;
    let groups: number[] | undefined;
    const switchUser = !command.fullPrivileges && !command.noSetuid;
    const env = this.#host.baseEnvironment();
    try {
      if (s.user !== undefined) {
        account = lookupUser(s.user);
        env['USER'] = account.name;
        env['LOGNAME'] = account.name;
        env['HOME'] = account.home;
        env['SHELL'] = account.shell;
        if (switchUser) {
          gid = s.group !== undefined ? lookupGroup(s.group) : account.gid;
          groups = [...new Set([...groupsOf(account), ...s.supplementaryGroups.map(lookupGroup)])];
        }
      } else if (s.group !== undefined && switchUser) {
        gid = lookupGroup(s.group);
      }
    } catch (error) {
      this.#note('error', `${(error as Error).message}`);
      this.lastExit = isMain ? { code: 217, signal: null } : this.lastExit;
      return undefined;
    }
    env['INVOCATION_ID'] = this.invocationId ?? '';
    const manager = this.#host.managerIdentity();
    env['MANAGERPID'] = String(manager.pid);
    if (manager.pidfdId !== undefined) env['MANAGERPIDFDID'] = String(manager.pidfdId);
    const main = this.main;
    if (!isMain && kind !== 'condition' && kind !== 'start-pre' && main !== undefined && main.status === undefined) {
      env['MAINPID'] = String(main.handle.pid);
      if (main.handle.id !== undefined) env['MAINPIDFDID'] = String(main.handle.id);
    }
    const access = this.#notifyAccessOverride ?? s.notifyAccess;
    const notifyPath = this.#host.notifySocketPath();
    if (notifyPath !== undefined && ((isMain && access !== 'none') || (!isMain && (access === 'exec' || access === 'all')))) {
      env['NOTIFY_SOCKET'] = notifyPath;
    }
    if (isMain && this.#watchdogMs > 0) env['WATCHDOG_USEC'] = String(Math.round(this.#watchdogMs * 1000));
    if (kind === 'stop-post' || kind === 'stop') {
      env['SERVICE_RESULT'] = this.result;
      if (this.lastExit !== null) {
        env['EXIT_CODE'] = this.lastExit.code !== null ? 'exited' : 'killed';
        env['EXIT_STATUS'] = this.lastExit.code !== null ? String(this.lastExit.code) : (this.lastExit.signal ?? '').replace(/^SIG/, '');
      }
    }
    Object.assign(env, s.environment, this.#environmentFiles);
    for (const name of s.passEnvironment) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    for (const entry of s.unsetEnvironment) {
      const eq = entry.indexOf('=');
      if (eq < 0) delete env[entry];
      else if (env[entry.slice(0, eq)] === entry.slice(eq + 1)) delete env[entry.slice(0, eq)];
    }

    const io = this.#host.stdio(this, s);
    let cgroup: { fd: number; close(): void } | undefined;
    let spawned;
    try {
      cgroup = this.#host.cgroupForSpawn(this);
      const cwd = s.workingDirectory.type === 'home' ? (account?.home ?? this.#host.home()) : s.workingDirectory.path;
      spawned = spawnCommand({
        command,
        env,
        cwd,
        cwdOptional: s.workingDirectory.missingOk,
        ...(switchUser && account !== undefined ? { uid: account.uid } : {}),
        ...(gid !== undefined ? { gid } : {}),
        ...(groups !== undefined ? { groups } : {}),
        umask: s.umask,
        ...(account !== undefined ? { shell: account.shell } : {}),
        fds: io.fds,
        rlimits: Object.entries(s.limits).map(([name, limit]) => [RLIMIT_RESOURCES[name]!, limit!.soft === Infinity ? 2n ** 64n - 1n : limit!.soft, limit!.hard === Infinity ? 2n ** 64n - 1n : limit!.hard]),
        watchdogEnv: isMain && this.#watchdogMs > 0,
        ...(cgroup === undefined ? {} : { cgroupFd: cgroup.fd }),
      });
    } catch (error) {
      io.abort();
      const e = error as SpawnError;
      this.#note('error', `failed to run ${kind} command ${command.argv.join(' ')}: ${e.message}`);
      if (isMain || !command.ignoreFailure) this.lastExit = { code: e.exitCode ?? 203, signal: null };
      if (isMain) this.#lastMainResult = 'exit-code';
      return undefined;
    } finally {
      io.afterSpawn();
      cgroup?.close();
    }
    const handle = spawned.handle;
    io.attach(handle);
    if (spawned.unsetVariables.length > 0) this.#note('info', `referenced but unset environment variables: ${spawned.unsetVariables.join(', ')}`);
    this.#sessions.add(handle.pid);
    return this.#track(handle, isMain);
  }

  /** Loaded at each start, as systemd reads EnvironmentFile= just before exec. */
  #environmentFiles: Record<string, string> = {};

  /** Reads EnvironmentFile= entries; false (with a note) if a required one is missing. */
  async loadEnvironmentFiles(): Promise<boolean> {
    const result = await loadEnvironmentFiles(this.config.service.environmentFiles);
    this.#environmentFiles = result.env;
    if (result.error !== undefined) {
      this.#note('error', `EnvironmentFile=${result.error.path}: ${result.error.message}`);
      return false;
    }
    return true;
  }

  async #mainFromPidFile(path: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + Math.min(timeoutMs, 5000);
    for (;;) {
      let text: string | undefined;
      try {
        text = readFileSync(path, 'utf8').trim();
      } catch {
        text = undefined;
      }
      if (text !== undefined && /^\d+$/.test(text)) {
        try {
          const handle = this.#host.openPid(Number(text));
          // A PID file is only trusted for a process of this unit's own sessions.
          const members = sessionMembers(this.#sessions);
          const ours = members.some((m) => m.pid === handle.pid && m.id === handle.id);
          for (const m of members) m.close();
          if (!ours) {
            this.#note('error', `PID file ${path} names PID ${text}, which is not a process of this unit; refusing it`);
            handle.close();
            return false;
          }
          this.#adoptMain(handle);
          return true;
        } catch (error) {
          this.#note('error', `PID file ${path} names PID ${text}: ${(error as Error).message}`);
          return false;
        }
      }
      if (Date.now() > deadline) {
        this.#note('error', `PID file ${path} not readable after start`);
        return false;
      }
      await sleep(20);
    }
  }

  // ----------------------------------------------------------------------------- timers

  #newTimeout(ms: number): { deadline: number } {
    this.#timeout = { deadline: Date.now() + ms };
    return this.#timeout;
  }

  #armWatchdog(): void {
    if (this.#watchdogTimer !== undefined) clearTimeout(this.#watchdogTimer);
    this.#watchdogTimer = undefined;
    if (this.#watchdogMs <= 0 || !(this.activeState === 'active' || this.activeState === 'reloading')) return;
    this.#watchdogTimer = setTimeout(() => this.#watchdogExpired(), this.#watchdogMs);
  }

  #watchdogExpired(): void {
    this.#watchdogTimer = undefined;
    if (this.activeState !== 'active' && this.activeState !== 'reloading') return;
    this.#note('error', 'watchdog timeout; killing the main process');
    this.result = 'watchdog';
    if (this.main !== undefined && this.main.status === undefined) {
      try {
        this.main.handle.signal(this.config.service.watchdogSignal);
      } catch (error) {
        if (!hasCode(error, 'ESRCH')) throw error;
      }
    }
    void this.#stop(false);
  }

  #clearRunTimers(): void {
    if (this.#watchdogTimer !== undefined) clearTimeout(this.#watchdogTimer);
    if (this.#runtimeTimer !== undefined) clearTimeout(this.#runtimeTimer);
    this.#watchdogTimer = undefined;
    this.#runtimeTimer = undefined;
  }

  // ------------------------------------------------------------------------------- state

  #setState(active: ActiveState, sub: SubState): void {
    if (this.activeState === active && this.subState === sub) return;
    if (this.activeState !== active) this.stateChangeTimestamp = Date.now();
    this.activeState = active;
    this.subState = sub;
    this.#host.stateChanged(this);
    const waiters = this.#stateWaiters;
    this.#stateWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #isReloading(): boolean {
    return this.activeState === 'reloading';
  }

  #note(level: 'info' | 'warning' | 'error', text: string): void {
    this.#host.note(this, level, text);
  }

  #isScope = false;
  #scopeMembers: Proc[] = [];

  /**
   * Makes this unit a scope of processes started elsewhere (`holdfast run --scope`): it is active
   * while any of them lives, and stopping it signals each through its pidfd (a process-group
   * leader's whole group too). The handles are the unit's from now on.
   */
  adoptScope(handles: Pidfd[]): void {
    this.#isScope = true;
    this.invocationId = randomBytes(16).toString('hex');
    this.result = 'success';
    const procs = handles.map((handle) => this.#track(handle, false));
    this.#scopeMembers = procs.slice(1);
    this.activeEnterTimestamp = Date.now();
    this.#setState('active', 'running');
    this.#adoptMainProc(procs[0]!);
    for (const member of this.#scopeMembers) {
      void member.exited.then((status) => this.#note('info', `scope process ${member.handle.pid} ${describe(status)}`));
    }
  }

  async #awaitReadyAfterRestore(proc: Proc): Promise<void> {
    const generation = ++this.#generation;
    const s = this.config.service;
    const outcome = await withTimeout(
      Promise.race([this.#ready.promise.then(() => 'ready' as const), proc.exited.then(() => 'exited' as const)]),
      s.timeoutStartMs,
      this.#newTimeout(s.timeoutStartMs),
    );
    if (generation !== this.#generation) return;
    this.#timeout = undefined;
    if (outcome === 'ready') {
      this.activeEnterTimestamp = Date.now();
      this.#setState('active', 'running');
      this.#watchdogMs = s.watchdogMs;
      this.#armWatchdog();
      return;
    }
    await this.#failStart(generation, outcome === 'timeout' ? 'timeout' : 'protocol');
  }

  /** What a daemon records about this unit so that a new daemon can pick it up. */
  record(): UnitRecord {
    return {
      name: this.name,
      activeState: this.activeState,
      subState: this.subState,
      result: this.result,
      restarts: this.restarts,
      invocationId: this.invocationId,
      statusText: this.statusText,
      lastExit: this.lastExit,
      activeEnterTimestamp: this.activeEnterTimestamp,
      main: this.main !== undefined && this.main.status === undefined ? this.main.ref.toJSON() : null,
      control:
        this.control !== undefined && this.control.status === undefined && this.#controlAt !== undefined
          ? { process: this.control.ref.toJSON(), kind: this.#controlAt.kind, index: this.#controlAt.index }
          : null,
      manualStop: this.#manualStop,
      sessions: [...this.#sessions],
    };
  }

  /**
   * Picks the unit up from a previous daemon's record. `main` is a verified handle to the recorded
   * main process (alive or dead) or undefined when it could not be had; `exit` is how it ended where
   * the kernel kept that. A main process that ended while no daemon watched is handled as if its
   * exit had just been seen: ExecStop=, the kill phase, ExecStopPost=, and the restart policy.
   * `control` is what could be found of the recorded control process, if one was recorded.
   */
  restore(record: UnitRecord, main: Pidfd | undefined, exit: ExitStatus | undefined, control?: RecoveredControl): void {
    this.restarts = record.restarts;
    this.invocationId = record.invocationId;
    this.statusText = record.statusText;
    this.lastExit = record.lastExit;
    this.result = record.result;
    this.activeEnterTimestamp = record.activeEnterTimestamp;
    if (record.control !== undefined && record.control !== null && control !== undefined) {
      this.#restoreWithControl(record, record.control, main, exit, control);
      return;
    }
    if (control?.state === 'alive') control.handle.close();
    // Recorded session ids are not trusted: while no daemon watched, a session may have ended and its
    // number gone to a stranger's new session. Only the session of a verified, living main process counts.
    const wasRunning = record.activeState === 'active' || record.activeState === 'reloading' || record.activeState === 'activating' || record.activeState === 'deactivating';
    if (!wasRunning) {
      if (record.activeState === 'failed') this.#setState('failed', 'failed');
      return;
    }
    if (record.main === null) {
      if (record.subState === 'exited') this.#setState('active', 'exited');
      else if (record.subState === 'auto-restart') {
        // It was waiting to be restarted: the restart still happens.
        this.#scheduleRestart();
      } else {
        this.#note('warning', `was ${record.activeState} (${record.subState}) without a main process when the daemon stopped; stopping what is left`);
        this.#setState('activating', record.subState);
        void this.#stop(false, 'resources');
      }
      return;
    }
    if (main !== undefined && main.isAlive()) {
      const session = sessionOf(main);
      if (session !== undefined && record.sessions.includes(session)) this.#sessions.add(session);
      this.main = this.#track(main, true);
      this.#note('info', `re-adopted main process ${main.pid}${main.id === undefined ? '' : ` (pidfd id ${main.id})`}`);
      const type = this.config.service.type;
      if (record.activeState === 'deactivating') {
        // The previous daemon was stopping it: finish the stop, and do not restart what was asked to stop.
        this.#manualStop = record.manualStop ?? true;
        this.#setState('deactivating', 'stop-sigterm');
        void this.#stop(false);
        return;
      }
      if (record.activeState === 'activating' && record.subState === 'start' && (type === 'notify' || type === 'notify-reload')) {
        // Still waiting for READY=1: keep waiting, with the start timeout counted from now.
        this.#setState('activating', 'start');
        this.#adoptMainProc(this.main);
        void this.#awaitReadyAfterRestore(this.main);
        return;
      }
      this.#adoptMainProc(this.main);
      this.#setState('active', 'running');
      this.#watchdogMs = this.config.service.watchdogMs;
      this.#armWatchdog();
      return;
    }
    main?.close();
    this.#setState('active', 'running');
    if (exit !== undefined && (exit.code !== null || exit.signal !== null)) {
      this.lastExit = { code: exit.code, signal: exit.signal };
      this.#note('warning', `main process ${record.main.pid} ${describe(exit)} while no daemon was watching`);
      this.result = this.#classify(exit);
    } else {
      this.#note('warning', `main process ${record.main.pid} ended while no daemon was watching; how it ended is unknown`);
      this.result = 'exit-code';
    }
    void this.#stop(true);
  }

  /**
   * Picks up a unit whose control process (ExecStartPre=, ExecStop=, …) was running when the previous
   * daemon died: the flow goes on from that command as if the daemon had watched it end. The
   * re-adopted process is waited for, not spawned again; one that ended meanwhile counts with how it
   * ended; one that cannot be re-adopted is left alone and its step counts as failed.
   */
  #restoreWithControl(record: UnitRecord, at: ControlRecord, main: Pidfd | undefined, exit: ExitStatus | undefined, found: RecoveredControl): void {
    const s = this.config.service;
    this.#manualStop = record.manualStop ?? record.activeState === 'deactivating';
    let mainAlive = false;
    if (record.main !== null) {
      if (main !== undefined && main.isAlive()) {
        const session = sessionOf(main);
        if (session !== undefined && record.sessions.includes(session)) this.#sessions.add(session);
        this.main = this.#track(main, true);
        mainAlive = true;
        this.#note('info', `re-adopted main process ${main.pid}${main.id === undefined ? '' : ` (pidfd id ${main.id})`}`);
      } else {
        main?.close();
        if (exit !== undefined && (exit.code !== null || exit.signal !== null)) {
          this.lastExit = { code: exit.code, signal: exit.signal };
          this.#lastMainResult = this.#classify(exit);
          this.#note('warning', `main process ${record.main.pid} ${describe(exit)} while no daemon was watching`);
        } else {
          this.lastExit = { code: null, signal: null };
          this.#lastMainResult = 'exit-code';
          this.#note('warning', `main process ${record.main.pid} ended while no daemon was watching; how it ended is unknown`);
        }
      }
    } else if (this.lastExit !== null) {
      // A main process that ended before the crash (seen by the previous daemon) still decides the start.
      this.#lastMainResult = this.#classify({ ...this.lastExit, coreDumped: false });
    }
    const mainEnded = record.main !== null && !mainAlive;

    let proc: Proc | undefined;
    if (found.state === 'alive') {
      const handle = found.handle;
      const session = sessionOf(handle);
      if (session !== undefined && record.sessions.includes(session)) this.#sessions.add(session);
      proc = this.#track(handle, false);
      this.#note('info', `re-adopted ${at.kind} command ${handle.pid}${handle.id === undefined ? '' : ` (pidfd id ${handle.id})`}; waiting for it to end`);
    }
    const resume: ResumePoint = { kind: at.kind, index: at.index, pid: at.process.pid, found, proc, consumed: false };
    // Where no flow waits for it (a stop goes on instead), the control process is held for the stop to end.
    const holdControl = (): void => {
      if (proc !== undefined) {
        this.control = proc;
        this.#controlAt = { kind: at.kind, index: at.index };
      } else if (found.state === 'lost') {
        this.#note('warning', `${at.kind} command ${at.process.pid} cannot be re-adopted (${found.reason}); it is left alone`);
      } else if (found.state === 'ended') {
        this.#note('info', `${at.kind} command ${at.process.pid} ${found.exit === undefined ? 'ended' : describe(found.exit)} while no daemon was watching`);
      }
    };

    if (at.kind === 'stop' || at.kind === 'stop-post') {
      this.#setState(record.activeState === 'failed' ? 'failed' : 'deactivating', at.kind);
      void this.#stop(false, undefined, resume);
      return;
    }
    if (this.#manualStop) {
      // A stop was asked for while this ran: the stop goes on, and ends the control process first.
      holdControl();
      this.#setState(record.activeState, record.subState);
      void this.#stop(at.kind === 'reload');
      return;
    }
    if (at.kind === 'reload') {
      const mainGone = mainEnded ? !(this.#lastMainResult === 'success' && s.remainAfterExit) : record.main === null && !s.remainAfterExit;
      if (mainGone) {
        // The main process is gone: as when it ends during a reload, the unit stops (the reload command first).
        holdControl();
        if (mainEnded && this.result === 'success') this.result = this.#lastMainResult;
        if (record.main === null) this.#note('warning', 'the main process had ended when the daemon stopped; stopping the unit');
        this.#setState('reloading', 'reload');
        void this.#stop(true);
        return;
      }
      if (this.main !== undefined) this.#adoptMainProc(this.main);
      this.#setState('reloading', 'reload');
      this.#watchdogMs = s.watchdogMs;
      this.#armWatchdog();
      void this.#execReload(resume);
      return;
    }
    this.#setState('activating', at.kind);
    if (this.main !== undefined) this.#adoptMainProc(this.main);
    void this.#startFlow(false, resume);
  }

  /** Stops timers so the daemon can exit (processes are left to the caller). */
  dispose(): void {
    this.#clearRunTimers();
    this.#restartTimer?.cancel();
    this.#restartTimer = undefined;
  }
}

function describe(status: ExitStatus): string {
  if (status.code !== null) return `exited with code ${status.code}`;
  if (status.signal !== null) return `killed by ${status.signal}${status.coreDumped ? ' (core dumped)' : ''}`;
  return 'ended';
}

function signalNumberOf(name: string): number {
  const table: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };
  return table[name] ?? -1;
}

function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** The first condition that fails, as text, or undefined when the unit may start. */
function conditionFailure(conditions: readonly PathCondition[]): string | undefined {
  const triggers = conditions.filter((c) => c.trigger);
  const check = (c: PathCondition): boolean => {
    let holds: boolean;
    try {
      switch (c.kind) {
        case 'PathExists':
          holds = existsSync(c.path);
          break;
        case 'PathIsDirectory':
          holds = statSync(c.path).isDirectory();
          break;
        case 'FileNotEmpty':
          holds = statSync(c.path).isFile() && statSync(c.path).size > 0;
          break;
        case 'DirectoryNotEmpty':
          holds = readdirSync(c.path).length > 0;
          break;
        case 'FileIsExecutable':
          accessSync(c.path, fsConstants.X_OK);
          holds = statSync(c.path).isFile();
          break;
        case 'PathIsReadWrite':
          accessSync(c.path, fsConstants.W_OK);
          holds = true;
          break;
        default:
          holds = existsSync(c.path);
      }
    } catch {
      holds = false;
    }
    return c.negate ? !holds : holds;
  };
  for (const c of conditions) {
    if (!c.trigger && !check(c)) return `Condition${c.kind}=${c.negate ? '!' : ''}${c.path}`;
  }
  if (triggers.length > 0 && !triggers.some(check)) return `Condition…=|${triggers.map((c) => c.path).join('|')}`;
  return undefined;
}
