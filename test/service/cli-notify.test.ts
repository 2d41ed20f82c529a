import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { native } from '../../src/native.js';
import { ownPidfdId } from '../../src/service/index.js';
import { PythonReceiver, pythonUnavailable, type Datagram } from './helpers/receiver.js';
import { cleanEnv, here, repoRoot, run } from './helpers/util.js';
import { existsSync, readSync } from 'node:fs';

const noPython = pythonUnavailable();
const isRoot = process.getuid?.() === 0;
const systemdNotify = spawnSync('systemd-notify', ['--version'], { encoding: 'utf8' });
const noSystemdNotify = systemdNotify.error === undefined ? undefined : `systemd-notify is not installed: ${systemdNotify.error.message}`;

/** `holdfast notify` through bin/holdfast.js once main.ts lists the verb, else through the same code path directly. */
const holdfastCommand = ((): string[] => {
  const bin = join(repoRoot(), 'bin/holdfast.js');
  const probe = spawnSync(process.execPath, [bin, 'notify', '--help'], { encoding: 'utf8' });
  return probe.status === 0 ? [bin, 'notify'] : [here('fixtures/run-notify.js')];
})();

function holdfastNotify(args: string[], env: NodeJS.ProcessEnv, stdio?: (number | 'pipe' | 'ignore')[]): ReturnType<typeof run> {
  return run(process.execPath, [...holdfastCommand, ...args], stdio === undefined ? { env } : { env, stdio });
}

function systemdNotifyRun(args: string[], env: NodeJS.ProcessEnv): ReturnType<typeof run> {
  return run('systemd-notify', args, { env });
}

describe('holdfast notify on the wire, next to systemd-notify', { skip: noPython }, () => {
  let receiver: PythonReceiver;
  let abstract: PythonReceiver;
  before(async () => {
    [receiver, abstract] = await Promise.all([PythonReceiver.start('path', 'manager'), PythonReceiver.start('abstract', 'manager')]);
  });
  after(async () => {
    await Promise.all([receiver?.close(), abstract?.close()]);
  });
  const env = (): NodeJS.ProcessEnv => cleanEnv({ NOTIFY_SOCKET: receiver.address });

  /** The datagrams one command produced: its message, then its barrier (unless --no-block). */
  async function sent(count: number): Promise<Datagram[]> {
    const out: Datagram[] = [];
    for (let i = 0; i < count; i++) out.push(await receiver.next());
    return out;
  }

  it('--ready: both send READY=1 on behalf of their parent (us), then a barrier', async (t) => {
    if (noSystemdNotify !== undefined) return t.skip(noSystemdNotify);
    const theirs = await systemdNotifyRun(['--ready'], env());
    assert.equal(theirs.code, 0, theirs.stderr);
    const [theirMessage, theirBarrier] = await sent(2);
    const ours = await holdfastNotify(['--ready'], env());
    assert.equal(ours.code, 0, ours.stderr);
    const [ourMessage, ourBarrier] = await sent(2);
    assert.deepEqual(theirMessage!.bytes, Buffer.from('READY=1'));
    assert.deepEqual(ourMessage!.bytes, theirMessage!.bytes);
    assert.equal(theirMessage!.pid, process.pid);
    assert.equal(ourMessage!.pid, process.pid);
    assert.deepEqual([ourMessage!.uid, ourMessage!.gid], [theirMessage!.uid, theirMessage!.gid]);
    for (const barrier of [theirBarrier!, ourBarrier!]) {
      assert.equal(barrier.text, 'BARRIER=1');
      assert.equal(barrier.fds.length, 1);
      assert.equal(barrier.fds[0]!.kind, 'fifo');
    }
  });

  it('--status, --pid=self and VARIABLE=VALUE: systemd-notify\'s order, plus MAINPIDFDID of the named process', async (t) => {
    const args = ['--ready', '--status=hi there', '--pid=self', 'FOO=bar', 'READY=2'];
    const ours = await holdfastNotify(args, env());
    assert.equal(ours.code, 0, ours.stderr);
    const [message] = await sent(2);
    assert.equal(message!.pid, ours.pid, 'with --pid=self the credentials are its own');
    assert.equal(message!.text, `READY=2\nSTATUS=hi there\nMAINPID=${ours.pid}\nMAINPIDFDID=${message!.mainPidIno}\nFOO=bar`);
    assert.equal(typeof message!.mainPidIno, 'number');
    if (noSystemdNotify !== undefined) return t.skip(noSystemdNotify);
    const theirs = await systemdNotifyRun(args, env());
    assert.equal(theirs.code, 0, theirs.stderr);
    const [their] = await sent(2);
    // systemd 252 predates MAINPIDFDID=; everything else is the same, in the same order.
    const withoutId = message!.text.replace(/\nMAINPIDFDID=\d+/, '').replace(`MAINPID=${ours.pid}`, `MAINPID=${theirs.pid}`);
    assert.equal(their!.text.replace(/\nMAINPIDFDID=\d+/, ''), withoutId);
  });

  it('--reloading --no-block sends RELOADING=1 with MONOTONIC_USEC and no barrier', async () => {
    const before = process.hrtime.bigint() / 1000n;
    const ours = await holdfastNotify(['--reloading', '--no-block'], env());
    const afterwards = process.hrtime.bigint() / 1000n;
    assert.equal(ours.code, 0, ours.stderr);
    const { sent: marked } = { sent: (await import('../../src/service/index.js')).notify({ X_MARKER: 'after-no-block' }, { socket: receiver.address }) };
    assert.equal(marked.sent, true);
    const [message, marker] = await sent(2);
    const match = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(message!.text);
    assert.ok(match, message!.text);
    assert.ok(before <= BigInt(match[1]!) && BigInt(match[1]!) <= afterwards);
    assert.equal(marker!.text, 'X_MARKER=after-no-block', 'no barrier came between');
  });

  it('--fd/--fdname store a pipe: Python writes into it and we read it', async () => {
    const [readEnd, writeEnd] = native.pipe(false);
    try {
      const ours = await holdfastNotify(['--fd=3', '--fdname=pipe'], env(), ['ignore', 'pipe', 'pipe', writeEnd]);
      assert.equal(ours.code, 0, ours.stderr);
      const [message] = await sent(2);
      assert.equal(message!.text, 'FDSTORE=1\nFDNAME=pipe');
      assert.equal(message!.fds.length, 1);
      assert.equal(message!.fds[0]!.kind, 'fifo');
      await receiver.command('write', { key: message!.fds[0]!.key, data: 'stored' });
      const buffer = Buffer.alloc(16);
      assert.equal(buffer.subarray(0, readSync(readEnd, buffer)).toString(), 'stored');
      await receiver.command('close', { key: message!.fds[0]!.key });
    } finally {
      native.close(readEnd);
      native.close(writeEnd);
    }
  });

  it('--pid=parent is refused when the parent is the manager; --pid (auto) then names itself', async () => {
    const managed = cleanEnv({ NOTIFY_SOCKET: receiver.address, MANAGERPID: String(process.pid), MANAGERPIDFDID: String(ownPidfdId()) });
    const refused = await holdfastNotify(['--pid=parent'], managed);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`refusing to name the parent process ${process.pid} as the main process: it is the service manager`));
    const auto = await holdfastNotify(['--pid'], managed);
    assert.equal(auto.code, 0, auto.stderr);
    const [message] = await sent(2);
    assert.equal(message!.text, `MAINPID=${auto.pid}\nMAINPIDFDID=${message!.mainPidIno}`);
    assert.equal(message!.pid, auto.pid, 'a message is not sent on behalf of the manager either');
    // A $MANAGERPIDFDID that does not match means the manager is not our parent after all.
    const stale = cleanEnv({ NOTIFY_SOCKET: receiver.address, MANAGERPID: String(process.pid), MANAGERPIDFDID: String(ownPidfdId()! + 1_000_000n) });
    const parent = await holdfastNotify(['--pid'], stale);
    assert.equal(parent.code, 0, parent.stderr);
    const [named] = await sent(2);
    assert.equal(named!.text, `MAINPID=${process.pid}\nMAINPIDFDID=${ownPidfdId()}`);
    assert.equal(named!.pid, process.pid);
  });

  it('works with an abstract socket too, and --uid= claims a user', async () => {
    const ours = await holdfastNotify(['--stopping', '--status=bye', ...(isRoot ? ['--uid=65534'] : [])], cleanEnv({ NOTIFY_SOCKET: abstract.address }));
    assert.equal(ours.code, 0, ours.stderr);
    const message = await abstract.next();
    assert.equal(message.text, 'STOPPING=1\nSTATUS=bye');
    if (isRoot) assert.equal(message.uid, 65534, '--uid= claims that user in the credentials');
    assert.equal((await abstract.next()).text, 'BARRIER=1');
  });

  it('refuses a value with a newline instead of sending two assignments', async () => {
    const ours = await holdfastNotify(['--status=a\nREADY=1'], env());
    assert.equal(ours.code, 1);
    assert.match(ours.stderr, /newline/);
  });
});

describe('holdfast notify exit codes match systemd-notify', () => {
  const cases: [string, string[], NodeJS.ProcessEnv][] = [
    ['no $NOTIFY_SOCKET', ['--ready'], cleanEnv()],
    ['no arguments', [], cleanEnv()],
    ['an unknown option', ['--bogus'], cleanEnv()],
    ['--booted', ['--booted'], cleanEnv()],
    ['--fdname without --fd', ['--fdname=x'], cleanEnv({ NOTIFY_SOCKET: '/nonexistent/notify' })],
    ['a socket that does not exist', ['--ready'], cleanEnv({ NOTIFY_SOCKET: '/nonexistent/notify' })],
    ['an empty $NOTIFY_SOCKET', ['--ready'], cleanEnv({ NOTIFY_SOCKET: '' })],
  ];
  it('in every case (run side by side)', async (t) => {
    const ours = await Promise.all(cases.map(([, args, env]) => holdfastNotify(args, env)));
    assert.equal(ours[0]!.stderr, 'holdfast notify: No status data could be sent: $NOTIFY_SOCKET was not set\n');
    const booted = existsSync('/run/systemd/system') ? 0 : 1;
    assert.deepEqual(ours.map((result) => result.code), [1, 1, 1, booted, 1, 1, 1]);
    if (noSystemdNotify !== undefined) return t.skip(noSystemdNotify);
    const theirs = await Promise.all(cases.map(([, args, env]) => systemdNotifyRun(args, env)));
    cases.forEach(([what], i) => {
      assert.equal(ours[i]!.code, theirs[i]!.code, `${what}: holdfast: ${ours[i]!.stderr}; systemd-notify: ${theirs[i]!.stderr}`);
    });
  });
});
