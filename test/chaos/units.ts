/**
 * The units the fault suite runs: crash-looping writers and a few long-running ones. Each writes
 * numbered lines `<unit> <n>` to stdout and, only once that write went through, appends `n` to a
 * ground-truth file outside the daemon's directory. A line whose number is in the truth file must be
 * in the unit's log, or counted as dropped.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Marks a unit's process in its command line: the script's file name. */
export const UNIT_SCRIPT_NAME = 'chaos-unit.sh';

// Crash loop: write LINES numbered lines, then fail. Long: a line every 50 ms, for good.
// The next number is kept in <unit>.last (builtins only: no fork per line).
const SCRIPT = `#!/bin/sh
# chaos-unit.sh UNIT TRUTHDIR MODE LINES
u=$1; t=$2; mode=$3; lines=$4
n=0
[ -f "$t/$u.last" ] && read n < "$t/$u.last"
[ -n "$n" ] || n=0
i=0
while :; do
  n=$((n+1))
  echo "$u $n"
  echo "$n" >> "$t/$u.truth"
  echo "$n" > "$t/$u.last"
  if [ "$mode" = crash ]; then
    i=$((i+1))
    [ "$i" -ge "$lines" ] && exit 1
  else
    sleep 0.05
  fi
done
`;

/** What the suite runs. */
export interface ChaosUnits {
  /** The script every unit runs: its path in a command line marks a process of the suite's units. */
  script: string;
  crashLoopers: string[];
  longWriters: string[];
  all: string[];
  /** Unit file texts by name. */
  files: Record<string, string>;
}

/** Writes the unit script into `truthDir` and returns the unit files. */
export function chaosUnits(truthDir: string, options: { crashLoopers: number; longWriters: number; restartSec: number; linesPerRun: number }): ChaosUnits {
  const script = join(truthDir, UNIT_SCRIPT_NAME);
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  const files: Record<string, string> = {};
  const crashLoopers: string[] = [];
  const longWriters: string[] = [];
  const unit = (name: string, mode: 'crash' | 'long'): string =>
    [
      '[Unit]',
      `Description=chaos ${mode} writer`,
      'StartLimitIntervalSec=0',
      '[Service]',
      `ExecStart=${script} ${name} ${truthDir} ${mode} ${options.linesPerRun}`,
      'Restart=always',
      `RestartSec=${options.restartSec}`,
      '',
    ].join('\n');
  for (let i = 0; i < options.crashLoopers; i++) {
    const name = `chaos-loop-${String(i).padStart(2, '0')}.service`;
    crashLoopers.push(name);
    files[name] = unit(name, 'crash');
  }
  for (let i = 0; i < options.longWriters; i++) {
    const name = `chaos-long-${i}.service`;
    longWriters.push(name);
    files[name] = unit(name, 'long');
  }
  return { script, crashLoopers, longWriters, all: [...crashLoopers, ...longWriters], files };
}

/** The unit a process belongs to by its command line, when it runs the suite's unit script `script`. */
export function unitOfArgv(argv: string[], script: string): string | undefined {
  const at = argv.indexOf(script);
  return at < 0 ? undefined : argv[at + 1];
}

/** The numbers a unit reported having written. */
export function truthOf(truthDir: string, unit: string): number[] {
  const path = join(truthDir, `${unit}.truth`);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** What a unit's stored log holds: the numbers of its own lines, and the bytes it says were dropped. */
export interface StoredLog {
  numbers: Set<number>;
  droppedBytes: number;
  /** Manager notes that a process was killed by SIGPIPE (its log pipe had no reader). */
  sigpipes: number;
  records: number;
  unparsable: number;
}

/** Reads `<logs>/<unit>.jsonl` and its rotated files straight from disk. */
export function storedLog(logsDir: string, unit: string): StoredLog {
  const out: StoredLog = { numbers: new Set(), droppedBytes: 0, sigpipes: 0, records: 0, unparsable: 0 };
  if (!existsSync(logsDir)) return out;
  const files = readdirSync(logsDir).filter((name) => name === `${unit}.jsonl` || name.startsWith(`${unit}.jsonl.`));
  const prefix = `${unit} `;
  for (const file of files) {
    const text = readFileSync(join(logsDir, file), 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let record: { stream?: string; message?: string };
      try {
        record = JSON.parse(line) as { stream?: string; message?: string };
      } catch {
        out.unparsable++;
        continue;
      }
      out.records++;
      const message = record.message ?? '';
      if (record.stream === 'stdout' && message.startsWith(prefix)) {
        const n = Number(message.slice(prefix.length));
        if (Number.isSafeInteger(n)) out.numbers.add(n);
      } else if (record.stream === 'manager') {
        const dropped = /^(\d+) bytes of output dropped/.exec(message);
        if (dropped !== null) out.droppedBytes += Number(dropped[1]);
        if (message.includes('SIGPIPE')) out.sigpipes++;
      }
    }
  }
  return out;
}

/** The bytes `<unit> <n>\n` takes in the pipe. */
export function lineBytes(unit: string, n: number): number {
  return Buffer.byteLength(`${unit} ${n}\n`);
}

/** The last number each unit recorded, now: a mark on the timeline that lost lines are placed on. */
export function lastNumbers(truthDir: string, units: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const unit of units) {
    try {
      out.set(unit, Number(readFileSync(join(truthDir, `${unit}.last`), 'utf8').trim()) || 0);
    } catch {
      out.set(unit, 0);
    }
  }
  return out;
}
