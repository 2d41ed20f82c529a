// A unit's user must not be able to point the daemon (root) at another's file through
// StandardOutput=/StandardError=/StandardInput= paths in a directory that user controls (issue 10, item 5).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestDaemon, unitStatus } from '../helpers/daemon.js';
import { createTestUser, testUsersUnsupported, type TestUser } from '../helpers/users.js';

const skip = testUsersUnsupported();

describe('standard output paths of a User= unit', { skip }, () => {
  let user: TestUser;
  let base: string;
  let own: string;
  let secret: string;

  before(() => {
    user = createTestUser('op');
    base = mkdtempSync(join(tmpdir(), 'holdfast-paths-'));
    chmodSync(base, 0o755);
    own = join(base, 'own');
    mkdirSync(own);
    chownSync(own, user.uid, user.gid);
    const rootOnly = join(base, 'root-only');
    mkdirSync(rootOnly, { mode: 0o755 });
    secret = join(rootOnly, 'secret');
    writeFileSync(secret, 'root only\n', { mode: 0o600 });
  });
  after(() => {
    rmSync(base, { recursive: true, force: true });
    user.remove();
  });

  /** Runs a command as the unit's user (the attacker). */
  const asUser = (argv: string[]): void => {
    execFileSync(argv[0]!, argv.slice(1), { uid: user.uid, gid: user.gid, stdio: 'pipe' });
  };

  it('append: to a file the user made a symlink to a root-only file is refused (209), the file stays unchanged', async () => {
    const out = join(own, 'out.log');
    const d = await startTestDaemon({
      'w.service': `[Service]\nType=oneshot\nUser=${user.name}\nExecStart=/bin/echo written\nStandardOutput=append:${out}\n`,
    });
    try {
      await d.call('Start', { name: 'w' });
      assert.equal(readFileSync(out, 'utf8'), 'written\n', 'a plain path works, as before');
      assert.equal(statSync(out).uid, user.uid, 'the file the daemon made is the user\'s');
      asUser(['rm', out]);
      asUser(['ln', '-s', secret, out]);
      await d.call('Start', { name: 'w' }).catch(() => undefined);
      const status = await eventually(async () => {
        const s = await unitStatus(d, 'w');
        return s.activeState === 'failed' ? s : undefined;
      }, 'the start to fail');
      assert.equal(status.lastExit?.code, 209, JSON.stringify(status.lastExit));
      assert.equal(readFileSync(secret, 'utf8'), 'root only\n', 'the root-only file is unchanged');
      assert.match(d.stderr(), new RegExp(`refusing ${out.replace(/[.]/g, '\\.')}: it is a symbolic link`));
    } finally {
      await d.stop();
    }
  });

  it('a directory on the way swapped for a link to a root directory: a root-owned file there is refused', async () => {
    const sub = join(own, 'sub');
    const d = await startTestDaemon({
      'v.service': `[Service]\nType=oneshot\nUser=${user.name}\nExecStart=/bin/echo written\nStandardOutput=append:${join(sub, 'secret')}\n`,
    });
    try {
      asUser(['ln', '-s', join(base, 'root-only'), sub]);
      await d.call('Start', { name: 'v' }).catch(() => undefined);
      const status = await eventually(async () => {
        const s = await unitStatus(d, 'v');
        return s.activeState === 'failed' ? s : undefined;
      }, 'the start to fail');
      assert.equal(status.lastExit?.code, 209);
      assert.equal(readFileSync(secret, 'utf8'), 'root only\n');
      assert.match(d.stderr(), /owned by UID 0, not by that user/);
    } finally {
      await d.stop();
    }
  });
});
