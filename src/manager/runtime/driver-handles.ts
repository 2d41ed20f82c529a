/**
 * What a unit's driver holds on its machine's behalf: the process behind each slot, the timers
 * armed by name and generation, and the one outstanding watch for the unit's other processes.
 * The service and scope drivers share it; each turns what happens here back into its own events.
 */
import type { ExitStatus } from '../../pidfd/index.js';
import type { ProcessSlot } from '../machines/service-protocol.js';
import type { HeldProcess, UnitPorts } from './ports.js';

const SIGKILL = 9;
const SIGCONT = 18;
const SIGHUP = 1;

/**
 * Runs one step's effects in order. One that throws (an unexpected errno) is logged and the rest
 * still run: a failed effect must not take the daemon down from a timer or an exit callback, nor
 * keep the effects after it (a timeout, a watch) from running.
 */
export function runEffects<Effect extends { readonly type: string }>(effects: readonly Effect[], run: (effect: Effect) => void, ports: UnitPorts): void {
  for (const effect of effects) {
    try {
      run(effect);
    } catch (error) {
      ports.events.log('error', `${effect.type} failed: ${(error as Error).message}`);
    }
  }
}

export class DriverHandles<Timer extends string> {
  readonly #ports: UnitPorts;
  readonly #processes = new Map<ProcessSlot, HeldProcess>();
  readonly #timers = new Map<Timer, { generation: number; cancel: () => void }>();
  #unwatchMembers: (() => void) | undefined;
  #disposed = false;

  constructor(ports: UnitPorts) {
    this.#ports = ports;
  }

  /** The process in a slot, while the driver holds one. */
  get(slot: ProcessSlot | undefined): HeldProcess | undefined {
    return slot === undefined ? undefined : this.#processes.get(slot);
  }

  /** Every process held. */
  all(): HeldProcess[] {
    return [...this.#processes.values()];
  }

  /** Names a process by its slot and watches it to its end (no report once disposed). */
  bind(slot: ProcessSlot, process: HeldProcess, onExit: (status: ExitStatus) => void): void {
    this.#processes.set(slot, process);
    this.#ports.processes.watchExit(process, (status) => {
      if (!this.#disposed) onExit(status);
    });
  }

  /** Lets go of the process in a slot: stops watching it and closes its handle, never signals. */
  release(slot: ProcessSlot): void {
    const process = this.#processes.get(slot);
    this.#processes.delete(slot);
    process?.release();
  }

  /** One signal through the handle of a slot (nothing if none is held: the process is gone or was never found). */
  signal(slot: ProcessSlot, signal: number, options: { thenCont?: boolean | undefined; thenHup?: boolean | undefined }): void {
    const process = this.#processes.get(slot);
    if (process === undefined) return;
    process.signal(signal);
    if (options.thenCont === true && signal !== SIGKILL && signal !== SIGCONT) process.signal(SIGCONT);
    if (options.thenHup === true) process.signal(SIGHUP);
  }

  /** Watches for the unit's other processes to be gone; replaces an earlier watch. `onGone` may run at once. */
  watchMembers(except: readonly HeldProcess[], onGone: () => void): void {
    this.unwatchMembers();
    let reported = false;
    let stop: (() => void) | undefined;
    stop = this.#ports.processes.watchMembers(except, () => {
      reported = true;
      if (this.#unwatchMembers === stop) this.#unwatchMembers = undefined;
      onGone();
    });
    // A watch that reported at once (nothing left) is over already.
    if (!reported) this.#unwatchMembers = stop;
  }

  unwatchMembers(): void {
    this.#unwatchMembers?.();
    this.#unwatchMembers = undefined;
  }

  /** Arms a timer; a fire after it was re-armed or cancelled is stale and dropped. */
  arm(timer: Timer, ms: number, generation: number, fire: () => void): void {
    this.#timers.get(timer)?.cancel();
    const cancel = this.#ports.clock.arm(ms, () => {
      if (this.#timers.get(timer)?.generation !== generation) return;
      this.#timers.delete(timer);
      fire();
    });
    this.#timers.set(timer, { generation, cancel });
  }

  cancel(timer: Timer): void {
    this.#timers.get(timer)?.cancel();
    this.#timers.delete(timer);
  }

  /** Stops timers and watches so the daemon can exit or re-exec; processes are left as they are. */
  dispose(): void {
    this.#disposed = true;
    for (const timer of this.#timers.values()) timer.cancel();
    this.#timers.clear();
    this.unwatchMembers();
  }
}
