import { parseArgs } from 'node:util';
import { describeFeatures } from '../../pidfd/index.js';
import type { Command } from '../command.js';
import { paint, printJson } from '../output.js';

const command: Command = {
  name: 'features',
  summary: 'what this kernel supports, and what holdfast does without each feature',
  usage: `Usage: holdfast features [--json]

One line per kernel feature holdfast uses: whether this kernel has it (found by trying it, not by
version number), the kernel version that brought it, and what holdfast does without it.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true });
    const rows = describeFeatures();
    if (values.json === true) {
      printJson(rows);
      return 0;
    }
    const width = Math.max(...rows.map((row) => row.name.length));
    for (const row of rows) {
      const mark = row.available ? paint('green', 'yes') : paint('red', 'no ');
      const tail = row.available ? `(Linux ${row.since}+)` : `(Linux ${row.since}+) without it: ${row.without}`;
      process.stdout.write(`${mark}  ${row.name.padEnd(width)}  ${tail}\n`);
    }
    return 0;
  },
};
export default command;
