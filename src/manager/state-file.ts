/** Small files the daemon must never leave half-written. */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/**
 * Write to a temporary file, then rename: readers see the old content or the new, never a mix.
 * With `durable`, fsync first, for what must survive a power loss; state that only matters within
 * one boot (the daemon's state, the keeper's manifest) skips it: a process crash keeps the page cache.
 */
export function writeJsonAtomic(path: string, value: unknown, durable = false): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, JSON.stringify(value) + '\n');
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The parsed JSON of a file, or undefined when it is missing or not JSON. */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
