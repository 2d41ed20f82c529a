/**
 * The real ports of every unit, built from what the manager owns: its own pidfd, the notify
 * server, the reaper, the keeper, the cgroup tree and the log store. The manager hands in how a
 * unit's facts reach it (persist, events, notes); everything that touches the system lives in the
 * ports this builds.
 */
import type { Pidfd } from '../../pidfd/index.js';
import type { CgroupTree } from '../cgroups.js';
import type { Keeper } from '../keeper/keeper.js';
import type { CaptureHandle, OutputSink } from '../manager.js';
import type { NotifyServer } from '../notify-server.js';
import type { ChildReaper } from '../reaper.js';
import type { ManagerEvent } from '../types.js';
import { checkConditions } from './conditions.js';
import { ExitWatch } from './exit-watch.js';
import { linuxClock } from './linux-clock.js';
import { LinuxProcessPort, type LinuxProcessContext } from './linux-processes.js';
import type { PortedUnit, UnitHost, UnitPorts } from './ports.js';

/** What the manager gives its host. */
export interface LinuxHostOptions {
  /** The daemon's own pidfd (MANAGERPIDFDID=, and never a unit's main process). */
  readonly self: Pidfd;
  readonly notify: NotifyServer | undefined;
  readonly reaper: ChildReaper;
  readonly keeper: Keeper | undefined;
  /** The daemon's cgroup subtree, once it is known (none without cgroups). */
  readonly cgroups: () => CgroupTree | undefined;
  readonly logs: OutputSink;
  /** Gives the keeper a capture's read ends; returns how to name the writer once it is known. */
  readonly holdCapture: (unit: string, capture: CaptureHandle, invocationId: string | null) => (writer: { pid: number; pidfdId: bigint | null }) => void;
  /** Something recorded changed: the state record is written soon. */
  readonly persist: () => void;
  readonly emit: (event: ManagerEvent) => void;
  /** A line about a unit, for the daemon's log, the unit's log and subscribers. */
  readonly note: (unit: PortedUnit, level: 'info' | 'warning' | 'error', text: string) => void;
  /** The unit a live process belongs to, if any: no unit may take another's process as its own. */
  readonly unitOf: (handle: Pidfd) => string | undefined;
}

/** The manager's host: real ports for each unit. */
export class LinuxHost implements UnitHost {
  readonly #options: LinuxHostOptions;
  readonly #context: LinuxProcessContext;

  constructor(options: LinuxHostOptions) {
    this.#options = options;
    const exits = new ExitWatch({ reaper: options.reaper, keeper: options.keeper, drainNotify: () => options.notify?.drain() });
    this.#context = {
      self: options.self,
      spawnContext: () => ({ manager: { pid: process.pid, pidfdId: options.self.id }, notifySocket: options.notify?.path }),
      logs: options.logs,
      holdCapture: (unit, invocationId) => (capture) => options.holdCapture(unit, capture, invocationId),
      cgroups: options.cgroups,
      exits,
      unitOf: options.unitOf,
    };
  }

  portsFor(unit: PortedUnit): UnitPorts {
    const options = this.#options;
    const note = (level: 'info' | 'warning' | 'error', text: string): void => options.note(unit, level, text);
    return {
      processes: new LinuxProcessPort(unit.name, this.#context, note),
      clock: linuxClock,
      conditions: checkConditions,
      events: {
        persist: options.persist,
        state(change) {
          options.emit({ type: 'state', unit: unit.name, ...change, mainProcess: unit.main?.ref() ?? null, timestamp: Date.now() });
        },
        log: note,
      },
    };
  }
}
