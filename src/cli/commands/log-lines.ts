/** One log record as journalctl's short-precise line, coloured for a terminal. */
import { formatParts } from '../../manager/logs/format.js';
import type { LogRecord } from '../../manager/types.js';
import { paint } from '../output.js';

/** A log record as the API sends it. */
export type LogLine = LogRecord;

/** The human line: stderr lines red on a terminal, the manager's own lines bold. */
export function formatLogLine(unit: string, record: LogLine): string {
  const parts = formatParts(unit, record, { markStderr: false });
  const message = record.stream === 'stderr' ? paint('red', parts.message) : record.stream === 'manager' ? paint('bold', parts.message) : parts.message;
  return `${parts.timestamp} ${parts.identifier}${parts.marker}: ${message}`;
}
