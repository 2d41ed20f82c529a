import { strict as assert } from 'node:assert';
import { fstatSync, openSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { VarlinkClient, VarlinkError, VarlinkServer, varlinkCall, type PeerIdentity } from '../../src/api/varlink/index.js';
import { TEST_IDL, makeTestServer, selfIdentity, tempDir, waitFor, type Observed } from './varlink-helpers.js';

const anonymous = (lines: string[]): string[] => lines.map((l) => l.replace(/connection \d+/, 'connection N'));

const rejectsWith = async (promise: Promise<unknown>, name: string, parameters: object): Promise<void> => {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof VarlinkError, `expected a VarlinkError, got ${String(err)}`);
    assert.equal(err.name, name);
    assert.deepEqual(err.parameters, parameters);
    return true;
  });
};

describe('VarlinkServer with VarlinkClient', () => {
  let dir: { dir: string; cleanup: () => void };
  let server: VarlinkServer;
  let observed: Observed;
  let logs: string[];
  let path: string;
  let client: VarlinkClient;

  before(async () => {
    dir = tempDir();
    path = join(dir.dir, 'run', 'org.example.test');
    ({ server, observed, logs } = makeTestServer());
    await server.listen({ path });
  });
  after(async () => {
    await server.close();
    dir.cleanup();
  });
  beforeEach(async () => {
    logs.length = 0;
    client = await VarlinkClient.connect(path);
  });
  afterEach(async () => {
    await client.close();
  });

  it('answers a call', async () => {
    assert.deepEqual(await client.call('org.example.test.Add', { a: 2, b: 40 }), { sum: 42 });
    assert.deepEqual(await client.call('org.example.test.Echo', { text: 'h\u00e9\u{1f600}', count: null }), { text: 'h\u00e9\u{1f600}', count: null });
  });

  it('answers GetInfo and GetInterfaceDescription', async () => {
    assert.deepEqual(await client.call('org.varlink.service.GetInfo'), {
      vendor: 'Example',
      product: 'test',
      version: '1.0',
      url: 'https://example.org',
      interfaces: ['org.varlink.service', 'org.example.test'],
    });
    assert.deepEqual(await client.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.example.test' }), { description: TEST_IDL });
    const service = await client.call<{ description: string }>('org.varlink.service.GetInterfaceDescription', { interface: 'org.varlink.service' });
    assert.match(service.description, /^# The interface every Varlink service offers/);
    assert.match(service.description, /\nerror ExpectedMore \(\)\n$/);
    await rejectsWith(client.call('org.varlink.service.GetInterfaceDescription', { interface: 'org.example.nope' }), 'org.varlink.service.InterfaceNotFound', { interface: 'org.example.nope' });
  });

  it('replies the protocol errors for unknown interfaces, methods, and bad parameters', async () => {
    await rejectsWith(client.call('org.example.nope.Foo'), 'org.varlink.service.InterfaceNotFound', { interface: 'org.example.nope' });
    await rejectsWith(client.call('org.example.test.Nope'), 'org.varlink.service.MethodNotFound', { method: 'org.example.test.Nope' });
    await rejectsWith(client.call('NoDots'), 'org.varlink.service.MethodNotFound', { method: 'NoDots' });
    await rejectsWith(client.call('org.example.test.Unimplemented'), 'org.varlink.service.MethodNotImplemented', { method: 'org.example.test.Unimplemented' });
    await rejectsWith(client.call('org.example.test.Add', { a: 1 }), 'org.varlink.service.InvalidParameter', { parameter: 'b' });
    await rejectsWith(client.call('org.example.test.Add', { a: 1, b: 'two' }), 'org.varlink.service.InvalidParameter', { parameter: 'b' });
    await rejectsWith(client.call('org.example.test.Add', { a: 1, b: 2, c: 3 }), 'org.varlink.service.InvalidParameter', { parameter: 'c' });
    await rejectsWith(client.call('org.example.test.Lookup', { pid: { pid: 1, pidfdId: 'x' } }), 'org.varlink.service.InvalidParameter', { parameter: 'pid' });
    await rejectsWith(client.call('org.example.test.Lookup', { mode: 'medium' }), 'org.varlink.service.InvalidParameter', { parameter: 'mode' });
    await rejectsWith(client.call('org.example.test.Lookup', { options: { verbose: true, depth: 1, colour: 'red' } }), 'org.varlink.service.InvalidParameter', { parameter: 'options' });
    assert.deepEqual(anonymous(logs), [
      'debug: connection N: org.example.nope.Foo: interface not found',
      'debug: connection N: org.example.test.Nope: method not found',
      'debug: connection N: NoDots: not a qualified method name',
      'debug: connection N: org.example.test.Unimplemented: method not implemented',
      'debug: connection N: org.example.test.Add: invalid parameters: b: required, but missing',
      'debug: connection N: org.example.test.Add: invalid parameters: b: expected int, got string "two"',
      'debug: connection N: org.example.test.Add: invalid parameters: c: no such field',
      'debug: connection N: org.example.test.Lookup: invalid parameters: pid.pidfdId: expected int, got string "x"',
      'debug: connection N: org.example.test.Lookup: invalid parameters: mode: "medium" is not one of (fast, slow)',
      'debug: connection N: org.example.test.Lookup: invalid parameters: options.colour: no such field',
    ]);
  });

  it('hands the handler ints that arrived as strings as numbers, and keeps the connection usable after errors', async () => {
    assert.deepEqual(await client.call('org.example.test.Lookup', { pid: { pid: '4242', pidfdId: 7, bootId: 'b' }, names: ['a'], options: { verbose: false, depth: '3' } }), {
      pid: { pid: 4242, pidfdId: 7, bootId: 'b' },
      names: ['a'],
      depth: 3,
    });
  });

  it('replies a thrown VarlinkError with its name and parameters', async () => {
    await rejectsWith(client.call('org.example.test.Fail', { kind: 'varlink' }), 'org.example.test.Failed', { reason: 'asked' });
    assert.deepEqual(anonymous(logs), ['debug: connection N: org.example.test.Fail: replied org.example.test.Failed']);
  });

  it('turns other exceptions into io.systemd.System, logs them once, and keeps serving', async () => {
    await rejectsWith(client.call('org.example.test.Fail', { kind: 'system' }), 'io.systemd.System', { origin: 'linux', errnoName: 'ENOENT', errno: 2 });
    await rejectsWith(client.call('org.example.test.Fail', { kind: 'bug' }), 'io.systemd.System', { origin: 'linux', errnoName: 'EIO', errno: 5 });
    await rejectsWith(client.call('org.example.test.Fail', { kind: 'array' }), 'io.systemd.System', { origin: 'linux', errnoName: 'EIO', errno: 5 });
    await rejectsWith(client.call('org.example.test.Fail', { kind: 'bigint' }), 'io.systemd.System', { origin: 'linux', errnoName: 'EIO', errno: 5 });
    assert.equal(logs.length, 4);
    assert.match(logs[0]!, /^error: connection \d+: org\.example\.test\.Fail failed: Error: ENOENT: no such file or directory/);
    assert.match(logs[1]!, /^error: connection \d+: org\.example\.test\.Fail failed: Error: boom$/);
    assert.match(logs[2]!, /^error: connection \d+: org\.example\.test\.Fail returned a array, not an object$/);
    assert.match(logs[3]!, /^error: connection \d+: reply to org\.example\.test\.Fail cannot be serialized: TypeError: /);
    assert.deepEqual(await client.call('org.example.test.Add', { a: 1, b: 1 }), { sum: 2 });
  });

  it('streams replies to a more call, and a streaming method called without more answers once', async () => {
    const seen: object[] = [];
    for await (const r of client.callMore('org.example.test.Count', { n: 4 })) seen.push(r);
    assert.deepEqual(seen, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
    assert.deepEqual(await client.call('org.example.test.Count', { n: 1 }), { i: 0 });
    // notify() on a call without 'more' is a handler bug, reported as such.
    await rejectsWith(client.call('org.example.test.Count', { n: 2 }), 'io.systemd.System', { origin: 'linux', errnoName: 'EIO', errno: 5 });
    assert.match(logs.at(-1)!, /Count failed: Error: org\.example\.test\.Count: notify\(\) needs a call made with 'more'$/);
    const single: object[] = [];
    for await (const r of client.callMore('org.example.test.Add', { a: 1, b: 2 })) single.push(r);
    assert.deepEqual(single, [{ sum: 3 }]);
  });

  it("replies ExpectedMore to a method that requires 'more'", async () => {
    await rejectsWith(client.call('org.example.test.Watch'), 'org.varlink.service.ExpectedMore', {});
  });

  it('ends a stream with the error the server replies', async () => {
    const it = client.callMore('org.example.test.Count', { n: 'x' });
    await rejectsWith(it.next(), 'org.varlink.service.InvalidParameter', { parameter: 'n' });
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    assert.deepEqual(await client.call('org.example.test.Add', { a: 1, b: 1 }), { sum: 2 });
  });

  it('cancels the handler when the client leaves a stream early', async () => {
    const before = observed.cancelled.length;
    for await (const r of client.callMore('org.example.test.Watch')) {
      assert.deepEqual(r, { tick: 0 });
      break;
    }
    assert.equal(client.closed, true);
    await waitFor(() => observed.cancelled.length > before, 'the Watch handler to see the abort');
    assert.match(observed.cancelled.at(-1)!, /^Watch on connection \d+$/);
  });

  it('runs oneway calls in order without replying', async () => {
    observed.records.length = 0;
    await client.oneway('org.example.test.Record', { value: 'one' });
    await client.oneway('org.example.test.Record', { value: 'two' });
    // A oneway call to a missing method is dropped silently too.
    await client.oneway('org.example.test.Nope');
    assert.deepEqual(await client.call('org.example.test.Echo', { text: 'after' }), { text: 'after' });
    assert.deepEqual(observed.records, ['one', 'two']);
    assert.equal(client.pendingCount, 0);
  });

  it('answers pipelined calls in order', async () => {
    const calls = Array.from({ length: 60 }, (_, id) => (id % 3 === 2 ? client.call('org.example.test.Nope', { id }).catch((e: VarlinkError) => e.name) : client.call('org.example.test.Delay', { id })));
    const results = await Promise.all(calls);
    assert.deepEqual(
      results,
      Array.from({ length: 60 }, (_, id) => (id % 3 === 2 ? 'org.varlink.service.MethodNotFound' : { id })),
    );
  });

  it('gives up on a call when its signal aborts, drops the late reply, and stays usable', async () => {
    const controller = new AbortController();
    const held = client.call('org.example.test.Hold', { id: 1 }, { signal: controller.signal });
    const next = client.call('org.example.test.Echo', { text: 'next' });
    await waitFor(() => observed.holds.has(1), 'Hold to start');
    const reason = new Error('gave up');
    controller.abort(reason);
    await assert.rejects(held, (err) => err === reason);
    observed.holds.get(1)!();
    observed.holds.delete(1);
    assert.deepEqual(await next, { text: 'next' });
    assert.deepEqual(await client.call('org.example.test.Add', { a: 3, b: 4 }), { sum: 7 });
  });

  it('rejects a call with an already aborted signal without sending it', async () => {
    const reason = new Error('already');
    await assert.rejects(client.call('org.example.test.Add', { a: 1, b: 1 }, { signal: AbortSignal.abort(reason) }), (err) => err === reason);
    assert.equal(client.pendingCount, 0);
  });

  it('makes one-shot calls', async () => {
    assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 20, b: 22 }), { sum: 42 });
    await rejectsWith(varlinkCall(path, 'org.example.test.Fail', { kind: 'varlink' }), 'org.example.test.Failed', { reason: 'asked' });
  });

  it('rejects pending and later calls with Disconnected once the connection is gone', async () => {
    const held = client.call('org.example.test.Hold', { id: 2 });
    await waitFor(() => observed.holds.has(2), 'Hold to start');
    client.destroy();
    await rejectsWith(held, 'io.systemd.Disconnected', {});
    await rejectsWith(client.call('org.example.test.Add', { a: 1, b: 1 }), 'io.systemd.Disconnected', {});
    await waitFor(() => observed.cancelled.includes('Hold 2'), 'Hold 2 to be cancelled');
    observed.holds.get(2)!();
  });

  it('answers calls already sent when the client closes gracefully', async () => {
    const a = client.call('org.example.test.Delay', { id: 3 });
    const b = client.call('org.example.test.Echo', { text: 'last' });
    const closed = client.close();
    assert.deepEqual(await a, { id: 3 });
    assert.deepEqual(await b, { text: 'last' });
    await closed;
  });
});

describe('peer identity', () => {
  it('passes the accepted socket fd to identifyPeer and the result to handlers', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const fds: string[] = [];
    const { server } = makeTestServer({
      identifyPeer: (fd) => {
        fds.push(readlinkSync(`/proc/self/fd/${fd}`));
        return selfIdentity();
      },
    });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    try {
      const who = await varlinkCall(path, 'org.example.test.Whoami');
      assert.deepEqual(who, { uid: process.getuid!(), gid: process.getgid!(), pid: process.pid });
      assert.equal(fds.length, 1);
      assert.match(fds[0]!, /^socket:\[\d+\]$/);
    } finally {
      await server.close();
    }
  });

  it('reports fixed identities, closes a returned pidfd with the connection, and limits connections per uid', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const pidfds: number[] = [];
    const { server, logs } = makeTestServer({
      maxConnectionsPerUid: 2,
      identifyPeer: (): PeerIdentity => {
        const pidfd = openSync('/dev/null', 'r');
        pidfds.push(pidfd);
        return { uid: 4242, gid: 4343, pid: 99, pidfd };
      },
    });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    try {
      const a = await VarlinkClient.connect(path);
      const b = await VarlinkClient.connect(path);
      assert.deepEqual(await a.call('org.example.test.Whoami'), { uid: 4242, gid: 4343, pid: 99 });
      assert.deepEqual(await b.call('org.example.test.Whoami'), { uid: 4242, gid: 4343, pid: 99 });
      const c = await VarlinkClient.connect(path);
      await rejectsWith(c.call('org.example.test.Whoami'), 'io.systemd.Disconnected', {});
      assert.equal(logs.filter((l) => l.includes('refused, uid 4242 already has 2 connections')).length, 1);
      // The refused connection's pidfd is released at once, the others when their connections end.
      await waitFor(() => pidfds.filter((fd) => isClosed(fd)).length === 1, 'the refused pidfd to close');
      await a.close();
      await waitFor(() => isClosed(pidfds[0]!), "a's pidfd to close");
      const d = await VarlinkClient.connect(path);
      assert.deepEqual(await d.call('org.example.test.Whoami'), { uid: 4242, gid: 4343, pid: 99 });
      await b.close();
      await d.close();
      await waitFor(() => server.connectionCount === 0, 'all connections to go');
      assert.deepEqual(pidfds.filter((fd) => !isClosed(fd)), []);
    } finally {
      await server.close();
    }
  });

  it('treats a throwing identifyPeer as an unknown peer', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server, logs } = makeTestServer({
      identifyPeer: () => {
        throw new Error('no SO_PEERPIDFD');
      },
    });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    try {
      assert.deepEqual(await varlinkCall(path, 'org.example.test.Whoami'), { uid: null, gid: null, pid: null });
      assert.equal(logs.length, 1);
      assert.match(logs[0]!, /^warning: connection \d+: identifying the peer failed, peer unknown: Error: no SO_PEERPIDFD$/);
    } finally {
      await server.close();
    }
  });
});

function isClosed(fd: number): boolean {
  try {
    fstatSync(fd);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EBADF';
  }
}

describe('VarlinkServer.close', () => {
  it('ends streams, lets running calls reply, removes the socket, and resolves when all connections are gone', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server, observed } = makeTestServer();
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close({ graceMs: 0 }));
    const streamer = await VarlinkClient.connect(path);
    const holder = await VarlinkClient.connect(path);
    const idle = await VarlinkClient.connect(path);
    const stream = streamer.callMore('org.example.test.Watch');
    assert.deepEqual(await stream.next(), { value: { tick: 0 }, done: false });
    const held = holder.call('org.example.test.Hold', { id: 10 });
    const queued = holder.call('org.example.test.Echo', { text: 'queued' }).catch((err: unknown) => err);
    await waitFor(() => observed.holds.has(10), 'Hold to start');
    assert.equal(server.connectionCount, 3);

    const closing = server.close();
    await rejectsWith(stream.next(), 'io.systemd.Disconnected', {});
    await waitFor(() => observed.cancelled.includes('Hold 10'), 'Hold 10 to see the abort');
    observed.holds.get(10)!();
    assert.deepEqual(await held, { id: 10 });
    const queuedError = await queued;
    assert.ok(queuedError instanceof VarlinkError);
    assert.equal(queuedError.name, 'io.systemd.Disconnected');
    await closing;
    assert.equal(server.connectionCount, 0);
    await waitFor(() => idle.closed, 'the idle client to see the close');
    await assert.rejects(VarlinkClient.connect(path), { code: 'ENOENT' });
    assert.equal(server.close(), server.close());
  });

  it('destroys connections whose handlers ignore the abort after the grace period', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const server = new VarlinkServer({ log: () => {} });
    server.addInterface({
      idl: 'interface org.example.stuck\nmethod Stuck() -> ()\n',
      methods: { Stuck: () => new Promise(() => {}) },
    });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close({ graceMs: 0 }));
    const client = await VarlinkClient.connect(path);
    const call = client.call('org.example.stuck.Stuck').catch((err: unknown) => err);
    await waitFor(() => server.connectionCount === 1, 'the connection');
    await new Promise((r) => setImmediate(r));
    await server.close({ graceMs: 50 });
    const err = await call;
    assert.ok(err instanceof VarlinkError);
    assert.equal(err.name, 'io.systemd.Disconnected');
    assert.equal(server.connectionCount, 0);
  });
});

describe('addInterface', () => {
  it('refuses handlers for undeclared methods and duplicate interfaces', () => {
    const server = new VarlinkServer();
    assert.throws(() => server.addInterface({ idl: 'interface a.b\nmethod M() -> ()', methods: { N: () => ({}) } }), { message: 'interface a.b declares no method N' });
    server.addInterface({ idl: 'interface a.b\nmethod M() -> ()', methods: {} });
    assert.throws(() => server.addInterface({ idl: 'interface a.b\nmethod M() -> ()', methods: {} }), { message: 'interface a.b is already served' });
    assert.throws(() => server.addInterface({ idl: 'interface org.varlink.service\nmethod M() -> ()', methods: {} }), { message: 'interface org.varlink.service is already served' });
    assert.throws(() => server.addInterface({ idl: 'interface a.c\nmethod M(x int) -> ()', methods: {} }), { name: 'VarlinkIdlError' });
    assert.deepEqual(server.interfaces, ['org.varlink.service', 'a.b']);
  });
});
