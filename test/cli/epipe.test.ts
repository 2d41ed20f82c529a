/**
 * `holdfast VERB | head`: once the reader has gone, every verb ends quietly with the status of a
 * process ended by SIGPIPE (141), never a stack trace.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

/**
 * Runs `holdfast ARGS` with its stdout a real pipe whose reading end is closed before the command
 * writes anything.
 */
function withClosedOutput(args: string[], env: NodeJS.ProcessEnv, closeStderr = false): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [HOLDFAST_BIN, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  if (closeStderr) child.stderr.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
}

describe('a closed output (EPIPE)', () => {
  let d: TestDaemon;
  before(async () => {
    // Plenty of output for every verb: a description, log lines, a unit file.
    d = await startTestDaemon({ 'chatty.service': "[Unit]\nDescription=prints a lot\n[Service]\nExecStart=/bin/sh -c 'seq 1 200; exec sleep 600'\n" });
    await d.call('Start', { name: 'chatty' });
    await eventually(async () => ((await unitStatus(d, 'chatty.service')).activeState === 'active' ? true : undefined), 'chatty to run');
    writeFileSync(join(d.dir, 'lone.service'), '[Service]\nExecStart=/bin/true\nBogusKey=1\n');
  });
  after(async () => {
    await d.stop();
  });

  for (const args of [
    ['--help'],
    ['status', '--help'],
    ['status', 'chatty'],
    ['list'],
    ['show', 'chatty'],
    ['logs', 'chatty'],
    ['logs', '--follow', 'chatty'],
    ['cat', 'chatty.service', '--units', 'UNITS'],
    ['features'],
    ['process', 'show', String(process.pid)],
  ]) {
    it(`holdfast ${args.join(' ')} ends quietly`, async () => {
      const real = args.map((a) => (a === 'UNITS' ? d.unitDir : a === 'LONE' ? join(d.dir, 'lone.service') : a));
      const result = await withClosedOutput(real, { HOLDFAST_SOCKET: d.socket });
      assert.equal(result.stderr, '', 'nothing on stderr: no stack trace, no message');
      assert.equal(result.signal, null);
      assert.equal(result.code, 141, 'the status of a process SIGPIPE ended');
    });
  }

  it('holdfast verify FILE 2>&1 | head: its diagnostics on a closed stderr end it quietly too', async () => {
    const result = await withClosedOutput(['verify', join(d.dir, 'lone.service')], {}, true);
    assert.equal(result.signal, null);
    assert.equal(result.code, 141, 'not the 1 of an uncaught EPIPE');
  });
});
