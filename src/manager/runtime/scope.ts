/**
 * A scope: processes started elsewhere (`holdfast run --scope`, CreateScope) that a unit holds by
 * their pidfds. It runs nothing itself: it is active while any of them lives, its main process is
 * the first that still does, and stopping it signals each, escalating to FinalKillSignal= after
 * TimeoutStopSec=.
 */
import { describeExit, type ExitStatus } from '../../pidfd/index.js';
import type { ServiceSection } from '../../unit/index.js';
import type { JobResult } from '../machines/service-protocol.js';
import { activeStateOf } from '../machines/service-states.js';
import type { ActiveState, LastExit, ServiceResult, SubState, UnitRecord } from '../types.js';
import type { HeldProcess, UnitPorts } from './ports.js';

const SIGCONT = 18;
const SIGHUP = 1;

/** One scope's run, from adoption to its last process's end. */
export class ScopeRun {
  subState: SubState = 'running';
  result: ServiceResult = 'success';
  lastExit: LastExit | null = null;
  readonly invocationId: string;
  readonly #ports: UnitPorts;
  readonly #alive: HeldProcess[];
  #main: HeldProcess | undefined;
  readonly #onState: (active: ActiveState, sub: SubState, result: ServiceResult) => void;
  #stopping: Promise<JobResult> | undefined;
  #allGone: (() => void) | undefined;
  #cancelTimer: (() => void) | undefined;

  constructor(ports: UnitPorts, processes: HeldProcess[], invocationId: string, onState: (active: ActiveState, sub: SubState, result: ServiceResult) => void) {
    this.#ports = ports;
    this.invocationId = invocationId;
    this.#onState = onState;
    this.#alive = [...processes];
    this.#main = processes[0];
    this.#enter('running');
    for (const process of processes) ports.processes.watchExit(process, (status) => this.#exited(process, status));
  }

  get active(): boolean {
    return this.subState === 'running';
  }

  get main(): HeldProcess | undefined {
    return this.#main;
  }

  #enter(sub: SubState): void {
    this.subState = sub;
    this.#onState(activeStateOf(sub), sub, this.result);
    this.#ports.events.persist();
  }

  #exited(process: HeldProcess, status: ExitStatus): void {
    this.#alive.splice(this.#alive.indexOf(process), 1);
    process.release();
    this.#ports.events.log('info', `scope process ${process.pid} ${describeExit(status)}`);
    if (process === this.#main) {
      this.lastExit = { code: status.code, signal: status.signal };
      // A scope is active while any of its processes lives; the next one stands for it.
      this.#main = this.#alive[0];
    }
    if (this.#alive.length > 0) return;
    if (this.#allGone !== undefined) return this.#allGone();
    if (this.subState === 'running') this.#enter('dead');
  }

  /** Signals every process of the scope and waits for all to end. */
  stop(service: ServiceSection): Promise<JobResult> {
    if (this.#stopping !== undefined) return this.#stopping;
    if (this.#alive.length === 0) return Promise.resolve('done');
    this.#stopping = new Promise<JobResult>((resolve) => {
      this.#allGone = () => {
        this.#cancelTimer?.();
        this.#main = undefined;
        this.#enter(this.result === 'success' ? 'dead' : 'failed');
        resolve('done');
      };
      this.#enter('stop-sigterm');
      for (const process of [...this.#alive]) {
        process.signal(service.killSignal);
        process.signal(SIGCONT);
        if (service.sendSighup) process.signal(SIGHUP);
      }
      this.#cancelTimer = this.#ports.clock.arm(service.timeoutStopMs, () => {
        if (this.#alive.length === 0) return;
        this.#ports.events.log('warning', `processes still running after TimeoutStopSec=; ${service.sendSigkill ? 'sending the final kill signal' : 'leaving them (SendSIGKILL=no)'}`);
        this.result = 'timeout';
        if (!service.sendSigkill) return;
        this.#enter('stop-sigkill');
        for (const process of [...this.#alive]) process.signal(service.finalKillSignal);
      });
    });
    return this.#stopping;
  }

  /** `kill` on the scope: the main process, or every process of it. */
  signal(signal: number, whom: 'main' | 'all'): number {
    const targets = whom === 'main' ? (this.#main === undefined ? [] : [this.#main]) : this.#alive;
    return targets.filter((process) => process.signal(signal)).length;
  }

  record(name: string, sessions: ReadonlySet<number>): UnitRecord {
    return {
      name,
      activeState: activeStateOf(this.subState),
      subState: this.subState,
      result: this.result,
      restarts: 0,
      invocationId: this.invocationId,
      statusText: null,
      lastExit: this.lastExit,
      activeEnterTimestamp: null,
      main: this.#main?.ref() ?? null,
      control: null,
      manualStop: this.#stopping !== undefined,
      sessions: [...sessions],
    };
  }

  dispose(): void {
    this.#cancelTimer?.();
  }
}
