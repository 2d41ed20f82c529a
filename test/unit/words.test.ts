import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitWords, strip, WordReader } from '../../src/unit/index.js';

const C = { unquote: true, cunescape: true } as const;

describe('splitWords', () => {
  it('splits on whitespace and coalesces separators', () => {
    assert.deepEqual(splitWords(' a  b\tc \n').words, ['a', 'b', 'c']);
    assert.deepEqual(splitWords('').words, []);
    assert.deepEqual(splitWords('   ').words, []);
  });

  it('removes quotes, keeping what is inside together, also in the middle of a word', () => {
    assert.deepEqual(splitWords(`"a b" 'c d' e`, C).words, ['a b', 'c d', 'e']);
    assert.deepEqual(splitWords(`--opt="a b"c`, C).words, ['--opt=a bc']);
    assert.deepEqual(splitWords(`"it's" '"x"'`, C).words, [`it's`, `"x"`]);
    assert.deepEqual(splitWords(`"" x`, C).words, ['', 'x']);
  });

  it('keeps quotes without unquote', () => {
    assert.deepEqual(splitWords(`"a b"`).words, ['"a', 'b"']);
  });

  it('decodes every C escape systemd knows', () => {
    assert.deepEqual(splitWords(String.raw`\a\b\f\n\r\t\v\\\"\'\s`, C).words, ['\x07\b\f\n\r\t\v\\"\' ']);
    assert.deepEqual(splitWords(String.raw`\x41 \101 \u00e9 \U0001F600`, C).words, ['A', 'A', 'é', '😀']);
    assert.deepEqual(splitWords(String.raw`"tab\there"`, C).words, ['tab\there']);
  });

  it('treats \\xNN and \\nnn as raw bytes that may combine into UTF-8', () => {
    const r = splitWords(String.raw`\xc3\xa9 \303\251`, C);
    assert.deepEqual(r.words, ['é', 'é']);
    assert.equal(r.invalidUtf8, false);
    const bad = splitWords(String.raw`\xff`, C);
    assert.equal(bad.invalidUtf8, true);
    assert.deepEqual(bad.words, ['\ufffd']);
    assert.equal(splitWords(String.raw`\ud800`, C).invalidUtf8, true);
  });

  it('refuses unknown escapes, NUL escapes and invalid code points', () => {
    assert.equal(splitWords(String.raw`\q`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\x00`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\000`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\u0000`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\U00110000`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\x4`, C).error, 'escape');
    assert.equal(splitWords(String.raw`\400`, C).error, 'escape');
  });

  it('keeps unknown escapes verbatim in relaxed mode', () => {
    assert.deepEqual(splitWords(String.raw`a\qb \x4 c\\`, { ...C, unescapeRelax: true }).words, [String.raw`a\qb`, String.raw`\x4`, 'c\\']);
  });

  it('reports unbalanced quotes and a trailing backslash', () => {
    assert.equal(splitWords(`"abc`, C).error, 'quote');
    assert.equal(splitWords(`'abc" x`, C).error, 'quote');
    assert.equal(splitWords('abc\\', C).error, 'backslash');
    assert.deepEqual(splitWords(`"abc`, { ...C, relax: true }).words, ['abc']);
  });

  it('without cunescape a backslash protects the next character', () => {
    assert.deepEqual(splitWords(String.raw`a\ b \n`, { unquote: true }).words, ['a b', 'n']);
  });

  it('retainEscape keeps backslashes as plain characters', () => {
    assert.deepEqual(splitWords(String.raw`a\ b`, { retainEscape: true }).words, ['a\\', 'b']);
  });

  it('dontCoalesce yields empty words between separators', () => {
    assert.deepEqual(splitWords('1::2:', { separators: ':', dontCoalesce: true }).words, ['1', '', '2', '']);
  });
});

describe('WordReader', () => {
  it('lets the caller look at the raw text between words', () => {
    const r = new WordReader('one ; two');
    assert.deepEqual(r.next(C), { kind: 'word', word: 'one', invalidUtf8: false });
    assert.equal(r.peek(0), 0x3b);
    r.skip(1);
    assert.equal(r.rest(), 'two');
    assert.deepEqual(r.next(C), { kind: 'word', word: 'two', invalidUtf8: false });
    assert.deepEqual(r.next(C), { kind: 'end' });
    assert.equal(r.done, true);
  });

  it('nextLenient retries bad escapes and says so', () => {
    const r = new WordReader(String.raw`a\qb "x`);
    const first = r.nextLenient(C);
    assert.deepEqual(first, { kind: 'word', word: String.raw`a\qb`, invalidUtf8: false, relaxedEscapes: true });
    assert.deepEqual(r.nextLenient(C), { kind: 'error', error: 'quote' });
  });
});

describe('strip', () => {
  it('trims only systemd whitespace', () => {
    assert.equal(strip(' \t a b \r\n'), 'a b');
    assert.equal(strip('\u00a0x\u00a0'), '\u00a0x\u00a0');
  });
});
