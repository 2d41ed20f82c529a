/**
 * The daemon reaps every child it has: the processes it spawned and, as a child subreaper, every
 * orphan that the kernel hands it (double-forked daemons, stray grandchildren). One place reaps,
 * so a status is never lost to a second waiter: each reaped PID is routed to whoever tracks it.
 *
 * A PID cannot be recycled while it is an unreaped zombie, and routing happens in the same
 * synchronous block as the reap, so the PID → tracker lookup cannot hit a stranger.
 */
import { native } from '../native.js';
import { type ExitStatus, signalName } from '../pidfd/index.js';

/** Called with how a tracked process ended. */
export type ExitListener = (status: ExitStatus) => void;

/** Reaps children and routes their exits. The daemon must not use `node:child_process` besides this. */
export class ChildReaper {
  readonly #listeners = new Map<number, ExitListener>();
  #onStray: (pid: number, status: ExitStatus) => void;
  readonly #sigchld = (): void => {
    this.reap();
  };
  #installed = false;

  constructor(onStray: (pid: number, status: ExitStatus) => void = () => {}) {
    this.#onStray = onStray;
  }

  /** Becomes the subreaper of this process's descendants and starts reaping on SIGCHLD. */
  install(subreaper = true): void {
    if (this.#installed) return;
    if (subreaper) native.setChildSubreaper(true);
    process.on('SIGCHLD', this.#sigchld);
    this.#installed = true;
    this.reap();
  }

  /** Stops listening for SIGCHLD (the subreaper bit stays: it cannot be handed back safely). */
  uninstall(): void {
    if (!this.#installed) return;
    process.off('SIGCHLD', this.#sigchld);
    this.#installed = false;
  }

  /** Routes the exit of child `pid` to `listener`; the child must be ours and not yet reaped. */
  track(pid: number, listener: ExitListener): void {
    this.#listeners.set(pid, listener);
  }

  /** Stops routing `pid` (its exit will count as a stray). */
  untrack(pid: number): void {
    this.#listeners.delete(pid);
  }

  /** Reaps every exited child now. Safe to call any time; returns how many were reaped. */
  reap(): number {
    let count = 0;
    for (;;) {
      const reaped = native.reapAny(false);
      if (reaped === null) return count;
      count++;
      const status: ExitStatus = {
        code: reaped.code,
        signal: reaped.signal === null ? null : signalName(reaped.signal),
        coreDumped: reaped.coreDumped,
      };
      const listener = this.#listeners.get(reaped.pid);
      this.#listeners.delete(reaped.pid);
      if (listener !== undefined) listener(status);
      else this.#onStray(reaped.pid, status);
    }
  }
}
