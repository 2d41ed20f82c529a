/**
 * A capture's output while the disk is full. Holding the output back would block the service in
 * write(2) (its pipe full, with the keeper holding a read end nobody reads), and ending the capture
 * would do the same: so output is read and dropped, counted, and said (rate-limited in the daemon's
 * log while it lasts, once in the unit's log when there is room again), and a move into the spool
 * is tried again once a second.
 */
import type { LogCapture, LogSink } from './capture.js';
import { nowMicros } from './clock.js';
import { outOfSpaceReason, readPipe, type SpoolStream } from './spool.js';

/** While the disk is full, how often a move into the spool is tried again (ms). */
export const DROP_RETRY_MS = 1000;
/** While the disk is full, how often the count of dropped bytes is said (ms). */
const DROP_REPORT_MS = 10_000;
const EMPTY = Buffer.alloc(0);

/** The drop accounting of one captured stream. */
export class DiskFullDrops {
  readonly #sink: LogSink;
  readonly #capture: Pick<LogCapture, 'unit' | 'invocationId'>;
  readonly #stream: SpoolStream;
  readonly #fd: number;
  #dropping: { bytes: number; reason: string; retryAt: number; reportedAt: number } | undefined;

  constructor(sink: LogSink, capture: Pick<LogCapture, 'unit' | 'invocationId'>, stream: SpoolStream, fd: number) {
    this.#sink = sink;
    this.#capture = capture;
    this.#stream = stream;
    this.#fd = fd;
  }

  /** Whether output is being dropped now. */
  get active(): boolean {
    return this.#dropping !== undefined;
  }

  /** Whether output is being dropped and it is too soon to try the spool again. */
  get waiting(): boolean {
    const dropping = this.#dropping;
    return dropping !== undefined && Date.now() < dropping.retryAt;
  }

  /**
   * A move into the spool failed for want of space: dropping starts (the unfinished line is
   * stored as it stands by `storeUnfinishedLine`; the next starts afresh) or goes on, and what
   * the pipe holds is dropped.
   */
  start(error: unknown, storeUnfinishedLine: () => void): Buffer | 0 | null {
    const now = Date.now();
    const lost = (error as { lostBytes?: unknown }).lostBytes;
    if (this.#dropping === undefined) {
      const reason = outOfSpaceReason(error);
      this.#dropping = { bytes: 0, reason, retryAt: 0, reportedAt: now };
      this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${reason} for ${this.#stream}; its output is dropped until there is room again`);
      storeUnfinishedLine();
    }
    const dropping = this.#dropping;
    dropping.retryAt = now + DROP_RETRY_MS;
    if (typeof lost === 'number') dropping.bytes += lost;
    return this.discard();
  }

  /**
   * Reads what the pipe holds and drops it, counting (an empty piece, or the pipe's 0 at EOF and
   * null while empty); a count is said at most every {@link DROP_REPORT_MS}. Only while {@link active}.
   */
  discard(): Buffer | 0 | null {
    const dropping = this.#dropping!;
    const piece = readPipe(this.#fd);
    if (piece === null || piece === 0) return piece;
    dropping.bytes += piece.length;
    const now = Date.now();
    if (now - dropping.reportedAt >= DROP_REPORT_MS) {
      dropping.reportedAt = now;
      this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${dropping.bytes} bytes of ${this.#stream} output dropped so far: ${dropping.reason}`);
    }
    return EMPTY;
  }

  /** Space is back (or the stream ended): what was dropped is said, in the daemon's log and the unit's. */
  stop(): void {
    const dropping = this.#dropping;
    if (dropping === undefined) return;
    this.#dropping = undefined;
    if (dropping.bytes === 0) return;
    const text = `${dropping.bytes} bytes of output dropped: ${dropping.reason} (${this.#stream})`;
    this.#sink.limitedLog('warning', `logs: ${this.#capture.unit}: ${text}`);
    try {
      this.#sink.push(this.#capture.unit, { time: nowMicros(), stream: 'manager', pid: process.pid, pidfdId: null, invocationId: this.#capture.invocationId, message: text });
    } catch {
      // The store is closed: the daemon's log said it.
    }
  }
}
