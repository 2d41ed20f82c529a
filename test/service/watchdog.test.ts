import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { notify, startWatchdog, watchdogInterval } from '../../src/service/index.js';
import { PythonReceiver, pythonUnavailable } from './helpers/receiver.js';

const noPython = pythonUnavailable();

describe('watchdogInterval()', () => {
  it('reads $WATCHDOG_USEC in ms, only for this process', () => {
    assert.equal(watchdogInterval({ env: {} }), undefined);
    assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: '200000' } }), 200);
    assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: '1500' } }), 1.5);
    assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) } }), 200);
    assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid + 1) } }), undefined);
  });

  it('throws EINVAL for malformed values', () => {
    assert.throws(() => watchdogInterval({ env: { WATCHDOG_USEC: '0' } }), { code: 'EINVAL', message: /\$WATCHDOG_USEC="0"/ });
    assert.throws(() => watchdogInterval({ env: { WATCHDOG_USEC: '10s' } }), { code: 'EINVAL', message: /\$WATCHDOG_USEC="10s"/ });
    assert.throws(() => watchdogInterval({ env: { WATCHDOG_USEC: '' } }), { code: 'EINVAL' });
    assert.throws(() => watchdogInterval({ env: { WATCHDOG_USEC: '100', WATCHDOG_PID: 'me' } }), { code: 'EINVAL', message: /\$WATCHDOG_PID="me"/ });
  });

  it('unsetEnvironment removes both variables', () => {
    const saved = [process.env['WATCHDOG_USEC'], process.env['WATCHDOG_PID']];
    process.env['WATCHDOG_USEC'] = '300000';
    process.env['WATCHDOG_PID'] = String(process.pid);
    try {
      assert.equal(watchdogInterval({ unsetEnvironment: true }), 300);
      assert.equal(process.env['WATCHDOG_USEC'], undefined);
      assert.equal(process.env['WATCHDOG_PID'], undefined);
    } finally {
      if (saved[0] !== undefined) process.env['WATCHDOG_USEC'] = saved[0];
      if (saved[1] !== undefined) process.env['WATCHDOG_PID'] = saved[1];
    }
  });
});

describe('startWatchdog() against a Python receiver', { skip: noPython }, () => {
  let receiver: PythonReceiver;
  before(async () => {
    receiver = await PythonReceiver.start('abstract');
  });
  after(async () => {
    await receiver?.close();
  });

  /** Sends a marker and returns every datagram that arrived before it, from `since` on. */
  async function until(marker: string, since: number): Promise<string[]> {
    notify({ X_MARKER: marker }, { socket: receiver.address });
    const seen: string[] = [];
    for (;;) {
      const got = await receiver.next(`the marker ${marker}`);
      if (got.text === `X_MARKER=${marker}`) return seen;
      if (got.seq > since) seen.push(got.text);
    }
  }

  it('pings WATCHDOG=1 on a real timer with WATCHDOG_USEC=200000, and stops cleanly', async () => {
    const start = receiver.messages.length;
    const stop = startWatchdog({ env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }, notifyOptions: { socket: receiver.address } });
    assert.equal(stop.periodMs, 100);
    assert.equal(stop.running, true);
    const seen = await receiver.waitFor(start + 2, 'two watchdog pings');
    stop();
    stop();
    assert.equal(stop.running, false);
    for (const got of seen.slice(start)) {
      assert.equal(got.text, 'WATCHDOG=1');
      assert.equal(got.pid, process.pid);
    }
    const pings = stop.pings;
    assert.ok(pings >= 2);
    const received = await until('after-real-timer', start);
    assert.deepEqual(received, Array.from({ length: pings }, () => 'WATCHDOG=1'));
  });

  it('pings at half the interval (mock timers): once at start, then per period, none after stop', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const start = receiver.messages.length;
    const stop = startWatchdog({ env: { WATCHDOG_USEC: '1000000' }, notifyOptions: { socket: receiver.address } });
    assert.equal(stop.periodMs, 500);
    assert.equal(stop.pings, 1);
    t.mock.timers.tick(499);
    assert.equal(stop.pings, 1);
    t.mock.timers.tick(1);
    assert.equal(stop.pings, 2);
    t.mock.timers.tick(1500);
    assert.equal(stop.pings, 5);
    stop[Symbol.dispose]();
    t.mock.timers.tick(5000);
    assert.equal(stop.pings, 5);
    assert.deepEqual(await until('after-mock', start), Array.from({ length: 5 }, () => 'WATCHDOG=1'));
  });

  it('does nothing when WATCHDOG_PID names another process, or without a watchdog', async () => {
    const start = receiver.messages.length;
    const other = startWatchdog({ env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid + 1) }, notifyOptions: { socket: receiver.address } });
    assert.equal(other.periodMs, undefined);
    assert.equal(other.running, false);
    assert.equal(other.pings, 0);
    other();
    const none = startWatchdog({ env: {}, notifyOptions: { socket: receiver.address } });
    assert.equal(none.running, false);
    assert.deepEqual(await until('after-disabled', start), []);
  });

  it('does not keep a timer without NOTIFY_SOCKET', () => {
    const stop = startWatchdog({ env: { WATCHDOG_USEC: '200000' }, notifyOptions: { env: {} } });
    assert.equal(stop.periodMs, 100);
    assert.equal(stop.running, false);
    assert.equal(stop.pings, 0);
  });

  it('reports failed pings through onError and keeps going', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const errors: string[] = [];
    const stop = startWatchdog({
      env: { WATCHDOG_USEC: '200000' },
      notifyOptions: { socket: `@holdfast-test-no-manager-${process.pid}` },
      onError: (error) => errors.push((error as NodeJS.ErrnoException).code ?? '?'),
    });
    t.mock.timers.tick(250);
    assert.equal(stop.running, true);
    stop();
    assert.deepEqual(errors, ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
  });
});
