import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildExecInvocation, expandExecArgs, expandExecArgsDetailed, parseServiceUnitText } from '../../src/unit/index.js';
import { HOST } from './fixtures.js';

describe('expandExecArgs', () => {
  it('reproduces the systemd.service(5) example for $ONE and ${ONE}', () => {
    const unit = [
      '[Service]',
      'Type=oneshot',
      `Environment=ONE='one' "TWO='two two' too" THREE=`,
      'ExecStart=/bin/echo ${ONE} ${TWO} ${THREE}',
      'ExecStart=/bin/echo $ONE $TWO $THREE',
    ].join('\n');
    const r = parseServiceUnitText(unit, '/u/echo.service', { unitName: 'echo.service', host: HOST });
    assert.deepEqual(r.diagnostics, []);
    const s = r.config!.service;
    assert.deepEqual(s.environment, { ONE: 'one', TWO: "'two two' too", THREE: '' });
    // Older man pages showed the first argument as 'one' with quotes; systemd never kept them
    // (Environment= removes quotes anywhere in a word), and systemd/systemd#42753 fixed the page.
    assert.deepEqual(expandExecArgs(s.execStart[0]!.argv, s.environment), ['/bin/echo', 'one', "'two two' too", '']);
    assert.deepEqual(expandExecArgs(s.execStart[1]!.argv, s.environment), ['/bin/echo', 'one', 'two two', 'too']);
  });

  it('splits a lone $NAME honouring quotes and keeps ${NAME} as one word', () => {
    const env = { A: `"x y" z  'p q'`, B: 'b' };
    assert.deepEqual(expandExecArgs(['cmd', '$A'], env), ['cmd', 'x y', 'z', 'p q']);
    assert.deepEqual(expandExecArgs(['cmd', '${A}'], env), ['cmd', `"x y" z  'p q'`]);
    assert.deepEqual(expandExecArgs(['cmd', 'pre${B}post', '${B}${B}'], env), ['cmd', 'prebpost', 'bb']);
  });

  it('keeps $$ as a literal $ and leaves braceless variables inside words alone', () => {
    const env = { B: 'b' };
    assert.deepEqual(expandExecArgs(['cmd', '$$', 'a$$b', '$$B', 'x$B', '$'], env), ['cmd', '$', 'a$b', '$B', 'x$B']);
  });

  it('does not support ${A:-default} or ${A:+alt}', () => {
    assert.deepEqual(expandExecArgs(['cmd', '${A:-d}', '${A:+x}y'], {}), ['cmd', '${A:-d}', '${A:+x}y']);
  });

  it('expands unset variables to nothing: a lone $X disappears, ${X} becomes empty', () => {
    const r = expandExecArgsDetailed(['cmd', '$X', '${Y}', 'a${Z}b', '$W'], { W: undefined });
    assert.deepEqual(r, { argv: ['cmd', '', 'ab'], unset: ['W', 'X', 'Y', 'Z'], invalid: [] });
  });

  it('drops words whose variable name is invalid, as systemd does', () => {
    const r = expandExecArgsDetailed(['cmd', '$FOO/bar', '${1A}x', '$'], { FOO: 'f' });
    assert.deepEqual(r, { argv: ['cmd', 'x'], unset: [], invalid: ['', '1A', 'FOO/bar'] });
  });

  it('never expands argv[0]', () => {
    assert.deepEqual(expandExecArgs(['$A', '$A'], { A: 'a b' }), ['$A', 'a', 'b']);
  });

  it('treats an empty value as zero words', () => {
    assert.deepEqual(expandExecArgs(['cmd', '$E', 'x'], { E: '   ' }), ['cmd', 'x']);
  });
});

describe('buildExecInvocation', () => {
  const base = { ignoreFailure: false, noEnvExpand: false, viaShell: false, loginShell: false, fullPrivileges: false, noSetuid: false, source: { file: 'f', line: 1 } };

  it('expands a normal command', () => {
    const inv = buildExecInvocation({ ...base, path: 'env', argv: ['env', '$A'] }, { A: '1 2' });
    assert.deepEqual(inv, { file: 'env', argv: ['env', '1', '2'], unset: [], invalid: [] });
  });

  it('skips expansion with the : prefix', () => {
    const inv = buildExecInvocation({ ...base, noEnvExpand: true, path: '/bin/echo', argv: ['/bin/echo', '$A'] }, { A: '1' });
    assert.deepEqual(inv.argv, ['/bin/echo', '$A']);
  });

  it('runs | commands as SHELL -c with the expanded words joined', () => {
    const cmd = { ...base, viaShell: true, path: '/bin/sh', argv: ['sh', 'echo', '$HOME', '${X}|tr a b'] };
    assert.deepEqual(buildExecInvocation(cmd, { HOME: '/root', X: 'a' }, { shell: '/bin/bash' }), {
      file: '/bin/bash',
      argv: ['/bin/bash', '-c', 'echo /root a|tr a b'],
      unset: [],
      invalid: [],
    });
    const login = { ...cmd, loginShell: true, argv: ['-sh', 'true'] };
    assert.deepEqual(buildExecInvocation(login, {}).argv, ['-/bin/sh', '-c', 'true']);
    assert.deepEqual(buildExecInvocation({ ...cmd, argv: ['sh'] }, {}).argv, ['/bin/sh']);
  });
});
