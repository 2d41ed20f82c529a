/** `holdfast daemon` (foreground service manager) and `holdfast up DIR` (the same, in a terminal). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon, type Daemon } from '../../api/daemon.js';
import { defaultPaths, ensureOwnDirectory, UnsafeDirectoryError } from '../../manager/paths.js';
import { removeTree } from '../../manager/state-file.js';
import type { LogRecord, ManagerEvent, UnitStatus } from '../../manager/types.js';
import { signalNumber } from '../../pidfd/index.js';
import { unitName as unitNameOf } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { paint } from '../output.js';

/**
 * Makes sure the state and runtime directories are the user's own before the daemon puts its
 * socket and state there (see {@link ensureOwnDirectory}), creating them if missing: the state
 * directory 0700, the runtime directory 0755, since services running as other users (`User=`)
 * must reach the notify socket in it.
 */
function ownDirectories(stateDir: string, runtimeDir: string, socket: string): void {
  try {
    ensureOwnDirectory(stateDir, { mode: 0o700 });
    ensureOwnDirectory(runtimeDir, { mode: 0o755 });
    if (dirname(socket) !== runtimeDir) ensureOwnDirectory(dirname(socket), { mode: 0o755 });
  } catch (error) {
    if (!(error instanceof UnsafeDirectoryError)) throw error;
    const fallback = process.env['XDG_RUNTIME_DIR'] === undefined && (process.getuid?.() ?? 0) !== 0;
    throw new UsageError(`${error.message}${fallback ? '; remove it, or set $XDG_RUNTIME_DIR to a directory of your own' : ''}`, 1);
  }
}

/** How a unit's last main process ended, as a shell exit status: its code, or 128 + signal. */
function exitStatusOf(status: UnitStatus): number {
  if (status.lastExit === null) return status.result === 'success' ? 0 : 1;
  if (status.lastExit.code !== null) return status.lastExit.code;
  const number = status.lastExit.signal === null ? 0 : signalNumber(status.lastExit.signal);
  return 128 + number;
}

/**
 * Starts the daemon, or ends this process when the start fails: a daemon that could not listen has
 * let go of everything as a crash would (its services stay with the keeper for the next daemon),
 * and must not live on headless, kept alive by the watches it had already set up.
 */
async function startOrExit(log: (level: 'error', text: string) => void, options: Parameters<typeof startDaemon>[0]): Promise<Daemon> {
  try {
    return await startDaemon(options);
  } catch (error) {
    log('error', `holdfast daemon: could not start: ${(error as Error).message}`);
    process.exit(1);
  }
}

/**
 * Holds SIGTERM, SIGINT and SIGHUP from before the daemon starts until {@link runUntilStopped} takes
 * over: once the keeper runs, a stop signal that met Node's default action would end the daemon
 * without ending its keeper. Returns the signals that arrived meanwhile, and lets go of them.
 */
function holdEarlySignals(): () => NodeJS.Signals[] {
  const pending: NodeJS.Signals[] = [];
  const record = (signal: NodeJS.Signals): void => {
    pending.push(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const signal of signals) process.on(signal, record);
  return () => {
    for (const signal of signals) process.off(signal, record);
    return pending;
  };
}

/**
 * Stops the daemon on SIGTERM/SIGINT (a second one exits at once) and resolves with the exit code.
 * In init mode SIGHUP reloads the units instead of re-reading the unit files, and with `exitWith`
 * the daemon also ends once that unit is down for good, with its exit status. `foreground` is
 * `up`'s mode: a hangup means the terminal is gone, which stops everything, as it ends a shell's
 * foreground job; `stopOn` hands out the stop for other reasons to end (the output going away).
 */
function runUntilStopped(
  d: Daemon,
  early: () => NodeJS.Signals[],
  log: (text: string) => void,
  options: { init?: boolean; exitWith?: string; foreground?: boolean; stopOn?: (stop: (reason: string) => void) => void } = {},
): Promise<number> {
  return new Promise((resolveExit) => {
    let stopping = false;
    const finish = (reason: string): void => {
      if (stopping) return;
      stopping = true;
      log(`${reason}: stopping every unit`);
      d.shutdown().then(
        async () => {
          if (options.exitWith === undefined) return resolveExit(0);
          resolveExit(exitStatusOf(await d.manager.status(options.exitWith)));
        },
        (error: Error) => {
          log(`shutdown failed: ${error.message}`);
          resolveExit(1);
        },
      );
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log(`${signal} again: exiting without waiting`);
        process.exit(130);
      }
      finish(signal);
    };
    const onHangup = (): void => {
      if (options.foreground === true) {
        finish('SIGHUP (the terminal is gone)');
      } else if (options.init === true) {
        for (const unit of d.manager.units.values()) if (unit.activeState === 'active') void d.manager.reloadUnit(unit.name);
      } else {
        void d.manager.reload();
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', onHangup);
    // A signal that came while the daemon was starting counts now, once.
    const arrived = early();
    const stopSignal = arrived.find((signal) => signal !== 'SIGHUP');
    if (stopSignal !== undefined) finish(stopSignal);
    else if (arrived.includes('SIGHUP')) onHangup();
    options.stopOn?.(finish);
    if (options.exitWith !== undefined) {
      const watched = options.exitWith;
      d.manager.on('event', (event: ManagerEvent) => {
        // Down for good: inactive or failed, not waiting to be restarted.
        if (event.type === 'state' && event.unit === watched && (event.activeState === 'inactive' || event.activeState === 'failed')) {
          finish(`${watched} is ${event.activeState}`);
        }
      });
    }
  });
}

export const daemon: Command = {
  name: 'daemon',
  summary: 'run the service manager in the foreground',
  usage: `Usage: holdfast daemon [--units DIR]... [--state-dir DIR] [--socket PATH] [--socket-mode MODE]
                       [--init] [--exit-with UNIT]

Runs the service manager in the foreground; its own events go to stderr.

As a container's init (--init, or automatically when it is PID 1) it starts every unit, reaps every
orphan, turns SIGTERM/SIGINT into a stop of every unit and SIGHUP into a reload of every running
unit, and with --exit-with UNIT (or when there is only one service) exits, once that unit is down
for good, with its status: the exit code of its last main process, or 128 + the signal number. Loads the units in each
--units DIR (later ones override earlier ones), starts the enabled ones, and serves the Varlink API
on --socket (mode 0600 unless --socket-mode). SIGTERM or SIGINT stops every unit (ExecStop= and
timeouts honoured) and exits; SIGHUP reloads the unit files.

Defaults, as root: /etc/holdfast/units, /var/lib/holdfast, /run/holdfast/control; otherwise
$XDG_CONFIG_HOME/holdfast/units, $XDG_STATE_HOME/holdfast, $XDG_RUNTIME_DIR/holdfast/control
(/tmp/holdfast-UID/holdfast/control without $XDG_RUNTIME_DIR). The state and runtime directories
must belong to the user (or root) and not be writable by group or others, nor may any directory
above them be (except a sticky one of root's, such as /tmp); otherwise the daemon refuses to start
and says which directory, whose it is and its mode. Missing ones are created (state 0700).`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        units: { type: 'string', multiple: true },
        'state-dir': { type: 'string' },
        socket: { type: 'string' },
        'socket-mode': { type: 'string' },
        init: { type: 'boolean' },
        'exit-with': { type: 'string' },
      },
    });
    // As PID 1 (a container's init) holdfast behaves as one without being asked.
    const init = values.init === true || process.pid === 1;
    const defaults = defaultPaths();
    const mode = values['socket-mode'] === undefined ? 0o600 : Number.parseInt(values['socket-mode'], 8);
    if (Number.isNaN(mode)) throw new UsageError(`--socket-mode takes an octal mode, not ${values['socket-mode']}`);
    const log = (level: string, text: string): void => {
      process.stderr.write(`${level === 'info' ? '' : `${level}: `}${text}\n`);
    };
    const socket = values.socket ?? defaults.socket;
    const stateDir = resolve(values['state-dir'] ?? defaults.stateDir);
    const runtimeDir = values.socket === undefined ? defaults.runtimeDir : join(resolve(socket), '..');
    ownDirectories(stateDir, runtimeDir, resolve(socket));
    const early = holdEarlySignals();
    const d = await startOrExit(log, {
      unitDirs: (values.units ?? defaults.unitDirs).map((dir) => resolve(dir)),
      stateDir,
      socket,
      runtimeDir,
      socketMode: mode,
      ...(init ? { startUnits: 'all' as const } : {}),
      log,
    });
    let exitWith = values['exit-with'] === undefined ? undefined : unitNameOf(values['exit-with']);
    if (exitWith === undefined && init) {
      const services = [...d.manager.units.keys()];
      if (services.length === 1) exitWith = services[0];
    }
    if (exitWith !== undefined && !d.manager.units.has(exitWith)) {
      await d.shutdown();
      throw new UsageError(`--exit-with: no unit ${exitWith} in ${(values.units ?? defaults.unitDirs).join(', ')}`);
    }
    log('info', `holdfast daemon ${process.pid} listening on ${socket}; ${d.manager.units.size} unit(s) loaded`);
    return runUntilStopped(d, early, (text) => log('info', text), { init, ...(exitWith === undefined ? {} : { exitWith }) });
  },
};

const COLOURS = ['cyan', 'magenta', 'yellow', 'blue', 'green', 'white'] as const;

export const up: Command = {
  name: 'up',
  summary: 'run every unit in a directory in this terminal, with their output, until Ctrl-C',
  usage: `Usage: holdfast up [DIR] [--socket PATH]

Starts every service in DIR (default ./units) under a private daemon (units see
$HOLDFAST_UNITS_DIR, the directory's absolute path), shows each unit's output
prefixed by its name and every state change as it happens, until Ctrl-C stops everything (what
'docker compose up' or 'foreman start' feel like). Other holdfast verbs reach it through the
socket printed at start (HOLDFAST_SOCKET=... holdfast status).

The private daemon keeps its state, logs and (without --socket) its control socket in a fresh
directory $TMPDIR/holdfast-up-XXXXXX ($TMPDIR defaults to /tmp), removed when up ends cleanly and
left in place, for a look at the logs, when it does not.`,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { socket: { type: 'string' } }, allowPositionals: true });
    if (positionals.length > 1) throw new UsageError('up takes one directory');
    const dir = resolve(positionals[0] ?? 'units');
    // Units run by `up` find their project through this (systemd has no specifier for the unit's directory).
    process.env['HOLDFAST_UNITS_DIR'] = dir;
    const work = mkdtempSync(join(tmpdir(), 'holdfast-up-'));
    const socket = values.socket ?? join(work, 'control');
    const colour = new Map<string, (typeof COLOURS)[number]>();
    let width = 8;
    const prefix = (unit: string): string => {
      const name = unit.replace(/\.service$/, '');
      if (!colour.has(unit)) colour.set(unit, COLOURS[colour.size % COLOURS.length]!);
      width = Math.max(width, name.length);
      return paint(colour.get(unit)!, `${name.padEnd(width)} |`);
    };
    // Once the output is gone (a closed pipe, a vanished terminal) nothing more is written, and everything stops.
    let outputGone = false;
    const show = (line: string): void => {
      if (!outputGone) process.stdout.write(line);
    };
    const say = (text: string): void => show(`${paint('bold', 'holdfast'.padEnd(width))} | ${text}\n`);
    const early = holdEarlySignals();
    const d = await startOrExit((_level, text) => say(paint('red', text)), {
      unitDirs: [dir],
      stateDir: join(work, 'state'),
      socket,
      runtimeDir: work,
      startUnits: 'all',
      // Subscribed before any unit starts: the first lines of a fast unit are not missed.
      attach: ({ manager, logs }) => {
        for (const name of manager.units.keys()) prefix(name);
        say(`${manager.units.size} unit(s) from ${dir}; control socket ${socket} (HOLDFAST_SOCKET=${socket} holdfast status). Ctrl-C stops everything.`);
        for (const broken of manager.broken.values()) say(paint('red', `${broken.name} did not load: ${broken.errors.join('; ')}`));
        logs.on('record', (unit: string, record: LogRecord) => {
          const text = record.stream === 'stderr' ? paint('red', record.message) : record.stream === 'manager' ? paint('dim', record.message) : record.message;
          show(`${prefix(unit)} ${text}\n`);
        });
        manager.on('event', (event: ManagerEvent) => {
          // The condition check passes in a blink: showing it would only add a line to every start.
          if (event.type !== 'state' || event.subState === 'condition') return;
          const pid = event.mainProcess === null ? '' : ` (PID ${event.mainProcess.pid}${event.mainProcess.pidfdId === undefined ? '' : `, pidfd id ${event.mainProcess.pidfdId}`})`;
          show(`${prefix(event.unit)} ${paint('bold', `→ ${event.activeState} (${event.subState})`)}${event.result === 'success' ? '' : ` result ${event.result}`}${pid}\n`);
        });
      },
      log: (level, text) => {
        if (level !== 'info') say(paint(level === 'error' ? 'red' : 'yellow', text));
      },
    });
    const code = await runUntilStopped(d, early, say, {
      foreground: true,
      stopOn: (stop) =>
        process.stdout.on('error', (error: NodeJS.ErrnoException) => {
          outputGone = true;
          stop(`the output is gone (${error.code ?? error.message})`);
        }),
    });
    // The daemon's stop waits for its keeper; one slow to end may still write there for a moment.
    if (code === 0) await removeTree(work).catch((error: Error) => say(`could not remove ${work}: ${error.message}`));
    return code;
  },
};
