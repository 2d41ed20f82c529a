import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { loadEnvironmentFiles, parseEnvironmentFile } from '../../src/unit/index.js';
import { tempDir, writeTree } from './fixtures.js';

describe('parseEnvironmentFile', () => {
  it('reads KEY=VALUE lines, trimming around keys and values', () => {
    const r = parseEnvironmentFile('A=1\n  B = 2  \nC=\nD=x y\n');
    assert.deepEqual(r, { env: { A: '1', B: '2', C: '', D: 'x y' }, diagnostics: [], ok: true });
  });

  it('skips # and ; comments, also indented, and a trailing backslash does not continue them', () => {
    const r = parseEnvironmentFile('# c\n; d\n   # e \\\nN=1\nM=2 # not a comment\n');
    assert.deepEqual(r.env, { N: '1', M: '2 # not a comment' });
  });

  it('handles single and double quotes like a shell', () => {
    const text = [`S='a "b" \\n'`, `D="a \\"b\\" \\\\ \\$ \\\` \\n"`, `M="a b" c 'd'`, `W='line1`, `line2'`, `Q=a"b"`].join('\n');
    const r = parseEnvironmentFile(text);
    // After a closing quote, more text is appended; outside quotes a quote character is ordinary.
    assert.deepEqual(r.env, { S: 'a "b" \\n', D: 'a "b" \\ $ ` \\n', M: "a bc 'd'", W: 'line1\nline2', Q: 'a"b"' });
  });

  it('joins lines ending in a backslash and unescapes other backslashes outside quotes', () => {
    const r = parseEnvironmentFile('H=one\\\ntwo\nI=a\\ b\\\\c\nJ="x\\\ny"\n');
    assert.deepEqual(r.env, { H: 'onetwo', I: 'a b\\c', J: 'xy' });
  });

  it('drops invalid names such as `export X=1`, with a warning, and keeps the rest', () => {
    const r = parseEnvironmentFile('export X=1\n1A=2\nNOEQUALS\nOK=3\n', '/etc/app.env');
    assert.deepEqual(r.env, { OK: '3' });
    assert.equal(r.ok, true);
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.file}:${d.line} ${d.severity} ${d.message}`),
      [
        "/etc/app.env:1 warning Ignoring invalid environment assignment 'export X=1'",
        "/etc/app.env:2 warning Ignoring invalid environment assignment '1A=2'",
        "/etc/app.env:3 warning Ignoring line without '=': NOEQUALS",
      ],
    );
  });

  it('lets a later assignment win', () => {
    assert.deepEqual(parseEnvironmentFile('A=1\nB=2\nA=3').env, { B: '2', A: '3' });
  });

  it('understands CRLF line ends and a last line without newline', () => {
    assert.deepEqual(parseEnvironmentFile('L=1\r\nM=2\r\nN=3').env, { L: '1', M: '2', N: '3' });
  });

  it('refuses the whole file when a value is not UTF-8', () => {
    const r = parseEnvironmentFile(Buffer.concat([Buffer.from('A=1\nB='), Buffer.from([0xff]), Buffer.from('\n')]), 'f');
    assert.equal(r.ok, false);
    assert.deepEqual(r.env, {});
    assert.deepEqual(r.diagnostics.map((d) => [d.line, d.severity, d.message]), [[2, 'error', 'invalid UTF-8 in the value of B; the file is not used']]);
  });

  it('stops at a NUL byte', () => {
    assert.deepEqual(parseEnvironmentFile('A=1\nB=2\0C=3\n').env, { A: '1', B: '2' });
  });
});

describe('loadEnvironmentFiles', () => {
  it('merges files in order, globbing and honouring optional entries', async (t) => {
    const dir = tempDir(t);
    writeTree(dir, {
      'base.env': 'A=base\nB=base\n',
      'conf.d/20-b.env': 'B=twenty\n',
      'conf.d/10-a.env': 'A=ten\nC=ten\n',
      'conf.d/ignored.txt': 'A=no\n',
    });
    const r = await loadEnvironmentFiles([
      { path: path.join(dir, 'base.env'), optional: false },
      { path: path.join(dir, 'conf.d/*.env'), optional: false },
      { path: path.join(dir, 'missing.env'), optional: true },
    ]);
    assert.deepEqual(r, { env: { A: 'ten', B: 'twenty', C: 'ten' }, diagnostics: [] });
  });

  it('fails on a missing required file and names it', async (t) => {
    const dir = tempDir(t);
    const missing = path.join(dir, 'nope.env');
    const r = await loadEnvironmentFiles([{ path: missing, optional: false }]);
    assert.deepEqual(r.error, { path: missing, message: 'cannot read the file (ENOENT)' });
    const g = await loadEnvironmentFiles([{ path: path.join(dir, '*.env'), optional: false }]);
    assert.deepEqual(g.error, { path: path.join(dir, '*.env'), message: 'no file matches' });
  });
});
