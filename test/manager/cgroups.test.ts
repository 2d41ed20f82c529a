import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import { CgroupTree } from '../../src/manager/cgroups.js';
import type { UnitStatus } from '../../src/manager/types.js';
import { eventually, startTestDaemon } from '../helpers/daemon.js';
import { writtenPid } from '../helpers/processes.js';

const probe = CgroupTree.open('/tmp/holdfast-cgroup-probe');
const unavailable = typeof probe === 'string' ? probe : undefined;
if (typeof probe !== 'string') probe.removeAll([]);

describe('control groups', () => {
  it('each unit gets a cgroup; stop kills even a process that left the unit\'s session; status shows it', async (t) => {
    if (unavailable !== undefined) return t.skip(`no writable cgroup v2 subtree here: ${unavailable}`);
    const escaped = 'escaped';
    const d = await startTestDaemon();
    try {
      const file = join(d.dir, escaped);
      d.unit('escaper.service', `[Service]\nExecStart=/bin/sh -c 'setsid sleep 600 & echo $! > ${file}; exec sleep 600'\n`);
      await d.call('DaemonReload');
      await d.call('Start', { name: 'escaper' });
      const pid = await eventually(() => writtenPid(file), 'the escaped PID');
      using stray = Pidfd.open(pid);
      const s = (await d.call<{ unit: UnitStatus }>('Status', { name: 'escaper' })).unit;
      assert.ok(s.cgroup !== null && s.cgroup!.endsWith('/escaper.service'), String(s.cgroup));
      assert.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes('/escaper.service'), true, 'born in the unit\'s cgroup');
      assert.equal(s.tasks, 2);
      const human = await d.cli(['status', 'escaper']);
      assert.match(human.stdout, /CGroup: .*escaper\.service/);
      const owner = await d.call<{ unit: string }>('UnitByProcess', { process: { pid } });
      assert.equal(owner.unit, 'escaper.service', 'the cgroup finds the unit of a process outside its session');
      await d.call('Stop', { name: 'escaper' });
      assert.equal((await stray.exited).signal, 'SIGTERM', 'the process that called setsid() was stopped too');
      assert.equal(existsSync(s.cgroup!) ? readFileSync(join(s.cgroup!, 'cgroup.procs'), 'utf8') : '', '');
    } finally {
      await d.stop();
    }
  });

  it('cgroup.kill ends processes that ignore SIGTERM after TimeoutStopSec=', async (t) => {
    if (unavailable !== undefined) return t.skip(`no writable cgroup v2 subtree here: ${unavailable}`);
    const d = await startTestDaemon({
      'hard.service': "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; setsid sh -c \"trap \\\"\\\" TERM; sleep 600\" & while :; do sleep 0.1; done'\nTimeoutStopSec=300ms\n",
    });
    try {
      await d.call('Start', { name: 'hard' });
      const s = (await d.call<{ unit: UnitStatus }>('Status', { name: 'hard' })).unit;
      await eventually(async () => ((await d.call<{ unit: UnitStatus }>('Status', { name: 'hard' })).unit.tasks! >= 3 ? true : undefined), 'all processes');
      const { job } = await d.call<{ job: { result: string } }>('Stop', { name: 'hard' });
      assert.equal(job.result, 'done');
      assert.equal(readFileSync(join(s.cgroup!, 'cgroup.procs'), 'utf8').trim(), '', 'the cgroup is empty');
      assert.equal((await d.call<{ unit: UnitStatus }>('Status', { name: 'hard' })).unit.result, 'timeout');
    } finally {
      await d.stop();
    }
  });
});
