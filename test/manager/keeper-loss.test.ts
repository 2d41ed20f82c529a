/**
 * The keeper lost: a keeper killed at any moment, while the daemon starts or while it runs, is
 * replaced and handed everything again, the daemon stays reachable, and a later daemon crash still
 * finds every service's pipes held. A clean stop leaves no manifest behind for the next start to
 * chase. Real daemons, real keepers; every signal goes through a pidfd of a process the test started
 * (the keeper is the daemon's child).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { VarlinkClient } from '../../src/api/varlink/index.js';
import { KEEPER_MANIFEST_FILE, type KeeperManifest } from '../../src/manager/keeper/protocol.js';
import type { LogRecord, UnitStatus } from '../../src/manager/types.js';
import { Pidfd, type ProcessIdJson } from '../../src/pidfd/index.js';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { eventually, startTestDaemon, unitStatus } from '../helpers/daemon.js';

/** A daemon on `dir` (as test/helpers/daemon.ts starts one), returned at once: the test acts while it starts. */
function spawnDaemon(dir: string): { child: ChildProcess; handle: Pidfd; stderr: () => string; socket: string } {
  const socket = join(dir, 'run', 'control');
  const child = spawn(process.execPath, [HOLDFAST_BIN, 'daemon', '--units', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return { child, handle: Pidfd.fromChild(child), stderr: () => stderr, socket };
}

/** The keeper the daemon runs now: its child running keeper/main.js, held by pidfd and checked to be that child. */
function keeperOf(daemon: Pidfd): Pidfd | undefined {
  let children: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${daemon.pid}/task`)) {
      children.push(...readFileSync(`/proc/${daemon.pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {
    return undefined;
  }
  children = [...new Set(children)];
  for (const pid of children) {
    let handle: Pidfd;
    try {
      handle = Pidfd.open(pid);
    } catch {
      continue;
    }
    try {
      // Opened first, checked after: a PID recycled in between is not the daemon's child.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('keeper/main.js') && handle.info().ppid === daemon.pid && handle.isAlive()) return handle;
    } catch {
      // Gone meanwhile.
    }
    handle.close();
  }
  return undefined;
}

function manifestIn(dir: string): KeeperManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state', KEEPER_MANIFEST_FILE), 'utf8')) as KeeperManifest;
  } catch {
    return undefined;
  }
}

async function waitForSocket(d: { child: ChildProcess; socket: string; stderr: () => string }, what: string): Promise<void> {
  for (let i = 0; i < 400 && !existsSync(d.socket); i++) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) assert.fail(`the daemon ended (${what}): ${d.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(existsSync(d.socket), `the daemon listens (${what}): ${d.stderr()}`);
}

async function call<T extends object>(socket: string, method: string, params: object = {}): Promise<T> {
  const client = await VarlinkClient.connect(socket);
  try {
    return await client.call<T>(`io.holdfast.Manager.${method}`, params);
  } finally {
    await client.close();
  }
}

async function crash(d: { child: ChildProcess; handle: Pidfd; socket: string }): Promise<void> {
  d.handle.signal('SIGKILL');
  if (d.child.exitCode === null && d.child.signalCode === null) await new Promise((r) => d.child.once('exit', r));
  d.handle.close();
  rmSync(d.socket, { force: true, recursive: true });
}

async function cleanStop(d: { child: ChildProcess; handle: Pidfd }): Promise<void> {
  if (d.child.exitCode === null && d.child.signalCode === null) {
    d.handle.signal('SIGTERM');
    await new Promise((r) => d.child.once('exit', r));
  }
  d.handle.close();
}

/** A daemon that ran one long-lived service and was SIGKILLed: its directory, the service as recorded, and a handle to it. */
async function steadyServiceAfterCrash(): Promise<{ dir: string; main: ProcessIdJson; service: Pidfd }> {
  const first = await startTestDaemon({ 'steady.service': "[Service]\nExecStart=/bin/sh -c 'while :; do sleep 0.2; done'\n" });
  await first.call('Start', { name: 'steady' });
  const main = (await unitStatus(first, 'steady')).mainProcess!;
  const service = Pidfd.verify(main.pid, main.pidfdId!);
  await first.crash();
  return { dir: first.dir, main, service };
}

describe('the keeper dies', () => {
  it('killed at several points of the daemon start-up, it is replaced: the daemon listens, answers, and keeps its services', async () => {
    const { dir, main, service: held } = await steadyServiceAfterCrash();
    using service = held;
    let current: ReturnType<typeof spawnDaemon> | undefined;
    try {
      // After the keeper appears: at once (before anything is handed to it), and later, up to the commit and past it.
      for (const delayMs of [0, 50, 150, 300, 500]) {
        current = spawnDaemon(dir);
        const d = current;
        const keeper = await eventually(() => keeperOf(d.handle), `a keeper of the daemon (delay ${delayMs} ms)`, 400);
        await new Promise((r) => setTimeout(r, delayMs));
        keeper.signal('SIGKILL');
        keeper.close();
        await waitForSocket(d, `keeper killed ${delayMs} ms after it started`);
        const { units } = await call<{ units: { name: string; activeState: string }[] }>(d.socket, 'List');
        assert.ok(units.some((u) => u.name === 'steady.service'), 'List answers with the unit');
        const status = (await call<{ unit: UnitStatus }>(d.socket, 'Status', { name: 'steady' })).unit;
        assert.equal(status.activeState, 'active', d.stderr());
        assert.deepEqual(status.mainProcess, main, 'the same process, re-adopted');
        assert.equal(service.isAlive(), true);
        // A new keeper holds everything: the manifest names a live child of this daemon.
        await eventually(() => {
          const manifest = manifestIn(dir);
          if (manifest?.pidfdId === null || manifest === undefined) return undefined;
          try {
            using named = Pidfd.verify(manifest.pid, manifest.pidfdId);
            return named.info().ppid === d.handle.pid && manifest.entries.some((e) => e.kind === 'pidfd' && e.pid === main.pid) ? true : undefined;
          } catch {
            return undefined;
          }
        }, 'a manifest naming the new keeper');
        await crash(d);
        current = undefined;
      }
      assert.equal(service.isAlive(), true, 'the service lived through every kill');
    } finally {
      if (current !== undefined) await crash(current);
      const last = await startTestDaemon({}, dir);
      await last.stop();
    }
  });

  it('killed while a service runs, it is replaced; a daemon crash after that still finds the service with every log line', async () => {
    const units = { 'counter.service': "[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done'\n" };
    let d = await startTestDaemon(units);
    try {
      await d.call('Start', { name: 'counter' });
      const main = (await unitStatus(d, 'counter')).mainProcess!;
      using service = Pidfd.verify(main.pid, main.pidfdId!);
      await eventually(async () => ((await d.call<{ records: LogRecord[] }>('Logs', { name: 'counter' })).records.length > 20 ? true : undefined), 'some output');
      const before = await eventually(() => manifestIn(d.dir), 'a manifest');
      {
        using keeper = Pidfd.verify(before.pid, before.pidfdId!);
        keeper.signal('SIGKILL');
      }
      const replaced = await eventually(() => {
        const now = manifestIn(d.dir);
        return now !== undefined && now.pidfdId !== before.pidfdId && now.entries.some((e) => e.kind === 'log' && e.unit === 'counter.service') ? now : undefined;
      }, 'a manifest naming a new keeper that holds the pipes');
      using replacement = Pidfd.verify(replaced.pid, replaced.pidfdId!);
      assert.equal(replacement.isAlive(), true);
      assert.match(d.stderr(), /keeper: the keeper \(PID \d+\) is gone/);

      await d.crash();
      // The pipes have a reader throughout (the new keeper): a write meanwhile finds room, not SIGPIPE.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(service.isAlive(), true, 'the service was not killed by SIGPIPE');
      d = await startTestDaemon({}, d.dir);
      assert.deepEqual((await unitStatus(d, 'counter')).mainProcess, main, 're-adopted');
      const highest = async (): Promise<number[]> =>
        (await d.call<{ records: LogRecord[] }>('Logs', { name: 'counter' })).records.filter((r) => r.stream === 'stdout').map((r) => Number(r.message.split(' ')[1]));
      const seen = (await highest()).length;
      const lines = await eventually(async () => {
        const now = await highest();
        return now.length > seen + 20 ? now : undefined;
      }, 'lines after the re-adoption');
      const firstWrong = lines.findIndex((n, i) => n !== i + 1);
      assert.equal(firstWrong, -1, `line ${firstWrong + 1} is ${lines[firstWrong]}: a line was lost or repeated`);
      assert.equal(service.isAlive(), true);
    } finally {
      await d.stop();
    }
  });
});

describe('a daemon that cannot listen', () => {
  // Its start-up lets go of everything; the process itself ends only once `holdfast daemon` exits on a failed start (src/cli/commands/daemon.ts).
  it('does not run on headless: it ends, leaving its services to the keeper, and the next daemon re-adopts them', async () => {
    const { dir, main, service: held } = await steadyServiceAfterCrash();
    using service = held;
    // A directory where the control socket goes: listen(2) cannot bind there.
    mkdirSync(join(dir, 'run', 'control'), { recursive: true });
    const blocked = spawnDaemon(dir);
    try {
      try {
        const ended = await Promise.race([
          new Promise<number | null>((r) => blocked.child.once('exit', (code) => r(code))),
          new Promise<'running'>((r) => setTimeout(() => r('running'), 10_000)),
        ]);
        assert.notEqual(ended, 'running', `the daemon ended: ${blocked.stderr()}`);
        assert.notEqual(ended, 0);
        assert.match(blocked.stderr(), /cannot listen/);
      } finally {
        if (blocked.child.exitCode === null && blocked.child.signalCode === null) await crash(blocked);
        else blocked.handle.close();
      }
      assert.equal(service.isAlive(), true, 'the service lives on');
    } finally {
      // Pass or fail, a daemon that can listen takes the service back and stops it cleanly.
      rmSync(join(dir, 'run', 'control'), { recursive: true, force: true });
      const next = await startTestDaemon({}, dir);
      try {
        assert.deepEqual((await unitStatus(next, 'steady')).mainProcess, main, 're-adopted');
      } finally {
        await next.stop();
      }
    }
  });
});

describe('a clean stop', () => {
  it('removes the keeper manifest, so the next start looks for no keeper', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-test-'));
    mkdirSync(join(dir, 'units'));
    writeFileSync(join(dir, 'units', 'idle.service'), "[Service]\nExecStart=/bin/sh -c 'while :; do sleep 0.2; done'\n");
    try {
      const d = spawnDaemon(dir);
      await waitForSocket(d, 'first start');
      await call(d.socket, 'Start', { name: 'idle' });
      await eventually(() => manifestIn(dir), 'a manifest while running');
      await cleanStop(d);
      assert.equal(manifestIn(dir), undefined, 'no manifest naming an ended keeper');
      const again = spawnDaemon(dir);
      await waitForSocket(again, 'second start');
      await call(again.socket, 'List');
      assert.doesNotMatch(again.stderr(), /keeper/, 'no warning about the previous keeper');
      await cleanStop(again);
    } finally {
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    }
  });
});
