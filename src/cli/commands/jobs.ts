/** The verbs that act on units: start, stop, restart, try-restart, reload, kill, reset-failed, enable, disable, daemon-reload. */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { clientOptions, explain, method, unitName, withDaemon } from '../client.js';
import { printJson } from '../output.js';

/** A job's outcome as the daemon reports it. */
export interface JobOutcome {
  unit: string;
  result: string;
  activeState: string;
  subState: string;
  serviceResult: string;
}

const jobHelp = (verb: string, what: string): string => `Usage: holdfast ${verb} [--no-block] [--json] [--socket PATH] UNIT...

${what} Waits until the job is done, as systemctl does (a Type=notify service counts as started
once it sent READY=1); --no-block returns at once.

Exit codes: 0 done; 1 the job failed or was canceled by another (the reason is printed); 5 no such unit.`;

/**
 * Why a job did not do what was asked, for stderr, or undefined when it did (`done`, or `skipped`
 * for a condition that did not hold, which systemctl does not count as a failure either). A job
 * canceled by a later one (a stop while a start waited for READY=1) failed as far as its caller
 * goes, as with systemctl's "Job for X canceled.".
 */
export function jobFailure(job: JobOutcome): string | undefined {
  switch (job.result) {
    case 'done':
    case 'skipped':
      return undefined;
    case 'unsupported':
      return `${job.unit} cannot be reloaded (no ExecReload= and not Type=notify-reload)`;
    case 'canceled':
      return `job for ${job.unit} canceled (another job replaced it before it finished): the unit is ${job.activeState} (${job.subState}).`;
    default:
      return `job for ${job.unit} ${job.result === 'timeout' ? 'timed out' : 'failed'}: the unit is ${job.activeState} (${job.subState}), result '${job.serviceResult}'. See 'holdfast status ${job.unit}' and 'holdfast logs ${job.unit}'.`;
  }
}

function jobVerb(verb: string, apiMethod: string, what: string): Command {
  return {
    name: verb,
    summary: what.replace(/\.$/, '').toLowerCase(),
    usage: jobHelp(verb, what),
    async run(args) {
      const { values, positionals } = parseArgs({ args, options: { ...clientOptions, 'no-block': { type: 'boolean' } }, allowPositionals: true });
      if (positionals.length === 0) throw new UsageError(`${verb} needs at least one unit`);
      return withDaemon(values.socket, async (client) => {
        let exit = 0;
        const outcomes: JobOutcome[] = [];
        for (const name of positionals) {
          let job: JobOutcome;
          try {
            ({ job } = await client.call<{ job: JobOutcome }>(method(apiMethod), { name: unitName(name), noBlock: values['no-block'] === true }));
          } catch (error) {
            explain(error);
          }
          outcomes.push(job);
          const why = jobFailure(job);
          if (why !== undefined) {
            exit = 1;
            if (values.json !== true) process.stderr.write(`holdfast ${verb}: ${why}\n`);
          }
        }
        if (values.json === true) printJson(outcomes);
        return exit;
      });
    },
  };
}

export const start = jobVerb('start', 'Start', 'Start units.');
export const stop = jobVerb('stop', 'Stop', 'Stop units.');
export const restart = jobVerb('restart', 'Restart', 'Stop and start units.');
export const tryRestart = jobVerb('try-restart', 'TryRestart', 'Restart units that are running.');
export const reload = jobVerb('reload', 'Reload', 'Reload units (ExecReload= or the notify-reload protocol).');

export const kill: Command = {
  name: 'kill',
  summary: 'send a signal to a unit\'s processes, each through its pidfd',
  usage: `Usage: holdfast kill [-s SIGNAL] [--whom main|all] [--socket PATH] UNIT...

Sends SIGNAL (default SIGTERM) to the unit's main process, or to all of its processes (default),
each through its own pidfd: never to a PID that changed hands.`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...clientOptions, signal: { type: 'string', short: 's' }, whom: { type: 'string', default: 'all' } },
      allowPositionals: true,
    });
    if (positionals.length === 0) throw new UsageError('kill needs a unit');
    if (values.whom !== 'main' && values.whom !== 'all') throw new UsageError(`--whom is main or all, not ${values.whom}`);
    return withDaemon(values.socket, async (client) => {
      for (const name of positionals) {
        try {
          await client.call(method('Kill'), { name: unitName(name), signal: values.signal ?? 'SIGTERM', whom: values.whom });
        } catch (error) {
          explain(error);
        }
      }
      return 0;
    });
  },
};

export const resetFailed: Command = {
  name: 'reset-failed',
  summary: 'forget that units failed, and their start-rate history',
  usage: 'Usage: holdfast reset-failed [--socket PATH] [UNIT...]\n\nWithout a unit, resets every unit.',
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: clientOptions, allowPositionals: true });
    return withDaemon(values.socket, async (client) => {
      try {
        if (positionals.length === 0) await client.call(method('ResetFailed'), {});
        for (const name of positionals) await client.call(method('ResetFailed'), { name: unitName(name) });
      } catch (error) {
        explain(error);
      }
      return 0;
    });
  },
};

export const daemonReload: Command = {
  name: 'daemon-reload',
  summary: 'read the unit files again',
  usage: 'Usage: holdfast daemon-reload [--socket PATH]\n\nRunning units keep running; their new settings apply from their next start.',
  async run(args) {
    const { values } = parseArgs({ args, options: clientOptions });
    return withDaemon(values.socket, async (client) => {
      const reply = await client.call<{ loaded: number; failed: number }>(method('DaemonReload'), {});
      if (values.json === true) printJson(reply);
      else if (reply.failed > 0) process.stderr.write(`holdfast daemon-reload: ${reply.failed} unit(s) failed to load; see 'holdfast list'\n`);
      return reply.failed > 0 ? 1 : 0;
    });
  },
};

function enableVerb(verb: 'enable' | 'disable'): Command {
  return {
    name: verb,
    summary: verb === 'enable' ? 'start units with the daemon (needs an [Install] section)' : 'stop starting units with the daemon',
    usage: `Usage: holdfast ${verb} [--now] [--socket PATH] UNIT...\n\n${verb === 'enable' ? 'Marks units (and their Also= units) to start when the daemon starts; --now also starts them.' : 'Unmarks units; --now also stops them.'}`,
    async run(args) {
      const { values, positionals } = parseArgs({ args, options: { ...clientOptions, now: { type: 'boolean' } }, allowPositionals: true });
      if (positionals.length === 0) throw new UsageError(`${verb} needs a unit`);
      return withDaemon(values.socket, async (client) => {
        let exit = 0;
        for (const name of positionals) {
          try {
            const { units } = await client.call<{ units: string[] }>(method('Enable'), { name: unitName(name), enable: verb === 'enable' });
            if (values.json !== true) for (const u of units) process.stdout.write(`${verb === 'enable' ? 'Enabled' : 'Disabled'} ${u}\n`);
            if (values.now === true) {
              const { job } = await client.call<{ job: JobOutcome }>(method(verb === 'enable' ? 'Start' : 'Stop'), { name: unitName(name) });
              if (job.result !== 'done') exit = 1;
            }
          } catch (error) {
            explain(error);
          }
        }
        return exit;
      });
    },
  };
}

export const enable = enableVerb('enable');
export const disable = enableVerb('disable');

export const daemonReexec: Command = {
  name: 'daemon-reexec',
  summary: 'restart the daemon\'s program in place, keeping every service',
  usage: `Usage: holdfast daemon-reexec [--socket PATH]

Re-executes the daemon (new code after an upgrade): jobs in flight finish first, every service keeps
running with its pidfd, log pipe and notify socket, and the control socket never goes away.
Returns once the new daemon answers.`,
  async run(args) {
    const { values } = parseArgs({ args, options: clientOptions });
    await withDaemon(values.socket, (client) => client.call('io.holdfast.Daemon.Reexecute', {}));
    // Connections made now wait in the kept socket's backlog until the new image serves them.
    return withDaemon(values.socket, async (client) => {
      const { units } = await client.call<{ units: unknown[] }>(method('List'), {});
      if (values.json === true) printJson({ units: units.length });
      return 0;
    });
  },
};
