import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/pidfd/index.js';
import { mainProcess, managerProcess, isDirectChildOfManager, ownPidfdId } from '../../src/service/index.js';
import { pidReuseUnsupported, runInFreshPidNamespace } from '../helpers/pid-reuse.js';
import { cleanEnv, exitOf, here, run, sleeper } from './helpers/util.js';

describe('mainProcess() and managerProcess() from the environment', () => {
  for (const [name, open, pidVar, idVar] of [
    ['mainProcess', mainProcess, 'MAINPID', 'MAINPIDFDID'],
    ['managerProcess', managerProcess, 'MANAGERPID', 'MANAGERPIDFDID'],
  ] as const) {
    it(`${name}: verified handle for the right pair, null when unset`, async () => {
      const child = sleeper();
      const reference = Pidfd.fromChild(child);
      try {
        using handle = open({ env: { [pidVar]: String(child.pid), [idVar]: String(reference.id) } });
        assert.ok(handle !== null);
        assert.equal(handle.pid, child.pid);
        assert.equal(handle.id, reference.id);
        assert.equal(handle.verified, true);
        assert.equal(handle.isAlive(), true);
        assert.equal(open({ env: {} }), null);
      } finally {
        reference.signal('SIGKILL');
        await reference.exited;
        reference.close();
        await exitOf(child);
      }
    });

    it(`${name}: ESTALE for an id of another process, ESRCH once gone`, async () => {
      const child = sleeper();
      const reference = Pidfd.fromChild(child);
      const self = ownPidfdId()!;
      try {
        assert.throws(() => open({ env: { [pidVar]: String(child.pid), [idVar]: String(self) } }), (error: NodeJS.ErrnoException) => {
          assert.equal(error.code, 'ESTALE');
          assert.match(error.message, new RegExp(`\\$${pidVar}=${child.pid} \\$${idVar}=${self}: the PID now belongs to a different process`));
          return true;
        });
      } finally {
        reference.signal('SIGKILL');
        await reference.exited;
        await exitOf(child);
      }
      assert.throws(() => open({ env: { [pidVar]: String(child.pid), [idVar]: String(reference.id) } }), { code: 'ESRCH' });
      reference.close();
    });

    it(`${name}: empty, malformed and half-set variables are EINVAL naming the variable and value`, () => {
      const cases: [Record<string, string>, RegExp][] = [
        [{ [pidVar]: '' }, new RegExp(`\\$${pidVar}="" is set but empty`)],
        [{ [pidVar]: '12abc' }, new RegExp(`\\$${pidVar}="12abc" is not a PID`)],
        [{ [pidVar]: '0' }, new RegExp(`\\$${pidVar}="0" is not a PID`)],
        [{ [pidVar]: '-5' }, new RegExp(`\\$${pidVar}="-5" is not a PID`)],
        [{ [pidVar]: ' 12' }, new RegExp(`\\$${pidVar}=" 12" is not a PID`)],
        [{ [pidVar]: '0x10' }, new RegExp(`\\$${pidVar}="0x10" is not a PID`)],
        [{ [pidVar]: '99999999' }, new RegExp(`\\$${pidVar}="99999999" is not a PID`)],
        [{ [pidVar]: String(process.pid), [idVar]: '' }, new RegExp(`\\$${idVar}="" is set but empty`)],
        [{ [pidVar]: String(process.pid), [idVar]: '0' }, new RegExp(`\\$${idVar}="0" is not a pidfd id`)],
        [{ [pidVar]: String(process.pid), [idVar]: 'abc' }, new RegExp(`\\$${idVar}="abc" is not a pidfd id`)],
        [{ [pidVar]: String(process.pid), [idVar]: '18446744073709551616' }, new RegExp(`\\$${idVar}="18446744073709551616" is not a pidfd id`)],
        [{ [idVar]: '1234' }, new RegExp(`\\$${idVar}=1234 is set but \\$${pidVar} is not`)],
      ];
      for (const [env, message] of cases) {
        assert.throws(() => open({ env }), (error: NodeJS.ErrnoException) => {
          assert.equal(error.code, 'EINVAL', `${JSON.stringify(env)}: ${error.message}`);
          assert.match(error.message, message);
          return true;
        });
      }
    });

    it(`${name}: a PID without its id is opened unverified, or refused with requireId`, () => {
      using handle = open({ env: { [pidVar]: String(process.pid) } });
      assert.ok(handle !== null);
      assert.equal(handle.pid, process.pid);
      assert.equal(handle.verified, false);
      assert.equal(handle.id, ownPidfdId());
      assert.throws(() => open({ env: { [pidVar]: String(process.pid) }, requireId: true }), { code: 'EINVAL', message: new RegExp(`without \\$${idVar}`) });
    });
  }

  it('reads process.env by default', () => {
    const saved = { pid: process.env['MAINPID'], id: process.env['MAINPIDFDID'] };
    process.env['MAINPID'] = String(process.pid);
    process.env['MAINPIDFDID'] = String(ownPidfdId());
    try {
      using handle = mainProcess();
      assert.equal(handle?.pid, process.pid);
      assert.equal(handle?.verified, true);
    } finally {
      for (const [key, value] of [['MAINPID', saved.pid], ['MAINPIDFDID', saved.id]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe('isDirectChildOfManager()', () => {
  const fixture = here('fixtures/manager-child.js');
  const managerEnv = (id: bigint | string = ownPidfdId()!): NodeJS.ProcessEnv =>
    cleanEnv({ MANAGERPID: String(process.pid), MANAGERPIDFDID: String(id) });

  it('is true for a child started directly by the manager', async () => {
    const result = await run(process.execPath, [fixture], { env: managerEnv() });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      ppid: process.pid,
      manager: { pid: process.pid, id: String(ownPidfdId()), verified: true },
      direct: true,
    });
  });

  it('is false with a shell in between', async () => {
    const result = await run('/bin/sh', ['-c', `"${process.execPath}" "${fixture}"; exit $?`], { env: managerEnv() });
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { ppid: number; direct: boolean };
    assert.notEqual(report.ppid, process.pid);
    assert.equal(report.direct, false);
  });

  it('is false without $MANAGERPID, and a stale $MANAGERPIDFDID is ESTALE', async () => {
    const none = await run(process.execPath, [fixture], { env: cleanEnv() });
    assert.deepEqual(JSON.parse(none.stdout), { ppid: process.pid, manager: null, direct: false });
    const stale = await run(process.execPath, [fixture], { env: managerEnv(ownPidfdId()! + 1_000_000n) });
    const report = JSON.parse(stale.stdout) as { manager: { code: string }; direct: { code: string } };
    assert.equal(report.manager.code, 'ESTALE');
    assert.equal(report.direct.code, 'ESTALE');
    assert.equal(isDirectChildOfManager({ env: {} }), false);
  });
});

describe('verification with real recycled PIDs (fresh PID namespace)', () => {
  it('mainProcess() and managerProcess() refuse a PID that was reused and accept the process that has it now', async (t) => {
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(reason);
    const result = await runInFreshPidNamespace<{
      pid: number;
      usurperPid: number;
      oldId: string;
      newId: string;
      mainStale: { code: string; message: string };
      mainCurrent: { pid: number; id: string; verified: boolean };
      managerStale: { code: string; message: string };
      managerCurrent: { pid: number; id: string; verified: boolean };
    }>(here('scenarios/env-reuse.js'));
    assert.equal(result.usurperPid, result.pid, 'the PID was taken over by another process');
    assert.notEqual(result.newId, result.oldId);
    assert.equal(result.mainStale.code, 'ESTALE');
    assert.match(result.mainStale.message, new RegExp(`\\$MAINPID=${result.pid} \\$MAINPIDFDID=${result.oldId}: the PID now belongs to a different process`));
    assert.deepEqual(result.mainCurrent, { pid: result.pid, id: result.newId, verified: true });
    assert.equal(result.managerStale.code, 'ESTALE');
    assert.match(result.managerStale.message, /\$MANAGERPID=/);
    assert.deepEqual(result.managerCurrent, { pid: result.pid, id: result.newId, verified: true });
  });
});
