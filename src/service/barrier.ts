/** `BARRIER=1`: wait until the manager has processed every message sent before it. */
import { readSync } from 'node:fs';
import { native, POLLHUP, POLLIN, type RawWatcher } from '../native.js';
import { errnoError } from '../pidfd/errors.js';
import { notify, notifyTarget, type NotifyOptions, type NotifyResult } from './notify.js';

/**
 * Sends `BARRIER=1` with the write end of a fresh pipe (and nothing else), closes our copy, and
 * resolves once the manager closed its copy, which it does after handling every earlier message
 * from us (`sd_notify_barrier`). The wait watches the read end on the event loop (never blocking
 * it) and rejects with `ETIMEDOUT` after `timeoutMs` (default 5000, as `systemd-notify` uses).
 *
 * Resolves to `{ sent: false }` at once without `$NOTIFY_SOCKET`; send failures reject with their errno.
 */
export async function barrier(timeoutMs = 5000, options: Omit<NotifyOptions, 'fds'> = {}): Promise<NotifyResult> {
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw errnoError('EINVAL', `barrier: not a timeout in milliseconds: ${String(timeoutMs)}`);
  const target = notifyTarget(options);
  if ('reason' in target) return notify('BARRIER=1', options);
  const [readFd, writeFd] = native.pipe(true);
  let result: NotifyResult;
  try {
    result = notify('BARRIER=1', { ...options, fds: [writeFd] });
  } catch (error) {
    native.close(readFd);
    throw error;
  } finally {
    native.close(writeFd);
  }
  await waitForHangup(readFd, timeoutMs, target.text);
  return result;
}

/** Resolves when every write end of the pipe is closed; closes `readFd` in all cases. */
function waitForHangup(readFd: number, timeoutMs: number, socket: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let watcher: RawWatcher | undefined;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (error?: Error): void => {
      if (done) return;
      done = true;
      watcher?.close();
      if (timer !== undefined) clearTimeout(timer);
      native.close(readFd);
      if (error === undefined) resolve();
      else reject(error);
    };
    const hungUp = (): boolean => (native.pollFd(readFd, POLLIN, 0) & POLLHUP) !== 0;
    const onEvent = (readable: boolean, hangup: boolean, status: number): void => {
      if (status < 0) return finish(errnoError('EIO', `barrier: waiting on the pipe failed (libuv status ${status})`));
      if (hangup || hungUp()) return finish();
      if (readable) drain(readFd);
    };
    try {
      watcher = native.watch(readFd, onEvent, true);
    } catch (error) {
      finish(error as Error);
      return;
    }
    timer = setTimeout(() => {
      if (hungUp()) return finish();
      finish(errnoError('ETIMEDOUT', `barrier: the manager behind ${socket} did not close the barrier fd within ${timeoutMs} ms`));
    }, timeoutMs);
  });
}

/** Nobody should write into the barrier pipe; if someone does, empty it so polling stays quiet. */
function drain(fd: number): void {
  const buffer = Buffer.alloc(4096);
  for (;;) {
    try {
      if (readSync(fd, buffer) <= 0) return;
    } catch {
      return;
    }
  }
}
