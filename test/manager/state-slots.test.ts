/**
 * The slotted state record: the newest whole slot wins, a torn or stale one is never read, and a
 * writer killed with SIGKILL in the middle of writing leaves a record that reads.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readSlots, SlotWriter } from '../../src/manager/state-slots.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-slots-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const fresh = (): string => join(dir, `state-${++n}`);

describe('state slots', () => {
  it('reads the newest write; a writer opened again goes on after it', () => {
    const path = fresh();
    assert.equal(readSlots(path), undefined);
    const writer = new SlotWriter(path);
    writer.write({ v: 'first' });
    writer.write({ v: 'second', padding: 'x'.repeat(5000) });
    writer.write({ v: 'third' });
    writer.close();
    assert.deepEqual(readSlots(path), { v: 'third' });
    // The slot that held the long record was cut down to the short one.
    assert.ok(statSync(`${path}.1`).size < 200);
    const again = new SlotWriter(path);
    again.write({ v: 'fourth' });
    again.close();
    assert.deepEqual(readSlots(path), { v: 'fourth' });
  });

  it('a slot whose bytes do not match its checksum is passed over for the older one', () => {
    const path = fresh();
    const writer = new SlotWriter(path);
    writer.write({ pid: 1234, state: 'active' });
    writer.write({ pid: 1235, state: 'active' });
    writer.close();
    // Same length, one digit changed: valid JSON, the kind of mix a torn write of a same-size record leaves.
    const newest = `${path}.0`;
    writeFileSync(newest, readFileSync(newest, 'utf8').replace('1235', '1236'));
    assert.deepEqual(readSlots(path), { pid: 1234, state: 'active' });
    writeFileSync(newest, 'holdfast-state 9 not-a-header\n{}');
    assert.deepEqual(readSlots(path), { pid: 1234, state: 'active' });
  });

  it('a writer killed with SIGKILL while writing as fast as it can leaves a whole record', async () => {
    const path = fresh();
    const module = fileURLToPath(new URL('../../src/manager/state-slots.js', import.meta.url));
    const script = `
      const { SlotWriter } = await import(${JSON.stringify(module)});
      const writer = new SlotWriter(${JSON.stringify(path)});
      const big = 'y'.repeat(20000);
      for (let i = 1; ; i++) { writer.write({ i, big: big.slice(0, (i * 7919) % 20000) }); if (i === 50) process.stdout.write('go\\n'); }`;
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((resolve) => child.stdout!.once('data', resolve));
      await new Promise((r) => setTimeout(r, Math.random() * 50));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const value = readSlots<{ i: number; big: string }>(path);
      assert.ok(value !== undefined && value.i >= 50, 'a record reads');
      assert.equal(value.big.length, (value.i * 7919) % 20000, 'and it is one whole write');
    }
  });
});
