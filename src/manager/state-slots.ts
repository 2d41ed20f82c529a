/**
 * A record rewritten on every change, atomically, without a rename: two slot files written in
 * turn, each a header line `holdfast-state <seq> <length> <sha256>` and the JSON. A reader takes
 * the valid slot with the highest sequence number; a write cut short by a crash (a torn write, a
 * stale tail) fails its checksum, and the other slot, one change older, stands.
 *
 * Why not write-and-rename: on ext4 a rename over an existing file forces the new file's blocks
 * out first (auto_da_alloc), which made writing the daemon's state a third of its CPU time in a
 * crash-restart loop (measured with `--cpu-prof`, see docs/benchmarks.md). A `pwrite` into an open
 * file costs a few microseconds.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hasCode } from '../pidfd/errors.js';

const HEADER = /^holdfast-state (\d+) (\d+) ([0-9a-f]{64})\n/;

interface Slot {
  seq: number;
  value: unknown;
}

/** The valid content of one slot file, or undefined (missing, torn, or not a slot). */
function readSlot(path: string): Slot | undefined {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return undefined;
    throw error;
  }
  const match = HEADER.exec(data.subarray(0, 120).toString('latin1'));
  if (match === null) return undefined;
  const start = match[0].length;
  const body = data.subarray(start, start + Number(match[2]));
  if (body.length !== Number(match[2]) || createHash('sha256').update(body).digest('hex') !== match[3]) return undefined;
  try {
    return { seq: Number(match[1]), value: JSON.parse(body.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}

/** Reads the newest valid record at `path` (slots `path.0` and `path.1`), or undefined. */
export function readSlots<T>(path: string): T | undefined {
  const newest = newestSlot(path);
  return newest === undefined ? undefined : (newest.slot.value as T);
}

function newestSlot(path: string): { slot: Slot; index: 0 | 1 } | undefined {
  const slots = [readSlot(`${path}.0`), readSlot(`${path}.1`)];
  let best: { slot: Slot; index: 0 | 1 } | undefined;
  for (const index of [0, 1] as const) {
    const slot = slots[index];
    if (slot !== undefined && (best === undefined || slot.seq > best.slot.seq)) best = { slot, index };
  }
  return best;
}

/** The writer of a slotted record; keeps both files open. */
export class SlotWriter {
  readonly path: string;
  readonly #fds: [number, number];
  readonly #sizes: [number, number];
  #seq: number;

  /** Opens (creating) the two slot files of `path`; the next write follows the newest valid slot. */
  constructor(path: string) {
    this.path = path;
    const newest = newestSlot(path);
    this.#seq = newest?.slot.seq ?? 0;
    const fds: number[] = [];
    try {
      // Not O_APPEND: Linux appends on such a file whatever position pwrite names.
      for (const index of [0, 1]) fds.push(openSync(`${path}.${index}`, constants.O_RDWR | constants.O_CREAT, 0o600));
    } catch (error) {
      for (const fd of fds) closeSync(fd);
      throw error;
    }
    this.#fds = [fds[0]!, fds[1]!];
    this.#sizes = [fstatSync(fds[0]!).size, fstatSync(fds[1]!).size];
  }

  /** Records `value`: written over the older slot, so the newer one stands until this write is whole. */
  write(value: unknown): void {
    const seq = this.#seq + 1;
    const index = seq % 2;
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    const header = Buffer.from(`holdfast-state ${seq} ${body.length} ${createHash('sha256').update(body).digest('hex')}\n`, 'latin1');
    const data = Buffer.concat([header, body, Buffer.from('\n')]);
    const fd = this.#fds[index]!;
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, done);
    if (this.#sizes[index]! > data.length) ftruncateSync(fd, data.length);
    this.#sizes[index] = data.length;
    this.#seq = seq;
  }

  close(): void {
    for (const fd of this.#fds) {
      try {
        closeSync(fd);
      } catch {
        // Already closed.
      }
    }
  }
}
