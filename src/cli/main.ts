import type { Command } from './command.js';
import { UsageError } from './command.js';
import { formatError } from './output.js';

/**
 * The verbs, loaded lazily so that `holdfast process show` does not pay for the manager's code.
 * Add a verb by adding a module under `commands/` and one line here.
 */
const verbs: Record<string, () => Promise<Command>> = {
  daemon: () => import('./commands/daemon.js').then((m) => m.daemon),
  up: () => import('./commands/daemon.js').then((m) => m.up),
  start: () => import('./commands/jobs.js').then((m) => m.start),
  stop: () => import('./commands/jobs.js').then((m) => m.stop),
  restart: () => import('./commands/jobs.js').then((m) => m.restart),
  'try-restart': () => import('./commands/jobs.js').then((m) => m.tryRestart),
  reload: () => import('./commands/jobs.js').then((m) => m.reload),
  kill: () => import('./commands/jobs.js').then((m) => m.kill),
  'reset-failed': () => import('./commands/jobs.js').then((m) => m.resetFailed),
  'daemon-reload': () => import('./commands/jobs.js').then((m) => m.daemonReload),
  'daemon-reexec': () => import('./commands/jobs.js').then((m) => m.daemonReexec),
  enable: () => import('./commands/jobs.js').then((m) => m.enable),
  disable: () => import('./commands/jobs.js').then((m) => m.disable),
  status: () => import('./commands/status.js').then((m) => m.status),
  list: () => import('./commands/status.js').then((m) => m.list),
  show: () => import('./commands/status.js').then((m) => m.show),
  'is-active': () => import('./commands/status.js').then((m) => m.isActive),
  'is-failed': () => import('./commands/status.js').then((m) => m.isFailed),
  logs: () => import('./commands/logs.js').then((m) => m.default),
  run: () => import('./commands/run.js').then((m) => m.default),
  cat: () => import('./commands/cat.js').then((m) => m.default),
  verify: () => import('./commands/verify.js').then((m) => m.default),
  notify: () => import('./commands/notify.js').then((m) => m.default),
  process: () => import('./commands/process.js').then((m) => m.default),
  features: () => import('./commands/features.js').then((m) => m.default),
};

const topUsage = (summaries: string[]): string => `Usage: holdfast VERB [OPTIONS] [ARGS...]

holdfast tracks every process by pidfd: it never loses one and never signals the wrong one.

Verbs:
${summaries.join('\n')}

Run 'holdfast VERB --help' for the options of one verb.

Exit codes: 0 success; 1 the operation failed or the answer is "no"; 2 bad usage;
3 (status, is-active) the unit is not active; 4 no such unit.`;

/** Exit status of a process that SIGPIPE ended, as a shell reports it. */
const EXIT_BROKEN_PIPE = 128 + 13;

/**
 * Makes a closed output end the command quietly, as SIGPIPE ends `cat`: `holdfast status X | head`
 * must not print a stack trace once `head` has read enough. Node ignores SIGPIPE, so the write
 * fails with EPIPE instead, as an 'error' event nobody would handle. A verb that handles its own
 * output errors (`up` stops its units first) adds a listener of its own, and this one steps aside.
 */
function exitQuietlyOnBrokenPipe(stream: NodeJS.WriteStream): void {
  const onError = (error: NodeJS.ErrnoException): void => {
    if (stream.listenerCount('error') > 1) return;
    if (error.code === 'EPIPE' || error.code === 'ECONNRESET') process.exit(EXIT_BROKEN_PIPE);
    throw error;
  };
  stream.on('error', onError);
}

/** Entry point of the `holdfast` command; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnBrokenPipe(process.stdout);
  exitQuietlyOnBrokenPipe(process.stderr);
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    const lines: string[] = [];
    for (const load of Object.values(verbs)) {
      const command = await load();
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
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage.trimEnd() + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    process.stderr.write(`holdfast ${verb}: ${formatError(error)}\n`);
    if (error instanceof UsageError) return error.exitCode;
    // util.parseArgs reports unknown or malformed options this way: that is bad usage too.
    return String((error as NodeJS.ErrnoException).code ?? '').startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}
