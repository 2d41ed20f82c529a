import type { Command } from './command.js';
import { UsageError } from './command.js';
import { formatError } from './output.js';

/**
 * The verbs, loaded lazily so that `holdfast process show` does not pay for the manager's code.
 * Add a verb by adding a module under `commands/` and one line here.
 */
const verbs: Record<string, () => Promise<{ default: Command }>> = {
  process: () => import('./commands/process.js'),
  features: () => import('./commands/features.js'),
};

const topUsage = (summaries: string[]): string => `Usage: holdfast VERB [OPTIONS] [ARGS...]

holdfast tracks every process by pidfd: it never loses one and never signals the wrong one.

Verbs:
${summaries.join('\n')}

Run 'holdfast VERB --help' for the options of one verb.

Exit codes: 0 success; 1 the operation failed or the answer is "no"; 2 bad usage;
3 (status, is-active) the unit is not active; 4 no such unit.`;

/** Entry point of the `holdfast` command; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    const lines: string[] = [];
    for (const load of Object.values(verbs)) {
      const command = (await load()).default;
      lines.push(`  ${command.name.padEnd(16)}${command.summary}`);
    }
    process.stdout.write(topUsage(lines) + '\n');
    return verb === undefined ? 2 : 0;
  }
  if (verb === '--version') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`holdfast ${pkg.version}\n`);
    return 0;
  }
  const load = verbs[verb];
  if (load === undefined) {
    process.stderr.write(`holdfast: unknown verb '${verb}'; see 'holdfast --help'\n`);
    return 2;
  }
  const command = (await load()).default;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage.trimEnd() + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    process.stderr.write(`holdfast ${verb}: ${formatError(error)}\n`);
    return error instanceof UsageError ? error.exitCode : 1;
  }
}
