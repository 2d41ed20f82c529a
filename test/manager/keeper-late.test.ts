/**
 * A daemon killed right after committing its keeper can leave a keeper that holds the notify
 * socket and every pipe but has not written its manifest yet (under load the commit is confirmed
 * late). The next daemon must wait for that manifest rather than fail to bind the notify socket.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import { eventually, startTestDaemon, unitStatus } from '../helpers/daemon.js';

it('a new daemon waits for a keeper whose manifest comes late, and re-adopts what it holds', async () => {
  let d = await startTestDaemon({ 'steady.service': '[Service]\nExecStart=/bin/sleep 600\n' });
  await d.call('Start', { name: 'steady' });
  const main = (await unitStatus(d, 'steady')).mainProcess!;
  using handle = Pidfd.verify(main.pid, main.pidfdId!);
  const manifest = join(d.dir, 'state', 'keeper.json');
  await eventually(() => (existsSync(manifest) && readFileSync(manifest, 'utf8').includes('pidfd:') ? true : undefined), 'the keeper to hold the pidfd');
  await d.crash();
  // As if the keeper had not written its manifest yet: it appears a moment after the next daemon starts.
  renameSync(manifest, `${manifest}.late`);
  const late = setTimeout(() => renameSync(`${manifest}.late`, manifest), 1000);
  try {
    d = await startTestDaemon({}, d.dir);
  } finally {
    clearTimeout(late);
  }
  try {
    const s = await unitStatus(d, 'steady');
    assert.equal(s.activeState, 'active');
    assert.deepEqual(s.mainProcess, main, 'the same process, re-adopted');
    assert.equal(handle.isAlive(), true);
  } finally {
    await d.stop();
  }
});
