import { strict as assert } from 'node:assert';
import { readFileSync, readSync, fstatSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { native } from '../../src/native.js';
import { Pidfd } from '../../src/pidfd/index.js';
import {
  barrier,
  closeNotifySocket,
  errno,
  extendTimeout,
  fdStore,
  fdStoreRemove,
  mainPid,
  monotonicUsec,
  notify,
  notifyAccess,
  ownPidfdId,
  ready,
  reloading,
  restartReset,
  status,
  stopping,
  watchdog,
  watchdogTimeout,
  watchdogTrigger,
  NOTIFY_MESSAGE_MAX,
} from '../../src/service/index.js';
import { PythonReceiver, pythonUnavailable } from './helpers/receiver.js';
import { exitOf, openFds, sleeper } from './helpers/util.js';

const noPython = pythonUnavailable();
const isRoot = process.getuid?.() === 0;

/** Runs `fn` with NOTIFY_SOCKET set in process.env, restoring it afterwards. */
function withNotifySocket<T>(address: string | undefined, fn: () => T): T {
  const saved = process.env['NOTIFY_SOCKET'];
  if (address === undefined) delete process.env['NOTIFY_SOCKET'];
  else process.env['NOTIFY_SOCKET'] = address;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env['NOTIFY_SOCKET'];
    else process.env['NOTIFY_SOCKET'] = saved;
  }
}

/** A path socket whose receiver closes barrier fds at once (as a manager), and an abstract one that holds every fd. */
let path: PythonReceiver;
let abstract: PythonReceiver;
before(async () => {
  if (noPython === undefined) [path, abstract] = await Promise.all([PythonReceiver.start('path', 'manager'), PythonReceiver.start('abstract', 'hold')]);
});
after(async () => {
  closeNotifySocket();
  await Promise.all([path?.close(), abstract?.close()]);
});

describe('notify() as a Python AF_UNIX receiver sees it', { skip: noPython }, () => {

  it('sends the exact bytes to a path socket from $NOTIFY_SOCKET, credentials filled in by the kernel', async () => {
    const result = withNotifySocket(path.address, () => notify({ READY: 1, STATUS: 'up and running' }));
    assert.deepEqual(result, {
      sent: true,
      socket: path.address,
      message: 'READY=1\nSTATUS=up and running',
      bytes: 29,
      fds: 0,
      credentials: 'kernel',
    });
    const got = await path.next();
    assert.deepEqual(got.bytes, Buffer.from('READY=1\nSTATUS=up and running'));
    assert.equal(got.pid, process.pid);
    assert.equal(got.uid, process.getuid!());
    assert.equal(got.gid, process.getgid!());
    assert.deepEqual(got.fds, []);
    assert.equal(got.truncated, false);
    const id = ownPidfdId();
    if (got.senderPidfdIno !== null && id !== undefined) assert.equal(BigInt(got.senderPidfdIno), id);
  });

  it('sends to an abstract socket (@name)', async () => {
    const result = withNotifySocket(abstract.address, () => ready('abstract works'));
    assert.equal(result.sent, true);
    const got = await abstract.next();
    assert.deepEqual(got.bytes, Buffer.from('READY=1\nSTATUS=abstract works'));
    assert.equal(got.pid, process.pid);
  });

  it('puts every typed helper on the wire exactly', async () => {
    const socket = { socket: path.address };
    const sent: string[] = [];
    const expect = (result: ReturnType<typeof notify>, text: string): void => {
      assert.equal(result.sent && result.message, text);
      sent.push(text);
    };
    expect(ready(undefined, socket), 'READY=1');
    expect(stopping('bye', socket), 'STOPPING=1\nSTATUS=bye');
    expect(status('a b  c', socket), 'STATUS=a b  c');
    expect(status('', socket), 'STATUS=');
    expect(errno(5, socket), 'ERRNO=5');
    expect(errno('ENOENT', socket), 'ERRNO=2');
    expect(watchdog(socket), 'WATCHDOG=1');
    expect(watchdogTrigger(socket), 'WATCHDOG=trigger');
    expect(watchdogTimeout(1500, socket), 'WATCHDOG_USEC=1500000');
    expect(extendTimeout(2500, socket), 'EXTEND_TIMEOUT_USEC=2500000');
    expect(restartReset(socket), 'RESTART_RESET=1');
    expect(notifyAccess('all', socket), 'NOTIFYACCESS=all');
    expect(fdStoreRemove('db', socket), 'FDSTOREREMOVE=1\nFDNAME=db');
    expect(notify(['X_A=1', 'X_B=two words'], socket), 'X_A=1\nX_B=two words');
    expect(notify('RAW=1\nRAW2=2', socket), 'RAW=1\nRAW2=2');
    expect(notify({ A: true, B: false, C: 12n, D: undefined, E: null, F: 7 }, socket), 'A=1\nB=0\nC=12\nF=7');
    const texts: string[] = [];
    for (let i = 0; i < sent.length; i++) texts.push((await path.next()).bytes.toString('utf8'));
    assert.deepEqual(texts, sent);
  });

  it('reloading() sends RELOADING=1 with MONOTONIC_USEC read from CLOCK_MONOTONIC', async () => {
    const lower = monotonicUsec();
    const result = reloading(undefined, { socket: path.address });
    const upper = monotonicUsec();
    const got = await path.next();
    const match = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(got.bytes.toString('utf8'));
    assert.ok(match, `unexpected message ${JSON.stringify(got.text)}`);
    const usec = BigInt(match[1]!);
    assert.ok(lower <= usec && usec <= upper, `${usec} not within [${lower}, ${upper}]`);
    assert.equal(result.sent && result.message, got.text);
    // The claim behind it: process.hrtime is CLOCK_MONOTONIC. Python reads that clock between our two readings.
    const before = process.hrtime.bigint();
    const reply = await path.command('clock');
    const afterwards = process.hrtime.bigint();
    const python = BigInt(reply['ns'] as string);
    assert.ok(before <= python && python <= afterwards, `CLOCK_MONOTONIC ${python} is not within hrtime [${before}, ${afterwards}]`);
  });

  it('fdStore passes a pipe by SCM_RIGHTS: Python writes into the fd it received and we read it', async () => {
    const [readEnd, writeEnd] = native.pipe(false);
    try {
      const result = fdStore('pipe', writeEnd, { socket: path.address, poll: false });
      assert.equal(result.sent && result.message, 'FDSTORE=1\nFDNAME=pipe\nFDPOLL=0');
      assert.equal(result.sent && result.fds, 1);
      const got = await path.next();
      assert.deepEqual(got.bytes, Buffer.from('FDSTORE=1\nFDNAME=pipe\nFDPOLL=0'));
      assert.equal(got.fds.length, 1);
      assert.equal(got.fds[0]!.kind, 'fifo');
      assert.equal(got.fds[0]!.ino, fstatSync(writeEnd).ino);
      await path.command('write', { key: got.fds[0]!.key, data: 'hello from python' });
      const buffer = Buffer.alloc(64);
      const n = readSync(readEnd, buffer);
      assert.equal(buffer.subarray(0, n).toString(), 'hello from python');
      await path.command('close', { key: got.fds[0]!.key });
    } finally {
      native.close(readEnd);
      native.close(writeEnd);
    }
  });

  it('mainPid() sends MAINPID, MAINPIDFDID and the pidfd itself, which Python matches with os.pidfd_open', async () => {
    const child = sleeper();
    const handle = Pidfd.fromChild(child);
    try {
      const result = mainPid(handle, { socket: path.address });
      const expected = `MAINPID=${handle.pid}\nMAINPIDFDID=${handle.id}\nMAINPIDFD=1`;
      assert.equal(result.sent && result.message, expected);
      const got = await path.next();
      assert.deepEqual(got.bytes, Buffer.from(expected));
      assert.equal(got.fds.length, 1);
      assert.equal(got.fds[0]!.link, 'anon_inode:[pidfd]');
      const viaPython = (await path.command('pidfd-ino', { pid: child.pid })).ino as number;
      assert.equal(got.fds[0]!.ino, viaPython);
      assert.equal(got.mainPidIno, viaPython);
      assert.equal(BigInt(viaPython), handle.id);
      await path.command('close', { key: got.fds[0]!.key });

      // Given a PID, it opens it itself.
      mainPid(child.pid!, { socket: path.address });
      const again = await path.next();
      assert.equal(again.text, expected);
      assert.equal(again.fds[0]!.ino, viaPython);
      await path.command('close', { key: again.fds[0]!.key });
    } finally {
      handle.signal('SIGKILL');
      handle.close();
      await exitOf(child);
    }
  });

  it('attaches credentials only on behalf of another process, as libsystemd does', async () => {
    const child = sleeper();
    try {
      const result = notify('READY=1', { socket: path.address, pid: child.pid! });
      const got = await path.next();
      assert.equal(got.text, 'READY=1');
      if (isRoot) {
        assert.equal(result.sent && result.credentials, 'explicit');
        assert.equal(got.pid, child.pid);
      } else {
        assert.equal(result.sent && result.credentials, 'own');
        assert.equal(got.pid, process.pid);
      }
      if (isRoot) {
        const claimed = notify('STATUS=as nobody', { socket: path.address, uid: 65534, gid: 65534 });
        assert.equal(claimed.sent && claimed.credentials, 'explicit');
        const nobody = await path.next();
        assert.deepEqual([nobody.pid, nobody.uid, nobody.gid], [process.pid, 65534, 65534]);
      }
    } finally {
      child.kill('SIGKILL');
      await exitOf(child);
    }
  });

  it('carries exactly 4096 bytes and refuses 4097 (a manager drops longer messages)', async () => {
    const prefix = 'STATUS=';
    const exact = prefix + 'x'.repeat(NOTIFY_MESSAGE_MAX - prefix.length);
    assert.equal(notify(exact, { socket: path.address }).sent, true);
    const got = await path.next();
    assert.equal(got.bytes.length, 4096);
    assert.equal(got.truncated, false);
    assert.deepEqual(got.bytes, Buffer.from(exact));
    assert.throws(() => notify(exact + 'x', { socket: path.address }), { code: 'EMSGSIZE' });
  });

  it('waits while the receiver queue is full instead of failing', async () => {
    const qlen = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'));
    const count = Math.min(qlen, 600) + 5;
    const start = path.messages.length;
    await path.command('pause', { ms: 300 });
    for (let i = 0; i < count; i++) {
      assert.equal(notify({ X_SEQ: i }, { socket: path.address }).sent, true);
    }
    await path.waitFor(start + count, `${count} queued datagrams`);
    const texts = [];
    for (let i = 0; i < count; i++) texts.push((await path.next()).text);
    assert.deepEqual(texts, Array.from({ length: count }, (_, i) => `X_SEQ=${i}`));
  });

  it('reuses one socket and closeNotifySocket() releases it', async () => {
    closeNotifySocket();
    const base = openFds();
    for (let i = 0; i < 5; i++) notify({ X_REUSE: i }, { socket: path.address });
    assert.equal(openFds(), base + 1);
    closeNotifySocket();
    closeNotifySocket();
    assert.equal(openFds(), base);
    notify({ X_REUSE: 'after close' }, { socket: path.address });
    const texts = [];
    for (let i = 0; i < 6; i++) texts.push((await path.next()).text);
    assert.deepEqual(texts, ['X_REUSE=0', 'X_REUSE=1', 'X_REUSE=2', 'X_REUSE=3', 'X_REUSE=4', 'X_REUSE=after close']);
  });

  it('unsetEnvironment removes NOTIFY_SOCKET after sending', async () => {
    const saved = process.env['NOTIFY_SOCKET'];
    process.env['NOTIFY_SOCKET'] = path.address;
    try {
      assert.equal(status('once', { unsetEnvironment: true }).sent, true);
      assert.equal(process.env['NOTIFY_SOCKET'], undefined);
      assert.deepEqual(status('twice'), { sent: false, reason: '$NOTIFY_SOCKET is not set' });
      assert.equal((await path.next()).text, 'STATUS=once');
    } finally {
      if (saved !== undefined) process.env['NOTIFY_SOCKET'] = saved;
    }
  });
});

describe('barrier() against a Python receiver', { skip: noPython }, () => {
  it('resolves only after the receiver closed the fd it got with BARRIER=1', async () => {
    let settled = false;
    const pending = barrier(10_000, { socket: abstract.address }).finally(() => (settled = true));
    const got = await abstract.next();
    assert.deepEqual(got.bytes, Buffer.from('BARRIER=1'));
    assert.equal(got.fds.length, 1);
    assert.equal(got.fds[0]!.kind, 'fifo');
    for (let i = 0; i < 5; i++) await nextTurn();
    assert.equal(settled, false, 'the barrier resolved while the receiver still held the fd');
    await abstract.command('close', { key: got.fds[0]!.key });
    const result = await pending;
    assert.equal(result.sent && result.message, 'BARRIER=1');
    assert.equal(result.sent && result.fds, 1);
  });

  it('rejects with ETIMEDOUT while the receiver holds the fd', async () => {
    await assert.rejects(barrier(50, { socket: abstract.address }), { code: 'ETIMEDOUT' });
    const got = await abstract.next();
    assert.equal(got.text, 'BARRIER=1');
    await abstract.command('close', { key: got.fds[0]!.key });
  });

  it('resolves against a receiver that closes barrier fds at once, as a manager does, and leaves no fd behind', async () => {
    closeNotifySocket();
    const base = openFds();
    await barrier(10_000, { socket: path.address });
    await barrier(10_000, { socket: path.address });
    closeNotifySocket();
    assert.equal(openFds(), base);
    assert.equal((await path.next()).text, 'BARRIER=1');
    assert.equal((await path.next()).text, 'BARRIER=1');
  });

  it('is a no-op without NOTIFY_SOCKET', async () => {
    assert.deepEqual(await barrier(10, { env: {} }), { sent: false, reason: '$NOTIFY_SOCKET is not set' });
  });
});

describe('notify() refusals', () => {
  it('without NOTIFY_SOCKET sends nothing and says so', () => {
    assert.deepEqual(
      withNotifySocket(undefined, () => ready('x')),
      { sent: false, reason: '$NOTIFY_SOCKET is not set' },
    );
    assert.deepEqual(notify({ READY: 1 }, { env: {} }), { sent: false, reason: '$NOTIFY_SOCKET is not set' });
  });

  it('refuses newlines, NUL bytes, bad keys, empty messages and too many fds with a clear error', () => {
    const socket = { socket: '@never-used' };
    assert.throws(() => notify({ STATUS: 'a\nREADY=1' }, socket), { code: 'EINVAL', message: /STATUS= contains a newline/ });
    assert.throws(() => status('two\nlines', socket), { code: 'EINVAL' });
    assert.throws(() => notify({ STATUS: 'nul\0byte' }, socket), { code: 'EINVAL', message: /NUL/ });
    assert.throws(() => notify({ 'A=B': 1 }, socket), { code: 'EINVAL', message: /not a valid key/ });
    assert.throws(() => notify({ '': 1 }, socket), { code: 'EINVAL' });
    assert.throws(() => notify(['OK=1', 'BAD=\n'], socket), { code: 'EINVAL' });
    assert.throws(() => notify('RAW=\0', socket), { code: 'EINVAL' });
    assert.throws(() => notify({}, socket), { code: 'EINVAL', message: /empty/ });
    assert.throws(() => notify({ X: Number.NaN }, socket), { code: 'EINVAL' });
    assert.throws(() => notify('X=1', { ...socket, fds: Array.from({ length: 254 }, () => 0) }), { code: 'E2BIG' });
    assert.throws(() => fdStore('a:b', [0], socket), { code: 'EINVAL' });
    assert.throws(() => fdStore('', [0], socket), { code: 'EINVAL' });
    assert.throws(() => fdStore('ok', [], socket), { code: 'EINVAL' });
    assert.throws(() => extendTimeout(-1, socket), { code: 'EINVAL' });
    assert.throws(() => watchdogTimeout(0, socket), { code: 'EINVAL' });
    assert.throws(() => errno('ENOTANERRNO', socket), { code: 'EINVAL' });
    assert.throws(() => errno(-1, socket), { code: 'EINVAL' });
  });

  it('refuses bad socket addresses and reports failed sends with their errno', () => {
    assert.throws(() => notify('READY=1', { socket: '' }), { code: 'EINVAL' });
    assert.throws(() => notify('READY=1', { socket: 'relative/path' }), { code: 'EINVAL', message: /absolute path or @abstract-name/ });
    assert.throws(() => notify('READY=1', { socket: 'vsock:2:1234' }), { code: 'EAFNOSUPPORT' });
    assert.throws(() => notify('READY=1', { socket: '/' + 'x'.repeat(120) }), { code: 'EINVAL', message: /too long/ });
    assert.throws(() => notify('READY=1', { socket: '/nonexistent/holdfast/notify' }), { code: 'ENOENT', message: /no socket exists/ });
    assert.throws(() => notify('READY=1', { socket: `@holdfast-test-nobody-listens-${process.pid}` }), { code: 'ECONNREFUSED' });
  });

  it('gives up with EAGAIN when the queue stays full past timeoutMs', () => {
    const sink = native.socket('dgram');
    const name = `\0holdfast-test-sink-${process.pid}`;
    try {
      native.bind(sink, Buffer.from(name));
      const address = `@${name.slice(1)}`;
      let sent = 0;
      assert.throws(() => {
        for (; sent < 100_000; sent++) notify({ X_FILL: sent }, { socket: address, timeoutMs: 20 });
      }, { code: 'EAGAIN', message: /stayed full/ });
      assert.ok(sent > 0);
      // The first datagram is intact in the sink.
      const first = native.receiveMessage(sink, 8192);
      assert.equal(first?.data.toString(), 'X_FILL=0');
    } finally {
      native.close(sink);
    }
  });
});
