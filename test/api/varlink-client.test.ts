// The client against a scripted fake server written with plain node:net, so that the client is
// checked independently of our server: exact bytes it sends, and how it treats broken replies.

import { strict as assert } from 'node:assert';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { VarlinkClient, VarlinkError } from '../../src/api/varlink/index.js';
import { tempDir } from './varlink-helpers.js';

/**
 * Starts a server that hands each received NUL-terminated message (as text) to `onMessage`, which
 * answers by writing raw bytes to the socket.
 */
async function fakeServer(path: string, onMessage: (message: string, socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    let buffer = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nul: number;
      while ((nul = buffer.indexOf('\0')) !== -1) {
        const message = buffer.slice(0, nul);
        buffer = buffer.slice(nul + 1);
        onMessage(message, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

const isVarlinkError = (name: string, message?: string) => (err: unknown): boolean => {
  assert.ok(err instanceof VarlinkError, `expected a VarlinkError, got ${String(err)}`);
  assert.equal(err.name, name);
  if (message !== undefined) assert.equal(err.message, message);
  return true;
};

describe('VarlinkClient against a fake server', () => {
  it('sends exactly the expected bytes for call, more, and oneway', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const received: string[] = [];
    const server = await fakeServer(join(dir.dir, 's'), (m, socket) => {
      received.push(m);
      if (m.includes('"oneway"')) return;
      if (m.includes('"more"')) socket.write('{"parameters":{"n":1},"continues":true}\0{"parameters":{"n":2}}\0');
      else socket.write('{"parameters":{"ok":true}}\0');
    });
    t.after(() => server.close());
    const client = await VarlinkClient.connect(join(dir.dir, 's'));
    await client.oneway('a.b.C', { x: 1 });
    assert.deepEqual(await client.call('a.b.D'), { ok: true });
    const streamed: object[] = [];
    for await (const r of client.callMore('a.b.E', { s: 'h\u00e9' })) streamed.push(r);
    assert.deepEqual(streamed, [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(received, [
      '{"method":"a.b.C","parameters":{"x":1},"oneway":true}',
      '{"method":"a.b.D","parameters":{}}',
      '{"method":"a.b.E","parameters":{"s":"h\u00e9"},"more":true}',
    ]);
    client.destroy();
  });

  it('matches pipelined replies by order and maps error replies', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const sockets: Socket[] = [];
    const server = await fakeServer(join(dir.dir, 's'), (_m, socket) => {
      sockets.push(socket);
      // Answer only once all three calls have arrived, all in one write.
      if (sockets.length === 3) socket.write('{"parameters":{"i":1}}\0{"error":"a.b.Bad","parameters":{"why":"x"}}\0{"parameters":null}\0');
    });
    t.after(() => server.close());
    const client = await VarlinkClient.connect(join(dir.dir, 's'));
    const results = await Promise.allSettled([client.call('a.b.One'), client.call('a.b.Two'), client.call('a.b.Three')]);
    assert.deepEqual(results[0], { status: 'fulfilled', value: { i: 1 } });
    assert.equal(results[1].status, 'rejected');
    const err = (results[1] as PromiseRejectedResult).reason as VarlinkError;
    assert.ok(err instanceof VarlinkError);
    assert.deepEqual([err.name, err.parameters, err.message, String(err)], ['a.b.Bad', { why: 'x' }, '{"why":"x"}', 'a.b.Bad: {"why":"x"}']);
    assert.deepEqual(results[2], { status: 'fulfilled', value: {} });
    client.destroy();
  });

  const broken: [string, string][] = [
    ['{"parameters":{},"continues":true}\0', "protocol violation by the server: reply sets 'continues' for a call made without 'more'"],
    ['{"parameters":{}}\0{"parameters":{}}\0', 'protocol violation by the server: reply without a pending call'],
    ['{"error":"a.b.E","continues":true}\0', 'protocol violation by the server: error reply sets "continues"'],
    ['not json\0', 'protocol violation by the server: message is not valid JSON: '],
    ['[]\0', 'protocol violation by the server: reply is a JSON array, not an object'],
  ];
  for (const [reply, message] of broken) {
    it(`treats ${JSON.stringify(reply)} as a protocol error and closes`, async (t) => {
      const dir = tempDir();
      t.after(dir.cleanup);
      const server = await fakeServer(join(dir.dir, 's'), (_m, socket) => socket.write(reply));
      t.after(() => server.close());
      const client = await VarlinkClient.connect(join(dir.dir, 's'));
      const first = client.call('a.b.C');
      if (reply.startsWith('{"parameters":{}}\0{')) {
        // The first reply is fine; the stray second one breaks the connection.
        assert.deepEqual(await first, {});
        await new Promise<void>((resolve) => {
          const poll = (): void => (client.closed ? resolve() : void setImmediate(poll));
          poll();
        });
        await assert.rejects(client.call('a.b.D'), isVarlinkError('io.systemd.Protocol', message));
        return;
      }
      await assert.rejects(first, (err: unknown) => {
        assert.ok(err instanceof VarlinkError);
        assert.equal(err.name, 'io.systemd.Protocol');
        assert.ok(err.message.startsWith(message), err.message);
        return true;
      });
      assert.equal(client.closed, true);
    });
  }

  it('rejects pending calls with Disconnected when the server goes away', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const server = await fakeServer(join(dir.dir, 's'), (_m, socket) => socket.destroy());
    t.after(() => server.close());
    const client = await VarlinkClient.connect(join(dir.dir, 's'));
    await assert.rejects(client.call('a.b.C'), isVarlinkError('io.systemd.Disconnected'));
    const stream = client.callMore('a.b.D');
    await assert.rejects(stream.next(), isVarlinkError('io.systemd.Disconnected'));
  });

  it('fails to connect with the system error', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    await assert.rejects(VarlinkClient.connect(join(dir.dir, 'missing')), { code: 'ENOENT' });
    const reason = new Error('stop');
    await assert.rejects(VarlinkClient.connect(join(dir.dir, 'missing'), { signal: AbortSignal.abort(reason) }), (err) => err === reason);
  });

  it('closes the connection when a stream is aborted', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const server = await fakeServer(join(dir.dir, 's'), (_m, socket) => socket.write('{"parameters":{"n":0},"continues":true}\0'));
    t.after(() => server.close());
    const client = await VarlinkClient.connect(join(dir.dir, 's'));
    const controller = new AbortController();
    const stream = client.callMore('a.b.C', {}, { signal: controller.signal });
    assert.deepEqual(await stream.next(), { value: { n: 0 }, done: false });
    const reason = new Error('enough');
    const pending = stream.next();
    controller.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
    assert.equal(client.closed, true);
  });
});
