// Any local user may send to the notify socket (0777, as systemd's): a flood of datagrams from a
// process that belongs to no unit must not flood the daemon's own log (issue 10, item 4).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { ServiceUnit } from '../../src/manager/runtime/service-unit.js';
import { eventually, startTestDaemon } from '../helpers/daemon.js';
import { FakeWorld, serviceConfig } from '../helpers/fake-ports.js';
import { childExit } from '../helpers/processes.js';
import { createTestUser, testUsersUnsupported } from '../helpers/users.js';

const DATAGRAMS = 20_000;

describe('a stranger flooding the notify socket', () => {
  it('20 000 datagrams from another user: a bounded number of log lines, the rest counted, the daemon answers', async (t) => {
    const reason = testUsersUnsupported();
    if (reason !== undefined) return t.skip(reason);
    const stranger = createTestUser('fl');
    const d = await startTestDaemon({ 'quiet.service': '[Service]\nExecStart=/bin/sleep 600\n' });
    try {
      chmodSync(d.dir, 0o755);
      await d.call('Start', { name: 'quiet' });
      const sender = join(d.dir, 'flood.py');
      writeFileSync(
        sender,
        [
          'import socket, sys',
          's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
          `for i in range(${DATAGRAMS}): s.sendto(b'READY=1', sys.argv[1])`,
        ].join('\n'),
      );
      chmodSync(sender, 0o644);
      const flood = spawn('/usr/bin/python3', [sender, join(d.dir, 'run', 'notify')], { uid: stranger.uid, gid: stranger.gid, stdio: ['ignore', 'ignore', 'pipe'] });
      let floodErr = '';
      flood.stderr!.setEncoding('utf8').on('data', (s: string) => (floodErr += s));
      // The daemon answers while the flood runs.
      const listed = await d.call<{ units: unknown[] }>('List');
      assert.ok(listed.units.length >= 1);
      const exit = await childExit(flood);
      assert.equal(exit.code, 0, floodErr);
      const ignoredLine = new RegExp(`notification from PID \\d+ \\(UID ${stranger.uid}\\), which belongs to no unit; ignored`);
      const summary = new RegExp(`from UID ${stranger.uid}: suppressed (\\d+) more similar log lines?`, 'g');
      const counts = await eventually(
        () => {
          const lines = d.stderr().split('\n');
          const logged = lines.filter((l) => ignoredLine.test(l)).length;
          const suppressed = [...d.stderr().matchAll(summary)].reduce((sum, m) => sum + Number(m[1]), 0);
          return logged + suppressed === DATAGRAMS ? { logged, suppressed } : undefined;
        },
        'every datagram either logged or counted as suppressed',
        500,
      );
      assert.ok(counts.logged <= 30, `${counts.logged} lines logged for ${DATAGRAMS} datagrams`);
      assert.ok(counts.suppressed >= DATAGRAMS - 30);
      assert.ok(d.stderr().split('\n').length < 100, 'the daemon\'s log stays small');
      assert.equal((await d.call<{ unit: { activeState: string } }>('Status', { name: 'quiet' })).unit.activeState, 'active');
    } finally {
      await d.stop();
      stranger.remove();
    }
  });
});

describe('a unit\'s own processes flooding it with notifications', () => {
  it('lines a notification provokes are rate-limited per unit, with the count of the rest', () => {
    const world = new FakeWorld();
    const unit = new ServiceUnit(serviceConfig('n.service', '[Service]\nType=notify\nNotifyAccess=main\nExecStart=/bin/server\n'), world);
    void unit.start();
    const child = world.table.add(4242);
    const datagram = { assignments: [['READY', '1']] as [string, string][], takeFds: () => [], sender: { pid: child.pid, uid: 1000 } };
    for (let i = 0; i < 1000; i++) unit.handleNotify(datagram, 'other');
    const refused = (): number => world.events.logs.filter((l) => /refused \(NotifyAccess=main/.test(l.text)).length;
    assert.equal(refused(), 10);
    world.clock.advance(10_000);
    unit.handleNotify(datagram, 'other');
    assert.equal(refused(), 11, 'a new window lets lines through again');
    assert.ok(world.events.logs.some((l) => /^notifications: suppressed 990 more similar log lines/.test(l.text)), JSON.stringify(world.events.logs.slice(-3)));
    unit.dispose();
  });
});
