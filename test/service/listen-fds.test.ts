import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { native } from '../../src/native.js';
import { Pidfd } from '../../src/pidfd/index.js';
import { inspectListenFds, listenFds, listenOn, ownPidfdId } from '../../src/service/index.js';
import { within } from './helpers/receiver.js';
import { exitOf, here } from './helpers/util.js';

const SD_LISTEN = String.raw`
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static void field(const char *key, const char *value) {
  if (value) printf("\"%s\":\"%s\",", key, value);
  else printf("\"%s\":null,", key);
}

int main(void) {
  printf("{");
  field("LISTEN_PID", getenv("LISTEN_PID"));
  field("LISTEN_PIDFDID", getenv("LISTEN_PIDFDID"));
  field("LISTEN_FDS", getenv("LISTEN_FDS"));
  field("LISTEN_FDNAMES", getenv("LISTEN_FDNAMES"));
  int before = fcntl(3, F_GETFD);
  char **names = NULL;
  int n = sd_listen_fds_with_names(1, &names);
  int after = fcntl(3, F_GETFD);
  printf("\"n\":%d,\"pid\":%d,\"names\":[", n, (int)getpid());
  for (int i = 0; i < n; i++) printf("%s\"%s\"", i ? "," : "", names[i]);
  printf("],\"cloexecBefore\":%s,\"cloexecAfter\":%s,", before >= 0 && (before & FD_CLOEXEC) ? "true" : "false",
         after >= 0 && (after & FD_CLOEXEC) ? "true" : "false");
  printf("\"isUnixStreamListening\":%d,", sd_is_socket(3, AF_UNIX, SOCK_STREAM, 1));
  printf("\"unset\":%s}\n", !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES") ? "true" : "false");
  return 0;
}
`;

interface SdReport {
  LISTEN_PID: string | null;
  LISTEN_PIDFDID: string | null;
  LISTEN_FDS: string | null;
  LISTEN_FDNAMES: string | null;
  n: number;
  pid: number;
  names: string[];
  cloexecBefore: boolean;
  cloexecAfter: boolean;
  isUnixStreamListening: number;
  unset: boolean;
}

interface NodeReport {
  pid: number;
  before: { cloexec: boolean | null; env: Record<string, string | null> };
  result: { fds: { fd: number; name: string; index: number }[]; ignored?: string } | { error: string; message: string };
  after: { cloexec: boolean | null; env: Record<string, string | null> };
  served?: { fd: number; name: string; index: number };
}

const EMPTY_ENV = { LISTEN_PID: null, LISTEN_PIDFDID: null, LISTEN_FDS: null, LISTEN_FDNAMES: null };

/** A listening AF_UNIX stream socket (abstract name) as a bare fd, the way a manager holds one. */
async function listeningSocket(): Promise<{ fd: number; name: string }> {
  const name = `\0holdfast-test-listen-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(name, resolve));
  const fd = native.dup((server as unknown as { _handle: { fd: number } })._handle.fd, true);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { fd, name };
}

/**
 * Starts `file` with the native spawn: fd 3 is `socketFd`, `listenEnv` makes the child set
 * LISTEN_PID and LISTEN_PIDFDID to its own values before exec. Resolves with its stdout, pid and id.
 */
async function spawnActivated(file: string, argv: string[], env: string[], socketFd: number, listenEnv = true): Promise<{ stdout: string; pid: number; id: bigint | undefined }> {
  const [readEnd, writeEnd] = native.pipe(false);
  const devNull = openSync('/dev/null', 'r');
  let child;
  try {
    child = native.spawn({ file, argv: [file, ...argv], env: [`PATH=${process.env['PATH'] ?? '/usr/bin:/bin'}`, ...env], fds: [devNull, writeEnd, 2, socketFd], listenEnv });
  } finally {
    native.close(writeEnd);
    closeSync(devNull);
  }
  const handle = Pidfd.adopt(child.pidfd, { pid: child.pid, reap: true });
  try {
    let stdout = '';
    const stream = createReadStream('', { fd: readEnd, encoding: 'utf8' });
    stream.on('data', (chunk) => (stdout += String(chunk)));
    await within(new Promise<void>((resolve) => stream.on('close', () => resolve())), `output of ${file}`);
    const status = await within(handle.exited, `${file} to exit`);
    assert.equal(status.code, 0, `${file} exited with ${JSON.stringify(status)}: ${stdout}`);
    return { stdout, pid: child.pid, id: handle.id };
  } finally {
    handle.close();
  }
}

function envFor(pid: number, extra: Record<string, string>): Record<string, string> {
  return { LISTEN_PID: String(pid), ...extra };
}

describe('listenFds() decides from the environment', () => {
  it('returns nothing, and says why, when the variables are absent or for another process', () => {
    assert.deepEqual(inspectListenFds({ env: {} }), { fds: [], ignored: '$LISTEN_PID is not set' });
    assert.deepEqual(listenFds({ env: { LISTEN_FDS: '1' } }), []);
    assert.deepEqual(inspectListenFds({ env: envFor(process.pid + 1, { LISTEN_FDS: '1' }) }), {
      fds: [],
      ignored: `$LISTEN_PID=${process.pid + 1} is another process (this is ${process.pid})`,
    });
    const own = ownPidfdId()!;
    assert.deepEqual(inspectListenFds({ env: envFor(process.pid, { LISTEN_PIDFDID: String(own + 1n), LISTEN_FDS: '1' }) }), {
      fds: [],
      ignored: `$LISTEN_PIDFDID=${own + 1n} is another process (this process's pidfd id is ${own})`,
    });
    assert.deepEqual(inspectListenFds({ env: envFor(process.pid, { LISTEN_PIDFDID: String(own) }) }), { fds: [], ignored: '$LISTEN_FDS is not set' });
  });

  it('throws EINVAL for malformed variables, naming them', () => {
    const own = String(ownPidfdId());
    const cases: [Record<string, string>, RegExp][] = [
      [{ LISTEN_PID: 'x1' }, /\$LISTEN_PID="x1" is not a PID/],
      [{ LISTEN_PID: '' }, /\$LISTEN_PID="" is set but empty/],
      [envFor(process.pid, { LISTEN_PIDFDID: '' }), /\$LISTEN_PIDFDID="" is set but empty/],
      [envFor(process.pid, { LISTEN_PIDFDID: own, LISTEN_FDS: '0' }), /\$LISTEN_FDS="0" must be at least 1/],
      [envFor(process.pid, { LISTEN_PIDFDID: own, LISTEN_FDS: 'two' }), /\$LISTEN_FDS="two" is not a count/],
      [envFor(process.pid, { LISTEN_PIDFDID: own, LISTEN_FDS: '2', LISTEN_FDNAMES: 'web' }), /\$LISTEN_FDNAMES="web" names 1 fds but \$LISTEN_FDS=2/],
    ];
    for (const [env, message] of cases) assert.throws(() => listenFds({ env }), { code: 'EINVAL', message });
  });

  it('unsetEnvironment removes the variables from process.env whatever the outcome', () => {
    const names = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'];
    const saved = names.map((name) => process.env[name]);
    Object.assign(process.env, { LISTEN_PID: String(process.pid + 1), LISTEN_PIDFDID: '5', LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' });
    try {
      assert.deepEqual(listenFds({ unsetEnvironment: true }), []);
      assert.deepEqual(names.map((name) => process.env[name]), [undefined, undefined, undefined, undefined]);
    } finally {
      names.forEach((name, i) => (saved[i] === undefined ? delete process.env[name] : (process.env[name] = saved[i])));
    }
  });

  it('listenOn() rejects a name that was not passed', async () => {
    await assert.rejects(listenOn(createServer(), 'nope', { fds: [] }), { code: 'ENOENT', message: /no inherited fd named "nope"; none were passed/ });
  });
});

describe('libsystemd and holdfast agree on the LISTEN_* environment', () => {
  let dir: string;
  let program: string | undefined;
  let libsystemdVersion = 0;
  let unavailable: string | undefined;
  before(() => {
    const cc = spawnSync('cc', ['--version'], { encoding: 'utf8' });
    if (cc.error !== undefined) return void (unavailable = `no C compiler (cc): ${cc.error.message}`);
    const flags = spawnSync('pkg-config', ['--cflags', '--libs', 'libsystemd'], { encoding: 'utf8' });
    if (flags.error !== undefined || flags.status !== 0) {
      return void (unavailable = `libsystemd-dev is not installed (pkg-config libsystemd: ${flags.error?.message ?? flags.stderr.trim()})`);
    }
    libsystemdVersion = Number(spawnSync('pkg-config', ['--modversion', 'libsystemd'], { encoding: 'utf8' }).stdout.trim().split('.')[0]);
    dir = mkdtempSync(join(tmpdir(), 'holdfast-sd-listen-'));
    writeFileSync(join(dir, 'sd-listen.c'), SD_LISTEN);
    const out = join(dir, 'sd-listen');
    const build = spawnSync('sh', ['-c', `cc -o "${out}" "${join(dir, 'sd-listen.c')}" $(pkg-config --cflags --libs libsystemd)`], { encoding: 'utf8' });
    if (build.status !== 0) return void (unavailable = `compiling against libsystemd failed: ${build.stderr}`);
    program = out;
  });
  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("sd_listen_fds_with_names() accepts what the native spawn's listenEnv hands a child", async (t) => {
    if (program === undefined) return t.skip(unavailable);
    const socket = await listeningSocket();
    try {
      const { stdout, pid, id } = await spawnActivated(program, [], ['LISTEN_FDS=1', 'LISTEN_FDNAMES=web'], socket.fd);
      const report = JSON.parse(stdout) as SdReport;
      assert.deepEqual(report, {
        LISTEN_PID: String(pid),
        LISTEN_PIDFDID: String(id),
        LISTEN_FDS: '1',
        LISTEN_FDNAMES: 'web',
        n: 1,
        pid,
        names: ['web'],
        cloexecBefore: false,
        cloexecAfter: true,
        isUnixStreamListening: 1,
        unset: true,
      });
    } finally {
      native.close(socket.fd);
    }
  });

  it('listenFds() accepts the same environment and serves HTTP on the inherited socket', async () => {
    const socket = await listeningSocket();
    try {
      const spawned = spawnActivated(process.execPath, [here('fixtures/listen-report.js'), '--serve'], ['LISTEN_FDS=1', 'LISTEN_FDNAMES=web'], socket.fd);
      const body = await within(httpGet(socket.name), 'the HTTP answer from the activated child');
      const { pid, id } = await spawned;
      const report = JSON.parse(body) as NodeReport;
      assert.equal(report.pid, pid);
      // (Node itself marks inherited fds close-on-exec at start-up, so only the result is checked here;
      // the C program above shows the fd arriving without FD_CLOEXEC.)
      assert.deepEqual(report.before.env, { LISTEN_PID: String(pid), LISTEN_PIDFDID: String(id), LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' });
      assert.deepEqual(report.result, { fds: [{ fd: 3, name: 'web', index: 0 }] });
      assert.deepEqual(report.after, { cloexec: true, env: EMPTY_ENV });
      assert.deepEqual(report.served, { fd: 3, name: 'web', index: 0 });
    } finally {
      native.close(socket.fd);
    }
  });

  it('listenFds() refuses when LISTEN_PID is another process, and when LISTEN_PIDFDID is not its own', async (t) => {
    const socket = await listeningSocket();
    try {
      const other = await spawnActivated(process.execPath, [here('fixtures/listen-report.js')], [`LISTEN_PID=${process.pid}`, 'LISTEN_FDS=1', 'LISTEN_FDNAMES=web'], socket.fd, false);
      const otherReport = JSON.parse(other.stdout) as NodeReport;
      assert.deepEqual(otherReport.result, { fds: [], ignored: `$LISTEN_PID=${process.pid} is another process (this is ${other.pid})` });
      assert.deepEqual(otherReport.after.env, EMPTY_ENV);

      // A wrong LISTEN_PIDFDID ahead of the real one: getenv() finds the first, in C and in Node alike.
      const forged = await spawnActivated(process.execPath, [here('fixtures/listen-report.js')], ['LISTEN_PIDFDID=1', 'LISTEN_FDS=1', 'LISTEN_FDNAMES=web'], socket.fd);
      const forgedReport = JSON.parse(forged.stdout) as NodeReport;
      assert.equal(forgedReport.before.env['LISTEN_PID'], String(forged.pid));
      assert.equal(forgedReport.before.env['LISTEN_PIDFDID'], '1');
      assert.deepEqual(forgedReport.result, { fds: [], ignored: `$LISTEN_PIDFDID=1 is another process (this process's pidfd id is ${forged.id})` });

      if (program === undefined) return t.diagnostic(`libsystemd comparison skipped: ${unavailable}`);
      const sd = JSON.parse((await spawnActivated(program, [], ['LISTEN_PIDFDID=1', 'LISTEN_FDS=1', 'LISTEN_FDNAMES=web'], socket.fd)).stdout) as SdReport;
      assert.equal(sd.LISTEN_PIDFDID, '1');
      // libsystemd learnt $LISTEN_PIDFDID in v259; older versions ignore it and accept the fds.
      assert.equal(sd.n, libsystemdVersion >= 259 ? 0 : 1, `libsystemd ${libsystemdVersion}`);
    } finally {
      native.close(socket.fd);
    }
  });

  it('listenFds() accepts what systemd-socket-activate hands its child', async (t) => {
    const probe = spawnSync('systemd-socket-activate', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined) return t.skip(`systemd-socket-activate is not installed: ${probe.error.message}`);
    const tmp = mkdtempSync(join(tmpdir(), 'holdfast-socket-activate-'));
    const path = join(tmp, 'http.sock');
    const child = spawn('systemd-socket-activate', ['-l', path, '--fdname=web', process.execPath, here('fixtures/listen-report.js'), '--serve'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    try {
      const body = await within(retryGet(path, () => stderr), 'the HTTP answer through systemd-socket-activate');
      const report = JSON.parse(body) as NodeReport;
      assert.equal(report.pid, child.pid, 'systemd-socket-activate execs the program in its own process');
      assert.equal(report.before.env['LISTEN_PID'], String(child.pid));
      assert.equal(report.before.env['LISTEN_FDS'], '1');
      assert.equal(report.before.env['LISTEN_FDNAMES'], 'web');
      assert.deepEqual(report.result, { fds: [{ fd: 3, name: 'web', index: 0 }] });
      assert.deepEqual(report.after, { cloexec: true, env: EMPTY_ENV });
      assert.deepEqual(report.served, { fd: 3, name: 'web', index: 0 });
      assert.deepEqual(await exitOf(child), { code: 0, signal: null });
    } finally {
      child.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

function httpGet(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ socketPath, path: '/' }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** The socket appears once systemd-socket-activate has bound it: retry until it answers. */
async function retryGet(path: string, stderr: () => string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await httpGet(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || attempt > 400) throw new Error(`${String(error)}; stderr: ${stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
