/**
 * The one signal table, checked name by name against the tools that carry their own: bash's
 * `kill -l`, procps' `kill -L`, Python's `signal` module (glibc's constants, aliases included) and
 * Node's `os.constants.signals`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { describe, it } from 'node:test';
import { lookupSignalName, SIGNAL_ALIASES, SIGNALS, SIGRTMAX, SIGRTMIN, signalName, signalNumber } from '../../src/pidfd/signals.js';
import { signalName as exportedName, signalNumber as exportedNumber } from '../../src/index.js';

/** Every Linux signal number a process can be sent: 1–31 and the real-time range glibc leaves to programs. */
const EVERY_SIGNAL = [...Array.from({ length: 31 }, (_, i) => i + 1), ...Array.from({ length: SIGRTMAX - SIGRTMIN + 1 }, (_, i) => SIGRTMIN + i)];

/** A tool's output, or undefined when it is not installed (or refuses), so the peer check is skipped. */
function run(command: string, args: string[]): string | undefined {
  const out = spawnSync(command, args, { encoding: 'utf8' });
  return out.status === 0 ? out.stdout : undefined;
}

function refusedWithEinval(fn: () => unknown, what: string): void {
  assert.throws(fn, (error: NodeJS.ErrnoException) => error.code === 'EINVAL', what);
}

describe('the signal table', () => {
  it('agrees with bash\'s kill -l on every signal: names 1–31 both ways, real-time names as bash writes them', (t) => {
    const listing = run('bash', ['-c', 'kill -l']);
    if (listing === undefined) return t.skip('no bash here');
    const entries = [...listing.matchAll(/(\d+)\) (SIG[A-Z0-9+-]+)/g)].map((m) => [Number(m[1]), m[2]!] as const);
    assert.deepEqual(entries.map(([n]) => n), EVERY_SIGNAL, 'bash lists the same numbers');
    for (const [number, name] of entries) {
      assert.equal(signalNumber(name), number, name);
      assert.equal(signalNumber(name.slice(3)), number, name.slice(3));
      assert.deepEqual(lookupSignalName(name), { signal: number }, name);
      if (number <= 31) assert.equal(signalName(number), name);
      else assert.equal(signalNumber(signalName(number)), number, `${signalName(number)} reads back`);
    }
  });

  it('agrees with procps\' kill -L on 1–31, POLL included', (t) => {
    const listing = run('/bin/kill', ['-L']);
    if (listing === undefined) return t.skip('no procps kill here');
    const entries = [...listing.matchAll(/(\d+) ([A-Z0-9]+)/g)].map((m) => [Number(m[1]), m[2]!] as const);
    assert.equal(entries.length, 31);
    for (const [number, name] of entries) {
      assert.equal(signalNumber(name), number, name);
      assert.equal(signalNumber(`SIG${name}`), number, name);
    }
  });

  it('agrees with Python\'s signal module (glibc): every name, the aliases SIGIOT, SIGCLD, SIGPOLL and SIGRTMIN/SIGRTMAX included', (t) => {
    const json = run('python3', ['-c', 'import json, signal; print(json.dumps({n: int(v) for n, v in vars(signal).items() if n.startswith("SIG") and not n.startswith("SIG_")}))']);
    if (json === undefined) return t.skip('no python3 here');
    const table = JSON.parse(json) as Record<string, number>;
    for (const alias of ['SIGIOT', 'SIGCLD', 'SIGPOLL', 'SIGRTMIN', 'SIGRTMAX']) assert.ok(alias in table, `python knows ${alias}`);
    for (const [name, number] of Object.entries(table)) {
      assert.equal(signalNumber(name), number, name);
      assert.deepEqual(lookupSignalName(name), { signal: number }, name);
    }
  });

  it('agrees with Node\'s os.constants.signals on every name Node has', () => {
    for (const [name, number] of Object.entries(constants.signals as Record<string, number>)) {
      if (name === 'SIGUNUSED') continue; // an old name of 31 that glibc dropped
      assert.equal(signalNumber(name), number, name);
    }
  });

  it('reads every signal back from its own name, and names an alias by the usual name', () => {
    for (const number of EVERY_SIGNAL) {
      assert.equal(signalNumber(signalName(number)), number, signalName(number));
      assert.deepEqual(lookupSignalName(signalName(number)), { signal: number });
    }
    assert.equal(Object.keys(SIGNALS).length, 31);
    assert.deepEqual(Object.values(SIGNALS).sort((a, b) => a - b), EVERY_SIGNAL.slice(0, 31));
    assert.deepEqual({ ...SIGNAL_ALIASES }, { IOT: 6, POLL: 29, CLD: 17 });
    for (const [alias, number] of Object.entries(SIGNAL_ALIASES)) {
      assert.equal(signalNumber(alias), number);
      assert.equal(signalNumber(`SIG${alias}`), number);
      assert.notEqual(signalName(number), `SIG${alias}`, 'an alias is never printed');
    }
    assert.deepEqual([signalName(6), signalName(17), signalName(29)], ['SIGABRT', 'SIGCHLD', 'SIGIO']);
    assert.deepEqual([signalName(34), signalName(35), signalName(64)], ['SIGRTMIN', 'SIGRTMIN+1', 'SIGRTMIN+30']);
    assert.deepEqual([signalName(0), signalName(32), signalName(33), signalName(65)], ['0', '32', '33', '65']);
  });

  it('signalNumber takes command-line forms (any case, spaces, numbers 0–64) and refuses the rest with EINVAL', () => {
    assert.deepEqual(['term', ' SIGterm ', 'Xcpu', '15', 15].map((s) => signalNumber(s)), [15, 15, 24, 15, 15]);
    assert.deepEqual([signalNumber(0), signalNumber('0'), signalNumber(64), signalNumber('rtmax-1'), signalNumber('SIGRTMIN+30')], [0, 0, 64, 63, 64]);
    for (const bad of [65, -1, 1.5, Number.NaN, '65', '-1', '', 'SIGFOO', 'SIG', 'RTMIN+31', 'RTMIN-1', 'RTMAX+1', 'RTMIN+', 'SIGSIGTERM']) {
      refusedWithEinval(() => signalNumber(bad), JSON.stringify(bad));
    }
  });

  it('lookupSignalName is strict as unit files are: upper case, no numbers; an out-of-range real-time offset says so', () => {
    assert.deepEqual(lookupSignalName('sigterm'), { refused: 'unknown' });
    assert.deepEqual(lookupSignalName('15'), { refused: 'unknown' });
    assert.deepEqual(lookupSignalName('RTMIN-1'), { refused: 'unknown' });
    assert.deepEqual(lookupSignalName('RTMIN+31'), { refused: 'out-of-range' });
    assert.deepEqual(lookupSignalName('SIGRTMAX-31'), { refused: 'out-of-range' });
    assert.deepEqual(lookupSignalName('SIGRTMAX-30'), { signal: 34 });
  });

  it('is what the package exports', () => {
    assert.equal(exportedNumber, signalNumber);
    assert.equal(exportedName, signalName);
  });
});
