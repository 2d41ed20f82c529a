/**
 * Symptoms of issue 9, each on a real daemon with real processes: what systemd does, and what the
 * old service machine got wrong (the watchdog of a first start, KillMode=process and mixed stops,
 * signals past 15 in SuccessExitStatus=, a start canceled by a stop).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Pidfd } from '../../src/index.js';
import type { LogRecord, UnitStatus } from '../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

/** holdfast/service as this checkout builds it, for unit scripts to import. */
const SERVICE_MODULE = fileURLToPath(new URL('../../src/service/index.js', import.meta.url));

/** A main process that forks a child ignoring SIGTERM (set in the child only), then becomes `sleep`. */
const FORKS_A_STUBBORN_CHILD = `/bin/sh -c '(trap "" TERM; exec sleep 600) & exec sleep 600'`;

/** The manager's own lines in a unit's log. */
async function managerLines(d: TestDaemon, name: string): Promise<string[]> {
  return (await d.call<{ records: LogRecord[] }>('Logs', { name, lines: 200 })).records.filter((r) => r.stream === 'manager').map((r) => r.message);
}

/** The unit's main process, through the pidfd id the daemon reports. */
function mainHandle(status: UnitStatus): Pidfd {
  assert.ok(status.mainProcess !== null, `${status.name} has a main process`);
  const { pid, pidfdId } = status.mainProcess;
  return pidfdId === undefined ? Pidfd.open(pid) : Pidfd.verify(pid, pidfdId);
}

/**
 * The unit's processes other than its main one, each held by a pidfd: read from the unit's cgroup,
 * or where the daemon has none, from the main process's children. A PID read from either is
 * checked after the open (still in the cgroup, or still the main process's child while the main
 * process lives), so a handle never points at a stranger.
 */
function otherProcesses(status: UnitStatus, main: Pidfd): Pidfd[] {
  const candidates =
    typeof status.cgroup === 'string'
      ? readFileSync(join(status.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)
      : readFileSync(`/proc/${main.pid}/task/${main.pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  const handles: Pidfd[] = [];
  for (const pid of candidates) {
    if (pid === main.pid) continue;
    let handle: Pidfd;
    try {
      handle = Pidfd.open(pid);
    } catch {
      continue; // gone meanwhile
    }
    let ours: boolean;
    try {
      ours = typeof status.cgroup === 'string' ? status.cgroup.endsWith(cgroupV2Path(pid)) : handle.info().ppid === main.pid && main.isAlive();
    } catch {
      ours = false;
    }
    if (ours && handle.isAlive()) handles.push(handle);
    else handle.close();
  }
  return handles;
}

/** A process's cgroup v2 path below the mount point, from /proc/PID/cgroup's `0::` line. */
function cgroupV2Path(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return line === undefined ? '\0none' : line.slice(3);
}

/** SIGKILLs (through its pidfd) and closes each process a test was left with. */
async function killLeftovers(handles: readonly Pidfd[]): Promise<void> {
  for (const handle of handles) {
    if (handle.isAlive()) handle.signal('SIGKILL');
    await handle.exited;
    handle.close();
  }
}

describe('issue 9 regressions on a real daemon', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('Type=notify + WatchdogSec=: the first start hands the main process WATCHDOG_USEC, so startWatchdog() pings and the unit outlives several watchdog periods', async () => {
    const script = join(d.dir, 'pinger.mjs');
    writeFileSync(
      script,
      `import { ready, startWatchdog } from ${JSON.stringify(SERVICE_MODULE)};
const stop = startWatchdog();
console.log('WATCHDOG_USEC=' + (process.env.WATCHDOG_USEC ?? 'unset') + ' period=' + stop.periodMs);
ready();
setInterval(() => {}, 1 << 30);
`,
    );
    const periodMs = 2000;
    d.unit('pinger.service', `[Service]\nType=notify\nExecStart=${process.execPath} ${script}\nWatchdogSec=${periodMs / 1000}s\n`);
    await d.call('DaemonReload');
    // The unit's first start on this daemon: the one the old core got wrong (a restart was fine).
    const job = (await d.call<{ job: { result: string } }>('Start', { name: 'pinger' })).job;
    assert.equal(job.result, 'done');
    const first = await unitStatus(d, 'pinger');
    using main = mainHandle(first);
    // Watch for three and a half periods: a unit that does not ping is killed after the first.
    for (let waited = 0; waited < 3.5 * periodMs; waited += 250) {
      await sleep(250);
      const now = await unitStatus(d, 'pinger');
      assert.equal(`${now.activeState} (${now.subState}) result ${now.result}`, 'active (running) result success', `after ${waited + 250} ms`);
      assert.equal(now.mainProcess?.pid, main.pid, 'the same main process');
    }
    assert.equal(main.isAlive(), true);
    const out = (await d.call<{ records: LogRecord[] }>('Logs', { name: 'pinger', lines: 50 })).records.map((r) => r.message);
    assert.ok(out.includes(`WATCHDOG_USEC=${periodMs * 1000} period=${periodMs / 2}`), out.join('\n'));
    await d.call('Stop', { name: 'pinger' });
  });

  it('KillMode=process: stop is done once the main process exited, without waiting TimeoutStopSec= for the processes it leaves', async () => {
    d.unit('keepchild.service', `[Service]\nKillMode=process\nTimeoutStopSec=60s\nExecStart=${FORKS_A_STUBBORN_CHILD}\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'keepchild' });
    const running = await unitStatus(d, 'keepchild');
    using main = mainHandle(running);
    const leftovers = await eventually(() => {
      const found = otherProcesses(running, main);
      if (found.length > 0) return found;
      for (const handle of found) handle.close();
      return undefined;
    }, 'the forked child');
    try {
      // Through the CLI: a call on the test's own connection would queue the status calls behind it.
      const stopped = d.cli(['stop', 'keepchild']);
      await main.exited;
      // systemd's stop job ends with the main process; the old core sat in stop-sigterm for TimeoutStopSec=.
      const settled = await eventually(async () => {
        const s = await unitStatus(d, 'keepchild');
        return s.activeState === 'inactive' || s.activeState === 'failed' ? s : undefined;
      }, 'the unit to be stopped while its child still runs', 100).catch((error: Error) => error);
      assert.ok(!(settled instanceof Error), `still ${(await unitStatus(d, 'keepchild')).subState} after the main process exited`);
      assert.equal(settled.activeState, 'inactive');
      assert.equal(settled.result, 'success');
      const stop = await stopped;
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(leftovers.every((h) => h.isAlive()), true, 'KillMode=process leaves the rest running');
    } finally {
      await killLeftovers(leftovers);
    }
  });

  it('KillMode=mixed: a main process that exits at once on SIGTERM leaves no "still running after TimeoutStopSec=" warning; the rest is killed and the result stays success', async () => {
    d.unit('mixed.service', `[Service]\nKillMode=mixed\nTimeoutStopSec=4s\nExecStart=${FORKS_A_STUBBORN_CHILD}\n`);
    await d.call('DaemonReload');
    await d.call('Start', { name: 'mixed' });
    const running = await unitStatus(d, 'mixed');
    using main = mainHandle(running);
    const children = await eventually(() => {
      const found = otherProcesses(running, main);
      return found.length > 0 ? found : undefined;
    }, 'the forked child');
    try {
      assert.equal((await d.call<{ job: { result: string } }>('Stop', { name: 'mixed' })).job.result, 'done');
      const s = await unitStatus(d, 'mixed');
      assert.equal(`${s.activeState} result ${s.result}`, 'inactive result success');
      const lines = await managerLines(d, 'mixed');
      assert.equal(lines.filter((l) => l.includes('still running after TimeoutStopSec=')).length, 0, lines.join('\n'));
      for (const child of children) await eventually(() => (child.isAlive() ? undefined : true), 'the child to be killed');
    } finally {
      await killLeftovers(children);
    }
  });

  it('SuccessExitStatus=SIGXCPU: a main process killed by SIGXCPU (signal 24, past the old 1–15 table) is a success: not failed, not restarted by Restart=on-failure', async () => {
    // $$$$ in a unit file is the shell's $$ (the unit file escapes $ as $$).
    d.unit(
      'xcpu.service',
      `[Service]\nExecStart=/bin/sh -c 'sleep 0.2; kill -s XCPU $$$$'\nSuccessExitStatus=SIGXCPU\nRestart=on-failure\nRestartSec=1s\nLimitCORE=0\nWorkingDirectory=${d.dir}\n`,
    );
    await d.call('DaemonReload');
    await d.call('Start', { name: 'xcpu' });
    const settled = await eventually(async () => {
      const s = await unitStatus(d, 'xcpu');
      return s.lastExit !== null && s.activeState !== 'active' && s.subState !== 'auto-restart' ? s : undefined;
    }, 'the main process to be gone');
    assert.equal(settled.lastExit?.signal, 'SIGXCPU', JSON.stringify(settled));
    assert.equal(`${settled.activeState} (${settled.subState}) result ${settled.result}`, 'inactive (dead) result success');
    assert.equal(settled.restarts, 0);
  });

  it('a start waiting for READY=1 and canceled by a stop exits non-zero, saying the job was canceled (systemctl: "Job for X canceled.")', async () => {
    d.unit('neverready.service', `[Service]\nType=notify\nTimeoutStartSec=60s\nExecStart=/bin/sleep 600\n`);
    await d.call('DaemonReload');
    const starting = d.cli(['start', 'neverready']);
    await eventually(async () => {
      const s = await unitStatus(d, 'neverready');
      return s.activeState === 'activating' && s.mainProcess !== null ? true : undefined;
    }, 'the start to wait for READY=1');
    const stop = await d.cli(['stop', 'neverready']);
    assert.equal(stop.code, 0, stop.stderr);
    const start = await starting;
    assert.notEqual(start.code, 0, `start exited ${start.code}: ${start.stdout}${start.stderr}`);
    assert.match(start.stderr, /neverready\.service canceled/);
    assert.equal((await unitStatus(d, 'neverready')).activeState, 'inactive');
  });
});
