/**
 * Writing a unit's records to `<unit>.jsonl`. A batch is written with as few syscalls as it takes,
 * a file is rotated between two records (a record is never split across files), and a record torn
 * by a crash or a full disk is cut off the end before anything is appended after it, so it never
 * ends up as a broken line in the middle of a file. A failing disk loses the batch, never the daemon.
 */
import { promises as fsp } from 'node:fs';
import { hasCode } from '../../pidfd/errors.js';
import { wholeRecordsEnd } from './records.js';
import type { UnitLog } from './unit-log.js';

/** The store's limits and diagnostics that writing and reading a unit's files follow. */
export interface RecordFileLimits {
  /** A unit's file is rotated before it would grow past this. */
  readonly maxFileBytes: number;
  /** Rotated files kept per unit. */
  readonly maxRotatedFiles: number;
  /** Captures paused on a unit's backlog read again once it is written down to half of this. */
  readonly highWaterBytes: number;
  /** Rate-limited: a broken disk or file says the same thing again and again. */
  limitedLog(level: 'warning' | 'error', text: string): void;
}

/** Writes every record pending for the unit; call it on the unit's queue. */
export async function writePending(u: UnitLog, limits: RecordFileLimits): Promise<void> {
  while (u.pendingSizes.length > 0) {
    const data = u.takePending();
    const sizes = u.pendingSizes;
    u.pendingSizes = [];
    let bytes = 0;
    for (const size of sizes) bytes += size;
    try {
      await writeRecords(u, data, sizes, limits);
    } catch (error) {
      // A full or failing disk must not stop the daemon: the batch is lost, and said so.
      limits.limitedLog('error', `logs: ${u.unit}: writing failed, ${sizes.length} line(s) lost: ${(error as Error).message}`);
      await u.closeFile();
    }
    u.backlog -= bytes;
    if (u.backlog <= limits.highWaterBytes / 2) u.wakeRoomWaiters();
  }
}

/** Writes encoded records (`sizes` gives each one's length), rotating between two records where the file would grow too big. */
async function writeRecords(u: UnitLog, data: Buffer[], sizes: number[], limits: RecordFileLimits): Promise<void> {
  if (u.handle === undefined) await openFile(u, limits);
  let from = 0;
  let to = 0;
  for (const size of sizes) {
    if (u.size + (to - from) > 0 && u.size + (to - from) + size > limits.maxFileBytes) {
      await writeBytes(u, byteRange(data, from, to));
      from = to;
      await rotate(u, limits);
    }
    to += size;
  }
  await writeBytes(u, from === 0 ? data : byteRange(data, from, to));
}

async function writeBytes(u: UnitLog, data: Buffer[]): Promise<void> {
  let total = 0;
  for (const part of data) total += part.length;
  let done = (await u.handle!.writev(data)).bytesWritten;
  if (done < total) {
    // A short write (disk nearly full, a signal): the rest, in as many writes as it takes.
    const rest = Buffer.concat(data).subarray(done);
    for (let offset = 0; offset < rest.length; ) offset += (await u.handle!.write(rest, offset, rest.length - offset)).bytesWritten;
    done = total;
  }
  u.size += total;
}

async function openFile(u: UnitLog, limits: RecordFileLimits): Promise<void> {
  // a+: appends, and reads the tail below.
  const handle = await fsp.open(u.path, 'a+', 0o640);
  try {
    const { size } = await handle.stat();
    u.size = await wholeRecordsEnd(handle, size);
    if (u.size < size) {
      // A SIGKILL in the middle of a write (the kernel stops a write between two pages), or a
      // write cut short by a full disk, left the start of a record. Cut it off: appended after,
      // it would stay a torn line in the middle of the file. What it held is not lost: its lines are still in the spool beyond the last whole
      // record's cursor, and are stored again.
      await handle.truncate(u.size);
      limits.limitedLog('warning', `logs: ${u.unit}: cut ${size - u.size} byte(s) of a record torn by a crash or a full disk off the end of ${u.path}`);
    }
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
  u.handle = handle;
}

/** `<unit>.jsonl` becomes `.1`, `.1` becomes `.2`, …; the one beyond `maxRotatedFiles` is deleted. */
async function rotate(u: UnitLog, limits: RecordFileLimits): Promise<void> {
  await u.handle?.close();
  u.handle = undefined;
  const max = limits.maxRotatedFiles;
  if (max === 0) await removeQuietly(u.path);
  else {
    await removeQuietly(`${u.path}.${max}`);
    for (let i = max - 1; i >= 1; i--) await renameQuietly(`${u.path}.${i}`, `${u.path}.${i + 1}`);
    await renameQuietly(u.path, `${u.path}.1`);
  }
  await openFile(u, limits);
}

/** Bytes `from` to `to` of the concatenation of `parts`, as views into them. */
function byteRange(parts: Buffer[], from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const part of parts) {
    const start = Math.max(from - offset, 0);
    const end = Math.min(to - offset, part.length);
    if (start < end) out.push(part.subarray(start, end));
    offset += part.length;
    if (offset >= to) break;
  }
  return out;
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await fsp.unlink(path);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}

async function renameQuietly(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}
