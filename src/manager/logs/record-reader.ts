/**
 * Reading a unit's stored records back, newest file first so that `lines` and `since` stop early.
 * Every read first writes what is pending, on the unit's queue, so a reader sees every record
 * appended before it asked; `tail` subscribes at the one moment nothing is pending, so that stored
 * and live records meet without a gap or a duplicate.
 */
import { promises as fsp } from 'node:fs';
import { errnoError, hasCode } from '../../pidfd/errors.js';
import type { LogRecord } from '../types.js';
import { parseRecords } from './records.js';
import { writePending, type RecordFileLimits } from './record-writer.js';
import { lastCursorIn } from './spool.js';
import type { Follower, UnitLog } from './unit-log.js';

/** Options of {@link LogStore.read}. */
export interface ReadOptions {
  /** Only the newest this many records (after the other filters). */
  lines?: number;
  /** Only records with `time >= since` (µs since the epoch). */
  since?: number;
  /** Only records of this invocation. */
  invocationId?: string;
}

/** Throws EINVAL unless `lines` is absent or an integer >= 0. */
export function assertLinesOption(options: ReadOptions): void {
  if (options.lines !== undefined && (!Number.isInteger(options.lines) || options.lines < 0)) {
    throw errnoError('EINVAL', `lines must be an integer >= 0 (got ${options.lines})`);
  }
}

/** The unit's records as {@link LogStore.read} gives them. */
export function readRecords(u: UnitLog, options: ReadOptions, limits: RecordFileLimits): Promise<LogRecord[]> {
  return u.enqueue(async () => {
    await writePending(u, limits);
    return readFiles(u, options, limits);
  });
}

/** The unit's stored records and a live follower from the moment they end, as {@link LogStore.tail} gives them. */
export async function tailRecords(u: UnitLog, options: ReadOptions, onRecord: (record: LogRecord) => void, limits: RecordFileLimits): Promise<{ records: LogRecord[]; stop: () => void }> {
  let buffered: LogRecord[] | undefined = [];
  const follower: Follower = (record) => {
    if (!recordMatches(record, options)) return;
    if (buffered !== undefined) buffered.push(record);
    else onRecord(record);
  };
  const stop = (): void => {
    u.followers.delete(follower);
  };
  assertLinesOption(options);
  let stored: LogRecord[];
  try {
    stored = await u.enqueue(async () => {
      // Subscribe at the moment nothing is pending: every record is then either in the files
      // read below (nothing is written to them until this read is done) or seen by the follower.
      while (u.pendingSizes.length > 0) await writePending(u, limits);
      u.followers.add(follower);
      return readFiles(u, options, limits);
    });
  } catch (error) {
    stop();
    throw error;
  }
  const records = stored.concat(buffered);
  buffered = undefined;
  const { lines } = options;
  return { records: lines !== undefined && records.length > lines ? records.slice(records.length - lines) : records, stop };
}

/** The last cursor of spool `id` in the unit's stored records, after everything pending is written. */
export function lastStoredCursor(u: UnitLog, id: string, limits: RecordFileLimits): Promise<number | undefined> {
  return u.enqueue(async () => {
    await writePending(u, limits);
    for (const path of unitPaths(u, limits)) {
      const text = await readIfPresent(path);
      if (text === undefined) continue;
      const cursor = lastCursorIn(text, id);
      if (cursor !== undefined) return cursor;
    }
    return undefined;
  });
}

function recordMatches(r: LogRecord, { since, invocationId }: ReadOptions): boolean {
  return (since === undefined || r.time >= since) && (invocationId === undefined || r.invocationId === invocationId);
}

/** The unit's files, newest first. */
function unitPaths(u: UnitLog, limits: RecordFileLimits): string[] {
  const paths = [u.path];
  for (let i = 1; i <= limits.maxRotatedFiles; i++) paths.push(`${u.path}.${i}`);
  return paths;
}

async function readFiles(u: UnitLog, options: ReadOptions, limits: RecordFileLimits): Promise<LogRecord[]> {
  const { lines, since } = options;
  if (lines === 0) return [];
  let collected: LogRecord[] = [];
  for (const path of unitPaths(u, limits)) {
    const text = await readIfPresent(path);
    if (text === undefined) continue;
    const { records, torn } = parseRecords(text);
    if (torn > 0) limits.limitedLog('warning', `logs: ${u.unit}: skipped ${torn} line(s) of ${path} that are not whole records`);
    const matching = records.filter((r) => recordMatches(r, options));
    collected = matching.concat(collected);
    if (lines !== undefined && collected.length >= lines) break;
    // Older files hold older records: once this one starts before `since`, they cannot match.
    if (since !== undefined && records.length > 0 && records[0]!.time < since) break;
  }
  return lines !== undefined && collected.length > lines ? collected.slice(collected.length - lines) : collected;
}

/** A file's text, or undefined when it does not exist (a rotated file not made yet). */
async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return undefined;
    throw error;
  }
}
