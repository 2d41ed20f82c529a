/**
 * A unit's log file as records: one JSON {@link LogRecord} per line, each ended by its newline.
 * The newline is what makes a record whole: a line without one is still being written, or was
 * torn by a crash (the kernel stops a write between two pages on SIGKILL).
 */
import type { FileHandle } from 'node:fs/promises';
import type { LogRecord } from '../types.js';

/**
 * Records of one file. A last line without its newline is a record still being written (or torn by
 * a crash, and cut off when the file is next opened): not a record yet, and not an error. A whole
 * line that is not a record is skipped and counted in `torn` (a file from a version that ended a
 * torn record with a newline and wrote on after it).
 */
export function parseRecords(text: string): { records: LogRecord[]; torn: number } {
  const records: LogRecord[] = [];
  let torn = 0;
  for (let start = 0, end = text.indexOf('\n'); end !== -1; start = end + 1, end = text.indexOf('\n', start)) {
    if (end === start) continue;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(start, end));
    } catch {
      torn++;
      continue;
    }
    if (!isRecord(value)) {
      torn++;
      continue;
    }
    // The spool cursor is bookkeeping for crash recovery, not part of the record.
    delete (value as { cursor?: unknown }).cursor;
    records.push(value);
  }
  return { records, torn };
}

/**
 * Where the whole records of a file of `size` bytes end: just after its last newline. Reads back
 * from the end in steps; a torn record is at most one record (LineMax plus the JSON around it).
 */
export async function wholeRecordsEnd(handle: FileHandle, size: number): Promise<number> {
  const step = 64 * 1024;
  const buffer = Buffer.allocUnsafe(step);
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - step);
    const { bytesRead } = await handle.read(buffer, 0, end - start, start);
    // Only this daemon writes the file, and it is not writing now: a file that shrank is not one to cut.
    if (bytesRead === 0) throw new Error(`the file shrank below ${end} bytes while its end was read`);
    const newline = buffer.lastIndexOf(0x0a, bytesRead - 1);
    if (newline !== -1) return start + newline + 1;
    end = start;
  }
  return 0;
}

function isRecord(value: unknown): value is LogRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return typeof r['time'] === 'number' && typeof r['message'] === 'string' && (r['stream'] === 'stdout' || r['stream'] === 'stderr' || r['stream'] === 'manager');
}
