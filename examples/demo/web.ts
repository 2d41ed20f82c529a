/**
 * A small HTTP server run as a Type=notify service: it says READY=1 once it listens, keeps a
 * STATUS= line current, pings the watchdog, and shows the manager it verified through the v258
 * environment ($MANAGERPID + $MANAGERPIDFDID).
 */
import { createServer } from 'node:http';
import { managerProcess, ready, startWatchdog, status, stopping } from '../../src/service/index.js';

const port = Number(process.env['PORT'] ?? 8080);
let requests = 0;
const manager = managerProcess();

const server = createServer((_request, response) => {
  requests++;
  status(`${requests} request(s) served on port ${port}`);
  response.end(`hello from PID ${process.pid}; manager ${manager === null ? 'none' : `${manager.pid} (pidfd id ${manager.id}, verified ${manager.verified})`}\n`);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${port}/`);
  console.log(manager === null ? 'not run by a service manager' : `run by manager PID ${manager.pid}, pidfd id ${manager.id} (verified: ${manager.verified})`);
  ready(`listening on port ${port}`);
  startWatchdog();
});

process.on('SIGTERM', () => {
  stopping();
  console.log('SIGTERM: closing the server');
  server.close(() => process.exit(0));
});
