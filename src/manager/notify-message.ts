/**
 * One sd_notify datagram as the manager sees it, the parsing of its text, and the parsers of the
 * values the manager needs (`*_USEC=`, `ERRNO=`, `FDNAME=`).
 *
 * Parsing follows systemd's receiver (`notify_recv_with_fds()` and `strv_split_newlines()`):
 * one trailing NUL is tolerated, any other NUL drops the datagram; lines are split at `\n` and `\r`,
 * empty lines are skipped. Where holdfast differs it says so below.
 */
import { constants } from 'node:os';
import { native } from '../native.js';
import type { Pidfd } from '../pidfd/pidfd.js';

/** The largest datagram accepted (systemd's `NOTIFY_BUFFER_MAX`, `PIPE_BUF`); a larger one is dropped. */
export const NOTIFY_BUFFER_MAX = 4096;
/** At most this many fds may come with one datagram (systemd's `NOTIFY_FD_MAX`). */
export const NOTIFY_FD_MAX = 768;

/** Who sent a datagram, from `SCM_CREDENTIALS` and (6.5+) `SCM_PIDFD`. */
export interface NotifySender {
  /** The PID in the credentials. It may already name another process if the sender died: prefer `pidfdId`. */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /**
   * The sender itself, from `SCM_PIDFD`: valid even after the sender exited and was reaped.
   * `undefined` on kernels without `SO_PASSPIDFD` (before 6.5). Owned by the message and closed
   * after the handler returns, unless the handler calls {@link NotifyMessage.takeSenderPidfd}.
   */
  readonly pidfd?: Pidfd;
  /** The sender's pidfd id (6.9+): compare it with a unit's main/control process id to attribute the message. */
  readonly pidfdId?: bigint;
}

/** What {@link parseNotifyText} found in a datagram's payload. */
export type ParsedNotifyText =
  | {
      readonly ok: true;
      /** `KEY=VALUE` pairs in the order sent. */
      readonly assignments: (readonly [key: string, value: string])[];
      /** Non-empty lines, counting those ignored (BARRIER=1 must be the only one). */
      readonly lines: number;
      /** Lines without `=` or with an empty key: ignored, as systemd ignores unknown lines. */
      readonly ignored: number;
      /** Lines that are not valid UTF-8: ignored (see {@link parseNotifyText}). */
      readonly invalidUtf8: number;
    }
  | { readonly ok: false; readonly reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const NL = 0x0a;
const CR = 0x0d;

/**
 * Splits a datagram's payload into assignments.
 *
 * - One trailing NUL is tolerated; any other NUL rejects the whole datagram.
 * - Lines are separated by `\n` or `\r` (systemd's `NEWLINE`); empty lines are skipped.
 * - A line without `=`, or with nothing before it, is ignored.
 * - Holdfast takes values verbatim. (systemd's splitter also drops backslashes, so `STATUS=a\b`
 *   becomes `ab` there; no client relies on that.)
 * - A line that is not valid UTF-8 is ignored, so every value the manager sees is a proper string
 *   (systemd ignores such a `STATUS=` too; its other keys are ASCII by definition).
 */
export function parseNotifyText(data: Buffer): ParsedNotifyText {
  let end = data.length;
  if (end > 0 && data[end - 1] === 0) end--;
  if (data.subarray(0, end).includes(0)) return { ok: false, reason: 'it contains an embedded NUL byte' };
  const assignments: [string, string][] = [];
  let lines = 0;
  let ignored = 0;
  let invalidUtf8 = 0;
  let start = 0;
  for (let i = 0; i <= end; i++) {
    if (i < end && data[i] !== NL && data[i] !== CR) continue;
    if (i > start) {
      lines++;
      let line: string;
      try {
        line = utf8.decode(data.subarray(start, i));
      } catch {
        invalidUtf8++;
        start = i + 1;
        continue;
      }
      const eq = line.indexOf('=');
      if (eq <= 0) ignored++;
      else assignments.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
    start = i + 1;
  }
  return { ok: true, assignments, lines, ignored, invalidUtf8 };
}

/**
 * One accepted notification, handed to the manager's handler.
 *
 * The handler runs synchronously; whatever it wants to keep beyond its return it must take then:
 * {@link NotifyMessage.takeFds} for the fds (`FDSTORE=1`, `MAINPIDFD=1`) and
 * {@link NotifyMessage.takeSenderPidfd} for the sender's pidfd. Everything not taken is closed
 * as soon as the handler returns.
 */
export class NotifyMessage {
  /** `KEY=VALUE` pairs, in the order sent (duplicates kept). */
  readonly assignments: readonly (readonly [key: string, value: string])[];
  readonly sender: NotifySender;
  /** The fds that came with the message (`SCM_RIGHTS`), in order; valid until the handler returns unless taken. */
  readonly fds: readonly number[];
  #fdsTaken = false;
  #pidfdTaken = false;
  #released = false;

  /** @internal Built by the server; the message owns `fds` and `sender.pidfd` from here on. */
  constructor(assignments: readonly (readonly [string, string])[], sender: NotifySender, fds: readonly number[]) {
    this.assignments = assignments;
    this.sender = sender;
    this.fds = Object.freeze([...fds]);
  }

  /** The value of `key`; when it appears more than once, the last one. */
  get(key: string): string | undefined {
    for (let i = this.assignments.length - 1; i >= 0; i--) {
      const pair = this.assignments[i]!;
      if (pair[0] === key) return pair[1];
    }
    return undefined;
  }

  /** Every value of `key`, in order. */
  getAll(key: string): string[] {
    return this.assignments.filter(([k]) => k === key).map(([, v]) => v);
  }

  /** Whether `key` is present (with exactly `value`, if given), e.g. `has('READY', '1')`. */
  has(key: string, value?: string): boolean {
    return this.assignments.some(([k, v]) => k === key && (value === undefined || v === value));
  }

  /** The keys, in order of first appearance. */
  keys(): string[] {
    return [...new Set(this.assignments.map(([k]) => k))];
  }

  /**
   * Takes every fd of the message: the caller owns (and must close) them from now on. A second
   * call returns `[]`. Only during the handler; afterwards the fds are closed already.
   */
  takeFds(): number[] {
    if (this.#fdsTaken || this.#released) return [];
    this.#fdsTaken = true;
    return [...this.fds];
  }

  /** Whether {@link takeFds} was called. */
  get fdsTaken(): boolean {
    return this.#fdsTaken;
  }

  /**
   * Takes the sender's pidfd (from `SCM_PIDFD`): the caller owns it from now on and must close it.
   * `undefined` where the kernel gave none, once taken, or after the handler returned.
   */
  takeSenderPidfd(): Pidfd | undefined {
    if (this.#pidfdTaken || this.#released || this.sender.pidfd === undefined) return undefined;
    this.#pidfdTaken = true;
    return this.sender.pidfd;
  }

  /** `NotifyMessage(pid 12, id 13: READY=1 STATUS=…, 2 fds)`, for log lines. */
  toString(): string {
    const who = `pid ${this.sender.pid}${this.sender.pidfdId === undefined ? '' : `, id ${this.sender.pidfdId}`}`;
    const text = this.assignments.map(([k, v]) => `${k}=${v.length > 40 ? `${v.slice(0, 40)}…` : v}`).join(' ');
    return `NotifyMessage(${who}: ${text}${this.fds.length > 0 ? `, ${this.fds.length} fds` : ''})`;
  }

  /**
   * @internal Closes what the handler did not take. Returns how many message fds (not counting the
   * sender's pidfd) were closed.
   */
  release(): number {
    if (this.#released) return 0;
    this.#released = true;
    let closed = 0;
    if (!this.#fdsTaken) {
      for (const fd of this.fds) {
        closeQuietly(fd);
        closed++;
      }
    }
    if (!this.#pidfdTaken) this.sender.pidfd?.close();
    return closed;
  }
}

/** Closes an fd, ignoring `EBADF` (a handler may have closed one it did not take). */
export function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

const UINT64_MAX = (1n << 64n) - 1n;

/**
 * A µs value from a message (`WATCHDOG_USEC=`, `EXTEND_TIMEOUT_USEC=`, `MONOTONIC_USEC=`): strict
 * decimal u64. Values beyond `Number.MAX_SAFE_INTEGER` (285 years; systemd's `USEC_INFINITY` is
 * `UINT64_MAX`) give `Infinity`. Anything else (signs, spaces, hex, > u64) gives `undefined`.
 * (systemd's `safe_atou64()` also takes whitespace, `0x` and octal; holdfast takes decimal only.)
 */
export function parseNotifyUsec(text: string): number | undefined {
  if (!/^\d{1,20}$/.test(text)) return undefined;
  const value = BigInt(text);
  if (value > UINT64_MAX) return undefined;
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(value);
}

/** systemd's `ERRNO_MAX`. */
const ERRNO_MAX = 4095;

/**
 * `ERRNO=`: a decimal errno number (0 allowed, at most 4095) or a name such as `ENOENT`, as
 * systemd's `parse_errno()` takes it. `undefined` when it is neither.
 */
export function parseErrno(text: string): number | undefined {
  if (/^[A-Z][A-Z0-9]*$/.test(text)) {
    const value = (constants.errno as Record<string, number | undefined>)[text];
    return value !== undefined && Object.hasOwn(constants.errno, text) ? value : undefined;
  }
  if (!/^\d{1,4}$/.test(text)) return undefined;
  const value = Number(text);
  return value <= ERRNO_MAX ? value : undefined;
}

/** systemd's `FDNAME_MAX`. */
const FDNAME_MAX = 255;

/**
 * `FDNAME=` as systemd's `fdname_is_valid()` takes it: printable ASCII (0x20–0x7e) except `:`
 * (the separator of `$LISTEN_FDNAMES`), at most 255 characters. The empty name is valid, as in
 * systemd.
 */
export function isValidFdName(name: string): boolean {
  if (name.length > FDNAME_MAX) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === 0x3a) return false;
  }
  return true;
}
