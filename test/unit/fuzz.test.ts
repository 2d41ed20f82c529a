import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  expandExecArgs,
  expandSpecifiers,
  lexUnitFile,
  parseEnvironmentFile,
  parseRlimit,
  parseServiceUnit,
  parseSize,
  parseTimeSpan,
  splitLines,
  splitWords,
  type Diagnostic,
} from '../../src/unit/index.js';
import { HOST } from './fixtures.js';
import { seededRandom } from '../helpers/random.js';


const SAMPLES = [
  `[Unit]
Description=Web %i on %H
Documentation=man:web(8) https://example.com
After=network.target db.service
Wants=db.service
ConditionPathExists=|!/etc/web.disabled

[Service]
Type=notify
ExecStartPre=-/bin/mkdir -p /run/%p
ExecStart=@/usr/bin/python3 web "arg one" 'two\\x41' \\
  # comment inside
  three ; /bin/echo hi \\; $VAR \${OTHER}
ExecReload=/bin/kill -HUP $MAINPID
Environment=ONE='one' "TWO='two two' too" THREE=
EnvironmentFile=-/etc/default/%p
Restart=on-failure
RestartSec=1min 30s
SuccessExitStatus=TEMPFAIL 250 SIGKILL
LimitNOFILE=1024:4096
MemoryMax=1G
StandardOutput=append:/var/log/%p.log
WorkingDirectory=-~
User=www-data

[Install]
WantedBy=multi-user.target
Alias=www.service
`,
  `[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=|echo "$HOME" | tr a-z A-Z
ExecStart=:/bin/echo $NOT_EXPANDED
ExecStop=+/bin/true
TimeoutSec=0
KillMode=mixed
KillSignal=SIGRTMIN+3
UMask=0027
PIDFile=/var/run/x.pid
`,
];

const SPECIALS = ['\\', '"', "'", '%', '$', '{', '}', ';', '=', '[', ']', '#', '\n', '\r', '\0', ' ', '\t', '@', '|', '!', '-', ':', '+', '~', 'é', '\u{1F600}'];

function randomBytes(rand: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function mutate(rand: () => number, text: string): Uint8Array {
  let bytes = Buffer.from(text, 'utf8');
  const edits = 1 + Math.floor(rand() * 8);
  for (let e = 0; e < edits; e++) {
    const pos = Math.floor(rand() * (bytes.length + 1));
    const kind = Math.floor(rand() * 7);
    if (kind === 0) bytes = Buffer.concat([bytes.subarray(0, pos), randomBytes(rand, 1 + Math.floor(rand() * 8)), bytes.subarray(pos)]);
    else if (kind === 1) bytes = Buffer.concat([bytes.subarray(0, pos), bytes.subarray(Math.min(bytes.length, pos + 1 + Math.floor(rand() * 20)))]);
    else if (kind === 2) bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from(SPECIALS[Math.floor(rand() * SPECIALS.length)]!), bytes.subarray(pos)]);
    else if (kind === 3) bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from([0xff, 0xfe, 0xc3]), bytes.subarray(pos)]);
    else if (kind === 4) {
      const start = Math.floor(rand() * bytes.length);
      bytes = Buffer.concat([bytes, bytes.subarray(start, start + Math.floor(rand() * 200))]);
    } else if (kind === 5) bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from('x'.repeat(Math.floor(rand() * 5000))), bytes.subarray(pos)]);
    else if (pos < bytes.length) bytes[pos] = bytes[pos]! ^ (1 << Math.floor(rand() * 8));
  }
  return bytes;
}

function lineCount(content: Uint8Array): number {
  return Math.max(1, splitLines(content).length);
}

function checkDiagnostics(diagnostics: readonly Diagnostic[], files: ReadonlyMap<string, number>, unitName: string): void {
  for (const d of diagnostics) {
    assert.ok(['error', 'warning', 'notice'].includes(d.severity), `severity ${d.severity}`);
    assert.equal(typeof d.message, 'string');
    assert.ok(d.message.length > 0);
    if (d.line === 0) {
      assert.ok(d.file === unitName || files.has(d.file), `line 0 only for the unit as a whole: ${JSON.stringify(d)}`);
      continue;
    }
    const max = files.get(d.file);
    assert.ok(max !== undefined, `diagnostic for an unknown file: ${JSON.stringify(d)}`);
    assert.ok(Number.isInteger(d.line) && d.line >= 1 && d.line <= max, `line ${d.line} outside 1…${max}: ${d.message}`);
  }
}

describe('fuzzing (seeded, never throws, diagnostics point at real lines)', () => {
  it('parses random mutations of real unit files', () => {
    const rand = seededRandom(0x5eed1);
    const deadline = Date.now() + 2500; // bounds the run only; nothing asserts on time
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
      const fragment = mutate(rand, SAMPLES[i % SAMPLES.length]!);
      const dropIn = rand() < 0.5 ? mutate(rand, '[Service]\nRestartSec=5\nEnvironment=A=1\n') : undefined;
      const sources = [{ file: '/f/web@x.service', content: fragment }, ...(dropIn ? [{ file: '/f/web@.service.d/10.conf', content: dropIn }] : [])];
      const files = new Map(sources.map((s) => [s.file, lineCount(s.content)]));
      const r = parseServiceUnit(sources, { unitName: 'web@x.service', host: HOST });
      checkDiagnostics(r.diagnostics, files, 'web@x.service');
      assert.equal(r.config === undefined, r.diagnostics.some((d) => d.severity === 'error'));
    }
  });

  it('parses random bytes, NUL bytes, invalid UTF-8 and very long lines', () => {
    const rand = seededRandom(42);
    const inputs: Uint8Array[] = [
      new Uint8Array(0),
      Buffer.from('\0\0\0'),
      Buffer.from('[Service]\nExecStart=' + 'a'.repeat(2 * 1024 * 1024) + '\n'),
      Buffer.from('[Service]\nExecStart=/bin/x \\\n'.repeat(20000)),
      Buffer.from('[Service]\nEnvironment=' + '"'.repeat(100_000) + '\n'),
      Buffer.from('[' + ']'.repeat(1000) + '\n' + '\\'.repeat(10_000)),
    ];
    for (let i = 0; i < 300; i++) inputs.push(randomBytes(rand, Math.floor(rand() * 600)));
    for (let i = 0; i < 200; i++) {
      const parts: string[] = [];
      for (let k = 0; k < 40; k++) parts.push(rand() < 0.5 ? SPECIALS[Math.floor(rand() * SPECIALS.length)]! : ['[Service]', 'ExecStart=', 'Environment=', '%i', '$X', 'a'][Math.floor(rand() * 6)]!);
      inputs.push(Buffer.from(parts.join('')));
    }
    for (const content of inputs) {
      const files = new Map([['/f/x.service', lineCount(content)]]);
      const r = parseServiceUnit([{ file: '/f/x.service', content }], { unitName: 'x.service', host: HOST });
      checkDiagnostics(r.diagnostics, files, 'x.service');
      const lexed = lexUnitFile(content, '/f/x.service');
      checkDiagnostics(lexed.diagnostics, files, 'x.service');
      const env = parseEnvironmentFile(content, '/f/env');
      checkDiagnostics(env.diagnostics, new Map([['/f/env', lineCount(content)]]), '/f/env');
    }
  });

  it('never throws from the value parsers and expanders', () => {
    const rand = seededRandom(7);
    const ctx = { ...HOST, unitName: 'a-b@c\\x2dd.service' };
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = Math.floor(rand() * 24);
      for (let k = 0; k < n; k++) s += rand() < 0.6 ? SPECIALS[Math.floor(rand() * SPECIALS.length)]! : String.fromCharCode(32 + Math.floor(rand() * 95));
      splitWords(s, { unquote: true, cunescape: true });
      splitWords(s, { relax: true, unquote: true, unescapeRelax: true });
      expandSpecifiers(s, ctx);
      expandSpecifiers(s, ctx, 'name');
      parseTimeSpan(s);
      parseSize(s);
      parseRlimit('NICE', s);
      parseRlimit('CPU', s);
      const words = s.split(' ');
      const out = expandExecArgs(words, { X: s, A: 'a b', [s]: s });
      assert.ok(Array.isArray(out) && out.every((w) => typeof w === 'string'));
    }
  });
});
