/**
 * The three systems bench/manager.ts compares, each behind a small wrapper: a real `holdfast
 * daemon` in a temp directory (spoken to over its Varlink socket), PM2's God daemon under a private
 * PM2_HOME (through PM2's programmatic API), and the C floor (bench/floor.c, compiled at run time).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
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
 * shell script that writes the same line without the monotonic clock.
 */
export function stampProgram(dir: string, floor: Floor): { argv: (file: string) => string[]; what: string } {
  if (floor.path !== undefined) return { argv: (file) => [floor.path, 'stamp', file], what: `${floor.path} stamp FILE (C)` };
  const script = join(dir, 'stamp.sh');
  writeFileSync(script, '#!/bin/sh\necho "$$ $(date +%s%N) -" >> "$1"\nexit 1\n');
  chmodSync(script, 0o755);
  return { argv: (file) => [script, file], what: `${script} FILE (sh + date, no C compiler)` };
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
    // The server registers the listener when it reads the call; one round trip on another call
    // of the same connection is not possible (one call at a time), so wait a moment instead.
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
export type Pm2StartOptions = Parameters<Pm2Api['start']>[0] & object;

interface Pm2Bus {
  on(event: string, listener: (packet: { event?: string; process?: { name?: string }; at?: number }) => void): void;
  close?(): void;
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

  delete(name: string): Promise<void> {
    return new Promise((resolve, reject) => this.#pm2.delete(name, (err) => (err ? reject(err) : resolve())));
  }

  list(): Promise<{ name?: string; pm2_env?: { status?: string } }[]> {
    return new Promise((resolve, reject) => this.#pm2.list((err, list) => (err ? reject(err) : resolve(list))));
  }

  /** PM2's event bus (one per client). */
  async bus(): Promise<Pm2Bus> {
    this.#bus ??= await new Promise<Pm2Bus>((resolve, reject) => this.#pm2.launchBus((err, bus: Pm2Bus) => (err ? reject(err) : resolve(bus))));
    return this.#bus;
  }

  /** Kills the God daemon (and its processes) and lets this process exit. */
  async kill(): Promise<void> {
    await new Promise<void>((resolve) => this.#pm2.killDaemon(() => resolve()));
    const api = this.#pm2 as Pm2Api & { disconnectBus?(cb: () => void): void };
    if (this.#bus !== undefined && api.disconnectBus !== undefined) await new Promise<void>((resolve) => api.disconnectBus!(() => resolve()));
    this.#pm2.disconnect();
  }
}
