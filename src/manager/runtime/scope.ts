/**
 * The driver of a scope: processes started elsewhere (`holdfast run --scope`, CreateScope) that a
 * unit holds by their pidfds. The scope machine (machines/scope-machine.ts) decides; this runs its
 * effects through the unit's ports, as the service driver does for services, one event at a time.
 */
import type { ExitStatus } from '../../pidfd/index.js';
import type { ServiceSection } from '../../unit/index.js';
import { initialScopeState, scopeMain, scopeStep, type ScopeEffect, type ScopeEvent, type ScopeMachineState } from '../machines/scope-machine.js';
import type { JobResult } from '../machines/service-protocol.js';
import { activeStateOf } from '../machines/service-states.js';
import type { ActiveState, LastExit, ServiceResult, SubState, UnitRecord } from '../types.js';
import { DriverHandles, runEffects } from './driver-handles.js';
import type { HeldProcess, UnitPorts } from './ports.js';

type ScopeEventBody = ScopeEvent extends infer E ? (E extends unknown ? Omit<E, 'now'> : never) : never;

/** One scope's run, from adoption to its last process's end. */
export class ScopeRun {
  readonly #ports: UnitPorts;
  readonly #service: () => ServiceSection;
  readonly #onState: (active: ActiveState, sub: SubState, result: ServiceResult) => void;
  #state: ScopeMachineState = initialScopeState();
  readonly #held: DriverHandles<'timeout'>;
  /** The processes handed over, until the machine names their slots. */
  #handedOver: HeldProcess[];
  readonly #queue: ScopeEventBody[] = [];
  #stepping = false;
  #stopWaiters: ((result: JobResult) => void)[] = [];

  constructor(
    ports: UnitPorts,
    service: () => ServiceSection,
    processes: HeldProcess[],
    invocationId: string,
    onState: (active: ActiveState, sub: SubState, result: ServiceResult) => void,
  ) {
    this.#ports = ports;
    this.#service = service;
    this.#onState = onState;
    this.#held = new DriverHandles(ports);
    this.#handedOver = [...processes];
    this.#dispatch({ type: 'adopt', processes: processes.map((p) => ({ pid: p.pid, pidfdId: p.pidfdId })), invocationId });
  }

  get subState(): SubState {
    return this.#state.sub;
  }

  get result(): ServiceResult {
    return this.#state.result;
  }

  get lastExit(): LastExit | null {
    return this.#state.lastExit;
  }

  get invocationId(): string | null {
    return this.#state.invocationId;
  }

  get active(): boolean {
    return this.#state.sub === 'running';
  }

  /** The first of the scope's processes still alive. */
  get main(): HeldProcess | undefined {
    const main = scopeMain(this.#state);
    return this.#held.get(main?.slot);
  }

  /** Signals every process of the scope and resolves once all have ended (or were given up on). */
  stop(): Promise<JobResult> {
    return new Promise((resolve) => {
      this.#stopWaiters.push(resolve);
      this.#dispatch({ type: 'stop' });
    });
  }

  /** `kill` on the scope: the main process, or every process of it. */
  signal(signal: number, whom: 'main' | 'all'): number {
    const main = this.main;
    const targets = whom === 'main' ? (main === undefined ? [] : [main]) : this.#held.all();
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
      main: this.main?.ref() ?? null,
      control: null,
      manualStop: this.#state.stopJob,
      sessions: [...sessions],
    };
  }

  dispose(): void {
    this.#held.dispose();
  }

  #dispatch(body: ScopeEventBody): void {
    this.#queue.push(body);
    if (this.#stepping) return;
    this.#stepping = true;
    try {
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
        // An ended process has nothing left to tell: its handle goes before the machine hears of it.
        if (next.type === 'exited') this.#held.release(next.slot);
        const { state, effects } = scopeStep(this.#service(), this.#state, { ...next, now: this.#ports.clock.now() } as ScopeEvent);
        this.#state = state;
        runEffects(effects, (effect) => this.#run(effect), this.#ports);
      }
    } finally {
      this.#stepping = false;
    }
  }

  #run(effect: ScopeEffect): void {
    const ports = this.#ports;
    switch (effect.type) {
      case 'adopt-members': {
        const handed = this.#handedOver;
        this.#handedOver = [];
        effect.slots.forEach((slot, i) => {
          const process = handed[i];
          if (process !== undefined) this.#held.bind(slot, process, (status: ExitStatus) => this.#dispatch({ type: 'exited', slot, status }));
        });
        for (const left of handed.slice(effect.slots.length)) left.release();
        return;
      }
      case 'signal-process':
        return this.#held.signal(effect.slot, effect.signal, effect);
      case 'signal-members':
        // The scope's own processes got their signal one by one; these are whatever else is the unit's.
        ports.processes.signalMembers(effect.signal, this.#held.all(), {
          ...(effect.thenCont === undefined ? {} : { thenCont: effect.thenCont }),
          ...(effect.thenHup === undefined ? {} : { thenHup: effect.thenHup }),
        });
        return;
      case 'watch-members':
        return this.#held.watchMembers(this.#held.all(), () => this.#dispatch({ type: 'members-gone' }));
      case 'unwatch-members':
        return this.#held.unwatchMembers();
      case 'release':
        return this.#held.release(effect.slot);
      case 'arm-timer': {
        const generation = effect.generation;
        return this.#held.arm('timeout', effect.ms, generation, () => this.#dispatch({ type: 'timer-fired', timer: 'timeout', generation }));
      }
      case 'cancel-timer':
        return this.#held.cancel('timeout');
      case 'persist':
        ports.events.persist();
        return;
      case 'emit-state':
        this.#onState(effect.activeState, effect.subState, effect.result);
        return;
      case 'log':
        ports.events.log(effect.level, effect.text);
        return;
      case 'job-done': {
        const waiters = this.#stopWaiters.splice(0);
        for (const resolve of waiters) resolve(effect.result);
        return;
      }
    }
  }
}
