/**
 * A spool: the on-disk first stop of one captured stream. Bytes go from the service's pipe into
 * the spool file with splice(2), which moves them in one kernel step, so no byte is ever only in
 * the daemon's memory. The daemon then reads them back, splits lines and stores records; each
 * record carries a cursor (`<spool id>:<stream offset after the line>`), written in the same
 * write as the record. A daemon that starts after a crash finds the last cursor of the spool in
 * the unit's log and stores what follows it: nothing lost, nothing twice.
 *
 * File name: `<id>.<stream>.<base>.<unit>`, where `base` is the stream offset of the file's first
 * byte. Once everything up to some offset is stored, the spool is rolled: what follows that offset
 * is copied to a new file (written under a temporary name, then renamed), and the old file is
 * deleted. A crash in between leaves two files; the one with the higher base is whole.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { native } from '../../native.js';
import { hasCode } from '../../pidfd/errors.js';

/** Which stream a spool holds. */
export type SpoolStream = 'stdout' | 'stderr';

/** A spool file found on disk. */
export interface SpoolFile {
  id: string;
  stream: SpoolStream;
  base: number;
  unit: string;
  path: string;
}

const NAME = /^([0-9a-f]{16})\.(stdout|stderr)\.(\d+)\.(.+)$/;
/** Largest piece moved from a pipe in one call: a full default pipe buffer. */
const MOVE_MAX = 64 * 1024;

/** The cursor a record carries: everything of spool `id` before `offset` is stored. */
export function cursorText(id: string, offset: number): string {
  return `${id}:${offset}`;
}

/**
 * The offset of the last cursor of spool `id` in `text` (a log file), if there is one. Only a
 * whole record counts: a write cut short by a SIGKILL can leave a torn last record whose cursor
 * text is there, or half there, although the record itself is not.
 */
export function lastCursorIn(text: string, id: string): number | undefined {
  const needle = `"cursor":"${id}:`;
  for (let at = text.lastIndexOf(needle); at !== -1; ) {
    const lineStart = text.lastIndexOf('\n', at) + 1;
    const lineEnd = text.indexOf('\n', at);
    if (lineEnd !== -1) {
      const cursor = cursorOf(text.slice(lineStart, lineEnd), id);
      if (cursor !== undefined) return cursor;
    }
    at = lineStart === 0 ? -1 : text.lastIndexOf(needle, lineStart - 1);
  }
  return undefined;
}

/** The offset in a record's cursor of spool `id`; undefined when the line is not a whole record. */
function cursorOf(line: string, id: string): number | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  const cursor = (record as { cursor?: unknown } | null)?.cursor;
  if (typeof cursor !== 'string' || !cursor.startsWith(`${id}:`)) return undefined;
  const value = Number(cursor.slice(id.length + 1));
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** The spool files in `directory`, grouped by id, highest base first. */
export function listSpools(directory: string): Map<string, SpoolFile[]> {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return new Map();
    throw error;
  }
  const byId = new Map<string, SpoolFile[]>();
  for (const name of names) {
    const match = NAME.exec(name);
    if (match === null) continue;
    const file: SpoolFile = { id: match[1]!, stream: match[2] as SpoolStream, base: Number(match[3]), unit: match[4]!, path: join(directory, name) };
    if (!Number.isSafeInteger(file.base)) continue;
    const list = byId.get(file.id) ?? [];
    list.push(file);
    byId.set(file.id, list);
  }
  for (const list of byId.values()) list.sort((a, b) => b.base - a.base);
  return byId;
}

/** One stream's spool file, open for moving bytes in and reading them back. */
export class Spool {
  readonly directory: string;
  readonly id: string;
  readonly stream: SpoolStream;
  readonly unit: string;
  /** Stream offset of the file's first byte. */
  #base: number;
  /** Stream offset just past the file's last byte. */
  #end: number;
  #fd: number;
  #path: string;
  /** Set once splice(2) into this file system was refused: bytes then pass through memory. */
  #copying = false;

  private constructor(directory: string, id: string, stream: SpoolStream, unit: string, base: number, end: number, fd: number, path: string) {
    this.directory = directory;
    this.id = id;
    this.stream = stream;
    this.unit = unit;
    this.#base = base;
    this.#end = end;
    this.#fd = fd;
    this.#path = path;
  }

  /**
   * A new, empty spool for one stream of `unit`. Its file is made with the first bytes, so a stream
   * that stays silent costs no file, and starting a service no file system work.
   */
  static create(directory: string, unit: string, stream: SpoolStream): Spool {
    const id = randomBytes(8).toString('hex');
    return new Spool(directory, id, stream, unit, 0, 0, -1, join(directory, `${id}.${stream}.0.${unit}`));
  }

  /**
   * The spool `id` left by an earlier daemon: its newest file (older ones, whole by construction,
   * are deleted). Undefined when there is none.
   */
  static reopen(directory: string, id: string): Spool | undefined {
    const files = listSpools(directory).get(id);
    if (files === undefined) return undefined;
    const [newest, ...older] = files;
    for (const file of older) unlinkQuietly(file.path);
    unlinkQuietly(join(directory, `.${id}.tmp`));
    const fd = openSync(newest!.path, 'r+');
    const size = fstatSync(fd).size;
    return new Spool(directory, id, newest!.stream, newest!.unit, newest!.base, newest!.base + size, fd, newest!.path);
  }

  /** Stream offset of the oldest byte still in the file. */
  get base(): number {
    return this.#base;
  }

  /** Stream offset just past the newest byte. */
  get end(): number {
    return this.#end;
  }

  /** Whether bytes move pipe → file inside the kernel (false where the file system refuses splice). */
  get exact(): boolean {
    return !this.#copying;
  }

  /**
   * Moves what the pipe holds (up to 64 KiB) to the end of the file. Returns the bytes moved, 0 at
   * EOF, or null when the pipe is empty. A full disk throws (ENOSPC): with splice the bytes stay in
   * the pipe; where they pass through memory, the error's `lostBytes` says how many were taken
   * out of the pipe and not written.
   */
  fill(pipeFd: number): number | null {
    if (this.#fd === -1) this.#fd = createFile(this.directory, this.#path);
    if (!this.#copying) {
      try {
        const moved = native.spliceToFile(pipeFd, this.#fd, this.#end - this.#base, MOVE_MAX);
        if (moved !== null) this.#end += moved;
        return moved;
      } catch (error) {
        if (!hasCode(error, 'EINVAL', 'ENOSYS', 'EOPNOTSUPP')) throw error;
        this.#copying = true;
      }
    }
    const piece = readPipe(pipeFd);
    if (piece === null || piece === 0) return piece;
    try {
      writeFully(this.#fd, piece, this.#end - this.#base);
    } catch (error) {
      // The piece is out of the pipe and not in the file: whoever catches this counts it as lost.
      throw Object.assign(error as Error, { lostBytes: piece.length });
    }
    this.#end += piece.length;
    return piece.length;
  }

  /** The bytes from stream offset `from` to the end. */
  readFrom(from: number): Buffer {
    const start = Math.max(from, this.#base);
    const length = this.#end - start;
    if (length <= 0 || this.#fd === -1) return Buffer.alloc(0);
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const count = readSync(this.#fd, buffer, done, length - done, start - this.#base + done);
      if (count === 0) break;
      done += count;
    }
    return buffer.subarray(0, done);
  }

  /**
   * Drops everything before stream offset `stored` (which must be stored in the log by now): the
   * rest goes to a new file named for its base, and the old file is deleted.
   */
  roll(stored: number): void {
    if (stored <= this.#base || stored > this.#end) return;
    const rest = this.readFrom(stored);
    const path = join(this.directory, `${this.id}.${this.stream}.${stored}.${this.unit}`);
    const temporary = join(this.directory, `.${this.id}.tmp`);
    const fd = openSync(temporary, 'w+', 0o600);
    try {
      writeFully(fd, rest, 0);
      renameSync(temporary, path);
    } catch (error) {
      closeSync(fd);
      unlinkQuietly(temporary);
      throw error;
    }
    closeSync(this.#fd);
    unlinkQuietly(this.#path);
    this.#fd = fd;
    this.#path = path;
    this.#base = stored;
  }

  /** Closes the file and keeps it, for the next daemon. */
  close(): void {
    if (this.#fd !== -1) closeQuietly(this.#fd);
    this.#fd = -1;
  }

  /** Closes and deletes the file: everything in it is stored. */
  remove(): void {
    if (this.#fd === -1) return;
    closeQuietly(this.#fd);
    this.#fd = -1;
    unlinkQuietly(this.#path);
  }
}

function createFile(directory: string, path: string): number {
  try {
    return openSync(path, 'wx+', 0o600);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    return openSync(path, 'wx+', 0o600);
  }
}

/** Whether `error` says the file system has no room (for the spool, or for a log file). */
export function isOutOfSpace(error: unknown): boolean {
  return hasCode(error, 'ENOSPC', 'EDQUOT', 'EFBIG');
}

/** How an out-of-space error is said in a unit's log. */
export function outOfSpaceReason(error: unknown): string {
  if (hasCode(error, 'EDQUOT')) return 'disk quota exceeded';
  if (hasCode(error, 'EFBIG')) return 'file too large';
  return 'no space left on device';
}

/** What a nonblocking pipe holds (up to 64 KiB) through memory: 0 at EOF, null while it is empty. */
export function readPipe(pipeFd: number): Buffer | 0 | null {
  const buffer = Buffer.allocUnsafe(MOVE_MAX);
  try {
    const count = readSync(pipeFd, buffer, 0, MOVE_MAX, null);
    return count === 0 ? 0 : buffer.subarray(0, count);
  } catch (error) {
    if (hasCode(error, 'EAGAIN')) return null;
    throw error;
  }
}

function writeFully(fd: number, data: Buffer, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}
