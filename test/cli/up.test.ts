/**
 * `holdfast up DIR`: every unit started in the foreground with its output prefixed, and everything
 * stopped when the session ends: Ctrl-C, a hangup, or the output going away (a closed pipe), never
 * a daemon that dies and leaves services behind.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import { HOLDFAST_BIN, holdfast } from '../helpers/cli.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-up-test-'));
  writeFileSync(join(dir, 'hello.service'), "[Service]\nExecStart=/bin/sh -c 'echo hello from $$$$; exec sleep 600'\n");
  writeFileSync(join(dir, 'quiet.service'), '[Service]\nExecStart=/bin/sleep 600\n');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `holdfast up` and waits until both services run; returns their pidfds. */
async function startUp(env: NodeJS.ProcessEnv = {}): Promise<{ up: ChildProcess; service: Pidfd; quiet: Pidfd; output: () => string; exited: Promise<number | null> }> {
  const up = spawn(process.execPath, [HOLDFAST_BIN, 'up', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const exited = new Promise<number | null>((resolve) => up.once('exit', (code) => resolve(code)));
  let output = '';
  up.stdout!.setEncoding('utf8');
  up.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const [pid, quietPid] = await new Promise<[number, number]>((resolve, reject) => {
    const onData = (text: string): void => {
      output += text;
      const hello = /hello +\| hello from (\d+)/.exec(output);
      const quiet = /quiet +\| → active \(running\) \(PID (\d+)/.exec(output);
      if (hello !== null && quiet !== null) {
        up.stdout!.off('data', onData);
        resolve([Number(hello[1]), Number(quiet[1])]);
      }
    };
    up.stdout!.on('data', onData);
    void exited.then(() => reject(new Error(`up exited early: ${output}`)));
    setTimeout(() => {
      up.kill('SIGINT');
      reject(new Error(`the services did not come up: ${output}`));
    }, 30_000).unref();
  });
  return { up, service: Pidfd.open(pid), quiet: Pidfd.open(quietPid), output: () => output, exited };
}

describe('holdfast up', () => {
  it('shows each unit\'s output under its name; Ctrl-C stops everything and exits 0', async () => {
    const { up, service, quiet, output, exited } = await startUp();
    up.stdout!.on('data', () => {});
    assert.match(output(), /hello +\| → active \(running\)/);
    up.kill('SIGINT');
    assert.equal(await exited, 0, output());
    for (const handle of [service, quiet]) {
      assert.equal((await handle.exited).signal, 'SIGTERM', 'each service was stopped, not left behind');
      handle.close();
    }
  });

  it('removes its private directory in $TMPDIR once stopped cleanly, and its help says where that is', async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'holdfast-up-tmpdir-'));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    const { up, service, quiet, output, exited } = await startUp({ TMPDIR: tmp });
    up.stdout!.on('data', () => {});
    const work = readdirSync(tmp);
    assert.equal(work.length, 1, 'one private directory while it runs');
    assert.match(work[0]!, /^holdfast-up-/);
    assert.match(output(), new RegExp(`control socket ${join(tmp, work[0]!, 'control').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    up.kill('SIGINT');
    assert.equal(await exited, 0, output());
    for (const handle of [service, quiet]) {
      await handle.exited;
      handle.close();
    }
    assert.deepEqual(readdirSync(tmp), [], 'nothing left behind');
    const help = await holdfast(['up', '--help']);
    assert.match(help.stdout, /\$TMPDIR\/holdfast-up-XXXXXX/);
    assert.match(help.stdout, /removed when up ends cleanly/);
  });

  it('when its output goes away (the reading end closed), it stops everything instead of dying and leaving them', async () => {
    const { up, service, quiet, exited } = await startUp();
    // The reader goes: the next line up writes fails with EPIPE.
    up.stdout!.destroy();
    service.signal('SIGUSR1'); // its exit is a line up must try to write
    const bounded = <T>(promise: Promise<T>): Promise<T | 'still running after 30 s'> =>
      Promise.race([promise, new Promise<'still running after 30 s'>((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000).unref())]);
    const code = await bounded(exited);
    const ended = await bounded(quiet.exited);
    if (ended === 'still running after 30 s') quiet.signal('SIGKILL'); // left behind: cleaned up here, then reported
    assert.equal(code, 0, 'a clean stop, not a crash');
    assert.notEqual(ended, 'still running after 30 s', 'the other service was stopped, not left behind');
    if (ended !== 'still running after 30 s') assert.equal(ended.signal, 'SIGTERM');
    service.close();
    quiet.close();
  });
});
