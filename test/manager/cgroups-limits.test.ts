/**
 * MemoryMax=, CPUQuota= and TasksMax= in a real daemon's cgroups, and what `status` shows. Each
 * check of a limit runs only where the daemon's cgroup offers that controller (cgroup v2 has it and
 * it can be passed on to the units' cgroups), and says why when it skips.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatStatus } from '../../src/cli/commands/status.js';
import { CgroupTree } from '../../src/manager/cgroups.js';
import type { LogRecord, UnitStatus } from '../../src/manager/types.js';
import { eventually, startTestDaemon, unitStatus, type TestDaemon } from '../helpers/daemon.js';

// The daemons these tests start run in this process's cgroup: a probe subtree there finds out,
// as theirs will, which controllers can reach the units' cgroups (enabling them as they would).
const probe = CgroupTree.open('/tmp/holdfast-cgroup-limits-probe');
const noCgroups = typeof probe === 'string' ? probe : undefined;
const missing: Record<'memory' | 'cpu' | 'pids', string | undefined> = { memory: noCgroups, cpu: noCgroups, pids: noCgroups };
if (typeof probe !== 'string') {
  for (const controller of ['memory', 'cpu', 'pids'] as const) missing[controller] = probe.enable(controller);
  probe.removeAll([]);
}
const skipReason = (controller: 'memory' | 'cpu' | 'pids'): string | undefined =>
  missing[controller] === undefined ? undefined : `the ${controller} controller is not available to the daemon's cgroups here: ${missing[controller]}`;

const file = (cgroup: string, name: string): string => readFileSync(join(cgroup, name), 'utf8');
const field = (text: string, key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
const managerLines = async (d: TestDaemon, name: string): Promise<string[]> =>
  (await d.call<{ records: LogRecord[] }>('Logs', { name, lines: 100 })).records.filter((r) => r.stream === 'manager').map((r) => r.message);

describe('cgroup limits', () => {
  it('a controller the daemon\'s cgroup offers reaches the units\' cgroups, enabled top-down (any controller cgroup v2 has here)', (t) => {
    if (typeof probe === 'string') return t.skip(`no writable cgroup v2 subtree here: ${probe}`);
    const tree = CgroupTree.open(`/tmp/holdfast-cgroup-chain-${process.pid}`);
    assert.ok(typeof tree !== 'string');
    const offered = readFileSync(join(tree.own, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
    if (offered.length === 0) return t.skip(`the daemon's cgroup ${tree.own} offers no controller at all`);
    const controller = offered.includes('pids') ? 'pids' : offered[0]!;
    const unit = tree.path('chain.service');
    const wasEnabled = file(tree.own, 'cgroup.subtree_control').split(/\s+/).includes(controller);
    try {
      assert.equal(tree.enable(controller), undefined, `${controller} can be enabled`);
      assert.ok(file(tree.own, 'cgroup.subtree_control').split(/\s+/).includes(controller), 'enabled in the daemon\'s own cgroup');
      assert.ok(file(tree.base, 'cgroup.subtree_control').split(/\s+/).includes(controller), 'and in the subtree');
      mkdirSync(unit);
      assert.ok(file(unit, 'cgroup.controllers').split(/\s+/).includes(controller), 'so a unit\'s cgroup has it');
      assert.ok(readdirSync(unit).some((name) => name.startsWith(`${controller}.`)), `with its ${controller}.* files`);
    } finally {
      tree.removeAll(['chain.service']);
      // Leave the machine's cgroup as it was (this fails harmlessly while another daemon's units use the controller).
      if (!wasEnabled) {
        try {
          writeFileSync(join(tree.own, 'cgroup.subtree_control'), `-${controller}`);
        } catch {
          // In use below: it stays enabled, as a daemon would leave it.
        }
      }
    }
  });

  it('TasksMax=5: pids.max is 5, forks beyond it fail with EAGAIN, never more than 5 tasks; a reload without it resets pids.max', async (t) => {
    const why = skipReason('pids');
    if (why !== undefined) return t.skip(why);
    const d = await startTestDaemon();
    try {
      // 20 tries at starting `sleep`, each failure recorded with its errno; the unit then waits.
      const script = join(d.dir, 'fork20.py');
      const out = join(d.dir, 'forks');
      writeFileSync(
        script,
        [
          'import errno, os, subprocess, sys, time',
          'started, failures = 0, []',
          'for _ in range(20):',
          '    try:',
          "        subprocess.Popen(['sleep', '600'])",
          '        started += 1',
          '    except OSError as e:',
          '        failures.append(errno.errorcode.get(e.errno, str(e.errno)))',
          "with open(sys.argv[1] + '.tmp', 'w') as f:",
          "    f.write(f'{started} {len(failures)} {\" \".join(sorted(set(failures)))}')",
          "os.rename(sys.argv[1] + '.tmp', sys.argv[1])",
          'time.sleep(600)',
          '',
        ].join('\n'),
      );
      d.unit('forker.service', `[Service]\nTasksMax=5\nExecStart=/usr/bin/python3 ${script} ${out}\n`);
      await d.call('DaemonReload');
      await d.call('Start', { name: 'forker' });
      const [started, failed, errnos] = (await eventually(() => (existsSync(out) ? readFileSync(out, 'utf8') : undefined), 'the fork results')).split(' ');
      const s = await unitStatus(d, 'forker');
      const cgroup = s.cgroup!;
      assert.equal(file(cgroup, 'pids.max'), '5\n');
      // python3 is one task: four sleeps fit, the other sixteen forks are refused.
      assert.equal(Number(started), 4, `started ${started}`);
      assert.equal(Number(failed), 16);
      assert.equal(errnos, 'EAGAIN');
      assert.equal(file(cgroup, 'pids.current'), '5\n');
      if (existsSync(join(cgroup, 'pids.peak'))) assert.equal(file(cgroup, 'pids.peak'), '5\n', 'never more than 5 tasks');
      assert.equal(field(file(cgroup, 'pids.events'), 'max'), 16, 'pids.events counts the refused forks');
      assert.equal(s.tasks, 5);
      assert.match((await d.cli(['status', 'forker'])).stdout, /^ {6}Tasks: 5$/m);
      await d.call('Stop', { name: 'forker' });

      d.unit('forker.service', `[Service]\nExecStart=/bin/sleep 600\n`);
      await d.call('DaemonReload');
      await d.call('Start', { name: 'forker' });
      assert.equal(file(cgroup, 'pids.max'), 'max\n', 'a limit the unit no longer has is lifted');
    } finally {
      await d.stop();
    }
  });

  it('CPUQuota=20%: cpu.max is "20000 100000" and a busy loop is throttled', async (t) => {
    const why = skipReason('cpu');
    if (why !== undefined) return t.skip(why);
    const d = await startTestDaemon({ 'busy.service': "[Service]\nCPUQuota=20%\nExecStart=/bin/sh -c 'while :; do :; done'\n" });
    try {
      await d.call('Start', { name: 'busy' });
      const cgroup = (await unitStatus(d, 'busy')).cgroup!;
      assert.equal(file(cgroup, 'cpu.max'), '20000 100000\n');
      // Counters only, no timing: the loop wants a whole CPU and gets 20ms per 100ms.
      const stat = await eventually(() => {
        const text = file(cgroup, 'cpu.stat');
        return field(text, 'nr_throttled') > 0 ? text : undefined;
      }, 'cpu.stat nr_throttled > 0');
      assert.ok(field(stat, 'throttled_usec') > 0, stat);
      const s = await unitStatus(d, 'busy');
      assert.ok(s.cpuUsageUsec! > 0, String(s.cpuUsageUsec));
      assert.match((await d.cli(['status', 'busy'])).stdout, /^ {8}CPU: \d/m);
    } finally {
      await d.stop();
    }
  });

  it('MemoryMax=64M: memory.max is 64 MiB, the kernel holds the unit to it, status shows memory.current', async (t) => {
    const why = skipReason('memory');
    if (why !== undefined) return t.skip(why);
    const d = await startTestDaemon();
    try {
      // 128 MiB, every page written: over the limit, so the kernel reclaims (or swaps, or kills).
      const script = join(d.dir, 'eat.py');
      writeFileSync(script, "import time\nb = bytearray(b'\\x01') * (128 << 20)\ntime.sleep(600)\n");
      d.unit('eater.service', `[Service]\nMemoryMax=64M\nExecStart=/usr/bin/python3 ${script}\n`);
      await d.call('DaemonReload');
      await d.call('Start', { name: 'eater' });
      const cgroup = (await unitStatus(d, 'eater')).cgroup!;
      assert.equal(file(cgroup, 'memory.max'), `${64 * 1024 * 1024}\n`);
      await eventually(() => (field(file(cgroup, 'memory.events'), 'max') > 0 ? true : undefined), 'memory.events max > 0');
      if (existsSync(join(cgroup, 'memory.peak'))) assert.ok(Number(file(cgroup, 'memory.peak').trim()) <= 64 * 1024 * 1024, 'memory.peak within the limit');
      await d.call('Stop', { name: 'eater' });

      d.unit('eater.service', '[Service]\nExecStart=/bin/sleep 600\n');
      await d.call('DaemonReload');
      await d.call('Start', { name: 'eater' });
      assert.equal(file(cgroup, 'memory.max'), 'max\n', 'a limit the unit no longer has is lifted');
      const s = await unitStatus(d, 'eater');
      assert.ok(s.memoryCurrent! > 0, String(s.memoryCurrent));
      assert.match((await d.cli(['status', 'eater'])).stdout, /^ {5}Memory: \d+(\.\d)?[BKMG]$/m);
    } finally {
      await d.stop();
    }
  });

  it('a limit whose controller is missing is reported with the reason, the unit runs, status says memory is not measured', async (t) => {
    if (noCgroups !== undefined) return t.skip(`no writable cgroup v2 subtree here: ${noCgroups}`);
    const absent = (['memory', 'pids', 'cpu'] as const).find((c) => missing[c] !== undefined);
    if (absent === undefined) return t.skip('every controller is available here; this checks a machine where one is not');
    const directive = { memory: 'MemoryMax=64M', pids: 'TasksMax=5', cpu: 'CPUQuota=20%' }[absent];
    const d = await startTestDaemon({ 'limited.service': `[Service]\n${directive}\nExecStart=/bin/sleep 600\n` });
    try {
      await d.call('Start', { name: 'limited' });
      const s = await unitStatus(d, 'limited');
      assert.equal(s.activeState, 'active');
      const key = directive.slice(0, directive.indexOf('=') + 1);
      assert.ok((await managerLines(d, 'limited')).includes(`${key} (${missing[absent]}) not applied`), (await managerLines(d, 'limited')).join('\n'));
      const limitFile = { memory: 'memory.max', pids: 'pids.max', cpu: 'cpu.max' }[absent];
      assert.equal(existsSync(join(s.cgroup!, limitFile)), false, `no ${limitFile} in the unit's cgroup`);
      if (absent === 'memory') {
        assert.equal(s.memoryCurrent, null);
        assert.match((await d.cli(['status', 'limited'])).stdout, /^ {5}Memory: not measured \(the memory controller is not enabled in holdfast's cgroups\)$/m);
      }
    } finally {
      await d.stop();
    }
  });

  it('status shows tasks, memory and CPU time from the unit\'s cgroup files', async (t) => {
    if (noCgroups !== undefined) return t.skip(`no writable cgroup v2 subtree here: ${noCgroups}`);
    // `$$` is a literal `$` in a unit file; the loop only makes sure some CPU time is used.
    const d = await startTestDaemon({ 'two.service': "[Service]\nExecStart=/bin/sh -c 'sleep 600 & i=0; while [ $$i -lt 100000 ]; do i=$$((i+1)); done; wait'\n" });
    try {
      await d.call('Start', { name: 'two' });
      const s = await eventually(async () => {
        const u = await unitStatus(d, 'two');
        return u.tasks === 2 && u.cpuUsageUsec! > 0 ? u : undefined;
      }, 'two tasks and some CPU time');
      const cgroup = s.cgroup!;
      // cpu.stat is there with or without the cpu controller; memory.current only with memory.
      assert.ok(field(file(cgroup, 'cpu.stat'), 'usage_usec') >= s.cpuUsageUsec!);
      assert.equal(s.memoryCurrent === null, !existsSync(join(cgroup, 'memory.current')));
      if (existsSync(join(cgroup, 'pids.current'))) assert.equal(file(cgroup, 'pids.current'), '2\n');
      const human = (await d.cli(['status', 'two'])).stdout;
      assert.match(human, /^ {6}Tasks: 2$/m);
      assert.match(human, /^ {8}CPU: \d+(ms|s|min)/m);
      assert.match(human, s.memoryCurrent === null ? /^ {5}Memory: not measured /m : /^ {5}Memory: \d/m);
      const show = (await d.cli(['show', 'two'])).stdout;
      assert.match(show, /^CpuUsageUsec=\d+$/m);
      assert.match(show, /^Tasks=2$/m);
    } finally {
      await d.stop();
    }
  });

  it('without cgroups, status says nothing is measured or limited', () => {
    const unit: UnitStatus = {
      name: 'plain.service', description: 'plain.service', loadState: 'loaded', activeState: 'active', subState: 'running', result: 'success',
      type: 'simple', mainProcess: { pid: 4242 }, controlProcess: null, restarts: 0, lastExit: null, statusText: null, invocationId: null,
      stateChangeTimestamp: Date.now(), activeEnterTimestamp: Date.now(), fragmentPath: '/u/plain.service', dropInPaths: [], transient: false,
      enabled: 'static', cgroup: null, memoryCurrent: null, cpuUsageUsec: null, tasks: null,
      cgroupUnavailable: 'the cgroup /sys/fs/cgroup/holdfast-0123456789ab is not writable (EACCES)',
    } as UnitStatus;
    const text = formatStatus(unit, []);
    assert.match(text, /^ {5}CGroup: none \(the cgroup \/sys\/fs\/cgroup\/holdfast-0123456789ab is not writable \(EACCES\)\); processes are tracked by session$/m);
    assert.match(text, /^ {2}Resources: not measured, and MemoryMax=, CPUQuota=, TasksMax= are not applied without cgroups$/m);
    assert.doesNotMatch(text, /Memory:|CPU:|Tasks:/);
  });

  it('invalid MemoryMax=, CPUQuota=, TasksMax= are errors naming file, line and key; the unit does not load', async () => {
    const d = await startTestDaemon({
      'bad.service': '[Service]\nExecStart=/bin/sleep 600\nTasksMax=abc\nCPUQuota=-5%\nMemoryMax=12Q\nTasksMax=0\n',
    });
    try {
      const path = join(d.unitDir, 'bad.service');
      const s = await unitStatus(d, 'bad');
      assert.equal(s.loadState, 'error');
      assert.deepEqual(s.loadErrors, [
        `${path}:3: Invalid TasksMax=: 'abc' is not an unsigned integer`,
        `${path}:4: Invalid CPUQuota=: '-5%' is not a percentage`,
        `${path}:5: Invalid MemoryMax=: '12Q' is not a size`,
        `${path}:6: Invalid TasksMax=: the limit must be above 0`,
      ]);
      await assert.rejects(d.call('Start', { name: 'bad' }));
      const human = await d.cli(['status', 'bad']);
      assert.match(human.stdout, new RegExp(`${path.replace(/[.]/g, '\\.')}:3: Invalid TasksMax=`));
    } finally {
      await d.stop();
    }
  });
});
