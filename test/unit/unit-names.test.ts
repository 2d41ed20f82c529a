/**
 * Unit files whose names no unit can have (a space, a newline, letters outside ASCII) are reported,
 * naming the file and why, when the daemon loads its directories and by `holdfast verify`, instead
 * of being passed over in silence.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnitDirectories } from '../../src/unit/load.js';
import { unitNameProblem } from '../../src/unit/unit-name.js';
import { holdfast } from '../helpers/cli.js';
import { eventually, startTestDaemon } from '../helpers/daemon.js';

const UNIT = '[Service]\nExecStart=/bin/sleep 600\n';
const BAD = {
  'my app.service': 'the name holds a space',
  'new\nline.service': 'the name holds a newline',
  'caf\u00e9.service': 'the name holds "é" (U+00E9)',
  '.dot.service': "the name starts with '.' (a hidden file, skipped in unit directories)",
};

describe('unitNameProblem', () => {
  it('says why a name is refused, and nothing for a good one', () => {
    assert.equal(unitNameProblem('web.service'), undefined);
    assert.equal(unitNameProblem('web@1.service'), undefined);
    assert.equal(unitNameProblem('run-1.scope', ['scope', 'service']), undefined);
    assert.equal(unitNameProblem(''), 'the name is empty');
    assert.equal(unitNameProblem('.dot.service'), "the name starts with '.' (a hidden file, skipped in unit directories)");
    assert.equal(unitNameProblem('.service'), 'the name has nothing before its suffix');
    assert.equal(unitNameProblem('web.timer'), 'the name does not end in .service');
    assert.equal(unitNameProblem('web@.service'), 'the name is a template (nothing between @ and the suffix)');
    assert.equal(unitNameProblem('@x.service'), "the name starts with '@'");
    assert.equal(unitNameProblem(`${'a'.repeat(250)}.service`), 'the name is longer than 255 bytes');
    assert.match(unitNameProblem('tab\there.service')!, /the name holds a tab/);
    assert.match(unitNameProblem('bell\u0007.service')!, /the control character U\+0007/);
    for (const [name, why] of Object.entries(BAD)) assert.ok(unitNameProblem(name)!.startsWith(why), unitNameProblem(name));
  });
});

describe('unit files with invalid names', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-names-'));
    writeFileSync(join(dir, 'good.service'), UNIT);
    for (const name of Object.keys(BAD)) writeFileSync(join(dir, name), UNIT);
    // Not meant as units: passed over quietly, as before.
    writeFileSync(join(dir, 'README'), 'notes\n');
    writeFileSync(join(dir, 'good.service~'), UNIT);
    writeFileSync(join(dir, '.#good.service'), UNIT);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('are listed with why, and loading one names the file and why', async () => {
    const units = await UnitDirectories.open({ unitDirs: [dir] });
    const listed = await units.list();
    assert.deepEqual(listed.map((e) => e.name).sort(), ['good.service', ...Object.keys(BAD)].sort());
    assert.equal(listed.find((e) => e.name === 'good.service')!.problem, undefined);
    for (const [name, why] of Object.entries(BAD)) {
      const entry = listed.find((e) => e.name === name)!;
      assert.equal(entry.path, join(dir, name));
      assert.match(entry.problem!, new RegExp(`^${why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      const loaded = await units.load(name);
      assert.equal(loaded.state, 'error');
      assert.equal(loaded.config, undefined);
      assert.equal(loaded.diagnostics.length, 1);
      assert.equal(loaded.diagnostics[0]!.file, join(dir, name));
      assert.equal(loaded.diagnostics[0]!.message, `${JSON.stringify(name)} is not a valid unit name (${entry.problem}); the file is not loaded. Rename it.`);
    }
    assert.equal((await units.load('good.service')).state, 'loaded');
  });

  it('are reported by the daemon when it loads the directory, and the good unit still runs', async () => {
    const d = await startTestDaemon({ 'good.service': UNIT, ...Object.fromEntries(Object.keys(BAD).map((n) => [n, UNIT])) });
    try {
      await d.call('Start', { name: 'good.service' });
      for (const [name, why] of Object.entries(BAD)) {
        await eventually(() => (d.stderr().includes(`${JSON.stringify(name)} is not a valid unit name (${why}`) ? true : undefined), `a line for ${JSON.stringify(name)}`);
        assert.ok(d.stderr().includes(join(d.unitDir, name)), `the line names the file ${join(d.unitDir, name)}`);
      }
      const status = await d.call<{ unit: { activeState: string } }>('Status', { name: 'good.service' });
      assert.equal(status.unit.activeState, 'active');
      // Each shows in the list as a unit that did not load, with the reason.
      const { units } = await d.call<{ units: { name: string; loadState: string; loadErrors: string[] | null }[] }>('List');
      for (const [name, why] of Object.entries(BAD)) {
        const entry = units.find((u) => u.name === name);
        assert.ok(entry !== undefined, `${JSON.stringify(name)} is listed`);
        assert.notEqual(entry.loadState, 'loaded');
        assert.ok(entry.loadErrors?.some((e) => e.includes(why)), JSON.stringify(entry.loadErrors));
      }
    } finally {
      await d.stop();
    }
  });

  it('are reported by verify, for the directory and for each file', async () => {
    const all = await holdfast(['verify', dir]);
    assert.equal(all.code, 1);
    for (const [name, why] of Object.entries(BAD)) {
      assert.ok(all.stderr.includes(`${join(dir, name)}: ${JSON.stringify(name)} is not a valid unit name (${why}`), all.stderr);
    }
    assert.ok(!all.stderr.includes('README') && !all.stderr.includes('good.service'), 'nothing said about the rest');
    const one = await holdfast(['verify', join(dir, 'my app.service')]);
    assert.equal(one.code, 1);
    assert.match(one.stderr, /"my app\.service" is not a valid unit name \(the name holds a space; .*\); holdfast would not load it/);
    const good = await holdfast(['verify', join(dir, 'good.service')]);
    assert.equal(good.code, 0, good.stderr);
  });
});
