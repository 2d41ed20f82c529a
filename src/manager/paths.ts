/**
 * Where the daemon keeps things by default, as root and as a user (XDG base directories), and the
 * check that those directories belong to the user before anything is put in or read from them.
 */
import { lstatSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';

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
  const runtime = absolute(env['XDG_RUNTIME_DIR']) ?? fallbackRuntimeBase(uid);
  return {
    unitDirs: [join(config, 'holdfast', 'units')],
    stateDir: join(state, 'holdfast'),
    socket: join(runtime, 'holdfast', 'control'),
    runtimeDir: join(runtime, 'holdfast'),
  };
}

/**
 * Stands in for `$XDG_RUNTIME_DIR` when it is unset. It lies in the world-writable /tmp, where
 * anyone may have made it first: {@link ensureOwnDirectory} refuses it unless it is the user's.
 */
export function fallbackRuntimeBase(uid: number): string {
  return join('/tmp', `holdfast-${uid}`);
}

function absolute(value: string | undefined): string | undefined {
  return value !== undefined && value.startsWith('/') ? value : undefined;
}

/** The control socket a client talks to: `--socket`, then `$HOLDFAST_SOCKET`, then the default. */
export function clientSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env['HOLDFAST_SOCKET'] ?? defaultPaths(env).socket;
}

/** A directory someone other than the user could change: what is wrong, and where. */
export class UnsafeDirectoryError extends Error {
  override readonly name = 'UnsafeDirectoryError';
  readonly code = 'EPERM';
  constructor(
    /** The directory at fault: the one asked for, or one of its parents. */
    readonly path: string,
    /** Its owner's uid. */
    readonly owner: number,
    /** Its permission bits (with the sticky bit). */
    readonly mode: number,
    why: string,
  ) {
    super(`refusing ${path} (owner ${describeUid(owner)}, mode ${formatMode(mode)}): ${why}`);
  }
}

/** `0755`, `1777`. */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** `uid 1000 (alice)` when /etc/passwd names it, else `uid 1000`. */
function describeUid(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (id === String(uid) && name !== undefined && name !== '') return `uid ${uid} (${name})`;
    }
  } catch {
    // No passwd file (a minimal container): the number says enough.
  }
  return `uid ${uid}`;
}

/** Options of {@link ensureOwnDirectory}. */
export interface OwnDirectoryOptions {
  /** Whose directory it must be (default: this process's uid). Root's directories are always trusted. */
  uid?: number;
  /** Create the directory (and missing parents, 0700) when it does not exist (default true). */
  create?: boolean;
  /** Mode of the directory when it is created (default 0700). */
  mode?: number;
}

/**
 * Makes sure that only `uid` (or root) can change what `path` holds, the way ssh checks `~/.ssh`:
 * the directory must be owned by the user or root and not writable by group or others, and so must
 * each of its parents, except that a parent may be writable by all when it is root's and sticky
 * (`/tmp`), where nobody can rename or remove another's entry. Missing directories are created,
 * parents 0700 and the directory itself with `mode`.
 *
 * Without this, a user daemon falling back to `/tmp/holdfast-UID` would use a directory another
 * user made first, who could then swap the control socket for their own and answer the CLI.
 *
 * @returns false when the directory does not exist and `create` is false
 * @throws UnsafeDirectoryError naming the directory, its owner and mode, and why it is refused
 */
export function ensureOwnDirectory(path: string, options: OwnDirectoryOptions = {}): boolean {
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const target = resolve(path);
  // Parents first: nothing is created inside a directory someone else controls.
  const existing = existingAncestor(target);
  checkChain(existing === target ? dirname(target) : existing, uid);
  if (existing !== target) {
    if (options.create === false) return false;
    if (dirname(target) !== existing) mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    try {
      mkdirSync(target, { mode: options.mode ?? 0o700 });
    } catch (error) {
      // Made meanwhile by someone: what matters is whose it is, checked below.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  // Through symlinks: what counts is the directory the files will really be in.
  const real = realpathSync(target);
  checkChain(dirname(real), uid);
  const st = statSync(real);
  if (!st.isDirectory()) throw new UnsafeDirectoryError(target, st.uid, st.mode, 'it is not a directory');
  checkOne(real === target ? target : `${target} (really ${real})`, st, uid, false);
  return true;
}

/** The deepest of `path` and its parents that exists. */
function existingAncestor(path: string): string {
  let current = path;
  for (;;) {
    try {
      lstatSync(current);
      return current;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
    }
    const parent = dirname(current);
    if (parent === current) return current;
    current = parent;
  }
}

/** Checks `dir` (resolved through symlinks) and every directory above it. */
function checkChain(dir: string, uid: number): void {
  const real = realpathSync(dir);
  const parts = real.split(sep).filter((p) => p !== '');
  let current: string = sep;
  checkOne(current, statSync(current), uid, true);
  for (const part of parts) {
    current = join(current, part);
    checkOne(current, statSync(current), uid, true);
  }
}

function checkOne(path: string, st: { uid: number; mode: number }, uid: number, isParent: boolean): void {
  if (st.uid !== uid && st.uid !== 0) {
    throw new UnsafeDirectoryError(path, st.uid, st.mode, `it must belong to ${describeUid(uid)} or root${isParent ? ', as every directory above it must' : ''}`);
  }
  const writableByOthers = (st.mode & 0o022) !== 0;
  const stickyRoot = st.uid === 0 && (st.mode & 0o1000) !== 0;
  if (writableByOthers && !(isParent && stickyRoot)) {
    throw new UnsafeDirectoryError(path, st.uid, st.mode, 'it must not be writable by group or others');
  }
}
