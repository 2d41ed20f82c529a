/**
 * The faults the suite injects, each bounded in count and time: SIGKILL of the daemon (a new one
 * starts on the same directory) and of its keeper, a Varlink connection flood, a notify flood from
 * a process that belongs to no unit, and a full disk. Every process signalled here is held by a
 * pidfd, opened and then confirmed.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pidfd } from '../../src/pidfd/index.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { childrenOf, killAndWait, openConfirmed, sleep, snapshot } from './procfs.js';

const NOTIFY_FLOOD_SCRIPT = fileURLToPath(new URL('./notify-flood.js', import.meta.url));
const KEEPER_SCRIPT_TAIL = 'keeper/main.js';

/** What happened during the run, for the figures and the checks. */
export interface Figures {
  daemonKills: number;
  keeperKills: number;
  /** Keeper kills asked for when the daemon had no keeper to kill. */
  keeperMissing: number;
  connectionFloods: number;
  connectionsOpened: number;
  connectionsRefused: number;
  notifyFloods: number;
  notifySent: number;
  diskFulls: number;
  diskFullBytes: number;
  daemonStarts: number;
  /** Daemon starts that never listened (the process was then killed and the start tried again). */
  failedStarts: string[];
  /** Daemons that ended without being killed by the suite. */
  unplannedExits: string[];
  /** Calls the daemon did not answer in time right after a flood. */
  unansweredAfterFlood: number;
}

/** The daemon the suite runs now, with the handles it holds on it. */
export class Cluster {
  daemon!: TestDaemon;
  daemonHandle!: Pidfd;
  /** When the current daemon was started (ms since the epoch). */
  startedAt = 0;
  /** Every daemon's stderr, in order. */
  readonly stderrs: (() => string)[] = [];
  /** Every handle the suite took on a process it started or had started, to check at the end that none survives. */
  readonly handles: Pidfd[] = [];
  readonly figures: Figures = {
    daemonKills: 0,
    keeperKills: 0,
    keeperMissing: 0,
    connectionFloods: 0,
    connectionsOpened: 0,
    connectionsRefused: 0,
    notifyFloods: 0,
    notifySent: 0,
    diskFulls: 0,
    diskFullBytes: 0,
    daemonStarts: 0,
    failedStarts: [],
    unplannedExits: [],
    unansweredAfterFlood: 0,
  };
  #expectingExit = false;

  constructor(readonly dir: string) {}

  /** Starts a daemon on the directory (with `units` the first time); a start that never listens is killed and tried again. */
  async start(units: Record<string, string> = {}): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        this.startedAt = Date.now();
        this.#adopt(await startTestDaemon(units, this.dir));
        return;
      } catch (error) {
        this.figures.failedStarts.push((error as Error).message.split('\n').slice(-3).join(' | ').slice(0, 300));
        await this.#killStrayDaemons();
      }
    }
    throw new Error(`no daemon would start on ${this.dir}`);
  }

  #adopt(daemon: TestDaemon): void {
    this.daemon = daemon;
    this.daemonHandle = Pidfd.fromChild(daemon.process);
    this.handles.push(this.daemonHandle);
    this.stderrs.push(daemon.stderr);
    this.figures.daemonStarts++;
    this.#expectingExit = false;
    daemon.process.once('exit', (code, signal) => {
      if (!this.#expectingExit && this.daemon === daemon) {
        this.figures.unplannedExits.push(`daemon ${daemon.process.pid} exited (${code ?? signal}): ${lastLines(daemon.stderr(), 3)}`);
      }
    });
  }

  /** Whether the current daemon still runs. */
  get running(): boolean {
    return this.daemonHandle.isAlive();
  }

  /** A daemon that ended on its own is replaced, so the run goes on. */
  async ensureRunning(): Promise<void> {
    if (this.running) return;
    await this.daemon.crash();
    await this.start();
  }

  /** A daemon the helper started but that never listened: our own child, found in /proc and killed through a pidfd. */
  async #killStrayDaemons(): Promise<void> {
    const isStray = (argv: string[]): boolean => argv.includes('daemon') && argv.some((part) => part.startsWith(this.dir));
    for (const child of childrenOf(process.pid)) {
      if (!isStray(child.argv)) continue;
      const handle = openConfirmed(child, (now) => now.ppid === process.pid && isStray(now.argv));
      if (handle !== undefined) await killAndWait(handle);
      handle?.close();
    }
    await sleep(100);
  }

  /** SIGKILLs the daemon through its pidfd, then starts a new one on the same directory. */
  async killDaemon(): Promise<void> {
    this.#expectingExit = true;
    this.daemonHandle.signal('SIGKILL');
    await this.daemon.crash();
    this.figures.daemonKills++;
    await this.start();
  }

  /** SIGKILLs the daemon's keeper: a child of the daemon running the keeper script, confirmed after the open. */
  async killKeeper(): Promise<void> {
    const daemonPid = this.daemonHandle.pid;
    const isKeeper = (argv: string[]): boolean => argv.some((part) => part.endsWith(KEEPER_SCRIPT_TAIL)) && argv.some((part) => part.startsWith(this.dir));
    const keepers = childrenOf(daemonPid).filter((p) => p.state !== 'Z' && isKeeper(p.argv));
    if (keepers.length === 0) {
      this.figures.keeperMissing++;
      return;
    }
    for (const keeper of keepers) {
      const handle = openConfirmed(keeper, (now) => now.ppid === daemonPid && isKeeper(now.argv));
      if (handle === undefined) continue;
      await killAndWait(handle);
      handle.close();
      this.figures.keeperKills++;
    }
  }

  /** The daemon's keeper now, if it has one. */
  keeperPid(): number | undefined {
    const daemonPid = this.daemonHandle.pid;
    return childrenOf(daemonPid).find((p) => p.state !== 'Z' && p.argv.some((part) => part.endsWith(KEEPER_SCRIPT_TAIL)))?.pid;
  }

  /**
   * Opens `count` connections to the control socket at once: a third send a `List` call and never
   * read the reply, a few send a large message with no end, the rest stay idle. All are closed after
   * `holdMs`; then the daemon must answer a call.
   */
  async connectionFlood(count: number, holdMs: number): Promise<void> {
    this.figures.connectionFloods++;
    const sockets: Socket[] = [];
    const opened = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        new Promise<boolean>((resolve) => {
          const socket = createConnection(this.daemon.socket);
          sockets.push(socket);
          const timer = setTimeout(() => resolve(false), 5000);
          socket.once('error', () => {
            clearTimeout(timer);
            resolve(false);
          });
          socket.once('connect', () => {
            clearTimeout(timer);
            socket.pause();
            if (i % 3 === 0) socket.write('{"method":"io.holdfast.Manager.List"}\0');
            else if (i % 50 === 1) socket.write(Buffer.alloc(256 * 1024, 0x20));
            resolve(true);
          });
        }),
      ),
    );
    this.figures.connectionsOpened += opened.filter(Boolean).length;
    this.figures.connectionsRefused += opened.filter((ok) => !ok).length;
    await sleep(holdMs);
    for (const socket of sockets) socket.destroy();
    await this.#answersAfterFlood();
  }

  /** Starts a process that floods the notify socket with datagrams naming no unit, held by its pidfd, and waits for it (bounded). */
  async notifyFlood(count: number, seconds: number): Promise<void> {
    this.figures.notifyFloods++;
    const child = spawn(process.execPath, [NOTIFY_FLOOD_SCRIPT, join(this.dir, 'run', 'notify'), String(count), String(seconds)], { stdio: ['ignore', 'pipe', 'ignore'] });
    const handle = Pidfd.fromChild(child);
    this.handles.push(handle);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const ended = new Promise<void>((resolve) => child.once('close', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, (seconds + 10) * 1000, 'timeout')));
    if ((await Promise.race([ended, timeout])) === 'timeout') {
      await killAndWait(handle);
      await ended;
    }
    clearTimeout(timer);
    this.figures.notifySent += Number(out.split(' ')[0]) || 0;
    await this.#answersAfterFlood();
  }

  /** Fills the file system of the daemon's directory for `holdMs`, then frees it again. */
  async diskFull(holdMs: number): Promise<void> {
    this.figures.diskFulls++;
    const filler = join(this.dir, 'filler');
    const fd = openSync(filler, 'w');
    let written = 0;
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x41);
        for (;;) {
          try {
            written += writeSync(fd, chunk);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw error;
          }
        }
      }
      this.figures.diskFullBytes += written;
      await sleep(holdMs);
    } finally {
      closeSync(fd);
      unlinkSync(filler);
    }
  }

  async #answersAfterFlood(): Promise<void> {
    if (!this.running) return;
    if ((await this.callWithin('List', {}, 10_000)) === undefined) this.figures.unansweredAfterFlood++;
  }

  /** A call on the current daemon, or undefined if it does not answer within `ms` (or fails). */
  async callWithin<T extends object>(method: string, params: object, ms: number): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const call = this.daemon.call<T>(method, params).catch(() => undefined);
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
    try {
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends the run: a clean stop of the daemon (SIGTERM), which stops its units. A stop that takes
   * longer than `timeoutMs` is described (the daemon's last lines) and ended by SIGKILL.
   */
  async stop(timeoutMs: number): Promise<string | undefined> {
    this.#expectingExit = true;
    const daemon = this.daemon;
    const stopped = daemon.stop().catch((error: NodeJS.ErrnoException) => {
      // The directory is a mount point: everything in it is gone, the directory itself stays for the unmount.
      if (error.code !== 'EBUSY') throw error;
      return null;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, timeoutMs, 'timeout')));
    const outcome = await Promise.race([stopped, timeout]);
    clearTimeout(timer);
    if (outcome !== 'timeout') return undefined;
    const problem = `the clean stop took over ${timeoutMs / 1000} s; the daemon's last lines: ${lastLines(daemon.stderr(), 4)}`;
    await killAndWait(this.daemonHandle);
    await stopped;
    return problem;
  }
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join(' | ').slice(0, 400);
}

/** Whether a process seen earlier is still the same one and alive. */
export function stillAlive(pid: number, startTicks: number): boolean {
  const now = snapshot(pid);
  return now !== undefined && now.startTicks === startTicks && now.state !== 'Z';
}
