/**
 * Capturing a process's stdout and stderr: a pipe per stream, watched on the event loop (epoll, no
 * threadpool thread is tied up), moved into a spool file by splice(2) before it is read, split into
 * lines, stamped and handed to the store (see spool.ts for why nothing is lost in a crash).
 *
 * The read ends can also come from outside ({@link LogStore.captureFromFds}), e.g. from a keeper
 * process that held them while the daemon restarted, so no output is lost and no service gets
 * SIGPIPE in between.
 */
import { native, type RawWatcher } from '../../native.js';
import type { LogRecord } from '../types.js';
import { safeLog, type Logger } from '../rate-limited-log.js';
import { nowMicros } from './clock.js';
import { LineSplitter } from './lines.js';
import { cursorText, isOutOfSpace, outOfSpaceReason, readPipe, Spool } from './spool.js';

/** The process a capture's lines are attributed to. */
export interface LogWriter {
  pid: number | null;
  /** Its pidfd id (bigint from `Pidfd.id`, or the decimal string). */
  pidfdId?: bigint | number | string | null;
}

/** Options of {@link LogStore.capture}. */
export interface CaptureOptions {
  /** The invocation the output belongs to (`$INVOCATION_ID`). */
  invocationId?: string | null;
  /** Capture stdout (default true). */
  stdout?: boolean;
  /** Capture stderr (default true). */
  stderr?: boolean;
}

/** Options of {@link LogStore.captureFromFds}: read ends made elsewhere. */
export interface CaptureFromFdsOptions {
  invocationId?: string | null;
  /** Read end of the stdout pipe; the capture owns it from now on. */
  stdoutReadFd?: number | null;
  /** Read end of the stderr pipe; the capture owns it from now on. */
  stderrReadFd?: number | null;
  /** The writer, if already known (else call {@link LogCapture.attach}). */
  writer?: LogWriter;
  /** The spool id of the stdout read end (from {@link LogCapture.spoolIds}), to go on where the earlier reader stopped. */
  stdoutSpool?: string | null;
  /** The spool id of the stderr read end. */
  stderrSpool?: string | null;
}

/** @internal What a capture needs from the store. */
export interface LogSink {
  readonly lineMax: number;
  readonly log: Logger;
  /** For what outside input can repeat at will (a service's output on a full disk): rate-limited. */
  limitedLog(level: 'warning' | 'error', text: string): void;
  readonly spoolDirectory: string;
  /** A spool is rolled once it holds this many bytes. */
  readonly spoolRollBytes: number;
  /** Stores a record; `json` is its serialized form when the caller has it (with fields the record lacks, such as the spool cursor). */
  push(unit: string, record: LogRecord, json?: string): void;
  /** The last cursor of spool `id` in the unit's stored log, after everything pending is written. */
  lastCursor(unit: string, id: string): Promise<number | undefined>;
  /** Marks a spool as read by a live capture (or no longer). */
  spoolInUse(id: string, inUse: boolean): void;
  /** False while the unit has more unwritten output than the store wants to buffer. */
  hasRoom(unit: string): boolean;
  /** Settles once the unit's backlog is written down to the low-water mark. */
  waitForRoom(unit: string): Promise<void>;
  flush(unit: string): Promise<void>;
  forget(capture: LogCapture): void;
}

type Stream = 'stdout' | 'stderr';

/**
 * One process's captured output. The manager passes {@link stdoutFd}/{@link stderrFd} to the
 * spawn as the child's fd 1 and 2, calls {@link attach} with the child, then
 * {@link closeWriteEnds}; {@link done} settles once every process holding the pipes (the child and
 * anything it left running) has closed them and every line is stored.
 */
export class LogCapture {
  readonly unit: string;
  readonly invocationId: string | null;
  /**
   * Settles when both streams reached EOF (or were aborted) and everything read was written to
   * the store's files. Never rejects: read errors end the stream and are logged.
   */
  readonly done: Promise<void>;

  readonly #sink: LogSink;
  #writeEnds: { stdout: number | null; stderr: number | null };
  readonly #readFds: { stdout: number | null; stderr: number | null };
  readonly #readers: StreamReader[] = [];
  #pid: number | null = null;
  #pidfdId: string | null = null;
  #jsonMiddle: { stdout: string | undefined; stderr: string | undefined } = { stdout: undefined, stderr: undefined };

  /** @internal Made by the store. */
  constructor(
    sink: LogSink,
    unit: string,
    invocationId: string | null,
    readFds: { stdout: number | null; stderr: number | null },
    writeEnds: { stdout: number | null; stderr: number | null },
    writer: LogWriter | undefined,
    spools: { stdout: string | null; stderr: string | null } = { stdout: null, stderr: null },
  ) {
    this.#sink = sink;
    this.unit = unit;
    this.invocationId = invocationId;
    this.#readFds = readFds;
    this.#writeEnds = writeEnds;
    if (writer !== undefined) this.attach(writer);
    for (const stream of ['stdout', 'stderr'] as const) {
      const fd = readFds[stream];
      if (fd !== null) this.#readers.push(new StreamReader(this, sink, fd, stream, spools[stream]));
    }
    this.done = (async () => {
      await Promise.all(this.#readers.map((reader) => reader.ended));
      try {
        await sink.flush(unit);
      } catch (error) {
        safeLog(sink.log, 'error', `logs: ${unit}: storing the last lines failed: ${(error as Error).message}`);
      } finally {
        sink.forget(this);
      }
    })();
  }

  /** Write end of the stdout pipe, for the child's fd 1; `null` when stdout is not captured or after {@link closeWriteEnds}. */
  get stdoutFd(): number | null {
    return this.#writeEnds.stdout;
  }

  /** Write end of the stderr pipe, for the child's fd 2; `null` when stderr is not captured or after {@link closeWriteEnds}. */
  get stderrFd(): number | null {
    return this.#writeEnds.stderr;
  }

  /**
   * The read ends (owned by the capture): to `dup` and hand to a keeper process that must keep
   * the pipes alive should the daemon die.
   */
  get readFds(): { readonly stdout: number | null; readonly stderr: number | null } {
    return { ...this.#readFds };
  }

  /** The spool ids of the streams, kept with the read ends so that a later daemon goes on where this one stopped. */
  get spoolIds(): { readonly stdout: string | null; readonly stderr: string | null } {
    const ids: { stdout: string | null; stderr: string | null } = { stdout: null, stderr: null };
    for (const reader of this.#readers) ids[reader.stream] = reader.spoolId;
    return ids;
  }

  /** The writer the next lines are attributed to. */
  get writer(): { pid: number | null; pidfdId: string | null } {
    return { pid: this.#pid, pidfdId: this.#pidfdId };
  }

  /**
   * Attributes lines read from now on to this process (call it right after the spawn, in the
   * same synchronous block, so that no line is read before). Its children inherit the pipe and
   * are attributed to it too, as in journald.
   */
  attach(writer: LogWriter): void {
    this.#pid = writer.pid;
    const id = writer.pidfdId;
    this.#pidfdId = id === null || id === undefined ? null : String(id);
    this.#jsonMiddle = { stdout: undefined, stderr: undefined };
  }

  /**
   * Closes this process's copies of the write ends; call it right after the spawn, otherwise EOF
   * never comes. Safe to call twice.
   */
  closeWriteEnds(): void {
    const ends = this.#writeEnds;
    this.#writeEnds = { stdout: null, stderr: null };
    if (ends.stdout !== null) closeQuietly(ends.stdout);
    if (ends.stderr !== null) closeQuietly(ends.stderr);
  }

  /**
   * Stops reading now: the read ends are closed (a writer still running gets EPIPE/SIGPIPE), what
   * was read is stored, {@link done} settles. For shutdown without a keeper, or a failed spawn.
   */
  abort(): void {
    this.closeWriteEnds();
    for (const reader of this.#readers) reader.abort();
  }

  /**
   * Stops reading and leaves the spools for the next daemon (daemon-reexec): read ends closed here,
   * unfinished lines kept. {@link done} settles.
   */
  release(): void {
    this.closeWriteEnds();
    for (const reader of this.#readers) reader.release();
  }

  /** @internal A complete line from one stream. */
  line(stream: Stream, bytes: Buffer, time: number, cursor?: string): void {
    try {
      // Invalid UTF-8 becomes U+FFFD: records are JSON text, and a replacement is what any viewer shows.
      const message = bytes.toString('utf8');
      const record: LogRecord = { time, stream, pid: this.#pid, pidfdId: this.#pidfdId, invocationId: this.invocationId, message };
      // The same text JSON.stringify(record) gives, plus the cursor, without serializing the fields that stay the same line after line.
      const middle = (this.#jsonMiddle[stream] ??= `,"stream":"${stream}","pid":${JSON.stringify(this.#pid)},"pidfdId":${JSON.stringify(this.#pidfdId)},"invocationId":${JSON.stringify(this.invocationId)},"message":`);
      const json = `{"time":${time}${middle}${JSON.stringify(message)}${cursor === undefined ? '' : `,"cursor":"${cursor}"`}}`;
      this.#sink.push(this.unit, record, json);
    } catch (error) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.unit}: a ${stream} line was lost: ${(error as Error).message}`);
    }
  }
}

/** While the disk is full, how often a move into the spool is tried again (ms). */
const DROP_RETRY_MS = 1000;
/** While the disk is full, how often the count of dropped bytes is said (ms). */
const DROP_REPORT_MS = 10_000;
const EMPTY = Buffer.alloc(0);

/**
 * Reads one pipe until EOF, through a spool: each piece is moved into the spool file by the kernel
 * before the daemon reads it back, and each record stored carries the spool cursor after it.
 */
class StreamReader {
  readonly ended: Promise<void>;
  readonly stream: Stream;
  readonly #capture: LogCapture;
  readonly #sink: LogSink;
  readonly #splitter: LineSplitter;
  readonly #fd: number;
  readonly #spool: Spool | undefined;
  #watcher: RawWatcher | undefined;
  #state: 'starting' | 'reading' | 'paused' | 'done' = 'starting';
  /** Stream offset up to which every byte is in a record handed to the store. */
  #stored = 0;
  #rolling = false;
  /** No roll is tried before this (ms): one that failed (a full disk) is not retried on every read. */
  #rollAfter = 0;
  /** While the disk is full: output is read and dropped, so the writer never blocks, and counted. */
  #dropping: { bytes: number; reason: string; retryAt: number; reportedAt: number } | undefined;
  #resolve!: () => void;

  constructor(capture: LogCapture, sink: LogSink, fd: number, stream: Stream, recoverSpool: string | null) {
    this.#capture = capture;
    this.#sink = sink;
    this.stream = stream;
    this.#fd = fd;
    this.#splitter = new LineSplitter(sink.lineMax);
    this.ended = new Promise<void>((resolve) => {
      this.#resolve = resolve;
    });
    let spool: Spool | undefined;
    try {
      spool = (recoverSpool === null ? undefined : Spool.reopen(sink.spoolDirectory, recoverSpool)) ?? Spool.create(sink.spoolDirectory, capture.unit, stream);
    } catch (error) {
      // Without a spool the bytes pass through memory, as they would without holdfast's crash safety.
      safeLog(sink.log, 'warning', `logs: ${capture.unit}: no spool for ${stream} (${(error as Error).message}); a daemon crash may lose lines in flight`);
    }
    this.#spool = spool;
    if (spool !== undefined) sink.spoolInUse(spool.id, true);
    if (spool === undefined || spool.end === 0) {
      this.#startReading();
      return;
    }
    // An earlier daemon's spool: store what follows its last cursor in the log, then read on.
    void sink.lastCursor(capture.unit, spool.id).then(
      (cursor) => this.#resume(Math.min(Math.max(cursor ?? spool.base, spool.base), spool.end)),
      (error: Error) => {
        safeLog(sink.log, 'warning', `logs: ${capture.unit}: finding where the ${stream} spool was stored up to failed: ${error.message}`);
        this.#resume(spool.base);
      },
    );
  }

  /** The spool's id (kept with the read end, so a later daemon finds where it stopped). */
  get spoolId(): string | null {
    return this.#spool?.id ?? null;
  }

  /**
   * Stops reading and keeps the spool for the next daemon (re-exec): an unfinished line stays in the
   * spool instead of being stored as a line of its own.
   */
  release(): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#closeFds();
    this.#spool?.close();
    this.#resolve();
  }

  /**
   * Stops reading now: what the pipe still holds is read, the unfinished line is stored as the last,
   * and the read end is closed (a writer still running then gets EPIPE/SIGPIPE).
   */
  abort(): void {
    if (this.#state === 'done') return;
    if (this.#state !== 'starting') {
      try {
        for (let piece = this.#pull(); piece !== null && piece !== 0; piece = this.#pull()) this.#feed(piece, nowMicros());
      } catch {
        // What could not be read is gone with the pipe.
      }
    }
    this.#finish();
  }

  #resume(from: number): void {
    if (this.#state !== 'starting') return;
    this.#stored = from;
    try {
      this.#feed(this.#spool!.readFrom(from), nowMicros());
    } catch (error) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: reading the ${this.stream} spool failed: ${(error as Error).message}`);
    }
    this.#startReading();
  }

  #startReading(): void {
    if (this.#state === 'done') return;
    this.#state = 'reading';
    try {
      this.#watcher = native.watch(this.#fd, (_readable, _hangup, status) => this.#onReadable(status));
    } catch (error) {
      safeLog(this.#sink.log, 'error', `logs: ${this.#capture.unit}: cannot read ${this.stream} (fd ${this.#fd}): ${(error as Error).message}`);
      this.#finish();
    }
  }

  #onReadable(status: number): void {
    if (this.#state !== 'reading') return;
    if (status < 0) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: reading ${this.stream} failed (libuv status ${status})`);
      this.#finish();
      return;
    }
    // A bounded number of pieces per wake-up keeps one loud service from starving the others.
    for (let round = 0; round < 16; round++) {
      if (!this.#sink.hasRoom(this.#capture.unit)) {
        this.#pause();
        break;
      }
      let piece: Buffer | 0 | null;
      try {
        piece = this.#pull();
      } catch (error) {
        safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: reading ${this.stream} failed: ${(error as Error).message}`);
        this.#finish();
        return;
      }
      if (piece === null) break;
      if (piece === 0) {
        this.#finish();
        return;
      }
      this.#feed(piece, nowMicros());
    }
    this.#maybeRoll();
  }

  /**
   * The next piece of the stream (through the spool), 0 at EOF, null while the pipe is empty. While
   * the disk is full, an empty piece: what the pipe held was dropped (see {@link #startDropping}).
   */
  #pull(): Buffer | 0 | null {
    const spool = this.#spool;
    if (spool === undefined) return readPipe(this.#fd);
    const dropping = this.#dropping;
    if (dropping !== undefined && Date.now() < dropping.retryAt) return this.#discard(dropping);
    const exact = spool.exact;
    let moved: number | null;
    try {
      moved = spool.fill(this.#fd);
    } catch (error) {
      if (!isOutOfSpace(error)) throw error;
      return this.#startDropping(error);
    }
    if (exact && !spool.exact) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: the file system refuses splice(2) into ${this.#sink.spoolDirectory}; output passes through memory, and a daemon crash may lose the piece in flight`);
    }
    if (moved === null) return null;
    if (dropping !== undefined) this.#stopDropping();
    if (moved === 0) return 0;
    return spool.readFrom(spool.end - moved);
  }

  /**
   * The disk is full. Holding the output back would block the service in write(2) (its pipe full,
   * with the keeper holding a read end nobody reads), and ending the capture would do the same:
   * so output is dropped from now on, counted, and said, until a move into the spool succeeds again
   * (tried once a second). The unfinished line is stored as it stands; the next starts afresh.
   */
  #startDropping(error: unknown): Buffer | 0 | null {
    const now = Date.now();
    const lost = (error as { lostBytes?: unknown }).lostBytes;
    if (this.#dropping === undefined) {
      const reason = outOfSpaceReason(error);
      this.#dropping = { bytes: 0, reason, retryAt: 0, reportedAt: now };
      this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${reason} for ${this.stream}; its output is dropped until there is room again`);
      this.#splitter.end((line, terminatorBytes) => this.#line(line, terminatorBytes, nowMicros()));
    }
    const dropping = this.#dropping;
    dropping.retryAt = now + DROP_RETRY_MS;
    if (typeof lost === 'number') dropping.bytes += lost;
    return this.#discard(dropping);
  }

  /** Reads what the pipe holds and drops it, counting; a count is said at most every {@link DROP_REPORT_MS}. */
  #discard(dropping: { bytes: number; reason: string; reportedAt: number }): Buffer | 0 | null {
    const piece = readPipe(this.#fd);
    if (piece === null || piece === 0) return piece;
    dropping.bytes += piece.length;
    const now = Date.now();
    if (now - dropping.reportedAt >= DROP_REPORT_MS) {
      dropping.reportedAt = now;
      this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${dropping.bytes} bytes of ${this.stream} output dropped so far: ${dropping.reason}`);
    }
    return EMPTY;
  }

  /** Space is back (or the stream ended): what was dropped is said, in the daemon's log and the unit's. */
  #stopDropping(): void {
    const dropping = this.#dropping;
    if (dropping === undefined) return;
    this.#dropping = undefined;
    if (dropping.bytes === 0) return;
    const text = `${dropping.bytes} bytes of output dropped: ${dropping.reason} (${this.stream})`;
    this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${text}`);
    try {
      this.#sink.push(this.#capture.unit, { time: nowMicros(), stream: 'manager', pid: process.pid, pidfdId: null, invocationId: this.#capture.invocationId, message: text });
    } catch {
      // The store is closed: the daemon's log said it.
    }
  }

  #feed(bytes: Buffer, time: number): void {
    this.#splitter.push(bytes, (line, terminatorBytes) => this.#line(line, terminatorBytes, time));
  }

  #line(line: Buffer, terminatorBytes: number, time: number): void {
    this.#stored += line.length + terminatorBytes;
    const id = this.#spool?.id;
    this.#capture.line(this.stream, line, time, id === undefined ? undefined : cursorText(id, this.#stored));
  }

  /** The store is behind on disk: stop reading, so the writer blocks on the full pipe instead of the daemon buffering without bound. */
  #pause(): void {
    this.#state = 'paused';
    this.#watcher?.close();
    this.#watcher = undefined;
    void this.#sink.waitForRoom(this.#capture.unit).then(() => {
      if (this.#state === 'paused') this.#startReading();
    });
  }

  /** Once the spool holds enough that is stored, drop that part (after the store has written it). */
  #maybeRoll(): void {
    const spool = this.#spool;
    if (spool === undefined || this.#rolling || this.#dropping !== undefined || spool.end - spool.base < this.#sink.spoolRollBytes || Date.now() < this.#rollAfter) return;
    this.#rolling = true;
    const stored = this.#stored;
    void this.#sink
      .flush(this.#capture.unit)
      .then(() => {
        if (this.#state !== 'done') spool.roll(stored);
      })
      .catch((error: Error) => {
        this.#rollAfter = Date.now() + DROP_RETRY_MS;
        if (!isOutOfSpace(error)) safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: rolling the ${this.stream} spool failed: ${error.message}`);
      })
      .finally(() => {
        this.#rolling = false;
      });
  }

  /** EOF, an error or abort: the last line is stored, then the spool, all of it stored, is deleted. */
  #finish(): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#closeFds();
    this.#stopDropping();
    // A last line without a newline counts once the stream ends.
    this.#splitter.end((line, terminatorBytes) => this.#line(line, terminatorBytes, nowMicros()));
    const spool = this.#spool;
    if (spool === undefined) {
      this.#resolve();
      return;
    }
    void this.#sink
      .flush(this.#capture.unit)
      .then(
        () => spool.remove(),
        () => spool.close(),
      )
      .finally(() => {
        this.#sink.spoolInUse(spool.id, false);
        this.#resolve();
      });
  }

  #closeFds(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    closeQuietly(this.#fd);
  }
}

/** @internal A pipe pair for one stream: [read, write], closed again if the second one fails. */
export function makePipes(stdout: boolean, stderr: boolean): { read: { stdout: number | null; stderr: number | null }; write: { stdout: number | null; stderr: number | null } } {
  const read: { stdout: number | null; stderr: number | null } = { stdout: null, stderr: null };
  const write: { stdout: number | null; stderr: number | null } = { stdout: null, stderr: null };
  try {
    if (stdout) [read.stdout, write.stdout] = native.pipe(true);
    if (stderr) [read.stderr, write.stderr] = native.pipe(true);
  } catch (error) {
    for (const fd of [read.stdout, write.stdout, read.stderr, write.stderr]) if (fd !== null) closeQuietly(fd);
    throw error;
  }
  return { read, write };
}

function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    // Already closed: nothing to release.
  }
}
