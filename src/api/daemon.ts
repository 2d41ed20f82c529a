/**
 * The daemon assembled: log store, notify socket, manager, and the Varlink control socket.
 * `holdfast daemon` and `holdfast up` both run this; they differ only in what they print.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';
import { Manager } from '../manager/manager.js';
import { LogStore } from '../manager/logs/index.js';
import { NotifyServer } from '../manager/notify-server.js';
import { managerInterface } from './manager-interface.js';
import { VarlinkServer, type PeerIdentity } from './varlink/index.js';
import { features } from '../pidfd/index.js';

/** Options of {@link startDaemon}. */
export interface DaemonOptions {
  unitDirs: string[];
  stateDir: string;
  socket: string;
  runtimeDir: string;
  /** Mode of the control socket (default 0600: the owner only). */
  socketMode?: number;
  /** Units to start once loaded (default: the enabled ones). */
  startUnits?: 'enabled' | 'all' | string[];
  log: (level: 'info' | 'warning' | 'error', text: string) => void;
}

/** A running daemon. */
export interface Daemon {
  manager: Manager;
  logs: LogStore;
  /** Stops every unit and closes the sockets. */
  shutdown(): Promise<void>;
}

function identifyPeer(fd: number): PeerIdentity | undefined {
  const creds = native.peerCredentials(fd);
  let pidfd: number | undefined;
  if (features().peerPidfd) {
    try {
      pidfd = native.peerPidfd(fd);
    } catch {
      pidfd = undefined;
    }
  }
  return { ...creds, ...(pidfd === undefined ? {} : { pidfd }) };
}

/** Starts the daemon and the units it should run. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(options.runtimeDir, { recursive: true, mode: 0o755 });
  const logs = await LogStore.open({ directory: join(options.stateDir, 'logs'), log: (level, text) => options.log(level === 'debug' ? 'info' : level, text) });
  const notify = NotifyServer.open({ path: join(options.runtimeDir, 'notify'), log: (level, text) => options.log(level === 'debug' ? 'info' : level, `notify: ${text}`) });
  const manager = new Manager({ unitDirs: options.unitDirs, stateDir: options.stateDir, logs, notify, log: options.log });
  await manager.open();
  const server = new VarlinkServer({ vendor: 'holdfast', product: 'holdfast', version: '0.1.0', url: 'https://github.com/holdfast', identifyPeer, log: (level, text) => options.log(level === 'debug' ? 'info' : level, `api: ${text}`) });
  server.addInterface(managerInterface(manager, logs));
  await server.listen({ path: options.socket, mode: options.socketMode ?? 0o600 });

  const wanted = options.startUnits ?? 'enabled';
  const names = wanted === 'enabled' ? manager.enabledUnits() : wanted === 'all' ? [...manager.units.keys()] : wanted;
  for (const name of names) {
    manager.start(name).then(
      (outcome) => {
        if (outcome.result === 'failed') options.log('error', `${outcome.unit} failed to start (${outcome.serviceResult})`);
      },
      (error: Error) => options.log('error', `${name}: ${error.message}`),
    );
  }

  let closing: Promise<void> | undefined;
  return {
    manager,
    logs,
    shutdown() {
      closing ??= (async () => {
        await manager.shutdown();
        await server.close();
        notify.close({ unlink: true });
        await logs.close();
      })();
      return closing;
    },
  };
}
