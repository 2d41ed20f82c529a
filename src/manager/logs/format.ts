/**
 * The human form of log records for `holdfast logs`, after journalctl's `short-precise`:
 *
 *     Nov 27 04:31:30.123456 web.service[1234]: listening on :8080
 *     Nov 27 04:31:30.123501 web.service[1234] stderr: deprecated option   (with markStderr)
 *     Nov 27 04:31:31.000002 holdfast[977]: web.service: Main process exited, code=exited, status=1
 *
 * No host name (the logs are this machine's). Colour is the CLI's business: {@link formatParts}
 * gives it the pieces.
 */
import type { LogRecord } from '../types.js';

/** Options of {@link formatRecord}. */
export interface FormatOptions {
  /** Times in UTC instead of the local time zone (default false, as journalctl). */
  utc?: boolean;
  /** Mark stderr lines with ` stderr` after the identifier (default false). */
  markStderr?: boolean;
  /**
   * Show control characters (other than tab) as `\xNN` so that output cannot drive the
   * terminal (default true).
   */
  escapeControl?: boolean;
  /** The name manager records appear under (default `holdfast`). */
  managerName?: string;
}

/** The pieces of a formatted line, for a caller that colours them. */
export interface FormattedParts {
  /** `Nov 27 04:31:30.123456` */
  timestamp: string;
  /** `web.service[1234]`, `web.service`, or `holdfast[977]` */
  identifier: string;
  /** ` stderr` on stderr lines when marked, else empty */
  marker: string;
  /** The message, escaped; for manager records prefixed with `unit: ` */
  message: string;
  stream: LogRecord['stream'];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** `Nov 27 04:31:30.123456` for a time in µs since the epoch. */
export function formatTimestamp(timeUs: number, options: { utc?: boolean } = {}): string {
  const ms = Math.floor(timeUs / 1000);
  const micros = ((timeUs % 1_000_000) + 1_000_000) % 1_000_000;
  const date = new Date(ms);
  const utc = options.utc === true;
  const month = utc ? date.getUTCMonth() : date.getMonth();
  const day = utc ? date.getUTCDate() : date.getDate();
  const hours = utc ? date.getUTCHours() : date.getHours();
  const minutes = utc ? date.getUTCMinutes() : date.getMinutes();
  const seconds = utc ? date.getUTCSeconds() : date.getSeconds();
  return `${MONTHS[month]} ${pad(day)} ${pad(hours)}:${pad(minutes)}:${pad(seconds)}.${pad(Math.floor(micros), 6)}`;
}

/** Control characters (C0 except tab and newline, DEL, C1) as `\xNN`. */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The pieces of one record's line. */
export function formatParts(unit: string, record: LogRecord, options: FormatOptions = {}): FormattedParts {
  const escape = options.escapeControl !== false;
  const timestamp = formatTimestamp(record.time, options);
  let identifier: string;
  let message = escape ? escapeControl(record.message) : record.message;
  if (record.stream === 'manager') {
    const name = options.managerName ?? 'holdfast';
    identifier = record.pid === null ? name : `${name}[${record.pid}]`;
    message = `${unit}: ${message}`;
  } else {
    identifier = record.pid === null ? unit : `${unit}[${record.pid}]`;
  }
  const marker = options.markStderr === true && record.stream === 'stderr' ? ' stderr' : '';
  return { timestamp, identifier, marker, message, stream: record.stream };
}

/**
 * One record as a line (no trailing newline). A message with newlines (manager notes may have
 * them) continues on indented lines, as journalctl shows it.
 */
export function formatRecord(unit: string, record: LogRecord, options: FormatOptions = {}): string {
  const parts = formatParts(unit, record, options);
  const prefix = `${parts.timestamp} ${parts.identifier}${parts.marker}: `;
  if (!parts.message.includes('\n')) return prefix + parts.message;
  const indent = ' '.repeat(prefix.length);
  return prefix + parts.message.split('\n').join(`\n${indent}`);
}
