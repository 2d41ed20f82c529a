// Bad and hostile clients: the server must close what it cannot serve, log it, never crash, keep
// answering well-behaved clients, and not leak connections.

import { strict as assert } from 'node:assert';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_MAX_MESSAGE_SIZE, VarlinkClient, VarlinkError, VarlinkServer, varlinkCall } from '../../src/api/varlink/index.js';
import { makeTestServer, rawExchange, tempDir, waitFor, type Observed } from './varlink-helpers.js';

describe('robustness', () => {
  let dir: { dir: string; cleanup: () => void };
  let server: VarlinkServer;
  let observed: Observed;
  let logs: string[];
  let path: string;

  before(async () => {
    dir = tempDir();
    path = join(dir.dir, 'org.example.test');
    ({ server, observed, logs } = makeTestServer());
    await server.listen({ path });
  });
  after(async () => {
    await server.close();
    dir.cleanup();
  });
  beforeEach(() => {
    logs.length = 0;
  });

  /** The server still answers a normal client, and holds no connection but that one's. */
  async function assertHealthy(): Promise<void> {
    assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 40, b: 2 }), { sum: 42 });
    await waitFor(() => server.connectionCount === 0, 'all connections to close');
  }

  it('accepts a message of exactly the default maximum size', async () => {
    const head = '{"method":"org.example.test.Echo","parameters":{"text":"';
    const tail = '"}}';
    const text = 'a'.repeat(DEFAULT_MAX_MESSAGE_SIZE - head.length - tail.length);
    const r = await rawExchange(path, [head + text + tail + '\0'], 1);
    assert.equal(r.messages.length, 1);
    assert.equal(r.messages[0], `{"parameters":{"text":"${text}"}}`);
    assert.deepEqual(logs, []);
    await assertHealthy();
  });

  it('closes a connection that sends more than the maximum without a NUL, and logs one line', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const r = await rawExchange(path, Array.from({ length: 17 }, () => chunk), 1);
    assert.deepEqual(r, { messages: [], rest: '', closed: true });
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /^warning: connection \d+: protocol violation, closing: message exceeds the limit of 16777216 bytes \(\d+ bytes without a NUL so far\)$/);
    await assertHealthy();
  });

  it('answers calls that came before an oversize message, then closes', async (t) => {
    const small = makeTestServer({ maxMessageSize: 1000 });
    const smallPath = join(dir.dir, 'small');
    await small.server.listen({ path: smallPath });
    t.after(() => small.server.close());
    const r = await rawExchange(smallPath, ['{"method":"org.example.test.Add","parameters":{"a":1,"b":2}}\0' + 'x'.repeat(1001)], 2);
    assert.deepEqual(r, { messages: ['{"parameters":{"sum":3}}'], rest: '', closed: true });
    assert.equal(small.logs.length, 1);
    assert.match(small.logs[0]!, /protocol violation, closing: message exceeds the limit of 1000 bytes \(1001 bytes without a NUL so far\)$/);
    // A reply over the limit is replaced by an error, rather than sent for the client to choke on.
    await assert.rejects(varlinkCall(smallPath, 'org.example.test.Repeat', { text: 'ab', times: 600 }), (err: unknown) => {
      assert.ok(err instanceof VarlinkError);
      assert.deepEqual([err.name, err.parameters], ['io.systemd.System', { origin: 'linux', errnoName: 'EMSGSIZE', errno: 90 }]);
      return true;
    });
    assert.match(small.logs.at(-1)!, /^error: connection \d+: reply to org\.example\.test\.Repeat is 1226 bytes, over the 1000 byte limit$/);
  });

  it('refuses an oversize intermediate reply to the handler instead of breaking the stream', async (t) => {
    const logs: string[] = [];
    const small = new VarlinkServer({ maxMessageSize: 100, log: (level, message) => logs.push(`${level}: ${message}`) });
    small.addInterface({
      idl: "interface org.example.big\n# [Supports 'more' flag]\nmethod Big(size: int) -> (text: string)\n",
      methods: {
        Big: async (p: { size: number }, call) => {
          try {
            await call.notify({ text: 'x'.repeat(p.size) });
          } catch (err) {
            const e = err as VarlinkError;
            return { text: `${e.name} ${String(e.parameters.errnoName)}` };
          }
          return { text: 'sent' };
        },
      },
    });
    const bigPath = join(dir.dir, 'big');
    await small.listen({ path: bigPath });
    t.after(() => small.close());
    const client = await VarlinkClient.connect(bigPath);
    const replies: object[] = [];
    for await (const r of client.callMore('org.example.big.Big', { size: 10 })) replies.push(r);
    for await (const r of client.callMore('org.example.big.Big', { size: 100 })) replies.push(r);
    assert.deepEqual(replies, [
      { text: 'xxxxxxxxxx' },
      { text: 'sent' },
      { text: 'io.systemd.System EMSGSIZE' },
    ]);
    assert.deepEqual(logs.map((l) => l.replace(/connection \d+/, 'connection N')), ['error: connection N: reply to org.example.big.Big is 143 bytes, over the 100 byte limit']);
    await client.close();
  });

  it('closes a connection that ends in the middle of a message', async () => {
    const r = await new Promise<string>((resolve) => {
      const s = createConnection({ path });
      s.on('connect', () => s.end('{"method":"org.example.test.Add"'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    assert.equal(r, '');
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /protocol violation, closing: connection ended inside a message \(32 bytes without a NUL\)$/);
    await assertHealthy();
  });

  it('refuses a reply larger than the client maximum as a protocol error', async () => {
    const client = await VarlinkClient.connect(path, { maxMessageSize: 100 });
    await assert.rejects(client.call('org.example.test.Repeat', { text: 'x', times: 200 }), (err: unknown) => {
      assert.ok(err instanceof VarlinkError);
      assert.equal(err.name, 'io.systemd.Protocol');
      assert.equal(err.message, 'protocol violation by the server: message of 226 bytes exceeds the limit of 100 bytes');
      return true;
    });
    assert.equal(client.closed, true);
    await assertHealthy();
  });

  it('cancels a stream whose raw client disconnects after the first reply', async () => {
    const before = observed.cancelled.length;
    const s: Socket = createConnection({ path });
    const first = await new Promise<string>((resolve) => {
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\0')) resolve(buf.slice(0, buf.indexOf('\0')));
      });
      s.on('connect', () => s.write('{"method":"org.example.test.Watch","more":true}\0'));
    });
    assert.equal(first, '{"parameters":{"tick":0},"continues":true}');
    s.destroy();
    await waitFor(() => observed.cancelled.length === before + 1, 'the stream handler to be cancelled');
    await assertHealthy();
  });

  it('answers thousands of pipelined calls in one write, in order', async () => {
    const n = 5000;
    const payload = Array.from({ length: n }, (_, i) => `{"method":"org.example.test.Add","parameters":{"a":${i},"b":1}}\0`).join('');
    const r = await rawExchange(path, [payload], n);
    assert.equal(r.messages.length, n);
    assert.deepEqual(r.messages, Array.from({ length: n }, (_, i) => `{"parameters":{"sum":${i + 1}}}`));
    await assertHealthy();
  });

  it('streams many replies to a slow consumer without losing or reordering any', async () => {
    const client = await VarlinkClient.connect(path);
    let expected = 0;
    for await (const r of client.callMore<{ i: number }>('org.example.test.Count', { n: 2000 })) {
      assert.equal(r.i, expected++);
      if (expected % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(expected, 2000);
    assert.deepEqual(await client.call('org.example.test.Add', { a: 1, b: 1 }), { sum: 2 });
    await client.close();
    await assertHealthy();
  });

  it('survives thousands of connections opened and closed in every state', async () => {
    const total = 2400;
    const streamsBefore = observed.cancelled.length;
    const violationsBefore = server.stats.protocolViolations;
    let answered = 0;
    const one = (i: number): Promise<void> =>
      new Promise((resolve) => {
        const s = createConnection({ path });
        const done = (): void => {
          s.destroy();
          resolve();
        };
        s.on('error', done);
        s.on('close', done);
        s.on('data', (d: Buffer) => {
          if (i % 6 === 2 && d.toString() === '{"parameters":{"sum":3}}\0') {
            answered++;
            s.end();
          }
          if (i % 6 === 3) s.destroy();
        });
        s.on('connect', () => {
          switch (i % 6) {
            case 0: // connect and leave
              s.destroy();
              break;
            case 1: // half a message, then leave
              s.write('{"method":"org.exa');
              setImmediate(() => s.destroy());
              break;
            case 2: // a proper call
              s.write('{"method":"org.example.test.Add","parameters":{"a":1,"b":2}}\0');
              break;
            case 3: // start a stream, leave after the first reply
              s.write('{"method":"org.example.test.Watch","more":true}\0');
              break;
            case 4: // garbage
              s.write('\u0001\u0002garbage\0');
              s.on('end', () => s.destroy());
              break;
            default: // send a call and close at once without reading
              s.end('{"method":"org.example.test.Echo","parameters":{"text":"gone"}}\0');
          }
        });
      });
    for (let start = 0; start < total; start += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, k) => one(start + k)));
    }
    assert.equal(answered, total / 6);
    await waitFor(() => server.connectionCount === 0, 'every connection to be released', 20000);
    await waitFor(() => observed.cancelled.length === streamsBefore + total / 6, 'every stream handler to be cancelled');
    assert.equal(observed.watchStarted >= total / 6, true);
    assert.equal(logs.filter((l) => l.includes('protocol violation, closing: message is not valid UTF-8') || l.includes('message is not valid JSON')).length, total / 6);
    // Garbage, and half a message then gone: each is a violation, and counted.
    assert.equal(server.stats.protocolViolations - violationsBefore, total / 3);
    assert.equal(logs.filter((l) => l.startsWith('error: ')).length, 0);
    await assertHealthy();
  });
});
