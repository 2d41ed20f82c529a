/**
 * The three systems bench/manager.ts compares, each behind a small wrapper: a real `holdfast
 * daemon` in a temp directory (spoken to over its Varlink socket), PM2's God daemon under a private
 * PM2_HOME (through PM2's programmatic API), and the C floor (bench/floor.c, compiled at run time).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VarlinkClient } from '../src/api/varlink/index.js';
import type { ManagerEvent } from '../src/manager/types.js';

/** Nanoseconds on CLOCK_MONOTONIC: libuv's hrtime reads the clock the C programs read. */
export const monoNs = (): bigint => process.hrtime.bigint();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** VmRSS of a process in KiB, or undefined if it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Memory only this process holds, in KiB (USS: Private_Clean + Private_Dirty of smaps_rollup).
 * VmRSS also counts pages shared with other processes, such as the Node binary's text, which two
 * Node processes (daemon and keeper) hold once, not twice.
 */
export function privateKiB(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? NaN);
    const total = field('Private_Clean') + field('Private_Dirty');
    return Number.isNaN(total) ? undefined : total;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------------------------ stamps

/** One line of a stamp file: the PID that wrote it and when (CLOCK_REALTIME and CLOCK_MONOTONIC). */
export interface Stamp {
  pid: number;
  realtimeNs: bigint;
  /** Null when the shell fallback wrote the line (no monotonic clock from sh). */
  monoNs: bigint | null;
}

export function readStamps(file: string): Stamp[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const stamps: Stamp[] = [];
  for (const line of text.split('\n')) {
    const [pid, rt, mono] = line.trim().split(' ');
    if (pid === undefined || rt === undefined || !/^\d+$/.test(pid) || !/^\d+$/.test(rt)) continue;
    stamps.push({ pid: Number(pid), realtimeNs: BigInt(rt), monoNs: mono !== undefined && /^\d+$/.test(mono) ? BigInt(mono) : null });
  }
  return stamps;
}

/** Counts the lines of a file without parsing them. */
export function lineCount(file: string): number {
  try {
    const text = readFileSync(file, 'latin1');
    let n = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------------------------- floor

/** The compiled floor, or why there is none. */
export type Floor = { path: string; compiler: string } | { path: undefined; reason: string };

/** Compiles bench/floor.c into `dir` with `cc -O2`. */
export function compileFloor(dir: string): Floor {
  const source = fileURLToPath(new URL('../../bench/floor.c', import.meta.url));
  if (!existsSync(source)) return { path: undefined, reason: `${source} not found` };
  const out = join(dir, 'floor');
  try {
    execFileSync('cc', ['-O2', '-o', out, source], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    return { path: undefined, reason: e.code === 'ENOENT' ? 'no C compiler (cc) on the PATH' : `cc failed: ${e.stderr?.toString().trim() ?? e.message}` };
  }
  let compiler = 'cc';
  try {
    compiler = execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
  } catch {
    // the version line is only informative
  }
  return { path: out, compiler };
}

/**
 * The crashing service all three systems run: the floor's `stamp` mode when it compiled, else a
 * shell script that writes the same line without the monotonic clock. With `delayMs` it waits
 * that long before the stamp (and its exit).
 */
export function stampProgram(dir: string, floor: Floor): { argv: (file: string, delayMs?: number) => string[]; what: string } {
  const delay = (ms: number | undefined): string[] => (ms === undefined || ms <= 0 ? [] : [String(ms)]);
  if (floor.path !== undefined) return { argv: (file, ms) => [floor.path, 'stamp', file, ...delay(ms)], what: `${floor.path} stamp FILE [MS] (C)` };
  const script = join(dir, 'stamp.sh');
  writeFileSync(script, '#!/bin/sh\nif [ -n "$2" ]; then sleep "$(echo "$2" | awk \'{ print $1 / 1000 }\')"; fi\necho "$$ $(date +%s%N) -" >> "$1"\nexit 1\n');
  chmodSync(script, 0o755);
  return { argv: (file, ms) => [script, file, ...delay(ms)], what: `${script} FILE [MS] (sh + date, no C compiler)` };
}

/** Runs the floor binary and returns its stdout. */
export function runFloor(path: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, args, { maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`floor ${args.join(' ')}: ${error.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

// ---------------------------------------------------------------------------------- holdfast

const HOLDFAST_BIN = fileURLToPath(new URL('../../bin/holdfast.js', import.meta.url));

export interface JobReply {
  job: { unit: string; result: string; activeState: string; subState: string; serviceResult: string };
}

/** A `holdfast daemon` in its own directory, started with the given unit files. */
export class HoldfastDaemon {
  readonly #child: ChildProcess;
  readonly #client: VarlinkClient;
  readonly socket: string;
  readonly stderrPath: string;

  private constructor(child: ChildProcess, client: VarlinkClient, socket: string, stderrPath: string) {
    this.#child = child;
    this.#client = client;
    this.socket = socket;
    this.stderrPath = stderrPath;
  }

  static async start(dir: string, units: Record<string, string>): Promise<HoldfastDaemon> {
    const unitDir = join(dir, 'units');
    mkdirSync(unitDir, { recursive: true });
    for (const [name, text] of Object.entries(units)) writeFileSync(join(unitDir, name), text);
    const socket = join(dir, 'run', 'control');
    const stderrPath = join(dir, 'daemon.stderr');
    const stderrFd = openSync(stderrPath, 'a');
    const child = spawn(process.execPath, [HOLDFAST_BIN, 'daemon', '--units', unitDir, '--state-dir', join(dir, 'state'), '--socket', socket], {
      stdio: ['ignore', 'ignore', stderrFd],
    });
    closeSync(stderrFd);
    for (let i = 0; i < 400 && !existsSync(socket); i++) {
      if (child.exitCode !== null) throw new Error(`holdfast daemon exited: ${readFileSync(stderrPath, 'utf8')}`);
      await sleep(25);
    }
    if (!existsSync(socket)) throw new Error(`holdfast daemon did not listen: ${readFileSync(stderrPath, 'utf8')}`);
    return new HoldfastDaemon(child, await VarlinkClient.connect(socket), socket, stderrPath);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /**
   * Node processes the daemon runs besides services (the keeper that holds log pipes and pidfds
   * across a daemon crash): children of the daemon whose executable is this Node.
   */
  helperPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === this.pid && readlinkSync(`/proc/${entry}/exe`) === process.execPath) pids.push(Number(entry));
      } catch {
        // gone, or not ours to read
      }
    }
    return pids;
  }

  /** A call on `io.holdfast.Manager` over the daemon's main connection. */
  call<T extends object>(method: string, params: object = {}): Promise<T> {
    return this.#client.call<T>(`io.holdfast.Manager.${method}`, params);
  }

  /** More connections: the daemon runs one call at a time per connection, so parallel calls need several. */
  async connections(n: number): Promise<VarlinkClient[]> {
    return Promise.all(Array.from({ length: n }, () => VarlinkClient.connect(this.socket)));
  }

  /** Follows `Subscribe` on a connection of its own; `close()` ends it. */
  async subscribe(onEvent: (event: ManagerEvent, receivedNs: bigint) => void): Promise<{ close(): Promise<void> }> {
    const client = await VarlinkClient.connect(this.socket);
    const stream = client.callMore<{ event: ManagerEvent }>('io.holdfast.Manager.Subscribe', {});
    const loop = (async () => {
      try {
        for await (const reply of stream) onEvent(reply.event, monoNs());
      } catch {
        // the stream ends by closing its connection
      }
    })();
    // The server registers the listener once it has read the call, which sends no reply to wait
    // for: give it a moment (the benchmarks discard their first events as warm-up anyway).
    await sleep(50);
    return {
      async close() {
        await stream.return?.();
        client.destroy();
        await loop;
      },
    };
  }

  /** SIGTERM (the daemon stops every unit), then waits for its exit. */
  async stop(): Promise<void> {
    await this.#client.close();
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = new Promise((r) => this.#child.once('exit', r));
      this.#child.kill('SIGTERM');
      await exited;
    }
  }
}

// --------------------------------------------------------------------------------------- PM2

type Pm2Api = typeof import('pm2');
export type Pm2StartOptions = import('pm2').StartOptions;

interface Pm2Bus {
  on(event: string, listener: (packet: { event?: string; process?: { name?: string }; at?: number }) => void): void;
}

/** PM2's God daemon under a private PM2_HOME, driven through the programmatic API. */
export class Pm2Daemon {
  readonly home: string;
  readonly #pm2: Pm2Api;
  readonly version: string;
  #bus: Pm2Bus | undefined;

  private constructor(home: string, pm2: Pm2Api, version: string) {
    this.home = home;
    this.#pm2 = pm2;
    this.version = version;
  }

  /** Sets PM2_HOME before PM2 is loaded (it reads the variable once, at load), then connects (spawning the daemon). */
  static async start(home: string): Promise<Pm2Daemon> {
    mkdirSync(home, { recursive: true });
    process.env['PM2_HOME'] = home;
    const pm2 = (await import('pm2')).default as Pm2Api;
    const version = (JSON.parse(readFileSync(fileURLToPath(new URL('../../node_modules/pm2/package.json', import.meta.url)), 'utf8')) as { version: string }).version;
    await new Promise<void>((resolve, reject) => pm2.connect((err) => (err ? reject(err) : resolve())));
    return new Pm2Daemon(home, pm2, version);
  }

  /** PM2's God daemon: its PID file in PM2_HOME. */
  get pid(): number {
    return Number(readFileSync(join(this.home, 'pm2.pid'), 'utf8').trim());
  }

  start(options: Pm2StartOptions): Promise<void> {
    return new Promise((resolve, reject) => this.#pm2.start(options, (err) => (err ? reject(err) : resolve())));
  }

  stop(name: string): Promise<void> {
    return new Promise((resolve, reject) => this.#pm2.stop(name, (err) => (err ? reject(err) : resolve())));
  }

  delete(name: string): Promise<void> {
    return new Promise((resolve, reject) => this.#pm2.delete(name, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Deletes an app and makes sure it stays deleted. PM2 7 can bring back a crash-looping app that
   * was deleted while a restart was under way: its pending start re-registers it under its old
   * pm_id, where the next app started then lands too. So: stop, delete, and check the list again.
   */
  async remove(name: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.stop(name);
        await this.delete(name);
      } catch (error) {
        if (!/not found/.test((error as Error).message)) throw error;
      }
      await sleep(150);
      if (!(await this.list()).some((p) => p.name === name)) return;
    }
    throw new Error(`PM2 app ${name} keeps coming back after delete`);
  }

  list(): Promise<{ name?: string; pm2_env?: { status?: string } }[]> {
    return new Promise((resolve, reject) => this.#pm2.list((err, list) => (err ? reject(err) : resolve(list))));
  }

  /** PM2's event bus (one per client). */
  async bus(): Promise<Pm2Bus> {
    this.#bus ??= await new Promise<Pm2Bus>((resolve, reject) => this.#pm2.launchBus((err, bus: Pm2Bus) => (err ? reject(err) : resolve(bus))));
    return this.#bus;
  }

  /** Kills the God daemon (and its processes), by signal if PM2's own kill does not answer in 15 s. */
  async kill(): Promise<void> {
    let god: number | undefined;
    try {
      god = this.pid;
    } catch {
      god = undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      new Promise<boolean>((resolve) => this.#pm2.killDaemon(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 15_000))),
    ]);
    clearTimeout(timer);
    if (!answered && god !== undefined) {
      try {
        process.kill(god, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.#pm2.disconnect();
    // PM2's client skips closing a socket whose peer is already gone, and axon then retries the
    // connection forever, which keeps this process alive: mark them closing so the retry stops.
    const client = (this.#pm2 as unknown as { Client?: Record<string, { closing?: boolean; close?(): void } | undefined> }).Client;
    for (const key of ['client_sock', 'sub_sock']) {
      const sock = client?.[key];
      if (sock === undefined || sock === null) continue;
      sock.closing = true;
      try {
        sock.close?.();
      } catch {
        // closed already
      }
    }
  }
}
