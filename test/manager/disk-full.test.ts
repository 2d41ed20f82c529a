/**
 * A full disk under the daemon's state directory: output is dropped and counted, never held back,
 * so no service blocks on its pipe, and neither the daemon nor the keeper dies; once space comes
 * back, output is stored again. A real tmpfs, filled by a real file (root only: mounting needs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KEEPER_MANIFEST_FILE, type KeeperManifest } from '../../src/manager/keeper/protocol.js';
import { readJson, writeJsonAtomic } from '../../src/manager/state-file.js';
import type { LogRecord } from '../../src/manager/types.js';
import { Pidfd } from '../../src/pidfd/index.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

const notRoot = process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false;

/** Writes to `path` until the file system is full; the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  // What a small write still finds (a partly used page): taken too.
  const rest = openSync(path, 'a');
  try {
    for (;;) written += writeSync(rest, 'x');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(rest);
  }
  return written;
}

function counter(path: string): number {
  try {
    return Number(readFileSync(path, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** A tmpfs of `size` mounted on a new directory for the length of `body`. */
async function withTmpfs(size: string, body: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-test-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  assert.equal(mounted.status, 0, `mount: ${mounted.stderr}`);
  try {
    await body(dir);
  } finally {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('a full disk', { skip: notRoot }, () => {
  it('a state file that cannot be written keeps its old content and leaves no temporary copy behind', async () => {
    await withTmpfs('256k', (dir) => {
      const path = join(dir, 'state.json');
      writeJsonAtomic(path, { before: true });
      fill(join(dir, 'filler'));
      assert.throws(() => writeJsonAtomic(path, { after: 'x'.repeat(64 * 1024) }), { code: 'ENOSPC' });
      assert.deepEqual(readJson(path), { before: true });
      assert.deepEqual(readdirSync(dir).sort(), ['filler', 'state.json']);
    });
  });


  it('drops output with a counted warning, blocks no service, kills neither daemon nor keeper, and stores again once space is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-test-'));
    const state = join(dir, 'state');
    mkdirSync(state);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', state], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, `mount: ${mounted.stderr}`);
    const count = join(dir, 'count');
    const filler = join(state, 'filler');
    // About 1 KiB a line: the 64 KiB pipe of a writer nobody reads fills within a few dozen lines.
    const pad = 'p'.repeat(1000);
    const units = {
      'writer.service': `[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo "line $i ${pad}"; echo $i > ${count}; sleep 0.01; done'\n`,
      'idle.service': "[Service]\nExecStart=/bin/sh -c 'while :; do sleep 0.2; done'\n",
    };
    let d: TestDaemon | undefined;
    try {
      d = await startTestDaemon(units, dir);
      const daemon = d;
      await daemon.call('Start', { name: 'writer' });
      const main = (await unitStatus(daemon, 'writer')).mainProcess!;
      using service = Pidfd.verify(main.pid, main.pidfdId!);
      await eventually(async () => ((await daemon.call<{ records: LogRecord[] }>('Logs', { name: 'writer' })).records.length > 20 ? true : undefined), 'some output stored');
      const manifest = JSON.parse(readFileSync(join(state, KEEPER_MANIFEST_FILE), 'utf8')) as KeeperManifest;
      using keeper = Pidfd.verify(manifest.pid, manifest.pidfdId!);

      assert.ok(fill(filler) > 0, 'the filler took the free space');
      const full = counter(count);
      // Far more than the pipe holds: a writer whose output is held back would have blocked long before.
      await eventually(() => (counter(count) > full + 300 ? true : undefined), 'the writer going on while the disk is full', 600);
      await eventually(() => (/no space left on device/.test(daemon.stderr()) ? true : undefined), 'a warning that output is dropped');
      assert.equal(daemon.process.exitCode, null, 'the daemon lives');
      assert.equal(keeper.isAlive(), true, 'the keeper lives');
      assert.equal(service.isAlive(), true, 'the service lives');
      const status = await unitStatus(daemon, 'writer');
      assert.equal(status.activeState, 'active');
      assert.deepEqual(status.mainProcess, main);
      // A change for the keeper while its manifest cannot be written: it holds on, and writes it once there is room.
      await daemon.call('Start', { name: 'idle' });
      const idle = (await unitStatus(daemon, 'idle')).mainProcess!;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(keeper.isAlive(), true, 'the keeper lives through a manifest it cannot write');
      assert.equal(daemon.process.exitCode, null, 'the daemon lives');

      unlinkSync(filler);
      await eventually(() => {
        const now = JSON.parse(readFileSync(join(state, KEEPER_MANIFEST_FILE), 'utf8')) as KeeperManifest;
        return now.entries.some((e) => e.kind === 'pidfd' && e.pid === idle.pid) ? true : undefined;
      }, 'the manifest written again once there is room');
      const freed = counter(count);
      const stored = await eventually(async () => {
        const records = (await daemon.call<{ records: LogRecord[] }>('Logs', { name: 'writer' })).records;
        const numbers = records.filter((r) => r.stream === 'stdout').map((r) => Number(r.message.split(' ')[1]));
        return numbers.some((n) => n > freed + 20) ? records : undefined;
      }, 'lines stored again after space came back', 400);
      const note = stored.find((r) => r.stream === 'manager' && /^\d+ bytes of output dropped: no space left on device/.test(r.message));
      assert.ok(note !== undefined, `the unit's log says how much was dropped: ${stored.filter((r) => r.stream === 'manager').map((r) => r.message).join(' | ')}`);
      assert.equal(keeper.isAlive(), true, 'the keeper lives');
      assert.equal(service.isAlive(), true, 'the service lives');
      await daemon.call('Stop', { name: 'writer' });
      await daemon.call('Stop', { name: 'idle' });
    } finally {
      if (d !== undefined && d.process.exitCode === null && d.process.signalCode === null) {
        using handle = Pidfd.fromChild(d.process);
        const exited = new Promise((r) => d!.process.once('exit', r));
        handle.signal('SIGTERM');
        await exited;
      }
      if (spawnSync('umount', [state]).status !== 0) spawnSync('umount', ['-l', state]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    }
  });
});
