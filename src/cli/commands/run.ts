import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { native } from '../../native.js';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { clientOptions, explain, method, withDaemon } from '../client.js';
import { printJson } from '../output.js';

const UNIT_SECTION_KEYS = /^(Description|Documentation|Requires|Requisite|Wants|BindsTo|PartOf|Conflicts|Before|After|OnFailure|OnSuccess|StartLimitIntervalSec|StartLimitBurst|Condition\w+|Assert\w+)$/;

/** One argument as an Exec= word: quoted, with `\`, `"`, `$` and `%` kept literal. */
function execWord(arg: string): string {
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%').replace(/\n/g, '\\n')}"`;
}

/** The unit file text of a transient service for a command line and `-p` properties. */
export function transientUnitText(command: string[], properties: string[], cwd: string): string {
  const unit: string[] = [];
  const service: string[] = [];
  let hasDescription = false;
  let hasCwd = false;
  for (const property of properties) {
    const eq = property.indexOf('=');
    if (eq <= 0) throw new UsageError(`-p takes KEY=VALUE, not ${property}`);
    const key = property.slice(0, eq);
    if (/[\n\r]/.test(property)) throw new UsageError(`-p ${key}: values may not contain newlines`);
    if (key === 'Description') hasDescription = true;
    if (key === 'WorkingDirectory') hasCwd = true;
    (UNIT_SECTION_KEYS.test(key) ? unit : service).push(property);
  }
  if (!hasDescription) unit.unshift(`Description=${command.join(' ').replace(/%/g, '%%').replace(/[\n\r]/g, ' ')}`);
  if (!hasCwd) service.unshift(`WorkingDirectory=${cwd.replace(/%/g, '%%')}`);
  service.unshift(`ExecStart=${command.map(execWord).join(' ')}`);
  return `[Unit]\n${unit.join('\n')}\n\n[Service]\n${service.join('\n')}\n`;
}

const run: Command = {
  name: 'run',
  summary: 'run a command as a transient service (like systemd-run)',
  usage: `Usage: holdfast run [--unit NAME] [-p KEY=VALUE]... [--no-block] [--json] [--socket PATH] -- CMD [ARGS...]
       holdfast run --scope [--unit NAME] [-p Description=TEXT] [--socket PATH] -- CMD [ARGS...]

Starts CMD as a transient service supervised by the daemon, with its output in 'holdfast logs NAME'.
Properties are unit file settings, e.g. -p Restart=on-failure -p Environment=A=1 -p Type=notify.
The command's arguments are taken literally ($ and % are not expanded). The working directory is
the current one unless -p WorkingDirectory= is given.

With --scope the command runs right here, in the foreground, as this process: holdfast hands the
daemon this process (the daemon takes its pidfd from the socket, SO_PEERPIDFD) as a new scope unit
NAME.scope, then execs CMD. The exit status is CMD's; the daemon records how it ended, and
'holdfast stop NAME.scope' ends it.`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...clientOptions, unit: { type: 'string' }, property: { type: 'string', short: 'p', multiple: true }, 'no-block': { type: 'boolean' }, scope: { type: 'boolean' } },
      allowPositionals: true,
    });
    if (positionals.length === 0) throw new UsageError('run needs a command: holdfast run [OPTIONS] -- CMD [ARGS...]');
    if (values.scope === true) return runScope(positionals, values.unit, values.socket, values.property ?? []);
    const name = values.unit ?? `run-${randomBytes(6).toString('hex')}.service`;
    const text = transientUnitText(positionals, values.property ?? [], resolve('.'));
    return withDaemon(values.socket, async (client) => {
      let job: { unit: string; result: string; activeState: string; subState: string; serviceResult: string };
      try {
        ({ job } = await client.call<{ job: typeof job }>(method('Run'), { name, unit: text, noBlock: values['no-block'] === true }));
      } catch (error) {
        explain(error, 1);
      }
      if (values.json === true) printJson(job);
      else process.stderr.write(`Running as unit: ${job.unit}${job.result === 'failed' ? ` (failed: ${job.serviceResult})` : ''}\n`);
      return job.result === 'failed' ? 1 : 0;
    });
  },
};
export default run;

/** The absolute path of a command, looked up in $PATH like a shell does. */
function which(command: string): string | undefined {
  if (command.includes('/')) return resolve(command);
  for (const dir of (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const candidate = join(dir || '.', command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next directory.
    }
  }
  return undefined;
}

async function runScope(command: string[], unit: string | undefined, socket: string | undefined, properties: string[]): Promise<number> {
  const file = which(command[0]!);
  if (file === undefined) throw new UsageError(`${command[0]}: command not found`, 127);
  const description = properties.find((p) => p.startsWith('Description='))?.slice('Description='.length) ?? command.join(' ');
  const name = await withDaemon(socket, async (client) => {
    try {
      return (await client.call<{ unit: string }>(method('CreateScope'), { ...(unit === undefined ? {} : { name: unit }), processes: [{ pid: 0 }], description })).unit;
    } catch (error) {
      explain(error, 1);
    }
  });
  process.stderr.write(`Running as unit: ${name}\n`);
  // Node marks stdin/stdout/stderr close-on-exec; the command needs them.
  for (const fd of [0, 1, 2]) native.setCloexec(fd, false);
  return native.execve(file, command, Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`));
}
