/**
 * The registry and the job engine on a real daemon: unit files load on demand, daemon-reload reloads
 * instances, every recorded unit comes back after a daemon SIGKILL (instances, and units whose file is
 * gone), enabled instances start with the daemon, dependency cycles neither hang nor kill the daemon,
 * and a restart of a PartOf= parent leaves a failed child alone.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { JobOutcome } from '../../src/manager/manager.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

const status = unitStatus;
const job = async (d: TestDaemon, method: string, name: string): Promise<JobOutcome> => (await d.call<{ job: JobOutcome }>(method, { name })).job;

/** Stops a daemon; one that does not answer SIGTERM (a daemon stuck in a cycle) is killed and its directory removed. */
async function stopOrKill(d: TestDaemon): Promise<void> {
  try {
    await answered(d.stop(), 'stopping the daemon');
  } catch {
    // Our own child, not yet reaped: its PID cannot have been reused, so the pidfd is the daemon's.
    if (d.process.exitCode === null && d.process.signalCode === null) {
      using daemon = Pidfd.open(d.process.pid!);
      daemon.signal('SIGKILL');
    }
    rmSync(d.dir, { recursive: true, force: true });
  }
}

/** Fails the test if a call does not come back in bounded time (a hung daemon would not answer at all). */
async function answered<T>(call: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in 20 s`)), 20_000)));
  try {
    return await Promise.race([call, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('units load on demand', () => {
  it('a unit file written after the daemon started starts without daemon-reload', async () => {
    const d = await startTestDaemon();
    try {
      d.unit('fresh.service', '[Service]\nExecStart=/bin/sleep 600\n');
      const started = await job(d, 'Start', 'fresh');
      assert.equal(started.result, 'done');
      assert.equal((await status(d, 'fresh')).activeState, 'active');
      // And so does one a loaded unit Requires= that was written later.
      d.unit('needs-late.service', '[Unit]\nRequires=late.service\nAfter=late.service\n[Service]\nExecStart=/bin/sleep 600\n');
      d.unit('late.service', '[Service]\nExecStart=/bin/sleep 600\n');
      assert.equal((await job(d, 'Start', 'needs-late')).result, 'done');
      assert.equal((await status(d, 'late')).activeState, 'active');
    } finally {
      await d.stop();
    }
  });

  it('daemon-reload applies a new template drop-in to an instance that already exists', async () => {
    const d = await startTestDaemon();
    try {
      const out = join(d.dir, 'out');
      d.unit('tmpl@.service', `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo "%i:$FLAVOUR" > ${out}'\n`);
      assert.equal((await job(d, 'Start', 'tmpl@one')).result, 'done');
      assert.equal(readFileSync(out, 'utf8').trim(), 'one:');
      await job(d, 'Stop', 'tmpl@one');
      mkdirSync(join(d.unitDir, 'tmpl@.service.d'));
      writeFileSync(join(d.unitDir, 'tmpl@.service.d', 'flavour.conf'), '[Service]\nEnvironment=FLAVOUR=mint\n');
      await d.call('DaemonReload');
      assert.deepEqual((await status(d, 'tmpl@one')).dropInPaths, [join(d.unitDir, 'tmpl@.service.d', 'flavour.conf')]);
      assert.equal((await job(d, 'Start', 'tmpl@one')).result, 'done');
      assert.equal(readFileSync(out, 'utf8').trim(), 'one:mint');
    } finally {
      await d.stop();
    }
  });
});

describe('what the registry keeps', () => {
  it('daemon-reload keeps a running unit whose file is gone as not-found until it is stopped', async () => {
    const d = await startTestDaemon({ 'gone.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    try {
      await job(d, 'Start', 'gone');
      const main = (await status(d, 'gone')).mainProcess!;
      using handle = Pidfd.verify(main.pid, main.pidfdId!);
      rmSync(join(d.unitDir, 'gone.service'));
      await d.call('DaemonReload');
      const kept = await status(d, 'gone');
      assert.equal(kept.loadState, 'not-found');
      assert.equal(kept.activeState, 'active');
      assert.equal((await job(d, 'Stop', 'gone')).result, 'done');
      assert.equal(handle.isAlive(), false);
      await eventually(async () => ((await d.call<{ units: { name: string }[] }>('List')).units.some((u) => u.name === 'gone.service') ? undefined : true), 'gone.service to be unloaded');
    } finally {
      await d.stop();
    }
  });

  it('dependencies on units of other types are ignored with one warning per start naming them', async () => {
    const d = await startTestDaemon({ 'net.service': '[Unit]\nRequires=net.socket\nWants=online.target\nAfter=online.target\n[Service]\nExecStart=/bin/sleep 600\n' });
    try {
      assert.equal((await job(d, 'Start', 'net')).result, 'done');
      assert.match(d.stderr(), /net\.service: ignoring dependencies on units holdfast does not load: net\.socket, online\.target/);
    } finally {
      await d.stop();
    }
  });
});

describe('every recorded unit comes back after a daemon SIGKILL', () => {
  it('a template instance is still supervised, and stop really stops it', async () => {
    let d = await startTestDaemon({ 'web@.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    await job(d, 'Start', 'web@1');
    const before = (await status(d, 'web@1')).mainProcess!;
    using main = Pidfd.verify(before.pid, before.pidfdId!);
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const after = await status(d, 'web@1');
      assert.equal(after.activeState, 'active');
      assert.deepEqual(after.mainProcess, before, 'the same process, by pidfd id');
      assert.doesNotMatch(d.stderr(), /leaving it alone/);
      assert.equal((await job(d, 'Stop', 'web@1')).result, 'done');
      assert.equal(main.isAlive(), false, 'stop reached the re-adopted process');
    } finally {
      if (main.isAlive()) main.signal('SIGKILL');
      await d.stop();
    }
  });

  it('a unit whose file is gone stays loaded as not-found while it runs, stops for real, then is unloaded', async () => {
    let d = await startTestDaemon({ 'orphan.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    await job(d, 'Start', 'orphan');
    const before = (await status(d, 'orphan')).mainProcess!;
    using main = Pidfd.verify(before.pid, before.pidfdId!);
    await d.crash();
    rmSync(join(d.unitDir, 'orphan.service'));
    d = await startTestDaemon({}, d.dir);
    try {
      const after = await status(d, 'orphan');
      assert.equal(after.loadState, 'not-found');
      assert.equal(after.activeState, 'active');
      assert.deepEqual(after.mainProcess, before);
      assert.equal((await job(d, 'Stop', 'orphan')).result, 'done');
      assert.equal(main.isAlive(), false, 'stop reached the process through its pidfd');
      await eventually(async () => {
        try {
          await status(d, 'orphan');
          return undefined;
        } catch (error) {
          return /NoSuchUnit/.test(String((error as Error).name ?? error)) ? true : undefined;
        }
      }, 'the stopped not-found unit to be unloaded');
    } finally {
      if (main.isAlive()) main.signal('SIGKILL');
      await d.stop();
    }
  });

  it('a unit whose file is gone and whose process ended while no daemon ran is not kept', async () => {
    const gate = 'gate';
    let d = await startTestDaemon({});
    d.unit('brief.service', `[Service]\nExecStart=/bin/sh -c 'while [ ! -e ${join(d.dir, gate)} ]; do sleep 0.02; done'\n`);
    await d.call('DaemonReload');
    await job(d, 'Start', 'brief');
    await d.crash();
    rmSync(join(d.unitDir, 'brief.service'));
    writeFileSync(join(d.dir, gate), '');
    d = await startTestDaemon({}, d.dir);
    try {
      await assert.rejects(status(d, 'brief'), /NoSuchUnit/);
    } finally {
      await d.stop();
    }
  });
});

describe('enabled instances', () => {
  it('an enabled instance starts with the daemon', async () => {
    let d = await startTestDaemon({ 'tick@.service': '[Service]\nExecStart=/bin/sleep 600\n[Install]\nWantedBy=multi-user.target\n' });
    await d.call('Enable', { name: 'tick@1', enable: true });
    assert.equal((await status(d, 'tick@1')).enabled, 'enabled');
    await d.crash();
    d = await startTestDaemon({}, d.dir);
    try {
      const s = await eventually(async () => {
        const st = await status(d, 'tick@1');
        return st.activeState === 'active' ? st : undefined;
      }, 'tick@1 to be started with the daemon');
      assert.equal(s.enabled, 'enabled');
    } finally {
      await d.stop();
    }
  });
});

describe('dependency cycles', () => {
  it('Requires= + After= both ways: the start is refused at once, naming the cycle, and the daemon answers', { timeout: 90_000 }, async () => {
    const d = await startTestDaemon({
      'a.service': '[Unit]\nRequires=b.service\nAfter=b.service\n[Service]\nExecStart=/bin/sleep 600\n',
      'b.service': '[Unit]\nRequires=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/sleep 600\n',
    });
    try {
      const started = await answered(job(d, 'Start', 'a'), 'Start a');
      assert.equal(started.result, 'failed');
      assert.match(d.stderr(), /ordering cycle a\.service → b\.service → a\.service/);
      const list = await answered(d.call<{ units: { name: string; activeState: string }[] }>('List'), 'List');
      assert.deepEqual(list.units.map((u) => [u.name, u.activeState]), [['a.service', 'inactive'], ['b.service', 'inactive']]);
    } finally {
      await stopOrKill(d);
    }
  });

  it('Wants= both ways: both start once; with After= both ways too, the wanted one is dropped with a line naming the cycle', { timeout: 90_000 }, async () => {
    const d = await startTestDaemon({
      'x.service': '[Unit]\nWants=y.service\n[Service]\nExecStart=/bin/sleep 600\n',
      'y.service': '[Unit]\nWants=x.service\n[Service]\nExecStart=/bin/sleep 600\n',
      'p.service': '[Unit]\nWants=q.service\nAfter=q.service\n[Service]\nExecStart=/bin/sleep 600\n',
      'q.service': '[Unit]\nWants=p.service\nAfter=p.service\n[Service]\nExecStart=/bin/sleep 600\n',
    });
    try {
      assert.equal((await answered(job(d, 'Start', 'x'), 'Start x')).result, 'done');
      assert.equal((await status(d, 'y')).activeState, 'active');
      assert.equal((await answered(job(d, 'Start', 'p'), 'Start p')).result, 'done');
      assert.equal((await status(d, 'q')).activeState, 'inactive');
      assert.match(d.stderr(), /ordering cycle p\.service → q\.service → p\.service; dropping the start job of q\.service/);
      await answered(d.call('List'), 'List');
    } finally {
      await stopOrKill(d);
    }
  });
});

describe('PartOf=', () => {
  it('restart of a PartOf= parent restarts a child that runs and does not start a failed one', async () => {
    const d = await startTestDaemon();
    try {
      const marker = join(d.dir, 'marker');
      d.unit('parent.service', '[Service]\nExecStart=/bin/sleep 600\n');
      d.unit('running-child.service', '[Unit]\nPartOf=parent.service\nAfter=parent.service\n[Service]\nExecStart=/bin/sleep 600\n');
      d.unit('failed-child.service', `[Unit]\nPartOf=parent.service\nAfter=parent.service\n[Service]\nExecStart=/bin/sh -c 'test -e ${marker} || exit 1; exec sleep 600'\n`);
      // Loaded up front, so that this test shows the restart alone, not the loading on demand.
      await d.call('DaemonReload');
      await job(d, 'Start', 'parent');
      await job(d, 'Start', 'running-child');
      await job(d, 'Start', 'failed-child');
      await eventually(async () => ((await status(d, 'failed-child')).activeState === 'failed' ? true : undefined), 'failed-child to fail');
      const runningBefore = (await status(d, 'running-child')).mainProcess!;
      // From now on the failed child would start fine: only a start it should not get would show.
      writeFileSync(marker, '');
      assert.equal((await job(d, 'Restart', 'parent')).result, 'done');
      const failed = await status(d, 'failed-child');
      assert.equal(failed.activeState, 'failed');
      assert.equal(failed.mainProcess, null);
      const running = await status(d, 'running-child');
      assert.equal(running.activeState, 'active');
      assert.notDeepEqual(running.mainProcess, runningBefore, 'the running child was restarted with its parent');
      assert.ok(existsSync(marker));
    } finally {
      await d.stop();
    }
  });
});
