/**
 * What must hold after the faults, once the last daemon has settled: each check is a name, a
 * verdict and the evidence.
 */
import { join } from 'node:path';
import { Pidfd } from '../../src/pidfd/index.js';
import { readSlots } from '../../src/manager/state-slots.js';
import type { DaemonState, UnitStatus } from '../../src/manager/types.js';
import type { Cluster } from './faults.js';
import { allProcesses, childrenOf, openConfirmed, sleep, type ProcessSnapshot } from './procfs.js';
import { lineBytes, storedLog, truthOf, unitOfArgv, type ChaosUnits } from './units.js';

/** One verdict. */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** The daemon answers `List` and lists every unit of the suite exactly once. */
export async function checkAnswersList(cluster: Cluster, units: ChaosUnits): Promise<CheckResult> {
  const name = 'the daemon answers list, naming every unit once';
  const reply = await cluster.callWithin<{ units: UnitStatus[] }>('List', {}, 15_000);
  if (reply === undefined) return { name, ok: false, detail: 'no answer within 15 s' };
  const counts = new Map<string, number>();
  for (const unit of reply.units) counts.set(unit.name, (counts.get(unit.name) ?? 0) + 1);
  const wrong = units.all.filter((u) => counts.get(u) !== 1);
  return { name, ok: wrong.length === 0, detail: wrong.length === 0 ? `${reply.units.length} units listed` : `listed other than once: ${wrong.join(', ')}` };
}

/**
 * Every unit is supervised exactly once: it is not failed or inactive, no two units name the same
 * main process, a long writer's main process runs and is its own, and no unit has two live
 * processes of its script (one re-adopted and one started again).
 */
export async function checkSupervisedOnce(cluster: Cluster, units: ChaosUnits): Promise<CheckResult> {
  const name = 'every unit is supervised exactly once';
  const problems: string[] = [];
  const reply = await cluster.callWithin<{ units: UnitStatus[] }>('List', {}, 15_000);
  if (reply === undefined) return { name, ok: false, detail: 'no answer to List' };
  const byName = new Map(reply.units.map((u) => [u.name, u]));
  const mains = new Map<number, string>();
  for (const unit of units.all) {
    const status = byName.get(unit);
    if (status === undefined) continue;
    if (status.activeState === 'failed' || status.activeState === 'inactive') problems.push(`${unit} is ${status.activeState} (${status.result})`);
    const main = status.mainProcess;
    if (main !== null) {
      const other = mains.get(main.pid);
      if (other !== undefined) problems.push(`${unit} and ${other} both name PID ${main.pid} as main process`);
      mains.set(main.pid, unit);
    }
  }
  // The state record a next daemon would start from names each unit once, and no main process twice.
  const record = readSlots<DaemonState>(join(cluster.dir, 'state', 'state'));
  if (record === undefined) problems.push('no valid state record');
  else {
    const recorded = new Map<string, number>();
    const recordedMains = new Map<string, string>();
    for (const entry of record.units) {
      recorded.set(entry.name, (recorded.get(entry.name) ?? 0) + 1);
      if (entry.main === null) continue;
      const key = `${entry.main.pid}:${entry.main.pidfdId ?? ''}`;
      const other = recordedMains.get(key);
      if (other !== undefined) problems.push(`the state record names PID ${entry.main.pid} as main process of ${other} and ${entry.name}`);
      recordedMains.set(key, entry.name);
    }
    const wrong = units.all.filter((u) => recorded.get(u) !== 1);
    if (wrong.length > 0) problems.push(`the state record names other than once: ${wrong.join(', ')}`);
  }
  for (const unit of units.longWriters) {
    const problem = await longWriterProblem(cluster, unit, units.script);
    if (problem !== undefined) problems.push(problem);
  }
  // Two live copies of one unit's script, seen in three samples in a row, mean a duplicate.
  let duplicates: string[] = [];
  for (let sample = 0; sample < 3; sample++) {
    const seen = scriptsByUnit(units.script);
    const now = [...seen].filter(([, list]) => list.length > 1).map(([unit, list]) => `${unit}: PIDs ${list.map((p) => p.pid).join(', ')}`);
    duplicates = sample === 0 ? now : duplicates.filter((d) => now.includes(d));
    if (duplicates.length === 0) break;
    await sleep(300);
  }
  problems.push(...duplicates.map((d) => `two live processes of ${d}`));
  return { name, ok: problems.length === 0, detail: problems.length === 0 ? `${units.all.length} units, ${mains.size} main processes, all distinct` : problems.slice(0, 8).join('; ') };
}

async function longWriterProblem(cluster: Cluster, unit: string, script: string): Promise<string | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const reply = await cluster.callWithin<{ unit: UnitStatus }>('Status', { name: unit }, 10_000);
    const main = reply?.unit.mainProcess ?? null;
    if (reply !== undefined && main !== null && reply.unit.activeState === 'active') {
      try {
        using handle = main.pidfdId === undefined ? Pidfd.open(main.pid) : Pidfd.verify(main.pid, main.pidfdId);
        const seen = allProcesses().find((p) => p.pid === handle.pid);
        if (handle.isAlive() && seen !== undefined && unitOfArgv(seen.argv, script) === unit) return undefined;
      } catch {
        // Gone or recycled: a restart may be under way; ask again.
      }
    }
    await sleep(1000);
  }
  return `${unit} (a long writer) has no live main process of its own`;
}

/** The live processes of the suite's unit scripts by unit; a fork of a script (before it runs `sleep`) counts with its parent. */
function scriptsByUnit(script: string): Map<string, ProcessSnapshot[]> {
  const scripts = allProcesses().filter((p) => p.state !== 'Z' && unitOfArgv(p.argv, script) !== undefined);
  const pids = new Set(scripts.map((p) => p.pid));
  const out = new Map<string, ProcessSnapshot[]>();
  for (const process of scripts) {
    if (pids.has(process.ppid)) continue;
    const unit = unitOfArgv(process.argv, script)!;
    out.set(unit, [...(out.get(unit) ?? []), process]);
  }
  return out;
}

/** Every live process of a unit script belongs to its unit, as the daemon answers `status PID` (UnitByProcess, verified by pidfd id). */
export async function checkNoProcessOutside(cluster: Cluster, units: ChaosUnits): Promise<CheckResult> {
  const name = 'no process is outside a unit';
  const problems: string[] = [];
  let asked = 0;
  const askedAbout = new Set<string>();
  // Crash loopers live a few milliseconds per run: ten looks, each asked about at once, catch some of them too.
  for (let sample = 0; sample < 10; sample++) {
    const handles: { handle: Pidfd; unit: string }[] = [];
    for (const process of [...scriptsByUnit(units.script).values()].flat()) {
      const key = `${process.pid}:${process.startTicks}`;
      if (askedAbout.has(key)) continue;
      const unit = unitOfArgv(process.argv, units.script)!;
      const handle = openConfirmed(process, (now) => unitOfArgv(now.argv, units.script) === unit);
      if (handle === undefined) continue;
      askedAbout.add(key);
      handles.push({ handle, unit });
    }
    await Promise.all(
      handles.map(async ({ handle, unit }) => {
        try {
          const process = handle.id === undefined ? { pid: handle.pid } : { pid: handle.pid, pidfdId: Number(handle.id) };
          const reply = await cluster.callWithin<{ unit: string }>('UnitByProcess', { process }, 10_000);
          if (!handle.isAlive()) return;
          asked++;
          if (reply === undefined) problems.push(`PID ${handle.pid} (${unit}) belongs to no unit`);
          else if (reply.unit !== unit) problems.push(`PID ${handle.pid} (${unit}) is in ${reply.unit}`);
        } finally {
          handle.close();
        }
      }),
    );
    await sleep(100);
  }
  return { name, ok: problems.length === 0, detail: problems.length === 0 ? `${asked} live unit processes, each in its own unit` : problems.slice(0, 8).join('; ') };
}

/** No child of the daemon stays a zombie: one seen in every sample over a second is one nobody reaps. */
export async function checkNoZombie(cluster: Cluster): Promise<CheckResult> {
  const name = 'no zombie among the daemon’s children';
  const daemonPid = cluster.daemonHandle.pid;
  let zombies: string[] | undefined;
  for (let sample = 0; sample < 5; sample++) {
    const now = childrenOf(daemonPid)
      .filter((p) => p.state === 'Z')
      .map((p) => `${p.pid}:${p.startTicks}:${p.argv.join(' ') || '(defunct)'}`);
    zombies = zombies === undefined ? now : zombies.filter((z) => now.includes(z));
    await sleep(250);
  }
  return { name, ok: zombies!.length === 0, detail: zombies!.length === 0 ? 'none' : zombies!.join('; ') };
}

/** What the line check found, for the figures. */
export interface LineFigures {
  written: number;
  stored: number;
  lost: number;
  droppedBytes: number;
  sigpipes: number;
  /** Lines the daemon's log says it could not store. */
  countedInDaemonLog: number;
  /** Drop warnings the daemon's rate limit left out (each with its count). */
  suppressedWarnings: number;
}

/**
 * What the daemons' own logs say was dropped, per unit: bytes a capture dropped (`N bytes of output
 * dropped: …`, said when the drop ends) and records the store could not write (`writing failed, N
 * line(s) lost`). The same drop is also in the unit's log when that could be written, so the suite
 * takes the larger of the two byte counts, never their sum.
 */
export function droppedInDaemonLogs(stderrs: string[]): Map<string, { bytes: number; lines: number; suppressed: number }> {
  const out = new Map<string, { bytes: number; lines: number; suppressed: number }>();
  const entry = (unit: string) => out.get(unit) ?? (out.set(unit, { bytes: 0, lines: 0, suppressed: 0 }), out.get(unit)!);
  for (const text of stderrs) {
    for (const match of text.matchAll(/logs: (\S+): (\d+) bytes of output dropped:/g)) entry(match[1]!).bytes += Number(match[2]);
    for (const match of text.matchAll(/logs: (\S+): writing failed, (\d+) line\(s\) lost/g)) entry(match[1]!).lines += Number(match[2]);
    for (const match of text.matchAll(/logs: suppressed (\d+) more similar log lines/g)) entry('*').suppressed += Number(match[1]);
  }
  return out;
}

/**
 * No line is lost that was not counted as dropped: every number a writer recorded (as of
 * `truth`, read a few seconds before the logs) is in its unit's stored log, or counted: the
 * bytes the unit's log or the daemon's log says were dropped cover the missing lines, with the
 * lines the daemon's log says it could not write.
 */
export function checkNoLineLost(cluster: Cluster, units: ChaosUnits, truth: Map<string, number[]>, timeline: TimelineMark[]): { result: CheckResult; figures: LineFigures; lostByPhase: Map<string, number> } {
  const name = 'no line lost that was not counted as dropped';
  const logsDir = join(cluster.dir, 'state', 'logs');
  const figures: LineFigures = { written: 0, stored: 0, lost: 0, droppedBytes: 0, sigpipes: 0, countedInDaemonLog: 0, suppressedWarnings: 0 };
  const daemonCounts = droppedInDaemonLogs(cluster.stderrs.map((stderr) => stderr()));
  figures.suppressedWarnings = daemonCounts.get('*')?.suppressed ?? 0;
  const problems: string[] = [];
  let uncounted = 0;
  const lostByPhase = new Map<string, number>();
  for (const unit of units.all) {
    const written = truth.get(unit) ?? [];
    const log = storedLog(logsDir, unit);
    const daemon = daemonCounts.get(unit) ?? { bytes: 0, lines: 0, suppressed: 0 };
    const missing = [...new Set(written)].filter((n) => !log.numbers.has(n)).sort((a, b) => a - b);
    figures.written += written.length;
    figures.stored += log.numbers.size;
    figures.lost += missing.length;
    figures.droppedBytes += Math.max(log.droppedBytes, daemon.bytes);
    figures.countedInDaemonLog += daemon.lines;
    figures.sigpipes += log.sigpipes;
    for (const n of missing) {
      const phase = phaseOf(timeline, unit, n);
      lostByPhase.set(phase, (lostByPhase.get(phase) ?? 0) + 1);
    }
    // Missing lines are covered first by the lines said lost, then by the dropped bytes.
    let bytes = Math.max(log.droppedBytes, daemon.bytes);
    const notCovered = missing.slice(daemon.lines).filter((n) => {
      bytes -= lineBytes(unit, n);
      return bytes < 0;
    });
    if (notCovered.length > 0) {
      uncounted += notCovered.length;
      problems.push(`${unit}: ${missing.length} lines missing (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}), ${Math.max(log.droppedBytes, daemon.bytes)} bytes and ${daemon.lines} lines counted as dropped`);
    }
  }
  const detail =
    problems.length === 0
      ? `${figures.written} lines written, ${figures.lost} missing, all counted as dropped`
      : `${uncounted} lines lost uncounted in ${problems.length} units (${figures.suppressedWarnings} of the daemon's drop warnings were suppressed by its rate limit): ${problems.slice(0, 3).join('; ')}`;
  return { result: { name, ok: problems.length === 0, detail }, figures, lostByPhase };
}

/** A point of the run: what was about to happen, when, and the last number each unit had recorded then. */
export interface TimelineMark {
  label: string;
  marks: Map<string, number>;
}

/** The step of the run during which a unit wrote line `n`: the last mark taken before it. */
function phaseOf(timeline: TimelineMark[], unit: string, n: number): string {
  let label = 'before the first mark';
  for (const mark of timeline) {
    if ((mark.marks.get(unit) ?? 0) < n) label = mark.label;
    else break;
  }
  return label;
}

/** The truth files as they stand now. */
export function readTruth(truthDir: string, units: ChaosUnits): Map<string, number[]> {
  return new Map(units.all.map((unit) => [unit, truthOf(truthDir, unit)]));
}

/** The daemon's RSS is back within `tolerance` of the first daemon's, measured at the same point. */
export function checkRss(firstKiB: number, lastKiB: number, tolerance: number): CheckResult {
  const change = (lastKiB - firstKiB) / firstKiB;
  return {
    name: `the daemon’s RSS is within ${Math.round(tolerance * 100)} % of where it started`,
    ok: Math.abs(change) <= tolerance,
    detail: `${firstKiB} KiB at the start, ${lastKiB} KiB at the end (${change >= 0 ? '+' : ''}${(change * 100).toFixed(1)} %)`,
  };
}

/** The daemon holds a live keeper, also after its keeper was killed while it ran. */
export function checkKeeper(cluster: Cluster): CheckResult {
  const pid = cluster.keeperPid();
  return {
    name: 'the daemon has a keeper (a killed keeper is replaced)',
    ok: pid !== undefined,
    detail: pid === undefined ? `daemon ${cluster.daemonHandle.pid} has no keeper child` : `keeper ${pid}`,
  };
}

/** The daemon ended only when the suite killed it, and every start listened. */
export function checkDaemonLived(cluster: Cluster): CheckResult {
  const { unplannedExits, failedStarts } = cluster.figures;
  const problems = [...unplannedExits, ...failedStarts.map((s) => `a start never listened: ${s}`)];
  return {
    name: 'the daemon ended only when killed, and every start listened',
    ok: problems.length === 0,
    detail: problems.length === 0 ? `${cluster.figures.daemonStarts} starts` : problems.slice(0, 4).join('; '),
  };
}

/** The daemon answered right after every flood. */
export function checkAnsweredFloods(cluster: Cluster): CheckResult {
  const { unansweredAfterFlood, connectionFloods, notifyFloods } = cluster.figures;
  return {
    name: 'the daemon answers right after every flood',
    ok: unansweredAfterFlood === 0,
    detail: `${unansweredAfterFlood} of ${connectionFloods + notifyFloods} floods left it without an answer for 10 s`,
  };
}
