/**
 * A socket-activated HTTP server that speaks the service protocol:
 *
 * - serves on the socket the manager passes (`$LISTEN_FDS`, the fd named `web`), or on $PORT when
 *   started by hand;
 * - reports `READY=1` with a `STATUS=` once it is listening;
 * - pings the watchdog when the manager asks for it (`WatchdogSec=` → `$WATCHDOG_USEC`);
 * - reloads its configuration on SIGHUP, bracketed by `RELOADING=1` … `READY=1` (Type=notify-reload);
 * - says `STOPPING=1` on SIGTERM and exits once open connections are closed.
 *
 * Outside this repository import from 'holdfast/service' instead of the relative path.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { closeNotifySocket, listenFds, listenOn, ready, reloading, startWatchdog, stopping } from '../../src/service/index.js';

interface Config {
  greeting: string;
}

/** The configuration: $SERVER_CONFIG (a JSON file) if set, read again on every reload. */
function loadConfig(): Config {
  const file = process.env['SERVER_CONFIG'];
  if (file === undefined) return { greeting: 'hello' };
  return { greeting: 'hello', ...(JSON.parse(readFileSync(file, 'utf8')) as Partial<Config>) };
}

let config = loadConfig();
let generation = 0;

const server = createServer((request, response) => {
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ greeting: config.greeting, generation, pid: process.pid, path: request.url }) + '\n');
});

// The variables are meant for this process only: remove them so that children do not see them.
const inherited = listenFds({ unsetEnvironment: true });
let where: string;
if (inherited.length > 0) {
  const fd = await listenOn(server, inherited.find((candidate) => candidate.name === 'web') ?? inherited[0]!);
  where = `fd ${fd.fd} (${fd.name})`;
} else {
  const port = Number(process.env['PORT'] ?? 8080);
  await new Promise<void>((resolve) => server.listen(port, resolve));
  where = `port ${port}`;
}

const statusLine = (): string => `serving on ${where}, configuration generation ${generation}`;
const stopWatchdog = startWatchdog();

// The handlers go in before READY=1: the manager may send the reload signal the moment it reads it.
process.on('SIGHUP', () => {
  reloading('reloading the configuration');
  try {
    config = loadConfig();
    generation++;
  } catch (error) {
    process.stderr.write(`reload failed, keeping the old configuration: ${(error as Error).message}\n`);
  }
  ready(statusLine());
});

process.on('SIGTERM', () => {
  stopping('shutting down');
  stopWatchdog();
  server.close(() => {
    closeNotifySocket();
    process.exit(0);
  });
  server.closeIdleConnections();
});

ready(statusLine());
