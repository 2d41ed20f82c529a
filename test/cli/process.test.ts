import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { bootId, Pidfd } from '../../src/index.js';
import { holdfast } from '../helpers/cli.js';
import { childExit, grandchild, pythonPidfdId, sleeper, untilHoldsPidfd } from '../helpers/processes.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('holdfast process', () => {
  it('show prints the ProcessId JSON with the kernel\'s view', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    const { code, stdout } = await holdfast(['process', 'show', String(child.pid), '--json']);
    assert.equal(code, 0);
    const shown = JSON.parse(stdout) as Record<string, unknown> & { info: Record<string, unknown> };
    assert.equal(shown['pid'], child.pid);
    assert.equal(BigInt(shown['pidfdId'] as number), pythonPidfdId(child.pid!));
    assert.equal(shown['bootId'], bootId());
    assert.equal(shown['alive'], true);
    assert.equal(shown.info['ppid'], process.pid);
    assert.equal(shown.info['uid'], process.getuid!());
    const human = await holdfast(['process', 'show', String(child.pid)]);
    assert.match(human.stdout, new RegExp(`^ref: +${child.pid}:${handle.id}:${bootId()}$`, 'm'));
    handle.signal('SIGKILL');
    await childExit(child);
  });

  it('verify exits 0 for the right process and 1, saying why, for a different or a gone one', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    assert.equal((await holdfast(['process', 'verify', String(child.pid), String(handle.id)])).code, 0);
    assert.equal((await holdfast(['process', 'verify', `${child.pid}:${handle.id}:${bootId()}`])).code, 0);
    const different = await holdfast(['process', 'verify', String(child.pid), String(handle.id! + 1n)]);
    assert.equal(different.code, 1);
    assert.match(different.stderr, /is a different process now/);
    handle.signal('SIGKILL');
    await childExit(child);
    const gone = await holdfast(['process', 'verify', String(child.pid), String(handle.id)]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /gone/);
    assert.equal(gone.stderr.trim().split('\n').length, 1, 'one line');
  });

  it('signal with an id refuses a mismatch and delivers otherwise', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    const refused = await holdfast(['process', 'signal', '-s', 'KILL', String(child.pid), String(handle.id! + 5n)]);
    assert.equal(refused.code, 1);
    assert.equal(handle.isAlive(), true, 'a refused signal was not sent');
    const sent = await holdfast(['process', 'signal', '-s', 'SIGUSR2', String(child.pid), String(handle.id)]);
    assert.equal(sent.code, 0);
    assert.deepEqual(await handle.exited, { code: null, signal: 'SIGUSR2', coreDumped: false });
    await childExit(child);
  });

  it('signal without an id goes through one pidfd; default SIGTERM', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    assert.equal((await holdfast(['process', 'signal', String(child.pid)])).code, 0);
    assert.equal((await handle.exited).signal, 'SIGTERM');
    await childExit(child);
  });

  it('wait reports how a process that is not its child ended, as JSON', async () => {
    const gate = join(mkdtempSync(join(tmpdir(), 'holdfast-wait-')), 'go');
    const { pid, parent } = await grandchild(`while [ ! -e ${gate} ]; do sleep 0.02; done; exit 9`);
    const waiting = holdfast(['process', 'wait', String(pid), '--json']);
    await untilHoldsPidfd(waiting.child.pid!, pid);
    writeFileSync(gate, '');
    const { code, stdout } = await waiting;
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(stdout), { code: 9, signal: null, coreDumped: false });
    await childExit(parent);

    const victim = spawn('sleep', ['600'], { stdio: 'ignore' });
    using handle = Pidfd.fromChild(victim);
    const waitingHuman = holdfast(['process', 'wait', String(victim.pid)]);
    await untilHoldsPidfd(waitingHuman.child.pid!, victim.pid!);
    handle.signal('SIGINT');
    const human = await waitingHuman;
    assert.equal(human.code, 0);
    assert.equal(human.stdout.trim(), `process ${victim.pid} killed by SIGINT`);
    await childExit(victim);
  });

  it('rejects bad usage with exit 2 and one line on stderr', async () => {
    for (const args of [['process'], ['process', 'show'], ['process', 'show', 'abc'], ['process', 'verify', '12'], ['process', 'signal', '-s', 'NOPE', '1'], ['process', 'frob']]) {
      const { code, stderr } = await holdfast(args);
      assert.equal(code, 2, args.join(' '));
      assert.equal(stderr.trim().split('\n').length, 1, args.join(' '));
    }
    const missing = await holdfast(['process', 'show', '1073741822']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no process has PID 1073741822/);
  });

  it('features lists every probed feature', async () => {
    const { code, stdout } = await holdfast(['features', '--json']);
    assert.equal(code, 0);
    const rows = JSON.parse(stdout) as { key: string; available: boolean; without: string }[];
    assert.ok(rows.some((row) => row.key === 'pidfdOpen' && row.available));
    assert.ok(rows.every((row) => row.without.length > 10));
    const help = await holdfast(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /process +show, verify, signal or wait/);
  });
});

describe('holdfast option errors', () => {
  it('exits 2 on an unknown option, in every verb', async () => {
    for (const verb of ['verify', 'cat', 'features', 'status', 'list']) {
      const { code, stderr } = await holdfast([verb, '--bogus']);
      assert.equal(code, 2, `${verb}: ${stderr}`);
      assert.match(stderr, /Unknown option '--bogus'/);
    }
  });
});

describe('the bundled examples', () => {
  it('verify clean (what npm start runs)', async () => {
    const { readdirSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const dir = fileURLToPath(new URL('../../../examples/units/', import.meta.url));
    const files = readdirSync(dir).filter((f) => f.endsWith('.service')).map((f) => join(dir, f));
    assert.equal(files.length, 3);
    const { code, stdout, stderr } = await holdfast(['verify', ...files]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout + stderr, '', 'no warning either');
  });
});
