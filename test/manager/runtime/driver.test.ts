/**
 * What the driver itself owes the machine, on fake ports: answers in order, stale timers dropped,
 * PIDFile= candidates adopted or let go, jobs joined, restores with a control process, scopes.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ServiceUnit } from '../../../src/manager/runtime/service-unit.js';
import type { JobResult } from '../../../src/manager/machines/service-protocol.js';
import type { Pidfd } from '../../../src/pidfd/index.js';
import { FakeWorld, serviceConfig } from '../../helpers/fake-ports.js';

const SIGTERM = 15;

function unit(text: string, name = 'svc.service'): { world: FakeWorld; unit: ServiceUnit } {
  const world = new FakeWorld();
  return { world, unit: new ServiceUnit(serviceConfig(name, text), world) };
}

async function settled(job: Promise<JobResult>): Promise<JobResult | 'pending'> {
  return Promise.race([job, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

function fakePidfd(pid: number, alive = true): Pidfd {
  return { pid, isAlive: () => alive, close: () => {} } as unknown as Pidfd;
}

describe('the driver on fake ports', () => {
  it('a stop during the restart delay cancels the restart timer: advancing the clock spawns nothing', async () => {
    const { world, unit: u } = unit('[Service]\nExecStart=/bin/server\nRestart=always\nRestartSec=10\n');
    await u.start();
    world.table.exit(world.table.last.pid, 0);
    assert.equal(u.subState, 'auto-restart');
    assert.equal(await settled(u.stop()), 'done');
    assert.equal(u.activeState, 'inactive');
    world.clock.advance(60_000);
    assert.equal(world.table.spawns.length, 1, 'the cancelled restart never fired');
    assert.equal(world.clock.pending, 0);
  });

  it('a second start during a start joins it: both resolve with the same result, one process is spawned', async () => {
    const { world, unit: u } = unit('[Service]\nType=notify\nExecStart=/bin/server\n');
    const first = u.start();
    const second = u.start();
    assert.equal(world.table.spawns.length, 1);
    u.handleNotify({ assignments: [['READY', '1']], takeFds: () => [], sender: { pid: world.table.last.pid, uid: 0 } }, 'main');
    assert.deepEqual(await Promise.all([first, second]), ['done', 'done']);
  });

  it('every spawn carries the invocation id of its start, and ExecStartPre= runs before ExecStart= in order', async () => {
    const { world, unit: u } = unit('[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/server\n');
    const job = u.start();
    assert.equal(u.subState, 'start-pre');
    const pre = world.table.last;
    assert.equal(pre.kind, 'start-pre');
    assert.equal(pre.env?.mainPid, false, 'no MAINPID= before there is a main process');
    world.table.exit(pre.pid, 0);
    assert.equal(await settled(job), 'done');
    assert.equal(world.table.last.kind, 'main');
    assert.equal(world.table.last.env?.invocationId, pre.env?.invocationId);
    assert.equal(pre.released, 1, 'the ended control process was let go');
  });

  it('Type=forking: the process PIDFile= names becomes the main process; its exit ends the unit', async () => {
    const { world, unit: u } = unit('[Service]\nType=forking\nPIDFile=/run/d.pid\nExecStart=/bin/daemonize\n');
    const job = u.start();
    const launcher = world.table.last;
    const daemon = world.table.addMember(800);
    world.table.exit(launcher.pid, 0);
    assert.equal(await settled(job), 'pending', 'the PID file is not there yet');
    world.table.pidFiles.set('/run/d.pid', daemon.pid);
    world.clock.advance(20);
    assert.equal(await settled(job), 'done');
    assert.equal(u.main?.pid, daemon.pid);
    world.table.exit(daemon.pid, { signal: 'SIGKILL' });
    assert.equal(u.activeState, 'failed');
    assert.equal(u.result, 'signal');
  });

  it('a PID file that never appears fails the start with result protocol', async () => {
    const { world, unit: u } = unit('[Service]\nType=forking\nPIDFile=/run/none.pid\nExecStart=/bin/daemonize\nTimeoutStartSec=2\n');
    const job = u.start();
    world.table.exit(world.table.last.pid, 0);
    world.clock.advance(2000);
    assert.equal(await settled(job), 'failed');
    assert.equal(u.result, 'protocol');
  });

  it('a restore mid-ExecStartPre= waits for the same control process, then starts the main process once', async () => {
    const before = unit('[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/server\n');
    void before.unit.start();
    const recorded = before.unit.record();
    assert.equal(recorded.control?.kind, 'start-pre');
    const controlPid = recorded.control!.process.pid;

    const after = unit('[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/server\n');
    after.world.table.add(controlPid);
    after.unit.restore(recorded, undefined, undefined, { state: 'alive', handle: fakePidfd(controlPid) });
    assert.equal(after.unit.subState, 'start-pre');
    assert.equal(after.unit.control?.pid, controlPid);
    assert.equal(after.world.table.spawns.length, 0, 'the control process is not run again');
    after.world.table.exit(controlPid, 0);
    assert.equal(after.unit.subState, 'running');
    assert.deepEqual(after.world.table.spawns.map((p) => p.kind), ['main']);
  });

  it('a restore whose control process cannot be verified never signals it, and the start fails', async () => {
    const before = unit('[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/server\n');
    void before.unit.start();
    const recorded = before.unit.record();
    const after = unit('[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/server\n');
    after.unit.restore(recorded, undefined, undefined, { state: 'lost', reason: 'its PID now belongs to another process' });
    assert.equal(after.unit.activeState, 'failed');
    assert.equal(after.world.table.spawns.length, 0);
  });

  it('an effect that throws is logged, and the effects after it still run', async () => {
    const world = new FakeWorld();
    const ports = world.portsFor.bind(world);
    world.portsFor = (unit) => {
      const real = ports(unit);
      return {
        ...real,
        processes: {
          ...real.processes,
          sessions: real.processes.sessions,
          signalMembers: () => {
            throw Object.assign(new Error('EPERM: operation not permitted'), { code: 'EPERM' });
          },
        },
      };
    };
    const u = new ServiceUnit(serviceConfig('svc.service', '[Service]\nExecStart=/bin/server\n'), world);
    await u.start();
    const main = world.table.last;
    const job = u.stop();
    assert.ok(world.events.logs.some((l) => l.level === 'error' && l.text.includes('EPERM')), 'the failure is told');
    assert.equal(main.signals[0], SIGTERM, 'the main process got its signal');
    assert.ok(world.clock.pending > 0, 'the stop timeout was armed after the failing effect');
    world.table.exit(main.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
  });

  it('a scope is active while any of its processes lives; stop signals each through its handle', async () => {
    const world = new FakeWorld();
    const u = new ServiceUnit(serviceConfig('job.service', '[Service]\nExecStart=/bin/true\n'), world, true);
    const a = world.table.add(900);
    const b = world.table.add(901);
    u.adoptScope([fakePidfd(a.pid), fakePidfd(b.pid)]);
    assert.equal(u.activeState, 'active');
    assert.equal(u.main?.pid, a.pid);
    world.table.exit(a.pid, 4);
    assert.equal(u.activeState, 'active', 'the next process stands for the scope');
    assert.deepEqual(u.lastExit, { code: 4, signal: null });
    assert.equal(u.main?.pid, b.pid);
    const job = u.stop();
    assert.deepEqual(b.signals.slice(0, 1), [SIGTERM]);
    world.table.exit(b.pid, { signal: 'SIGTERM' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'inactive');
    assert.deepEqual(u.lastExit, { code: null, signal: 'SIGTERM' }, 'the last main process decides');
  });

  it('a scope process that ignores SIGTERM gets SIGKILL after TimeoutStopSec=, and the scope ends failed (timeout)', async () => {
    const world = new FakeWorld();
    const u = new ServiceUnit(serviceConfig('job.service', '[Service]\nExecStart=/bin/true\nTimeoutStopSec=5\n'), world, true);
    const stubborn = world.table.add(950);
    u.adoptScope([fakePidfd(stubborn.pid)]);
    const job = u.stop();
    assert.equal(u.subState, 'stop-sigterm');
    world.clock.advance(4999);
    assert.deepEqual(stubborn.signals, [SIGTERM, 18], 'SIGTERM then SIGCONT, nothing more yet');
    world.clock.advance(1);
    assert.equal(u.subState, 'stop-sigkill');
    assert.equal(stubborn.signals.at(-1), 9);
    world.table.exit(stubborn.pid, { signal: 'SIGKILL' });
    assert.equal(await settled(job), 'done');
    assert.equal(u.activeState, 'failed');
    assert.equal(u.result, 'timeout');
    assert.equal(world.clock.pending, 0);
  });
});
