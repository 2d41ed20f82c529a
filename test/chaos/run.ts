/**
 * The fault suite (`npm run chaos`): a real daemon under 50 crash-looping units and a few long
 * writers, hit for a bounded time by SIGKILLs of the daemon and its keeper, Varlink connection
 * floods, notify floods and (as root) a full disk, in an order drawn from a seed; then the checks
 * of checks.ts. Prints one line per check and `N passed, N failed`; exits 0 only if all passed.
 *
 * CHAOS_SEED (printed; fixed by default), CHAOS_SECONDS (75), CHAOS_UNITS (50 crash loopers).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from './faults.js';
import {
  checkAnsweredFloods,
  checkAnswersList,
  checkDaemonLived,
  checkKeeper,
  checkNoLineLost,
  checkNoProcessOutside,
  checkNoZombie,
  checkRss,
  checkSupervisedOnce,
  readTruth,
  type CheckResult,
  type TimelineMark,
} from './checks.js';
import { rssKiB } from '../../bench/manager-systems.js';
import { allProcesses, killAndWait, openConfirmed, sleep } from './procfs.js';
import { chaosUnits, lastNumbers } from './units.js';
import { seededRandom } from '../helpers/random.js';

const SEED = Number(process.env['CHAOS_SEED'] ?? 20261208) >>> 0;
const SECONDS = Number(process.env['CHAOS_SECONDS'] ?? 75);
const CRASH_LOOPERS = Number(process.env['CHAOS_UNITS'] ?? 50);
const LONG_WRITERS = 3;
/**
 * How long the first daemon runs its units before its RSS is read. A daemon grows by about a fifth
 * in its first 20 s under these units whatever happens (V8's heap and code warming up), so the
 * baseline is taken after that, and the last daemon is read no younger than the first was.
 */
const WARM_UP_MS = 20_000;
/** How long the last daemon is left alone after the last flood before its RSS is read. */
const SETTLE_MS = 8000;
const RSS_TOLERANCE = 0.2;
/** Beyond the faults' own time, how long the run may take in all before it is cut short. */
const RUN_SLACK_SECONDS = 100;
/** A clean stop of the last daemon (every unit stopped) that takes longer is a failure, and ended by SIGKILL. */
const STOP_TIMEOUT_MS = 30_000;
const TMPFS_SIZE = '64m';

function elapsed(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(1);
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The median of a few RSS samples over two seconds: one sample may catch a collection half done. */
async function settledRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssKiB(pid) ?? 0);
    await sleep(500);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

/** Mounts a tmpfs on `dir` as root, so that the disk can be filled; otherwise says why not. */
function mountTmpfs(dir: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: no tmpfs can be mounted, so the full disk is left out';
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  return mounted.status === 0 ? undefined : `mount failed (${mounted.stderr.trim()}), so the full disk is left out`;
}

type Phase = 'kill-daemon' | 'kill-keeper' | 'connection-flood' | 'notify-flood' | 'disk-full';

async function main(): Promise<number> {
  const started = Date.now();
  const next = seededRandom(SEED);
  say(`chaos: seed ${SEED} (CHAOS_SEED), ${SECONDS} s of faults (CHAOS_SECONDS), ${CRASH_LOOPERS} crash-looping units and ${LONG_WRITERS} long writers`);
  const truthDir = mkdtempSync(join(tmpdir(), 'holdfast-chaos-truth-'));
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-chaos-'));
  const noDiskFull = mountTmpfs(dir);
  if (noDiskFull !== undefined) say(`chaos: ${noDiskFull}`);
  const units = chaosUnits(truthDir, { crashLoopers: CRASH_LOOPERS, longWriters: LONG_WRITERS, restartSec: 0.5, linesPerRun: 5 });
  const cluster = new Cluster(dir);
  const results: CheckResult[] = [];
  const phases: Phase[] = ['kill-daemon', 'kill-keeper', 'connection-flood', 'notify-flood', ...(noDiskFull === undefined ? (['disk-full'] as const) : [])];
  const counts = new Map<Phase, number>();
  const timeline: TimelineMark[] = [];
  const mark = (label: string): void => {
    timeline.push({ label: `${label} at ${((Date.now() - started) / 1000).toFixed(1)} s`, marks: lastNumbers(truthDir, units.all) });
  };
  // However the daemon behaves, the run ends: past its time everything is killed through pidfds.
  const watchdog = setTimeout(() => {
    say(`FAIL the run ends in time: still running after ${elapsed(started)} s; everything is killed`);
    void sweep(cluster, dir, truthDir).finally(() => {
      if (noDiskFull === undefined) spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
      rmSync(truthDir, { recursive: true, force: true });
      const passed = results.filter((r) => r.ok).length;
      say(`${passed} passed, ${results.length - passed + 1} failed`);
      process.exit(1);
    });
  }, (SECONDS + RUN_SLACK_SECONDS) * 1000).unref();
  let keepEvidence: string | undefined;
  let firstRss = 0;
  let lastRss = 0;
  try {
    mark('start');
    await cluster.start(units.files);
    for (const unit of units.all) {
      if ((await cluster.callWithin('Start', { name: unit, noBlock: true }, 10_000)) === undefined) throw new Error(`the daemon did not take the start of ${unit}`);
    }
    await sleep(WARM_UP_MS);
    const baselineAge = Date.now() - cluster.startedAt;
    firstRss = await settledRss(cluster.daemonHandle.pid);
    say(`chaos: daemon ${cluster.daemonHandle.pid} up with ${units.all.length} units, RSS ${firstRss} KiB at ${(baselineAge / 1000).toFixed(1)} s of age`);

    const deadline = Date.now() + SECONDS * 1000;
    while (Date.now() < deadline) {
      await cluster.ensureRunning();
      const phase = phases[Math.floor(next() * phases.length)]!;
      counts.set(phase, (counts.get(phase) ?? 0) + 1);
      say(`chaos: ${elapsed(started)} s ${phase}`);
      mark(phase);
      if (phase === 'kill-daemon') await cluster.killDaemon();
      else if (phase === 'kill-keeper') await cluster.killKeeper();
      else if (phase === 'connection-flood') await cluster.connectionFlood(200 + Math.floor(next() * 200), 1000);
      else if (phase === 'notify-flood') await cluster.notifyFlood(20_000, 2);
      else await cluster.diskFull(1000 + Math.floor(next() * 3000));
      await sleep(500 + Math.floor(next() * 2500));
    }

    // The end is the same every run: the keeper is killed while the daemon runs, both floods come,
    // and the daemon is left alone as long as at the start before its memory is read.
    await cluster.ensureRunning();
    say('chaos: last round: kill-keeper, connection-flood, notify-flood; settling');
    mark('last round');
    await cluster.killKeeper();
    await cluster.connectionFlood(300, 1000);
    await cluster.notifyFlood(20_000, 2);
    await sleep(Math.max(SETTLE_MS, baselineAge - (Date.now() - cluster.startedAt)));
    lastRss = await settledRss(cluster.daemonHandle.pid);
    say(`chaos: last daemon ${cluster.daemonHandle.pid}, RSS ${lastRss} KiB at ${((Date.now() - cluster.startedAt) / 1000).toFixed(1)} s of age`);

    // Lines recorded now must be stored a few seconds later; those written meanwhile are not judged.
    say(`chaos: ${elapsed(started)} s checks`);
    const truth = readTruth(truthDir, units);
    await sleep(3000);
    results.push(checkDaemonLived(cluster));
    results.push(await checkAnswersList(cluster, units));
    results.push(await checkSupervisedOnce(cluster, units));
    results.push(await checkNoProcessOutside(cluster, units));
    results.push(await checkNoZombie(cluster));
    const lines = checkNoLineLost(cluster, units, truth, timeline);
    results.push(lines.result);
    results.push(checkKeeper(cluster));
    results.push(checkAnsweredFloods(cluster));
    results.push(checkRss(firstRss, lastRss, RSS_TOLERANCE));
    if (results.some((r) => !r.ok)) keepEvidence = keep(cluster, truthDir);

    const f = cluster.figures;
    const noUnitLines = cluster.stderrs.reduce((sum, stderr) => sum + (stderr().match(/belongs to no unit/g)?.length ?? 0), 0);
    say(`chaos: phases ${[...counts].map(([p, n]) => `${p} ${n}`).join(', ')}`);
    say(`chaos: ${f.daemonKills} daemon kills, ${f.keeperKills} keeper kills (${f.keeperMissing} times no keeper to kill), ${f.daemonStarts} daemon starts`);
    say(`chaos: ${f.connectionFloods} connection floods (${f.connectionsOpened} connections, ${f.connectionsRefused} refused), ${f.notifyFloods} notify floods (${f.notifySent} datagrams; ${noUnitLines} "belongs to no unit" lines in the daemon's log)`);
    say(`chaos: ${f.diskFulls} full disks (${(f.diskFullBytes / 2 ** 20).toFixed(1)} MiB of filler)`);
    say(`chaos: lines: ${lines.figures.written} written, ${lines.figures.lost} missing, ${lines.figures.droppedBytes} bytes and ${lines.figures.countedInDaemonLog} lines counted as dropped (${lines.figures.suppressedWarnings} warnings suppressed), ${lines.figures.sigpipes} SIGPIPE deaths noted`);
    if (lines.lostByPhase.size > 0) say(`chaos: lines missing, by the step during which they were written: ${[...lines.lostByPhase].map(([p, n]) => `${p}: ${n}`).join('; ')}`);
    const noSpace = cluster.stderrs.reduce((sum, stderr) => sum + (stderr().match(/no space left|ENOSPC/gi)?.length ?? 0), 0);
    say(`chaos: ${noSpace} daemon log lines about a full disk`);
    say(`chaos: RSS ${firstRss} KiB -> ${lastRss} KiB`);
  } catch (error) {
    results.push({ name: 'the run completes', ok: false, detail: (error as Error).stack ?? String(error) });
  } finally {
    clearTimeout(watchdog);
    say(`chaos: ${elapsed(started)} s stop`);
    results.push(await stopEverything(cluster, dir, truthDir, { mounted: noDiskFull === undefined, keepTruth: keepEvidence !== undefined }));
    if (keepEvidence !== undefined) say(`chaos: kept for inspection: ${keepEvidence}`);
  }

  for (const r of results) say(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.detail}`);
  const failed = results.filter((r) => !r.ok).length;
  say(`chaos: ${((Date.now() - started) / 1000).toFixed(0)} s in all, seed ${SEED}`);
  say(`${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

/** After a failed check: the stored logs and every daemon's stderr go beside the truth files, which stay. */
function keep(cluster: Cluster, truthDir: string): string {
  cpSync(join(cluster.dir, 'state', 'logs'), join(truthDir, 'logs'), { recursive: true });
  cluster.stderrs.forEach((stderr, i) => writeFileSync(join(truthDir, `daemon-${i + 1}.stderr`), stderr()));
  return truthDir;
}

/**
 * Stops the daemon cleanly and checks that nothing the suite started, or had started, survives:
 * daemons and flooders (held by pidfd since their start), unit scripts and keepers (found by
 * command line). Survivors are killed through a pidfd and the check fails.
 */
async function stopEverything(cluster: Cluster, dir: string, truthDir: string, options: { mounted: boolean; keepTruth: boolean }): Promise<CheckResult> {
  const name = 'the daemon stops cleanly, and nothing of the suite survives it';
  const survivors: string[] = [];
  try {
    const slow = cluster.daemon === undefined ? undefined : await cluster.stop(STOP_TIMEOUT_MS);
    if (slow !== undefined) survivors.push(slow);
  } catch (error) {
    survivors.push(`the stop failed: ${(error as Error).message}`);
  }
  const ours = oursIn(dir, truthDir);
  for (let attempt = 0; attempt < 25; attempt++) {
    const left = allProcesses().filter((p) => p.state !== 'Z' && p.pid !== process.pid && ours(p.argv));
    if (left.length === 0 && cluster.handles.every((h) => h.closed || !h.isAlive())) break;
    await sleep(200);
  }
  survivors.push(...(await sweep(cluster, dir, truthDir)));
  if (options.mounted) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  if (!options.keepTruth) rmSync(truthDir, { recursive: true, force: true });
  return { name, ok: survivors.length === 0, detail: survivors.length === 0 ? 'every process ended' : `left running, then killed: ${survivors.slice(0, 6).join('; ')}` };
}

/** Whether a command line names the suite's directories: its daemons, keepers, flooders' targets and unit scripts. */
function oursIn(dir: string, truthDir: string): (argv: string[]) => boolean {
  return (argv) => argv.some((part) => part.startsWith(dir) || part.startsWith(truthDir));
}

/** Kills, through pidfds, every process of the suite still running; says which there were. */
async function sweep(cluster: Cluster, dir: string, truthDir: string): Promise<string[]> {
  const survivors: string[] = [];
  const ours = oursIn(dir, truthDir);
  for (const seen of allProcesses()) {
    if (seen.state === 'Z' || seen.pid === process.pid || !ours(seen.argv)) continue;
    const handle = openConfirmed(seen, (now) => ours(now.argv));
    if (handle === undefined) continue;
    survivors.push(`PID ${seen.pid} (${seen.argv.slice(0, 4).join(' ')})`);
    await killAndWait(handle);
    handle.close();
  }
  for (const handle of cluster.handles) {
    if (handle.closed) continue;
    if (handle.isAlive()) {
      survivors.push(`${handle}`);
      await killAndWait(handle);
    }
    handle.close();
  }
  return survivors;
}

process.exitCode = await main();
