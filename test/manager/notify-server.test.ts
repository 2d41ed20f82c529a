/**
 * The manager's notify socket against senders nobody here wrote: libsystemd (sd_notify,
 * sd_pid_notify_with_fds, sd_notify_barrier) in a small C program, systemd's own `systemd-notify`,
 * and raw datagrams from Python for every malformed case.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { fstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { features, Pidfd } from '../../src/pidfd/index.js';
import {
  isValidFdName,
  NotifyServer,
  parseErrno,
  parseNotifyText,
  parseNotifyUsec,
  type NotifyMessage,
} from '../../src/manager/notify-server.js';
import type { LogLevel } from '../../src/manager/rate-limited-log.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The interpreter itself, resolved once: version-manager shims cost a second per start. */
function findPython(): string | undefined {
  const out = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return out.status === 0 && out.stdout.trim() !== '' ? out.stdout.trim() : undefined;
}
const PYTHON = findPython();
const noPython = PYTHON !== undefined ? false : 'python3 is not installed';
const noSystemdNotify = have('systemd-notify') ? false : 'systemd-notify is not installed';

/** What a test sees of one message, captured inside the handler (the fds are closed afterwards). */
interface Seen {
  assignments: [string, string][];
  pid: number;
  uid: number;
  gid: number;
  pidfdId: bigint | undefined;
  hasPidfd: boolean;
  /** `Pid:` of the sender's pidfd in /proc/self/fdinfo at delivery (-1 once reaped). */
  pidfdProcPid: number | undefined;
  fds: number;
  fdsOpenInHandler: number;
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function fdinfoPid(fd: number): number {
  const match = /^Pid:\s*(-?\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return match === null ? Number.NaN : Number(match[1]);
}

/** Collects what the server delivers and logs. */
class Inbox {
  readonly seen: Seen[] = [];
  readonly logs: { level: LogLevel; text: string }[] = [];
  /** Extra per-test work inside the handler (e.g. take fds). */
  onMessage: ((message: NotifyMessage) => void) | undefined;
  #waiters: (() => void)[] = [];

  readonly handler = (message: NotifyMessage): void => {
    const pidfd = message.sender.pidfd;
    this.seen.push({
      assignments: message.assignments.map(([k, v]) => [k, v] as [string, string]),
      pid: message.sender.pid,
      uid: message.sender.uid,
      gid: message.sender.gid,
      pidfdId: message.sender.pidfdId,
      hasPidfd: pidfd !== undefined,
      pidfdProcPid: pidfd === undefined ? undefined : fdinfoPid(pidfd.fd),
      fds: message.fds.length,
      fdsOpenInHandler: fdCount(),
    });
    this.onMessage?.(message);
    for (const wake of this.#waiters.splice(0)) wake();
  };

  readonly log = (level: LogLevel, text: string): void => {
    this.logs.push({ level, text });
  };

  /** Waits until a message with `key` arrives (fails the test after 10 s rather than hanging). */
  async waitFor(key: string): Promise<Seen> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = this.seen.find((s) => s.assignments.some(([k]) => k === key));
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no message with ${key} arrived; got ${JSON.stringify(this.seen.map((s) => s.assignments))}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  }

  logLines(pattern: RegExp): string[] {
    return this.logs.map((l) => l.text).filter((t) => pattern.test(t));
  }
}

const PY_PRELUDE = String.raw`
import array, os, select, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(('\0' + path[1:]) if path.startswith('@') else path)
def send(data, fds=()):
    if fds:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', list(fds)))])
    else:
        s.send(data)
def wait_hup(fd, ms=5000):
    p = select.poll()
    p.register(fd, 0)
    ev = p.poll(ms)
    return 'hup' if ev and (ev[0][1] & select.POLLHUP) else 'timeout'
`;

/** Runs a Python sender while the event loop keeps running (the server must answer barriers). */
function python(code: string, socketPath: string): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  const child = spawn(PYTHON!, ['-c', PY_PRELUDE + code, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
  });
}

/** Runs a Python sender to completion with the event loop blocked: nothing is received until drain(). */
function pythonSync(code: string, socketPath: string): { status: number | null; stdout: string; stderr: string } {
  const out = spawnSync(PYTHON!, ['-c', PY_PRELUDE + code, socketPath], { encoding: 'utf8' });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-notify-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('value parsers', () => {
  it('parseNotifyUsec: strict decimal u64, beyond 2^53 is Infinity', () => {
    assert.equal(parseNotifyUsec('0'), 0);
    assert.equal(parseNotifyUsec('5000000'), 5_000_000);
    assert.equal(parseNotifyUsec('9007199254740991'), Number.MAX_SAFE_INTEGER);
    assert.equal(parseNotifyUsec('9007199254740992'), Number.POSITIVE_INFINITY);
    assert.equal(parseNotifyUsec('18446744073709551615'), Number.POSITIVE_INFINITY);
    for (const bad of ['18446744073709551616', '', '-1', ' 1', '1 ', '0x10', '1.5', '1e6', 'infinity']) {
      assert.equal(parseNotifyUsec(bad), undefined, bad);
    }
  });

  it('parseErrno: decimal 0..4095 or an errno name', () => {
    assert.equal(parseErrno('0'), 0);
    assert.equal(parseErrno('2'), 2);
    assert.equal(parseErrno('4095'), 4095);
    assert.equal(parseErrno('ENOENT'), 2);
    assert.equal(parseErrno('EADDRINUSE'), 98);
    for (const bad of ['4096', '-1', '', 'enoent', 'EFOO', ' 2', '0x2', 'constructor']) assert.equal(parseErrno(bad), undefined, bad);
  });

  it('isValidFdName: printable ASCII without ":", at most 255 characters', () => {
    assert.equal(isValidFdName(''), true);
    assert.equal(isValidFdName('web-http_1.sock'), true);
    assert.equal(isValidFdName('x'.repeat(255)), true);
    assert.equal(isValidFdName('x'.repeat(256)), false);
    assert.equal(isValidFdName('a:b'), false);
    assert.equal(isValidFdName('tab\there'), false);
    assert.equal(isValidFdName('del\x7f'), false);
    assert.equal(isValidFdName('caf\u00e9'), false);
  });

  it('parseNotifyText: splits at \\n and \\r, skips empty lines, ignores lines without a key', () => {
    const parsed = parseNotifyText(Buffer.from('READY=1\r\n\nnoequals\n=novalue\nSTATUS=a=b\nSTATUS=\xff', 'latin1'));
    assert.deepEqual(parsed, {
      ok: true,
      assignments: [
        ['READY', '1'],
        ['STATUS', 'a=b'],
      ],
      lines: 5,
      ignored: 2,
      invalidUtf8: 1,
    });
    assert.deepEqual(parseNotifyText(Buffer.from('A=1\0')), { ok: true, assignments: [['A', '1']], lines: 1, ignored: 0, invalidUtf8: 0 });
    assert.equal(parseNotifyText(Buffer.from('A=1\0\0')).ok, false);
    assert.equal(parseNotifyText(Buffer.from('A=1\0B=2')).ok, false);
  });
});

describe('NotifyServer.open', () => {
  it('creates the directory, binds a world-writable socket, removes it on close', () => {
    const path = join(dir, 'open', 'sub', 'notify');
    const server = NotifyServer.open({ path, log: () => {} });
    try {
      const st = lstatSync(path);
      assert.equal(st.isSocket(), true);
      assert.equal(st.mode & 0o777, 0o777);
      assert.equal(statSync(join(dir, 'open', 'sub')).isDirectory(), true);
      assert.equal(server.path, path);
      assert.equal(fstatSync(server.fd).isSocket(), true);
      assert.equal(server.passesPidfds, features().passPidfd);
    } finally {
      server.close();
    }
    assert.throws(() => lstatSync(path), { code: 'ENOENT' });
    server.close();
    assert.equal(server.closed, true);
    assert.equal(server.drain(), 0);
    assert.throws(() => server.fd, { code: 'EBADF' });
  });

  it('replaces a stale socket file, refuses a live one and a non-socket', { skip: noPython }, () => {
    const path = join(dir, 'stale-notify');
    // A socket file whose owner is gone.
    const made = spawnSync(PYTHON!, ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])', path]);
    assert.equal(made.status, 0);
    assert.equal(lstatSync(path).isSocket(), true);
    const server = NotifyServer.open({ path, log: () => {} });
    try {
      assert.throws(() => NotifyServer.open({ path, log: () => {} }), { code: 'EADDRINUSE' });
      assert.equal(lstatSync(path).isSocket(), true, 'the live socket was left alone');
    } finally {
      server.close();
    }
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'data');
    assert.throws(() => NotifyServer.open({ path: file, log: () => {} }), { code: 'EEXIST' });
    assert.equal(readFileSync(file, 'utf8'), 'data');
  });

  it('refuses an address that is not absolute or abstract', () => {
    assert.throws(() => NotifyServer.open({ path: 'relative/notify' }), { code: 'EINVAL' });
  });
});

describe('NotifyServer with raw datagrams from Python', { skip: noPython }, () => {
  let server: NotifyServer;
  let inbox: Inbox;
  before(() => {
    inbox = new Inbox();
    server = NotifyServer.open({ path: join(dir, 'py', 'notify'), log: inbox.log, onMessage: inbox.handler, logRateLimit: { burst: 1000 } });
  });
  after(() => server.close());
  afterEach(() => {
    inbox.onMessage = undefined;
  });

  it('delivers assignments in order with the sender; one trailing NUL is fine; lines without = are ignored', async () => {
    const run = await python(String.raw`send(b'READY=1\ngarbage\n\nSTATUS=a=b\r\nSTATUS=second\nX_CASE=1\x00')`, server.path);
    assert.equal(run.code, 0, run.stderr);
    const seen = await inbox.waitFor('X_CASE');
    assert.deepEqual(seen.assignments, [
      ['READY', '1'],
      ['STATUS', 'a=b'],
      ['STATUS', 'second'],
      ['X_CASE', '1'],
    ]);
    assert.equal(seen.pid, run.pid);
    assert.equal(seen.uid, process.getuid!());
    assert.equal(seen.gid, process.getgid!());
    assert.equal(seen.fds, 0);
    if (features().passPidfd) {
      assert.equal(seen.hasPidfd, true);
      if (features().pidfdIds) assert.equal(typeof seen.pidfdId, 'bigint');
    } else {
      assert.equal(seen.hasPidfd, false);
      assert.equal(seen.pidfdId, undefined);
    }
  });

  it('get() returns the last value, getAll() every one', async () => {
    let got: { last: string | undefined; all: string[]; has: boolean; missing: string | undefined } | undefined;
    inbox.onMessage = (m) => {
      if (m.has('X_GET')) got = { last: m.get('STATUS'), all: m.getAll('STATUS'), has: m.has('READY', '1'), missing: m.get('NOPE') };
    };
    await python(String.raw`send(b'STATUS=one\nREADY=1\nSTATUS=two\nX_GET=1')`, server.path);
    await inbox.waitFor('X_GET');
    assert.deepEqual(got, { last: 'two', all: ['one', 'two'], has: true, missing: undefined });
  });

  it('drops an embedded NUL and a 5000-byte datagram, accepts exactly 4096 bytes', async () => {
    const before = server.stats;
    const code = String.raw`
send(b'READY=1\x00X_NUL=1')
send(b'X_BIG=' + b'a' * 4994)
send(b'X_EXACT=' + b'b' * 4088)
send(b'X_SIZES_DONE=1')
`;
    const run = await python(code, server.path);
    assert.equal(run.code, 0, run.stderr);
    await inbox.waitFor('X_SIZES_DONE');
    assert.equal(inbox.seen.some((s) => s.assignments.some(([k]) => k === 'X_NUL' || k === 'X_BIG')), false);
    const exact = await inbox.waitFor('X_EXACT');
    assert.equal(exact.assignments[0]![1].length, 4088);
    assert.equal(server.stats.dropped - before.dropped, 2);
    assert.equal(inbox.logLines(/embedded NUL/).length, 1);
    assert.equal(inbox.logLines(/larger than 4096 bytes/).length, 1);
  });

  it('closes the 3 fds of a message the handler did not take, and the sender pidfd', () => {
    const baseline = fdCount();
    const logsBefore = inbox.logLines(/extra fds/).length;
    const run = pythonSync(String.raw`
fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(3)]
send(b'FDSTORE=1\nX_THREE=1', fds)
`, server.path);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(server.drain(), 1);
    const seen = inbox.seen.find((s) => s.assignments.some(([k]) => k === 'X_THREE'))!;
    assert.equal(seen.fds, 3);
    assert.equal(seen.fdsOpenInHandler, baseline + 3 + (seen.hasPidfd ? 1 : 0));
    assert.equal(fdCount(), baseline, 'every received fd was closed');
    assert.equal(inbox.logLines(/extra fds/).length, logsBefore + 1);
  });

  it('leaves taken fds and a taken sender pidfd to the handler', () => {
    const baseline = fdCount();
    const logsBefore = inbox.logLines(/extra fds/).length;
    let taken: number[] = [];
    let pidfd: Pidfd | undefined;
    let contents: string[] = [];
    inbox.onMessage = (m) => {
      if (!m.has('X_TAKE')) return;
      taken = m.takeFds();
      assert.deepEqual(m.takeFds(), [], 'a second take gets nothing');
      pidfd = m.takeSenderPidfd();
    };
    const run = pythonSync(String.raw`
paths = []
for i in range(2):
    p = '/tmp/holdfast-notify-take-%d-%d' % (os.getpid(), i)
    with open(p, 'w') as f: f.write('content %d' % i)
    paths.append(p)
fds = [os.open(p, os.O_RDONLY) for p in paths]
for p in paths: os.unlink(p)
send(b'X_TAKE=1', fds)
`, server.path);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(server.drain(), 1);
    assert.equal(taken.length, 2);
    contents = taken.map((fd) => readFileSync(fd, 'utf8'));
    assert.deepEqual(contents, ['content 0', 'content 1']);
    for (const fd of taken) closeSync(fd);
    if (features().passPidfd) {
      assert.ok(pidfd !== undefined);
      assert.equal(pidfd.closed, false);
      assert.equal(fdinfoPid(pidfd.fd), -1, 'the sender exited and was reaped, its pidfd still works');
      pidfd.close();
    }
    assert.equal(fdCount(), baseline);
    assert.equal(inbox.logLines(/extra fds/).length, logsBefore);
  });

  it('BARRIER=1 with one fd: the fd is closed (the client sees POLLHUP), the handler never sees it', async () => {
    const barriers = server.stats.barriers;
    const delivered = server.stats.delivered;
    const run = await python(String.raw`
r, w = os.pipe()
send(b'X_BEFORE_BARRIER=1')
send(b'BARRIER=1', [w])
os.close(w)
print(wait_hup(r))
`, server.path);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'hup');
    assert.equal(server.stats.barriers - barriers, 1);
    assert.equal(server.stats.delivered - delivered, 1, 'only the message before the barrier');
    assert.equal(inbox.seen.some((s) => s.assignments.some(([k]) => k === 'BARRIER')), false);
    assert.ok(inbox.seen.some((s) => s.assignments.some(([k]) => k === 'X_BEFORE_BARRIER')));
  });

  it('BARRIER=1 with other assignments is ignored whole, with a warning; so is one without an fd', async () => {
    const barriers = server.stats.barriers;
    const dropped = server.stats.dropped;
    const run = await python(String.raw`
r, w = os.pipe()
send(b'BARRIER=1\nREADY=1\nX_MIXED=1', [w])
os.close(w)
print(wait_hup(r))
send(b'BARRIER=1')
send(b'X_AFTER_MIXED=1')
`, server.path);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'hup', 'the fds of the ignored message are closed too');
    await inbox.waitFor('X_AFTER_MIXED');
    assert.equal(inbox.seen.some((s) => s.assignments.some(([k]) => k === 'X_MIXED')), false);
    assert.equal(server.stats.barriers - barriers, 0);
    assert.equal(server.stats.dropped - dropped, 2);
    assert.equal(inbox.logLines(/BARRIER=1 came with other assignments/).length, 1);
    assert.equal(inbox.logLines(/BARRIER=1 came with 0 fds/).length, 1);
  });

  it('a throwing handler is logged and the next message still arrives', async () => {
    const errors = server.stats.handlerErrors;
    inbox.onMessage = (m) => {
      if (m.has('X_THROW')) throw new Error('handler exploded');
    };
    await python(String.raw`
send(b'X_THROW=1')
send(b'X_AFTER_THROW=1')
`, server.path);
    await inbox.waitFor('X_AFTER_THROW');
    assert.equal(server.stats.handlerErrors - errors, 1);
    assert.equal(inbox.logs.filter((l) => l.level === 'error' && /handler exploded/.test(l.text)).length, 1);
  });
});

describe('NotifyServer under a flood of garbage', { skip: noPython }, () => {
  it('survives 10000 bad datagrams, rate-limits its log lines, and still delivers the next good one', async () => {
    const inbox = new Inbox();
    const server = NotifyServer.open({ path: join(dir, 'flood', 'notify'), log: inbox.log, onMessage: inbox.handler });
    try {
      const run = await python(String.raw`
for i in range(10000):
    send(b'X_GARBAGE=%d\x00tail' % i)
send(b'X_FLOOD_DONE=1')
`, server.path);
      assert.equal(run.code, 0, run.stderr);
      const done = await inbox.waitFor('X_FLOOD_DONE');
      assert.deepEqual(done.assignments, [['X_FLOOD_DONE', '1']]);
      assert.equal(server.stats.dropped, 10000);
      assert.equal(server.stats.delivered, 1);
    } finally {
      server.close(); // reports what is still suppressed
    }
    const dropLines = inbox.logLines(/^dropped a datagram/);
    const summaries = inbox.logLines(/^from UID \d+: suppressed \d+ more/);
    const suppressed = summaries.reduce((sum, line) => sum + Number(/suppressed (\d+)/.exec(line)![1]), 0);
    // Every dropped datagram is either logged or counted in a summary, and the lines are few.
    assert.equal(dropLines.length + suppressed, 10000);
    assert.ok(summaries.length >= 1);
    assert.ok(dropLines.length <= 10 * summaries.length, `${dropLines.length} drop lines for ${summaries.length} windows`);
    assert.ok(inbox.logs.length < 100, `${inbox.logs.length} log lines`);
  });
});

const C_CLIENT = String.raw`
#include <systemd/sd-daemon.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
  int kept[2], extra[2];
  if (pipe(kept) < 0 || pipe(extra) < 0) return 10;
  printf("notify=%d\n", sd_notify(0, "READY=1\nSTATUS=libsystemd says hi"));
  printf("fdstore=%d\n", sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=kept", &kept[1], 1));
  printf("extra=%d\n", sd_pid_notify_with_fds(0, 0, "X_EXTRA=1", &extra[1], 1));
  close(kept[1]);
  close(extra[1]);
  printf("barrier=%d\n", sd_notify_barrier(0, 5000000));
  /* After the barrier everything above was handled: read without waiting. */
  fcntl(kept[0], F_SETFL, O_NONBLOCK);
  fcntl(extra[0], F_SETFL, O_NONBLOCK);
  char buf[64];
  ssize_t n = read(kept[0], buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  printf("kept=%s\n", buf);
  printf("extra-read=%zd\n", read(extra[0], buf, sizeof buf));
  return 0;
}
`;

function compileClient(): string | false {
  if (!have('cc')) return false;
  const libs = spawnSync('pkg-config', ['--cflags', '--libs', 'libsystemd'], { encoding: 'utf8' });
  if (libs.status !== 0) return false;
  const cdir = mkdtempSync(join(tmpdir(), 'holdfast-sdnotify-c-'));
  after(() => rmSync(cdir, { recursive: true, force: true }));
  writeFileSync(join(cdir, 'client.c'), C_CLIENT);
  const binary = join(cdir, 'client');
  const cc = spawnSync('cc', ['-o', binary, join(cdir, 'client.c'), ...libs.stdout.trim().split(/\s+/)], { encoding: 'utf8' });
  return cc.status === 0 ? binary : false;
}

const cClient = compileClient();

describe('NotifyServer and libsystemd', { skip: cClient === false ? 'cc, pkg-config or libsystemd-dev (apt-get install libsystemd-dev pkg-config) is missing' : false }, () => {
  it('receives sd_notify and sd_pid_notify_with_fds, attributes them by pidfd id, answers sd_notify_barrier', async () => {
    const inbox = new Inbox();
    const server = NotifyServer.open({ path: join(dir, 'libsystemd', 'notify'), log: inbox.log, onMessage: inbox.handler });
    let keptFdName: string | undefined;
    inbox.onMessage = (m) => {
      if (!m.has('FDSTORE', '1')) return;
      keptFdName = m.get('FDNAME');
      const [fd] = m.takeFds();
      writeSync(fd!, 'kept-ok');
      closeSync(fd!);
    };
    try {
      const child = spawn(cClient as string, [], { env: { ...process.env, NOTIFY_SOCKET: server.path }, stdio: ['ignore', 'pipe', 'pipe'] });
      const handle = Pidfd.fromChild(child);
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      handle.close();
      assert.equal(code, 0);
      assert.equal(stdout, 'notify=1\nfdstore=1\nextra=1\nbarrier=1\nkept=kept-ok\nextra-read=0\n');
      assert.deepEqual(
        inbox.seen.map((s) => s.assignments),
        [
          [
            ['READY', '1'],
            ['STATUS', 'libsystemd says hi'],
          ],
          [
            ['FDSTORE', '1'],
            ['FDNAME', 'kept'],
          ],
          [['X_EXTRA', '1']],
        ],
      );
      assert.equal(keptFdName, 'kept');
      for (const seen of inbox.seen) {
        assert.equal(seen.pid, child.pid);
        if (features().passPidfd && handle.id !== undefined) assert.equal(seen.pidfdId, handle.id);
      }
      assert.deepEqual(
        inbox.seen.map((s) => s.fds),
        [0, 1, 1],
      );
      assert.equal(server.stats.barriers, 1);
      assert.equal(server.stats.fdsClosed, 1, 'the fd of X_EXTRA=1 was closed (the client read EOF)');
    } finally {
      server.close();
    }
  });
});

describe('NotifyServer and systemd-notify', { skip: noSystemdNotify }, () => {
  it('systemd-notify --ready --status: attributed to the shell it speaks for; its barrier is answered', async () => {
    const inbox = new Inbox();
    const server = NotifyServer.open({ path: join(dir, 'systemd-notify', 'notify'), log: inbox.log, onMessage: inbox.handler });
    try {
      // systemd-notify sends on behalf of its parent (sd_pid_notify(getppid())), then waits on a barrier.
      const shell = spawn('sh', ['-c', 'systemd-notify --ready --status=hi; echo "rc=$?"'], {
        env: { ...process.env, NOTIFY_SOCKET: server.path },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const handle = Pidfd.fromChild(shell);
      let stdout = '';
      let stderr = '';
      shell.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      shell.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      await new Promise((resolve) => shell.once('close', resolve));
      handle.close();
      assert.equal(stdout, 'rc=0\n', stderr);
      assert.equal(inbox.seen.length, 1);
      const seen = inbox.seen[0]!;
      assert.deepEqual(seen.assignments, [
        ['READY', '1'],
        ['STATUS', 'hi'],
      ]);
      assert.equal(seen.pid, shell.pid);
      if (features().passPidfd && handle.id !== undefined) assert.equal(seen.pidfdId, handle.id);
      assert.equal(server.stats.barriers, 1);
    } finally {
      server.close();
    }
  });

  it('attributes a message whose sender exited and was reaped before it was read (SCM_PIDFD)', { skip: noPython || !features().passPidfd ? 'needs python3 and SO_PASSPIDFD' : false }, () => {
    const inbox = new Inbox();
    const server = NotifyServer.open({ path: join(dir, 'reaped', 'notify'), log: inbox.log, onMessage: inbox.handler });
    try {
      // The event loop is blocked in spawnSync: the shell prints its own pidfd id (computed by
      // Python), systemd-notify sends on the shell's behalf, and both are gone before we read.
      const script =
        `${PYTHON} -c "import os; print(os.fstat(os.pidfd_open(os.getppid())).st_ino)"; ` +
        'systemd-notify --no-block --ready --status=gone; exit $?';
      const out = spawnSync('sh', ['-c', script], { env: { ...process.env, NOTIFY_SOCKET: server.path }, encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const shellId = BigInt(out.stdout.trim());
      assert.equal(server.drain(), 1);
      assert.equal(inbox.seen.length, 1);
      const seen = inbox.seen[0]!;
      assert.deepEqual(seen.assignments, [
        ['READY', '1'],
        ['STATUS', 'gone'],
      ]);
      assert.equal(seen.pid, out.pid);
      assert.equal(seen.hasPidfd, true);
      assert.equal(seen.pidfdProcPid, -1, 'the pidfd refers to a process already reaped');
      if (features().pidfdIds) assert.equal(seen.pidfdId, shellId);
    } finally {
      server.close();
    }
  });

  it('listens on an abstract address (@name)', async () => {
    const inbox = new Inbox();
    const server = NotifyServer.open({ path: `@holdfast-test-notify-${process.pid}`, log: inbox.log, onMessage: inbox.handler });
    try {
      const child = spawn('systemd-notify', ['--status=abstract'], { env: { ...process.env, NOTIFY_SOCKET: server.path }, stdio: 'ignore' });
      const code = await new Promise((resolve) => child.once('close', resolve));
      assert.equal(code, 0);
      assert.deepEqual(inbox.seen.map((s) => s.assignments), [[['STATUS', 'abstract']]]);
    } finally {
      server.close();
    }
  });
});
