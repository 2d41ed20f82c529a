/**
 * The service manager next to PM2 and a C floor, side by side in one run.
 * Run: npx tsc -p tsconfig.json && node dist/bench/run-all.js manager
 *
 * 1. spawn-to-running: holdfast `Start` of a Type=simple unit running /bin/sleep 600 (it returns
 *    once the process has exec'd); PM2 `start({ script: '/bin/sleep', interpreter: 'none' })` until
 *    its callback; floor: posix_spawn of /bin/sleep.
 * 2. crash-to-restarted: a service that appends a timestamp and exits 1, restarted at once; the
 *    interval between consecutive starts. All three run the same program (`floor stamp FILE`).
 * 3. exit-detection latency: the same program, living 50 ms so that the manager is idle when it
 *    exits; from its timestamp (CLOCK_MONOTONIC, taken just before exit) to the moment a client
 *    holds the manager's exit event (holdfast: the Subscribe stream; PM2: its bus). Floor:
 *    waitpid() returning in the C parent.
 * 4. start of 100 services, parallel requests, until all are running; and their stop.
 * 5. daemon RSS: idle, and with 100 services running.
 * 6. `list` round trip with 100 services running.
 *
 * Each figure's sample count is bounded so that the whole run stays near a minute on 2 cores.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VarlinkClient } from '../src/api/varlink/index.js';
import type { UnitStatus } from '../src/manager/types.js';
import {
  compileFloor,
  HoldfastDaemon,
  lineCount,
  monoNs,
  Pm2Daemon,
  readStamps,
  privateKiB,
  rssKiB,
  runFloor,
  sleep,
  stampProgram,
  type Floor,
  type JobReply,
  type Pm2StartOptions,
  type Stamp,
} from './manager-systems.js';
import { median, printTable, sampleRow, type Row } from './stats.js';

const SPAWN_SAMPLES = 30;
const SPAWN_WARMUP = 3;
const FLOOR_SPAWN_SAMPLES = 200;
const CRASH_INTERVALS = 200;
const CRASH_WARMUP = 5;
const CRASH_INTERVALS_UNDER_LOAD = 100;
const EXIT_SAMPLES = 40;
const EXIT_WARMUP = 3;
/** Restart delay in the exit-detection loop, so that one exit's event is read before the next start. */
const EXIT_GAP_MS = 100;
/**
 * How long the service of the exit-detection loop lives before it stamps and exits: long enough
 * for the manager to have finished starting it, so what is measured is noticing an exit, not the
 * tail of the start job.
 */
const EXIT_AFTER_MS = 50;
const MANY = 100;
const MANY_ROUNDS = 3;
const LIST_CALLS = 50;
const RSS_READS = 5;
/** Give up on a loop that has not produced its samples by then (reported as fewer samples). */
const LOOP_DEADLINE_MS = 30_000;

const usSince = (t0: bigint): number => Number(monoNs() - t0) / 1000;
const msSince = (t0: bigint): number => Number(monoNs() - t0) / 1e6;
const pad = (i: number): string => String(i).padStart(3, '0');
const processCount = (): number => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;

/** Median VmRSS (or, with `read`, another per-process figure in KiB) summed over `pids`, over a few reads 100 ms apart, in MiB. */
async function rssMiB(pids: number | number[], read: (pid: number) => number | undefined = rssKiB): Promise<number | null> {
  const list = typeof pids === 'number' ? [pids] : pids;
  if (list.length === 0) return null;
  const reads: number[] = [];
  for (let i = 0; i < RSS_READS; i++) {
    const each = list.map(read);
    if (each.every((kib) => kib !== undefined)) reads.push(each.reduce((a, b) => a! + b!, 0)!);
    await sleep(100);
  }
  return reads.length === 0 ? null : median(reads) / 1024;
}

const loadAverage = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** The checkout being measured: commit, and whether src/ or native/ differ from it. */
function checkout(): string {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  try {
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'native'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l !== '').length;
    return `commit ${head}${dirty > 0 ? `, plus ${dirty} uncommitted change(s) under src/ and native/` : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

/** Intervals between consecutive stamps (CLOCK_REALTIME), in µs, after the warm-up. */
function intervalsUs(stamps: Stamp[], count: number): number[] {
  const used = stamps.slice(CRASH_WARMUP, CRASH_WARMUP + count + 1);
  const out: number[] = [];
  for (let k = 1; k < used.length; k++) out.push(Number(used[k]!.realtimeNs - used[k - 1]!.realtimeNs) / 1000);
  return out;
}

/** Waits until `file` has `lines` lines or the deadline passes. */
async function waitForLines(file: string, lines: number): Promise<void> {
  const deadline = Date.now() + LOOP_DEADLINE_MS;
  while (lineCount(file) < lines && Date.now() < deadline) await sleep(20);
}

/**
 * Latency from a stamp to a moment seen on the monotonic clock, in µs. The shell fallback stamps
 * only CLOCK_REALTIME: then the moment is moved to the realtime clock (±1 ms).
 */
function makeLatency(): (stamp: Stamp, atMono: bigint) => number {
  const realtimeOffset = BigInt(Date.now()) * 1_000_000n - monoNs();
  return (stamp, atMono) => (stamp.monoNs !== null ? Number(atMono - stamp.monoNs) : Number(atMono + realtimeOffset - stamp.realtimeNs)) / 1000;
}

interface Summary {
  figure: string;
  holdfast: number | null;
  pm2: number | null;
  floor: number | null;
  unit: string;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  const floor: Floor = compileFloor(dir);
  const stamp = stampProgram(dir, floor);
  const floorSkipped: Row = { name: 'floor (C)', value: null, unit: '', note: floor.path === undefined ? floor.reason : '' };
  const summary: Summary[] = [];
  const latency = makeLatency();

  process.stdout.write(
    `\nholdfast vs PM2 vs a C floor\n` +
      `  machine: ${availableParallelism()} CPUs, Linux ${release()}, Node ${process.version}; load average ${loadAverage()}\n` +
      `  holdfast: ${checkout()}\n` +
      `  floor: ${floor.path !== undefined ? `bench/floor.c built with ${floor.compiler}` : `skipped: ${floor.reason}`}\n` +
      `  crashing service for all three: ${stamp.what}\n`,
  );

  // ---------------------------------------------------------------------------------- set-up
  const file = (name: string): string => join(dir, `${name}.stamps`);
  const crashUnit = (stampFile: string, restartSec: string, delayMs?: number): string =>
    `[Unit]\nStartLimitIntervalSec=0\n\n[Service]\nType=simple\nExecStart=${stamp.argv(stampFile, delayMs).join(' ')}\nRestart=always\nRestartSec=${restartSec}\n`;
  // StartLimitIntervalSec=0: as in systemd, the start rate limit also counts manual starts.
  const sleepUnit = '[Unit]\nStartLimitIntervalSec=0\n\n[Service]\nType=simple\nExecStart=/bin/sleep 600\n';
  const units: Record<string, string> = {
    'spawn.service': sleepUnit,
    'crash.service': crashUnit(file('holdfast-crash'), '0'),
    'crash-loaded.service': crashUnit(file('holdfast-crash-loaded'), '0'),
    'exitwatch.service': crashUnit(file('holdfast-exit'), `${EXIT_GAP_MS}ms`, EXIT_AFTER_MS),
  };
  const many = Array.from({ length: MANY }, (_, i) => `svc-${pad(i)}`);
  for (const name of many) units[`${name}.service`] = sleepUnit;

  let hf: HoldfastDaemon | undefined;
  let pm: Pm2Daemon | undefined;
  let pool: VarlinkClient[] = [];
  try {
    hf = await HoldfastDaemon.start(join(dir, 'holdfast'), units);
    pm = await Pm2Daemon.start(join(dir, 'pm2-home'));
    process.stdout.write(`  PM2 ${pm.version}, private PM2_HOME ${pm.home}\n  holdfast daemon PID ${hf.pid}, PM2 God daemon PID ${pm.pid}\n`);
    const pm2Crash = (name: string, stampFile: string, delay: number, lifeMs?: number): Pm2StartOptions => {
      const [script, ...args] = stamp.argv(stampFile, lifeMs);
      // min_uptime: PM2's schema refuses values under 100 ms (and then uses its default, 1 s); with
      // max_restarts this large the "unstable restarts" limit is never reached either way.
      return { name, script: script!, args, interpreter: 'none', autorestart: true, restart_delay: delay, max_restarts: 1_000_000, min_uptime: 100 };
    };
    const pm2Sleep = (name: string): Pm2StartOptions => ({ name, script: '/bin/sleep', args: '600', interpreter: 'none' });

    // -------------------------------------------------------------------------- 5a. idle RSS
    const idle = { holdfast: await rssMiB(hf.pid), keeper: await rssMiB(hf.helperPids()), pm2: await rssMiB(pm.pid) };
    const idlePrivate = { holdfast: await rssMiB(hf.pid, privateKiB), keeper: await rssMiB(hf.helperPids(), privateKiB), pm2: await rssMiB(pm.pid, privateKiB) };

    // ------------------------------------------------------------------- 1. spawn-to-running
    const spawnHf: number[] = [];
    const spawnPm: number[] = [];
    for (let i = 0; i < SPAWN_WARMUP + SPAWN_SAMPLES; i++) {
      let t0 = monoNs();
      const reply = await hf.call<JobReply>('Start', { name: 'spawn.service' });
      const hfUs = usSince(t0);
      if (reply.job.result !== 'done' || reply.job.activeState !== 'active') throw new Error(`holdfast Start: ${JSON.stringify(reply.job)}`);
      await hf.call('Stop', { name: 'spawn.service' });
      const name = `spawn-${i}`;
      t0 = monoNs();
      await pm.start(pm2Sleep(name));
      const pmUs = usSince(t0);
      await pm.delete(name);
      if (i >= SPAWN_WARMUP) {
        spawnHf.push(hfUs);
        spawnPm.push(pmUs);
      }
    }
    const spawnFloor =
      floor.path === undefined
        ? []
        : (await runFloor(floor.path, ['spawn', String(FLOOR_SPAWN_SAMPLES)]))
            .trim()
            .split('\n')
            .slice(SPAWN_WARMUP)
            .map((ns) => Number(ns) / 1000);
    const spawnRows = [
      floor.path === undefined ? floorSkipped : sampleRow('floor: posix_spawn /bin/sleep (C)', spawnFloor, 'µs'),
      sampleRow('holdfast: Start, Type=simple', spawnHf, 'µs', 'Varlink round trip included'),
      sampleRow("PM2: pm2.start(), interpreter 'none'", spawnPm, 'µs', 'RPC round trip included'),
    ];
    printTable('1. spawn-to-running (median µs, ratio to the floor)', spawnRows, { baseline: floor.path === undefined ? 1 : 0 });
    summary.push({ figure: 'spawn-to-running', holdfast: spawnRows[1]!.value, pm2: spawnRows[2]!.value, floor: spawnRows[0]!.value, unit: 'µs' });

    // ----------------------------------------------------------------- 2. crash-to-restarted
    const want = CRASH_WARMUP + CRASH_INTERVALS + 1;
    const hfCrash = async (unit: string, stampFile: string, count: number): Promise<number[]> => {
      rmSync(stampFile, { force: true });
      await hf!.call('Start', { name: unit });
      await waitForLines(stampFile, CRASH_WARMUP + count + 1);
      await hf!.call('Stop', { name: unit });
      return intervalsUs(readStamps(stampFile), count);
    };
    const pmCrash = async (name: string, stampFile: string, count: number): Promise<number[]> => {
      rmSync(stampFile, { force: true });
      await pm!.start(pm2Crash(name, stampFile, 0));
      await waitForLines(stampFile, CRASH_WARMUP + count + 1);
      await pm!.remove(name);
      return intervalsUs(readStamps(stampFile), count);
    };
    const processesIdle = processCount();
    const crashHf = await hfCrash('crash.service', file('holdfast-crash'), CRASH_INTERVALS);
    const crashPm = await pmCrash('crash', file('pm2-crash'), CRASH_INTERVALS);
    let crashFloor: number[] = [];
    if (floor.path !== undefined) {
      await runFloor(floor.path, ['loop', String(want), file('floor-crash')]);
      crashFloor = intervalsUs(readStamps(file('floor-crash')), CRASH_INTERVALS);
    }
    const crashRows = [
      floor.path === undefined ? floorSkipped : sampleRow('floor: posix_spawn + waitpid loop (C)', crashFloor, 'µs'),
      sampleRow('holdfast: Restart=always, RestartSec=0', crashHf, 'µs'),
      sampleRow('PM2: autorestart, restart_delay 0', crashPm, 'µs'),
    ];
    printTable(`2. crash-to-restarted: interval between consecutive starts (median µs, ratio to the floor; ${processesIdle} processes on the machine)`, crashRows, {
      baseline: floor.path === undefined ? 1 : 0,
    });
    summary.push({ figure: 'crash-to-restarted', holdfast: crashRows[1]!.value, pm2: crashRows[2]!.value, floor: crashRows[0]!.value, unit: 'µs' });

    // ------------------------------------------------------------- 3. exit-detection latency
    const exitHf: number[] = [];
    const exitHfState: number[] = [];
    const exitHfCoarse: number[] = [];
    {
      const stampFile = file('holdfast-exit');
      rmSync(stampFile, { force: true });
      let seen = 0;
      let last: Stamp | undefined;
      const sub = await hf.subscribe((event, at) => {
        if (event.unit !== 'exitwatch.service') return;
        if (event.type === 'message') {
          // The manager's note "main process PID exited with code 1": the first thing it emits on an exit.
          const match = /^main process (\d+) /.exec(event.text);
          if (match === null) return;
          const s = readStamps(stampFile).find((x) => x.pid === Number(match[1]));
          if (s === undefined) return;
          last = s;
          if (seen++ < EXIT_WARMUP) return;
          exitHf.push(latency(s, at));
          exitHfCoarse.push(event.timestamp - Number(s.realtimeNs / 1_000_000n));
        } else if (event.type === 'state' && event.subState === 'auto-restart' && last !== undefined) {
          if (seen > EXIT_WARMUP) exitHfState.push(latency(last, at));
          last = undefined;
        }
      });
      await hf.call('Start', { name: 'exitwatch.service' });
      const deadline = Date.now() + LOOP_DEADLINE_MS;
      while (exitHf.length < EXIT_SAMPLES && Date.now() < deadline) await sleep(20);
      await hf.call('Stop', { name: 'exitwatch.service' });
      await sub.close();
    }
    const exitPm: number[] = [];
    const exitPmCoarse: number[] = [];
    {
      const stampFile = file('pm2-exit');
      rmSync(stampFile, { force: true });
      const bus = await pm.bus();
      let seenLines = 0;
      let seen = 0;
      let active = true;
      bus.on('process:event', (packet) => {
        if (!active || packet.event !== 'exit' || packet.process?.name !== 'exitwatch') return;
        const at = monoNs();
        // PM2's exit event carries no PID; with restart_delay the newest line is the process that just exited.
        const stamps = readStamps(stampFile);
        if (stamps.length <= seenLines) return;
        seenLines = stamps.length;
        const s = stamps[stamps.length - 1]!;
        if (seen++ < EXIT_WARMUP) return;
        exitPm.push(latency(s, at));
        if (typeof packet.at === 'number') exitPmCoarse.push(packet.at - Number(s.realtimeNs / 1_000_000n));
      });
      await sleep(100);
      await pm.start(pm2Crash('exitwatch', stampFile, EXIT_GAP_MS, EXIT_AFTER_MS));
      const deadline = Date.now() + LOOP_DEADLINE_MS;
      while (exitPm.length < EXIT_SAMPLES && Date.now() < deadline) await sleep(20);
      active = false;
      await pm.remove('exitwatch');
    }
    let exitFloor: number[] = [];
    if (floor.path !== undefined) {
      const stampFile = file('floor-exit');
      const out = await runFloor(floor.path, ['exit', String(EXIT_WARMUP + EXIT_SAMPLES), stampFile, String(EXIT_AFTER_MS)]);
      const stamps = new Map(readStamps(stampFile).map((s) => [s.pid, s]));
      exitFloor = out
        .trim()
        .split('\n')
        .slice(EXIT_WARMUP)
        .flatMap((line) => {
          const [pid, mono] = line.split(' ');
          const s = stamps.get(Number(pid));
          return s === undefined ? [] : [latency(s, BigInt(mono!))];
        });
    }
    const exitRows = [
      floor.path === undefined ? floorSkipped : sampleRow('floor: waitpid() returns in the parent (C)', exitFloor, 'µs'),
      sampleRow('holdfast: Subscribe client gets the exit note', exitHf, 'µs'),
      sampleRow('holdfast: … gets the auto-restart state', exitHfState, 'µs'),
      sampleRow('PM2: launchBus client gets process:event exit', exitPm, 'µs'),
    ];
    printTable(`3. exit-detection latency: stamp just before exit (${EXIT_AFTER_MS} ms after start) → event in a client (median µs, ratio to the floor)`, exitRows, {
      baseline: floor.path === undefined ? 1 : 0,
    });
    printTable('   the same, read from the daemons\' own event timestamps (ms resolution: exit → daemon timestamp)', [
      sampleRow('holdfast: event.timestamp', exitHfCoarse, 'ms'),
      sampleRow('PM2: packet.at', exitPmCoarse, 'ms'),
    ]);
    summary.push({ figure: 'exit-detection', holdfast: exitRows[1]!.value, pm2: exitRows[3]!.value, floor: exitRows[0]!.value, unit: 'µs' });

    // --------------------------------------------- 4, 5b, 6. 100 services: start, RSS, list, stop
    pool = await hf.connections(MANY);
    const startHf: number[] = [];
    const startPm: number[] = [];
    const stopHf: number[] = [];
    const stopPm: number[] = [];
    const listHf: number[] = [];
    const listPm: number[] = [];
    const loaded = { holdfast: null as number | null, keeper: null as number | null, pm2: null as number | null };
    let crashLoadedHf: number[] = [];
    let crashLoadedPm: number[] = [];
    let processesLoaded = 0;
    const listPerRound = Math.ceil(LIST_CALLS / MANY_ROUNDS);
    for (let round = 0; round < MANY_ROUNDS; round++) {
      // holdfast: one Start per connection, all at once.
      let t0 = monoNs();
      const replies = await Promise.all(many.map((name, i) => pool[i]!.call<JobReply>('io.holdfast.Manager.Start', { name })));
      startHf.push(msSince(t0));
      const notDone = replies.filter((r) => r.job.result !== 'done' || r.job.activeState !== 'active');
      if (notDone.length > 0) throw new Error(`holdfast: ${notDone.length} of ${MANY} did not start: ${JSON.stringify(notDone[0])}`);
      if (round === 0) {
        loaded.holdfast = await rssMiB(hf.pid);
        loaded.keeper = await rssMiB(hf.helperPids());
        processesLoaded = processCount();
        crashLoadedHf = await hfCrash('crash-loaded.service', file('holdfast-crash-loaded'), CRASH_INTERVALS_UNDER_LOAD);
      }
      for (let k = 0; k < listPerRound && listHf.length < LIST_CALLS; k++) {
        t0 = monoNs();
        const { units: listed } = await hf.call<{ units: UnitStatus[] }>('List');
        listHf.push(msSince(t0));
        if (listed.filter((u) => u.activeState === 'active').length < MANY) throw new Error('holdfast List: fewer than 100 active');
      }
      t0 = monoNs();
      await Promise.all(many.map((name, i) => pool[i]!.call('io.holdfast.Manager.Stop', { name })));
      stopHf.push(msSince(t0));

      // PM2: one start() per app, all at once.
      t0 = monoNs();
      await Promise.all(many.map((name) => pm!.start(pm2Sleep(name))));
      startPm.push(msSince(t0));
      const online = (await pm.list()).filter((p) => p.pm2_env?.status === 'online').length;
      if (online < MANY) throw new Error(`PM2: ${online} of ${MANY} online`);
      if (round === 0) {
        loaded.pm2 = await rssMiB(pm.pid);
        crashLoadedPm = await pmCrash('crash-loaded', file('pm2-crash-loaded'), CRASH_INTERVALS_UNDER_LOAD);
      }
      for (let k = 0; k < listPerRound && listPm.length < LIST_CALLS; k++) {
        t0 = monoNs();
        await pm.list();
        listPm.push(msSince(t0));
      }
      t0 = monoNs();
      await pm.stop('all');
      stopPm.push(msSince(t0));
      await pm.delete('all');
      const left = await pm.list();
      if (left.length > 0) throw new Error(`PM2: ${left.length} apps left after delete('all')`);
    }
    const startRows = [sampleRow('holdfast: 100 parallel Start calls', startHf, 'ms', '100 connections'), sampleRow('PM2: 100 parallel pm2.start()', startPm, 'ms')];
    printTable(`4. start of ${MANY} services until all are running (median ms over ${MANY_ROUNDS} rounds, ratio to holdfast)`, startRows);
    const stopRows = [sampleRow('holdfast: 100 parallel Stop calls', stopHf, 'ms'), sampleRow("PM2: pm2.stop('all')", stopPm, 'ms')];
    printTable(`4b. stop of ${MANY} running services (median ms over ${MANY_ROUNDS} rounds, ratio to holdfast)`, stopRows);
    summary.push({ figure: `start ${MANY} services`, holdfast: startRows[0]!.value, pm2: startRows[1]!.value, floor: null, unit: 'ms' });
    summary.push({ figure: `stop ${MANY} services`, holdfast: stopRows[0]!.value, pm2: stopRows[1]!.value, floor: null, unit: 'ms' });

    const crashLoadedRows = [
      floor.path === undefined ? floorSkipped : { ...crashRows[0]!, note: 'from table 2' },
      sampleRow('holdfast, 100 services running', crashLoadedHf, 'µs'),
      sampleRow('PM2, 100 services running', crashLoadedPm, 'µs'),
    ];
    printTable(`2b. crash-to-restarted with ${MANY} other services running (median µs, ratio to the floor; ${processesLoaded} processes on the machine)`, crashLoadedRows, {
      baseline: floor.path === undefined ? 1 : 0,
    });
    summary.push({ figure: `crash-to-restarted, ${MANY} running`, holdfast: crashLoadedRows[1]!.value, pm2: crashLoadedRows[2]!.value, floor: crashLoadedRows[0]!.value, unit: 'µs' });

    const after = { holdfast: await rssMiB(hf.pid), keeper: await rssMiB(hf.helperPids()), pm2: await rssMiB(pm.pid) };
    const rssRow = (name: string, value: number | null): Row => (value === null ? { name, value: null, unit: 'MiB', note: 'no such process' } : { name, value, unit: 'MiB', samples: RSS_READS });
    const plus = (a: number | null, b: number | null): number | null => (a === null ? null : a + (b ?? 0));
    printTable('5. daemon RSS (VmRSS, median of 5 reads; ratio to the holdfast daemon idle)', [
      rssRow(`holdfast daemon, idle (${Object.keys(units).length} units loaded, none running)`, idle.holdfast),
      rssRow(`holdfast daemon, ${MANY} services running`, loaded.holdfast),
      rssRow('holdfast daemon, idle again after the run', after.holdfast),
      rssRow('holdfast keeper process, idle', idle.keeper),
      rssRow(`holdfast keeper process, ${MANY} services running`, loaded.keeper),
      rssRow('PM2 God daemon, idle (no apps)', idle.pm2),
      rssRow(`PM2 God daemon, ${MANY} services running`, loaded.pm2),
      rssRow('PM2 God daemon, idle again after the run', after.pm2),
    ]);
    printTable('5c. private memory, idle (USS: pages no other process shares, such as the heap; the Node binary is shared)', [
      rssRow('holdfast daemon', idlePrivate.holdfast),
      rssRow('holdfast keeper process', idlePrivate.keeper),
      rssRow('PM2 God daemon', idlePrivate.pm2),
    ]);
    summary.push({ figure: 'daemon RSS, idle', holdfast: idle.holdfast, pm2: idle.pm2, floor: null, unit: 'MiB' });
    summary.push({ figure: 'daemon + keeper RSS, idle', holdfast: plus(idle.holdfast, idle.keeper), pm2: idle.pm2, floor: null, unit: 'MiB' });
    summary.push({ figure: 'daemon + keeper private memory (USS), idle', holdfast: plus(idlePrivate.holdfast, idlePrivate.keeper), pm2: idlePrivate.pm2, floor: null, unit: 'MiB' });
    summary.push({ figure: `daemon RSS, ${MANY} running`, holdfast: loaded.holdfast, pm2: loaded.pm2, floor: null, unit: 'MiB' });
    summary.push({ figure: `daemon + keeper RSS, ${MANY} running`, holdfast: plus(loaded.holdfast, loaded.keeper), pm2: loaded.pm2, floor: null, unit: 'MiB' });

    const listRows = [sampleRow('holdfast: List', listHf, 'ms'), sampleRow('PM2: pm2.list()', listPm, 'ms')];
    printTable(`6. list round trip with ${MANY} services running (median ms, ratio to holdfast)`, listRows);
    summary.push({ figure: `list, ${MANY} running`, holdfast: listRows[0]!.value, pm2: listRows[1]!.value, floor: null, unit: 'ms' });

    // ---------------------------------------------------------------------------- summary
    const fmt = (v: number | null, unit: string): string => (v === null ? 'skipped' : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${unit}`);
    const ratio = (a: number | null, b: number | null): string => (a === null || b === null || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
    const width = Math.max(...summary.map((s) => s.figure.length));
    process.stdout.write(`\nSummary (medians; holdfast/floor and PM2/holdfast ratios)\n`);
    process.stdout.write(`  ${'figure'.padEnd(width)}  ${'holdfast'.padStart(11)}  ${'PM2'.padStart(11)}  ${'floor'.padStart(11)}  hf/floor  PM2/hf\n`);
    for (const s of summary) {
      process.stdout.write(
        `  ${s.figure.padEnd(width)}  ${fmt(s.holdfast, s.unit).padStart(11)}  ${fmt(s.pm2, s.unit).padStart(11)}  ${fmt(s.floor, s.unit).padStart(11)}  ${ratio(s.holdfast, s.floor).padStart(8)}  ${ratio(s.pm2, s.holdfast).padStart(6)}\n`,
      );
    }
    const crash = summary.find((s) => s.figure === 'crash-to-restarted')!;
    if (crash.holdfast !== null && crash.floor !== null) {
      const r = crash.holdfast / crash.floor;
      process.stdout.write(
        r <= 2
          ? `  crash-to-restarted: holdfast is within 2x of the floor (${r.toFixed(2)}x).\n`
          : `  crash-to-restarted: holdfast is NOT within 2x of the floor: ${r.toFixed(2)}x.\n`,
      );
    }
    process.stdout.write(`  load average at the end: ${loadAverage()}\n`);
  } finally {
    for (const client of pool) client.destroy();
    await pm?.kill().catch(() => undefined);
    await hf?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
