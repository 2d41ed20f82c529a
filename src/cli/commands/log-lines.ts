/** One log record as journalctl's short-precise line: `Nov 27 04:31:30.123456 unit[pid]: message`. */
import { paint } from '../output.js';

/** A log record as the API sends it. */
export interface LogLine {
  time: number;
  stream: string;
  pid: number | null;
  pidfdId: string | null;
  invocationId: string | null;
  message: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function timestamp(usec: number): string {
  const date = new Date(Math.floor(usec / 1000));
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${MONTHS[date.getMonth()]} ${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(usec % 1_000_000, 6)}`;
}

/** The human line; stderr lines are red on a terminal, the manager's own lines name holdfast. */
export function formatLogLine(unit: string, record: LogLine): string {
  const name = unit.replace(/\.service$/, '');
  const who = record.stream === 'manager' ? `holdfast[${record.pid ?? '?'}]: ${name}:` : `${name}[${record.pid ?? '?'}]:`;
  const text = record.stream === 'stderr' ? paint('red', record.message) : record.stream === 'manager' ? paint('bold', record.message) : record.message;
  return `${timestamp(record.time)} ${who} ${text}`;
}
