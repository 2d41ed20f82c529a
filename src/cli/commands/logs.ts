import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { clientOptions, explain, method, unitName, withDaemon } from '../client.js';
import { toJson } from '../output.js';
import { formatLogLine, type LogLine } from './log-lines.js';

/** `--since`: an ISO date, a time of day, `-5min`/`5min ago`, or seconds since the epoch with `@`. */
export function parseSince(text: string, now = Date.now()): number {
  const units: Record<string, number> = { s: 1, sec: 1, second: 1, seconds: 1, m: 60, min: 60, minute: 60, minutes: 60, h: 3600, hour: 3600, hours: 3600, d: 86400, day: 86400, days: 86400 };
  const relative = /^-?\s*(\d+)\s*([a-z]+)(?:\s+ago)?$/.exec(text.trim());
  if (relative !== null && units[relative[2]!] !== undefined) return (now - Number(relative[1]) * units[relative[2]!]! * 1000) * 1000;
  if (/^@\d+$/.test(text)) return Number(text.slice(1)) * 1_000_000;
  if (text === 'today') return new Date(new Date(now).toDateString()).getTime() * 1000;
  if (/^\d{1,2}:\d{2}(:\d{2})?$/.test(text)) {
    const [h, m, s] = text.split(':').map(Number);
    const d = new Date(now);
    d.setHours(h!, m!, s ?? 0, 0);
    return d.getTime() * 1000;
  }
  const parsed = Date.parse(text);
  if (Number.isNaN(parsed)) throw new UsageError(`--since: not a time: ${text} (try "10min ago", "12:30", "2026-11-27 12:00")`);
  return parsed * 1000;
}

const logs: Command = {
  name: 'logs',
  summary: 'a unit\'s captured output (like journalctl -u)',
  usage: `Usage: holdfast logs [-n LINES] [-f] [--since TIME] [--json] [--socket PATH] UNIT

Shows a unit's stdout and stderr lines with time, PID and stream, and the daemon's own notes about
the unit. -n limits to the last LINES (default all), -f keeps following, --since takes "10min ago",
"12:30", an ISO date or @EPOCH. --json prints one record per line.`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...clientOptions, lines: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, since: { type: 'string' } },
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new UsageError('logs takes one unit');
    const name = unitName(positionals[0]!);
    const lines = values.lines === undefined ? undefined : Number(values.lines);
    if (lines !== undefined && (!Number.isInteger(lines) || lines < 0)) throw new UsageError(`-n takes a number, not ${values.lines}`);
    const params = { name, ...(lines === undefined ? {} : { lines }), ...(values.since === undefined ? {} : { since: parseSince(values.since) }) };
    const print = (records: LogLine[]): void => {
      const text = records.map((r) => (values.json === true ? toJson(r) : formatLogLine(name, r))).join('\n');
      if (text !== '') process.stdout.write(text + '\n');
    };
    return withDaemon(values.socket, async (client) => {
      try {
        if (values.follow !== true) {
          print((await client.call<{ records: LogLine[] }>(method('Logs'), params)).records);
          return 0;
        }
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        try {
          for await (const reply of client.callMore<{ records: LogLine[] }>(method('Logs'), { ...params, follow: true }, { signal: stop.signal })) print(reply.records);
        } catch (error) {
          if (!stop.signal.aborted) throw error;
        }
        return 0;
      } catch (error) {
        explain(error, 4);
      }
    });
  },
};
export default logs;
