/**
 * A stop signal that reaches the daemon while it is still starting (its keeper already running)
 * must stop it cleanly, keeper included: Node's default action for an unhandled SIGTERM would end
 * the daemon at once and leave the keeper behind, holding the daemon's stderr open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pidfd } from '../../src/pidfd/index.js';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { childExit } from '../helpers/processes.js';

/** The direct children of a process, from /proc (each still to be opened and confirmed). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} while the daemon starts, once its keeper runs, ends daemon and keeper cleanly`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-early-'));
    const daemon = spawn(process.execPath, [HOLDFAST_BIN, 'daemon', '--units', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--socket', join(dir, 'run', 'control')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    daemon.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = childExit(daemon);
    let keeper: Pidfd | undefined;
    try {
      // The keeper is the daemon's first child; it is held by pidfd from the moment it is seen.
      for (let i = 0; i < 400 && keeper === undefined && daemon.exitCode === null; i++) {
        for (const pid of childrenOf(daemon.pid!)) {
          const handle = Pidfd.open(pid);
          if (childrenOf(daemon.pid!).includes(pid) && handle.isAlive()) keeper = handle;
          else handle.close();
        }
        if (keeper === undefined) await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(keeper !== undefined, `the daemon started no keeper: ${stderr}`);
      daemon.kill(signal);
      const end = await exited;
      assert.deepEqual(end, { code: 0, signal: null }, `the daemon was ended by the signal instead of stopping: ${stderr}`);
      const keeperEnd = await Promise.race([keeper.exited.then(() => 'ended'), new Promise((r) => setTimeout(r, 15_000, 'still running'))]);
      assert.equal(keeperEnd, 'ended', 'the keeper outlived a clean stop');
    } finally {
      if (keeper !== undefined && keeper.isAlive()) keeper.signal('SIGKILL');
      keeper?.close();
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    }
  });
}
