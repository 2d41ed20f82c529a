/**
 * Capturing a process's stdout and stderr: a pipe per stream, read on the event loop (epoll, no
 * threadpool thread is tied up), split into lines, stamped and handed to the store.
 *
 * The read ends can also come from outside ({@link LogStore.captureFromFds}), e.g. from a keeper
 * process that held them while the daemon restarted, so no output is lost and no service gets
 * SIGPIPE in between.
 */
import { Socket } from 'node:net';
import { native } from '../../native.js';
import type { LogRecord } from '../types.js';
import { safeLog, type Logger } from '../rate-limited-log.js';
import { nowMicros } from './clock.js';
import { LineSplitter } from './lines.js';

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
}

/** @internal What a capture needs from the store. */
export interface LogSink {
  readonly lineMax: number;
  readonly log: Logger;
  push(unit: string, record: LogRecord): void;
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

  /** @internal Made by the store. */
  constructor(
    sink: LogSink,
    unit: string,
    invocationId: string | null,
    readFds: { stdout: number | null; stderr: number | null },
    writeEnds: { stdout: number | null; stderr: number | null },
    writer: LogWriter | undefined,
  ) {
    this.#sink = sink;
    this.unit = unit;
    this.invocationId = invocationId;
    this.#readFds = readFds;
    this.#writeEnds = writeEnds;
    if (writer !== undefined) this.attach(writer);
    for (const stream of ['stdout', 'stderr'] as const) {
      const fd = readFds[stream];
      if (fd !== null) this.#readers.push(new StreamReader(this, sink, fd, stream));
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

  /** @internal A complete line from one stream. */
  line(stream: Stream, bytes: Buffer, time: number): void {
    try {
      this.#sink.push(this.unit, {
        time,
        stream,
        pid: this.#pid,
        pidfdId: this.#pidfdId,
        invocationId: this.invocationId,
        // Invalid UTF-8 becomes U+FFFD: records are JSON text, and a replacement is what any viewer shows.
        message: bytes.toString('utf8'),
      });
    } catch (error) {
      safeLog(this.#sink.log, 'warning', `logs: ${this.unit}: a ${stream} line was lost: ${(error as Error).message}`);
    }
  }
}

/** Reads one pipe until EOF. */
class StreamReader {
  readonly ended: Promise<void>;
  readonly #socket: Socket | undefined;
  readonly #splitter: LineSplitter;
  #finished = false;

  constructor(capture: LogCapture, sink: LogSink, fd: number, stream: Stream) {
    this.#splitter = new LineSplitter(sink.lineMax);
    // A net.Socket on a pipe fd reads through libuv's stream (epoll); an fs.ReadStream would
    // hold a threadpool thread in a blocking read for as long as the service is silent.
    let socket: Socket;
    try {
      socket = new Socket({ fd, readable: true, writable: false });
    } catch (error) {
      closeQuietly(fd);
      safeLog(sink.log, 'error', `logs: ${capture.unit}: cannot read ${stream} (fd ${fd}): ${(error as Error).message}`);
      this.#socket = undefined;
      this.#finished = true;
      this.ended = Promise.resolve();
      return;
    }
    this.#socket = socket;
    this.ended = new Promise<void>((resolve) => {
      const flushTail = (): void => {
        if (this.#finished) return;
        this.#finished = true;
        // A last line without a newline counts once the stream ends.
        this.#splitter.end((line) => capture.line(stream, line, nowMicros()));
      };
      socket.on('data', (chunk: Buffer) => {
        const time = nowMicros();
        this.#splitter.push(chunk, (line) => capture.line(stream, line, time));
        if (!sink.hasRoom(capture.unit) && !socket.isPaused()) {
          // The store is behind on disk: stop reading, so the writer blocks on the full pipe
          // instead of the daemon buffering without bound. Resume once the backlog is written.
          socket.pause();
          void sink.waitForRoom(capture.unit).then(() => {
            if (!socket.destroyed) socket.resume();
          });
        }
      });
      socket.on('end', flushTail);
      socket.on('error', (error) => {
        safeLog(sink.log, 'warning', `logs: ${capture.unit}: reading ${stream} failed: ${error.message}`);
        flushTail();
      });
      // 'close' comes last, once the fd is closed (after 'end', an error, or abort()).
      socket.on('close', () => {
        flushTail();
        resolve();
      });
    });
  }

  abort(): void {
    if (this.#finished) return;
    this.#socket?.destroy();
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
