/**
 * `sd_notify` for Node: status messages from a service to its manager over `$NOTIFY_SOCKET`, and a
 * typed helper for every assignment the protocol defines.
 *
 * Sending is synchronous, as `sd_notify()` is: a message sent just before `process.exit()` still
 * goes out. Without `$NOTIFY_SOCKET` every call is a no-op that says so (`sent: false`).
 */
import { constants } from 'node:os';
import type { Pidfd } from '../pidfd/pidfd.js';
import { Pidfd as PidfdClass } from '../pidfd/pidfd.js';
import { errnoError } from '../pidfd/errors.js';
import type { Environment } from './env.js';
import { parseNotifySocket, sendDatagram, type NotifyAddress, type SendOutcome } from './notify-socket.js';

export { closeNotifySocket, parseNotifySocket, type NotifyAddress } from './notify-socket.js';

/** A value in a notification: written in decimal (`true` is `1`, `false` is `0`). */
export type NotifyValue = string | number | bigint | boolean;

/** `KEY=value` assignments; `undefined`/`null` values are left out (handy for optional fields). */
export type NotifyFields = Readonly<Record<string, NotifyValue | null | undefined>>;

/**
 * A message: assignments as an object (in insertion order), raw `KEY=VALUE` lines, or one raw
 * string sent as is (several lines separated by `\n`, as `sd_notify()` takes it).
 */
export type NotifyMessage = NotifyFields | readonly string[] | string;

/** Options of {@link notify} and every helper. */
export interface NotifyOptions {
  /** File descriptors to pass along (`SCM_RIGHTS`); they stay open here. At most 253 (the kernel's limit). */
  fds?: readonly number[];
  /**
   * Send on behalf of this process (`sd_pid_notify()`): its PID goes in `SCM_CREDENTIALS`. Only a
   * privileged sender may do that; otherwise the message goes out with our own credentials.
   */
  pid?: number;
  /** Claim this user id in `SCM_CREDENTIALS` (root only; otherwise our own is used). */
  uid?: number;
  /** Claim this group id in `SCM_CREDENTIALS` (root only; otherwise our own is used). */
  gid?: number;
  /** Send here instead of `$NOTIFY_SOCKET` (same syntax: `/path` or `@abstract`). */
  socket?: string;
  /** Read `NOTIFY_SOCKET` from here instead of `process.env`. */
  env?: Environment;
  /** Delete `NOTIFY_SOCKET` from `process.env` afterwards, so children do not inherit it. */
  unsetEnvironment?: boolean;
  /** How long to wait, blocking, while the manager's queue is full. Default 5000 ms. */
  timeoutMs?: number;
}

/** What {@link notify} did. */
export type NotifyResult =
  | {
      /** The datagram was handed to the kernel for the manager's socket. */
      readonly sent: true;
      /** The socket it went to (`$NOTIFY_SOCKET`). */
      readonly socket: string;
      /** The exact text sent. */
      readonly message: string;
      /** Its size in bytes. */
      readonly bytes: number;
      /** How many fds went with it. */
      readonly fds: number;
      /** `kernel`: the kernel filled in our credentials; `explicit`: ours as asked (another PID or UID); `own`: the claim was refused, ours went instead. */
      readonly credentials: SendOutcome['credentials'];
    }
  | {
      /** Nothing was sent: there is no `$NOTIFY_SOCKET`, so nobody is listening. */
      readonly sent: false;
      /** Why, for logs. */
      readonly reason: string;
    };

/** The largest message a manager accepts: its buffer is `PIPE_BUF`; longer ones are dropped whole. */
export const NOTIFY_MESSAGE_MAX = 4096;
/** At most this many fds per message (`SCM_MAX_FD`); libsystemd refuses more with `E2BIG` too. */
export const NOTIFY_FDS_MAX = 253;

const DEFAULT_TIMEOUT_MS = 5000;

function valueText(key: string, value: NotifyValue): string {
  let text: string;
  if (typeof value === 'boolean') text = value ? '1' : '0';
  else if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw errnoError('EINVAL', `notify: ${key}= must be a finite number, not ${value}`);
    text = String(value);
  } else text = String(value);
  if (text.includes('\n')) throw errnoError('EINVAL', `notify: the value of ${key}= contains a newline, which would start another assignment: ${JSON.stringify(text)}`);
  if (text.includes('\0')) throw errnoError('EINVAL', `notify: the value of ${key}= contains a NUL byte, for which the manager drops the whole message`);
  return text;
}

function checkKey(key: string): void {
  if (key === '' || /[=\n\0]/.test(key)) throw errnoError('EINVAL', `notify: not a valid key: ${JSON.stringify(key)} (no '=', newline or NUL, not empty)`);
}

/**
 * The text of a message, validated: keys without `=`/newline, values without newline or NUL, at
 * most {@link NOTIFY_MESSAGE_MAX} bytes, not empty. Lines are joined by `\n` with no trailing newline,
 * which is what `systemd-notify` sends.
 */
export function formatNotifyMessage(message: NotifyMessage): string {
  let text: string;
  if (typeof message === 'string') {
    if (message.includes('\0')) throw errnoError('EINVAL', 'notify: the message contains a NUL byte, for which the manager drops it');
    text = message;
  } else if (Array.isArray(message)) {
    for (const line of message as readonly string[]) {
      if (typeof line !== 'string') throw errnoError('EINVAL', 'notify: raw lines must be strings');
      if (line.includes('\n')) throw errnoError('EINVAL', `notify: a line contains a newline: ${JSON.stringify(line)}`);
      if (line.includes('\0')) throw errnoError('EINVAL', 'notify: a line contains a NUL byte, for which the manager drops the message');
    }
    text = (message as readonly string[]).join('\n');
  } else {
    const lines: string[] = [];
    for (const [key, value] of Object.entries(message as NotifyFields)) {
      if (value === undefined || value === null) continue;
      checkKey(key);
      lines.push(`${key}=${valueText(key, value)}`);
    }
    text = lines.join('\n');
  }
  if (text === '') throw errnoError('EINVAL', 'notify: the message is empty');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > NOTIFY_MESSAGE_MAX) {
    throw errnoError('EMSGSIZE', `notify: the message is ${bytes} bytes; a manager drops messages over ${NOTIFY_MESSAGE_MAX} bytes`);
  }
  return text;
}

/** The socket to send to, or why there is none. */
export function notifyTarget(options: Pick<NotifyOptions, 'socket' | 'env'> = {}): NotifyAddress | { reason: string } {
  const text = options.socket ?? (options.env ?? process.env)['NOTIFY_SOCKET'];
  if (text === undefined) return { reason: '$NOTIFY_SOCKET is not set' };
  return parseNotifySocket(text);
}

function credentialsFor(options: NotifyOptions): { pid: number; uid: number; gid: number } | null {
  const uid = process.getuid!();
  const gid = process.getgid!();
  const pid = options.pid ?? process.pid;
  if (options.pid !== undefined && (!Number.isSafeInteger(pid) || pid <= 0)) throw errnoError('EINVAL', `notify: not a PID: ${String(options.pid)}`);
  const claimedUid = options.uid ?? uid;
  const claimedGid = options.gid ?? gid;
  const needed = pid !== process.pid || uid !== process.geteuid!() || gid !== process.getegid!() || claimedUid !== uid || claimedGid !== gid;
  return needed ? { pid, uid: claimedUid, gid: claimedGid } : null;
}

/**
 * Sends one message to the service manager (`sd_notify`).
 *
 * ```ts
 * notify({ READY: 1, STATUS: 'listening on :8080' });   // "READY=1\nSTATUS=listening on :8080"
 * notify('WATCHDOG=1');
 * ```
 * Without `$NOTIFY_SOCKET` it sends nothing and returns `{ sent: false }`: not being supervised is
 * not an error. A malformed message or socket address throws `EINVAL` (`EMSGSIZE` over 4096 bytes,
 * `E2BIG` over 253 fds); a failed send throws with the errno of `sendmsg` (`ECONNREFUSED`,
 * `ENOENT`, …). Credentials are attached explicitly only when needed, as libsystemd does: when
 * sending on behalf of another PID or UID, or when our real and effective ids differ.
 */
export function notify(message: NotifyMessage, options: NotifyOptions = {}): NotifyResult {
  const text = formatNotifyMessage(message);
  const fds = options.fds ?? [];
  if (fds.length > NOTIFY_FDS_MAX) throw errnoError('E2BIG', `notify: ${fds.length} fds are more than one message can carry (${NOTIFY_FDS_MAX})`);
  for (const fd of fds) {
    if (!Number.isSafeInteger(fd) || fd < 0) throw errnoError('EBADF', `notify: not a file descriptor: ${String(fd)}`);
  }
  try {
    const target = notifyTarget(options);
    if ('reason' in target) return { sent: false, reason: target.reason };
    const data = Buffer.from(text, 'utf8');
    const outcome = sendDatagram(target, data, fds, credentialsFor(options), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    return { sent: true, socket: target.text, message: text, bytes: outcome.bytes, fds: fds.length, credentials: outcome.credentials };
  } finally {
    if (options.unsetEnvironment === true) delete process.env['NOTIFY_SOCKET'];
  }
}

/** CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC=` (libuv's hrtime reads CLOCK_MONOTONIC on Linux). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

function usecFromMs(what: string, ms: number): bigint {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw errnoError('EINVAL', `${what}: not a duration in milliseconds: ${String(ms)}`);
  return BigInt(Math.round(ms * 1000));
}

/** Options of the typed helpers: those of {@link notify} except `fds`, which the helpers decide. */
export type NotifyHelperOptions = Omit<NotifyOptions, 'fds'>;

/** `READY=1` (and `STATUS=` if given): start-up, or a reload, is complete. */
export function ready(status?: string, options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ READY: 1, STATUS: status }, options);
}

/**
 * `RELOADING=1` with `MONOTONIC_USEC=` (now, CLOCK_MONOTONIC µs): a reload has begun; send
 * {@link ready} when it is done. `Type=notify-reload` needs the timestamp to accept the reload.
 */
export function reloading(status?: string, options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: status }, options);
}

/** `STOPPING=1` (and `STATUS=` if given): the service is shutting down. */
export function stopping(status?: string, options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ STOPPING: 1, STATUS: status }, options);
}

/** `STATUS=text`: one line of free-form status shown by the manager; an empty string clears it. */
export function status(text: string, options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ STATUS: text }, options);
}

/**
 * `ERRNO=n`: why the service failed, as an errno number or name (`'ENOENT'`); names are sent as
 * their number, which every manager version understands.
 */
export function errno(error: number | string, options: NotifyHelperOptions = {}): NotifyResult {
  let value: number;
  if (typeof error === 'string') {
    const named = (constants.errno as Record<string, number | undefined>)[error];
    if (named === undefined) throw errnoError('EINVAL', `errno: unknown errno name: ${JSON.stringify(error)}`);
    value = named;
  } else value = error;
  if (!Number.isSafeInteger(value) || value < 0) throw errnoError('EINVAL', `errno: not an errno number: ${String(error)}`);
  return notify({ ERRNO: value }, options);
}

/**
 * Names the service's new main process: `MAINPID=` and `MAINPIDFDID=` (when the kernel gives ids),
 * plus `MAINPIDFD=1` with the pidfd itself attached, which a manager that knows it (systemd 257+,
 * holdfast) uses in preference, so the PID cannot be recycled in transit. Given a PID, it is opened
 * first and the handle closed afterwards.
 */
export function mainPid(target: Pidfd | number, options: NotifyHelperOptions = {}): NotifyResult {
  if (typeof target === 'number') {
    const handle = PidfdClass.open(target);
    try {
      return mainPid(handle, options);
    } finally {
      handle.close();
    }
  }
  const fields: Record<string, NotifyValue | undefined> = { MAINPID: target.pid, MAINPIDFDID: target.id, MAINPIDFD: 1 };
  return notify(fields, { ...options, fds: [target.fd] });
}

/** `WATCHDOG=1`: the keep-alive ping. See `startWatchdog()` for pinging on a timer. */
export function watchdog(options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ WATCHDOG: 1 }, options);
}

/** `WATCHDOG=trigger`: ask the manager to act as if the watchdog had expired, now. */
export function watchdogTrigger(options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ WATCHDOG: 'trigger' }, options);
}

/** `WATCHDOG_USEC=`: change the watchdog timeout for this run (and reset it). */
export function watchdogTimeout(ms: number, options: NotifyHelperOptions = {}): NotifyResult {
  const usec = usecFromMs('watchdogTimeout', ms);
  if (usec === 0n) throw errnoError('EINVAL', 'watchdogTimeout: the timeout must be positive');
  return notify({ WATCHDOG_USEC: usec }, options);
}

/**
 * `EXTEND_TIMEOUT_USEC=`: ask for `ms` more before the current start/stop/runtime timeout fires
 * (counted from now). Keep sending it while the slow work lasts.
 */
export function extendTimeout(ms: number, options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ EXTEND_TIMEOUT_USEC: usecFromMs('extendTimeout', ms) }, options);
}

/** `RESTART_RESET=1`: reset the restart counter (and so the `RestartSteps=` back-off). */
export function restartReset(options: NotifyHelperOptions = {}): NotifyResult {
  return notify({ RESTART_RESET: 1 }, options);
}

/** `NOTIFYACCESS=`: change who may send notifications for the service until its next start. */
export function notifyAccess(mode: 'none' | 'main' | 'exec' | 'all', options: NotifyHelperOptions = {}): NotifyResult {
  if (!['none', 'main', 'exec', 'all'].includes(mode)) throw errnoError('EINVAL', `notifyAccess: not an access mode: ${JSON.stringify(mode)}`);
  return notify({ NOTIFYACCESS: mode }, options);
}

/** Checks a name for `FDNAME=`: 1–255 characters, no control characters, no `:` (as systemd's `fdname_is_valid`). */
export function checkFdName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== 'string' || name.length === 0 || name.length > 255 || /[\x00-\x1f\x7f:]/.test(name)) {
    throw errnoError('EINVAL', `not a valid fd name: ${JSON.stringify(name)} (1–255 characters, no ':' or control characters)`);
  }
}

/**
 * `FDSTORE=1` + `FDNAME=name`: hand fds to the manager to keep across restarts (they come back as
 * `$LISTEN_FDS` on the next start). With `poll: false`, adds `FDPOLL=0` so the manager does not drop
 * them on `EPOLLHUP`. The fds stay open here too.
 */
export function fdStore(name: string, fds: number | readonly number[], options: NotifyHelperOptions & { poll?: boolean } = {}): NotifyResult {
  checkFdName(name);
  const list = typeof fds === 'number' ? [fds] : fds;
  if (list.length === 0) throw errnoError('EINVAL', 'fdStore: no file descriptors given');
  const { poll, ...rest } = options;
  return notify({ FDSTORE: 1, FDNAME: name, FDPOLL: poll === false ? 0 : undefined }, { ...rest, fds: list });
}

/** `FDSTOREREMOVE=1` + `FDNAME=name`: the manager closes the fds it keeps under that name. */
export function fdStoreRemove(name: string, options: NotifyHelperOptions = {}): NotifyResult {
  checkFdName(name);
  return notify({ FDSTOREREMOVE: 1, FDNAME: name }, options);
}
