/**
 * The job runner on fake units whose start and stop end when the test says: jobs run as their
 * ordering predecessors finish, failures reach what needs the failed unit, jobs join and supersede,
 * and BindsTo= takes a unit down with the one it is bound to. No process, no timer.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { JobRunner, type JobEnd, type JobRequest } from '../../../src/manager/jobs/index.js';
import { FakeGraph, FakeUnits, flush, type NodeSpec } from './fakes.js';

interface Setup {
  graph: FakeGraph;
  units: FakeUnits;
  runner: JobRunner;
  notes: string[];
  /** Submits a request; its anchor's end shows up in `ends` when it comes. */
  submit(request: JobRequest): { end: JobEnd | undefined; all: JobEnd[] | undefined };
}

function setup(spec: Record<string, NodeSpec>): Setup {
  const graph = new FakeGraph(spec);
  const notes: string[] = [];
  let runner: JobRunner | undefined;
  const units = new FakeUnits(graph, (unit) => runner?.unitChanged(unit));
  runner = new JobRunner({ graph, target: units.target, note: (unit, level, text) => notes.push(`${level} ${unit}: ${text}`) });
  const r = runner;
  return {
    graph,
    units,
    runner: r,
    notes,
    submit(request) {
      const box: { end: JobEnd | undefined; all: JobEnd[] | undefined } = { end: undefined, all: undefined };
      const s = r.submit(request);
      void s.anchor.then((end) => (box.end = end));
      void s.settled.then((all) => (box.all = all));
      return box;
    },
  };
}

const start = (unit: string): JobRequest => ({ type: 'start', unit });

describe('job runner: order', () => {
  it('a start ordered After= a dependency waits for the dependency to be up', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: {} });
    const job = s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.running(), ['b:start']);
    await s.units.end('b');
    assert.deepEqual(s.units.running(), ['a:start']);
    await s.units.end('a');
    assert.equal(job.end?.result, 'done');
    assert.deepEqual(s.units.log, ['b:start', 'a:start']);
  });

  it('without ordering, a unit and what it Requires= start together', async () => {
    const s = setup({ a: { requires: ['b'] }, b: {} });
    s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.running(), ['a:start', 'b:start']);
  });

  it('a chain of three starts one after another, and stops in reverse', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: { requires: ['c'], after: ['c'] }, c: {} });
    const up = s.submit(start('a'));
    for (const unit of ['c', 'b', 'a']) {
      await flush();
      assert.deepEqual(s.units.running(), [`${unit}:start`]);
      await s.units.end(unit);
    }
    assert.equal(up.end?.result, 'done');
    const down = s.submit({ type: 'stop', unit: 'c' });
    for (const unit of ['a', 'b', 'c']) {
      await flush();
      assert.deepEqual(s.units.running(), [`${unit}:stop`]);
      await s.units.end(unit);
    }
    assert.equal(down.end?.result, 'done');
    assert.equal(s.graph.state('a'), 'inactive');
  });

  it('a conflicting unit is stopped before the start, whichever way they are ordered', async () => {
    for (const order of [{ after: ['b'] }, { before: ['b'] }]) {
      const s = setup({ a: { conflicts: ['b'], ...order }, b: { state: 'active' } });
      const job = s.submit(start('a'));
      await flush();
      assert.deepEqual(s.units.running(), ['b:stop']);
      await s.units.end('b');
      assert.deepEqual(s.units.running(), ['a:start']);
      await s.units.end('a');
      assert.equal(job.end?.result, 'done');
      assert.equal(s.graph.state('b'), 'inactive');
    }
  });

  it('a restart stops dependents first and starts them last (PartOf=, After=)', async () => {
    const s = setup({ pg: { state: 'active' }, main: { state: 'active', partOf: ['pg'], after: ['pg'] } });
    const job = s.submit({ type: 'restart', unit: 'pg' });
    await flush();
    assert.deepEqual(s.units.running(), ['main:stop']);
    await s.units.end('main');
    assert.deepEqual(s.units.running(), ['pg:stop']);
    await s.units.end('pg');
    assert.deepEqual(s.units.running(), ['pg:start']);
    await s.units.end('pg');
    assert.deepEqual(s.units.running(), ['main:start']);
    await s.units.end('main');
    assert.equal(job.end?.result, 'done');
  });

  it('restart of a PartOf= parent does not start a failed child', async () => {
    const s = setup({ pg: { state: 'active' }, child: { state: 'failed', partOf: ['pg'], after: ['pg'] } });
    const job = s.submit({ type: 'restart', unit: 'pg' });
    await flush();
    await s.units.end('pg');
    await s.units.end('pg');
    assert.equal(job.end?.result, 'done');
    assert.equal(s.units.log.some((l) => l.startsWith('child')), false);
    assert.equal(s.graph.state('child'), 'failed');
  });

  it('try-restart of a unit that does not run is done at once and touches nothing', async () => {
    const s = setup({ a: { state: 'inactive' } });
    const job = s.submit({ type: 'try-restart', unit: 'a' });
    await flush();
    assert.equal(job.end?.result, 'done');
    assert.deepEqual(s.units.log, []);
  });

  it('a reload calls the unit\'s reload', async () => {
    const s = setup({ a: { state: 'active' } });
    const job = s.submit({ type: 'reload', unit: 'a' });
    await flush();
    await s.units.end('a');
    assert.equal(job.end?.result, 'done');
    assert.deepEqual(s.units.log, ['a:reload']);
  });
});

describe('job runner: results', () => {
  it('a required dependency that fails fails the waiting start with "dependency"; the unit is not started', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: {} });
    const job = s.submit(start('a'));
    await flush();
    await s.units.end('b', 'failed');
    assert.equal(job.end?.result, 'dependency');
    assert.match(job.end?.message ?? '', /dependency b failed/);
    assert.equal(s.units.log.includes('a:start'), false);
    assert.ok(s.notes.some((n) => /error a: dependency b failed; not starting/.test(n)));
  });

  it('the failure travels along a chain of requirements', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: { bindsTo: ['c'], after: ['c'] }, c: {} });
    const job = s.submit(start('a'));
    await flush();
    await s.units.end('c', 'timeout');
    assert.equal(job.end?.result, 'dependency');
    assert.deepEqual(s.units.log, ['c:start']);
  });

  it('a Wants= dependency that fails does not matter', async () => {
    const s = setup({ a: { wants: ['b'], after: ['b'] }, b: {} });
    const job = s.submit(start('a'));
    await flush();
    await s.units.end('b', 'failed');
    await s.units.end('a');
    assert.equal(job.end?.result, 'done');
  });

  it('Requisite= fails the start when the unit is not up, and lets it through when it is', async () => {
    const down = setup({ a: { requisite: ['b'], after: ['b'] }, b: {} });
    const failed = down.submit(start('a'));
    await flush();
    assert.equal(failed.end?.result, 'dependency');
    assert.deepEqual(down.units.log, []);
    const up = setup({ a: { requisite: ['b'], after: ['b'] }, b: { state: 'active' } });
    const ok = up.submit(start('a'));
    await flush();
    await up.units.end('a');
    assert.equal(ok.end?.result, 'done');
  });

  it('an ordering cycle of needed jobs fails the request at once, running nothing', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: { requires: ['a'], after: ['a'] } });
    const job = s.submit(start('a'));
    await flush();
    assert.equal(job.end?.result, 'failed');
    assert.match(job.end?.message ?? '', /ordering cycle a → b → a/);
    assert.deepEqual(s.units.log, []);
  });

  it('an ordering cycle through a wanted unit drops it, logs the cycle, and starts the anchor', async () => {
    const s = setup({ a: { wants: ['b'], after: ['b'] }, b: { wants: ['a'], after: ['a'] } });
    const job = s.submit(start('a'));
    await flush();
    await s.units.end('a');
    assert.equal(job.end?.result, 'done');
    assert.deepEqual(s.units.log, ['a:start']);
    assert.ok(s.notes.some((n) => n === 'warning a: ordering cycle a → b → a; dropping the start job of b'));
  });

  it('a requirement cycle without ordering starts both once', async () => {
    const s = setup({ a: { requires: ['b'] }, b: { requires: ['a'] } });
    const job = s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.running(), ['a:start', 'b:start']);
    await s.units.end('a');
    await s.units.end('b');
    assert.equal(job.end?.result, 'done');
    assert.deepEqual(s.units.log.sort(), ['a:start', 'b:start']);
  });
});

describe('job runner: merging and superseding', () => {
  it('a start of a unit whose start job runs joins it, and both hear its result', async () => {
    const s = setup({ a: {} });
    const first = s.submit(start('a'));
    await flush();
    const second = s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.log, ['a:start']);
    await s.units.end('a', 'failed');
    assert.equal(first.end?.result, 'failed');
    assert.equal(second.end?.result, 'failed');
  });

  it('two units that need the same dependency share one start of it', async () => {
    const s = setup({ a: { requires: ['c'], after: ['c'] }, b: { requires: ['c'], after: ['c'] }, c: {} });
    const ja = s.submit(start('a'));
    const jb = s.submit(start('b'));
    await flush();
    assert.deepEqual(s.units.running(), ['c:start']);
    await s.units.end('c');
    assert.deepEqual(s.units.running(), ['a:start', 'b:start']);
    await s.units.end('a');
    await s.units.end('b');
    assert.equal(ja.end?.result, 'done');
    assert.equal(jb.end?.result, 'done');
    assert.deepEqual(s.units.log.filter((l) => l === 'c:start'), ['c:start']);
  });

  it('a job ordered after a unit of another transaction waits for that job too', async () => {
    const s = setup({ a: { after: ['b'] }, b: {} });
    s.submit(start('b'));
    await flush();
    const job = s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.running(), ['b:start']);
    await s.units.end('b');
    await s.units.end('a');
    assert.equal(job.end?.result, 'done');
  });

  it('a stop supersedes a start still waiting for its turn: the start is canceled, and what needed it too', async () => {
    const s = setup({ a: { requires: ['b'], after: ['b'] }, b: { requires: ['c'], after: ['c'] }, c: {} });
    const up = s.submit(start('a'));
    await flush();
    assert.deepEqual(s.units.running(), ['c:start']);
    const down = s.submit({ type: 'stop', unit: 'b' });
    await flush();
    assert.equal(up.end?.result, 'dependency');
    await s.units.end('c');
    assert.equal(down.end?.result, 'done');
    assert.equal(s.units.log.includes('b:start'), false);
    assert.equal(s.units.log.includes('a:start'), false);
  });

  it('a stop of a unit whose start runs goes to the unit at once (the unit cancels its own start)', async () => {
    const s = setup({ a: {} });
    s.submit(start('a'));
    await flush();
    s.submit({ type: 'stop', unit: 'a' });
    await flush();
    assert.deepEqual(s.units.log, ['a:start', 'a:stop']);
  });
});

describe('job runner: propagation at run time', () => {
  it('a unit that fails takes down the units bound to it (BindsTo=), not those that only Require= it', async () => {
    const s = setup({ a: { state: 'active' }, bound: { state: 'active', bindsTo: ['a'] }, needs: { state: 'active', requires: ['a'] } });
    await s.units.crash('a');
    assert.deepEqual(s.units.running(), ['bound:stop']);
    await s.units.end('bound');
    assert.equal(s.graph.state('bound'), 'inactive');
    assert.equal(s.graph.state('needs'), 'active');
  });

  it('a stop job on a unit takes down what Requires= it and what is PartOf= it', async () => {
    const s = setup({ a: { state: 'active' }, needs: { state: 'active', requires: ['a'] }, part: { state: 'active', partOf: ['a'] } });
    const job = s.submit({ type: 'stop', unit: 'a' });
    await flush();
    assert.deepEqual(s.units.running(), ['a:stop', 'needs:stop', 'part:stop']);
    await s.units.end('a');
    await s.units.end('needs');
    await s.units.end('part');
    assert.equal(job.end?.result, 'done');
  });

  it('a bound unit that is already being restarted with the unit is left to that job', async () => {
    const s = setup({ a: { state: 'active' }, bound: { state: 'active', bindsTo: ['a'], after: ['a'] } });
    const job = s.submit({ type: 'restart', unit: 'a' });
    await flush();
    await s.units.end('bound');
    await s.units.end('a');
    await s.units.end('a');
    await s.units.end('bound');
    assert.equal(job.end?.result, 'done');
    assert.equal(s.graph.state('bound'), 'active');
    assert.deepEqual(s.units.log, ['bound:stop', 'a:stop', 'a:start', 'bound:start']);
  });
});

describe('job runner: jobs of separate requests', () => {
  it('two stops of units ordered both ways, asked for separately, do not wait for each other forever', async () => {
    // x stops first (it is ordered after both), so the two stops are queued together behind it.
    const s = setup({ a: { state: 'active', after: ['b'] }, b: { state: 'active', after: ['a'] }, x: { state: 'active', after: ['a', 'b'] } });
    s.submit({ type: 'stop', unit: 'x' });
    const ja = s.submit({ type: 'stop', unit: 'a' });
    const jb = s.submit({ type: 'stop', unit: 'b' });
    await flush();
    assert.deepEqual(s.units.running(), ['x:stop']);
    await s.units.end('x');
    assert.equal(s.units.running().length, 1);
    await s.units.end(s.units.running()[0]!.split(':')[0]!);
    await s.units.end(s.units.running()[0]!.split(':')[0]!);
    assert.equal(ja.end?.result, 'done');
    assert.equal(jb.end?.result, 'done');
    assert.ok(s.notes.some((n) => /waits in an ordering cycle with jobs of other requests/.test(n)));
  });
});
