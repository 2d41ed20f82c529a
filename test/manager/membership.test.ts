// Which processes are a unit's: never decided by a session number whose session has ended, and
// never another unit's process (issue 10, item 1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSlots } from '../../src/manager/state-slots.js';
import type { DaemonState } from '../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus } from '../helpers/daemon.js';
import { pidReuseUnsupported, runInFreshPidNamespace } from '../helpers/pid-reuse.js';

interface TakeoverResult {
  reused: boolean;
  attempts: number;
  stalePid: number;
  aMain: { pid: number; pidfdId: number };
  bMain: { pid: number; pidfdId: number };
  aMainAfterClaim: { pid: number; pidfdId: number } | null;
  bAliveAfterStopA: boolean;
  bActiveAfterStopA: string;
  refusal: string[];
}

describe('a unit never takes over another unit\'s main process (real PID reuse, in a PID namespace)', () => {
  it('a stale session of A that came round as B\'s main process: MAINPID= refused, stopping A leaves it alone', async (t) => {
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(reason);
    const result = await runInFreshPidNamespace<TakeoverResult>(fileURLToPath(new URL('./scenarios/main-takeover.js', import.meta.url)));
    if (!result.reused) return t.skip(`the PID did not come round as B's main process in ${result.attempts} tries`);
    assert.equal(result.bMain.pid, result.stalePid, 'B\'s main process has the PID of A\'s ended ExecStartPre=');
    assert.deepEqual(result.aMainAfterClaim, result.aMain, 'A\'s main process is unchanged after MAINPID= named B\'s');
    assert.ok(result.refusal.some((line) => /new main PID refused: PID \d+: it belongs to b\.service/.test(line)), result.refusal.join('\n'));
    assert.equal(result.bAliveAfterStopA, true, 'stopping A did not signal B\'s main process');
    assert.equal(result.bActiveAfterStopA, 'active');
  });
});

describe('a unit\'s sessions are only the live ones', () => {
  it('200 ExecReload= runs leave the recorded session set small', async () => {
    const d = await startTestDaemon({ 'r.service': '[Service]\nExecStart=/bin/sleep 600\nExecReload=/bin/true\n' });
    try {
      await d.call('Start', { name: 'r' });
      for (let i = 0; i < 200; i++) await d.call('Reload', { name: 'r' });
      assert.equal((await unitStatus(d, 'r')).activeState, 'active');
      const record = await eventually(() => {
        const state = readSlots<DaemonState>(join(d.dir, 'state', 'state'));
        const unit = state?.units.find((u) => u.name === 'r.service');
        return unit !== undefined && unit.control === null ? unit : undefined;
      }, 'the state record after the reloads');
      const main = (await unitStatus(d, 'r')).mainProcess!;
      assert.ok(record.sessions.length <= 2, `recorded sessions: ${record.sessions.length}`);
      assert.ok(record.sessions.includes(main.pid), 'the main process\'s session is still the unit\'s');
    } finally {
      await d.stop();
    }
  });
});
