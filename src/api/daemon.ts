/**
 * The daemon assembled: log store, notify socket, manager, and the Varlink control socket.
 * `holdfast daemon` and `holdfast up` both run this; they differ only in what they print.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';
import { Manager } from '../manager/manager.js';
import { LogStore } from '../manager/logs/index.js';
import { NotifyServer, notifySocketInUse } from '../manager/notify-server.js';
import { Keeper } from '../manager/keeper/keeper.js';
import { KEEPER_MANIFEST_FILE, NOTIFY_KEY } from '../manager/keeper/protocol.js';
import { managerInterface, reexecInterface } from './manager-interface.js';
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
  /** Called once the units are loaded and before any is started, to subscribe to events and logs. */
  attach?: (parts: { manager: Manager; logs: LogStore }) => void;
}

/** A running daemon. */
export interface Daemon {
  manager: Manager;
  logs: LogStore;
  /** Stops every unit and closes the sockets. */
  shutdown(): Promise<void>;
  /**
   * Replaces the daemon's program with `argv` (a new version after an upgrade) without touching a
   * service: jobs in flight finish (bounded), API calls in flight are answered, the listening
   * socket is kept across execve, and the new image takes pidfds, log pipes and the notify socket
   * back from the keeper. Only returns by throwing.
   */
  reexec(argv: string[]): Promise<never>;
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

/**
 * What the previous daemon's keeper holds. A daemon killed right after it committed its keeper can
 * leave a keeper that holds the notify socket but has not written its manifest yet (under load the
 * commit is confirmed late): while that socket is received on and nothing came back, look again
 * for a moment (bounded) rather than fail to bind it. Only the last attempt's warnings are said.
 */
async function takeOverPrevious(manifest: string, notifyPath: string, log: (text: string) => void): Promise<ReturnType<typeof Keeper.takeOver>> {
  for (let waited = 0; ; waited += 100) {
    const said: string[] = [];
    const taken = Keeper.takeOver(manifest, (text) => said.push(text));
    if (taken.previous !== undefined || waited >= 5000 || !notifySocketInUse(notifyPath)) {
      for (const text of said) log(text);
      return taken;
    }
    for (const entry of taken.fds) native.close(entry.fd);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the daemon and the units it should run. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const have = features();
  if (!have.pidfdOpen || !have.pidfdSendSignal) {
    // Without pidfds every signal would go to a bare PID: refuse loudly instead of risking a stranger.
    throw new Error('this kernel has no pidfd_open/pidfd_send_signal (Linux 5.3+); holdfast will not supervise processes by bare PID');
  }
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(options.runtimeDir, { recursive: true, mode: 0o755 });
  // What a crashed predecessor's keeper still holds comes back first, then a new keeper takes over.
  const manifest = join(options.stateDir, KEEPER_MANIFEST_FILE);
  const notifyPath = join(options.runtimeDir, 'notify');
  const { fds: recovered, previous } = await takeOverPrevious(manifest, notifyPath, (text) => options.log('warning', text));
  if (recovered.length > 0) options.log('info', `took over ${recovered.length} fd(s) from the previous daemon's keeper`);
  // A keeper that dies at any moment from here on (even before the commit below) is replaced and handed everything again.
  const keeper = Keeper.start(manifest, { log: (level, text) => options.log(level === 'debug' ? 'info' : level, `keeper: ${text}`) });
  const logs = await LogStore.open({ directory: join(options.stateDir, 'logs'), log: (level, text) => options.log(level === 'debug' ? 'info' : level, text) });
  const notifyLog = (level: 'debug' | 'info' | 'warning' | 'error', text: string): void => options.log(level === 'debug' ? 'info' : level, `notify: ${text}`);
  const heldNotify = recovered.find((entry) => entry.kind === 'notify');
  // The old notify socket still holds what services sent while no daemon listened.
  const notify = heldNotify !== undefined ? NotifyServer.adopt({ fd: heldNotify.fd, path: notifyPath, log: notifyLog }) : NotifyServer.open({ path: notifyPath, log: notifyLog });
  keeper.hold({ key: NOTIFY_KEY, kind: 'notify' }, notify.fd);
  const manager = new Manager({ unitDirs: options.unitDirs, stateDir: options.stateDir, logs, notify, log: options.log, keeper, recovered });
  await manager.open();
  // The new keeper now holds everything the old one did: its manifest becomes the one that counts, and the old keeper ends.
  // Unconfirmed (a keeper slow to start), the old keeper keeps everything: the next daemon's
  // takeover ends it (the new manifest names it as retiring), or this daemon's clean stop does.
  if (!keeper.commit(previous)) options.log('warning', 'the new keeper did not confirm in time; the previous one keeps holding everything meanwhile');
  const server = new VarlinkServer({ vendor: 'holdfast', product: 'holdfast', version: '0.1.0', url: 'https://github.com/holdfast', identifyPeer, log: (level, text) => options.log(level === 'debug' ? 'info' : level, `api: ${text}`) });
  server.addInterface(managerInterface(manager, logs));
  try {
    // Across a daemon-reexec the listening socket comes with us: clients never see it go away.
    const inherited = process.env['HOLDFAST_LISTEN_FD'];
    delete process.env['HOLDFAST_LISTEN_FD'];
    if (inherited !== undefined && /^\d+$/.test(inherited)) {
      native.setCloexec(Number(inherited), true);
      await server.listen({ fd: Number(inherited) });
    } else {
      await server.listen({ path: options.socket, mode: options.socketMode ?? 0o600 });
    }
  } catch (error) {
    // A daemon nobody can reach must not go on running units: it lets go of everything as a crash
    // would (services keep running, the keeper keeps their pipes and pidfds), for the next daemon.
    options.log('error', `cannot listen on ${options.socket}: ${(error as Error).message}; leaving every service to the keeper for the next daemon`);
    manager.detach();
    await logs.release();
    notify.close({ unlink: false });
    keeper.sync();
    keeper.release()?.close();
    throw error;
  }

  options.attach?.({ manager, logs });
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
  server.addInterface(reexecInterface(() => void daemon.reexec(process.argv.slice(1))));
  const daemon: Daemon = {
    manager,
    logs,
    async reexec(argv) {
      options.log('info', 'daemon-reexec: waiting for jobs in flight to settle');
      for (let waited = 0; !manager.settled() && waited < 30_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      const listenFd = native.dup(server.fd!, false);
      await server.close({ graceMs: 10_000, keepSocketFile: true });
      manager.detach();
      await logs.release();
      notify.close({ unlink: false });
      if (!keeper.sync()) options.log('warning', 'daemon-reexec: the keeper did not confirm; some fds may not come back');
      options.log('info', `daemon-reexec: executing ${argv.join(' ')}`);
      // Node marks its own stdin/stdout/stderr close-on-exec; the new image must keep them.
      for (const fd of [0, 1, 2]) native.setCloexec(fd, false);
      const env = Object.entries({ ...process.env, HOLDFAST_LISTEN_FD: String(listenFd) }).map(([k, v]) => `${k}=${v ?? ''}`);
      return native.execve(process.execPath, [process.execPath, ...process.execArgv, ...argv], env);
    },
    shutdown() {
      closing ??= (async () => {
        await manager.shutdown();
        await server.close();
        notify.close({ unlink: true });
        await logs.close();
        // Ends the keeper (and a previous one never confirmed replaced) and removes the manifest, so the next start looks for no keeper.
        keeper.stop();
      })();
      return closing;
    },
  };
  return daemon;
}
