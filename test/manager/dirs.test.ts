/**
 * Runtime and state directories: the daemon and the CLI use only directories that their user (or
 * root) owns and nobody else can write to, as ssh does with ~/.ssh; a directory another user made
 * first at the /tmp fallback is refused with its path, owner and mode.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureOwnDirectory, fallbackRuntimeBase, UnsafeDirectoryError } from '../../src/manager/paths.js';
import { HOLDFAST_BIN } from '../helpers/cli.js';

const asRoot = process.getuid?.() === 0;
const haveUseradd = ['/usr/sbin/useradd', '/sbin/useradd'].some((p) => existsSync(p));
const skipUsers = !asRoot ? 'needs root to create a second and third user' : !haveUseradd ? 'needs useradd to create real users' : false;

describe('ensureOwnDirectory', () => {
  let base: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'holdfast-dirs-'));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('creates a missing directory 0700, with missing parents 0700', () => {
    const target = join(base, 'a', 'b', 'state');
    assert.equal(ensureOwnDirectory(target), true);
    assert.equal(statSync(target).mode & 0o777, 0o700);
    assert.equal(statSync(join(base, 'a', 'b')).mode & 0o777, 0o700);
    assert.equal(ensureOwnDirectory(target), true, 'an existing own directory is fine');
  });

  it('leaves a missing one alone when asked not to create it', () => {
    assert.equal(ensureOwnDirectory(join(base, 'absent'), { create: false }), false);
    assert.equal(existsSync(join(base, 'absent')), false);
  });

  it('refuses a directory writable by others, naming path, owner and mode', () => {
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.throws(
      () => ensureOwnDirectory(open),
      (error: unknown) => {
        assert.ok(error instanceof UnsafeDirectoryError);
        assert.equal(error.path, open);
        assert.equal(error.mode & 0o7777, 0o777);
        assert.match(error.message, new RegExp(`^refusing ${open} \\(owner uid ${process.getuid!()}( \\(\\w+\\))?, mode 0777\\): it must not be writable by group or others$`));
        return true;
      },
    );
    chmodSync(open, 0o770);
    assert.throws(() => ensureOwnDirectory(open), /mode 0770\): it must not be writable by group or others/);
  });

  it('refuses a directory inside a parent others can write to (not sticky), without creating anything there', () => {
    const parent = join(base, 'shared');
    mkdirSync(parent);
    chmodSync(parent, 0o777);
    assert.throws(() => ensureOwnDirectory(join(parent, 'holdfast')), new RegExp(`refusing ${parent} .*mode 0777`));
    assert.equal(existsSync(join(parent, 'holdfast')), false);
  });

  it('follows a symlink to the directory it names, and judges that one', () => {
    const real = join(base, 'real');
    mkdirSync(real, { mode: 0o700 });
    chmodSync(real, 0o757);
    const link = join(base, 'link');
    symlinkSync(real, link);
    assert.throws(() => ensureOwnDirectory(link), new RegExp(`refusing ${link} \\(really ${real}\\)`));
  });
});

/** Runs a command as root; the test's own setup, so failures say what failed. */
function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8' }).trim();
}

/** `holdfast ARGS` as `uid`, with only the environment given (no XDG variables). */
function asUser(uid: number, gid: number, home: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> & { kill: () => void } {
  const child = spawn(process.execPath, [HOLDFAST_BIN, ...args], { uid, gid, env: { HOME: home, PATH: process.env['PATH'] ?? '/usr/bin:/bin', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return Object.assign(done, { kill: () => void child.kill('SIGTERM') });
}

describe('a user daemon without $XDG_RUNTIME_DIR, against another local user', { skip: skipUsers }, () => {
  const suffix = process.pid.toString(36);
  const victim = `hfv${suffix}`;
  const mallory = `hfm${suffix}`;
  let victimUid = -1;
  let victimGid = -1;
  let malloryUid = -1;
  let base = '';
  let home = '';
  let fallback = '';

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'holdfast-users-'));
    chmodSync(base, 0o755);
    home = join(base, 'home');
    mkdirSync(home);
    for (const name of [victim, mallory]) sh('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', name]);
    victimUid = Number(sh('id', ['-u', victim]));
    victimGid = Number(sh('id', ['-g', victim]));
    malloryUid = Number(sh('id', ['-u', mallory]));
    chownSync(home, victimUid, victimGid);
    chmodSync(home, 0o700);
    fallback = fallbackRuntimeBase(victimUid);
    rmSync(fallback, { recursive: true, force: true });
  });
  after(() => {
    rmSync(fallback, { recursive: true, force: true });
    for (const name of [victim, mallory]) {
      try {
        sh('userdel', [name]);
      } catch {
        // Not created (useradd failed): nothing to remove.
      }
    }
    rmSync(base, { recursive: true, force: true });
  });

  it('refuses a fallback runtime directory the other user made first, in the daemon and in the CLI', async () => {
    // What the other user does: make the victim's fallback directory first, open to all.
    execFileSync('mkdir', ['-m', '0777', fallback], { uid: malloryUid, gid: malloryUid });
    chmodSync(fallback, 0o777); // mkdir -m is subject to nothing, but be sure
    const daemon = await asUser(victimUid, victimGid, home, ['daemon']);
    assert.equal(daemon.code, 1, daemon.stderr);
    assert.match(daemon.stderr, new RegExp(`refusing ${fallback} \\(owner uid ${malloryUid} \\(${mallory}\\), mode 0777\\): it must belong to uid ${victimUid} \\(${victim}\\) or root`));
    assert.match(daemon.stderr, /set \$XDG_RUNTIME_DIR/);
    assert.equal(existsSync(join(fallback, 'holdfast')), false, 'nothing was created in it');

    // The other user's socket in that place is not talked to.
    execFileSync('mkdir', ['-p', join(fallback, 'holdfast')], { uid: malloryUid, gid: malloryUid });
    const list = await asUser(victimUid, victimGid, home, ['list']);
    assert.equal(list.code, 1);
    assert.match(list.stderr, new RegExp(`will not talk to the daemon at ${fallback}/holdfast/control: refusing ${fallback} \\(owner uid ${malloryUid}`));
  });

  it('with the directory gone, creates it 0700 as its own and serves the user', async () => {
    rmSync(fallback, { recursive: true, force: true });
    const daemon = asUser(victimUid, victimGid, home, ['daemon']);
    const socket = join(fallback, 'holdfast', 'control');
    for (let i = 0; i < 400 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
    try {
      assert.ok(existsSync(socket), 'the daemon listens');
      const st = statSync(fallback);
      assert.equal(st.uid, victimUid);
      assert.equal(st.mode & 0o777, 0o700);
      const state = statSync(join(home, '.local', 'state', 'holdfast'));
      assert.equal(state.uid, victimUid);
      assert.equal(state.mode & 0o777, 0o700);
      const list = await asUser(victimUid, victimGid, home, ['list']);
      assert.equal(list.code, 0, list.stderr);
    } finally {
      daemon.kill();
      const result = await daemon;
      assert.equal(result.code, 0, result.stderr);
    }
  });
});
