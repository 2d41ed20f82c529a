/**
 * The spool under each capture: bytes reach a file (splice) before the daemon reads them, records
 * carry the cursor after them, and a later reader goes on from the last stored cursor. Real pipes,
 * real processes, real files; a "crash" is made by taking away what had not reached the log.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { native } from '../../src/native.js';
import { LineSplitter, LogStore } from '../../src/manager/logs/index.js';
import { lastCursorIn, listSpools } from '../../src/manager/logs/spool.js';

let dir: string;
let counter = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-spool-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

function write(fd: number, text: string): void {
  const data = Buffer.from(text);
  for (let done = 0; done < data.length; ) done += writeSync(fd, data, done);
}

/** Drops the last `count` records of a log file, as if the daemon had died before writing them. */
function forgetLastRecords(path: string, count: number): void {
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
  writeFileSync(path, lines.slice(0, lines.length - count).map((l) => `${l}\n`).join(''));
}

describe('spool', () => {
  it('every line splitter emit accounts for its bytes, so cursors land on line ends', () => {
    const input = Buffer.from(`abc\n\0${'x'.repeat(20)}\nlast`);
    let consumed = 0;
    const split = new LineSplitter(8);
    const count = (line: Buffer, terminatorBytes: number): void => {
      consumed += line.length + terminatorBytes;
    };
    for (let i = 0; i < input.length; i += 3) split.push(input.subarray(i, i + 3), count);
    split.end(count);
    assert.equal(consumed, input.length);
  });

  it('the last cursor counts only from a whole record, not from one a SIGKILL tore', () => {
    const id = '0123456789abcdef';
    const whole = (n: number): string => `${JSON.stringify({ time: n, stream: 'stdout', pid: 1, pidfdId: null, invocationId: null, message: `line ${n}`, cursor: `${id}:${n * 10}` })}\n`;
    const third = whole(3);
    // Torn inside the cursor's digits ("…:3" of "…:30"), then ended with a newline when the file was reopened.
    const tornInCursor = `${third.slice(0, third.indexOf(`${id}:`) + id.length + 2)}\n`;
    assert.equal(lastCursorIn(whole(1) + whole(2) + tornInCursor, id), 20);
    // Torn after the cursor but before the record's end: the cursor is whole, the record is not.
    assert.equal(lastCursorIn(whole(1) + whole(2) + `${third.slice(0, -3)}\n`, id), 20);
    // Torn with no newline at all yet.
    assert.equal(lastCursorIn(whole(1) + whole(2) + third.slice(0, -1), id), 20);
    assert.equal(lastCursorIn(whole(1) + whole(2) + third, id), 30);
    assert.equal(lastCursorIn(whole(1), 'fedcba9876543210'), undefined);
  });

  it('rolls the stored part away while a service keeps writing, and deletes the spool at EOF', async () => {
    const store = await LogStore.open({ directory: join(dir, `s${++counter}`), spoolRollBytes: 4096 });
    try {
      const capture = store.capture('roll.service', { stderr: false });
      const child = spawn('sh', ['-c', 'seq 1 20000; exec sleep 600'], { stdio: ['ignore', capture.stdoutFd!, 'ignore'] });
      capture.attach({ pid: child.pid!, pidfdId: null });
      capture.closeWriteEnds();
      await until(async () => (await store.read('roll.service')).length === 20000, 'all 20000 lines');
      const records = await store.read('roll.service');
      assert.deepEqual(records.map((r) => r.message), Array.from({ length: 20000 }, (_, i) => String(i + 1)));
      const id = capture.spoolIds.stdout!;
      await until(() => {
        const files = listSpools(store.spoolDirectory).get(id) ?? [];
        return files.length === 1 && files[0]!.base > 0;
      }, 'a rolled spool');
      const [file] = listSpools(store.spoolDirectory).get(id)!;
      const total = readFileSync(join(store.directory, 'roll.service.jsonl')).length;
      assert.ok(statSync(file!.path).size < 4096 + 65536, `the spool keeps only the unstored tail (${statSync(file!.path).size} bytes)`);
      assert.ok(total > 100_000);
      // The cursor on disk names the spool and the offset after the last line: seq 1 20000 is 108894 bytes.
      assert.equal(lastCursorIn(readFileSync(join(store.directory, 'roll.service.jsonl'), 'utf8'), id), 108_894);
      child.kill('SIGKILL');
      await capture.done;
      assert.deepEqual(readdirSync(store.spoolDirectory), [], 'nothing left to recover once the stream ended');
    } finally {
      await store.close();
    }
  });

  it('a new reader stores what the old one read but never stored, then goes on: nothing lost, nothing twice, half lines whole', async () => {
    const directory = join(dir, `s${++counter}`);
    const [readFd, writeFd] = native.pipe(true);
    const kept = native.dup(readFd);
    let store = await LogStore.open({ directory });
    let spoolId: string;
    try {
      const first = store.captureFromFds('resume.service', { stdoutReadFd: readFd, writer: { pid: 1, pidfdId: null } });
      spoolId = first.spoolIds.stdout!;
      write(writeFd, 'one\ntwo\nthr');
      await until(async () => (await store.read('resume.service')).length === 2, 'two records');
      first.release();
      await first.done;
    } finally {
      await store.release();
    }
    // The daemon "died" after reading `two` into the spool but before its record reached the file.
    forgetLastRecords(join(directory, 'resume.service.jsonl'), 1);
    store = await LogStore.open({ directory });
    try {
      const second = store.captureFromFds('resume.service', { stdoutReadFd: kept, stdoutSpool: spoolId, writer: { pid: 1, pidfdId: null } });
      assert.equal(second.spoolIds.stdout, spoolId, 'the same spool goes on');
      write(writeFd, 'ee\nfour\n');
      native.close(writeFd);
      await second.done;
      assert.deepEqual((await store.read('resume.service')).map((r) => r.message), ['one', 'two', 'three', 'four']);
      assert.deepEqual(readdirSync(store.spoolDirectory), []);
    } finally {
      await store.close();
    }
  });

  it('recoverSpools() stores what a spool without a pipe still holds beyond its cursor, once', async () => {
    const directory = join(dir, `s${++counter}`);
    const [readFd, writeFd] = native.pipe(true);
    let store = await LogStore.open({ directory });
    try {
      const capture = store.captureFromFds('orphan.service', { stdoutReadFd: readFd, writer: { pid: 1, pidfdId: null } });
      write(writeFd, 'a\nb\nc\nunfinished');
      await until(async () => (await store.read('orphan.service')).length === 3, 'three records');
      capture.release();
      await capture.done;
    } finally {
      await store.release();
      native.close(writeFd);
    }
    forgetLastRecords(join(directory, 'orphan.service.jsonl'), 1);
    store = await LogStore.open({ directory });
    try {
      assert.equal(await store.recoverSpools(), 2, '`c` (never stored) and the unfinished line');
      assert.deepEqual((await store.read('orphan.service')).map((r) => [r.message, r.pid]), [['a', 1], ['b', 1], ['c', null], ['unfinished', null]]);
      assert.deepEqual(readdirSync(store.spoolDirectory), []);
      assert.equal(await store.recoverSpools(), 0, 'a second call finds nothing');
    } finally {
      await store.close();
    }
  });
});
