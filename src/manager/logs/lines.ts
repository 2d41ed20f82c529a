/**
 * Splitting a byte stream into log lines the way journald's stdout streams do: a line ends at
 * `\n` or NUL; a line that reaches `lineMax` bytes without one is cut there (journald's LineMax=),
 * at a UTF-8 character boundary where one is near; what is left at EOF is the last line.
 */

/** journald's default LineMax=. */
export const DEFAULT_LINE_MAX = 48 * 1024;

const NL = 0x0a;
const NUL = 0x00;

/** Receives one line and how many terminator bytes it consumed. */
export type EmitLine = (line: Buffer, terminatorBytes: number) => void;

/**
 * Accumulates chunks and hands out complete lines (without their terminator). Each line comes with
 * the number of terminator bytes it consumed (1, or 0 for a cut or a last line), so the lines and
 * their terminators account for every byte of the stream, in order.
 */
export class LineSplitter {
  readonly #lineMax: number;
  #parts: Buffer[] = [];
  #partBytes = 0;

  constructor(lineMax: number = DEFAULT_LINE_MAX) {
    if (!Number.isInteger(lineMax) || lineMax < 4) throw new RangeError(`lineMax must be an integer >= 4 (got ${lineMax})`);
    this.#lineMax = lineMax;
  }

  /** Bytes of the unfinished line kept so far. */
  get pendingBytes(): number {
    return this.#partBytes;
  }

  /** Feeds a chunk; calls `emit` for every line it completes, in order. */
  push(chunk: Buffer, emit: EmitLine): void {
    let start = 0;
    let nextNul = chunk.indexOf(NUL);
    while (start < chunk.length) {
      let end = chunk.indexOf(NL, start);
      if (nextNul !== -1 && nextNul < start) nextNul = chunk.indexOf(NUL, start);
      if (nextNul !== -1 && (end === -1 || nextNul < end)) end = nextNul;
      if (end === -1) {
        this.#keep(chunk.subarray(start), emit);
        return;
      }
      const piece = chunk.subarray(start, end);
      if (this.#partBytes === 0) this.#emitBounded(piece, emit, 1);
      else {
        this.#parts.push(piece);
        const line = Buffer.concat(this.#parts, this.#partBytes + piece.length);
        this.#parts = [];
        this.#partBytes = 0;
        this.#emitBounded(line, emit, 1);
      }
      start = end + 1;
    }
  }

  /** At EOF: the unfinished line, if any bytes are left. */
  end(emit: EmitLine): void {
    if (this.#partBytes === 0) return;
    const line = Buffer.concat(this.#parts, this.#partBytes);
    this.#parts = [];
    this.#partBytes = 0;
    this.#emitBounded(line, emit, 0);
  }

  /** Keeps an unterminated tail, cutting off full lineMax pieces as they accumulate. */
  #keep(tail: Buffer, emit: EmitLine): void {
    if (tail.length === 0) return;
    this.#parts.push(Buffer.from(tail)); // a copy: the chunk's memory is not held for a slow line
    this.#partBytes += tail.length;
    // Keep up to lineMax bytes: a terminator may still follow in the next chunk.
    if (this.#partBytes <= this.#lineMax) return;
    const all = Buffer.concat(this.#parts, this.#partBytes);
    let offset = 0;
    while (all.length - offset > this.#lineMax) {
      const cut = utf8Cut(all, offset, offset + this.#lineMax);
      emit(all.subarray(offset, cut), 0);
      offset = cut;
    }
    const rest = all.subarray(offset);
    this.#parts = rest.length > 0 ? [rest] : [];
    this.#partBytes = rest.length;
  }

  #emitBounded(line: Buffer, emit: EmitLine, terminatorBytes: number): void {
    let offset = 0;
    while (line.length - offset > this.#lineMax) {
      const cut = utf8Cut(line, offset, offset + this.#lineMax);
      emit(line.subarray(offset, cut), 0);
      offset = cut;
    }
    emit(offset === 0 ? line : line.subarray(offset), terminatorBytes);
  }
}

/**
 * Where to cut `buf` at or before `limit` so that a multi-byte UTF-8 character is not split:
 * steps back over at most 3 continuation bytes to the start of their character. Where that does
 * not lead to a lead byte (the data is not UTF-8 anyway), cuts at `limit`.
 */
function utf8Cut(buf: Buffer, start: number, limit: number): number {
  for (let i = limit, steps = 0; i > start && steps < 4; i--, steps++) {
    const byte = buf[i]!;
    if ((byte & 0xc0) !== 0x80) return i; // `i` starts a character (or is ASCII): cut before it
  }
  return limit;
}
