/**
 * The client end of `$NOTIFY_SOCKET`: address parsing and one datagram socket, opened lazily and
 * reused for every message until {@link closeNotifySocket}.
 */
import { native, POLLHUP } from '../native.js';
import { errnoError, hasCode } from '../pidfd/errors.js';

/** A parsed `$NOTIFY_SOCKET`. */
export interface NotifyAddress {
  /** The variable's value as given, e.g. `/run/holdfast/notify` or `@holdfast/notify`. */
  readonly text: string;
  /** `path` for a file system socket, `abstract` for `@name` (Linux's abstract namespace). */
  readonly kind: 'path' | 'abstract';
  /** The bytes of `sun_path`: the path, or a NUL followed by the abstract name. */
  readonly bytes: Buffer;
}

/** Credentials to put in `SCM_CREDENTIALS` explicitly. */
export interface Credentials {
  pid: number;
  uid: number;
  gid: number;
}

/** What one send did. */
export interface SendOutcome {
  /** Bytes of payload the kernel took. */
  bytes: number;
  /**
   * Which credentials the receiver saw: `kernel` (none attached: the kernel fills in ours),
   * `explicit` (the ones asked for), `own` (the explicit ones were refused with `EPERM`, so the
   * message went out with ours, as libsystemd retries).
   */
  credentials: 'kernel' | 'explicit' | 'own';
}

const SUN_PATH_MAX = 108;
const POLLOUT = 0x4;
/** libsystemd raises the send buffer to this (best effort) so that fds and bursts fit. */
const SNDBUF_SIZE = 8 * 1024 * 1024;

/**
 * Parses a `$NOTIFY_SOCKET` value: an absolute path, or `@name` for an abstract socket.
 * `vsock:` addresses are refused with `EAFNOSUPPORT` (holdfast speaks AF_UNIX only); anything else
 * (a relative path, an empty value, a path too long for `sun_path`) with `EINVAL`.
 */
export function parseNotifySocket(text: string): NotifyAddress {
  if (text.startsWith('/')) {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length >= SUN_PATH_MAX) throw errnoError('EINVAL', `$NOTIFY_SOCKET=${JSON.stringify(text)} is too long for a socket path (at most ${SUN_PATH_MAX - 1} bytes)`);
    if (bytes.includes(0)) throw errnoError('EINVAL', `$NOTIFY_SOCKET=${JSON.stringify(text)} contains a NUL byte`);
    return { text, kind: 'path', bytes };
  }
  if (text.startsWith('@') && text.length > 1) {
    const name = Buffer.from(text.slice(1), 'utf8');
    if (name.length + 1 > SUN_PATH_MAX) throw errnoError('EINVAL', `$NOTIFY_SOCKET=${JSON.stringify(text)} is too long for an abstract socket name (at most ${SUN_PATH_MAX - 1} bytes)`);
    return { text, kind: 'abstract', bytes: Buffer.concat([Buffer.from([0]), name]) };
  }
  if (/^vsock(-stream|-dgram|-seqpacket)?:/.test(text)) {
    throw errnoError('EAFNOSUPPORT', `$NOTIFY_SOCKET=${JSON.stringify(text)} is an AF_VSOCK address; holdfast sends to AF_UNIX sockets only`);
  }
  throw errnoError('EINVAL', `$NOTIFY_SOCKET=${JSON.stringify(text)} is not a socket address (expected an absolute path or @abstract-name)`);
}

let socketFd: number | undefined;

function openSocket(): number {
  if (socketFd !== undefined) return socketFd;
  const fd = native.socket('dgram');
  try {
    native.setSockOpt(fd, 'SO_SNDBUF', SNDBUF_SIZE);
  } catch {
    // Best effort, as in libsystemd: the default buffer is enough for ordinary messages.
  }
  socketFd = fd;
  return fd;
}

/** Closes the socket kept for notifications; the next message opens a new one. Safe to call twice. */
export function closeNotifySocket(): void {
  if (socketFd === undefined) return;
  const fd = socketFd;
  socketFd = undefined;
  native.close(fd);
}

/**
 * Waits (synchronously, at most until `deadline`) until the receiver's queue has room: a datagram
 * socket only reports the peer's queue in poll() when it is connected, so a throwaway connected
 * socket does the waiting and the shared one stays unconnected.
 */
function waitForRoom(address: NotifyAddress, deadline: number): void {
  const probe = native.socket('dgram');
  try {
    native.connect(probe, address.bytes);
    const remaining = Math.max(0, Math.ceil(deadline - performance.now()));
    const revents = native.pollFd(probe, POLLOUT, remaining);
    if (revents === 0) {
      throw errnoError('EAGAIN', `the notify socket ${address.text} stayed full (its reader is not reading); message not sent`);
    }
    if ((revents & POLLHUP) !== 0) throw errnoError('ECONNREFUSED', `the notify socket ${address.text} was closed`);
  } finally {
    native.close(probe);
  }
}

/**
 * Sends one datagram. With `credentials` they go in `SCM_CREDENTIALS`, and if the kernel refuses
 * them (`EPERM`: only a privileged sender may claim another PID or UID) the message goes out
 * again with the kernel's own, as libsystemd does. A full queue is waited for up to `timeoutMs`.
 * Failures throw with the errno name in `code`.
 */
export function sendDatagram(address: NotifyAddress, data: Buffer, fds: readonly number[], credentials: Credentials | null, timeoutMs: number): SendOutcome {
  const fd = openSocket();
  const deadline = performance.now() + timeoutMs;
  let creds = credentials;
  for (;;) {
    try {
      const bytes = native.sendMessage(fd, data, fds.length > 0 ? [...fds] : null, creds, address.bytes);
      if (bytes !== data.length) throw errnoError('EIO', `only ${bytes} of ${data.length} bytes reached the notify socket ${address.text}`);
      return { bytes, credentials: creds === null ? (credentials === null ? 'kernel' : 'own') : 'explicit' };
    } catch (error) {
      if (creds !== null && hasCode(error, 'EPERM')) {
        creds = null;
        continue;
      }
      if (hasCode(error, 'EAGAIN')) {
        waitForRoom(address, deadline);
        continue;
      }
      throw describeSendError(error, address);
    }
  }
}

function describeSendError(error: unknown, address: NotifyAddress): unknown {
  if (!(error instanceof Error) || typeof (error as NodeJS.ErrnoException).code !== 'string') return error;
  const code = (error as NodeJS.ErrnoException).code!;
  const why: Record<string, string> = {
    ENOENT: 'no socket exists at that path',
    ECONNREFUSED: 'nobody is listening on it',
    EACCES: 'permission denied',
    EMSGSIZE: 'the message is too large',
  };
  return errnoError(code, `cannot send to the notify socket ${address.text}: ${why[code] ?? error.message}`, {
    errno: (error as NodeJS.ErrnoException).errno,
    syscall: 'sendmsg',
    cause: error,
  });
}
