/**
 * The pipe fds of a capture. They are made before the spawn and must never leak: a stray copy of a
 * write end keeps EOF from ever coming, so a pair that fails halfway is closed again at once.
 */
import { native } from '../../native.js';

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

/** Closes an fd that may already be closed. */
export function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    // Already closed: nothing to release.
  }
}
