import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Pidfd } from '../../src/pidfd/index.js';
import { PythonReceiver, pythonUnavailable, within, type Datagram } from './helpers/receiver.js';
import { exitOf, here } from './helpers/util.js';

function httpGet(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ socketPath, path: '/hello', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function retryGet(path: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await httpGet(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || attempt > 400) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('examples/socket-activated-server under systemd-socket-activate', () => {
  it('serves on the inherited socket, reports READY, pings the watchdog, reloads on SIGHUP and stops on SIGTERM', async (t) => {
    const python = pythonUnavailable();
    if (python !== undefined) return t.skip(python);
    const probe = spawnSync('systemd-socket-activate', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined) return t.skip(`systemd-socket-activate is not installed: ${probe.error.message}`);

    const dir = mkdtempSync(join(tmpdir(), 'holdfast-example-'));
    const http = join(dir, 'http.sock');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ greeting: 'hi' }));
    const receiver = await PythonReceiver.start('path', 'manager');
    const server = here('../../examples/socket-activated-server/server.js');
    const child = spawn(
      'systemd-socket-activate',
      ['-l', http, '--fdname=web', '-E', `NOTIFY_SOCKET=${receiver.address}`, '-E', 'WATCHDOG_USEC=400000', '-E', `SERVER_CONFIG=${config}`, process.execPath, server],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // systemd-socket-activate execs the server in its own process: this handle is the server's.
    const handle = Pidfd.fromChild(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    /** The next datagram that is not a watchdog ping; counts the pings on the way. */
    let pings = 0;
    const nextEvent = async (what: string): Promise<Datagram> => {
      for (;;) {
        const got = await receiver.next(`${what} (server stderr: ${stderr})`);
        assert.equal(got.pid, child.pid, `a datagram from another process: ${got.text}`);
        if (got.text === 'WATCHDOG=1') pings++;
        else return got;
      }
    };
    try {
      const first = JSON.parse(await within(retryGet(http), 'the first HTTP answer')) as Record<string, unknown>;
      assert.deepEqual(first, { greeting: 'hi', generation: 0, pid: child.pid, path: '/hello' });
      assert.equal((await nextEvent('READY=1')).text, 'READY=1\nSTATUS=serving on fd 3 (web), configuration generation 0');
      if (pings === 0) {
        const ping = await receiver.next('a watchdog ping');
        assert.equal(ping.text, 'WATCHDOG=1');
        assert.equal(ping.pid, child.pid);
        pings++;
      }

      writeFileSync(config, JSON.stringify({ greeting: 'bonjour' }));
      handle.signal('SIGHUP');
      const reloadingMessage = await nextEvent('RELOADING=1');
      assert.match(reloadingMessage.text, /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the configuration$/);
      assert.equal((await nextEvent('READY=1 after the reload')).text, 'READY=1\nSTATUS=serving on fd 3 (web), configuration generation 1');
      const second = JSON.parse(await within(httpGet(http), 'the second HTTP answer')) as Record<string, unknown>;
      assert.deepEqual(second, { greeting: 'bonjour', generation: 1, pid: child.pid, path: '/hello' });

      handle.signal('SIGTERM');
      assert.equal((await nextEvent('STOPPING=1')).text, 'STOPPING=1\nSTATUS=shutting down');
      assert.deepEqual(await within(exitOf(child), 'the server to exit'), { code: 0, signal: null });
      assert.ok(pings >= 1);
    } finally {
      if (handle.isAlive()) handle.signal('SIGKILL');
      handle.close();
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
