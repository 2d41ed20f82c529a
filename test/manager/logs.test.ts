/**
 * Log capture and storage with real processes writing into the pipes: `seq`, `sh`, `printf`,
 * Python, and a background grandchild that outlives its parent.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { native } from '../../src/native.js';
import { features, Pidfd } from '../../src/pidfd/index.js';
import { formatRecord, formatTimestamp, LineSplitter, LogStore, type LogCapture } from '../../src/manager/logs/index.js';
import type { LogRecord } from '../../src/manager/types.js';

function findPython(): string | undefined {
  const out = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return out.status === 0 && out.stdout.trim() !== '' ? out.stdout.trim() : undefined;
}
const PYTHON = findPython();
const noPython = PYTHON !== undefined ? false : 'python3 is not installed';

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Spawns `file args` with the capture's pipes as stdout/stderr, the way the manager does it. */
function spawnInto(capture: LogCapture, file: string, args: string[]): { child: ChildProcess; pidfd: Pidfd } {
  const child = spawn(file, args, { stdio: ['ignore', capture.stdoutFd ?? 'ignore', capture.stderrFd ?? 'ignore'] });
  const pidfd = Pidfd.fromChild(child);
  capture.attach({ pid: child.pid!, pidfdId: pidfd.id ?? null });
  capture.closeWriteEnds();
  return { child, pidfd };
}

let dir: string;
let counter = 0;
function freshDir(): string {
  return join(dir, `store-${++counter}`);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-logs-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('capture', () => {
  it('keeps every one of 200000 lines from a writer going as fast as it can, in order', async () => {
    // A small high-water mark makes the capture pause and resume many times on the way.
    const store = await LogStore.open({ directory: freshDir(), maxFileBytes: 1 << 30, highWaterBytes: 64 * 1024 });
    try {
      const capture = store.capture('seq.service', { invocationId: 'a'.repeat(32), stderr: false });
      assert.equal(capture.stderrFd, null);
      const { child, pidfd } = spawnInto(capture, 'seq', ['1', '200000']);
      assert.equal(await exited(child), 0);
      await capture.done;
      const records = await store.read('seq.service');
      assert.equal(records.length, 200000);
      for (let i = 0; i < records.length; i++) {
        if (records[i]!.message !== String(i + 1)) assert.fail(`record ${i} is ${JSON.stringify(records[i]!.message)}, expected ${i + 1}`);
      }
      const first = records[0]!;
      assert.equal(first.stream, 'stdout');
      assert.equal(first.pid, child.pid);
      assert.equal(first.pidfdId, pidfd.id === undefined ? null : String(pidfd.id));
      assert.equal(first.invocationId, 'a'.repeat(32));
      for (let i = 1; i < records.length; i++) {
        if (records[i]!.time < records[i - 1]!.time) assert.fail(`time runs backwards at record ${i}`);
      }
      pidfd.close();
    } finally {
      await store.close();
    }
  });

  it('separates stdout and stderr, attributes both to the writer, stores a last line without newline at EOF', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      // The unit's file stays open in the store: open it before counting.
      store.append('sep.service', { message: 'begin' });
      await store.flush();
      const baseline = fdCount();
      const capture = store.capture('sep.service', { invocationId: 'b'.repeat(32) });
      const { child, pidfd } = spawnInto(capture, 'sh', ['-c', 'echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf "no newline"']);
      await capture.done;
      assert.equal(await exited(child), 0);
      const records = await store.read('sep.service');
      const messages = (stream: string): string[] => records.filter((r) => r.stream === stream).map((r) => r.message);
      assert.deepEqual(messages('stdout'), ['out1', 'out2', 'no newline']);
      assert.deepEqual(messages('stderr'), ['err1', 'err2']);
      const id = pidfd.id === undefined ? null : String(pidfd.id);
      assert.deepEqual(messages('manager'), ['begin']);
      for (const r of records.filter((r) => r.stream !== 'manager')) {
        assert.equal(r.pid, child.pid);
        assert.equal(r.pidfdId, id);
        assert.equal(r.invocationId, 'b'.repeat(32));
      }
      if (features().pidfdIds) assert.notEqual(id, null);
      pidfd.close();
      assert.equal(fdCount(), baseline, 'the pipes are closed once done');
    } finally {
      await store.close();
    }
  });

  it('splits a line longer than 48 KiB, splits at NUL, stores invalid UTF-8 as U+FFFD', { skip: noPython }, async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      const capture = store.capture('odd.service', { stderr: false });
      const code = String.raw`
import sys
out = sys.stdout.buffer
out.write(b'x' * 100000 + b'\n')
out.write(b'ab\xff\xfecd\n')
out.write(b'left\x00right\n')
out.write(b'\n')
out.write(b'end\n')
`;
      const { child, pidfd } = spawnInto(capture, PYTHON!, ['-c', code]);
      await capture.done;
      assert.equal(await exited(child), 0);
      pidfd.close();
      const records = await store.read('odd.service');
      assert.deepEqual(
        records.map((r) => (r.message.startsWith('xxx') ? `x*${r.message.length}` : r.message)),
        ['x*49152', 'x*49152', 'x*1696', 'ab\ufffd\ufffdcd', 'left', 'right', '', 'end'],
      );
      // The file itself is valid UTF-8 JSON lines.
      const lines = readFileSync(join(store.directory, 'odd.service.jsonl'), 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, 8);
      assert.equal((JSON.parse(lines[3]!) as LogRecord).message, 'ab\ufffd\ufffdcd');
    } finally {
      await store.close();
    }
  });

  it('done waits for a background grandchild that still holds the pipe', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    const flag = join(dir, `release-${process.pid}`);
    try {
      const capture = store.capture('bg.service', {});
      let settled = false;
      void capture.done.then(() => (settled = true));
      const script = `(while [ ! -e '${flag}' ]; do sleep 0.02; done; echo late) & echo early`;
      const { child, pidfd } = spawnInto(capture, 'sh', ['-c', script]);
      assert.equal(await exited(child), 0);
      // The shell is gone; its background child keeps the write end open.
      for (let i = 0; i < 20; i++) await nextTurn();
      assert.equal(settled, false, 'done must wait for every holder of the pipe');
      const early = await store.read('bg.service');
      assert.deepEqual(early.map((r) => r.message), ['early']);
      writeFileSync(flag, '');
      await capture.done;
      const all = await store.read('bg.service');
      assert.deepEqual(all.map((r) => r.message), ['early', 'late']);
      // The grandchild's line is attributed to the process the pipe was made for, as in journald.
      assert.equal(all[1]!.pid, child.pid);
      pidfd.close();
    } finally {
      rmSync(flag, { force: true });
      await store.close();
    }
  });

  it('captureFromFds reads a pipe made elsewhere (e.g. handed back by a keeper)', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      const [readFd, writeFd] = native.pipe(true);
      const child = spawn('sh', ['-c', 'echo from-keeper-pipe; echo second'], { stdio: ['ignore', writeFd, 'ignore'] });
      native.close(writeFd);
      const capture = store.captureFromFds('kept.service', { stdoutReadFd: readFd, invocationId: 'c'.repeat(32), writer: { pid: 4242, pidfdId: 4243n } });
      assert.equal(capture.stdoutFd, null);
      assert.deepEqual(capture.readFds, { stdout: readFd, stderr: null });
      await capture.done;
      await exited(child);
      const records = await store.read('kept.service');
      assert.deepEqual(
        records.map((r) => [r.message, r.stream, r.pid, r.pidfdId, r.invocationId]),
        [
          ['from-keeper-pipe', 'stdout', 4242, '4243', 'c'.repeat(32)],
          ['second', 'stdout', 4242, '4243', 'c'.repeat(32)],
        ],
      );
    } finally {
      await store.close();
    }
  });

  it('abort() stops reading and settles done', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      const capture = store.capture('abort.service', { stderr: false });
      const { child, pidfd } = spawnInto(capture, 'sh', ['-c', 'echo before; exec sleep 600']);
      const deadline = Date.now() + 10_000;
      while ((await store.read('abort.service')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      capture.abort();
      await capture.done;
      assert.deepEqual((await store.read('abort.service')).map((r) => r.message), ['before']);
      pidfd.signal('SIGKILL');
      await exited(child);
      pidfd.close();
    } finally {
      await store.close();
    }
  });
});

describe('LineSplitter', () => {
  it('cuts long lines at a UTF-8 boundary, the same way whatever the chunking', () => {
    const input = Buffer.from(`${'é'.repeat(8)}\nabc\n${'x'.repeat(25)}`, 'utf8');
    const whole: string[] = [];
    const split1 = new LineSplitter(11);
    split1.push(input, (l) => whole.push(l.toString('utf8')));
    split1.end((l) => whole.push(l.toString('utf8')));
    assert.deepEqual(whole, ['ééééé', 'ééé', 'abc', 'x'.repeat(11), 'x'.repeat(11), 'xxx']);
    const bytewise: string[] = [];
    const split2 = new LineSplitter(11);
    for (let i = 0; i < input.length; i++) split2.push(input.subarray(i, i + 1), (l) => bytewise.push(l.toString('utf8')));
    split2.end((l) => bytewise.push(l.toString('utf8')));
    assert.deepEqual(bytewise, whole);
  });

  it('a line of exactly lineMax bytes stays one line, even when its newline comes in the next chunk', () => {
    const out: string[] = [];
    const split = new LineSplitter(8);
    split.push(Buffer.from('12345678'), (l) => out.push(l.toString()));
    split.push(Buffer.from('\nnext\n'), (l) => out.push(l.toString()));
    assert.deepEqual(out, ['12345678', 'next']);
  });
});

describe('LogStore', () => {
  function record(i: number, time = 1_700_000_000_000_000 + i): { message: string; time: number; pid: number; pidfdId: null; invocationId: string } {
    return { message: `message ${String(i).padStart(4, '0')}`, time, pid: 1, pidfdId: null, invocationId: i % 2 === 0 ? 'even' : 'odd' };
  }

  it('rotates by size, keeps maxRotatedFiles, reads the newest records across files', async () => {
    const maxFileBytes = 1000;
    const store = await LogStore.open({ directory: freshDir(), maxFileBytes, maxRotatedFiles: 2 });
    try {
      const size = Buffer.byteLength(`${JSON.stringify(store.append('rot.service', record(0)))}\n`);
      for (let i = 1; i < 100; i++) store.append('rot.service', record(i));
      await store.flush();
      const perFile = Math.floor(maxFileBytes / size);
      const fullFiles = Math.ceil(100 / perFile) - 1;
      const inActive = 100 - fullFiles * perFile;
      const kept = inActive + Math.min(fullFiles, 2) * perFile;
      const files = readdirSync(store.directory).filter((name) => name !== 'spool').sort();
      assert.deepEqual(files, ['rot.service.jsonl', 'rot.service.jsonl.1', 'rot.service.jsonl.2']);
      assert.equal(readFileSync(join(store.directory, 'rot.service.jsonl'), 'utf8').split('\n').length - 1, inActive);
      assert.equal(readFileSync(join(store.directory, 'rot.service.jsonl.1'), 'utf8').split('\n').length - 1, perFile);
      for (const name of files) assert.ok(readFileSync(join(store.directory, name)).length <= maxFileBytes);
      const all = await store.read('rot.service');
      assert.deepEqual(
        all.map((r) => r.message),
        Array.from({ length: kept }, (_, k) => record(100 - kept + k).message),
      );
      const last5 = await store.read('rot.service', { lines: 5 });
      assert.deepEqual(last5.map((r) => r.message), ['message 0095', 'message 0096', 'message 0097', 'message 0098', 'message 0099']);
      // More lines than the active file holds: continues into the rotated ones, still oldest first.
      const spanning = await store.read('rot.service', { lines: inActive + 3 });
      assert.deepEqual(spanning.map((r) => r.message), Array.from({ length: inActive + 3 }, (_, k) => record(100 - inActive - 3 + k).message));
      assert.equal((await store.read('rot.service', { lines: 10_000 })).length, kept);
      assert.deepEqual(await store.read('rot.service', { lines: 0 }), []);
      assert.deepEqual(await store.units(), ['rot.service']);
    } finally {
      await store.close();
    }
  });

  it('reads with since, lines and invocationId', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      for (const [i, t] of [[1, 1000], [2, 2000], [3, 3000], [4, 4000], [5, 5000]] as const) store.append('filter.service', record(i, t));
      assert.deepEqual((await store.read('filter.service', { since: 2500 })).map((r) => r.time), [3000, 4000, 5000]);
      assert.deepEqual((await store.read('filter.service', { since: 3000 })).map((r) => r.time), [3000, 4000, 5000]);
      assert.deepEqual((await store.read('filter.service', { since: 2500, lines: 2 })).map((r) => r.time), [4000, 5000]);
      assert.deepEqual((await store.read('filter.service', { invocationId: 'odd' })).map((r) => r.time), [1000, 3000, 5000]);
      assert.deepEqual((await store.read('filter.service', { invocationId: 'even', lines: 1 })).map((r) => r.time), [4000]);
      assert.deepEqual(await store.read('never-written.service'), []);
    } finally {
      await store.close();
    }
  });

  it('follow() and the record event see new records until unsubscribed', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      const followed: string[] = [];
      const events: string[] = [];
      const stop = store.follow('f.service', (r) => followed.push(r.message));
      store.on('record', (unit, r) => events.push(`${unit}:${r.message}`));
      store.append('f.service', { message: 'one' });
      store.append('other.service', { message: 'elsewhere' });
      const capture = store.capture('f.service', { stderr: false });
      const { child, pidfd } = spawnInto(capture, 'echo', ['two']);
      await capture.done;
      await exited(child);
      pidfd.close();
      stop();
      store.append('f.service', { message: 'three' });
      assert.deepEqual(followed, ['one', 'two']);
      assert.deepEqual(events, ['f.service:one', 'other.service:elsewhere', 'f.service:two', 'f.service:three']);
    } finally {
      await store.close();
    }
  });

  it('tail() hands over from stored to live records without a gap or a duplicate', async () => {
    const store = await LogStore.open({ directory: freshDir(), maxFileBytes: 1 << 30 });
    const flag = join(dir, `tail-release-${process.pid}`);
    try {
      const capture = store.capture('tail.service', { stderr: false });
      const script = `seq 1 25000; while [ ! -e '${flag}' ]; do sleep 0.02; done; seq 25001 50000`;
      const { child, pidfd } = spawnInto(capture, 'sh', ['-c', script]);
      const deadline = Date.now() + 10_000;
      while ((await store.read('tail.service', { lines: 1 }))[0]?.message !== '25000') {
        if (Date.now() > deadline) assert.fail('the first half never arrived');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const live: string[] = [];
      const { records, stop } = await store.tail('tail.service', {}, (r) => live.push(r.message));
      writeFileSync(flag, '');
      await capture.done;
      await exited(child);
      pidfd.close();
      stop();
      store.append('tail.service', { message: 'after stop' });
      assert.equal(records.length, 25000);
      assert.equal(live.length, 25000);
      const all = records.map((r) => r.message).concat(live);
      for (let i = 0; i < all.length; i++) if (all[i] !== String(i + 1)) assert.fail(`position ${i} is ${all[i]}`);
      const last = await store.tail('tail.service', { lines: 2 }, () => {});
      assert.deepEqual(last.records.map((r) => r.message), ['50000', 'after stop']);
      last.stop();
    } finally {
      rmSync(flag, { force: true });
      await store.close();
    }
  });

  it('append() defaults to a manager record from this process', async () => {
    const store = await LogStore.open({ directory: freshDir() });
    try {
      const r = store.append('m.service', { message: 'Started.', invocationId: 'd'.repeat(32) });
      assert.equal(r.stream, 'manager');
      assert.equal(r.pid, process.pid);
      const self = Pidfd.self();
      assert.equal(r.pidfdId, self.id === undefined ? null : String(self.id));
      self.close();
      assert.deepEqual(await store.read('m.service'), [r]);
      assert.throws(() => store.append('../escape', { message: 'x' }), { code: 'EINVAL' });
      assert.throws(() => store.append('a/b.service', { message: 'x' }), { code: 'EINVAL' });
    } finally {
      await store.close();
    }
    assert.throws(() => store.append('m.service', { message: 'late' }), { code: 'EBADF' });
  });

  it('continues an existing file after a crash tore its last record: the torn part is cut off, never left mid-file', async () => {
    const directory = freshDir();
    const path = join(directory, 'torn.service.jsonl');
    const first = await LogStore.open({ directory });
    first.append('torn.service', record(1));
    first.append('torn.service', record(2));
    await first.close();
    // What a SIGKILL in the middle of a write leaves: the start of a record, cut inside a string.
    const whole = `${JSON.stringify({ ...record(3), stream: 'stdout' })}\n`;
    writeFileSync(path, whole.slice(0, whole.indexOf('message 0003') + 5), { flag: 'a' });
    const warnings: string[] = [];
    const second = await LogStore.open({ directory, log: (level, text) => warnings.push(`${level}: ${text}`) });
    try {
      second.append('torn.service', record(4));
      const messages = (await second.read('torn.service')).map((r) => r.message);
      assert.deepEqual(messages, ['message 0001', 'message 0002', 'message 0004']);
      const lines = readFileSync(path, 'utf8').split('\n');
      assert.equal(lines.pop(), '', 'the file ends with a whole record');
      assert.equal(lines.length, 3);
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a whole record on every line, not ${line}`);
      assert.equal(warnings.filter((w) => w.includes('torn by a crash')).length, 1, warnings.join('\n'));
    } finally {
      await second.close();
    }
    assert.equal(existsSync(join(directory, 'torn.service.jsonl.1')), false);
  });

  it('reads a file whose last record is still being written, and skips (and reports) a torn line in the middle', async () => {
    const directory = freshDir();
    mkdirSync(directory, { recursive: true });
    const line = (i: number): string => `${JSON.stringify({ ...record(i), stream: 'stdout' })}\n`;
    // A torn line ended by a newline (what the store once made of a crash), then a record still being written.
    writeFileSync(join(directory, 'w.service.jsonl'), line(1) + line(2).slice(0, 40) + '\n' + line(3) + line(4).slice(0, 50));
    const warnings: string[] = [];
    const store = await LogStore.open({ directory, log: (level, text) => warnings.push(`${level}: ${text}`) });
    try {
      assert.deepEqual((await store.read('w.service')).map((r) => r.message), ['message 0001', 'message 0003']);
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /skipped 1 line\(s\)/);
    } finally {
      await store.close();
    }
  });
});

describe('format', () => {
  const time = Date.UTC(2024, 10, 27, 4, 31, 30) * 1000 + 123456;
  const base: LogRecord = { time, stream: 'stdout', pid: 1234, pidfdId: '1235', invocationId: null, message: 'listening on :8080' };

  it('formats like journalctl short-precise', () => {
    assert.equal(formatTimestamp(time, { utc: true }), 'Nov 27 04:31:30.123456');
    assert.equal(formatTimestamp(Date.UTC(2025, 0, 5, 23, 0, 9) * 1000 + 7, { utc: true }), 'Jan 05 23:00:09.000007');
    assert.equal(formatRecord('web.service', base, { utc: true }), 'Nov 27 04:31:30.123456 web.service[1234]: listening on :8080');
    assert.equal(formatRecord('web.service', { ...base, pid: null }, { utc: true }), 'Nov 27 04:31:30.123456 web.service: listening on :8080');
  });

  it('marks stderr only when asked', () => {
    const err: LogRecord = { ...base, stream: 'stderr', message: 'deprecated option' };
    assert.equal(formatRecord('web.service', err, { utc: true }), 'Nov 27 04:31:30.123456 web.service[1234]: deprecated option');
    assert.equal(formatRecord('web.service', err, { utc: true, markStderr: true }), 'Nov 27 04:31:30.123456 web.service[1234] stderr: deprecated option');
  });

  it('shows manager records under holdfast[pid] with the unit in the message, multi-line indented', () => {
    const note: LogRecord = { ...base, stream: 'manager', pid: 977, message: 'Main process exited, code=exited, status=1' };
    assert.equal(formatRecord('web.service', note, { utc: true }), 'Nov 27 04:31:30.123456 holdfast[977]: web.service: Main process exited, code=exited, status=1');
    const multi = formatRecord('web.service', { ...note, message: 'first\nsecond' }, { utc: true });
    assert.equal(multi, `Nov 27 04:31:30.123456 holdfast[977]: web.service: first\n${' '.repeat('Nov 27 04:31:30.123456 holdfast[977]: '.length)}second`);
  });

  it('escapes control characters unless told not to', () => {
    const evil: LogRecord = { ...base, message: 'red \x1b[31mtext\x07\tend' };
    assert.equal(formatRecord('web.service', evil, { utc: true }), 'Nov 27 04:31:30.123456 web.service[1234]: red \\x1b[31mtext\\x07\tend');
    assert.equal(formatRecord('web.service', evil, { utc: true, escapeControl: false }), `Nov 27 04:31:30.123456 web.service[1234]: ${evil.message}`);
  });
});
