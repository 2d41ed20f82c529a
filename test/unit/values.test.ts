import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkPath,
  formatTimeSpan,
  parseBoolean,
  parseExitStatus,
  parseMode,
  parsePercent,
  parseRlimit,
  parseSignal,
  parseSize,
  parseTimeSpan,
  parseTimeSpanUsec,
  parseUnsigned,
  signalName,
  SIGNALS,
  SIGRTMAX,
  SIGRTMIN,
  type ValueResult,
} from '../../src/unit/index.js';

function value<T>(r: ValueResult<T>): T {
  assert.ok(r.ok, `expected success, got ${r.ok ? '' : r.error}`);
  return r.value;
}

function refused<T>(r: ValueResult<T>): string {
  assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r)}`);
  return r.ok ? '' : r.error;
}

describe('parseTimeSpan (systemd.time(7))', () => {
  const cases: Array<[string, number]> = [
    ['5', 5000],
    ['5s', 5000],
    ['1min 30s', 90_000],
    ['100ms', 100],
    ['2h', 7_200_000],
    ['0', 0],
    ['1us', 0.001],
    ['1usec', 0.001],
    ['3µs', 0.003],
    ['3μs', 0.003],
    ['1.5s', 1500],
    ['.5s', 500],
    ['1.25min', 75_000],
    ['55s500ms', 55_500],
    ['300ms20s 5day', 432_020_300],
    ['1 2', 3000],
    ['2 hours', 7_200_000],
    ['1m', 60_000],
    ['1M', 2_629_800_000],
    ['1month', 2_629_800_000],
    ['1w', 604_800_000],
    ['1y', 31_557_600_000],
    ['1d 2h 3min 4s 5ms 6us', 93_784_005.006],
    ['+5s', 5000],
    ['  7s  ', 7000],
    ['infinity', Infinity],
    ['  infinity ', Infinity],
  ];
  for (const [text, ms] of cases) {
    it(`'${text}' is ${ms} ms`, () => assert.equal(value(parseTimeSpan(text)), ms));
  }

  const bad = ['', '   ', 's', '-1', '-0', '5x', '1.s', '1.', '12.34.56', 'infinityx', 'infinity 5', '5 s x', '+', '1e3', '99999999999999999999y'];
  for (const text of bad) {
    it(`refuses '${text}'`, () => void refused(parseTimeSpan(text)));
  }

  it('uses the default unit for bare numbers', () => {
    assert.equal(value(parseTimeSpanUsec('250', 1n)), 250n);
    assert.equal(value(parseTimeSpanUsec('1s', 1n)), 1_000_000n);
    assert.equal(value(parseTimeSpanUsec('infinity')), 'infinity');
  });

  it('formats spans the way systemd prints them', () => {
    assert.equal(formatTimeSpan(90_000), '1min 30s');
    assert.equal(formatTimeSpan(100), '100ms');
    assert.equal(formatTimeSpan(Infinity), 'infinity');
    assert.equal(formatTimeSpan(0), '0');
    assert.equal(formatTimeSpan(0.5), '500us');
  });
});

describe('parseBoolean', () => {
  it('accepts systemd spellings in any case', () => {
    for (const t of ['1', 'yes', 'Y', 'true', 't', 'ON']) assert.equal(value(parseBoolean(t)), true);
    for (const t of ['0', 'no', 'N', 'false', 'f', 'Off']) assert.equal(value(parseBoolean(t)), false);
    assert.equal(refused(parseBoolean('maybe')), "'maybe' is not a boolean");
    refused(parseBoolean(''));
  });
});

describe('parseUnsigned', () => {
  it('reads decimal, hex, binary and octal like safe_atou()', () => {
    assert.equal(value(parseUnsigned('10')), 10);
    assert.equal(value(parseUnsigned('+5')), 5);
    assert.equal(value(parseUnsigned('0x1F')), 31);
    assert.equal(value(parseUnsigned('0b101')), 5);
    assert.equal(value(parseUnsigned('0o17')), 15);
    assert.equal(value(parseUnsigned('010')), 8);
    assert.equal(value(parseUnsigned('0')), 0);
    refused(parseUnsigned('-1'));
    refused(parseUnsigned('08'));
    refused(parseUnsigned('1.5'));
    refused(parseUnsigned(''));
    refused(parseUnsigned('4294967296'));
  });
});

describe('parseSignal', () => {
  it('takes names with or without SIG, numbers and real-time offsets', () => {
    assert.equal(value(parseSignal('SIGTERM')), 15);
    assert.equal(value(parseSignal('TERM')), 15);
    assert.equal(value(parseSignal('SIGKILL')), 9);
    assert.equal(value(parseSignal('SIGUSR1')), 10);
    assert.equal(value(parseSignal('9')), 9);
    assert.equal(value(parseSignal('RTMIN')), 34);
    assert.equal(value(parseSignal('SIGRTMIN+2')), 36);
    assert.equal(value(parseSignal('RTMAX')), 64);
    assert.equal(value(parseSignal('RTMAX-1')), 63);
    for (const bad of ['0', '65', 'SIGFOO', 'sigterm', 'RTMIN+31', 'RTMIN-1', 'RTMAX+1', '']) refused(parseSignal(bad));
  });

  it('takes every signal by both names, the aliases SIGIOT, SIGCLD, SIGPOLL, and every real-time signal from both ends', () => {
    for (const [name, number] of Object.entries(SIGNALS)) {
      assert.equal(value(parseSignal(name)), number, name);
      assert.equal(value(parseSignal(`SIG${name}`)), number, `SIG${name}`);
      assert.equal(signalName(number), `SIG${name}`);
    }
    assert.equal(Object.keys(SIGNALS).length, 31);
    assert.deepEqual(['SIGIOT', 'IOT', 'SIGCLD', 'CLD', 'SIGPOLL', 'POLL', 'SIGXCPU', 'XCPU'].map((s) => value(parseSignal(s))), [6, 6, 17, 17, 29, 29, 24, 24]);
    for (let n = SIGRTMIN; n <= SIGRTMAX; n++) {
      assert.equal(value(parseSignal(`SIGRTMIN+${n - SIGRTMIN}`)), n);
      assert.equal(value(parseSignal(`RTMAX-${SIGRTMAX - n}`)), n);
      assert.equal(value(parseSignal(signalName(n))), n);
      assert.equal(value(parseSignal(String(n))), n);
    }
  });

  it('says why a signal is refused', () => {
    assert.equal(refused(parseSignal('SIGWHAT')), "'SIGWHAT' is not a signal");
    assert.equal(refused(parseSignal('sigterm')), "'sigterm' is not a signal");
    assert.equal(refused(parseSignal('RTMIN+31')), "signal 'RTMIN+31' is out of range");
    assert.equal(refused(parseSignal('SIGRTMAX-31')), "signal 'SIGRTMAX-31' is out of range");
    assert.equal(refused(parseSignal('65')), 'signal number 65 is out of range');
  });

  it('names signals', () => {
    assert.equal(signalName(15), 'SIGTERM');
    assert.equal(signalName(34), 'SIGRTMIN');
    assert.equal(signalName(36), 'SIGRTMIN+2');
    assert.equal(signalName(99), '99');
  });
});

describe('parseExitStatus', () => {
  it('takes 0…255 and the names of exit-status.c', () => {
    assert.equal(value(parseExitStatus('TEMPFAIL')), 75);
    assert.equal(value(parseExitStatus('EXEC')), 203);
    assert.equal(value(parseExitStatus('USER')), 217);
    assert.equal(value(parseExitStatus('KSM')), 245);
    assert.equal(value(parseExitStatus('0')), 0);
    assert.equal(value(parseExitStatus('255')), 255);
    refused(parseExitStatus('256'));
    refused(parseExitStatus('tempfail'));
    refused(parseExitStatus('SIGKILL'));
  });
});

describe('parseSize', () => {
  it('uses base 1024 suffixes, decimals and sums', () => {
    assert.equal(value(parseSize('10')), 10);
    assert.equal(value(parseSize('1K')), 1024);
    assert.equal(value(parseSize('1.5M')), 1_572_864);
    assert.equal(value(parseSize('1G 512M')), 1_610_612_736);
    assert.equal(value(parseSize('2T')), 2 * 1024 ** 4);
    assert.equal(value(parseSize('8B')), 8);
    assert.equal(value(parseSize('1K', 1000)), 1000);
    for (const bad of ['', '-1', '1Q', '1M 1G', 'K', '1KB']) refused(parseSize(bad));
  });
});

describe('parsePercent', () => {
  it('reads %, ‰ and ‱ with systemd precision', () => {
    assert.equal(value(parsePercent('50%')), 50);
    assert.equal(value(parsePercent('12.5%')), 12.5);
    assert.equal(value(parsePercent('12.25%')), 12.25);
    assert.equal(value(parsePercent('5‰')), 0.5);
    assert.equal(value(parsePercent('5.5‰')), 0.55);
    assert.equal(value(parsePercent('25‱')), 0.25);
    assert.equal(value(parsePercent('150%', Infinity)), 150);
    for (const bad of ['101%', '12.345%', '50', '%', '-5%', 'x%']) refused(parsePercent(bad));
  });
});

describe('parseMode', () => {
  it('reads octal modes up to 07777', () => {
    assert.equal(value(parseMode('0022')), 0o22);
    assert.equal(value(parseMode('027')), 0o27);
    assert.equal(value(parseMode('7777')), 0o7777);
    for (const bad of ['8', '10000', '', '-1', '0x1']) refused(parseMode(bad));
  });
});

describe('parseRlimit', () => {
  it('reads one value or soft:hard', () => {
    assert.deepEqual(value(parseRlimit('NOFILE', '1024')), { soft: 1024, hard: 1024 });
    assert.deepEqual(value(parseRlimit('NOFILE', '1024:524288')), { soft: 1024, hard: 524288 });
    assert.deepEqual(value(parseRlimit('NOFILE', 'infinity')), { soft: Infinity, hard: Infinity });
    assert.deepEqual(value(parseRlimit('NPROC', '100:infinity')), { soft: 100, hard: Infinity });
    assert.equal(refused(parseRlimit('NOFILE', '4096:1024')), 'soft limit 4096 is above hard limit 1024');
    for (const bad of ['', ':', '1:', ':1', '1:2:3', 'x', '-1']) refused(parseRlimit('NOFILE', bad));
  });

  it('takes sizes for the memory limits', () => {
    assert.deepEqual(value(parseRlimit('FSIZE', '1M')), { soft: 1_048_576, hard: 1_048_576 });
    assert.deepEqual(value(parseRlimit('MEMLOCK', '64K:infinity')), { soft: 65_536, hard: Infinity });
    assert.deepEqual(value(parseRlimit('CORE', '0')), { soft: 0, hard: 0 });
  });

  it('takes CPU seconds (rounded up) and RTTIME microseconds', () => {
    assert.deepEqual(value(parseRlimit('CPU', '1h')), { soft: 3600, hard: 3600 });
    assert.deepEqual(value(parseRlimit('CPU', '1.5s')), { soft: 2, hard: 2 });
    assert.deepEqual(value(parseRlimit('CPU', '30')), { soft: 30, hard: 30 });
    assert.deepEqual(value(parseRlimit('RTTIME', '1s')), { soft: 1_000_000, hard: 1_000_000 });
    assert.deepEqual(value(parseRlimit('RTTIME', '100')), { soft: 100, hard: 100 });
    assert.deepEqual(value(parseRlimit('RTTIME', 'infinity')), { soft: Infinity, hard: Infinity });
  });

  it('takes nice levels as +N/-N or raw values', () => {
    assert.deepEqual(value(parseRlimit('NICE', '+10')), { soft: 10, hard: 10 });
    assert.deepEqual(value(parseRlimit('NICE', '-5')), { soft: 25, hard: 25 });
    assert.deepEqual(value(parseRlimit('NICE', '0')), { soft: 0, hard: 0 });
    assert.deepEqual(value(parseRlimit('NICE', '40')), { soft: 40, hard: 40 });
    for (const bad of ['+20', '-21', '41']) refused(parseRlimit('NICE', bad));
  });
});

describe('checkPath', () => {
  it('simplifies absolute paths and refuses the rest', () => {
    assert.equal(value(checkPath('/a//b/./c/')), '/a/b/c');
    assert.equal(value(checkPath('/')), '/');
    assert.equal(refused(checkPath('rel/x')), "'rel/x' is not an absolute path");
    refused(checkPath('/a/../b'));
    refused(checkPath(''));
    refused(checkPath('/' + 'x'.repeat(256)));
  });
});
