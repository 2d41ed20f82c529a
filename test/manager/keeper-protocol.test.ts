/**
 * The keeper protocol as data: every message round-trips, every key parses back to what built it,
 * and malformed input is refused with an error that says what is wrong (the keeper drops such a
 * message instead of ending on it).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  decodeFromKeeper,
  decodeHeldItem,
  decodeManifest,
  decodeToKeeper,
  encodeFromKeeper,
  encodeToKeeper,
  fdsOf,
  KeeperProtocolError,
  logPipeKey,
  manifestJson,
  MAX_MESSAGE_BYTES,
  NOTIFY_KEY,
  parseHeldKey,
  pidfdKey,
  type HeldItem,
  type KeeperManifest,
  type ToKeeper,
} from '../../src/manager/keeper/protocol.js';

const log: HeldItem = {
  kind: 'log',
  key: logPipeKey('web@a:b.service', 7, 'stderr'),
  unit: 'web@a:b.service',
  stream: 'stderr',
  invocationId: 'f'.repeat(32),
  pid: 4242,
  pidfdId: '98765',
  spool: 'web@a:b.service.stderr.1',
};
const pidfd: HeldItem = { kind: 'pidfd', key: pidfdKey(4242, 98765n), pid: 4242, pidfdId: '98765' };
const notify: HeldItem = { kind: 'notify', key: NOTIFY_KEY };

/** A message as raw bytes, as a sender that does not use the encoder could send it. */
function raw(value: unknown): Buffer {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof KeeperProtocolError, `a KeeperProtocolError, not ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('keeper keys', () => {
  it('parse back to what built them, a unit name with colons included', () => {
    assert.deepEqual(parseHeldKey(logPipeKey('web@a:b.service', 7, 'stderr')), { kind: 'log', unit: 'web@a:b.service', seq: 7, stream: 'stderr' });
    assert.deepEqual(parseHeldKey(logPipeKey('x.service', 1, 'stdout')), { kind: 'log', unit: 'x.service', seq: 1, stream: 'stdout' });
    assert.deepEqual(parseHeldKey(pidfdKey(12, 345n)), { kind: 'pidfd', pid: 12, pidfdId: '345' });
    assert.deepEqual(parseHeldKey(pidfdKey(12, '345')), { kind: 'pidfd', pid: 12, pidfdId: '345' });
    assert.deepEqual(parseHeldKey(pidfdKey(12, undefined)), { kind: 'pidfd', pid: 12, pidfdId: null });
    assert.deepEqual(parseHeldKey(NOTIFY_KEY), { kind: 'notify' });
  });

  it('keep the spelling earlier manifests used', () => {
    assert.equal(logPipeKey('a.service', 3, 'stdout'), 'log:a.service:3:stdout');
    assert.equal(pidfdKey(12, 345n), 'pidfd:12:345');
    assert.equal(pidfdKey(12, null), 'pidfd:12:');
  });

  it('anything else is no key', () => {
    for (const key of ['', 'log:a.service:x:stdout', 'log::1:stdout', 'log:a.service:1:stdin', 'pidfd:0:1', 'pidfd:-3:1', 'pidfd:12:abc', 'notify:1', 'socket:a']) {
      assert.equal(parseHeldKey(key), undefined, key);
    }
  });
});

describe('keeper messages', () => {
  it('round-trip in both directions, with the fds each op takes', () => {
    const messages: ToKeeper[] = [
      { op: 'hold', item: log },
      { op: 'hold', item: pidfd },
      { op: 'hold', item: notify },
      { op: 'drop', key: log.key },
      { op: 'commit', retiring: null },
      { op: 'commit', retiring: { pid: 77, pidfdId: '123' } },
      { op: 'sync' },
    ];
    for (const message of messages) assert.deepEqual(decodeToKeeper(encodeToKeeper(message), fdsOf(message)), message);
    assert.deepEqual(decodeFromKeeper(encodeFromKeeper({ op: 'synced' })), { op: 'synced' });
  });

  it('a hold carries the item only, not the fd number of a taken-back entry', () => {
    const message = JSON.parse(encodeToKeeper({ op: 'hold', item: { ...pidfd, fd: 17 } as HeldItem }).toString()) as { item: Record<string, unknown> };
    assert.equal('fd' in message.item, false);
  });

  it('a hold from an older sender that left out null fields reads them as null', () => {
    const message = decodeToKeeper(raw({ op: 'hold', item: { key: 'log:c.service:1:stdout', kind: 'log', unit: 'c.service', stream: 'stdout' } }), 1);
    assert.deepEqual(message, { op: 'hold', item: { kind: 'log', key: 'log:c.service:1:stdout', unit: 'c.service', stream: 'stdout', invocationId: null, pid: null, pidfdId: null, spool: null } });
  });

  it('malformed messages are refused, saying what is wrong', () => {
    refused(() => decodeToKeeper(Buffer.alloc(0), 0), /empty/);
    refused(() => decodeToKeeper(raw('{"op":"hold","item":{"key":"log:c.ser'), 1), /not JSON/);
    refused(() => decodeToKeeper(Buffer.from([0x7b, 0xff, 0x7d]), 0), /not JSON/);
    refused(() => decodeToKeeper(raw('[1,2]'), 0), /expected an object/);
    refused(() => decodeToKeeper(raw('null'), 0), /expected an object/);
    refused(() => decodeToKeeper(raw({ op: 'explode' }), 0), /unknown op "explode"/);
    refused(() => decodeToKeeper(raw({}), 0), /unknown op nothing/);
    refused(() => decodeToKeeper(encodeToKeeper({ op: 'hold', item: log }), 0), /hold: came with 0 fd\(s\), takes 1/);
    refused(() => decodeToKeeper(encodeToKeeper({ op: 'hold', item: log }), 2), /came with 2 fd/);
    refused(() => decodeToKeeper(encodeToKeeper({ op: 'sync' }), 1), /sync: came with 1 fd/);
    refused(() => decodeToKeeper(raw({ op: 'drop' }), 0), /drop.key: expected a non-empty string, got nothing/);
    refused(() => decodeToKeeper(raw({ op: 'drop', key: 5 }), 0), /drop.key/);
    refused(() => decodeToKeeper(raw({ op: 'commit', retiring: { pid: 'x', pidfdId: '1' } }), 0), /commit.retiring.pid: expected a positive integer/);
    refused(() => decodeToKeeper(raw({ op: 'commit', retiring: { pid: 3 } }), 0), /commit.retiring.pidfdId/);
    refused(() => decodeFromKeeper(raw({ op: 'hold' })), /reply: unknown op/);
    refused(() => decodeFromKeeper(raw('synced')), /not JSON/);
  });

  it('a held item whose key does not name it is refused', () => {
    const hold = (item: Record<string, unknown>): Buffer => raw({ op: 'hold', item });
    refused(() => decodeToKeeper(hold({ ...log, key: 'whatever' }), 1), /"whatever" is not a keeper key/);
    refused(() => decodeToKeeper(hold({ ...log, kind: 'pidfd' }), 1), /kind "pidfd" with a log key/);
    refused(() => decodeToKeeper(hold({ ...log, unit: 'other.service' }), 1), /names another pipe/);
    refused(() => decodeToKeeper(hold({ ...log, stream: 'stdout' }), 1), /names another pipe/);
    refused(() => decodeToKeeper(hold({ ...log, stream: 'stdin' }), 1), /stream: expected "stdout" or "stderr"/);
    refused(() => decodeToKeeper(hold({ ...log, pid: -1 }), 1), /hold.item.pid: expected a positive integer/);
    refused(() => decodeToKeeper(hold({ ...log, spool: 3 }), 1), /hold.item.spool/);
    refused(() => decodeToKeeper(hold({ ...pidfd, pid: 4243 }), 1), /names another process/);
    refused(() => decodeToKeeper(hold({ ...pidfd, pidfdId: '1' }), 1), /names another process/);
    refused(() => decodeToKeeper(hold({ kind: 'notify', key: 'log:a.service:1:stdout' }), 1), /kind "notify" with a log key/);
    refused(() => decodeHeldItem('notify'), /held item: expected an object/);
  });

  it('a message too big for the keeper to receive is refused when it is made', () => {
    const unit = `${'u'.repeat(MAX_MESSAGE_BYTES)}.service`;
    refused(() => encodeToKeeper({ op: 'drop', key: logPipeKey(unit, 1, 'stdout') }), /drop message of \d+ bytes is over/);
  });
});

describe('keeper manifest', () => {
  const manifest: KeeperManifest = {
    pid: 100,
    pidfdId: '555',
    bootId: 'b'.repeat(32),
    entries: [
      { ...log, fd: 5 },
      { ...pidfd, fd: 6 },
      { ...notify, fd: 7 },
    ],
    retiring: { pid: 99, pidfdId: '554' },
  };

  it('round-trips through JSON', () => {
    assert.deepEqual(decodeManifest(JSON.parse(JSON.stringify(manifestJson(manifest)))), { manifest, rejected: [] });
  });

  it('reads one written before the protocol was typed (no retiring, null fields left out)', () => {
    const old = { pid: 100, pidfdId: '555', bootId: 'b'.repeat(32), entries: [{ key: 'log:a.service:1:stdout', kind: 'log', unit: 'a.service', stream: 'stdout', fd: 5 }, { key: 'notify', kind: 'notify', fd: 7 }] };
    const { manifest: read, rejected } = decodeManifest(old);
    assert.deepEqual(rejected, []);
    assert.equal(read.retiring, null);
    assert.deepEqual(read.entries[0], { kind: 'log', key: 'log:a.service:1:stdout', unit: 'a.service', stream: 'stdout', invocationId: null, pid: null, pidfdId: null, spool: null, fd: 5 });
  });

  it('leaves out an entry that does not check out, and says why; the rest comes back', () => {
    const value = manifestJson(manifest) as unknown as { entries: Record<string, unknown>[] };
    value.entries[0] = { ...value.entries[0], fd: -1 };
    value.entries[1] = { ...value.entries[1], key: 'pidfd:1:1' };
    const { manifest: read, rejected } = decodeManifest(value);
    assert.deepEqual(read.entries.map((e) => e.kind), ['notify']);
    assert.equal(rejected.length, 2);
    assert.match(rejected[0]!, /entries\[0\]\.fd: expected an fd number/);
    assert.match(rejected[1]!, /entries\[1\]: key pidfd:1:1 names another process/);
  });

  it('refuses a manifest that names no keeper', () => {
    refused(() => decodeManifest(null), /manifest: expected an object/);
    refused(() => decodeManifest({ ...manifestJson(manifest), pid: 0 }), /manifest.pid/);
    refused(() => decodeManifest({ ...manifestJson(manifest), bootId: undefined }), /manifest.bootId/);
    refused(() => decodeManifest({ ...manifestJson(manifest), entries: {} }), /manifest.entries: expected an array/);
  });
});
