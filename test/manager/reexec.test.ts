import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VarlinkClient } from '../../src/api/varlink/index.js';
import { Pidfd } from '../../src/index.js';
import type { LogRecord, UnitStatus } from '../../src/manager/types.js';
import { eventually, startTestDaemon } from '../helpers/daemon.js';

describe('holdfast daemon-reexec', () => {
  it('re-executes under load: same daemon PID, same services by pidfd id, no log line lost, every call answered or cleanly refused', async () => {
    const d = await startTestDaemon({
      'counter.service': "[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.005; done'\n",
      'sleeper.service': '[Service]\nExecStart=/bin/sleep 600\n',
      // Half a line sits in the pipe for most of the time: the re-exec must not cut one in two.
      'halves.service': "[Service]\nExecStart=/bin/sh -c 'i=0; while :; do i=$((i+1)); printf \"half $i \"; sleep 0.03; echo \"end $i\"; done'\n",
    });
    try {
      await d.call('Start', { name: 'counter' });
      await d.call('Start', { name: 'sleeper' });
      await d.call('Start', { name: 'halves' });
      const before = (await d.call<{ units: UnitStatus[] }>('List')).units;
      const counter = before.find((u) => u.name === 'counter.service')!.mainProcess!;
      using counterHandle = Pidfd.verify(counter.pid, counter.pidfdId!);

      // Clients keep calling while the daemon re-executes.
      let stop = false;
      const outcomes = { answered: 0, refused: 0 };
      const load = async (): Promise<void> => {
        while (!stop) {
          try {
            const client = await VarlinkClient.connect(d.socket);
            try {
              for (let i = 0; i < 5 && !stop; i++) {
                await client.call('io.holdfast.Manager.List', {}, { signal: AbortSignal.timeout(20_000) });
                outcomes.answered++;
              }
            } finally {
              client.destroy();
            }
          } catch (error) {
            const name = (error as Error).name;
            assert.ok(['io.systemd.Disconnected', 'Error'].includes(name) || /ECONNRESET|EPIPE|Disconnected/.test(String(error)), `a clean refusal, not ${String(error)}`);
            outcomes.refused++;
          }
        }
      };
      const clients = [load(), load(), load()];
      await new Promise((r) => setTimeout(r, 200));
      const reexec = await d.cli(['daemon-reexec']);
      assert.equal(reexec.code, 0, reexec.stderr);
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(clients);
      assert.ok(outcomes.answered > 0);

      assert.equal(d.process.exitCode, null, 'the daemon process is still the same one');
      await eventually(() => (/took over \d+ fd\(s\)/.test(d.stderr()) ? true : undefined), 'the new image to take over');
      const after = (await d.call<{ units: UnitStatus[] }>('List')).units;
      for (const unit of before) {
        const now = after.find((u) => u.name === unit.name)!;
        assert.deepEqual(now.mainProcess, unit.mainProcess, `${unit.name} keeps its main process`);
        assert.equal(now.activeState, 'active');
      }
      assert.equal(counterHandle.isAlive(), true);
      const lines = (await d.call<{ records: LogRecord[] }>('Logs', { name: 'counter' })).records.filter((r) => r.stream === 'stdout').map((r) => Number(r.message.split(' ')[1]));
      for (let i = 1; i < lines.length; i++) assert.equal(lines[i], lines[i - 1]! + 1, `no line lost or repeated around ${lines[i - 1]}`);
      const halves = (await d.call<{ records: LogRecord[] }>('Logs', { name: 'halves' })).records.filter((r) => r.stream === 'stdout').map((r) => r.message);
      assert.ok(halves.length > 5);
      halves.forEach((message, i) => assert.equal(message, `half ${i + 1} end ${i + 1}`, 'every line whole, once, in order'));

      // The re-executed daemon still supervises: a stop reaches the process, a start spawns anew.
      await d.call('Stop', { name: 'counter' });
      assert.equal((await counterHandle.exited).signal, 'SIGTERM');
      assert.equal((await d.call<{ job: { result: string } }>('Start', { name: 'counter' })).job.result, 'done');
    } finally {
      await d.stop();
    }
  });
});
