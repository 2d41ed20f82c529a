import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/cli/command.js';
import cat from '../../src/cli/commands/cat.js';
import verify from '../../src/cli/commands/verify.js';
import { runCommand, tempDir, writeTree } from './fixtures.js';

describe('holdfast verify', () => {
  it('prints nothing and exits 0 for a good unit', async (t) => {
    const dir = tempDir(t);
    writeTree(dir, { 'good.service': '[Service]\nExecStart=/bin/sh -c true\n' });
    const r = runCommand('verify', [path.join(dir, 'good.service')]);
    assert.deepEqual(r, { status: 0, stdout: '', stderr: '' });
  });

  it('prints every problem as FILE:LINE: message on stderr and exits 1 on errors', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'bad.service');
    writeTree(dir, {
      'bad.service': '[Unit]\nWhat=1\n[Service]\nExecStart=/bin/sh -c true\nRestartSec=later\n',
      'bad.service.d/10-more.conf': '[Service]\nKillSignal=SIGWHAT\n',
    });
    const r = runCommand('verify', [file]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      [
        `${file}:2: Unknown key 'What' in section [Unit], ignoring.`,
        `${file}:5: Invalid RestartSec=: 'later' is not a time span`,
        `${path.join(dir, 'bad.service.d/10-more.conf')}:2: Invalid KillSignal=: 'SIGWHAT' is not a signal`,
        '',
      ].join('\n'),
    );
  });

  it('exits 0 when there are only warnings, including programs that cannot be found', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'warn.service');
    writeTree(dir, { 'warn.service': '[Service]\nExecStart=/nonexistent/holdfast-prog\nExecStop=-/nonexistent/ignored\nProtectHome=yes\n' });
    const r = runCommand('verify', [file]);
    assert.equal(r.status, 0);
    assert.equal(r.stderr, [`${file}:2: Command /nonexistent/holdfast-prog is not an executable file`, `${file}:4: ProtectHome= is not supported by holdfast, ignoring.`, ''].join('\n'));
  });

  it('checks a template as an instance, and several files at once', async (t) => {
    const dir = tempDir(t);
    writeTree(dir, { 'a@.service': '[Service]\nExecStart=/bin/sh -c "echo %i"\n', 'b.service': '[Service]\nExecStart=/bin/sh\nType=weird\n' });
    const r = runCommand('verify', [path.join(dir, 'a@.service'), path.join(dir, 'b.service')]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `${path.join(dir, 'b.service')}:3: Invalid Type=: 'weird' is not one of simple, exec, forking, oneshot, notify, notify-reload\n`);
  });

  it('looks bare unit names up in --units directories and reports missing ones', async (t) => {
    const dir = tempDir(t);
    writeTree(dir, { 'units/x.service': '[Service]\nExecStart=/bin/sh\n' });
    const ok = runCommand('verify', ['--units', path.join(dir, 'units'), 'x.service']);
    assert.deepEqual(ok, { status: 0, stdout: '', stderr: '' });
    const missing = runCommand('verify', ['--units', path.join(dir, 'units'), 'y.service']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, `y.service: Unit y.service not found in ${path.join(dir, 'units')}.\n`);
  });

  it('refuses to run without files', async () => {
    await assert.rejects(verify.run([]), UsageError);
    // Option errors come from util.parseArgs; the CLI's main turns them into exit code 2.
    await assert.rejects(verify.run(['--bogus', 'x']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  });
});

describe('holdfast cat', () => {
  it('prints the fragment and each drop-in under a # path line', async (t) => {
    const dir = tempDir(t);
    writeTree(dir, {
      'lib/web.service': '[Service]\nExecStart=/bin/lib\n',
      'etc/web.service.d/20-b.conf': '[Service]\nRestartSec=2',
      'lib/web.service.d/10-a.conf': '[Service]\nRestartSec=1\n',
    });
    const lib = path.join(dir, 'lib');
    const etc = path.join(dir, 'etc');
    const r = runCommand('cat', ['web.service', '--units', lib, '--units', etc]);
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      [
        `# ${path.join(lib, 'web.service')}`,
        '[Service]',
        'ExecStart=/bin/lib',
        '',
        `# ${path.join(lib, 'web.service.d/10-a.conf')}`,
        '[Service]',
        'RestartSec=1',
        '',
        `# ${path.join(etc, 'web.service.d/20-b.conf')}`,
        '[Service]',
        'RestartSec=2',
        '',
      ].join('\n'),
    );
  });

  it('exits 4 when a unit has no file', async (t) => {
    const dir = tempDir(t);
    const r = runCommand('cat', ['--units', dir, 'nope.service']);
    assert.deepEqual(r, { status: 4, stdout: '', stderr: 'No files found for nope.service.\n' });
    await assert.rejects(cat.run([]), UsageError);
    await assert.rejects(cat.run(['bad name']), UsageError);
  });
});
