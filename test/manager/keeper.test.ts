/**
 * The keeper hand-over: a new keeper's manifest only counts once the daemon commits it, and the old
 * keeper keeps everything until then, so a daemon killed in the middle of its own recovery loses
 * nothing. Real keeper processes, a real daemon stand-in killed with SIGKILL.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Keeper } from '../../src/manager/keeper/keeper.js';
import { decodeFromKeeper, encodeToKeeper, logPipeKey, type HeldLogPipe, type KeeperManifest } from '../../src/manager/keeper/protocol.js';
import { native, POLLIN } from '../../src/native.js';
import { Pidfd } from '../../src/pidfd/index.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-keeper-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const KEEPER_MODULE = fileURLToPath(new URL('../../src/manager/keeper/keeper.js', import.meta.url));

/** What the daemon hands over for the stdout pipe of `unit`'s first capture. */
function logItem(unit: string): HeldLogPipe {
  return { key: logPipeKey(unit, 1, 'stdout'), kind: 'log', unit, stream: 'stdout', invocationId: null, pid: null, pidfdId: null, spool: null };
}

function manifestOf(path: string): KeeperManifest {
  return JSON.parse(readFileSync(path, 'utf8')) as KeeperManifest;
}

/** Writes through the pipe and reads it back on `readFd`: the pipe is alive and that fd reads it. */
function roundTrip(writeFd: number, readFd: number, text: string): string {
  writeSync(writeFd, text);
  assert.ok(native.pollFd(readFd, POLLIN, 5000) > 0, 'data arrives');
  const buffer = Buffer.alloc(64);
  return buffer.toString('utf8', 0, readSync(readFd, buffer));
}

describe('keeper hand-over', () => {
  it('a daemon killed with a reply of the keeper unread leaves the keeper holding everything', async () => {
    const manifest = join(dir, 'unread.json');
    const [readFd, writeFd] = native.pipe(true);
    const script = `
      const { Keeper } = await import(${JSON.stringify(KEEPER_MODULE)});
      const keeper = Keeper.start(${JSON.stringify(manifest)});
      keeper.hold({ key: 'log:c.service:1:stdout', kind: 'log', unit: 'c.service', stream: 'stdout', spool: null }, 3);
      keeper.commit(undefined);
      keeper.sync();
      keeper.sync(0); // asks again and does not wait: the answer arrives and stays unread
      process.stdout.write(String(keeper.handle.pid) + '\\n');
      setInterval(() => {}, 1000);`;
    const daemon = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit', readFd] });
    native.close(readFd);
    const keeperPid = Number(await new Promise<string>((resolve) => daemon.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    using keeper = Pidfd.open(keeperPid);
    await new Promise((r) => setTimeout(r, 300));
    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(keeper.isAlive(), true, 'the keeper outlives a connection reset');
    const { fds, previous } = Keeper.takeOver(manifest, () => {});
    try {
      assert.equal(fds.length, 1);
      assert.equal(roundTrip(writeFd, fds[0]!.fd, 'held'), 'held');
    } finally {
      for (const entry of fds) native.close(entry.fd);
      native.close(writeFd);
      if (previous !== undefined) Keeper.retire(previous);
    }
  });

  it('a new keeper too slow to confirm leaves the old one holding everything; the old one is ended later, never before', async () => {
    const manifest = join(dir, 'slow.json');
    const [readFd, writeFd] = native.pipe(true);
    const first = Keeper.start(manifest);
    first.hold(logItem('b.service'), readFd);
    assert.equal(first.commit(undefined), true);
    assert.equal(first.sync(), true);
    native.close(readFd);
    // The first daemon is gone from here on; its keeper stays.
    using firstHandle = first.release()!;
    const { fds, previous } = Keeper.takeOver(manifest, () => {});
    const second = Keeper.start(manifest);
    try {
      second.hold(fds[0]!, fds[0]!.fd);
      // A Node process is not up within a millisecond: the commit cannot be confirmed in time.
      assert.equal(second.commit(previous, 1), false);
      assert.equal(firstHandle.isAlive(), true, 'the old keeper still holds everything');
      assert.equal(roundTrip(writeFd, fds[0]!.fd, 'kept'), 'kept');
      Keeper.retire(previous!);
      await firstHandle.exited;
      assert.equal(firstHandle.isAlive(), false);
      await new Promise((r) => setTimeout(r, 0));
      assert.equal(second.sync(), true, 'the new keeper took the commit once it was up');
      assert.equal(manifestOf(manifest).pid, second.handle!.pid);
    } finally {
      native.close(fds[0]!.fd);
      native.close(writeFd);
      second.stop();
    }
  });

  it('a daemon killed after taking over but before committing leaves the old keeper holding everything, and the new one ends', async () => {
    const manifest = join(dir, 'keeper.json');
    const [readFd, writeFd] = native.pipe(true);
    const first = Keeper.start(manifest);
    first.hold(logItem('a.service'), readFd);
    assert.equal(first.commit(undefined), true);
    assert.equal(first.sync(), true);
    native.close(readFd);
    // The first daemon is gone from here on; its keeper stays.
    using firstHandle = first.release()!;
    assert.equal(manifestOf(manifest).pid, firstHandle.pid);

    // A daemon stand-in: takes over, hands everything to a new keeper, and dies before committing.
    const script = `
      const { Keeper } = await import(${JSON.stringify(KEEPER_MODULE)});
      const { fds } = Keeper.takeOver(${JSON.stringify(manifest)}, () => {});
      const next = Keeper.start(${JSON.stringify(manifest)});
      for (const entry of fds) next.hold(entry, entry.fd);
      process.stdout.write(String(next.handle.pid) + '\\n');
      setInterval(() => {}, 1000);`;
    const daemon = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const nextPid = Number(await new Promise<string>((resolve) => daemon.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    const next = Pidfd.open(nextPid);
    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));

    await next.exited;
    assert.equal(next.isAlive(), false, 'the uncommitted keeper ends once its daemon is gone');
    assert.equal(firstHandle.isAlive(), true, 'the old keeper was not ended');
    assert.equal(manifestOf(manifest).pid, firstHandle.pid, 'the manifest still names the old keeper');

    // The next daemon finds everything where it was, commits a keeper of its own, and only then is the old one ended.
    const { fds, previous } = Keeper.takeOver(manifest, () => {});
    assert.equal(fds.length, 1);
    assert.equal(roundTrip(writeFd, fds[0]!.fd, 'still here'), 'still here');
    const third = Keeper.start(manifest);
    try {
      third.hold(fds[0]!, fds[0]!.fd);
      assert.equal(firstHandle.isAlive(), true);
      assert.equal(third.commit(previous), true);
      await firstHandle.exited;
      assert.equal(firstHandle.isAlive(), false, 'the old keeper ends once the new one is committed');
      const now = manifestOf(manifest);
      assert.equal(now.pid, third.handle!.pid);
      assert.deepEqual(now.entries.map((e) => e.key), ['log:a.service:1:stdout']);
      assert.equal(now.retiring?.pid, firstHandle.pid, 'the retired keeper is named, should this daemon die before ending it');
    } finally {
      native.close(fds[0]!.fd);
      native.close(writeFd);
      third.stop();
      next.close();
    }
  });
});

describe('keeper replaced', () => {
  /** Until `keeper` runs a process other than `old` (its watcher fires on the event loop). */
  async function replacement(keeper: Keeper, oldPid: number): Promise<Pidfd> {
    for (let i = 0; i < 400; i++) {
      const now = keeper.handle;
      if (now !== undefined && now.pid !== oldPid && now.isAlive()) return now;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail('no new keeper');
  }

  it('a keeper killed is replaced and handed every fd still held; sends meanwhile never throw', async () => {
    const manifest = join(dir, 'replaced.json');
    const said: string[] = [];
    const [keptRead, keptWrite] = native.pipe(true);
    const [droppedRead, droppedWrite] = native.pipe(true);
    const keeper = Keeper.start(manifest, { log: (_level, text) => said.push(text) });
    try {
      keeper.hold(logItem('kept.service'), keptRead);
      keeper.hold(logItem('dropped.service'), droppedRead);
      assert.equal(keeper.commit(undefined), true);
      assert.equal(keeper.sync(), true);
      // The daemon's own copies go (as a capture closes its read ends): the keeper's must be what keeps the pipes open.
      native.close(keptRead);
      native.close(droppedRead);
      const first = keeper.handle!;
      const firstPid = first.pid;
      first.signal('SIGKILL');
      // A send that finds the keeper gone replaces it at once instead of throwing.
      keeper.drop(logItem('dropped.service').key);
      const second = await replacement(keeper, firstPid);
      assert.equal(keeper.sync(), true);
      const now = manifestOf(manifest);
      assert.equal(now.pid, second.pid, 'the manifest names the new keeper');
      assert.deepEqual(now.entries.map((e) => e.key), ['log:kept.service:1:stdout']);
      assert.equal(writeSync(keptWrite, 'x'), 1, 'the pipe still has a reader');
      assert.throws(() => writeSync(droppedWrite, 'x'), { code: 'EPIPE' }, 'a dropped item is not handed over');
      assert.equal(said.filter((line) => line.includes(`(PID ${firstPid}) is gone`)).length, 1, said.join('\n'));
    } finally {
      keeper.stop();
      native.close(keptWrite);
      native.close(droppedWrite);
    }
    assert.throws(() => readFileSync(manifest), { code: 'ENOENT' }, 'a clean stop removes the manifest');
  });

  it('a keeper that dies again and again is started again after a pause, not in a tight loop', async () => {
    const manifest = join(dir, 'dying.json');
    const said: string[] = [];
    const keeper = Keeper.start(manifest, { log: (_level, text) => said.push(text) });
    try {
      assert.equal(keeper.commit(undefined), true);
      let current = keeper.handle!;
      // The first start and two replacements come at once; the third death finds three starts within the window.
      for (let kill = 0; kill < 3; kill++) {
        const pid = current.pid;
        current.signal('SIGKILL');
        if (kill < 2) current = await replacement(keeper, pid);
        else {
          for (let i = 0; i < 200 && !said.some((line) => line.includes('keeps ending at once')); i++) await new Promise((r) => setTimeout(r, 10));
        }
      }
      assert.ok(said.some((line) => /keeps ending at once; trying again in \d+ ms/.test(line)), said.join('\n'));
      assert.equal(keeper.handle, undefined, 'no keeper while it waits');
      keeper.hold(logItem('meanwhile.service'), 0);
      const last = await replacement(keeper, current.pid);
      assert.equal(keeper.sync(), true);
      const now = manifestOf(manifest);
      assert.equal(now.pid, last.pid);
      assert.deepEqual(now.entries.map((e) => e.key), ['log:meanwhile.service:1:stdout'], 'what was held meanwhile is handed over');
    } finally {
      keeper.stop();
    }
  });
});

describe('keeper process', () => {
  const KEEPER_MAIN = fileURLToPath(new URL('../../src/manager/keeper/main.js', import.meta.url));

  it('drops malformed messages, closing the fds they came with, and goes on holding and answering', async () => {
    const manifest = join(dir, 'malformed.json');
    const [ours, theirs] = native.socketPair('seqpacket');
    const [stderrRead, stderrWrite] = native.pipe(true);
    const spawned = native.spawn({ file: process.execPath, argv: [process.execPath, KEEPER_MAIN, manifest], env: [], fds: [null, null, stderrWrite, theirs], session: 'setsid' });
    native.close(theirs);
    native.close(stderrWrite);
    using keeper = Pidfd.adopt(spawned.pidfd, { pid: spawned.pid });
    const [strayRead, strayWrite] = native.pipe(true);
    const [keptRead, keptWrite] = native.pipe(true);
    try {
      const bad: [Buffer, number[]][] = [
        // A record cut short, as a torn write would leave it, with an fd that must not leak.
        [Buffer.from('{"op":"hold","item":{"key":"log:c.ser'), [strayRead]],
        [encodeToKeeper({ op: 'hold', item: logItem('c.service') }), []],
        [encodeToKeeper({ op: 'sync' }), [strayRead]],
        [Buffer.from('{"op":"explode"}'), []],
        [Buffer.from(JSON.stringify({ op: 'hold', item: { ...logItem('c.service'), unit: 'd.service' } })), [strayRead]],
      ];
      for (const [data, fds] of bad) native.sendMessage(ours, data, fds);
      native.close(strayRead);
      native.sendMessage(ours, encodeToKeeper({ op: 'hold', item: logItem('kept.service') }), [keptRead]);
      native.sendMessage(ours, encodeToKeeper({ op: 'commit', retiring: null }));
      native.sendMessage(ours, encodeToKeeper({ op: 'sync' }));
      assert.ok(native.pollFd(ours, POLLIN, 10_000) > 0, 'the keeper answers');
      const reply = native.receiveMessage(ours, 4096)!;
      assert.deepEqual(decodeFromKeeper(reply.data), { op: 'synced' });
      assert.equal(keeper.isAlive(), true);
      assert.deepEqual(manifestOf(manifest).entries.map((e) => e.key), ['log:kept.service:1:stdout']);
      assert.throws(() => writeSync(strayWrite, 'x'), { code: 'EPIPE' }, 'the fds of dropped messages were closed');
      native.close(keptRead);
      assert.equal(writeSync(keptWrite, 'x'), 1, 'the fd of the good message is held');
      const buffer = Buffer.alloc(4096);
      const said = buffer.toString('utf8', 0, readSync(stderrRead, buffer));
      assert.equal(said.split('\n').filter((line) => line.startsWith('holdfast keeper: dropped a message: ')).length, bad.length, said);
    } finally {
      keeper.signal('SIGTERM');
      await keeper.exited;
      for (const fd of [ours, stderrRead, strayWrite, keptWrite]) native.close(fd);
    }
  });
});
