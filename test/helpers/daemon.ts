/** A real `holdfast daemon` in a temp directory, for tests: units in, client calls out. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkClient } from '../../src/api/varlink/index.js';
import type { UnitStatus } from '../../src/manager/types.js';
import { HOLDFAST_BIN, holdfast } from './cli.js';
import { removeTree } from '../../src/manager/state-file.js';

/** A running daemon and the paths around it. */
export interface TestDaemon {
  dir: string;
  unitDir: string;
  socket: string;
  process: ChildProcess;
  stderr(): string;
  /** Writes a unit file. */
  unit(name: string, text: string): void;
  /** Runs the CLI against this daemon. */
  cli(args: string[]): ReturnType<typeof holdfast>;
  /** A Varlink call on holdfast's interface. */
  call<T extends object>(method: string, params?: object): Promise<T>;
  /** Stops the daemon (SIGTERM, waiting for it) and removes the directory. */
  stop(): Promise<number | null>;
  /** Kills the daemon with SIGKILL and waits for it; the directory and every service stay. */
  crash(): Promise<void>;
}

/** Starts a daemon with the given unit files; with `reuse`, on an earlier daemon's directory (its state, units and socket). */
export async function startTestDaemon(units: Record<string, string> = {}, reuse?: string): Promise<TestDaemon> {
  const dir = reuse ?? mkdtempSync(join(tmpdir(), 'holdfast-test-'));
  const unitDir = join(dir, 'units');
  mkdirSync(unitDir, { recursive: true });
  for (const [name, text] of Object.entries(units)) writeFileSync(join(unitDir, name), text);
  const socket = join(dir, 'run', 'control');
  const child = spawn(process.execPath, [HOLDFAST_BIN, 'daemon', '--units', unitDir, '--state-dir', join(dir, 'state'), '--socket', socket], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  for (let i = 0; i < 400 && !existsSync(socket); i++) {
    if (child.exitCode !== null) throw new Error(`daemon exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(socket)) throw new Error(`daemon did not listen: ${stderr}`);
  let client: VarlinkClient | undefined;
  return {
    dir,
    unitDir,
    socket,
    process: child,
    stderr: () => stderr,
    unit(name, text) {
      writeFileSync(join(unitDir, name), text);
    },
    cli(args) {
      return holdfast([...args], { env: { HOLDFAST_SOCKET: socket } });
    },
    async call<T extends object>(method: string, params: object = {}) {
      for (let attempt = 0; ; attempt++) {
        client ??= await VarlinkClient.connect(socket);
        try {
          return await client.call<T>(`io.holdfast.Manager.${method}`, params);
        } catch (error) {
          // A daemon-reexec closes connections (the socket stays): connect again once.
          if (attempt > 0 || (error as Error).name !== 'io.systemd.Disconnected') throw error;
          client.destroy();
          client = undefined;
        }
      }
    },
    async crash() {
      await client?.close();
      client = undefined;
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      rmSync(socket, { force: true });
    },
    async stop() {
      await client?.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await removeTree(dir, 50);
      return child.exitCode;
    },
  };
}

/** Polls `check` until it returns a value other than undefined (bounded; no timing assertion). */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A unit's status through the daemon's API. */
export async function unitStatus(d: TestDaemon, name: string): Promise<UnitStatus> {
  return (await d.call<{ unit: UnitStatus }>('Status', { name })).unit;
}
