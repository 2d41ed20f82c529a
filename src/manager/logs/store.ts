/**
 * Per-unit log storage: one JSON-lines file per unit (`<unit>.jsonl`, one {@link LogRecord} per
 * line) with size-based rotation (`<unit>.jsonl.1` is the newest rotated file). Records from every
 * capture and note meet here and are written once per event-loop turn, so a loud service costs one
 * write per turn, not one per line; live followers see each record before it reaches the disk.
 */
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errnoError, hasCode } from '../../pidfd/errors.js';
import { Pidfd } from '../../pidfd/pidfd.js';
import type { LogRecord } from '../types.js';
import { RateLimitedLog, stderrLogger, type Logger } from '../rate-limited-log.js';
import { LogCapture, type CaptureFromFdsOptions, type CaptureOptions, type LogSink } from './capture.js';
import { nowMicros } from './clock.js';
import { DEFAULT_LINE_MAX, LineSplitter } from './lines.js';
import { makePipes } from './pipes.js';
import { assertLinesOption, lastStoredCursor, readRecords, tailRecords, type ReadOptions } from './record-reader.js';
import { writePending, type RecordFileLimits } from './record-writer.js';
import { cursorText, listSpools, Spool } from './spool.js';
import { UnitLog, type Follower } from './unit-log.js';

/** Default size at which a unit's file is rotated. */
export const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024;
/** Default number of rotated files kept per unit (`.1` … `.4`). */
export const DEFAULT_MAX_ROTATED_FILES = 4;
/** Default unwritten bytes per unit above which captures stop reading until the disk catches up. */
export const DEFAULT_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Default spool size at which its stored part is dropped. */
export const DEFAULT_SPOOL_ROLL_BYTES = 1024 * 1024;

/** Options of {@link LogStore.open}. */
export interface LogStoreOptions {
  /** Where the files go (the daemon's `<state dir>/logs`); created if missing. */
  directory: string;
  /** A unit's file is rotated before it would grow past this (default 8 MiB). A record is never split. */
  maxFileBytes?: number;
  /** Rotated files kept per unit, `<unit>.jsonl.1` (newest) to `.N`; older ones are deleted (default 4). */
  maxRotatedFiles?: number;
  /** Longest line stored as one record; longer ones are split (journald's LineMax=, default 48 KiB). */
  lineMax?: number;
  /** Unwritten bytes per unit at which captures pause reading (default 4 MiB). */
  highWaterBytes?: number;
  /** A capture's spool file drops its stored part once it holds this many bytes (default 1 MiB). */
  spoolRollBytes?: number;
  /** Where diagnostics go (default: warnings and errors to stderr). */
  log?: Logger;
}

/** A note the manager adds to a unit's log ({@link LogStore.append}). */
export interface AppendInput {
  message: string;
  /** Default `manager`. */
  stream?: LogRecord['stream'];
  /** µs since the epoch; default now. */
  time?: number;
  /** Default this process (the daemon). */
  pid?: number | null;
  /** Default this process's pidfd id where `pid` is defaulted too, else null. */
  pidfdId?: bigint | number | string | null;
  invocationId?: string | null;
}


/** Events of a {@link LogStore}. */
export interface LogStoreEvents {
  /** Every record, as it is captured or appended (before it reaches the disk). */
  record: [unit: string, record: LogRecord];
}


let ownPidfdId: string | null | undefined;

function daemonPidfdId(): string | null {
  if (ownPidfdId === undefined) {
    try {
      const self = Pidfd.self();
      ownPidfdId = self.id === undefined ? null : String(self.id);
      self.close();
    } catch {
      ownPidfdId = null;
    }
  }
  return ownPidfdId;
}

/** The daemon's log storage. */
export class LogStore extends EventEmitter<LogStoreEvents> implements LogSink, RecordFileLimits {
  readonly directory: string;
  readonly maxFileBytes: number;
  readonly maxRotatedFiles: number;
  readonly lineMax: number;
  readonly highWaterBytes: number;
  readonly spoolRollBytes: number;
  /** @internal Where captures spool their streams (`<directory>/spool`). */
  readonly spoolDirectory: string;
  /** @internal */
  readonly log: Logger;

  readonly #units = new Map<string, UnitLog>();
  readonly #captures = new Set<LogCapture>();
  readonly #spoolsInUse = new Set<string>();
  readonly #limited: RateLimitedLog;
  #closed = false;

  /** Creates the directory if needed and returns the store. */
  static async open(options: LogStoreOptions): Promise<LogStore> {
    await fsp.mkdir(join(options.directory, 'spool'), { recursive: true, mode: 0o750 });
    return new LogStore(options);
  }

  /** Prefer {@link LogStore.open}, which creates the directory. */
  constructor(options: LogStoreOptions) {
    super();
    this.directory = options.directory;
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.maxRotatedFiles = options.maxRotatedFiles ?? DEFAULT_MAX_ROTATED_FILES;
    this.lineMax = options.lineMax ?? DEFAULT_LINE_MAX;
    this.highWaterBytes = options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
    this.spoolRollBytes = options.spoolRollBytes ?? DEFAULT_SPOOL_ROLL_BYTES;
    this.spoolDirectory = join(this.directory, 'spool');
    this.log = options.log ?? stderrLogger;
    this.#limited = new RateLimitedLog(this.log, 'logs: ');
    if (!(this.maxFileBytes > 0)) throw new RangeError(`maxFileBytes must be positive (got ${this.maxFileBytes})`);
    if (!Number.isInteger(this.maxRotatedFiles) || this.maxRotatedFiles < 0) throw new RangeError(`maxRotatedFiles must be an integer >= 0 (got ${this.maxRotatedFiles})`);
    if (!(this.highWaterBytes > 0)) throw new RangeError(`highWaterBytes must be positive (got ${this.highWaterBytes})`);
  }

  /**
   * Makes a pipe per requested stream for a process about to be spawned. Pass the capture's
   * `stdoutFd`/`stderrFd` to the spawn as fd 1 and 2, then call `attach()` and `closeWriteEnds()`.
   */
  capture(unit: string, options: CaptureOptions = {}): LogCapture {
    this.#assertOpen();
    this.#unit(unit);
    const { read, write } = makePipes(options.stdout ?? true, options.stderr ?? true);
    const capture = new LogCapture(this, unit, options.invocationId ?? null, read, write, undefined);
    this.#captures.add(capture);
    return capture;
  }

  /**
   * Reads pipes whose read ends were made elsewhere (e.g. handed back by a keeper process after a
   * daemon restart). The capture owns the fds from now on.
   */
  captureFromFds(unit: string, options: CaptureFromFdsOptions): LogCapture {
    this.#assertOpen();
    this.#unit(unit);
    const read = { stdout: options.stdoutReadFd ?? null, stderr: options.stderrReadFd ?? null };
    const spools = { stdout: options.stdoutSpool ?? null, stderr: options.stderrSpool ?? null };
    const capture = new LogCapture(this, unit, options.invocationId ?? null, read, { stdout: null, stderr: null }, options.writer, spools);
    this.#captures.add(capture);
    return capture;
  }

  /** Adds the manager's own note about a unit (stream `manager` unless given). Returns the record stored. */
  append(unit: string, input: AppendInput): LogRecord {
    this.#assertOpen();
    const pidDefaulted = input.pid === undefined;
    const id = input.pidfdId ?? (pidDefaulted ? daemonPidfdId() : null);
    const record: LogRecord = {
      time: input.time ?? nowMicros(),
      stream: input.stream ?? 'manager',
      pid: pidDefaulted ? process.pid : input.pid!,
      pidfdId: id === null ? null : String(id),
      invocationId: input.invocationId ?? null,
      message: input.message,
    };
    this.push(unit, record);
    return record;
  }

  /**
   * Records oldest → newest, across the rotated files, after every record appended so far was
   * written. A last line without its newline is not a record yet; a whole line that is not a
   * record is skipped, and said so (rate-limited).
   */
  async read(unit: string, options: ReadOptions = {}): Promise<LogRecord[]> {
    const u = this.#unit(unit);
    assertLinesOption(options);
    return readRecords(u, options, this);
  }

  /** Calls `onRecord` for every new record of `unit` until the returned function is called. */
  follow(unit: string, onRecord: (record: LogRecord) => void): () => void {
    const u = this.#unit(unit);
    const follower: Follower = (record) => onRecord(record);
    u.followers.add(follower);
    return () => {
      u.followers.delete(follower);
    };
  }

  /**
   * `read()` and `follow()` without a gap or a duplicate, for `logs --follow`: `records` are the
   * stored ones (as `read` gives them, plus any captured while reading), and `onRecord` gets
   * every later record until `stop()` is called. Live records start once the returned promise
   * has settled.
   */
  async tail(unit: string, options: ReadOptions, onRecord: (record: LogRecord) => void): Promise<{ records: LogRecord[]; stop: () => void }> {
    return tailRecords(this.#unit(unit), options, onRecord, this);
  }

  /** Units that have log files here, sorted. */
  async units(): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.directory);
    } catch (error) {
      if (hasCode(error, 'ENOENT')) return [];
      throw error;
    }
    const units = new Set<string>();
    for (const name of names) {
      const match = /^(.+)\.jsonl(?:\.\d+)?$/.exec(name);
      if (match !== null) units.add(match[1]!);
    }
    for (const unit of this.#units.keys()) if (this.#units.get(unit)!.backlog > 0) units.add(unit);
    return [...units].sort();
  }

  /** Writes everything appended so far (of one unit, or of all). */
  async flush(unit?: string): Promise<void> {
    const targets = unit === undefined ? [...this.#units.values()] : [this.#unit(unit)];
    await Promise.all(targets.map((u) => u.enqueue(() => writePending(u, this))));
  }

  /**
   * Stops every capture still reading (their read ends are closed: hand them to a keeper first
   * if the services should keep running), writes everything and closes the files. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const capture of [...this.#captures]) capture.abort();
    await Promise.all([...this.#captures].map((capture) => capture.done));
    this.#closed = true;
    await Promise.all(
      [...this.#units.values()].map((u) =>
        u.enqueue(async () => {
          await writePending(u, this);
          await u.closeFile();
          u.wakeRoomWaiters();
        }),
      ),
    );
    this.#limited.dispose();
  }

  /** @internal Stores one record (from a capture or {@link append}); `json` is its serialized form where the caller made it. */
  push(unit: string, record: LogRecord, json: string = JSON.stringify(record)): void {
    this.#assertOpen();
    const u = this.#unit(unit);
    const size = u.encode(json);
    u.pendingSizes.push(size);
    u.backlog += size;
    for (const follower of u.followers) {
      try {
        follower(record);
      } catch (error) {
        this.#limited.write('warning', `logs: ${unit}: a follower failed: ${(error as Error).message}`);
      }
    }
    try {
      this.emit('record', unit, record);
    } catch (error) {
      this.#limited.write('warning', `logs: ${unit}: a 'record' listener failed: ${(error as Error).message}`);
    }
    if (!u.scheduled) {
      u.scheduled = true;
      setImmediate(() => {
        u.scheduled = false;
        void u.enqueue(() => writePending(u, this));
      });
    }
  }

  /** @internal */
  limitedLog(level: 'warning' | 'error', text: string): void {
    this.#limited.write(level, text);
  }

  /** @internal */
  hasRoom(unit: string): boolean {
    return (this.#units.get(unit)?.backlog ?? 0) < this.highWaterBytes;
  }

  /** @internal */
  waitForRoom(unit: string): Promise<void> {
    const u = this.#units.get(unit);
    if (u === undefined || this.#closed || u.backlog <= this.highWaterBytes / 2) return Promise.resolve();
    return new Promise((resolve) => u.roomWaiters.push(resolve));
  }

  /** @internal */
  spoolInUse(id: string, inUse: boolean): void {
    if (inUse) this.#spoolsInUse.add(id);
    else this.#spoolsInUse.delete(id);
  }

  /** @internal */
  lastCursor(unit: string, id: string): Promise<number | undefined> {
    return lastStoredCursor(this.#unit(unit), id, this);
  }

  /**
   * Stores what spools no capture reads still hold beyond their last stored cursor, then deletes
   * them: output of pipes that no keeper brought back (the keeper died too), read from disk. Call
   * it once the captures handed back by a keeper exist. Returns the number of lines recovered.
   */
  async recoverSpools(): Promise<number> {
    this.#assertOpen();
    let recovered = 0;
    for (const [id, files] of listSpools(this.spoolDirectory)) {
      if (this.#spoolsInUse.has(id)) continue;
      const { unit, stream } = files[0]!;
      let spool: Spool | undefined;
      try {
        spool = Spool.reopen(this.spoolDirectory, id);
        if (spool === undefined) continue;
        const from = Math.min(Math.max((await this.lastCursor(unit, id)) ?? spool.base, spool.base), spool.end);
        const splitter = new LineSplitter(this.lineMax);
        const time = nowMicros();
        let offset = from;
        const store = (line: Buffer, terminatorBytes: number): void => {
          offset += line.length + terminatorBytes;
          recovered++;
          const record: LogRecord = { time, stream, pid: null, pidfdId: null, invocationId: null, message: line.toString('utf8') };
          this.push(unit, record, `${JSON.stringify(record).slice(0, -1)},"cursor":"${cursorText(id, offset)}"}`);
        };
        splitter.push(spool.readFrom(from), store);
        splitter.end(store);
        await this.flush(unit);
        spool.remove();
      } catch (error) {
        spool?.close();
        this.#limited.write('warning', `logs: ${unit}: recovering spool ${id} failed: ${(error as Error).message}`);
      }
    }
    return recovered;
  }

  /**
   * Stops every capture without ending anything, for daemon-reexec: their spools stay (with any
   * unfinished line) for the next image, which takes the read ends back from the keeper. Every
   * record is written and the files are closed.
   */
  async release(): Promise<void> {
    if (this.#closed) return;
    for (const capture of [...this.#captures]) capture.release();
    await this.close();
  }

  /** @internal */
  forget(capture: LogCapture): void {
    this.#captures.delete(capture);
  }

  #assertOpen(): void {
    if (this.#closed) throw errnoError('EBADF', 'the log store is closed');
  }

  #unit(unit: string): UnitLog {
    let u = this.#units.get(unit);
    if (u === undefined) {
      assertUnitName(unit);
      u = new UnitLog(unit, join(this.directory, `${unit}.jsonl`));
      this.#units.set(unit, u);
    }
    return u;
  }
}

/** A unit name makes a file name: no separators, no dot-names, no NUL. */
function assertUnitName(unit: string): void {
  if (unit.length === 0 || unit.length > 240 || unit.includes('/') || unit.includes('\0') || unit.startsWith('.')) {
    throw errnoError('EINVAL', `not a unit name usable for a log file: ${JSON.stringify(unit)}`);
  }
}
