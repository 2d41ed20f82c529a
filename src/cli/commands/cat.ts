import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { defaultUnitDirs, isValidUnitName, resolveUnitFiles } from '../../unit/index.js';

const usage = `Usage: holdfast cat UNIT... [--units DIR]...

Prints the unit's file followed by each drop-in that applies to it, in the order they apply, each
preceded by a line "# /path/to/file", as systemctl cat does. Reads the unit directories directly.

Options:
  --units DIR   a unit directory, lowest priority first; may be repeated
                (default: /etc/holdfast/units for root, else $XDG_CONFIG_HOME/holdfast/units,
                falling back to ~/.config/holdfast/units)

Exit status: 0 on success, 2 on bad usage, 4 if a unit has no file.`;

const command: Command = {
  name: 'cat',
  summary: 'show the files of a unit: its fragment and drop-ins',
  usage,
  async run(args: string[]): Promise<number> {
    const parsed = parseArgs({ args, options: { units: { type: 'string', multiple: true } }, allowPositionals: true, strict: true });
    const units = parsed.positionals;
    if (units.length === 0) throw new UsageError('cat needs a unit name');
    const unitDirs = parsed.values.units ?? defaultUnitDirs();
    let status = 0;
    let first = true;
    for (const unit of units) {
      if (!isValidUnitName(unit)) throw new UsageError(`'${unit}' is not a valid unit name`);
      const files = await resolveUnitFiles(unit, { unitDirs });
      if (files.fragmentPath === undefined) {
        process.stderr.write(`No files found for ${unit}.\n`);
        status = 4;
        continue;
      }
      if (files.masked) {
        process.stdout.write(`${first ? '' : '\n'}# ${files.fragmentPath} (masked)\n`);
        first = false;
        continue;
      }
      for (const file of [files.fragmentPath, ...files.dropInPaths]) {
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (error) {
          process.stderr.write(`holdfast cat: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}\n`);
          status = status || 1;
          continue;
        }
        process.stdout.write(`${first ? '' : '\n'}# ${file}\n${text}${text === '' || text.endsWith('\n') ? '' : '\n'}`);
        first = false;
      }
    }
    return status;
  },
};

export default command;
