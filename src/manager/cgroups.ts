/**
 * Control groups v2, where the machine gives the daemon a writable subtree (as root on a unified
 * or hybrid hierarchy, or in a delegated subtree). Each unit gets its own cgroup; processes are
 * born in it (CLONE_INTO_CGROUP), `cgroup.kill` ends them all, `cgroup.events` says when the last
 * one is gone, and where controllers are enabled MemoryMax=, CPUQuota= and TasksMax= apply.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  readonly controllers: ReadonlySet<string>;
  /** The cgroup2 mount point, to turn a path into what /proc/PID/cgroup shows. */
  readonly #mount: string;

  private constructor(base: string, controllers: Set<string>, mount: string) {
    this.base = base;
    this.controllers = controllers;
    this.#mount = mount;
  }

  /**
   * Sets up the daemon's subtree, named after its state directory so that a daemon started again
   * (or re-executed) finds its units' cgroups. Returns why not when the machine gives none.
   */
  static open(stateDir: string): CgroupTree | string {
    const where = locate();
    if (where === undefined) return 'no cgroup v2 hierarchy is mounted';
    const name = `holdfast-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
    const base = join(where.mount, where.own, name);
    try {
      mkdirSync(base, { recursive: true });
      // mkdir of an existing directory proves nothing: creating a child does.
      mkdirSync(join(base, '.probe'));
      rmdirSync(join(base, '.probe'));
    } catch (error) {
      return `the cgroup ${base} is not writable (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
    }
    const available = (read(join(base, 'cgroup.controllers')) ?? '').trim().split(/\s+/).filter(Boolean);
    const wanted = available.filter((c) => c === 'memory' || c === 'cpu' || c === 'pids');
    const enabled = new Set<string>();
    for (const controller of wanted) {
      try {
        writeFileSync(join(base, 'cgroup.subtree_control'), `+${controller}`);
        enabled.add(controller);
      } catch {
        // A controller the parent keeps to itself: limits of that kind are reported as not applied.
      }
    }
    return new CgroupTree(base, enabled, where.mount);
  }

  /** The cgroup path of a unit. */
  path(unit: string): string {
    return join(this.base, dirName(unit));
  }

  /**
   * Creates (or reuses) a unit's cgroup, applies its limits, and returns an fd for
   * CLONE_INTO_CGROUP (the caller closes it) and the limits that could not be applied.
   */
  prepare(unit: string, service: ServiceSection): { fd: number; unapplied: string[] } {
    const path = this.path(unit);
    mkdirSync(path, { recursive: true });
    const unapplied: string[] = [];
    const set = (controller: string, file: string, value: string, directive: string): void => {
      if (!this.controllers.has(controller)) {
        unapplied.push(`${directive} (the ${controller} controller is not enabled here)`);
        return;
      }
      writeFileSync(join(path, file), value);
    };
    const memory = service.memoryMax;
    if (typeof memory === 'number' && Number.isFinite(memory)) set('memory', 'memory.max', String(memory), 'MemoryMax=');
    else if (typeof memory === 'object') set('memory', 'memory.max', String(Math.floor((memoryTotal() * memory.percent) / 100)), 'MemoryMax=');
    if (service.cpuQuotaPercent !== undefined) set('cpu', 'cpu.max', `${Math.round(service.cpuQuotaPercent * 1000)} 100000`, 'CPUQuota=');
    const tasks = service.tasksMax;
    if (typeof tasks === 'number' && Number.isFinite(tasks)) set('pids', 'pids.max', String(tasks), 'TasksMax=');
    return { fd: openSync(path, 'r'), unapplied };
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

function memoryTotal(): number {
  const kb = /^MemTotal:\s+(\d+) kB$/m.exec(read('/proc/meminfo') ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** Closes an fd from {@link CgroupTree.prepare}. */
export function closeCgroupFd(fd: number): void {
  closeSync(fd);
}
