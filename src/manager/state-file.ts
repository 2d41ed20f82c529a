/** Small files the daemon must never leave half-written. */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';

/**
 * Write to a temporary file, then rename: readers see the old content or the new, never a mix.
 * With `durable`, fsync first, for what must survive a power loss; state that only matters within
 * one boot (the daemon's state, the keeper's manifest) skips it: a process crash keeps the page cache.
 * A write that fails (ENOSPC) throws and leaves the old file as it was, and no temporary file.
 */
export function writeJsonAtomic(path: string, value: unknown, durable = false): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    try {
      writeFileSync(fd, JSON.stringify(value) + '\n');
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    // A full disk: the half-written copy would hold on to the last free blocks.
    try {
      unlinkSync(tmp);
    } catch {
      // Not there (the rename happened, or it never was): nothing to clean.
    }
    throw error;
  }
}

/** The parsed JSON of a file, or undefined when it is missing or not JSON. */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Removes a directory tree that a process which just ended (a keeper writing its manifest) may
 * still add a file to for a moment. rmSync's own retries repeat only the last rmdir, never the
 * files that appeared meanwhile, so the whole removal is tried again (bounded); the last error is
 * thrown.
 */
export async function removeTree(path: string, attempts = 30): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(path, { recursive: true, force: true });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
