/**
 * The state of one unit's log kept between event-loop turns: records are encoded into shared
 * buffers as they arrive and written in one batch later, and every write, rotation and read of the
 * unit runs one after another on its own queue, so a read never sees a half-rotated set of files.
 */
import type { FileHandle } from 'node:fs/promises';
import type { LogRecord } from '../types.js';

/** Gets every record of a unit as it is stored (live `follow` and `tail`). */
export type Follower = (record: LogRecord) => void;

/**
 * Records are encoded into buffers of this size, and one writev(2) per event-loop turn takes them.
 * Small enough for malloc to reuse freed ones (bigger ones are fresh mmaps, whose page faults cost
 * more than the encoding itself).
 */
const CHUNK_BYTES = 64 * 1024;

/** The state of one unit's file. */
export class UnitLog {
  readonly unit: string;
  readonly path: string;
  /** Byte lengths of the serialized records not yet written (their bytes are in {@link sealed} and {@link chunk}). */
  pendingSizes: number[] = [];
  /** Encoded records handed to a write yet. */
  sealed: Buffer[] = [];
  /** Records are encoded straight into this buffer, from {@link chunkStart} up to {@link chunkUsed}. */
  chunk: Buffer | undefined;
  chunkStart = 0;
  chunkUsed = 0;
  /** Bytes not yet written, including a batch being written right now. */
  backlog = 0;
  handle: FileHandle | undefined;
  size = 0;
  /** Writes, rotations and reads of this unit, one after another. */
  chain: Promise<unknown> = Promise.resolve();
  scheduled = false;
  roomWaiters: (() => void)[] = [];
  readonly followers = new Set<Follower>();

  constructor(unit: string, path: string) {
    this.unit = unit;
    this.path = path;
  }

  /** Runs `op` after everything queued for the unit; a failure reaches the caller, not the queue. */
  enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Encodes one record and its newline at the end of the pending bytes; returns its size. */
  encode(json: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const room = json.length * 3 + 1;
    if (this.chunk === undefined || this.chunk.length - this.chunkUsed < room) {
      this.seal();
      this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room));
      this.chunkStart = 0;
      this.chunkUsed = 0;
    }
    const size = this.chunk.write(json, this.chunkUsed, 'utf8');
    this.chunk[this.chunkUsed + size] = 0x0a;
    this.chunkUsed += size + 1;
    return size + 1;
  }

  /** Every pending byte, in order, as the buffers they are in (no copy); the chunk goes on filling after them. */
  takePending(): Buffer[] {
    this.seal();
    const parts = this.sealed;
    this.sealed = [];
    return parts;
  }

  seal(): void {
    if (this.chunk !== undefined && this.chunkUsed > this.chunkStart) {
      this.sealed.push(this.chunk.subarray(this.chunkStart, this.chunkUsed));
      this.chunkStart = this.chunkUsed;
    }
  }

  /** Closes the file, ignoring errors; the next write opens it again. */
  async closeFile(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  /** Lets every capture paused on this unit's backlog read again. */
  wakeRoomWaiters(): void {
    for (const wake of this.roomWaiters.splice(0)) wake();
  }
}
