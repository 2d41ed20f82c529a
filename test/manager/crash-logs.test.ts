/**
 * No log line is lost or stored twice when the daemon is SIGKILLed, however often and wherever in
 * its read → store path the kill lands: output is moved into a spool by the kernel before the
 * daemon looks at it, and a new daemon goes on from the last cursor stored with the records.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LogRecord } from '../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

const LINES = 100_000;
const HALVES = 30;

/**
 * Every record of a unit on disk, oldest first, read straight from its files (rotated ones too)
 * while the daemon may be appending: a last line without its newline is a record still being
 * written, skipped. A whole line that is not a record is what a crash must never leave, and fails.
 */
function storedRecords(d: TestDaemon, unit: string): LogRecord[] {
  const directory = join(d.dir, 'state', 'logs');
  const files = readdirSync(directory)
    .filter((name) => name === `${unit}.jsonl` || name.startsWith(`${unit}.jsonl.`))
    .sort((a, b) => rank(b) - rank(a));
  const records: LogRecord[] = [];
  for (const name of files) {
    let text: string;
    try {
      text = readFileSync(join(directory, name), 'utf8');
    } catch (error) {
      // Renamed away by a rotation since the listing: its records are missing this time, and the caller looks again.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const lines = text.split('\n');
    // After the last newline: '' when the file ends with a whole record, else one being written.
    lines.pop();
    for (const [index, line] of lines.entries()) {
      if (line === '') continue;
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch (error) {
        assert.fail(`${name}:${index + 1} is not a whole record (${(error as Error).message}): ${line.slice(0, 120)}`);
      }
    }
  }
  return records;
}

function rank(name: string): number {
  const match = /\.jsonl\.(\d+)$/.exec(name);
  return match === null ? 0 : Number(match[1]);
}

describe('log lines across daemon SIGKILLs', () => {
  it('a fast writer and a writer of half lines lose nothing and repeat nothing over four kills', async () => {
    const fast = `[Service]\nExecStart=/bin/sh -c 'i=0; while [ $i -lt ${LINES} ]; do i=$((i+1)); echo "line $i"; [ $((i % 500)) -eq 0 ] && sleep 0.01; done; exec sleep 600'\n`;
    // Each line is written in two parts with a pause between: a kill in the pause finds half a line read.
    const halves = `[Service]\nExecStart=/bin/sh -c 'i=0; while [ $i -lt ${HALVES} ]; do i=$((i+1)); printf "half $i " >&2; sleep 0.04; echo "end $i" >&2; done; exec sleep 600'\n`;
    let d = await startTestDaemon({ 'fast.service': fast, 'halves.service': halves });
    try {
      await d.call('Start', { name: 'fast' });
      await d.call('Start', { name: 'halves' });
      const fastMain = (await unitStatus(d, 'fast')).mainProcess;
      for (let kill = 0; kill < 4; kill++) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 300));
        await d.crash();
        d = await startTestDaemon({}, d.dir);
      }
      assert.deepEqual((await unitStatus(d, 'fast')).mainProcess, fastMain, 'the writer was never restarted: every line was written once');
      const done = await eventually(() => {
        const records = storedRecords(d, 'fast.service').filter((r) => r.stream === 'stdout');
        return records.length >= LINES ? records : undefined;
      }, `all ${LINES} lines`, 1200);
      const messages = done.map((r) => r.message);
      const firstWrong = messages.findIndex((m, i) => m !== `line ${i + 1}`);
      assert.equal(firstWrong, -1, `line ${firstWrong + 1} is "${messages[firstWrong]}" (a line lost or repeated)`);
      assert.equal(messages.length, LINES);

      const halvesDone = await eventually(() => {
        const records = storedRecords(d, 'halves.service').filter((r) => r.stream === 'stderr');
        return records.length >= HALVES ? records : undefined;
      }, `all ${HALVES} half-written lines`, 1200);
      assert.deepEqual(
        halvesDone.map((r) => r.message),
        Array.from({ length: HALVES }, (_, i) => `half ${i + 1} end ${i + 1}`),
        'a line read half before a kill is stored whole, once',
      );
      const api = await d.call<{ records: LogRecord[] }>('Logs', { name: 'halves', lines: 3 });
      for (const record of api.records) assert.equal('cursor' in record, false, 'the spool cursor stays on disk, out of the API');
    } finally {
      await d.stop();
    }
  });

  it('a record torn by a SIGKILL is cut off by the next daemon and stored again whole, never left mid-file', async () => {
    let d = await startTestDaemon({ 'chop.service': "[Service]\nExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do echo \"line $i\"; done; exec sleep 600'\n" });
    try {
      await d.call('Start', { name: 'chop' });
      await eventually(() => (storedRecords(d, 'chop.service').filter((r) => r.stream === 'stdout').length >= 5 ? true : undefined), 'five lines stored');
      await d.crash();
      // What a SIGKILL in the middle of the write of the last record leaves: its start, cut inside its message.
      const path = join(d.dir, 'state', 'logs', 'chop.service.jsonl');
      const text = readFileSync(path, 'utf8');
      const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
      assert.match(text.slice(lastStart), /"message":"line 5"/);
      truncateSync(path, text.indexOf('"line 5"', lastStart) + 4);
      d = await startTestDaemon({}, d.dir);
      const messages = await eventually(() => {
        const records = storedRecords(d, 'chop.service').filter((r) => r.stream === 'stdout');
        return records.length >= 5 ? records.map((r) => r.message) : undefined;
      }, 'the torn line stored again');
      assert.deepEqual(messages, ['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
    } finally {
      await d.stop();
    }
  });

  it('a service that ends leaves no spool behind', async () => {
    const d = await startTestDaemon({ 'brief.service': "[Service]\nExecStart=/bin/sh -c 'echo one; printf two'\n" });
    try {
      await d.call('Start', { name: 'brief' });
      await eventually(async () => ((await unitStatus(d, 'brief')).activeState === 'inactive' ? true : undefined), 'the service to end');
      const messages = await eventually(async () => {
        const records = (await d.call<{ records: LogRecord[] }>('Logs', { name: 'brief' })).records.filter((r) => r.stream === 'stdout');
        return records.length >= 2 ? records.map((r) => r.message) : undefined;
      }, 'both lines');
      assert.deepEqual(messages, ['one', 'two']);
      const spool = join(d.dir, 'state', 'logs', 'spool');
      await eventually(() => (!existsSync(spool) || readdirSync(spool).length === 0 ? true : undefined), 'the spool to be deleted');
    } finally {
      await d.stop();
    }
  });
});
