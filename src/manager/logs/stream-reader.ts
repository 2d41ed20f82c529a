/**
 * Reading one pipe of a captured process until EOF, through a spool: each piece is moved into the
 * spool file by the kernel before the daemon reads it back, and each record stored carries the
 * spool cursor after it, so a daemon that dies mid-read loses nothing (see spool.ts). The pipe is
 * watched on the event loop (epoll: no threadpool thread is tied up), and reading pauses while the
 * store is behind on disk, so a loud service blocks on its own pipe instead of the daemon's memory
 * growing without bound.
 */
import { native, type RawWatcher } from '../../native.js';
import { safeLog } from '../rate-limited-log.js';
import type { LogCapture, LogSink } from './capture.js';
import { nowMicros } from './clock.js';
import { DiskFullDrops, DROP_RETRY_MS } from './disk-full-drops.js';
import { LineSplitter } from './lines.js';
import { closeQuietly } from './pipes.js';
import { cursorText, isOutOfSpace, readPipe, Spool, type SpoolStream } from './spool.js';

/** Reads one pipe of a {@link LogCapture} until EOF, through a spool. */
export class StreamReader {
  readonly ended: Promise<void>;
  readonly stream: SpoolStream;
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
  readonly #drops: DiskFullDrops;
  #resolve!: () => void;

  constructor(capture: LogCapture, sink: LogSink, fd: number, stream: SpoolStream, recoverSpool: string | null) {
    this.#capture = capture;
    this.#sink = sink;
    this.stream = stream;
    this.#fd = fd;
    this.#splitter = new LineSplitter(sink.lineMax);
    this.#drops = new DiskFullDrops(sink, capture, stream, fd);
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
   * the disk is full, an empty piece: what the pipe held was dropped (see disk-full-drops.ts).
   */
  #pull(): Buffer | 0 | null {
    const spool = this.#spool;
    if (spool === undefined) return readPipe(this.#fd);
    if (this.#drops.waiting) return this.#drops.discard();
    const exact = spool.exact;
    let moved: number | null;
    try {
      moved = spool.fill(this.#fd);
    } catch (error) {
      if (!isOutOfSpace(error)) throw error;
      return this.#drops.start(error, () => this.#storeUnfinishedLine());
    }
    if (exact && !spool.exact) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.#capture.unit}: the file system refuses splice(2) into ${this.#sink.spoolDirectory}; output passes through memory, and a daemon crash may lose the piece in flight`);
    }
    if (moved === null) return null;
    this.#drops.stop();
    if (moved === 0) return 0;
    return spool.readFrom(spool.end - moved);
  }

  #feed(bytes: Buffer, time: number): void {
    this.#splitter.push(bytes, (line, terminatorBytes) => this.#line(line, terminatorBytes, time));
  }

  /** The bytes after the last line break, stored as a line of their own. */
  #storeUnfinishedLine(): void {
    this.#splitter.end((line, terminatorBytes) => this.#line(line, terminatorBytes, nowMicros()));
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
    if (spool === undefined || this.#rolling || this.#drops.active || spool.end - spool.base < this.#sink.spoolRollBytes || Date.now() < this.#rollAfter) return;
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
    this.#drops.stop();
    // A last line without a newline counts once the stream ends.
    this.#storeUnfinishedLine();
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
