import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  escapeUnitName,
  escapeUnitPath,
  expandSpecifiers,
  hostSpecifierContext,
  instantiate,
  isValidUnitName,
  parseUnitName,
  templateOf,
  unescapeUnitName,
  unescapeUnitPath,
  type SpecifierContext,
} from '../../src/unit/index.js';
import { HOST, USER_HOST } from './fixtures.js';

const CTX: SpecifierContext = { ...HOST, unitName: 'web-api@a-b\\x2dc.service', fragmentPath: '/etc/holdfast/units/web-api@.service' };

function expand(text: string, ctx: SpecifierContext = CTX, set: 'full' | 'name' = 'full'): string {
  const r = expandSpecifiers(text, ctx, set);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

describe('expandSpecifiers', () => {
  const table: Array<[string, string]> = [
    ['%n', 'web-api@a-b\\x2dc.service'],
    ['%N', 'web-api@a-b\\x2dc'],
    ['%p', 'web-api'],
    ['%P', 'web/api'],
    ['%i', 'a-b\\x2dc'],
    ['%I', 'a/b-c'],
    ['%j', 'api'],
    ['%J', 'api'],
    ['%f', '/a/b-c'],
    ['%u', 'root'],
    ['%U', '0'],
    ['%g', 'root'],
    ['%G', '0'],
    ['%h', '/root'],
    ['%s', '/bin/sh'],
    ['%t', '/run'],
    ['%S', '/var/lib'],
    ['%C', '/var/cache'],
    ['%L', '/var/log'],
    ['%E', '/etc'],
    ['%D', '/usr/share'],
    ['%T', '/tmp'],
    ['%V', '/var/tmp'],
    ['%d', '/run/credentials/web-api@a-b\\x2dc.service'],
    ['%m', '0123456789abcdef0123456789abcdef'],
    ['%b', 'fedcba9876543210fedcba9876543210'],
    ['%H', 'host.example.com'],
    ['%l', 'host'],
    ['%q', 'host'],
    ['%v', '6.18.0-test'],
    ['%a', 'x86-64'],
    ['%o', 'debian'],
    ['%w', '13'],
    ['%W', ''],
    ['%B', '2025-01'],
    ['%M', 'img'],
    ['%A', '7'],
    ['%y', '/etc/holdfast/units/web-api@.service'],
    ['%Y', '/etc/holdfast/units'],
    ['%%', '%'],
  ];
  for (const [spec, expected] of table) {
    it(`${spec} -> '${expected}'`, () => assert.equal(expand(spec), expected));
  }

  it('expands inside text and leaves a % before a non-alphanumeric character or at the end', () => {
    assert.equal(expand('/srv/%p/%i.conf'), '/srv/web-api/a-b\\x2dc.conf');
    assert.equal(expand('50%'), '50%');
    assert.equal(expand('%-x %/ %%n'), '%-x %/ %n');
  });

  it('uses the pretty host name when there is one', () => {
    assert.equal(expand('%q', { ...CTX, prettyHostname: 'My Box' }), 'My Box');
  });

  it('refuses unknown specifiers and says which', () => {
    assert.deepEqual(expandSpecifiers('a%zb', CTX), { ok: false, error: "unknown specifier '%z'" });
    assert.deepEqual(expandSpecifiers('%c', CTX), { ok: false, error: "specifier '%c' (a cgroup path) is not supported" });
    assert.deepEqual(expandSpecifiers('%9', CTX), { ok: false, error: "unknown specifier '%9'" });
  });

  it('refuses specifiers whose value is unknown', () => {
    const { machineId: _m, ...noMachine } = CTX;
    assert.deepEqual(expandSpecifiers('%m', noMachine), { ok: false, error: "cannot expand '%m': the machine ID is not known" });
    const { fragmentPath: _f, ...noPath } = CTX;
    assert.equal(expandSpecifiers('%y', noPath).ok, false);
  });

  it('offers only the unit-name set where a unit name is expected', () => {
    assert.equal(expand('%p-%i.target', CTX, 'name'), 'web-api-a-b\\x2dc.target');
    assert.deepEqual(expandSpecifiers('%I', CTX, 'name'), { ok: false, error: "specifier '%I' cannot be used in a unit name" });
    assert.deepEqual(expandSpecifiers('%t', CTX, 'name'), { ok: false, error: "specifier '%t' cannot be used in a unit name" });
  });

  it('handles plain names: %i empty, %f from the prefix', () => {
    const ctx: SpecifierContext = { ...HOST, unitName: 'var-lib-foo.service' };
    assert.equal(expand('[%i]', ctx), '[]');
    assert.equal(expand('%f', ctx), '/var/lib/foo');
    assert.equal(expand('%j', { ...HOST, unitName: 'foo.service' }), 'foo');
  });

  it('expands the per-user manager directories', () => {
    const ctx: SpecifierContext = { ...USER_HOST, unitName: 'a.service' };
    assert.equal(expand('%u %U %g %h %t %S %C %L %E'), 'root 0 root /root /run /var/lib /var/cache /var/log /etc');
    assert.equal(expand('%u %U %g %h %t %S %C %L %E', ctx), 'alice 1000 users /home/alice /run/user/1000 /home/alice/.local/state /home/alice/.cache /home/alice/.local/state/log /home/alice/.config');
  });
});

describe('hostSpecifierContext', () => {
  it('derives the per-user directories from XDG variables', () => {
    const env = { HOME: '/home/x', XDG_RUNTIME_DIR: '/run/user/77', XDG_CONFIG_HOME: '/cfg', TMPDIR: '/scratch' };
    const ctx = hostSpecifierContext({ scope: 'user', env });
    assert.equal(ctx.scope, 'user');
    assert.deepEqual(ctx.dirs, {
      runtime: '/run/user/77',
      state: '/home/x/.local/state',
      cache: '/home/x/.cache',
      logs: '/home/x/.local/state/log',
      config: '/cfg',
      sharedData: '/home/x/.local/share',
      tmp: '/scratch',
      varTmp: '/scratch',
    });
    assert.equal(ctx.user.home, '/home/x');
  });

  it('uses the system directories and root for the system scope', () => {
    const ctx = hostSpecifierContext({ scope: 'system', env: {} });
    assert.deepEqual(ctx.user, { name: 'root', uid: 0, group: 'root', gid: 0, home: '/root', shell: '/bin/sh' });
    assert.equal(ctx.dirs.runtime, '/run');
    assert.equal(ctx.dirs.varTmp, '/var/tmp');
    assert.equal(typeof ctx.kernelRelease, 'string');
  });
});

describe('unit names', () => {
  it('splits names into prefix, instance and type', () => {
    assert.deepEqual(parseUnitName('foo.service'), { kind: 'plain', prefix: 'foo', type: 'service' });
    assert.deepEqual(parseUnitName('foo@bar.service'), { kind: 'instance', prefix: 'foo', instance: 'bar', type: 'service' });
    assert.deepEqual(parseUnitName('foo@.socket'), { kind: 'template', prefix: 'foo', instance: '', type: 'socket' });
    assert.deepEqual(parseUnitName('a@b@c.service'), { kind: 'instance', prefix: 'a', instance: 'b@c', type: 'service' });
    for (const bad of ['', 'foo', 'foo.bar', '@x.service', '.service', 'a b.service', 'x'.repeat(250) + '.service', 'é.service']) {
      assert.equal(parseUnitName(bad), undefined, bad);
    }
  });

  it('converts between templates and instances', () => {
    assert.equal(templateOf('foo@bar.service'), 'foo@.service');
    assert.equal(templateOf('foo.service'), undefined);
    assert.equal(instantiate('foo@.service', 'bar'), 'foo@bar.service');
    assert.equal(instantiate('foo@.service', 'a b'), undefined);
    assert.equal(isValidUnitName('foo@.service', ['plain', 'instance']), false);
  });

  it('escapes and unescapes like systemd-escape', () => {
    assert.equal(escapeUnitName('a b/c-d'), 'a\\x20b-c\\x2dd');
    assert.equal(escapeUnitPath('/var/lib/foo/'), 'var-lib-foo');
    assert.equal(escapeUnitPath('/'), '-');
    assert.equal(unescapeUnitName('a\\x20b-c\\x2dd'), 'a b/c-d');
    assert.equal(unescapeUnitName('bad\\q'), undefined);
    assert.equal(unescapeUnitPath('var-lib-foo'), '/var/lib/foo');
    assert.equal(unescapeUnitPath('-'), '/');
    assert.equal(unescapeUnitPath('a--b'), undefined);
  });
});
