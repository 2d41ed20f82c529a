/**
 * Transactions built over a fake graph: what each dependency kind pulls in, what is left out, the
 * order jobs run in, and both kinds of cycle. Pure: nothing runs.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { buildTransaction, type JobRequest, type Transaction } from '../../../src/manager/jobs/index.js';
import { FakeGraph, type NodeSpec } from './fakes.js';

const build = (spec: Record<string, NodeSpec>, request: JobRequest): Transaction => buildTransaction(new FakeGraph(spec), request);
/** The jobs as `unit:type`, sorted. */
const jobs = (t: Transaction): string[] => [...t.jobs.values()].map((j) => `${j.unit}:${j.type}`).sort();
const start = (unit: string): JobRequest => ({ type: 'start', unit });
const before = (order: readonly string[], a: string, b: string): boolean => order.indexOf(a) < order.indexOf(b);

describe('transactions: what a start pulls in', () => {
  it('Requires= and BindsTo= start their units, and the anchor needs them', () => {
    const t = build({ a: { requires: ['b'], bindsTo: ['c'] }, b: {}, c: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:start', 'c:start']);
    assert.equal(t.jobs.get('b')!.essential, true);
    assert.equal(t.jobs.get('c')!.essential, true);
    assert.equal(t.jobs.get('a')!.anchor, true);
    assert.deepEqual(t.errors, []);
  });

  it('Wants= and Upholds= start their units, which the anchor does not need', () => {
    const t = build({ a: { wants: ['b'], upholds: ['c'] }, b: {}, c: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:start', 'c:start']);
    assert.equal(t.jobs.get('b')!.essential, false);
    assert.equal(t.jobs.get('c')!.essential, false);
  });

  it('dependencies are followed transitively, each unit once', () => {
    const t = build({ a: { requires: ['b', 'c'] }, b: { requires: ['d'] }, c: { requires: ['d'], wants: ['e'] }, d: {}, e: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:start', 'c:start', 'd:start', 'e:start']);
  });

  it('Requisite= only checks the unit (a verify job), and starts nothing', () => {
    const t = build({ a: { requisite: ['b'] }, b: { requires: ['c'] }, c: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:verify-active']);
    assert.equal(t.jobs.get('b')!.essential, true);
  });

  it('a Requisite= that is up and a Requires= that is up have nothing to do and are left out', () => {
    const t = build({ a: { requisite: ['b'], requires: ['c'] }, b: { state: 'active' }, c: { state: 'active', requires: ['d'] }, d: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start']);
    assert.ok(t.dropped.some((d) => d.unit === 'c' && d.reason === 'redundant'));
    // What only the redundant job pulled in goes with it, as in systemd.
    assert.ok(t.dropped.some((d) => d.unit === 'd' && d.reason === 'unneeded'));
  });

  it('the anchor stays even when it has nothing to do, so its caller hears "done"', () => {
    const t = build({ a: { state: 'active' } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start']);
  });

  it('Conflicts= stops the other unit, and a unit that lists the anchor in its Conflicts= stops too', () => {
    const t = build({ a: { conflicts: ['b'] }, b: { state: 'active' }, c: { state: 'active', conflicts: ['a'] } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:stop', 'c:stop']);
    assert.equal(t.jobs.get('b')!.essential, true);
    assert.equal(t.jobs.get('c')!.essential, false);
  });

  it('a conflicting unit that is already down gets no job', () => {
    const t = build({ a: { conflicts: ['b'] }, b: { state: 'failed' } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start']);
  });

  it('the stop of a conflicting unit takes what Requires= it down too', () => {
    const t = build({ a: { conflicts: ['b'] }, b: { state: 'active' }, c: { state: 'active', requires: ['b'] } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:stop', 'c:stop']);
  });

  it('a unit both wanted and in conflict: the job the anchor does not need goes', () => {
    const t = build({ a: { requires: ['b'], wants: ['c'] }, b: { conflicts: ['c'] }, c: {} }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:start']);
    assert.ok(t.dropped.some((d) => d.unit === 'c' && d.reason === 'conflict'));
  });

  it('a unit both required and in a needed conflict fails the request, naming the unit', () => {
    const t = build({ a: { requires: ['b', 'c'] }, b: { conflicts: ['c'] }, c: {} }, start('a'));
    assert.equal(t.jobs.size, 0);
    assert.match(t.errors.join(), /c would be both started and stopped/);
  });

  it('a dependency the graph does not hold: a needed one fails the request, a wanted one is reported only', () => {
    const needed = build({ a: { requires: ['gone'] } }, start('a'));
    assert.match(needed.errors.join(), /unit gone not found \(needed by a\)/);
    const wanted = build({ a: { wants: ['gone.socket'] } }, start('a'));
    assert.deepEqual(wanted.errors, []);
    assert.deepEqual(wanted.missing, [{ name: 'gone.socket', neededBy: 'a', essential: false }]);
    const ignored = buildTransaction(new FakeGraph({ a: { requires: ['x.target'] } }), start('a'), { mustExist: (n) => n.endsWith('.service') });
    assert.deepEqual(ignored.errors, []);
    assert.deepEqual(jobs(ignored), ['a:start']);
  });

  it('a request on a unit the graph does not hold fails', () => {
    assert.match(build({}, start('nope')).errors.join(), /unit nope not found/);
  });
});

describe('transactions: stop, restart and reload', () => {
  it('a stop takes down what Requires=, BindsTo= or is PartOf= the unit, transitively, but not what only Wants= it', () => {
    const spec: Record<string, NodeSpec> = {
      a: { state: 'active' },
      r: { state: 'active', requires: ['a'] },
      b: { state: 'active', bindsTo: ['a'] },
      p: { state: 'active', partOf: ['a'] },
      rr: { state: 'active', requires: ['r'] },
      w: { state: 'active', wants: ['a'] },
    };
    assert.deepEqual(jobs(build(spec, { type: 'stop', unit: 'a' })), ['a:stop', 'b:stop', 'p:stop', 'r:stop', 'rr:stop']);
  });

  it('a stop leaves out dependents that are already down', () => {
    const t = build({ a: { state: 'active' }, r: { state: 'failed', requires: ['a'] } }, { type: 'stop', unit: 'a' });
    assert.deepEqual(jobs(t), ['a:stop']);
  });

  it('restart of a PartOf= parent restarts a child that runs, and leaves a failed or inactive child alone', () => {
    const t = build(
      { pg: { state: 'active' }, main: { state: 'active', partOf: ['pg'] }, broken: { state: 'failed', partOf: ['pg'] }, idle: { partOf: ['pg'] } },
      { type: 'restart', unit: 'pg' },
    );
    assert.deepEqual(jobs(t), ['main:restart', 'pg:restart']);
    assert.deepEqual(
      t.dropped.filter((d) => d.reason === 'not running').map((d) => d.unit).sort(),
      ['broken', 'idle'],
    );
  });

  it('restart propagates as try-restart through BindsTo= and Requires= too, and further from what restarts', () => {
    const t = build(
      { a: { state: 'active' }, b: { state: 'activating', bindsTo: ['a'] }, c: { state: 'active', requires: ['b'] }, d: { state: 'inactive', requires: ['b'] } },
      { type: 'restart', unit: 'a' },
    );
    assert.deepEqual(jobs(t), ['a:restart', 'b:restart', 'c:restart']);
  });

  it('try-restart of a unit that does not run is nothing to do; of one that runs it is a restart', () => {
    assert.deepEqual(jobs(build({ a: { state: 'failed' } }, { type: 'try-restart', unit: 'a' })), []);
    assert.deepEqual(build({ a: { state: 'failed' } }, { type: 'try-restart', unit: 'a' }).errors, []);
    assert.deepEqual(jobs(build({ a: { state: 'active' } }, { type: 'try-restart', unit: 'a' })), ['a:restart']);
  });

  it('reload-or-restart reloads a unit that is up and can reload, restarts it otherwise', () => {
    assert.deepEqual(jobs(build({ a: { state: 'active' } }, { type: 'reload-or-restart', unit: 'a' })), ['a:reload']);
    assert.deepEqual(jobs(build({ a: { state: 'active', canReload: false } }, { type: 'reload-or-restart', unit: 'a' })), ['a:restart']);
    assert.deepEqual(jobs(build({ a: { state: 'inactive' } }, { type: 'reload-or-restart', unit: 'a' })), ['a:restart']);
  });

  it('a reload is one job on the unit alone', () => {
    assert.deepEqual(jobs(build({ a: { state: 'active', requires: ['b'] }, b: {} }, { type: 'reload', unit: 'a' })), ['a:reload']);
  });
});

describe('transactions: order', () => {
  it('starts follow After=, and Before= on the other side means the same', () => {
    const t = build({ a: { requires: ['b', 'c'], after: ['b'] }, b: {}, c: { before: ['a'] } }, start('a'));
    assert.ok(before(t.order, 'b', 'a'));
    assert.ok(before(t.order, 'c', 'a'));
  });

  it('stops go in the reverse order', () => {
    const t = build({ b: { state: 'active' }, a: { state: 'active', requires: ['b'], after: ['b'] } }, { type: 'stop', unit: 'b' });
    assert.deepEqual(t.order, ['a', 'b']);
  });

  it('a stop goes before a start whichever way the two units are ordered', () => {
    const after = build({ a: { conflicts: ['b'], after: ['b'] }, b: { state: 'active' } }, start('a'));
    assert.deepEqual(after.order, ['b', 'a']);
    const beforeIt = build({ a: { conflicts: ['b'], before: ['b'] }, b: { state: 'active' } }, start('a'));
    assert.deepEqual(beforeIt.order, ['b', 'a']);
  });

  it('ordering alone pulls nothing in', () => {
    assert.deepEqual(jobs(build({ a: { after: ['b'] }, b: {} }, start('a'))), ['a:start']);
  });
});

describe('transactions: cycles', () => {
  it('a requirement cycle without ordering starts both, once each', () => {
    const t = build({ a: { requires: ['b'] }, b: { requires: ['a'] } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start', 'b:start']);
    assert.deepEqual(t.errors, []);
    assert.deepEqual(t.log, []);
  });

  it('Wants= both ways without ordering: both start', () => {
    assert.deepEqual(jobs(build({ a: { wants: ['b'] }, b: { wants: ['a'] } }, start('a'))), ['a:start', 'b:start']);
  });

  it('an ordering cycle through a job the anchor does not need is broken by dropping it, with a line naming the cycle', () => {
    const t = build({ a: { wants: ['b'], after: ['b'] }, b: { wants: ['a'], after: ['a'] } }, start('a'));
    assert.deepEqual(jobs(t), ['a:start']);
    assert.deepEqual(t.log, ['ordering cycle a → b → a; dropping the start job of b']);
    assert.ok(t.dropped.some((d) => d.unit === 'b' && d.reason === 'ordering cycle'));
  });

  it('an ordering cycle of needed jobs fails the request with an error naming the cycle', () => {
    const t = build({ a: { requires: ['b'], after: ['b'] }, b: { requires: ['a'], after: ['a'] } }, start('a'));
    assert.equal(t.jobs.size, 0);
    assert.match(t.errors.join(), /ordering cycle a → b → a; every job in it is needed by the start job of a/);
  });

  it('a longer cycle is broken at its one droppable job; what needed that job goes with it', () => {
    const t = build(
      { a: { requires: ['b'], wants: ['c'], after: ['b'] }, b: { after: ['c'] }, c: { requires: ['d'], after: ['a'] }, d: {} },
      start('a'),
    );
    assert.deepEqual(jobs(t), ['a:start', 'b:start']);
    assert.match(t.log.join(), /ordering cycle a → b → c → a; dropping the start job of c/);
  });

  it('a cycle among units that are already up has nothing to order', () => {
    const t = build({ x: { requires: ['a'] }, a: { state: 'active', requires: ['b'], after: ['b'] }, b: { state: 'active', requires: ['a'], after: ['a'] } }, start('x'));
    assert.deepEqual(jobs(t), ['x:start']);
    assert.deepEqual(t.errors, []);
  });

  it('restart of two units ordered one after the other is no cycle (stop phase reversed, start phase forward)', () => {
    const t = build({ a: { state: 'active' }, b: { state: 'active', partOf: ['a'], after: ['a'] } }, { type: 'restart', unit: 'a' });
    assert.deepEqual(t.errors, []);
    assert.deepEqual(jobs(t), ['a:restart', 'b:restart']);
  });
});
