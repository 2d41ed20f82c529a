/**
 * The manager's end of `$NOTIFY_SOCKET`: an AF_UNIX datagram socket that receives sd_notify
 * messages with their senders' credentials and pidfds, validates them, handles `BARRIER=1`, and
 * hands every accepted message to one handler, synchronously and in order.
 *
 * Promises: the server never throws on bad input and never blocks. Every fd that arrives is
 * closed unless the handler took it. Messages are delivered in the order the kernel queued them,
 * and {@link NotifyServer.drain} processes everything queued right now, so the manager can run it
 * before handling an exit and a message sent just before the exit still counts.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { native, type RawMessage, type RawWatcher } from '../native.js';
import { errnoError, hasCode } from '../pidfd/errors.js';
import { features } from '../pidfd/features.js';
import { Pidfd } from '../pidfd/pidfd.js';
import { parseNotifySocket, type NotifyAddress } from '../service/notify-socket.js';
import { closeQuietly, NotifyMessage, NOTIFY_BUFFER_MAX, parseNotifyText, type NotifySender } from './notify-message.js';
import { KeyedRateLimitedLog, safeLog, stderrLogger, type Logger, type LogLevel, type RateLimitOptions } from './rate-limited-log.js';

export { NotifyMessage, parseErrno, parseNotifyUsec, isValidFdName, parseNotifyText, NOTIFY_BUFFER_MAX, NOTIFY_FD_MAX, type NotifySender } from './notify-message.js';

/** Receives each accepted message. It runs synchronously; exceptions are caught and logged. */
export type NotifyHandler = (message: NotifyMessage) => void;

/** Options of {@link NotifyServer.open}. */
export interface NotifyServerOptions {
  /** An absolute path, or `@name` for an abstract socket. This is also the `$NOTIFY_SOCKET` value. */
  path: string;
  /**
   * Where diagnostics go (default: warnings and errors to stderr). Lines are not prefixed (the
   * daemon adds `notify: `). Lines that senders can provoke are rate-limited.
   */
  log?: Logger;
  /** The handler; may also be set later through {@link NotifyServer.onMessage}. */
  onMessage?: NotifyHandler;
  /** Receive buffer to ask for, bytes (default 8 MiB, as systemd; `SO_RCVBUFFORCE` as root, else capped by `rmem_max`). */
  receiveBufferBytes?: number;
  /** Permissions of the socket file (default 0o777: services running as any user may notify; see below). */
  mode?: number;
  /** Limit for lines that senders can provoke, per sender uid (default at most 10 per 10 s). */
  logRateLimit?: RateLimitOptions;
  /** Datagrams handled per wake-up of the event loop before yielding to other work (default 256). */
  batchSize?: number;
}

/** Options of {@link NotifyServer.adopt}: a socket that is already bound (from a keeper process, or across exec). */
export interface NotifyServerAdoptOptions extends Omit<NotifyServerOptions, 'mode'> {
  /** The bound datagram socket; the server owns it from now on. */
  fd: number;
}

/** Counters since the server opened. */
export interface NotifyServerStats {
  /** Datagrams read from the socket. */
  received: number;
  /** Messages handed to the handler. */
  delivered: number;
  /** Datagrams dropped as malformed (too long, NUL, no credentials, truncated control data, bad BARRIER). */
  dropped: number;
  /** `BARRIER=1` messages answered. */
  barriers: number;
  /** Fds closed because nobody took them (not counting senders' pidfds). */
  fdsClosed: number;
  /** Handler calls that threw. */
  handlerErrors: number;
}

const DEFAULT_RCVBUF = 8 * 1024 * 1024;
const DEFAULT_BATCH = 256;
/** Upper bound for one {@link NotifyServer.drain}: the socket queue cannot hold more than this. */
const DRAIN_LIMIT = 65_536;

/**
 * The socket file is world-writable, like systemd's `/run/systemd/notify` (srwxrwxrwx: PID 1
 * runs with umask 0): services run as other users must be able to send. Writing to it grants
 * nothing by itself, since every message is attributed by the kernel-supplied credentials and
 * pidfd and checked against the unit's NotifyAccess=.
 */
const DEFAULT_MODE = 0o777;

/** The manager's sd_notify socket. */
export class NotifyServer {
  /** The address as given (`/run/holdfast/notify` or `@name`): the value for `$NOTIFY_SOCKET`. */
  readonly path: string;
  /** The handler for accepted messages. Without one, messages are dropped (their fds closed). */
  onMessage: NotifyHandler | undefined;

  readonly #address: NotifyAddress;
  readonly #log: Logger;
  readonly #limited: KeyedRateLimitedLog<number | 'unknown'>;
  readonly #batch: number;
  readonly #passPidfd: boolean;
  #fd: number;
  #watcher: RawWatcher | undefined;
  #socketId: { dev: number; ino: number } | undefined;
  #draining = false;
  #stats: NotifyServerStats = { received: 0, delivered: 0, dropped: 0, barriers: 0, fdsClosed: 0, handlerErrors: 0 };

  private constructor(fd: number, address: NotifyAddress, options: Omit<NotifyServerOptions, 'path'>, socketId: { dev: number; ino: number } | undefined) {
    this.#fd = fd;
    this.#address = address;
    this.path = address.text;
    this.#log = options.log ?? stderrLogger;
    // Per sender uid: one user flooding the socket spends its own budget, not everyone's.
    this.#limited = new KeyedRateLimitedLog(this.#log, (uid) => (uid === 'unknown' ? 'from senders without credentials: ' : `from UID ${uid}: `), options.logRateLimit);
    this.#batch = options.batchSize ?? DEFAULT_BATCH;
    this.onMessage = options.onMessage;
    this.#socketId = socketId;
    this.#passPidfd = configure(fd, options.receiveBufferBytes ?? DEFAULT_RCVBUF, this.#log);
    try {
      this.#watcher = native.watch(fd, (readable, hangup, status) => this.#onEvent(readable, hangup, status), false);
    } catch (error) {
      this.#fd = -1;
      throw error;
    }
  }

  /**
   * Creates the socket, binds it to `path` (creating the directory; replacing a stale socket file,
   * refusing with `EADDRINUSE` if another process still has it bound, `EEXIST` if something other
   * than a socket is there), and starts receiving on the event loop.
   */
  static open(options: NotifyServerOptions): NotifyServer {
    const address = parseNotifySocket(options.path);
    const fd = native.socket('dgram');
    let socketId: { dev: number; ino: number } | undefined;
    try {
      if (address.kind === 'path') {
        mkdirSync(dirname(address.text), { recursive: true, mode: 0o755 });
        removeStaleSocket(address);
      }
      try {
        native.bind(fd, address.bytes);
      } catch (error) {
        if (hasCode(error, 'EADDRINUSE')) throw errnoError('EADDRINUSE', `notify socket ${address.text} is already bound by another process`);
        throw error;
      }
      if (address.kind === 'path') {
        chmodSync(address.text, options.mode ?? DEFAULT_MODE);
        const st = lstatSync(address.text);
        socketId = { dev: st.dev, ino: st.ino };
      }
      return new NotifyServer(fd, address, options, socketId);
    } catch (error) {
      closeQuietly(fd);
      if (socketId !== undefined) unlinkIfOurs(address.text, socketId);
      throw error;
    }
  }

  /**
   * Takes over a socket that is already bound to `path` (handed back by a keeper process, or kept
   * across exec). The options are applied again; the socket file is left as it is.
   */
  static adopt(options: NotifyServerAdoptOptions): NotifyServer {
    const address = parseNotifySocket(options.path);
    let socketId: { dev: number; ino: number } | undefined;
    if (address.kind === 'path') {
      try {
        const st = lstatSync(address.text);
        if (st.isSocket()) socketId = { dev: st.dev, ino: st.ino };
      } catch {
        // No file (yet): nothing to remove on close either.
      }
    }
    return new NotifyServer(options.fd, address, options, socketId);
  }

  /** The socket's fd (e.g. to hand to a keeper process). Throws `EBADF` once closed. */
  get fd(): number {
    if (this.#fd < 0) throw errnoError('EBADF', `notify socket ${this.path} is closed`);
    return this.#fd;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Whether senders come with a pidfd (`SO_PASSPIDFD`, 6.5+); without it they are known by PID only. */
  get passesPidfds(): boolean {
    return this.#passPidfd;
  }

  /** Counters since the server opened. */
  get stats(): Readonly<NotifyServerStats> {
    return { ...this.#stats };
  }

  /**
   * Processes every datagram queued right now, synchronously, and returns how many were read.
   * Call it before handling a process exit. Calls from inside the handler return 0.
   */
  drain(): number {
    return this.#receive(DRAIN_LIMIT);
  }

  /** Keeps the event loop alive while the server is open (the default). */
  ref(): this {
    this.#watcher?.ref(true);
    return this;
  }

  /** Lets the process exit while the server is open. */
  unref(): this {
    this.#watcher?.ref(false);
    return this;
  }

  /**
   * Stops receiving and closes the socket. Removes the socket file unless `unlink: false` (as
   * when the socket lives on in a keeper process) or another server replaced it meanwhile.
   * Safe to call twice, also from inside the handler.
   */
  close(options: { unlink?: boolean } = {}): void {
    if (this.#fd < 0) return;
    this.#watcher?.close();
    this.#watcher = undefined;
    const fd = this.#fd;
    this.#fd = -1;
    closeQuietly(fd);
    if (options.unlink !== false && this.#socketId !== undefined) unlinkIfOurs(this.#address.text, this.#socketId);
    this.#limited.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #onEvent(_readable: boolean, _hangup: boolean, status: number): void {
    if (status < 0) {
      // uv_poll reports an error on the fd itself; polling it again would spin.
      safeLog(this.#log, 'error', `polling the socket ${this.path} failed (status ${status}); no longer receiving`);
      this.#watcher?.close();
      this.#watcher = undefined;
      return;
    }
    // Level-triggered: stopping after a batch is fine, the poll fires again on the next turn.
    this.#receive(this.#batch);
  }

  /**
   * Logs a line about a message's sender through that sender's rate limit (shared with the
   * server's own lines about it): for what a handler finds wrong with a message anyone can send.
   */
  logAboutSender(sender: { readonly uid: number }, level: LogLevel, text: string): void {
    this.#limited.write(sender.uid, level, text);
  }

  #receive(limit: number): number {
    if (this.#draining || this.#fd < 0) return 0;
    this.#draining = true;
    let count = 0;
    try {
      while (count < limit && this.#fd >= 0) {
        let raw: RawMessage | null;
        try {
          raw = native.receiveMessage(this.#fd, NOTIFY_BUFFER_MAX);
        } catch (error) {
          // Nothing a sender does makes recvmsg fail; this is the system (ENOMEM, ENOBUFS).
          safeLog(this.#log, 'error', `receiving from ${this.path} failed: ${(error as Error).message}`);
          break;
        }
        if (raw === null) break;
        count++;
        this.#stats.received++;
        this.#dispatch(raw);
      }
    } finally {
      this.#draining = false;
    }
    return count;
  }

  #dispatch(raw: RawMessage): void {
    const from = raw.creds === null ? 'an unknown sender' : `PID ${raw.creds.pid}`;
    const uid = raw.creds === null ? 'unknown' : raw.creds.uid;
    const limited = { write: (level: LogLevel, text: string): boolean => this.#limited.write(uid, level, text) };
    const reject = (why: string): void => {
      this.#stats.dropped++;
      closeAll(raw);
      limited.write('warning', `dropped a datagram from ${from}: ${why}`);
    };
    if (raw.truncated) return reject(`it is larger than ${NOTIFY_BUFFER_MAX} bytes`);
    if (raw.controlTruncated) return reject('its control data was truncated (too many fds sent?)');
    if (raw.creds === null || raw.creds.pid <= 0) return reject('it lacks valid credentials');
    const parsed = parseNotifyText(raw.data);
    if (!parsed.ok) return reject(parsed.reason);

    // BARRIER=1 is answered here, before anything reaches the handler (systemd's manager_process_barrier_fd).
    if (parsed.assignments.some(([k, v]) => k === 'BARRIER' && v === '1')) {
      if (parsed.lines !== 1) return reject('BARRIER=1 came with other assignments, ignoring all of them');
      if (raw.fds.length !== 1) return reject(`BARRIER=1 came with ${raw.fds.length} fds instead of 1, closing them`);
      // Every earlier message was handled synchronously already: closing the fd releases the waiter.
      this.#stats.barriers++;
      closeAll(raw);
      return;
    }
    if (parsed.invalidUtf8 > 0) {
      limited.write('debug', `ignored ${parsed.invalidUtf8} line(s) that are not valid UTF-8 in a message from ${from}`);
    }

    const sender = makeSender(raw);
    const message = new NotifyMessage(parsed.assignments, sender, raw.fds);
    const handler = this.onMessage;
    if (handler === undefined) {
      limited.write('debug', `no handler, ignoring a message from ${from}`);
    } else {
      this.#stats.delivered++;
      try {
        handler(message);
      } catch (error) {
        this.#stats.handlerErrors++;
        limited.write('error', `the handler failed on a message from ${from}: ${(error as Error)?.stack ?? String(error)}`);
      }
    }
    const closed = message.release();
    if (closed > 0) {
      this.#stats.fdsClosed += closed;
      limited.write('warning', `got ${closed} extra fd${closed === 1 ? '' : 's'} with a message from ${from}, closed ${closed === 1 ? 'it' : 'them'}`);
    }
  }
}

/** SO_PASSCRED (required), SO_PASSPIDFD (best effort), a larger receive buffer (best effort). */
function configure(fd: number, rcvbuf: number, log: Logger): boolean {
  native.setSockOpt(fd, 'SO_PASSCRED', 1);
  let passPidfd = false;
  if (features().passPidfd) {
    try {
      native.setSockOpt(fd, 'SO_PASSPIDFD', 1);
      passPidfd = true;
    } catch (error) {
      safeLog(log, 'warning', `SO_PASSPIDFD failed (${(error as Error).message}); senders are known by PID only`);
    }
  } else {
    safeLog(log, 'info', 'this kernel has no SO_PASSPIDFD (6.5+); senders are known by PID only, as systemd does on such kernels');
  }
  try {
    native.setSockOpt(fd, 'SO_RCVBUFFORCE', rcvbuf);
  } catch {
    try {
      native.setSockOpt(fd, 'SO_RCVBUF', rcvbuf);
    } catch {
      // The default buffer works; a larger one only absorbs bursts.
    }
  }
  return passPidfd;
}

function makeSender(raw: RawMessage): NotifySender {
  const creds = raw.creds!;
  if (raw.pidfd < 0) return { pid: creds.pid, uid: creds.uid, gid: creds.gid };
  let pidfd: Pidfd;
  try {
    // The kernel made this pidfd for creds.pid; passing the pid avoids a lookup that fails once it is reaped.
    pidfd = Pidfd.adopt(raw.pidfd, { pid: creds.pid });
  } catch {
    closeQuietly(raw.pidfd);
    return { pid: creds.pid, uid: creds.uid, gid: creds.gid };
  }
  const sender: { pid: number; uid: number; gid: number; pidfd: Pidfd; pidfdId?: bigint } = { pid: creds.pid, uid: creds.uid, gid: creds.gid, pidfd };
  if (pidfd.id !== undefined) sender.pidfdId = pidfd.id;
  return sender;
}

function closeAll(raw: RawMessage): void {
  for (const fd of raw.fds) closeQuietly(fd);
  if (raw.pidfd >= 0) closeQuietly(raw.pidfd);
}

/** Whether a datagram socket at `path` is bound and received on by some process (a keeper, say). */
export function notifySocketInUse(path: string): boolean {
  const address = parseNotifySocket(path);
  if (address.kind === 'path') {
    try {
      if (!lstatSync(address.text).isSocket()) return false;
    } catch {
      return false;
    }
  }
  const probe = native.socket('dgram');
  try {
    native.connect(probe, address.bytes);
    return true;
  } catch {
    return false;
  } finally {
    closeQuietly(probe);
  }
}

/** Removes a socket file nobody receives on any more; refuses a live socket or a non-socket. */
function removeStaleSocket(address: NotifyAddress): void {
  let st;
  try {
    st = lstatSync(address.text);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return;
    throw error;
  }
  if (!st.isSocket()) throw errnoError('EEXIST', `${address.text} exists and is not a socket; not replacing it`);
  const probe = native.socket('dgram');
  try {
    native.connect(probe, address.bytes);
    throw errnoError('EADDRINUSE', `notify socket ${address.text} is in use by another process (adopt its fd instead of binding anew)`);
  } catch (error) {
    if (!hasCode(error, 'ECONNREFUSED')) throw error;
  } finally {
    closeQuietly(probe);
  }
  unlinkSync(address.text);
}

function unlinkIfOurs(path: string, id: { dev: number; ino: number }): void {
  try {
    const st = lstatSync(path);
    if (st.dev === id.dev && st.ino === id.ino) unlinkSync(path);
  } catch {
    // Gone already, or replaced by a successor: leave it.
  }
}
