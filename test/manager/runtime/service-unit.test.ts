/**
 * The driver and the service machine together, on fake ports: a process table the test drives by
 * hand and a clock it advances. No real process, no sleep.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ServiceUnit } from '../../../src/manager/runtime/service-unit.js';
import type { JobResult } from '../../../src/manager/machines/service-protocol.js';
import type { UnitRecord } from '../../../src/manager/types.js';
import { FakeWorld, serviceConfig } from '../../helpers/fake-ports.js';
import type { Pidfd } from '../../../src/pidfd/index.js';

const SIGTERM = 15;
const SIGKILL = 9;
const SIGCONT = 18;
const SIGHUP = 1;

function unit(text: string, name = 'svc.service'): { world: FakeWorld; unit: ServiceUnit } {
  const world = new FakeWorld();
  return { world, unit: new ServiceUnit(serviceConfig(name, text), world) };
}

/** The outcome of a job promise if it settled, after letting queued callbacks run. */
async function settled(job: Promise<JobResult>): Promise<JobResult | 'pending'> {
  return Promise.race([job, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

/** A notify datagram as the notify server hands it over. */
function datagram(pid: number, text: string, uid = 1000): { assignments: [string, string][]; takeFds(): number[]; sender: { pid: number; uid: number } } {
  const assignments = text.split('\n').map((line): [string, string] => {
    const eq = line.indexOf('=');
    return [line.slice(0, eq), line.slice(eq + 1)];
  });
  return { assignments, takeFds: () => [], sender: { pid, uid } };
}

describe('ServiceUnit on fake ports: start, exit, restart', () => {
  it('Type=simple is active once spawned; an exit with 1 under Restart=on-failure restarts it after RestartSec=', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server --port 80\nRestart=on-failure\nRestartSec=5\n');
    const job = u.start();
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'active');
    assert.equal(u.subState, 'running');
    const first = world.table.last;
    assert.deepEqual(first.argv, ['/bin/server', '--port', '80']);
    assert.equal(first.kind, 'main');
    assert.equal(u.main?.pid, first.pid);
    assert.equal(u.invocationId, first.env?.invocationId);

    world.table.exit(first.pid, 1);
    assert.equal(u.subState, 'auto-restart');
    assert.equal(u.activeState, 'activating');
    assert.deepEqual(u.lastExit, { code: 1, signal: null });
    assert.equal(world.table.spawns.length, 1, 'no restart before RestartSec=');

    world.clock.advance(4999);
    assert.equal(world.table.spawns.length, 1);
    world.clock.advance(1);
    assert.equal(world.table.spawns.length, 2, 'restarted when RestartSec= ran out');
    assert.equal(u.subState, 'running');
    assert.equal(u.restarts, 1);
    assert.notEqual(world.table.last.env?.invocationId, first.env?.invocationId, 'a restart is a new invocation');
  });

  it('Type=oneshot runs its commands in turn and ends inactive with job done', async () => {
    const { world, unit: u } = unit('[Service]\nType=oneshot\nExecStart=/bin/one\nExecStart=/bin/two\n');
    const job = u.start();
    assert.equal(u.subState, 'start');
    world.table.exit(world.table.last.pid, 0);
    assert.deepEqual(world.table.last.argv, ['/bin/two']);
    world.table.exit(world.table.last.pid, 0);
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
    assert.equal(u.result, 'success');
  });

  it('a spawn that fails (exec) fails the start; a failed condition skips it', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/missing\n');
    world.table.failNextSpawn(203);
    assert.equal(await settled(u.start()), 'failed');
    assert.equal(u.activeState, 'failed');
    assert.equal(u.result, 'exit-code');

    const other = unit('[Unit]\nConditionPathExists=/nope\n[Service]\nExecStart=/bin/server\n');
    other.world.failedCondition = 'ConditionPathExists=/nope';
    assert.equal(await settled(other.unit.start()), 'skipped');
    assert.equal(other.unit.activeState, 'inactive');
    assert.equal(other.world.table.spawns.length, 0);
  });

  it('a missing EnvironmentFile= (a spawn refused with resources) fails the start with result resources', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server\n');
    world.table.failNextSpawn(0, 'resources', 'EnvironmentFile=/nope: no file matches');
    assert.equal(await settled(u.start()), 'failed');
    assert.equal(u.result, 'resources');
  });
});

describe('ServiceUnit on fake ports: stop and its escalation', () => {
  it('stop sends SIGTERM (and SIGCONT) to the main process and to the other members; SIGKILL after TimeoutStopSec=', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server\nTimeoutStopSec=10\n');
    await u.start();
    const main = world.table.last;
    const child = world.table.addMember(500);
    const job = u.stop();
    assert.equal(u.subState, 'stop-sigterm');
    assert.equal(u.activeState, 'deactivating');
    assert.deepEqual(main.signals.slice(0, 2), [SIGTERM, SIGCONT]);
    assert.ok(child.signals.includes(SIGTERM), 'KillMode=control-group signals the other members too');
    world.clock.advance(9999);
    assert.equal(main.signals.includes(SIGKILL), false, 'no SIGKILL before TimeoutStopSec=');
    world.clock.advance(1);
    assert.equal(u.subState, 'stop-sigkill');
    assert.ok(main.signals.includes(SIGKILL));
    assert.ok(child.signals.includes(SIGKILL));
    world.table.exit(child.pid, { signal: 'SIGKILL' });
    world.table.exit(main.pid, { signal: 'SIGKILL' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'failed');
    assert.equal(u.result, 'timeout');
    assert.equal(world.clock.pending, 0, 'no timer is left armed');
  });

  it('a main process that ends on SIGTERM stops the unit cleanly (inactive, success), with no SIGKILL', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server\nSendSIGHUP=yes\n');
    await u.start();
    const main = world.table.last;
    const job = u.stop();
    assert.ok(main.signals.includes(SIGHUP), 'SendSIGHUP=yes');
    world.table.exit(main.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
    assert.equal(u.result, 'success');
    assert.equal(main.signals.includes(SIGKILL), false);
    assert.equal(world.clock.pending, 0);
  });

  it('KillMode=process: the stop is done once the main process is gone, members are left alone', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/cron\nKillMode=process\n');
    await u.start();
    const main = world.table.last;
    const child = world.table.addMember(600);
    const job = u.stop();
    world.table.exit(main.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
    assert.deepEqual(child.signals, []);
  });

  it('ExecStop= runs first, with MAINPID= set, then the kill phase', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server\nExecStop=/bin/server-stop\n');
    await u.start();
    const main = world.table.last;
    const job = u.stop();
    const stopper = world.table.last;
    assert.deepEqual(stopper.argv, ['/bin/server-stop']);
    assert.equal(stopper.kind, 'stop');
    assert.equal(stopper.env?.mainPid, true);
    assert.equal(u.subState, 'stop');
    world.table.exit(stopper.pid, 0);
    assert.equal(u.subState, 'stop-sigterm');
    world.table.exit(main.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
  });
});

describe('ServiceUnit on fake ports: notify', () => {
  it('Type=notify is activating until READY=1 from the main process; STATUS= is kept', async () => {
    const { world, unit: u } = unit('[Service]\nType=notify\nExecStart=/bin/server\n');
    const job = u.start();
    const main = world.table.last;
    assert.equal(main.env?.notify, true, 'NOTIFY_SOCKET is asked for');
    assert.equal(await settled(job), 'pending');
    assert.equal(u.subState, 'start');
    u.handleNotify(datagram(main.pid, 'STATUS=warming up'), 'main');
    assert.equal(u.statusText, 'warming up');
    u.handleNotify(datagram(main.pid, 'READY=1'), 'main');
    assert.equal(await settled(job), 'done');
    assert.equal(u.subState, 'running');
    assert.ok(u.activeEnterTimestamp !== null && u.activeEnterTimestamp >= world.clock.wallBase);
  });

  it('no READY=1 within TimeoutStartSec= fails the start with result timeout', async () => {
    const { world, unit: u } = unit('[Service]\nType=notify\nExecStart=/bin/server\nTimeoutStartSec=3\n');
    const job = u.start();
    const main = world.table.last;
    world.clock.advance(3000);
    assert.ok(main.signals.includes(SIGTERM));
    world.table.exit(main.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'failed');
    assert.equal(u.result, 'timeout');
    assert.equal(u.activeState, 'failed');
  });

  it('MAINPID= names a new main process: the driver hands it to the machine, which adopts it', async () => {
    const { world, unit: u } = unit('[Service]\nType=notify\nExecStart=/bin/launcher\nNotifyAccess=all\n');
    const job = u.start();
    const launcher = world.table.last;
    const daemon = world.table.addMember(700);
    u.handleNotify(datagram(launcher.pid, `MAINPID=${daemon.pid}\nREADY=1`), 'main');
    assert.equal(await settled(job), 'done');
    assert.equal(u.main?.pid, daemon.pid);
    world.table.exit(daemon.pid, 3);
    assert.equal(u.activeState, 'failed');
    assert.deepEqual(u.lastExit, { code: 3, signal: null });
  });

  it('the watchdog kills a service that stops pinging, and a stale timer fire is dropped', async () => {
    const { world, unit: u } = unit('[Service]\nType=notify\nExecStart=/bin/server\nWatchdogSec=10\n');
    const job = u.start();
    const main = world.table.last;
    assert.equal(main.env?.watchdogUsec, 10_000_000);
    u.handleNotify(datagram(main.pid, 'READY=1'), 'main');
    await job;
    world.clock.advance(6000);
    u.handleNotify(datagram(main.pid, 'WATCHDOG=1'), 'main');
    world.clock.advance(6000);
    assert.equal(u.subState, 'running', 'the ping re-armed the watchdog');
    world.clock.advance(4000);
    assert.equal(u.result, 'watchdog');
    assert.ok(main.signals.includes(6), 'WatchdogSignal= (SIGABRT) by default');
  });
});

describe('ServiceUnit on fake ports: crash restore', () => {
  it('a running unit is picked up from its record with its main process and supervised on', async () => {
    const before = unit('[Service]\nExecStart=/bin/server\nRestart=always\nRestartSec=1\n');
    await before.unit.start();
    const recorded: UnitRecord = before.unit.record();
    assert.equal(recorded.subState, 'running');
    assert.equal(recorded.main?.pid, before.world.table.last.pid);

    const after = unit('[Service]\nExecStart=/bin/server\nRestart=always\nRestartSec=1\n');
    const main = after.world.table.add(recorded.main!.pid);
    after.unit.restore(recorded, fakePidfd(main.pid), undefined);
    assert.equal(after.unit.subState, 'running');
    assert.equal(after.unit.main?.pid, main.pid);
    assert.equal(after.unit.invocationId, recorded.invocationId);
    after.world.table.exit(main.pid, 0);
    assert.equal(after.unit.subState, 'auto-restart');
    after.world.clock.advance(1000);
    assert.equal(after.unit.subState, 'running');
    assert.equal(after.world.table.spawns.length, 1);
  });

  it('a main process that ended while no daemon watched is handled as if its exit had just been seen', async () => {
    const before = unit('[Service]\nExecStart=/bin/server\n');
    await before.unit.start();
    const recorded = before.unit.record();
    const after = unit('[Service]\nExecStart=/bin/server\n');
    const gone = after.world.table.add(recorded.main!.pid);
    gone.alive = false;
    after.unit.restore(recorded, fakePidfd(gone.pid, false), { code: 7, signal: null, coreDumped: false });
    assert.equal(after.unit.activeState, 'failed');
    assert.deepEqual(after.unit.lastExit, { code: 7, signal: null });
    assert.equal(after.unit.result, 'exit-code');
  });
});

/** Just enough of a Pidfd for restore(): the fake port holds it by PID. */
function fakePidfd(pid: number, alive = true): Pidfd {
  return { pid, isAlive: () => alive, close: () => {} } as unknown as Pidfd;
}
