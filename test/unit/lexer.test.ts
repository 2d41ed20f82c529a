import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lexUnitFile, LONG_LINE_MAX, splitLines, type UnitFileSyntax } from '../../src/unit/index.js';

const SECTIONS = { knownSections: ['Unit', 'Service', 'Install'] } as const;

function pairs(s: UnitFileSyntax): Array<[string, string, string, number]> {
  return s.assignments.map((a) => [a.section, a.key, a.value, a.line]);
}

function messages(s: UnitFileSyntax): string[] {
  return s.diagnostics.map((d) => `${d.line} ${d.severity} ${d.message}`);
}

describe('splitLines', () => {
  it('ends lines at LF, CR, CRLF, LFCR and NUL like read_line()', () => {
    const text = (b: Uint8Array) => Buffer.from(b).toString();
    assert.deepEqual(splitLines(Buffer.from('a\nb\r\nc\rd\n\re\0f')).map(text), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.deepEqual(splitLines(Buffer.from('a\n\nb\n')).map(text), ['a', '', 'b']);
    assert.deepEqual(splitLines(Buffer.from('a\r\n\r\nb')).map(text), ['a', '', 'b']);
    assert.deepEqual(splitLines(Buffer.from('a\0\nb')).map(text), ['a', '', 'b']);
    assert.deepEqual(splitLines(Buffer.from('')).map(text), []);
  });
});

describe('lexUnitFile', () => {
  it('reads sections and assignments, trimming keys and values', () => {
    const s = lexUnitFile('[Unit]\n  Description =  A b  \n\n[Service]\nExecStart=/bin/true\n', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [
      ['Unit', 'Description', 'A b', 2],
      ['Service', 'ExecStart', '/bin/true', 5],
    ]);
    assert.deepEqual(s.sections, [
      { name: 'Unit', line: 1 },
      { name: 'Service', line: 4 },
    ]);
    assert.deepEqual(s.diagnostics, []);
  });

  it('skips # and ; comment lines, but not # later on a line', () => {
    const s = lexUnitFile('# top\n[Service]\n; semi\n   # indented\nEnvironment=A=1 # not a comment\n', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'Environment', 'A=1 # not a comment', 5]]);
  });

  it('joins continuation lines, replacing the backslash by a space and skipping comment lines', () => {
    const text = ['[Service]', 'ExecStart=/bin/echo a \\', '# a comment inside', '  ; another', '  b \\', 'c', 'Type=simple'].join('\n');
    const s = lexUnitFile(text, 'u', SECTIONS);
    assert.deepEqual(pairs(s), [
      ['Service', 'ExecStart', '/bin/echo a    b  c', 2],
      ['Service', 'Type', 'simple', 7],
    ]);
  });

  it('does not continue after an escaped backslash, and an empty line ends a continuation', () => {
    const s = lexUnitFile('[Service]\nA=x\\\\\nB=y \\\n\nC=z\n', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [
      ['Service', 'A', 'x\\\\', 2],
      ['Service', 'B', 'y', 3],
      ['Service', 'C', 'z', 5],
    ]);
  });

  it('finishes a continuation that runs into the end of the file', () => {
    const s = lexUnitFile('[Service]\nExecStart=/bin/true \\\n  x \\', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'ExecStart', '/bin/true    x', 2]]);
  });

  it('warns about unknown sections and drops their assignments, silently for X- sections', () => {
    const s = lexUnitFile('[Socket]\nListenStream=1\n[X-Mine]\nFoo=1\n[Service]\nA=1\n', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'A', '1', 6]]);
    assert.deepEqual(messages(s), ["1 warning Unknown section 'Socket'. Ignoring."]);
  });

  it('accepts every section when none are named', () => {
    const s = lexUnitFile('[Socket]\nListenStream=1\n', 'u');
    assert.deepEqual(pairs(s), [['Socket', 'ListenStream', '1', 2]]);
  });

  it('reports broken headers and lines', () => {
    const s = lexUnitFile('A=1\n[Service\n[Ser"vice]\n[Service]\nnoequals\n=value\n', 'u', SECTIONS);
    assert.deepEqual(messages(s), [
      '1 warning Assignment outside of section. Ignoring.',
      "2 error Invalid section header '[Service'",
      `3 error Bad characters in section header '[Ser"vice]'`,
      "5 warning Missing '=', ignoring line.",
      "6 warning Missing key name before '=', ignoring line.",
    ]);
  });

  it('counts CRLF and CR line ends, and NUL ends a line', () => {
    const s = lexUnitFile('[Service]\r\nA=1\r\nB=2\rC=3\0D=4', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [
      ['Service', 'A', '1', 2],
      ['Service', 'B', '2', 3],
      ['Service', 'C', '3', 4],
      ['Service', 'D', '4', 5],
    ]);
  });

  it('drops a leading byte order mark', () => {
    const s = lexUnitFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[Service]\nA=1\n')]), 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'A', '1', 2]]);
    assert.deepEqual(s.diagnostics, []);
  });

  it('ignores lines that are not UTF-8, with a warning', () => {
    const s = lexUnitFile(Buffer.concat([Buffer.from('[Service]\nA='), Buffer.from([0xff, 0x0a]), Buffer.from('B=2\n')]), 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'B', '2', 3]]);
    assert.deepEqual(messages(s), ['2 warning Line is not valid UTF-8, ignoring']);
  });

  it('refuses lines longer than 1 MiB', () => {
    const s = lexUnitFile(`[Service]\nA=${'x'.repeat(LONG_LINE_MAX)}\nB=1\n`, 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'B', '1', 3]]);
    assert.deepEqual(messages(s), [`2 error Line too long (more than ${LONG_LINE_MAX} bytes)`]);
  });

  it('keeps key case and allows = in values', () => {
    const s = lexUnitFile('[Service]\nenvironment=A=B=C\n', 'u', SECTIONS);
    assert.deepEqual(pairs(s), [['Service', 'environment', 'A=B=C', 2]]);
  });
});
