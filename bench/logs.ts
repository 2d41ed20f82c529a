/**
 * Log capture throughput, side by side in one run: a service writes LINES short lines as fast as it
 * can, then `END`; measured from the start request until `END` is stored in the manager's log file,
 * and the manager's CPU time (utime + stime of its daemon process) over that interval.
 *
 * - holdfast: pipe → splice into the spool → read back → lines → JSON records → `<unit>.jsonl`.
 * - PM2: pipe → its God daemon → `<name>-out.log` (raw lines, no record, no crash safety).
 * - floor: `cat` copying the same pipe into a file (no manager at all).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/run-all.js logs
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HoldfastDaemon, monoNs, Pm2Daemon, sleep } from './manager-systems.js';
import { median, printTable, sampleRow } from './stats.js';

const LINES = 100_000;
const ROUNDS = 5;
const WARMUP = 1;
const POLL_MS = 2;
const DEADLINE_MS = 60_000;
const writer = (lines: number): string => `seq 1 ${lines}; echo END`;

const msSince = (t0: bigint): number => Number(monoNs() - t0) / 1e6;

/** utime + stime of a process, in ms (clock ticks are 10 ms on this kernel's USER_HZ of 100). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Whether the last bytes of `path` contain `marker`. */
function tailHas(path: string, marker: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 512);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').includes(marker);
  } finally {
    closeSync(fd);
  }
}

async function waitFor(path: string, marker: string): Promise<boolean> {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    if (tailHas(path, marker)) return true;
    await sleep(POLL_MS);
  }
  return false;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-logs-'));
  process.stdout.write(`\n# Log throughput: ${LINES} lines from \`seq\` as fast as it goes, ${ROUNDS} rounds (+${WARMUP} warm-up) each\n`);
  process.stdout.write(`# ${availableParallelism()} CPUs, Linux ${release()}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  const total = ROUNDS + WARMUP;
  const hfMs: number[] = [];
  const hfCpu: number[] = [];
  const pmMs: number[] = [];
  const pmCpu: number[] = [];
  const floorMs: number[] = [];
  try {
    // The floor: the same pipe, copied to a file by cat.
    for (let round = 0; round < total; round++) {
      const out = join(dir, `floor-${round}.log`);
      const t0 = monoNs();
      execFileSync('/bin/sh', ['-c', `(${writer(LINES)}) | cat > ${out}`]);
      if (round >= WARMUP) floorMs.push(msSince(t0));
    }

    const units: Record<string, string> = {};
    for (let round = 0; round < total; round++) units[`w${round}.service`] = `[Service]\nExecStart=/bin/sh -c '${writer(LINES)}; exec sleep 600'\n`;
    const holdfast = await HoldfastDaemon.start(join(dir, 'holdfast'), units);
    try {
      for (let round = 0; round < total; round++) {
        const file = join(dir, 'holdfast', 'state', 'logs', `w${round}.service.jsonl`);
        const cpu0 = cpuMs(holdfast.pid);
        const t0 = monoNs();
        await holdfast.call('Start', { name: `w${round}` });
        const stored = await waitFor(file, '"message":"END"');
        const ms = msSince(t0);
        const cpu = cpuMs(holdfast.pid) - cpu0;
        if (stored && round >= WARMUP) {
          hfMs.push(ms);
          hfCpu.push(cpu);
        }
        await holdfast.call('Stop', { name: `w${round}` });
      }
    } finally {
      await holdfast.stop();
    }

    let pm2: Pm2Daemon | undefined;
    try {
      pm2 = await Pm2Daemon.start(join(dir, 'pm2'));
      for (let round = 0; round < total; round++) {
        const name = `w${round}`;
        const file = join(dir, 'pm2', 'logs', `${name}-out.log`);
        const cpu0 = cpuMs(pm2.pid);
        const t0 = monoNs();
        await pm2.start({ name, script: '/bin/sh', args: ['-c', `${writer(LINES)}; exec sleep 600`], interpreter: 'none', autorestart: false });
        const stored = await waitFor(file, 'END');
        const ms = msSince(t0);
        const cpu = cpuMs(pm2.pid) - cpu0;
        if (stored && round >= WARMUP) {
          pmMs.push(ms);
          pmCpu.push(cpu);
        }
        await pm2.remove(name);
      }
    } catch (error) {
      process.stdout.write(`PM2 skipped: ${(error as Error).message}\n`);
    } finally {
      await pm2?.kill();
    }

    printTable(`Start → last of ${LINES} lines stored (wall time; ratio to the cat floor)`, [
      sampleRow('floor: the pipe copied to a file by cat', floorMs, 'ms'),
      sampleRow('holdfast: spool (splice) → JSON records in <unit>.jsonl', hfMs, 'ms', `${lineRate(hfMs)} lines/s`),
      sampleRow('PM2: raw lines in <name>-out.log', pmMs, 'ms', `${lineRate(pmMs)} lines/s`),
    ]);
    printTable(`Manager CPU time for ${LINES} lines (utime + stime of the daemon; 10 ms ticks)`, [
      sampleRow('holdfast daemon', hfCpu, 'ms'),
      sampleRow('PM2 God daemon', pmCpu, 'ms'),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function lineRate(samples: number[]): string {
  return samples.length === 0 ? '–' : Math.round(LINES / (median(samples) / 1000)).toLocaleString('en-US');
}
