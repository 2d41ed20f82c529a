import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  MessageDecoder,
  VarlinkProtocolError,
  decodeMessage,
  encodeCall,
  encodeReply,
  parseCall,
  parseReply,
} from '../../src/api/varlink/index.js';

const text = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('utf8'));

describe('MessageDecoder', () => {
  it('reassembles messages delivered one byte at a time, including multi-byte UTF-8', () => {
    const wire = Buffer.from('{"method":"a.b.C","parameters":{"t":"h\u00e9\u20ac\u{1f600}"}}\0{"method":"a.b.D"}\0', 'utf8');
    const decoder = new MessageDecoder();
    const out: string[] = [];
    for (const byte of wire) out.push(...text(decoder.push(Buffer.from([byte]))));
    assert.deepEqual(out, ['{"method":"a.b.C","parameters":{"t":"h\u00e9\u20ac\u{1f600}"}}', '{"method":"a.b.D"}']);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('splits many messages out of one chunk and keeps the partial tail', () => {
    const decoder = new MessageDecoder();
    const many = Array.from({ length: 1000 }, (_, i) => `{"i":${i}}\0`).join('');
    const out = text(decoder.push(Buffer.from(`${many}{"partial":`)));
    assert.equal(out.length, 1000);
    assert.equal(out[0], '{"i":0}');
    assert.equal(out[999], '{"i":999}');
    assert.equal(decoder.bufferedBytes, 11);
    assert.deepEqual(text(decoder.push(Buffer.from('true}\0'))), ['{"partial":true}']);
  });

  it('returns empty messages for consecutive NULs (the parser rejects them later)', () => {
    const decoder = new MessageDecoder();
    assert.deepEqual(text(decoder.push(Buffer.from('\0\0{}\0'))), ['', '', '{}']);
  });

  it('accepts a message of exactly the maximum size and refuses one byte more', () => {
    const exact = new MessageDecoder(8);
    assert.deepEqual(text(exact.push(Buffer.from('12345678\0'))), ['12345678']);
    assert.equal(exact.error, undefined);
    const over = new MessageDecoder(8);
    assert.deepEqual(text(over.push(Buffer.from('{}\x00123456789\0{}\0'))), ['{}']);
    assert.ok(over.error instanceof VarlinkProtocolError);
    assert.equal(over.error.message, 'message of 9 bytes exceeds the limit of 8 bytes');
  });

  it('fails as soon as the buffered bytes without a NUL pass the limit, and then ignores input', () => {
    const decoder = new MessageDecoder(10);
    assert.deepEqual(decoder.push(Buffer.from('12345')), []);
    assert.deepEqual(decoder.push(Buffer.from('67890')), []);
    // A function, so TypeScript does not narrow the getter's type across the pushes.
    const failure = (): string | undefined => decoder.error?.message;
    assert.equal(failure(), undefined);
    assert.deepEqual(decoder.push(Buffer.from('1')), []);
    assert.equal(failure(), 'message exceeds the limit of 10 bytes (11 bytes without a NUL so far)');
    assert.equal(decoder.bufferedBytes, 0);
    assert.deepEqual(decoder.push(Buffer.from('\0{}\0')), []);
  });

  it('counts pieces across chunks toward the limit', () => {
    const decoder = new MessageDecoder(10);
    decoder.push(Buffer.from('123456'));
    assert.deepEqual(decoder.push(Buffer.from('78901\0')), []);
    assert.equal(decoder.error?.message, 'message of 11 bytes exceeds the limit of 10 bytes');
  });

  it('rejects a non-positive limit', () => {
    assert.throws(() => new MessageDecoder(0), RangeError);
  });
});

describe('decodeMessage', () => {
  it('parses JSON', () => {
    assert.deepEqual(decodeMessage(Buffer.from('{"a":[1,null,"x"]}')), { a: [1, null, 'x'] });
  });
  it('refuses invalid UTF-8 instead of replacing it', () => {
    assert.throws(() => decodeMessage(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), { name: 'VarlinkProtocolError', message: 'message is not valid UTF-8' });
  });
  it('refuses invalid JSON', () => {
    assert.throws(() => decodeMessage(Buffer.from('{method:1}')), (err: Error) => err instanceof VarlinkProtocolError && err.message.startsWith('message is not valid JSON: '));
  });
});

describe('encoding', () => {
  it('writes replies with a fixed key order and always with parameters', () => {
    assert.equal(encodeReply({}).toString(), '{"parameters":{}}\0');
    assert.equal(encodeReply({ continues: true, parameters: { a: 1 } }).toString(), '{"parameters":{"a":1},"continues":true}\0');
    assert.equal(encodeReply({ parameters: { parameter: 'x' }, error: 'org.varlink.service.InvalidParameter' }).toString(), '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"x"}}\0');
    assert.equal(encodeReply({ continues: false, parameters: {} }).toString(), '{"parameters":{}}\0');
  });

  it('writes calls without false flags, and escapes NUL inside strings', () => {
    assert.equal(encodeCall({ method: 'a.b.C', more: false, oneway: true }).toString(), '{"method":"a.b.C","oneway":true}\0');
    assert.equal(encodeCall({ method: 'a.b.C', parameters: { s: 'x\0y' }, more: true }).toString(), '{"method":"a.b.C","parameters":{"s":"x\\u0000y"},"more":true}\0');
  });

  it('refuses values that do not serialize to an object', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => encodeReply({ parameters: cyclic as never }), TypeError);
    assert.throws(() => encodeReply({ parameters: { n: 1n } as never }), TypeError);
  });
});

describe('parseCall', () => {
  it('accepts a full call and normalizes null parameters and false flags', () => {
    assert.deepEqual(parseCall({ method: 'a.b.C', parameters: { x: 1 }, more: true, oneway: false }), { ok: true, value: { method: 'a.b.C', parameters: { x: 1 }, more: true } });
    assert.deepEqual(parseCall({ method: 'a.b.C', parameters: null }), { ok: true, value: { method: 'a.b.C' } });
  });

  it('tolerates vendor extension objects', () => {
    assert.deepEqual(parseCall({ method: 'a.b.C', 'com.example': { trace: 'x' } }), { ok: true, value: { method: 'a.b.C' } });
  });

  const bad: [unknown, string][] = [
    [[1], 'call is a JSON array, not an object'],
    ['x', 'call is a JSON string, not an object'],
    [null, 'call is a JSON null, not an object'],
    [{}, 'call has no "method"'],
    [{ method: 1 }, '"method" is a number, not a string'],
    [{ method: 'a.b.C', parameters: [] }, '"parameters" is a array, not an object'],
    [{ method: 'a.b.C', parameters: 'x' }, '"parameters" is a string, not an object'],
    [{ method: 'a.b.C', more: 'yes' }, '"more" is a string, not a boolean'],
    [{ method: 'a.b.C', oneway: 1 }, '"oneway" is a number, not a boolean'],
    [{ method: 'a.b.C', oneway: true, more: true }, 'call sets more than one of "oneway", "more", "upgrade"'],
    [{ method: 'a.b.C', upgrade: true, more: true }, 'call sets more than one of "oneway", "more", "upgrade"'],
    [{ method: 'a.b.C', id: 7 }, 'unknown key "id" in call'],
    [{ method: 'a.b.C', 'com.example': 7 }, 'unknown key "com.example" in call'],
  ];
  for (const [value, reason] of bad) {
    it(`refuses ${JSON.stringify(value)}`, () => {
      assert.deepEqual(parseCall(value as never), { ok: false, reason });
    });
  }
});

describe('parseReply', () => {
  it('accepts replies', () => {
    assert.deepEqual(parseReply({ parameters: { a: 1 }, continues: true }), { ok: true, value: { parameters: { a: 1 }, continues: true } });
    assert.deepEqual(parseReply({ error: 'a.b.E', parameters: null }), { ok: true, value: { error: 'a.b.E' } });
    assert.deepEqual(parseReply({}), { ok: true, value: {} });
  });

  const bad: [unknown, string][] = [
    [7, 'reply is a JSON number, not an object'],
    [{ parameters: 1 }, '"parameters" is a number, not an object'],
    [{ continues: 'no' }, '"continues" is a string, not a boolean'],
    [{ error: 3 }, '"error" is not a non-empty string'],
    [{ error: '' }, '"error" is not a non-empty string'],
    [{ error: 'a.b.E', continues: true }, 'error reply sets "continues"'],
    [{ parameters: {}, extra: true }, 'unknown key "extra" in reply'],
  ];
  for (const [value, reason] of bad) {
    it(`refuses ${JSON.stringify(value)}`, () => {
      assert.deepEqual(parseReply(value as never), { ok: false, reason });
    });
  }
});
