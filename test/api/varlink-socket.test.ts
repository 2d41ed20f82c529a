import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { VarlinkClient, VarlinkServer, varlinkCall } from '../../src/api/varlink/index.js';
import { makeTestServer, tempDir } from './varlink-helpers.js';

/** Leaves a socket file that nobody listens on, as a crashed daemon would. */
function makeStaleSocket(path: string): void {
  execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', path]);
}

describe('socket file', () => {
  it('is created with mode 0600, in a directory created on the way, and removed on close', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 'a', 'b', 'io.example');
    const { server } = makeTestServer();
    await server.listen({ path });
    t.after(() => server.close());
    const st = statSync(path);
    assert.equal(st.isSocket(), true);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(join(dir.dir, 'a', 'b')).mode & 0o777, 0o755);
    assert.equal(server.path, path);
    // Nothing is left over from binding in a private directory.
    assert.deepEqual(readdirSync(join(dir.dir, 'a', 'b')), ['io.example']);
    assert.deepEqual(readdirSync(join(dir.dir, 'a')), ['b']);
    assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 1, b: 2 }), { sum: 3 });
    await server.close();
    assert.throws(() => statSync(path), { code: 'ENOENT' });
  });

  it('takes another mode when asked', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 's');
    const { server } = makeTestServer();
    await server.listen({ path, mode: 0o660 });
    try {
      assert.equal(statSync(path).mode & 0o777, 0o660);
    } finally {
      await server.close();
    }
  });

  it('gets mode 0600 also when the path is too long to bind in a private directory first', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    // 100-byte directory plus "/s": fits in sun_path (107), but "<dir>/.XXXXXX/s" does not.
    const deep = join(dir.dir, 'x'.repeat(100 - dir.dir.length - 1));
    assert.equal(deep.length, 100);
    const path = join(deep, 's');
    const { server } = makeTestServer();
    await server.listen({ path });
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(deep), ['s']);
      assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 1, b: 1 }), { sum: 2 });
    } finally {
      await server.close();
    }
  });

  it('refuses a path longer than a socket address holds', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server } = makeTestServer();
    await assert.rejects(server.listen({ path: join(dir.dir, 'y'.repeat(120)) }), { code: 'ENAMETOOLONG' });
  });

  it('replaces a stale socket', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 's');
    makeStaleSocket(path);
    const stale = statSync(path);
    assert.equal(stale.isSocket(), true);
    await assert.rejects(VarlinkClient.connect(path), { code: 'ECONNREFUSED' });
    const { server } = makeTestServer();
    await server.listen({ path });
    try {
      const st = statSync(path);
      assert.notEqual(st.ino, stale.ino);
      assert.equal(st.mode & 0o777, 0o600);
      assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 2, b: 2 }), { sum: 4 });
    } finally {
      await server.close();
    }
  });

  it('refuses to replace a live socket or a file that is not a socket', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 's');
    const { server } = makeTestServer();
    await server.listen({ path });
    try {
      const second = makeTestServer().server;
      await assert.rejects(second.listen({ path }), { code: 'EADDRINUSE' });
      assert.deepEqual(await varlinkCall(path, 'org.example.test.Add', { a: 3, b: 3 }), { sum: 6 });
    } finally {
      await server.close();
    }
    const file = join(dir.dir, 'file');
    writeFileSync(file, 'precious');
    await assert.rejects(makeTestServer().server.listen({ path: file }), { code: 'EEXIST' });
    assert.equal(readFileSync(file, 'utf8'), 'precious');
  });

  it('leaves the path alone on close if something else has replaced its socket', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 's');
    const { server } = makeTestServer();
    await server.listen({ path });
    unlinkSync(path);
    writeFileSync(path, 'successor');
    await server.close();
    assert.equal(readFileSync(path, 'utf8'), 'successor');
  });
});

describe('listening on an inherited fd', () => {
  it('serves on a socket bound by another process and passed across exec, and exposes the fd', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.dir, 'inherited.sock');
    const child = join(dir.dir, 'child.mjs');
    const index = new URL('../../src/api/varlink/index.js', import.meta.url).href;
    // The child stands in for a re-executed daemon: it finds the socket at fd 3 and serves on it.
    writeFileSync(
      child,
      `import { VarlinkServer } from ${JSON.stringify(index)};
const server = new VarlinkServer({ product: 'child' });
server.addInterface({ idl: 'interface org.example.child\\nmethod Pid() -> (pid: int)\\n', methods: { Pid: () => ({ pid: process.pid }) } });
await server.listen({ fd: 3 });
process.stdout.write(JSON.stringify({ fd: server.fd }) + '\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await server.close(); process.exit(0); });
`,
    );
    // Python binds and listens, moves the socket to fd 3, and execs node in its own place.
    const script = `import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.execv(sys.argv[2], [sys.argv[2], sys.argv[3]])
`;
    const proc = spawn('python3', ['-c', script, path, process.execPath, child], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => proc.kill('SIGKILL'));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      proc.on('exit', (code) => reject(new Error(`child exited with ${code} before it was ready`)));
    });
    assert.deepEqual(JSON.parse(line), { fd: 3 });
    const client = await VarlinkClient.connect(path);
    assert.deepEqual(await client.call('org.example.child.Pid'), { pid: proc.pid });
    assert.deepEqual(await client.call('org.varlink.service.GetInfo'), { vendor: '', product: 'child', version: '', url: '', interfaces: ['org.varlink.service', 'org.example.child'] });
    await client.close();
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    proc.stdin.end();
    assert.equal(await exited, 0);
    // The server did not create the path, so it does not remove it either.
    assert.equal(statSync(path).isSocket(), true);
    rmSync(path);
  });

  it('exposes the fd of a path socket too', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const server = new VarlinkServer();
    assert.equal(server.fd, undefined);
    await server.listen({ path: join(dir.dir, 's') });
    try {
      const fd = server.fd;
      assert.equal(typeof fd, 'number');
      assert.equal(readlinkSync(`/proc/self/fd/${fd}`), `socket:[${statSync(`/proc/self/fd/${fd}`).ino}]`);
    } finally {
      await server.close();
    }
  });
});
