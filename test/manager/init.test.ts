import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { Pidfd } from '../../src/index.js';
import { pidReuseUnsupported } from '../helpers/pid-reuse.js';

/** Counts zombies in the namespace from inside it, then exits with 7: the status holdfast must exit with. */
const CHECK = `
import os, time
time.sleep(1.5)
zombies = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            stat = open(f'/proc/{pid}/stat').read()
        except OSError:
            continue
        if stat[stat.rindex(')') + 2] == 'Z':
            zombies.append(pid)
open(os.environ['REPORT'], 'w').write(f'{os.getpid()} {len(zombies)}')
raise SystemExit(7)
`;

/** Leaves zombies: children that exit at once and are never waited for; then the parent exits too. */
const ZOMBIES = `
import os, time
for _ in range(5):
    if os.fork() == 0:
        os._exit(0)
time.sleep(0.3)
os._exit(0)
`;

function runInit(dir: string, extra: string[]): { done: Promise<{ code: number | null; stderr: string }>; kill: (signal: NodeJS.Signals) => void; pid: number } {
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, HOLDFAST_BIN, 'daemon', '--units', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--socket', join(dir, 'control'), ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return {
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr }))),
    kill: (signal) => child.kill(signal),
    pid: child.pid!,
  };
}

describe('holdfast as a container\'s init (PID 1 of a fresh PID namespace)', () => {
  it('reaps orphans and zombies of a double-forking daemon, and exits with the status of --exit-with', async (t) => {
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(`needs a fresh PID namespace as root: ${reason}`);
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-init-'));
    try {
      mkdirSync(join(dir, 'units'));
      writeFileSync(join(dir, 'check.py'), CHECK);
      writeFileSync(join(dir, 'zombies.py'), ZOMBIES);
      const report = join(dir, 'report');
      writeFileSync(join(dir, 'units', 'forker.service'), `[Service]\nType=forking\nExecStart=/bin/sh -c '(sleep 600 &) ; (sh -c "sleep 0.2" &)'\n`);
      writeFileSync(join(dir, 'units', 'zombies.service'), `[Service]\nType=oneshot\nExecStart=/usr/bin/env python3 ${join(dir, 'zombies.py')}\n`);
      writeFileSync(join(dir, 'units', 'main.service'), `[Service]\nEnvironment=REPORT=${report}\nExecStart=/usr/bin/env python3 ${join(dir, 'check.py')}\n`);
      const init = runInit(dir, ['--exit-with', 'main']);
      const { code, stderr } = await init.done;
      assert.equal(code, 7, stderr);
      const [checkerPid, zombies] = readFileSync(report, 'utf8').split(' ').map(Number);
      assert.equal(zombies, 0, 'no zombie is left in the namespace');
      assert.ok(checkerPid! > 1, 'the check ran inside the namespace');
      assert.match(stderr, /reaped orphan PID/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('turns SIGTERM into a stop of every unit and exits with the unit\'s status (128 + SIGTERM)', async (t) => {
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(`needs a fresh PID namespace as root: ${reason}`);
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-init-'));
    try {
      mkdirSync(join(dir, 'units'));
      const marker = join(dir, 'stopped');
      writeFileSync(join(dir, 'units', 'only.service'), `[Service]\nExecStart=/bin/sleep 600\nExecStopPost=/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" > ${marker}'\n`);
      const init = runInit(dir, []);
      for (let i = 0; i < 200; i++) {
        const { existsSync } = await import('node:fs');
        if (existsSync(join(dir, 'control'))) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 300));
      // unshare does not forward signals: send SIGTERM to holdfast itself (unshare's only child), by pidfd.
      const children = readFileSync(`/proc/${init.pid}/task/${init.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      assert.equal(children.length, 1);
      using holdfast = Pidfd.open(children[0]!);
      holdfast.signal('SIGTERM');
      const { code, stderr } = await init.done;
      assert.equal(code, 143, stderr);
      assert.equal(readFileSync(marker, 'utf8').trim(), 'success killed TERM');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
