import type { ExitStatus, Pidfd } from '../pidfd/index.js';
import type { ServiceSection } from '../unit/index.js';
import type { ServiceUnit } from './service.js';

/** The child's standard fds for one spawn, and what to do around the spawn. */
export interface SpawnIo {
  fds: (number | null)[];
  /** Called right after the spawn attempt, success or not (closes our copies of the child's ends). */
  afterSpawn(): void;
  /** Called with the new process, so its output is attributed to it. */
  attach(handle: Pidfd): void;
  /** Called when the spawn failed. */
  abort(): void;
}

/** What a service unit needs from the manager that runs it. */
export interface ServiceHost {
  /** The environment every spawned process starts from (PATH, LANG, …). A fresh object each call. */
  baseEnvironment(): Record<string, string>;
  managerIdentity(): { pid: number; pidfdId: bigint | undefined };
  notifySocketPath(): string | undefined;
  /** The manager user's home directory (WorkingDirectory=~ without User=). */
  home(): string;
  stdio(unit: ServiceUnit, service: ServiceSection): SpawnIo;
  /** Resolves with how the process ended; the manager reaps its children, others are watched by pidfd. */
  trackChild(handle: Pidfd): Promise<ExitStatus>;
  openPid(pid: number): Pidfd;
  verifyPid(pid: number, id: string): Pidfd;
  adoptPidfd(fd: number): Pidfd;
  closeFd(fd: number): void;
  /** Why a process may not become this unit's main process, or undefined if it may. */
  mainPidRefusal(handle: Pidfd, unit: ServiceUnit, senderUid: number): string | undefined;
  /** Handle queued notify datagrams now (before acting on an exit). */
  drainNotify(): void;
  stateChanged(unit: ServiceUnit): void;
  /** Something the state file records changed without a state change (a control process came or went). */
  recordChanged(unit: ServiceUnit): void;
  /** The unit's cgroup for a spawn (an fd for CLONE_INTO_CGROUP), or undefined without cgroups. */
  cgroupForSpawn(unit: ServiceUnit): { fd: number; close(): void } | undefined;
  /** The live processes of the unit's cgroup; undefined without cgroups. */
  cgroupMembers(unit: ServiceUnit): Pidfd[] | undefined;
  /** SIGKILL to everything in the unit's cgroup at once; false without cgroups. */
  cgroupKill(unit: ServiceUnit): boolean;
  /** Resolves true once the unit's cgroup is empty (true at once without cgroups). */
  cgroupEmpty(unit: ServiceUnit, timeoutMs: number): Promise<boolean>;
  note(unit: ServiceUnit, level: 'info' | 'warning' | 'error', text: string): void;
}

/** The parts of a notify datagram a unit reads (the notify server's message satisfies it). */
export interface NotifyInput {
  get(key: string): string | undefined;
  /** Takes the attached fds: the caller owns them from here on. */
  takeFds(): number[];
  sender: { pid: number; uid: number };
}
