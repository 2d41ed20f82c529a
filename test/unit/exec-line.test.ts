import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DiagnosticSink } from '../../src/unit/diagnostics.js';
import { findExecutable, findExecutableAsync, formatExecCommand, parseExecLine, type ExecCommand } from '../../src/unit/index.js';
import { HOST, tempDir } from './fixtures.js';

const CTX = { ...HOST, unitName: 'app@one.service', fragmentPath: '/u/app@.service' };

function parse(value: string, key = 'ExecStart'): { cmds: ExecCommand[] | null; diags: string[] } {
  const sink = new DiagnosticSink('/u/app@.service');
  const cmds = parseExecLine(value, key, 7, CTX, sink);
  return { cmds, diags: sink.list.map((d) => `${d.line} ${d.severity} ${d.message}`) };
}

function one(value: string): ExecCommand {
  const { cmds, diags } = parse(value);
  assert.deepEqual(diags, []);
  assert.equal(cmds?.length, 1);
  return cmds![0]!;
}

const plain = { ignoreFailure: false, noEnvExpand: false, viaShell: false, loginShell: false, fullPrivileges: false, noSetuid: false, source: { file: '/u/app@.service', line: 7 } };

describe('parseExecLine', () => {
  it('splits words with quotes and escapes at load time', () => {
    assert.deepEqual(one(String.raw`/bin/echo a "b c" 'd "e"' f\x41 "tab\t"`), {
      ...plain,
      path: '/bin/echo',
      argv: ['/bin/echo', 'a', 'b c', 'd "e"', 'fA', 'tab\t'],
    });
  });

  it('returns null for an empty value, which resets the list', () => {
    assert.deepEqual(parse(''), { cmds: null, diags: [] });
  });

  it('reads each prefix', () => {
    assert.equal(one('-/bin/false').ignoreFailure, true);
    assert.equal(one(':/bin/echo $X').noEnvExpand, true);
    assert.equal(one('+/bin/id').fullPrivileges, true);
    assert.equal(one('!/bin/id').noSetuid, true);
    assert.deepEqual(one('@/bin/busybox sh -c true'), { ...plain, path: '/bin/busybox', argv: ['sh', '-c', 'true'] });
    assert.deepEqual(one('-@:+/bin/x y z'), { ...plain, ignoreFailure: true, noEnvExpand: true, fullPrivileges: true, path: '/bin/x', argv: ['y', 'z'] });
    assert.deepEqual(one('!:-/bin/x'), { ...plain, ignoreFailure: true, noEnvExpand: true, noSetuid: true, path: '/bin/x', argv: ['/bin/x'] });
  });

  it('runs | commands through the shell, |@ as a login shell', () => {
    assert.deepEqual(one('|echo "hi there" $HOME'), { ...plain, viaShell: true, path: '/bin/sh', argv: ['sh', 'echo', 'hi there', '$HOME'] });
    assert.deepEqual(one('|@ echo x'), { ...plain, viaShell: true, loginShell: true, path: '/bin/sh', argv: ['-sh', 'echo', 'x'] });
  });

  it('ignores !! with a notice', () => {
    const { cmds, diags } = parse('!!/bin/x');
    assert.deepEqual(cmds, [{ ...plain, path: '/bin/x', argv: ['/bin/x'] }]);
    assert.deepEqual(diags, ['7 notice The !! modifier for ExecStart= lines is no longer supported and is now ignored. Please remove it.']);
  });

  it('refuses a repeated prefix and + with !', () => {
    assert.deepEqual(parse('+!/bin/x').diags, ["7 error ExecStart=: prefix '!' is repeated or cannot be combined with the others: +!/bin/x"]);
    // The first '-' already asks to ignore failures, so, as in systemd, the bad line is only a warning.
    assert.deepEqual(parse('--/bin/x').diags, ["7 warning ExecStart=: prefix '-' is repeated or cannot be combined with the others: --/bin/x, ignoring"]);
    assert.deepEqual(parse('::/bin/x').cmds, []);
  });

  it('accepts absolute paths and bare names only', () => {
    assert.deepEqual(one('echo hi'), { ...plain, path: 'echo', argv: ['echo', 'hi'] });
    assert.deepEqual(one('//bin//./echo'), { ...plain, path: '/bin/echo', argv: ['//bin//./echo'] });
    assert.deepEqual(parse('bin/echo').diags, ["7 error ExecStart= needs an absolute path or a plain file name, not 'bin/echo'"]);
    assert.deepEqual(parse('/bin/').diags, ['7 error Executable path in ExecStart= specifies a directory: /bin/']);
    assert.deepEqual(parse('/bin/a\\x01b').diags, ['7 error Executable path in ExecStart= contains special characters: /bin/a\x01b']);
    assert.deepEqual(parse('-bin/echo').diags, ["7 warning ExecStart= needs an absolute path or a plain file name, not 'bin/echo', ignoring"]);
  });

  it('separates commands at a lone ; and keeps \\; as an argument', () => {
    const { cmds, diags } = parse('/bin/echo a ; -/bin/echo b;c \\; d ";" e\\;');
    // Only a lone \; is special; inside a word it is an unknown escape, kept as written.
    assert.deepEqual(diags, ['7 warning Ignoring unknown escape sequences in ExecStart=: "e\\;"']);
    assert.deepEqual(cmds, [
      { ...plain, path: '/bin/echo', argv: ['/bin/echo', 'a'] },
      { ...plain, ignoreFailure: true, path: '/bin/echo', argv: ['/bin/echo', 'b;c', ';', 'd', ';', 'e\\;'] },
    ]);
    assert.equal(parse('; /bin/true').cmds?.length, 1);
  });

  it('passes shell syntax through as literal words (systemd-spec.md §8.1)', () => {
    assert.deepEqual(one('echo / >/dev/null & \\; ls').argv, ['echo', '/', '>/dev/null', '&', ';', 'ls']);
  });

  it('expands specifiers per word after unquoting, never splitting words', () => {
    assert.deepEqual(one('/usr/bin/%p --name="%i %H" %%').argv, ['/usr/bin/app', '--name=one host.example.com', '%']);
  });

  it('reports unknown specifiers with the line; with - it only warns and drops the command', () => {
    assert.deepEqual(parse('/bin/echo %z'), { cmds: [], diags: ["7 error ExecStart=: unknown specifier '%z' in '%z'"] });
    assert.deepEqual(parse('-/bin/echo %z'), { cmds: [], diags: ["7 warning ExecStart=: unknown specifier '%z' in '%z', ignoring"] });
  });

  it('keeps unknown escapes with a warning, refuses unbalanced quotes', () => {
    const r = parse(String.raw`/bin/echo \q`);
    assert.deepEqual(r.cmds?.[0]?.argv, ['/bin/echo', '\\q']);
    assert.deepEqual(r.diags, [`7 warning Ignoring unknown escape sequences in ExecStart=: "\\q"`]);
    assert.deepEqual(parse('/bin/echo "abc').diags, ['7 error Unbalanced quoting in ExecStart=: /bin/echo "abc']);
  });

  it('needs a program after @', () => {
    assert.deepEqual(parse('@/bin/echo').diags, ['7 error Empty executable name or zeroth argument in ExecStart=: @/bin/echo']);
  });

  it('formats commands back into one line', () => {
    assert.equal(formatExecCommand(one('-/bin/echo "a b" c')), '-/bin/echo "a b" c');
    assert.equal(formatExecCommand(one('@/bin/busybox sh')), '@/bin/busybox sh');
    assert.equal(formatExecCommand(one('|echo x')), '|echo x');
  });
});

describe('findExecutable', () => {
  it('looks bare names up in the search path and checks absolute paths', async (t) => {
    const dir = tempDir(t);
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(path.join(a, 'tool'), 'x');
    chmodSync(path.join(a, 'tool'), 0o644);
    writeFileSync(path.join(b, 'tool'), '#!/bin/sh\n');
    chmodSync(path.join(b, 'tool'), 0o755);
    mkdirSync(path.join(a, 'dirtool'));
    assert.equal(findExecutable('tool', [a, b]), path.join(b, 'tool'));
    assert.equal(await findExecutableAsync('tool', [a, b]), path.join(b, 'tool'));
    assert.equal(findExecutable('dirtool', [a, b]), undefined);
    assert.equal(findExecutable('missing', [a, b]), undefined);
    assert.equal(findExecutable(path.join(b, 'tool')), path.join(b, 'tool'));
    assert.equal(await findExecutableAsync(path.join(a, 'missing')), undefined);
    assert.equal(findExecutable('relative/tool'), undefined);
    const sh = findExecutable('sh');
    assert.ok(sh === '/usr/bin/sh' || sh === '/bin/sh' || sh === '/usr/sbin/sh', String(sh));
  });
});
