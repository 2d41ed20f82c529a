/** Where the daemon keeps things by default, as root and as a user (XDG base directories). */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Default locations; every one can be overridden on the command line. */
export interface DaemonPaths {
  unitDirs: string[];
  stateDir: string;
  socket: string;
  /** Where the notify socket lives. */
  runtimeDir: string;
}

/** The defaults for this user: system paths as root, XDG paths otherwise. */
export function defaultPaths(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): DaemonPaths {
  if (uid === 0) {
    return { unitDirs: ['/etc/holdfast/units'], stateDir: '/var/lib/holdfast', socket: '/run/holdfast/control', runtimeDir: '/run/holdfast' };
  }
  const home = env['HOME'] || homedir();
  const config = absolute(env['XDG_CONFIG_HOME']) ?? join(home, '.config');
  const state = absolute(env['XDG_STATE_HOME']) ?? join(home, '.local', 'state');
  const runtime = absolute(env['XDG_RUNTIME_DIR']) ?? join('/tmp', `holdfast-${uid}`);
  return {
    unitDirs: [join(config, 'holdfast', 'units')],
    stateDir: join(state, 'holdfast'),
    socket: join(runtime, 'holdfast', 'control'),
    runtimeDir: join(runtime, 'holdfast'),
  };
}

function absolute(value: string | undefined): string | undefined {
  return value !== undefined && value.startsWith('/') ? value : undefined;
}

/** The control socket a client talks to: `--socket`, then `$HOLDFAST_SOCKET`, then the default. */
export function clientSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env['HOLDFAST_SOCKET'] ?? defaultPaths(env).socket;
}
