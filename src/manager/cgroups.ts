/**
 * Control groups v2, where the machine gives the daemon a writable subtree (as root on a unified
 * or hybrid hierarchy, or in a delegated subtree). Each unit gets its own cgroup; processes are
 * born in it (CLONE_INTO_CGROUP), `cgroup.kill` ends them all, `cgroup.events` says when the last
 * one is gone, and where controllers are enabled MemoryMax=, CPUQuota= and TasksMax= apply.
 *
 * Controllers, as systemd enables them: cgroup v2 offers a cgroup only the controllers its parent
 * lists in `cgroup.subtree_control`, so a controller reaches a unit's cgroup only when it is
 * enabled at every level above it: in the daemon's own cgroup (the parent of the subtree) and in
 * the subtree's top. holdfast enables there what the daemon's own cgroup offers
 * (`cgroup.controllers`): memory and pids at once (their figures are in `status`, as systemd's
 * MemoryAccounting= and TasksAccounting= are on by default), cpu only once a unit has CPUQuota=
 * (CPU time is in `cpu.stat` without it, and the controller changes how CPU time is shared).
 * A non-root cgroup that holds processes cannot pass controllers on (the "no internal processes"
 * rule), and the daemon is a process of its own cgroup: so limits work when the daemon runs in the
 * root cgroup (as root on a unified or hybrid hierarchy). Otherwise, and where a controller is bound
 * to a cgroup v1 hierarchy, the reason is kept and the limits that need it are reported as not
 * applied (the units still get their cgroups, for tracking and `cgroup.kill`).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, watch, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hasCode, Pidfd } from '../pidfd/index.js';
import type { ServiceSection } from '../unit/index.js';

/** Resource use of one unit's cgroup, where the kernel reports it. */
export interface CgroupStats {
  path: string;
  memoryCurrent: number | null;
  cpuUsageUsec: number | null;
  tasks: number | null;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The words of a cgroup file such as `cgroup.controllers`; empty if it cannot be read. */
function words(path: string): string[] {
  return (read(path) ?? '').trim().split(/\s+/).filter(Boolean);
}

/** The controllers holdfast enables as soon as it has a subtree; `cpu` comes on demand (see above). */
const ACCOUNTING_CONTROLLERS = ['memory', 'pids'] as const;

/**
 * Why a controller the daemon's cgroup does not offer is missing, from /proc/cgroups where that
 * tells (a controller mounted as a cgroup v1 hierarchy is not available to cgroup v2).
 */
function missingReason(controller: string, own: string): string {
  for (const line of (read('/proc/cgroups') ?? '').split('\n')) {
    const [name, hierarchy, count, enabled] = line.split('\t');
    if (name !== controller) continue;
    if (enabled === '0') return `the ${controller} controller is disabled (kernel command line)`;
    if (hierarchy !== '0') return `the ${controller} controller is bound to a cgroup v1 hierarchy (/proc/cgroups: hierarchy ${hierarchy}, ${count} cgroups), so cgroup v2 does not have it`;
  }
  return `the ${controller} controller is not offered to the daemon's cgroup ${own} (not in its cgroup.controllers)`;
}

/** Where cgroup2 is mounted and which cgroup this process is in. */
function locate(): { mount: string; own: string } | undefined {
  const own = /^0::(\/.*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1];
  if (own === undefined) return undefined;
  for (const line of (read('/proc/self/mountinfo') ?? '').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && fields[dash + 1] === 'cgroup2') return { mount: fields[4]!, own };
  }
  return undefined;
}

/** Unit names become directory names; anything unusual is escaped so no name walks the tree. */
function dirName(unit: string): string {
  return unit.replace(/[^A-Za-z0-9@._-]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/^\.+/, '_');
}

/** The daemon's cgroup subtree. */
export class CgroupTree {
  readonly base: string;
  /** The daemon's own cgroup, the parent of {@link base}. */
  readonly own: string;
  /** The cgroup2 mount point, to turn a path into what /proc/PID/cgroup shows. */
  readonly #mount: string;
  /** Controllers the units' cgroups have (enabled in `own` and `base`). */
  readonly #enabled = new Set<string>();
  /** Why a controller could not be enabled: asked once per daemon, not at every spawn. */
  readonly #missing = new Map<string, string>();

  private constructor(base: string, own: string, mount: string) {
    this.base = base;
    this.own = own;
    this.#mount = mount;
  }

  /** Controllers the units' cgroups have. */
  get controllers(): ReadonlySet<string> {
    return this.#enabled;
  }

  /**
   * Sets up the daemon's subtree, named after its state directory so that a daemon started again
   * (or re-executed) finds its units' cgroups. Returns why not when the machine gives none.
   */
  static open(stateDir: string): CgroupTree | string {
    const where = locate();
    if (where === undefined) return 'no cgroup v2 hierarchy is mounted';
    const name = `holdfast-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
    const own = resolve(where.mount, `.${where.own}`);
    const base = join(own, name);
    try {
      mkdirSync(base, { recursive: true });
      // mkdir of an existing directory proves nothing: creating a child does.
      mkdirSync(join(base, '.probe'));
      rmdirSync(join(base, '.probe'));
    } catch (error) {
      return `the cgroup ${base} is not writable (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
    }
    const tree = new CgroupTree(base, own, where.mount);
    // A subtree set up before (a daemon restarted or re-executed) keeps what it had, cpu included.
    for (const controller of words(join(base, 'cgroup.subtree_control'))) tree.#enabled.add(controller);
    for (const controller of ACCOUNTING_CONTROLLERS) tree.enable(controller);
    return tree;
  }

  /**
   * Makes a controller available in the units' cgroups: enabled in the daemon's own cgroup (if it
   * offers it) and then in the subtree's top, top-down as cgroup v2 requires. Returns why not.
   */
  enable(controller: string): string | undefined {
    if (this.#enabled.has(controller)) return undefined;
    const known = this.#missing.get(controller);
    if (known !== undefined) return known;
    const why = this.#enableChain(controller);
    if (why === undefined) this.#enabled.add(controller);
    else this.#missing.set(controller, why);
    return why;
  }

  #enableChain(controller: string): string | undefined {
    for (const dir of [this.own, this.base]) {
      if (!words(join(dir, 'cgroup.controllers')).includes(controller)) {
        return dir === this.own ? missingReason(controller, this.own) : `the ${controller} controller did not reach ${dir}`;
      }
      if (words(join(dir, 'cgroup.subtree_control')).includes(controller)) continue;
      try {
        writeFileSync(join(dir, 'cgroup.subtree_control'), `+${controller}`);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? String(error);
        if (code === 'EBUSY' && dir === this.own) {
          return `the daemon's cgroup ${dir} is not the root cgroup and holds processes (the daemon at least), and cgroup v2 passes controllers on only from a cgroup without any (EBUSY)`;
        }
        return `enabling the ${controller} controller in ${join(dir, 'cgroup.subtree_control')} failed (${code})`;
      }
    }
    return undefined;
  }

  /** The cgroup path of a unit. */
  path(unit: string): string {
    return join(this.base, dirName(unit));
  }

  /**
   * Creates (or reuses) a unit's cgroup, applies its limits, and returns an fd for
   * CLONE_INTO_CGROUP (the caller closes it) and the limits that could not be applied, each with
   * the reason. A limit the unit does not set is reset to `max`, so a cgroup reused after a
   * reload keeps no limit the unit file no longer has.
   */
  prepare(unit: string, service: ServiceSection): { fd: number; unapplied: string[] } {
    const path = this.path(unit);
    mkdirSync(path, { recursive: true });
    const unapplied: string[] = [];
    const write = (file: string, value: string): string | undefined => {
      try {
        writeFileSync(join(path, file), value);
        return undefined;
      } catch (error) {
        return `writing '${value}' to ${join(path, file)} failed (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
      }
    };
    const set = (controller: string, file: string, value: string | undefined, unset: string, directive: string): void => {
      if (value === undefined) {
        if (this.#enabled.has(controller)) write(file, unset);
        return;
      }
      const why = this.enable(controller) ?? write(file, value);
      if (why !== undefined) unapplied.push(`${directive} (${why})`);
    };
    const memory = service.memoryMax;
    const memoryBytes = typeof memory === 'object' ? Math.floor((memoryTotal() * memory.percent) / 100) : Number.isFinite(memory) ? memory : undefined;
    set('memory', 'memory.max', memoryBytes === undefined ? undefined : String(memoryBytes), 'max', 'MemoryMax=');
    // Per period of 100ms as systemd's default CPUQuotaPeriodSec=; the kernel takes no less than 1ms.
    const quota = service.cpuQuotaPercent === undefined ? undefined : Math.max(1000, Math.round(service.cpuQuotaPercent * 1000));
    set('cpu', 'cpu.max', quota === undefined ? undefined : `${quota} 100000`, 'max 100000', 'CPUQuota=');
    const tasks = service.tasksMax;
    const tasksCount = typeof tasks === 'object' ? Math.max(1, Math.floor((systemTasksMax() * tasks.percent) / 100)) : tasks !== undefined && Number.isFinite(tasks) ? tasks : undefined;
    set('pids', 'pids.max', tasksCount === undefined ? undefined : String(tasksCount), 'max', 'TasksMax=');
    return { fd: openSync(path, 'r'), unapplied };
  }

  /** Why a controller is not in the units' cgroups, or undefined when it is (or was never asked for). */
  unavailable(controller: string): string | undefined {
    return this.#enabled.has(controller) ? undefined : this.#missing.get(controller);
  }

  /** Whether any process is left in the unit's cgroup. */
  populated(unit: string): boolean {
    return /^populated 1$/m.test(read(join(this.path(unit), 'cgroup.events')) ?? '');
  }

  /**
   * The live processes of a unit's cgroup as handles, each confirmed a member after its pidfd
   * was opened (a PID read from cgroup.procs may change hands before the open).
   */
  members(unit: string): Pidfd[] {
    const path = this.path(unit);
    const out: Pidfd[] = [];
    for (const line of (read(join(path, 'cgroup.procs')) ?? '').split('\n')) {
      if (!/^\d+$/.test(line)) continue;
      let handle: Pidfd;
      try {
        handle = Pidfd.open(Number(line));
      } catch (error) {
        if (hasCode(error, 'ESRCH', 'EINVAL')) continue;
        throw error;
      }
      if (this.cgroupOf(handle) === path) out.push(handle);
      else handle.close();
    }
    return out;
  }

  /** The cgroup path a live process is in, read through /proc and confirmed by its handle. */
  cgroupOf(handle: Pidfd): string | undefined {
    const relative = /^0::(.*)$/m.exec(read(`/proc/${handle.pid}/cgroup`) ?? '')?.[1];
    return relative !== undefined && handle.isAlive() ? join(this.#mount, relative) : undefined;
  }

  /** Ends every process of the unit at once (`cgroup.kill`, 5.14+); false where the kernel lacks it. */
  killAll(unit: string): boolean {
    const file = join(this.path(unit), 'cgroup.kill');
    if (!existsSync(file)) return false;
    writeFileSync(file, '1');
    return true;
  }

  /** Resolves when the unit's cgroup is empty (cgroup.events), or after `timeoutMs`. */
  whenEmpty(unit: string, timeoutMs: number): Promise<boolean> {
    const events = join(this.path(unit), 'cgroup.events');
    if (!this.populated(unit)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (empty: boolean): void => {
        watcher?.close();
        clearTimeout(timer);
        clearInterval(poll);
        resolve(empty);
      };
      let watcher: ReturnType<typeof watch> | undefined;
      try {
        watcher = watch(events, () => {
          if (!this.populated(unit)) done(true);
        });
      } catch {
        watcher = undefined;
      }
      // inotify on cgroupfs is the fast path; a slow poll covers kernels where it does not fire.
      const poll = setInterval(() => {
        if (!this.populated(unit)) done(true);
      }, 200);
      const timer = setTimeout(() => done(false), Number.isFinite(timeoutMs) ? timeoutMs : 2 ** 31 - 1);
    });
  }

  /** Memory, CPU and task figures of a unit, where the controllers report them. */
  stats(unit: string): CgroupStats {
    const path = this.path(unit);
    const number = (text: string | undefined): number | null => (text === undefined || !/^\d+/.test(text.trim()) ? null : Number(text.trim()));
    const cpu = /^usage_usec (\d+)$/m.exec(read(join(path, 'cpu.stat')) ?? '')?.[1];
    return {
      path,
      memoryCurrent: number(read(join(path, 'memory.current'))),
      cpuUsageUsec: cpu === undefined ? null : Number(cpu),
      tasks: number(read(join(path, 'pids.current'))) ?? ((read(join(path, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).length || null),
    };
  }

  /** Removes a unit's cgroup once it is empty. */
  remove(unit: string): void {
    try {
      rmdirSync(this.path(unit));
    } catch {
      // Still populated, or already gone.
    }
  }

  /** Removes the whole subtree (clean shutdown): only empty cgroups go. */
  removeAll(units: Iterable<string>): void {
    for (const unit of units) this.remove(unit);
    try {
      rmdirSync(this.base);
    } catch {
      // Something is left: it stays for whoever looks.
    }
  }
}

/** What TasksMax=N% is a share of, as systemd counts it: the kernel's limit on threads and PIDs. */
function systemTasksMax(): number {
  const threads = Number((read('/proc/sys/kernel/threads-max') ?? '').trim()) || Infinity;
  const pids = (Number((read('/proc/sys/kernel/pid_max') ?? '').trim()) || Infinity) - 1;
  return Math.min(threads, pids, 4194303);
}

function memoryTotal(): number {
  const kb = /^MemTotal:\s+(\d+) kB$/m.exec(read('/proc/meminfo') ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** Closes an fd from {@link CgroupTree.prepare}. */
export function closeCgroupFd(fd: number): void {
  closeSync(fd);
}
