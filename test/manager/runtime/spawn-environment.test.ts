/**
 * What a spawn gets besides its command line, decided before the native spawner runs: the protocol
 * variables the machine asked for, Environment=, EnvironmentFile= read at each spawn, and the
 * refusals (a missing required EnvironmentFile=, an unknown User=). Real files, no process.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { conditionFailure } from '../../../src/manager/runtime/conditions.js';
import { isRefusal, planSpawn, readEnvironmentFiles, type SpawnPlan } from '../../../src/manager/runtime/spawn-environment.js';
import type { SpawnRequest } from '../../../src/manager/runtime/ports.js';
import type { SpawnProtocolEnv } from '../../../src/manager/machines/service-protocol.js';
import { serviceConfig } from '../../helpers/fake-ports.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-spawn-env-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const context = { manager: { pid: 4242, pidfdId: 99n }, notifySocket: '/run/holdfast/notify' };
const protocol: SpawnProtocolEnv = { notify: true, mainPid: false, watchdogUsec: 0, invocationId: 'ab'.repeat(16) };

function request(text: string, env: Partial<SpawnProtocolEnv> = {}, kind: SpawnRequest['kind'] = 'main'): SpawnRequest {
  const config = serviceConfig('env.service', text);
  return { config, kind, command: config.service.execStart[0]!, env: { ...protocol, ...env }, main: undefined };
}

function plan(req: SpawnRequest): SpawnPlan {
  const decided = planSpawn(req, context);
  if (isRefusal(decided)) throw new Error(`refused: ${decided.message}`);
  return decided;
}

describe('the spawn environment', () => {
  it('carries the protocol variables the machine asked for, and only those', () => {
    const env = plan(request('[Service]\nExecStart=/bin/true\n', { watchdogUsec: 5_000_000 })).env;
    assert.equal(env['INVOCATION_ID'], protocol.invocationId);
    assert.equal(env['MANAGERPID'], '4242');
    assert.equal(env['MANAGERPIDFDID'], '99');
    assert.equal(env['NOTIFY_SOCKET'], '/run/holdfast/notify');
    assert.equal(env['WATCHDOG_USEC'], '5000000');
    assert.equal(env['MAINPID'], undefined);
    assert.equal(env['SERVICE_RESULT'], undefined);
    const quiet = plan(request('[Service]\nExecStart=/bin/true\n', { notify: false })).env;
    assert.equal(quiet['NOTIFY_SOCKET'], undefined, 'no NOTIFY_SOCKET where the machine said no');
  });

  it('gives ExecStopPost= the result and how the main process ended', () => {
    const req = request('[Service]\nExecStart=/bin/true\n', { exitInfo: { result: 'signal', lastExit: { code: null, signal: 'SIGKILL' } } }, 'stop-post');
    const env = plan(req).env;
    assert.deepEqual([env['SERVICE_RESULT'], env['EXIT_CODE'], env['EXIT_STATUS']], ['signal', 'killed', 'KILL']);
  });

  it('reads EnvironmentFile= at each spawn: later files and Environment= order as systemd does, UnsetEnvironment= last', () => {
    const file = join(dir, 'vars');
    writeFileSync(file, 'FROM_FILE=one\nSHARED=file\n');
    const text = `[Service]\nEnvironment=SHARED=unit KEEP=1 DROP=x\nEnvironmentFile=${file}\nEnvironmentFile=-${join(dir, 'absent')}\nUnsetEnvironment=DROP\nExecStart=/bin/true\n`;
    const first = plan(request(text)).env;
    assert.deepEqual([first['FROM_FILE'], first['SHARED'], first['KEEP'], first['DROP']], ['one', 'file', '1', undefined]);
    writeFileSync(file, 'FROM_FILE=two\n');
    assert.equal(plan(request(text)).env['FROM_FILE'], 'two', 'the file is read again, not cached from the first spawn');
  });

  it('refuses a spawn whose required EnvironmentFile= is missing, with result resources', () => {
    const decided = planSpawn(request(`[Service]\nEnvironmentFile=${join(dir, 'nope')}\nExecStart=/bin/true\n`), context);
    assert.ok(isRefusal(decided));
    assert.equal(decided.result, 'resources');
    assert.match(decided.message, /EnvironmentFile=.*nope: cannot read the file \(ENOENT\)/);
  });

  it('refuses a spawn for an unknown User= with 217/USER', () => {
    const decided = planSpawn(request('[Service]\nUser=no-such-user-here\nExecStart=/bin/true\n'), context);
    assert.ok(isRefusal(decided));
    assert.equal(decided.exitCode, 217);
    assert.equal(decided.result, 'exit-code');
  });

  it('expands globs in EnvironmentFile= in sorted order', () => {
    writeFileSync(join(dir, 'g-2.env'), 'ORDER=second\n');
    writeFileSync(join(dir, 'g-1.env'), 'ORDER=first\nONLY_ONE=yes\n');
    const read = readEnvironmentFiles([{ path: join(dir, 'g-*.env'), optional: false }]);
    assert.ok('env' in read);
    assert.deepEqual([read.env['ORDER'], read.env['ONLY_ONE']], ['second', 'yes']);
  });
});

describe('conditions', () => {
  it('a failed condition is named; triggering conditions need one to hold; negation inverts', () => {
    const file = join(dir, 'present');
    writeFileSync(file, 'x');
    const base = { trigger: false, negate: false };
    assert.equal(conditionFailure([{ ...base, kind: 'PathExists', path: file }]), undefined);
    assert.equal(conditionFailure([{ ...base, kind: 'PathExists', path: join(dir, 'absent') }]), `ConditionPathExists=${join(dir, 'absent')}`);
    assert.equal(conditionFailure([{ ...base, negate: true, kind: 'PathExists', path: join(dir, 'absent') }]), undefined);
    assert.equal(conditionFailure([{ ...base, kind: 'FileNotEmpty', path: file }]), undefined);
    const triggers = [
      { trigger: true, negate: false, kind: 'PathExists', path: join(dir, 'absent') },
      { trigger: true, negate: false, kind: 'PathExists', path: file },
    ] as const;
    assert.equal(conditionFailure(triggers), undefined);
    assert.match(conditionFailure([triggers[0]]) ?? '', /^Condition…=\|/);
  });
});
