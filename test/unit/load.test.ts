import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { defaultUnitDirs, dropInDirNames, formatDiagnostic, listUnits, loadServiceUnit, resolveUnitFiles, UnitDirectories, type LoadResult } from '../../src/unit/index.js';
import { HOST, tempDir, writeTree, type TreeEntry } from './fixtures.js';

/** Three unit directories, lowest priority first, like /usr/lib, /run and /etc. */
function setup(t: TestContext, files: Readonly<Record<string, TreeEntry>>): { root: string; dirs: string[]; p: (rel: string) => string } {
  const root = tempDir(t);
  writeTree(root, files);
  const dirs = ['lib', 'run', 'etc'].map((d) => path.join(root, d));
  return { root, dirs, p: (rel) => path.join(root, rel) };
}

async function load(dirs: string[], name: string): Promise<LoadResult> {
  return loadServiceUnit(name, { unitDirs: dirs, host: HOST });
}

const SIMPLE = '[Service]\nExecStart=/bin/true\n';

describe('loadServiceUnit: fragments and drop-ins', () => {
  it('takes the fragment from the highest-priority directory and merges drop-ins by file name', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': '[Unit]\nDescription=from lib\n[Service]\nExecStart=/bin/lib\n',
      'etc/web.service': '[Unit]\nDescription=from etc\n[Service]\nExecStart=/bin/etc\n',
      'lib/web.service.d/10-a.conf': '[Service]\nRestartSec=1\n',
      'etc/web.service.d/10-a.conf': '[Service]\nRestartSec=2\n',
      'lib/web.service.d/20-b.conf': '[Service]\nEnvironment=B=lib\n',
      'run/web.service.d/05-c.conf': '[Service]\nEnvironment=C=run\n',
      'lib/service.d/30-top.conf': '[Service]\nEnvironment=TOP=1\n',
      'lib/web.service.d/40-x.txt': '[Service]\nEnvironment=NOT=applied\n',
      'lib/web.service.d/.hidden.conf': '[Service]\nEnvironment=HIDDEN=1\n',
    });
    const r = await load(dirs, 'web.service');
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.state, 'loaded');
    assert.deepEqual(r.sourcePaths, [p('etc/web.service'), p('run/web.service.d/05-c.conf'), p('etc/web.service.d/10-a.conf'), p('lib/web.service.d/20-b.conf'), p('lib/service.d/30-top.conf')]);
    const c = r.config!;
    assert.equal(c.unit.description, 'from etc');
    assert.equal(c.service.execStart[0]!.path, '/bin/etc');
    assert.equal(c.service.restartMs, 2000);
    assert.deepEqual(c.service.environment, { C: 'run', B: 'lib', TOP: '1' });
    assert.equal(c.fragmentPath, p('etc/web.service'));
    assert.deepEqual(c.dropInPaths, r.sourcePaths.slice(1));
  });

  it('lets a drop-in linked to /dev/null mask the same name in lower directories', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': SIMPLE,
      'lib/web.service.d/20-b.conf': '[Service]\nEnvironment=B=lib\n',
      'etc/web.service.d/20-b.conf': { symlink: '/dev/null' },
    });
    const r = await load(dirs, 'web.service');
    assert.deepEqual(r.sourcePaths, [p('lib/web.service')]);
    assert.deepEqual(r.config!.service.environment, {});
  });

  it('prefers a drop-in for the unit name over a same-named type-wide one', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': SIMPLE,
      'lib/web.service.d/10-x.conf': '[Service]\nEnvironment=X=unit\n',
      'etc/service.d/10-x.conf': '[Service]\nEnvironment=X=type\n',
    });
    const r = await load(dirs, 'web.service');
    assert.deepEqual(r.sourcePaths, [p('lib/web.service'), p('lib/web.service.d/10-x.conf')]);
    assert.deepEqual(r.config!.service.environment, { X: 'unit' });
  });

  it('applies drop-ins of dash prefixes, most generic first by file name', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/a-b-c.service': SIMPLE,
      'lib/a-.service.d/10-a.conf': '[Service]\nEnvironment=LEVEL=a\n',
      'lib/a-b-.service.d/20-ab.conf': '[Service]\nEnvironment=LEVEL=ab\n',
    });
    const r = await load(dirs, 'a-b-c.service');
    assert.deepEqual(r.sourcePaths, [p('lib/a-b-c.service'), p('lib/a-.service.d/10-a.conf'), p('lib/a-b-.service.d/20-ab.conf')]);
    assert.deepEqual(r.config!.service.environment, { LEVEL: 'ab' });
  });

  it('reports file and line of problems in every file, and does not load a unit with errors', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/bad.service': '[Service]\nExecStart=/bin/true\nBogus=1\n',
      'etc/bad.service.d/override.conf': '\n[Service]\nRestart=sometimes\n',
    });
    const r = await load(dirs, 'bad.service');
    assert.equal(r.state, 'bad-setting');
    assert.equal(r.config, undefined);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      `${p('lib/bad.service')}:3: Unknown key 'Bogus' in section [Service], ignoring.`,
      `${p('etc/bad.service.d/override.conf')}:3: Invalid Restart=: 'sometimes' is not one of no, on-success, on-failure, on-abnormal, on-watchdog, on-abort, always`,
    ]);
    assert.deepEqual(r.sourcePaths, [p('lib/bad.service'), p('etc/bad.service.d/override.conf')]);
  });
});

describe('loadServiceUnit: templates', () => {
  const files = {
    'lib/app@.service': '[Unit]\nDescription=App %i\n[Service]\nExecStart=/usr/bin/app --port %i --name %p\n',
    'lib/app@.service.d/10-all.conf': '[Service]\nEnvironment=ALL=1\n',
    'etc/app@8080.service.d/20-one.conf': '[Service]\nEnvironment=ONE=1\n',
    'lib/app@special.service': '[Service]\nExecStart=/usr/bin/special\n',
  };

  it('instantiates a template with its drop-ins and the instance ones', async (t) => {
    const { dirs, p } = setup(t, files);
    const r = await load(dirs, 'app@8080.service');
    assert.deepEqual(r.diagnostics, []);
    const c = r.config!;
    assert.equal(c.name, 'app@8080.service');
    assert.equal(c.template, 'app@.service');
    assert.equal(c.instance, '8080');
    assert.equal(c.unit.description, 'App 8080');
    assert.deepEqual(c.service.execStart[0]!.argv, ['/usr/bin/app', '--port', '8080', '--name', 'app']);
    assert.deepEqual(r.sourcePaths, [p('lib/app@.service'), p('lib/app@.service.d/10-all.conf'), p('etc/app@8080.service.d/20-one.conf')]);
    assert.deepEqual(c.service.environment, { ALL: '1', ONE: '1' });
    const other = await load(dirs, 'app@9090.service');
    assert.deepEqual(other.sourcePaths, [p('lib/app@.service'), p('lib/app@.service.d/10-all.conf')]);
  });

  it('prefers a file for the instance itself over the template', async (t) => {
    const { dirs, p } = setup(t, files);
    const r = await load(dirs, 'app@special.service');
    assert.equal(r.config!.fragmentPath, p('lib/app@special.service'));
    assert.equal(r.config!.service.execStart[0]!.path, '/usr/bin/special');
  });

  it('does not load a bare template', async (t) => {
    const { dirs } = setup(t, files);
    const r = await load(dirs, 'app@.service');
    assert.equal(r.state, 'not-found');
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), ['app@.service: app@.service is a template; load an instance of it such as app@NAME.service']);
  });

  it('lists the drop-in directories of a name like systemd', () => {
    assert.deepEqual(dropInDirNames('foo-bar@x.service'), ['foo-bar@x.service.d', 'foo-bar@.service.d', 'foo-@.service.d', 'foo-@x.service.d']);
    assert.deepEqual(dropInDirNames('a-b-c.service'), ['a-b-c.service.d', 'a-b-.service.d', 'a-.service.d']);
    assert.deepEqual(dropInDirNames('a-.service'), ['a-.service.d']);
    assert.deepEqual(dropInDirNames('-a.service'), ['-a.service.d']);
  });
});

describe('loadServiceUnit: aliases, links and masks', () => {
  it('follows a symlink alias to the unit it names and applies drop-ins of both names', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': SIMPLE,
      'etc/www.service': { symlink: '../lib/web.service' },
      'lib/www.service.d/10.conf': '[Service]\nEnvironment=VIA=alias\n',
      'lib/web.service.d/20.conf': '[Service]\nEnvironment=VIA2=name\n',
    });
    const r = await load(dirs, 'www.service');
    assert.deepEqual(r.diagnostics, []);
    const c = r.config!;
    assert.equal(c.name, 'web.service');
    assert.deepEqual(c.names, ['web.service', 'www.service']);
    assert.equal(c.fragmentPath, p('lib/web.service'));
    assert.deepEqual(c.service.environment, { VIA: 'alias', VIA2: 'name' });
    const direct = await load(dirs, 'web.service');
    assert.deepEqual(direct.config!.names, ['web.service', 'www.service'], 'loading by the real name also finds the alias');
  });

  it('aliases templates and instances', async (t) => {
    const { dirs } = setup(t, {
      'lib/worker@.service': '[Service]\nExecStart=/bin/work %i %n\n',
      'etc/job@.service': { symlink: '../lib/worker@.service' },
    });
    const r = await load(dirs, 'job@7.service');
    assert.equal(r.config!.name, 'worker@7.service');
    assert.deepEqual(r.config!.service.execStart[0]!.argv, ['/bin/work', '7', 'worker@7.service']);
  });

  it('reads an instance linked to its own template as that template', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/getty@.service': '[Service]\nExecStart=/sbin/agetty %I\n',
      'etc/getty@tty1.service': { symlink: '../lib/getty@.service' },
    });
    const r = await load(dirs, 'getty@tty1.service');
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.config!.name, 'getty@tty1.service');
    assert.equal(r.config!.fragmentPath, p('lib/getty@.service'));
    assert.deepEqual(r.config!.service.execStart[0]!.argv, ['/sbin/agetty', 'tty1']);
  });

  it('treats a symlink to a file outside the unit directories as a linked unit', async (t) => {
    const { dirs, p } = setup(t, {
      'elsewhere/thing.service': SIMPLE,
      'etc/thing.service': { symlink: '../elsewhere/thing.service' },
    });
    const r = await load(dirs, 'thing.service');
    assert.equal(r.config!.name, 'thing.service');
    assert.equal(r.config!.fragmentPath, p('etc/thing.service'));
  });

  it('finds units by [Install] Alias=', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/db.service': '[Service]\nExecStart=/bin/db\n[Install]\nAlias=database.service %p-main.service\n',
      'lib/database.service.d/10.conf': '[Service]\nEnvironment=VIA=install-alias\n',
    });
    const r = await load(dirs, 'database.service');
    assert.equal(r.config!.name, 'db.service');
    assert.deepEqual(r.config!.names, ['db.service', 'database.service']);
    assert.deepEqual(r.sourcePaths, [p('lib/db.service'), p('lib/database.service.d/10.conf')]);
    assert.equal((await load(dirs, 'db-main.service')).config!.name, 'db.service');
    const off = await loadServiceUnit('database.service', { unitDirs: dirs, host: HOST, installAliases: false });
    assert.equal(off.state, 'not-found');
  });

  it('reports masked units, by /dev/null link or empty file, in any higher directory', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': SIMPLE,
      'etc/web.service': { symlink: '/dev/null' },
      'lib/empty.service': '',
    });
    const r = await load(dirs, 'web.service');
    assert.equal(r.state, 'masked');
    assert.equal(r.config, undefined);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [`${p('etc/web.service')}: Unit web.service is masked.`]);
    assert.equal((await load(dirs, 'empty.service')).state, 'masked');
  });

  it('says when a unit is missing or of another type', async (t) => {
    const { dirs } = setup(t, { 'lib/web.service': SIMPLE, 'lib/web.socket': '[Socket]\nListenStream=80\n' });
    const missing = await load(dirs, 'nope.service');
    assert.equal(missing.state, 'not-found');
    assert.deepEqual(missing.diagnostics.map((d) => [d.file, d.line, d.severity]), [['nope.service', 0, 'error']]);
    const socket = await load(dirs, 'web.socket');
    assert.equal(socket.state, 'unsupported');
    assert.deepEqual(socket.diagnostics.map((d) => d.message), ['.socket units are not supported by holdfast; only .service units are']);
    assert.equal((await load(dirs, 'not a name')).state, 'not-found');
  });
});

describe('resolveUnitFiles and listUnits', () => {
  it('finds the files of any unit type', async (t) => {
    const { dirs, p } = setup(t, { 'lib/web.socket': '[Socket]\n', 'etc/web.socket.d/x.conf': '[Socket]\n' });
    const f = await resolveUnitFiles('web.socket', { unitDirs: dirs, host: HOST });
    assert.deepEqual(f, { name: 'web.socket', aliases: [], fragmentPath: p('lib/web.socket'), dropInPaths: [p('etc/web.socket.d/x.conf')], masked: false });
  });

  it('lists every loadable name, highest priority first wins', async (t) => {
    const { dirs, p } = setup(t, {
      'lib/web.service': SIMPLE,
      'lib/app@.service': SIMPLE,
      'etc/www.service': { symlink: '../lib/web.service' },
      'etc/off.service': { symlink: '/dev/null' },
      'run/db.service': '[Service]\nExecStart=/bin/db\n[Install]\nAlias=database.service\n',
      'lib/web.timer': '[Timer]\n',
      'lib/README': 'not a unit',
      'lib/web.service.d/x.conf': '',
    });
    assert.deepEqual(await listUnits(dirs, { host: HOST }), [
      { name: 'app@.service', kind: 'template', path: p('lib/app@.service') },
      { name: 'database.service', kind: 'alias', target: 'db.service' },
      { name: 'db.service', kind: 'service', path: p('run/db.service') },
      { name: 'off.service', kind: 'masked', path: p('etc/off.service') },
      { name: 'web.service', kind: 'service', path: p('lib/web.service') },
      { name: 'web.timer', kind: 'unsupported', path: p('lib/web.timer') },
      { name: 'www.service', kind: 'alias', path: p('etc/www.service'), target: 'web.service' },
    ]);
  });

  it('loads many units from one scan', async (t) => {
    const { dirs, p } = setup(t, { 'lib/a.service': SIMPLE, 'etc/b.service': SIMPLE, 'lib/c@.service': SIMPLE });
    const units = await UnitDirectories.open({ unitDirs: dirs, host: HOST });
    const names = (await units.list()).map((e) => e.name);
    assert.deepEqual(names, ['a.service', 'b.service', 'c@.service']);
    const loaded = await Promise.all(['a.service', 'b.service', 'c@1.service'].map((n) => units.load(n)));
    assert.deepEqual(loaded.map((r) => [r.state, r.config?.fragmentPath]), [
      ['loaded', p('lib/a.service')],
      ['loaded', p('etc/b.service')],
      ['loaded', p('lib/c@.service')],
    ]);
  });

  it('ignores directories that do not exist', async () => {
    assert.deepEqual(await listUnits(['/nonexistent/holdfast-test'], { host: HOST }), []);
  });
});

describe('defaultUnitDirs', () => {
  it('uses /etc for root and the XDG config directory otherwise', () => {
    assert.deepEqual(defaultUnitDirs({}, 0), ['/etc/holdfast/units']);
    assert.deepEqual(defaultUnitDirs({ XDG_CONFIG_HOME: '/cfg', HOME: '/home/a' }, 1000), ['/cfg/holdfast/units']);
    assert.deepEqual(defaultUnitDirs({ HOME: '/home/a' }, 1000), ['/home/a/.config/holdfast/units']);
    assert.deepEqual(defaultUnitDirs({ XDG_CONFIG_HOME: 'relative', HOME: '/home/a' }, 1000), ['/home/a/.config/holdfast/units']);
  });
});
