/**
 * What a hostile client can cost the Varlink server, on real sockets: connection floods from other
 * users leave root's and the owner's calls answered, oversized messages close only their own
 * connection, replies nobody reads stop the calls that make them, idle connections go away, and the
 * daemon refuses PID 1, itself, and unit names that could never be found again.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VarlinkClient, type PeerIdentity } from '../../src/api/varlink/index.js';
import { native } from '../../src/native.js';
import { Pidfd } from '../../src/pidfd/index.js';
import { HOLDFAST_BIN } from '../helpers/cli.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { sleeper } from '../helpers/processes.js';
import { makeTestServer, rawExchange, tempDir, waitFor } from './varlink-helpers.js';

const asRoot = process.getuid?.() === 0;

/** The real caller, from the socket (SO_PEERCRED), as the daemon reads it. */
function realPeer(fd: number): PeerIdentity {
  return native.peerCredentials(fd);
}

/**
 * A process running as `uid` that opens `count` connections to `path` and holds them until its
 * stdin closes. Resolves once every connection attempt has been answered by the server (accepted
 * and kept, or closed).
 */
function flood(path: string, uid: number, count: number): { child: ChildProcess; settled: Promise<void> } {
  const script = `
    const net = require('node:net');
    let settled = 0;
    const held = [];
    const one = () => new Promise((resolve) => {
      const s = net.createConnection({ path: ${JSON.stringify(path)} });
      held.push(s);
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('connect', () => setTimeout(resolve, 50));
    });
    (async () => {
      for (let i = 0; i < ${count}; i++) await one();
      process.stdout.write('settled\\n');
    })();
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  `;
  const child = spawn(process.execPath, ['-e', script], { uid, gid: uid, stdio: ['pipe', 'pipe', 'inherit'] });
  const settled = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      if (out.includes('settled')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`flood as uid ${uid} exited with ${code} before it settled`)));
  });
  return { child, settled };
}

describe('Varlink limits', () => {
  it('a connection flood from other users beyond every cap still leaves root\'s calls answered', { skip: asRoot ? false : 'needs root to run clients as other uids' }, async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    // Other users must reach the socket, as on a system daemon's world-connectable socket.
    chmodSync(dir.dir, 0o711);
    const { server, logs } = makeTestServer({ identifyPeer: realPeer, maxConnections: 20, maxConnectionsPerUid: 15, reservedConnections: 4 });
    const path = join(dir.dir, 's');
    await server.listen({ path, mode: 0o666 });
    const floods: ChildProcess[] = [];
    t.after(async () => {
      for (const child of floods) child.stdin!.end();
      await server.close({ graceMs: 100 });
    });
    const first = flood(path, 65534, 30);
    floods.push(first.child);
    await first.settled;
    await waitFor(() => server.stats.connections === 15, 'the first user to hold its 15');
    const second = flood(path, 65533, 30);
    floods.push(second.child);
    await second.settled;
    await waitFor(() => server.stats.connections === 20, 'the second user to fill the rest');
    assert.equal(server.stats.connections, 20, 'no user got beyond the caps');
    assert.equal(server.stats.refusedConnections, 40, '15 refused by the per-uid cap, 25 by the total');
    // Refusals are logged, but a flood does not write a line per connection.
    const refusalLines = logs.filter((l) => l.includes('refused')).length;
    assert.ok(refusalLines > 0 && refusalLines <= 2 * 6, `${refusalLines} refusal lines`);

    // Root (the owner here) gets the reserve: every call answered while the strangers hold on.
    const clients = await Promise.all([1, 2, 3].map(() => VarlinkClient.connect(path)));
    for (const [i, client] of clients.entries()) assert.deepEqual(await client.call('org.example.test.Add', { a: i, b: 1 }), { sum: i + 1 });
    for (const client of clients) await client.close();
  });

  it('an oversized message closes its own connection with a logged reason; other clients go on', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server, logs } = makeTestServer({ maxMessageSize: 4096 });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close());
    const bystander = await VarlinkClient.connect(path);
    const big = `{"method":"org.example.test.Echo","parameters":{"text":"${'x'.repeat(8192)}"}}\0`;
    const result = await rawExchange(path, [big], 1);
    assert.equal(result.closed, true, 'the sender was disconnected');
    assert.deepEqual(result.messages, [], 'and got no reply');
    assert.ok(logs.some((l) => /protocol violation, closing: message .*exceeds the limit of 4096 bytes/.test(l)), logs.join('\n'));
    assert.deepEqual(await bystander.call('org.example.test.Add', { a: 2, b: 3 }), { sum: 5 });
    await bystander.close();
  });

  it('partial messages held by many connections stay within the input budget; small calls still get through', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const budget = 2 * 1024 * 1024;
    const { server, logs } = makeTestServer({ maxMessageSize: 1024 * 1024, maxInputBytes: budget, reservedInputBytes: 0, privilegedUids: [] });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close({ graceMs: 100 }));
    // Ten connections each send 900 KiB of one message and never its NUL: 9 MiB if all were kept.
    const holders: Socket[] = [];
    const closed: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      const socket = createConnection({ path });
      socket.on('error', () => {});
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
      socket.write(`{"method":"org.example.test.Echo","parameters":{"text":"${'y'.repeat(900 * 1024)}`);
      holders.push(socket);
    }
    let most = 0;
    await waitFor(() => {
      most = Math.max(most, server.stats.inputBytes);
      return logs.some((l) => l.includes("the server's input budget is spent"));
    }, 'a connection closed for the budget');
    // Let every byte sent arrive: what is kept then is all the server will ever hold.
    await waitFor(() => {
      most = Math.max(most, server.stats.inputBytes);
      return server.stats.pausedConnections === 0 && holders.every((s) => s.writableLength === 0);
    }, 'everything sent to be read');
    most = Math.max(most, server.stats.inputBytes);
    assert.ok(most <= budget + 64 * 1024, `held ${most} bytes of input, budget ${budget}`);
    assert.ok(server.stats.connections < 10, 'some holders were closed');
    // A small call still gets through while the rest hold their bytes.
    const client = await VarlinkClient.connect(path);
    assert.deepEqual(await client.call('org.example.test.Add', { a: 4, b: 5 }), { sum: 9 });
    await client.close();
    for (const socket of holders) socket.destroy();
    await Promise.all(closed);
    await waitFor(() => server.stats.connections === 0, 'every connection to go');
    assert.equal(server.stats.inputBytes, 0, 'every byte given back');
  });

  it('pipelined calls whose replies are not read stop being read: what the server holds stays bounded', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const highWater = 64 * 1024;
    const replySize = 10_000;
    const { server } = makeTestServer({ outputHighWater: highWater });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close({ graceMs: 100 }));
    const calls = 5000;
    const call = Buffer.from(`{"method":"org.example.test.Repeat","parameters":{"text":"x","times":${replySize}}}\0`);
    const socket: Socket = createConnection({ path });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause();
    // Written in one go and never read back: 50 MB of replies if the server made them all.
    socket.write(Buffer.concat(Array.from({ length: calls }, () => call)));
    await waitFor(() => server.stats.pausedConnections === 1, 'the server to stop reading the connection');
    let most = { inputBytes: 0, outputBytes: 0 };
    for (let i = 0; i < 50; i++) {
      const { inputBytes, outputBytes } = server.stats;
      most = { inputBytes: Math.max(most.inputBytes, inputBytes), outputBytes: Math.max(most.outputBytes, outputBytes) };
      assert.equal(server.stats.pausedConnections, 1, 'reading stays paused while nobody reads the replies');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // At most the queue (64 calls) plus one read in, the high-water mark plus one reply out.
    assert.ok(most.inputBytes <= 64 * call.length + 64 * 1024, `input held ${most.inputBytes}`);
    assert.ok(most.outputBytes <= highWater + replySize + 64, `output held ${most.outputBytes}`);

    // Reading again resumes everything: every reply arrives, in order, none lost.
    let replies = 0;
    let pending = Buffer.alloc(0);
    const expected = `{"parameters":{"text":"${'x'.repeat(replySize)}"}}`;
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        let nul: number;
        while ((nul = pending.indexOf(0)) !== -1) {
          if (pending.subarray(0, nul).toString() !== expected) reject(new Error(`reply ${replies} is wrong`));
          replies++;
          pending = pending.subarray(nul + 1);
        }
        if (replies === calls) resolve();
      });
      socket.on('close', () => reject(new Error(`closed after ${replies} replies`)));
      socket.resume();
    });
    assert.equal(replies, calls);
    socket.destroy();
  });

  it('closes connections idle for the configured time, not those with a call in progress', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server, logs, observed } = makeTestServer({ idleTimeoutMs: 150 });
    const path = join(dir.dir, 's');
    await server.listen({ path });
    t.after(() => server.close({ graceMs: 100 }));
    // A subscription (a running 'more' call) is not idle however long it runs.
    const watcher = await VarlinkClient.connect(path);
    const stream = watcher.callMore<{ tick: number }>('org.example.test.Watch');
    const ticks = stream[Symbol.asyncIterator]();
    assert.deepEqual((await ticks.next()).value, { tick: 0 });
    // One that made a call and then says nothing, and one holding half a message.
    const quiet = createConnection({ path });
    quiet.on('error', () => {});
    const quietClosed = new Promise<void>((resolve) => quiet.once('close', () => resolve()));
    const answer = await new Promise<string>((resolve) => {
      quiet.once('data', (chunk: Buffer) => resolve(chunk.toString()));
      quiet.write('{"method":"org.example.test.Add","parameters":{"a":1,"b":1}}\0');
    });
    assert.equal(answer, '{"parameters":{"sum":2}}\0');
    const partial = createConnection({ path });
    partial.on('error', () => {});
    partial.write('{"method":"org.exam');
    const partialClosed = new Promise<void>((resolve) => partial.once('close', () => resolve()));
    await quietClosed;
    await partialClosed;
    assert.ok(logs.some((l) => /no call for 150 ms with 19 bytes of an unfinished message, closing/.test(l)), logs.join('\n'));
    await waitFor(() => server.stats.connections === 1, 'the server to let go of both');
    assert.deepEqual(observed.cancelled, [], 'the subscriber, older than both, is still connected and its call running');
    await ticks.return?.();
    await watcher.close();
  });
});

describe('Manager API refusals', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({});
  });
  after(async () => {
    await d.stop();
  });

  it('CreateScope refuses PID 1 and the daemon itself', async () => {
    await assert.rejects(d.call('CreateScope', { name: 'init', processes: [{ pid: 1 }] }), (error: Error & { parameters?: object }) => {
      assert.equal(error.name, 'io.holdfast.Manager.ProcessRefused');
      assert.deepEqual(error.parameters, { pid: 1, reason: 'PID 1 (init) cannot be put in a unit' });
      return true;
    });
    const daemonPid = d.process.pid!;
    await assert.rejects(d.call('CreateScope', { name: 'itself', processes: [{ pid: daemonPid }] }), (error: Error & { parameters?: object }) => {
      assert.equal(error.name, 'io.holdfast.Manager.ProcessRefused');
      assert.deepEqual(error.parameters, { pid: daemonPid, reason: 'the holdfast daemon cannot be put in one of its own units' });
      return true;
    });
    const { units } = await d.call<{ units: { name: string }[] }>('List');
    assert.deepEqual(units.filter((u) => u.name.startsWith('init') || u.name.startsWith('itself')), [], 'no unit was made');
  });

  it('refuses transient names that could never name a unit file (.dot, spaces, templates)', async () => {
    for (const [name, why] of [
      ['.dot', "starts with '.'"],
      ['with space', 'holds a space'],
      ['tmpl@', 'is a template'],
      ['caf\u00e9', '"é" (U+00E9)'],
    ] as const) {
      await assert.rejects(d.call('Run', { name, unit: '[Service]\nExecStart=/bin/true\n' }), (error: Error & { parameters?: { errors: string[] } }) => {
        assert.equal(error.name, 'io.holdfast.Manager.InvalidUnit', name);
        assert.ok(error.parameters!.errors[0]!.includes(why), error.parameters!.errors[0]);
        return true;
      });
    }
    await assert.rejects(d.call('CreateScope', { name: '.dot', processes: [{ pid: 0 }] }), { name: 'io.holdfast.Manager.InvalidUnit' });
    const { units } = await d.call<{ units: { name: string }[] }>('List');
    assert.deepEqual(units.map((u) => u.name), [], 'nothing was made of them');
    // The CLI says why in one line.
    const cli = await d.cli(['run', '--unit', '.dot', '--', '/bin/true']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /invalid unit name "\.dot\.service": the name starts with '\.'/);
  });
});

describe('CreateScope from another user', { skip: asRoot ? false : 'needs root to run a client as another uid' }, () => {
  let dir: string;
  let daemon: ChildProcess;
  let socket: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-scope-users-'));
    chmodSync(dir, 0o711);
    mkdirSync(join(dir, 'units'));
    socket = join(dir, 'run', 'control');
    // A socket every user may connect to, as a system daemon might offer.
    daemon = spawn(process.execPath, [HOLDFAST_BIN, 'daemon', '--units', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--socket', socket, '--socket-mode', '0666'], { stdio: 'ignore' });
    await waitFor(() => existsSync(socket), 'the daemon to listen');
  });
  after(async () => {
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  });

  it("refuses a process the caller could not signal itself, and takes the caller's own", async () => {
    const rootsOwn = sleeper();
    const rootsHandle = Pidfd.open(rootsOwn.pid!);
    try {
      const index = fileURLToPath(new URL('../../src/api/varlink/index.js', import.meta.url));
      const script = `
        const { VarlinkClient } = await import(${JSON.stringify(index)});
        const { spawn } = await import('node:child_process');
        const client = await VarlinkClient.connect(${JSON.stringify(socket)});
        const out = {};
        const attempt = async (name, pid) => {
          try {
            return await client.call('io.holdfast.Manager.CreateScope', { name, processes: [{ pid }] });
          } catch (error) {
            return { error: error.name, parameters: error.parameters };
          }
        };
        out.theirs = await attempt('theirs', ${rootsOwn.pid});
        const own = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
        await new Promise((resolve) => own.once('spawn', resolve));
        out.own = await attempt('mine', own.pid);
        own.kill();
        await client.close();
        process.stdout.write(JSON.stringify(out));
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
      await new Promise((resolve) => child.once('close', resolve));
      const result = JSON.parse(out) as { theirs: object; own: object };
      assert.deepEqual(result.theirs, {
        error: 'io.holdfast.Manager.ProcessRefused',
        parameters: { pid: rootsOwn.pid, reason: "it belongs to uid 0; only root may put another user's process in a unit" },
      });
      assert.deepEqual(result.own, { unit: 'mine.scope' });
    } finally {
      rootsHandle.signal('SIGTERM');
      await rootsHandle.exited;
      rootsHandle.close();
    }
  });
});
