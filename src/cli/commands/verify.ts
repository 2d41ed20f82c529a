import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { unitNameProblem, UNIT_TYPES } from '../../unit/unit-name.js';
import {
  defaultUnitDirs,
  findExecutable,
  formatDiagnostic,
  instantiate,
  loadServiceUnit,
  parseUnitName,
  UnitDirectories,
  type Diagnostic,
  type ServiceUnitConfig,
} from '../../unit/index.js';

const usage = `Usage: holdfast verify [--units DIR]... FILE|UNIT|DIR...

Checks unit files the way holdfast loads them: syntax, every directive's value, drop-ins next to the
file, and whether the programs of the commands can be found. Prints each problem on stderr as
FILE:LINE: message. Prints nothing when all is well.

A FILE (a path) is loaded from its own directory, which then takes precedence over any --units
directory; a bare UNIT name is looked up in the --units directories (default: the user's unit
directory, /etc/holdfast/units for root). A template (name@.service) is checked as name@test_instance.service.
A DIR checks every unit file in it, and names the .service files holdfast would not load because
their names are not valid unit names (a space, a newline, a letter outside ASCII...).

Options:
  --units DIR   a unit directory, lowest priority first; may be repeated

Exit status: 0 if no problem is an error (warnings and notices allowed), 1 otherwise, 2 on bad usage.`;

/** Warnings for programs that are not there (yet): they are looked up again when the command runs. */
function programDiagnostics(config: ServiceUnitConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  const s = config.service;
  for (const cmd of [...s.execCondition, ...s.execStartPre, ...s.execStart, ...s.execStartPost, ...s.execReload, ...s.execStop, ...s.execStopPost]) {
    if (cmd.viaShell || cmd.ignoreFailure) continue;
    if (findExecutable(cmd.path) === undefined) {
      const where = path.isAbsolute(cmd.path) ? 'is not an executable file' : 'is not found in the executable search path';
      out.push({ file: cmd.source.file, line: cmd.source.line, severity: 'warning', message: `Command ${cmd.path} ${where}` });
    }
  }
  return out;
}

async function verifyOne(arg: string, unitDirs: readonly string[]): Promise<Diagnostic[]> {
  const isPath = arg.includes('/') || existsSync(arg);
  const name = isPath ? path.basename(arg) : arg;
  const dirs = isPath ? [...unitDirs, path.dirname(path.resolve(arg))] : unitDirs;
  const parts = parseUnitName(name);
  if (parts === undefined) {
    const why = unitNameProblem(name, UNIT_TYPES);
    return [{ file: arg, line: 0, severity: 'error', message: `${JSON.stringify(name)} is not a valid unit name${why === undefined ? '' : ` (${why})`}; holdfast would not load it` }];
  }
  const loadName = parts.kind === 'template' ? instantiate(name, 'test_instance')! : name;
  const result = await loadServiceUnit(loadName, { unitDirs: dirs });
  const diagnostics = result.diagnostics.map((d) => (d.line === 0 && d.file === loadName ? { ...d, file: arg } : d));
  if (result.config === undefined) return diagnostics;
  // Keep each file's problems in line order, files in the order they apply.
  const all = [...diagnostics, ...programDiagnostics(result.config)];
  const fileOrder = (f: string) => {
    const i = result.sourcePaths.indexOf(f);
    return i < 0 ? result.sourcePaths.length : i;
  };
  return all.map((d, i) => [d, i] as const).sort(([a, i], [b, j]) => fileOrder(a.file) - fileOrder(b.file) || a.line - b.line || i - j).map(([d]) => d);
}

/** Every unit file of a directory, each checked on its own; invalid names reported as such. */
async function verifyDirectory(dir: string, unitDirs: readonly string[]): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  const directories = await UnitDirectories.open({ unitDirs: [dir], installAliases: false });
  for (const entry of await directories.list()) {
    if (entry.path === undefined || (entry.kind !== 'service' && entry.kind !== 'template')) continue;
    if (entry.problem !== undefined) {
      out.push({ file: entry.path, line: 0, severity: 'error', message: `${JSON.stringify(entry.name)} is not a valid unit name (${entry.problem}); holdfast would not load it` });
      continue;
    }
    out.push(...(await verifyOne(entry.path, unitDirs)));
  }
  return out;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

const command: Command = {
  name: 'verify',
  summary: 'check unit files and report problems as FILE:LINE: message',
  usage,
  async run(args: string[]): Promise<number> {
    const parsed = parseArgs({ args, options: { units: { type: 'string', multiple: true } }, allowPositionals: true, strict: true });
    const files = parsed.positionals;
    if (files.length === 0) throw new UsageError('verify needs at least one unit file');
    const unitDirs = parsed.values.units ?? defaultUnitDirs();
    let errors = false;
    for (const file of files) {
      for (const d of isDirectory(file) ? await verifyDirectory(file, unitDirs) : await verifyOne(file, unitDirs)) {
        if (d.severity === 'error') errors = true;
        process.stderr.write(formatDiagnostic(d) + '\n');
      }
    }
    return errors ? 1 : 0;
  },
};

export default command;
