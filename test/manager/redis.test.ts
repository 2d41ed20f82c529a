import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/index.js';
import type { UnitStatus } from '../../src/manager/types.js';
import { startTestDaemon } from '../helpers/daemon.js';

const redis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });

describe('a real third-party Type=notify daemon', () => {
  it('Redis (--supervised systemd) is started when it says READY=1, answers, and stops on SIGTERM', async (t) => {
    if (redis.error !== undefined) return t.skip('redis-server is not installed (CI installs it with apt-get)');
    const d = await startTestDaemon();
    try {
      const sock = join(d.dir, 'redis.sock');
      d.unit(
        'redis.service',
        `[Unit]\nDescription=Redis under holdfast\n[Service]\nType=notify\nExecStart=/usr/bin/redis-server --supervised systemd --daemonize no --port 0 --unixsocket ${sock} --save "" --appendonly no\nTimeoutStartSec=20s\n`,
      );
      await d.call('DaemonReload');
      const { job } = await d.call<{ job: { result: string; activeState: string } }>('Start', { name: 'redis' });
      assert.equal(job.result, 'done');
      assert.equal(job.activeState, 'active');
      const { unit } = await d.call<{ unit: UnitStatus }>('Status', { name: 'redis' });
      assert.equal(unit.subState, 'running');
      const ping = spawnSync('redis-cli', ['-s', sock, 'ping'], { encoding: 'utf8' });
      assert.equal(ping.stdout.trim(), 'PONG');
      using main = Pidfd.verify(unit.mainProcess!.pid, unit.mainProcess!.pidfdId!);
      await d.call('Stop', { name: 'redis' });
      const end = await main.exited;
      assert.equal(end.code, 0, 'redis exits cleanly on SIGTERM');
    } finally {
      await d.stop();
    }
  });
});
