import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { features, Pidfd, ProcessRef, bootId, signalNumber, signalName } from '../../src/index.js';
import { native } from '../../src/native.js';
import { pidReuseUnsupported, runInFreshPidNamespace } from '../helpers/pid-reuse.js';
import { childExit, grandchild, openFdCount, pythonPidfdId, sleeper } from '../helpers/processes.js';

const have = features();

describe('Pidfd identity', () => {
  it('gives the same id as Python os.pidfd_open + os.fstat, for us and for a child', async () => {
    assert.ok(have.pidfdIds, 'this suite expects a kernel with pidfs ids (6.9+)');
    using self = Pidfd.self();
    assert.equal(self.pid, process.pid);
    assert.equal(self.id, pythonPidfdId(process.pid));
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    assert.equal(handle.pid, child.pid);
    assert.equal(handle.id, pythonPidfdId(child.pid!));
    assert.notEqual(handle.id, self.id);
    handle.signal('SIGKILL');
    await childExit(child);
  });

  it('verify accepts the right id, refuses another with ESTALE, and a missing process with ESRCH', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    using again = Pidfd.verify(child.pid!, handle.id!);
    assert.equal(again.verified, true);
    assert.equal(again.id, handle.id);
    assert.throws(() => Pidfd.verify(child.pid!, handle.id! + 1n), { code: 'ESTALE' });
    Pidfd.verify(child.pid!, String(handle.id)).close();
    handle.signal('SIGKILL');
    await childExit(child);
    assert.throws(() => Pidfd.verify(child.pid!, handle.id!), { code: 'ESRCH' });
    assert.throws(() => Pidfd.verify(1, '12abc'), { code: 'EINVAL' });
    assert.throws(() => Pidfd.open(-4), { code: 'EINVAL' });
  });

  it('refuses to signal a process whose PID was reused by another (real reuse in a PID namespace)', async (t) => {
    const reason = pidReuseUnsupported();
    if (reason !== undefined) return t.skip(reason);
    const script = fileURLToPath(new URL('./scenarios/reuse.js', import.meta.url));
    const result = await runInFreshPidNamespace<{
      pid: number;
      usurperPid: number;
      oldId: string;
      newId: string;
      ended: { code: number | null; signal: string | null };
      signalResult: string;
      verifyResult: string;
      resolveResult: string;
      usurperAlive: boolean;
      usurperEnd: { signal: string | null };
    }>(script);
    assert.equal(result.usurperPid, result.pid, 'the PID came round again');
    assert.notEqual(result.newId, result.oldId);
    assert.deepEqual(result.ended, { code: null, signal: 'SIGKILL', coreDumped: false });
    assert.equal(result.signalResult, 'ESRCH', 'the old handle must not reach the new process');
    assert.equal(result.verifyResult, 'ESTALE');
    assert.equal(result.resolveResult, 'ESTALE');
    assert.equal(result.usurperAlive, true, 'the process that took the PID was not harmed');
    assert.equal(result.usurperEnd.signal, 'SIGKILL');
  });
});

describe('Pidfd signals and exits', () => {
  it('exited reports a child exit code and a signal', async () => {
    const child = spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore' });
    using handle = Pidfd.fromChild(child);
    assert.deepEqual(await handle.exited, { code: 7, signal: null, coreDumped: false });
    assert.deepEqual(handle.exitStatus(), { code: 7, signal: null, coreDumped: false });
    assert.equal(handle.isAlive(), false);
    const node = await childExit(child);
    assert.equal(node.code, 7, 'libuv still reaps its own child and sees the same status');

    const victim = sleeper();
    using victimHandle = Pidfd.fromChild(victim);
    assert.equal(victimHandle.isAlive(), true);
    assert.equal(victimHandle.exitStatus(), undefined);
    victimHandle.signal('SIGUSR1');
    assert.deepEqual(await victimHandle.exited, { code: null, signal: 'SIGUSR1', coreDumped: false });
    await childExit(victim);
  });

  it('exited and exitStatus work for a process that is not our child', async () => {
    const { pid, parent } = await grandchild('sleep 0.2; exit 42');
    using handle = Pidfd.open(pid);
    assert.equal(handle.isAlive(), true);
    const status = await handle.exited;
    if (have.infoExit) {
      assert.deepEqual(status, { code: 42, signal: null, coreDumped: false });
      assert.deepEqual(handle.exitStatus(), { code: 42, signal: null, coreDumped: false });
      assert.deepEqual(handle.info().exit, { code: 42, signal: null, coreDumped: false });
    } else {
      assert.deepEqual(status, { code: null, signal: null, coreDumped: false });
    }
    await childExit(parent);
  });

  it('a non-child killed by a signal reports the signal', async () => {
    const { pid, parent } = await grandchild('exec sleep 600');
    using handle = Pidfd.open(pid);
    handle.signal(signalNumber('TERM'));
    const status = await handle.exited;
    if (have.infoExit) assert.deepEqual(status, { code: null, signal: 'SIGTERM', coreDumped: false });
    await childExit(parent);
  });

  it('signals a whole process group through the leader', async (t) => {
    if (!have.signalProcessGroup) return t.skip('PIDFD_SIGNAL_PROCESS_GROUP needs Linux 6.9');
    const leader = spawn('sh', ['-c', 'sleep 600 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    const memberPid = await new Promise<number>((resolve) => leader.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(Number(s))));
    using leaderHandle = Pidfd.fromChild(leader);
    using member = Pidfd.open(memberPid);
    leaderHandle.signal('SIGTERM', { processGroup: true });
    const memberEnd = await member.exited;
    assert.equal(memberEnd.signal, 'SIGTERM');
    assert.equal((await leaderHandle.exited).signal, 'SIGTERM');
    await childExit(leader);
  });

  it('fromChild refuses a child Node already reaped', async () => {
    const child = spawn('true');
    await childExit(child);
    assert.throws(() => Pidfd.fromChild(child), { code: 'ESRCH' });
  });

  it('a signal to a reaped process is ESRCH; unknown signals are EINVAL', async () => {
    const child = spawn('true');
    using handle = Pidfd.fromChild(child);
    await childExit(child);
    assert.throws(() => handle.signal('SIGTERM'), { code: 'ESRCH' });
    assert.throws(() => handle.signal('SIGNOPE'), { code: 'EINVAL' });
    assert.equal(signalName(signalNumber('hup')), 'SIGHUP');
    assert.equal(signalNumber('SIGRTMIN+2'), 36);
  });

  it('an unref\'d wait does not keep the process alive', async () => {
    const script = `
      import { Pidfd } from ${JSON.stringify(new URL('../../src/index.js', import.meta.url).href)};
      const h = Pidfd.self();
      h.unref();
      h.exited.then(() => console.log('never'));
      console.log('left');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const end = await childExit(child);
    assert.equal(end.code, 0);
    assert.equal(out.trim(), 'left');
  });
});

describe('Pidfd resources', () => {
  it('does not leak fds across thousands of open/close, verify and watched exits', async () => {
    const before = openFdCount();
    for (let i = 0; i < 5000; i++) {
      const handle = Pidfd.self();
      handle.close();
      handle.close();
    }
    using self = Pidfd.self();
    for (let i = 0; i < 2000; i++) Pidfd.verify(process.pid, self.id!).close();
    for (let i = 0; i < 20; i++) {
      const child = spawn('true');
      const handle = Pidfd.fromChild(child);
      await handle.exited;
      handle.close();
      await childExit(child);
    }
    assert.equal(openFdCount(), before + 1);
  });

  it('closes handles that were collected without close()', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const before = openFdCount();
    (() => {
      for (let i = 0; i < 3000; i++) Pidfd.self();
    })();
    assert.ok(openFdCount() >= before + 3000 - 5, 'the handles hold fds while alive');
    for (let round = 0; round < 20 && openFdCount() > before; round++) {
      gc();
      await nextTurn();
    }
    assert.equal(openFdCount(), before);
  });

  it('native errors carry the errno name and the call', () => {
    assert.throws(() => native.pidfdOpen(0x3fffffff), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'ESRCH');
      assert.equal(error.syscall, 'pidfd_open');
      assert.match(error.message, /pidfd_open failed/);
      return true;
    });
    assert.throws(() => native.pidfdSendSignal(987654, 0), { code: 'EBADF' });
    assert.throws(() => native.waitPidfd(987654, 1), { code: 'EBADF' });
  });
});

describe('ProcessRef', () => {
  it('round-trips the ProcessId JSON and the shell form, and resolves to a verified handle', async () => {
    const child = sleeper();
    using handle = Pidfd.fromChild(child);
    const ref = ProcessRef.of(handle);
    assert.deepEqual(ref.toJSON(), { pid: child.pid, pidfdId: Number(handle.id), bootId: bootId() });
    assert.match(bootId(), /^[0-9a-f]{32}$/);
    assert.equal(ref.toString(), `${child.pid}:${handle.id}:${bootId()}`);
    assert.ok(ProcessRef.fromString(ref.toString()).equals(ref));
    assert.ok(ProcessRef.parse(JSON.parse(JSON.stringify(ref))).equals(ref));
    assert.equal(ref.toJSONText(), JSON.stringify(ref));
    using resolved = ref.resolve();
    assert.equal(resolved.verified, true);
    assert.equal(resolved.id, handle.id);
    handle.signal('SIGKILL');
    await childExit(child);
    assert.throws(() => ref.resolve(), { code: 'ESRCH' });
  });

  it('accepts what systemd accepts and refuses the rest', () => {
    assert.deepEqual(ProcessRef.parse(1234).toJSON(), { pid: 1234 });
    assert.deepEqual(ProcessRef.parse('1234').toJSON(), { pid: 1234 });
    const dashed = `${bootId().slice(0, 8)}-${bootId().slice(8, 12)}-${bootId().slice(12, 16)}-${bootId().slice(16, 20)}-${bootId().slice(20)}`;
    assert.equal(ProcessRef.parse({ pid: 5, pidfdId: 9, bootId: dashed.toUpperCase() }).bootId, bootId());
    assert.equal(ProcessRef.parse({ pid: 5, pidfdId: 9 }).bootId, bootId(), 'an id without a boot id means this boot');
    assert.equal(ProcessRef.parse({ pid: 5, pidfdId: null, bootId: null }).pidfdId, undefined);
    assert.equal(ProcessRef.fromString('{"pid":5,"pidfdId":18446744073709551615}').pidfdId, 18446744073709551615n);
    for (const bad of [null, [], {}, { pid: -1 }, { pid: 1.5 }, { pid: 1, pidfdId: 0 }, { pid: 1, pidfdId: 'x' }, { pid: 1, bootId: 'zz' }, { pid: 1, other: 1 }, '12a', true]) {
      assert.throws(() => ProcessRef.parse(bad), { code: 'EINVAL' }, JSON.stringify(bad));
    }
    assert.throws(() => ProcessRef.fromString('1:2:3'), { code: 'EINVAL' });
  });

  it('refuses to resolve a reference of another boot with EREMOTE', () => {
    const other = bootId().replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const ref = ProcessRef.parse({ pid: process.pid, pidfdId: 7, bootId: other });
    assert.equal(ref.isLocal(), false);
    assert.throws(() => ref.resolve(), { code: 'EREMOTE' });
  });
});
