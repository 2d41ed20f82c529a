import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { instantiate, lexUnitFile, parseServiceUnit, parseUnitName, splitLines } from '../../src/unit/index.js';
import { HOST } from './fixtures.js';

const CORPUS_DIRS = ['/usr/lib/systemd/system', '/lib/systemd/system'];

/** Every file below `dir`, following symlinks to files but not into directories twice. */
function walk(dir: string, out: Set<string>, seenDirs: Set<string>): void {
  const real = realpathSync(dir);
  if (seenDirs.has(real)) return;
  seenDirs.add(real);
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue; // dangling symlink
    }
    if (st.isDirectory()) walk(p, out, seenDirs);
    else if (st.isFile()) out.add(realpathSync(p));
  }
}

const present = CORPUS_DIRS.filter((d) => existsSync(d));

it(
  'parses every unit file of the installed systemd without crashing',
  { skip: present.length === 0 ? `none of ${CORPUS_DIRS.join(', ')} exists on this machine` : false },
  (t) => {
    const files = new Set<string>();
    const seenDirs = new Set<string>();
    for (const d of present) walk(d, files, seenDirs);
    let services = 0;
    let loaded = 0;
    const unsupported = new Map<string, number>();
    const unknown = new Map<string, number>();
    const errors = new Map<string, number>();
    const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

    for (const file of [...files].sort()) {
      const content = readFileSync(file);
      const lines = Math.max(1, splitLines(content).length);
      const name = path.basename(file);
      const parts = parseUnitName(name);
      if (parts?.type === 'service') {
        services++;
        const unitName = parts.kind === 'template' ? instantiate(name, 'test_instance')! : name;
        const r = parseServiceUnit([{ file, content }], { unitName, host: HOST });
        for (const d of r.diagnostics) {
          assert.equal(d.file, file);
          assert.ok(d.line >= 1 && d.line <= lines, `${file}: line ${d.line}`);
          if (d.message.includes('is not supported by holdfast, ignoring')) bump(unsupported, d.key ?? '?');
          else if (d.message.startsWith('Unknown key')) bump(unknown, d.key ?? '?');
          else if (d.severity === 'error') bump(errors, d.message.replace(/'[^']*'/g, "'…'").slice(0, 90));
        }
        if (r.config !== undefined) loaded++;
      } else {
        const r = lexUnitFile(content, file);
        for (const d of r.diagnostics) assert.ok(d.line >= 1 && d.line <= lines, `${file}: line ${d.line}`);
      }
    }

    const top = (m: Map<string, number>, n: number) =>
      [...m.entries()]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .slice(0, n)
        .map(([k, v]) => `${k} (${v})`)
        .join(', ');
    t.diagnostic(`${files.size} files under ${present.join(', ')}; ${services} services, ${loaded} load without errors`);
    t.diagnostic(`keys systemd knows but holdfast does not support (${unsupported.size}): ${top(unsupported, 200) || 'none'}`);
    t.diagnostic(`keys unknown to systemd too (${unknown.size}): ${top(unknown, 50) || 'none'}`);
    t.diagnostic(`most frequent errors: ${top(errors, 15) || 'none'}`);
    assert.ok(files.size > 0);
  },
);
