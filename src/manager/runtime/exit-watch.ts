/**
 * How the daemon learns that one of its units' processes ended. A child of ours (spawned, or
 * reparented to the subreaper) is reaped by the {@link ChildReaper}, which routes its status here;
 * its pidfd wakes the reaper without waiting for SIGCHLD. Anything else is watched through its
 * pidfd. While a process is watched, the keeper holds a copy of its pidfd so that a new daemon can
 * still read how it ended if this one dies first.
 */
import { native } from '../../native.js';
import { hasCode, type ExitStatus, type Pidfd } from '../../pidfd/index.js';
import type { Keeper } from '../keeper/keeper.js';
import { pidfdKey } from '../keeper/protocol.js';
import type { ChildReaper } from '../reaper.js';

/** What the exit watch needs from the daemon. */
export interface ExitWatchOptions {
  readonly reaper: ChildReaper;
  readonly keeper?: Keeper | undefined;
  /** Reads queued notify datagrams: a READY=1 sent just before an exit is handled before the exit. */
  readonly drainNotify?: (() => void) | undefined;
}

/** Watches processes to their end, one callback each. */
export class ExitWatch {
  readonly #options: ExitWatchOptions;

  constructor(options: ExitWatchOptions) {
    this.#options = options;
  }

  /**
   * Calls `onExit` once when the process ends, after queued notify datagrams were read. Returns a
   * function that stops watching (it must run before the pidfd is closed).
   */
  watch(handle: Pidfd, onExit: (status: ExitStatus) => void): () => void {
    const { reaper, keeper } = this.#options;
    let settled = false;
    let watcher: { close(): void } | undefined;
    const key = pidfdKey(handle.pid, handle.id);
    const stop = (): void => {
      if (settled) return;
      settled = true;
      reaper.untrack(handle.pid);
      keeper?.drop(key);
      // The watcher must go before anyone closes the pidfd: libuv keeps one watcher per fd number.
      watcher?.close();
      watcher = undefined;
    };
    const settle = (status: ExitStatus): void => {
      if (settled) return;
      stop();
      this.#options.drainNotify?.();
      onExit(status);
    };
    // Whether the process is our child now or becomes one later (reparented to the subreaper),
    // the reaper routes its exit here; for a non-child the pidfd tells.
    reaper.track(handle.pid, settle);
    keeper?.hold({ key, kind: 'pidfd', pid: handle.pid, pidfdId: handle.id?.toString() ?? null }, handle.fd);
    let ppid: number | undefined;
    try {
      ppid = handle.info().ppid;
    } catch (error) {
      if (!hasCode(error, 'ESRCH')) throw error;
    }
    if (ppid !== process.pid) {
      handle.exited.then(settle, () => {});
    } else {
      // The reaper hears of our children through SIGCHLD; the pidfd wakes it without waiting for the signal.
      watcher = native.watch(handle.fd, () => {
        watcher?.close();
        watcher = undefined;
        this.#options.drainNotify?.();
        reaper.reap();
      });
    }
    return stop;
  }
}
