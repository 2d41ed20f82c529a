/**
 * One process's captured stdout and stderr as the manager handles it: the pipe ends to give the
 * spawn, the process its lines are attributed to, and the moment every line is stored. Each record
 * is serialized here, once, because the fields that stay the same line after line need not be
 * serialized again for every line. Reading the pipes is stream-reader.ts's job.
 *
 * The read ends can also come from outside ({@link LogStore.captureFromFds}), e.g. from a keeper
 * process that held them while the daemon restarted, so no output is lost and no service gets
 * SIGPIPE in between.
 */
import type { LogRecord } from '../types.js';
import { safeLog, type Logger } from '../rate-limited-log.js';
import { closeQuietly } from './pipes.js';
import type { SpoolStream } from './spool.js';
import { StreamReader } from './stream-reader.js';

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
  line(stream: SpoolStream, bytes: Buffer, time: number, cursor?: string): void {
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
