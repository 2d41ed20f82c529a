import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { UnitStatus } from '../../src/manager/types.js';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { eventually, startTestDaemon } from '../helpers/daemon.js';

describe('scopes: processes started elsewhere, by pidfd', () => {
  it('holdfast run --scope hands itself to the daemon, execs the command, and the scope records how it ended', async () => {
    const d = await startTestDaemon();
    try {
      const run = await d.cli(['run', '--scope', '--unit', 'job', '--', 'sh', '-c', 'echo in-scope; exit 4']);
      assert.equal(run.code, 4, 'the exit status is the command\'s');
      assert.match(run.stderr, /Running as unit: job\.scope/);
      assert.equal(run.stdout, 'in-scope\n', 'the command ran in the foreground, with our stdout');
      const s = await eventually(async () => {
        const st = (await d.call<{ unit: UnitStatus }>('Status', { name: 'job.scope' })).unit;
        return st.activeState === 'inactive' ? st : undefined;
      }, 'the scope to end');
      assert.deepEqual(s.lastExit, { code: 4, signal: null });
      assert.equal(s.transient, true);
    } finally {
      await d.stop();
    }
  });

  it('is active while its process lives and stopping it kills the process through its pidfd', async () => {
    const d = await startTestDaemon();
    try {
      const child = spawn(process.execPath, [HOLDFAST_BIN, 'run', '--scope', '--unit', 'long', '--', 'sleep', '600'], {
        env: { ...process.env, HOLDFAST_SOCKET: d.socket },
        stdio: 'ignore',
      });
      using handle = Pidfd.fromChild(child);
      const running = await eventually(async () => {
        try {
          const st = (await d.call<{ unit: UnitStatus }>('Status', { name: 'long.scope' })).unit;
          return st.activeState === 'active' ? st : undefined;
        } catch {
          return undefined;
        }
      }, 'the scope to exist');
      assert.equal(running.mainProcess!.pid, child.pid, 'the scope holds the very process that asked');
      assert.equal(BigInt(running.mainProcess!.pidfdId!), handle.id);
      assert.equal((await d.cli(['list'])).stdout.includes('long.scope'), true);
      assert.equal((await d.cli(['stop', 'long.scope'])).code, 0);
      assert.equal((await handle.exited).signal, 'SIGTERM');
      assert.equal((await d.call<{ unit: UnitStatus }>('Status', { name: 'long.scope' })).unit.activeState, 'inactive');
    } finally {
      await d.stop();
    }
  });

  it('CreateScope takes ProcessIds only when their pidfd ids verify', async () => {
    const d = await startTestDaemon();
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    using handle = Pidfd.fromChild(child);
    try {
      await assert.rejects(
        d.call('CreateScope', { name: 'wrong', processes: [{ pid: child.pid, pidfdId: Number(handle.id) + 1 }] }),
        { name: 'io.holdfast.Manager.NoSuchProcess' },
      );
      const { unit } = await d.call<{ unit: string }>('CreateScope', { name: 'right', processes: [{ pid: child.pid, pidfdId: Number(handle.id) }] });
      assert.equal(unit, 'right.scope');
      await d.call('Stop', { name: 'right.scope' });
      assert.equal((await handle.exited).signal, 'SIGTERM');
    } finally {
      await d.stop();
    }
  });
});
