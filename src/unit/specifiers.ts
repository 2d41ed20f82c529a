/**
 * `%x` specifiers (systemd.unit(5) "Specifiers"). Everything they expand to comes in through a
 * {@link SpecifierContext}, so that tests and `verify` can fix it; {@link hostSpecifierContext} fills
 * one in from the running system.
 */

import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseUnitName, unescapeUnitName, unescapeUnitPath } from './unit-name.js';

/** Whether the manager runs for the whole system (as root) or for one user. */
export type ManagerScope = 'system' | 'user';

/** The user the manager runs as: what `%u %U %g %G %h %s` expand to (not `User=`, as in systemd). */
export interface ManagerUser {
  readonly name: string;
  readonly uid: number;
  readonly group: string;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/** Base directories, system or per-user (systemd.unit(5) table "Specifiers"). */
export interface ManagerDirectories {
  /** `%t`: /run or $XDG_RUNTIME_DIR. */
  readonly runtime: string;
  /** `%S`: /var/lib or $XDG_STATE_HOME. */
  readonly state: string;
  /** `%C`: /var/cache or $XDG_CACHE_HOME. */
  readonly cache: string;
  /** `%L`: /var/log or $XDG_STATE_HOME/log. */
  readonly logs: string;
  /** `%E`: /etc or $XDG_CONFIG_HOME. */
  readonly config: string;
  /** `%D`: /usr/share or $XDG_DATA_HOME. */
  readonly sharedData: string;
  /** `%T`: $TMPDIR or /tmp. */
  readonly tmp: string;
  /** `%V`: $TMPDIR or /var/tmp. */
  readonly varTmp: string;
}

/** Facts about the host and the manager, shared by all units. */
export interface HostContext {
  readonly scope: ManagerScope;
  readonly user: ManagerUser;
  readonly dirs: ManagerDirectories;
  /** `%m`, 32 lowercase hex digits. */
  readonly machineId?: string;
  /** `%b`, 32 lowercase hex digits. */
  readonly bootId?: string;
  /** `%H`; `%l` is its part before the first dot. */
  readonly hostname?: string;
  /** `%q`; falls back to the short host name. */
  readonly prettyHostname?: string;
  /** `%v`, as `uname -r`. */
  readonly kernelRelease?: string;
  /** `%a`, in systemd's spelling (`x86-64`, `arm64`, …). */
  readonly architecture?: string;
  /** os-release(5) fields: `ID` (`%o`), `VERSION_ID` (`%w`), `VARIANT_ID` (`%W`), `BUILD_ID` (`%B`), `IMAGE_ID` (`%M`), `IMAGE_VERSION` (`%A`). */
  readonly osRelease?: Readonly<Record<string, string>>;
}

/** A {@link HostContext} plus the unit being expanded. */
export interface SpecifierContext extends HostContext {
  /** Full name of the unit, e.g. `web@8080.service` (`%n`). */
  readonly unitName: string;
  /** The fragment the unit was loaded from, for `%y` and `%Y`. */
  readonly fragmentPath?: string;
}

/**
 * Which specifiers a setting accepts. `full` is systemd's `unit_full_printf()` set used by most
 * settings; `name` is the smaller `unit_name_printf()` set used where the result must be a unit name
 * (dependencies, [Install]).
 */
export type SpecifierSet = 'full' | 'name';

/** Result of {@link expandSpecifiers}: the text, or why it could not be produced. */
export type SpecifierResult = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly error: string };

type Lookup = (ctx: SpecifierContext) => string | { error: string };

function unitParts(ctx: SpecifierContext) {
  const parts = parseUnitName(ctx.unitName);
  if (parts === undefined) return { error: `'${ctx.unitName}' is not a valid unit name` } as const;
  return parts;
}

const prefix: Lookup = (ctx) => {
  const p = unitParts(ctx);
  return 'error' in p ? p : p.prefix;
};

const lastComponent: Lookup = (ctx) => {
  const p = unitParts(ctx);
  if ('error' in p) return p;
  const dash = p.prefix.lastIndexOf('-');
  return dash >= 0 ? p.prefix.slice(dash + 1) : p.prefix;
};

function unescaped(inner: Lookup, what: string): Lookup {
  return (ctx) => {
    const v = inner(ctx);
    if (typeof v !== 'string') return v;
    const u = unescapeUnitName(v);
    return u ?? { error: `the ${what} '${v}' has an invalid escape` };
  };
}

function osField(field: string): Lookup {
  return (ctx) => ctx.osRelease?.[field] ?? '';
}

function required(value: string | undefined, what: string): string | { error: string } {
  return value !== undefined && value !== '' ? value : { error: `the ${what} is not known` };
}

const shortHost = (ctx: SpecifierContext) => (ctx.hostname ?? '').split('.')[0] ?? '';

const NAME_SPECIFIERS: Readonly<Record<string, Lookup>> = {
  i: (ctx) => {
    const p = unitParts(ctx);
    return 'error' in p ? p : (p.instance ?? '');
  },
  j: lastComponent,
  n: (ctx) => ctx.unitName,
  N: (ctx) => {
    const dot = ctx.unitName.lastIndexOf('.');
    return dot > 0 ? ctx.unitName.slice(0, dot) : ctx.unitName;
  },
  p: prefix,
  // COMMON_SYSTEM_SPECIFIERS
  a: (ctx) => required(ctx.architecture, 'architecture'),
  A: osField('IMAGE_VERSION'),
  b: (ctx) => required(ctx.bootId, 'boot ID'),
  B: osField('BUILD_ID'),
  H: (ctx) => required(ctx.hostname, 'host name'),
  l: (ctx) => required(shortHost(ctx), 'host name'),
  q: (ctx) => (ctx.prettyHostname !== undefined && ctx.prettyHostname !== '' ? ctx.prettyHostname : required(shortHost(ctx), 'host name')),
  m: (ctx) => required(ctx.machineId, 'machine ID'),
  M: osField('IMAGE_ID'),
  o: osField('ID'),
  v: (ctx) => required(ctx.kernelRelease, 'kernel release'),
  w: osField('VERSION_ID'),
  W: osField('VARIANT_ID'),
  // COMMON_CREDS_SPECIFIERS
  g: (ctx) => ctx.user.group,
  G: (ctx) => String(ctx.user.gid),
  u: (ctx) => ctx.user.name,
  U: (ctx) => String(ctx.user.uid),
};

const FULL_SPECIFIERS: Readonly<Record<string, Lookup>> = {
  ...NAME_SPECIFIERS,
  I: (ctx) => {
    const p = unitParts(ctx);
    if ('error' in p) return p;
    return unescapeUnitName(p.instance ?? '') ?? { error: `the instance '${p.instance ?? ''}' has an invalid escape` };
  },
  J: unescaped(lastComponent, 'last prefix component'),
  P: unescaped(prefix, 'prefix'),
  f: (ctx) => {
    const p = unitParts(ctx);
    if ('error' in p) return p;
    const source = p.kind === 'instance' ? p.instance! : p.prefix;
    return unescapeUnitPath(source) ?? { error: `'${source}' does not unescape to a valid path` };
  },
  y: (ctx) => required(ctx.fragmentPath, 'unit file path'),
  Y: (ctx) => (ctx.fragmentPath !== undefined ? path.dirname(ctx.fragmentPath) : { error: 'the unit file path is not known' }),
  C: (ctx) => ctx.dirs.cache,
  d: (ctx) => `${ctx.dirs.runtime}/credentials/${ctx.unitName}`,
  D: (ctx) => ctx.dirs.sharedData,
  E: (ctx) => ctx.dirs.config,
  L: (ctx) => ctx.dirs.logs,
  S: (ctx) => ctx.dirs.state,
  t: (ctx) => ctx.dirs.runtime,
  h: (ctx) => ctx.user.home,
  s: (ctx) => ctx.user.shell,
  T: (ctx) => ctx.dirs.tmp,
  V: (ctx) => ctx.dirs.varTmp,
};

const TABLES: Readonly<Record<SpecifierSet, Readonly<Record<string, Lookup>>>> = { full: FULL_SPECIFIERS, name: NAME_SPECIFIERS };

/**
 * Replaces every `%x` in `text`. `%%` is a literal `%`; `%` before a character that is not a letter
 * or digit, or at the very end, stays as written (as in systemd); a letter or digit that is not a
 * specifier of `set` is an error.
 */
export function expandSpecifiers(text: string, ctx: SpecifierContext, set: SpecifierSet = 'full'): SpecifierResult {
  if (!text.includes('%')) return { ok: true, value: text };
  const table = TABLES[set];
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const s = text[i + 1];
    if (s === undefined) {
      out += '%';
      break;
    }
    i++;
    if (s === '%') {
      out += '%';
      continue;
    }
    const lookup = Object.hasOwn(table, s) ? table[s] : undefined;
    if (lookup === undefined) {
      if (/^[0-9A-Za-z]$/.test(s)) {
        if ('crR'.includes(s)) return { ok: false, error: `specifier '%${s}' (a cgroup path) is not supported` };
        if (set === 'name' && Object.hasOwn(FULL_SPECIFIERS, s)) return { ok: false, error: `specifier '%${s}' cannot be used in a unit name` };
        return { ok: false, error: `unknown specifier '%${s}'` };
      }
      out += '%' + s;
      continue;
    }
    const v = lookup(ctx);
    if (typeof v !== 'string') return { ok: false, error: `cannot expand '%${s}': ${v.error}` };
    out += v;
  }
  return { ok: true, value: out };
}

/** systemd's spelling of `process.arch`, for `%a`. */
export function systemdArchitecture(arch: string = process.arch): string {
  const le = os.endianness() === 'LE';
  const map: Record<string, string> = {
    x64: 'x86-64',
    ia32: 'x86',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: le ? 'ppc64-le' : 'ppc64',
    ppc: 'ppc',
    s390x: 's390x',
    s390: 's390',
    riscv64: 'riscv64',
    loong64: 'loongarch64',
    mips: 'mips',
    mipsel: 'mips-le',
  };
  return map[arch] ?? arch;
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Parses `KEY=value` files such as os-release(5) and machine-info(5), enough for specifiers. */
export function parseSimpleEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]!)) value = value.slice(1, -1);
    out[line.slice(0, eq).trim()] = value.replace(/\\(.)/g, '$1');
  }
  return out;
}

function groupName(gid: number): string | undefined {
  const text = readOptional('/etc/group');
  if (text === undefined) return undefined;
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && Number(f[2]) === gid && f[0] !== undefined) return f[0];
  }
  return undefined;
}

/** Options for {@link hostSpecifierContext}. */
export interface HostContextOptions {
  /** Default: `system` when running as root, else `user`. */
  readonly scope?: ManagerScope;
  /** Environment to read `XDG_*` and `TMPDIR` from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Builds a {@link HostContext} from the running system: the user holdfast runs as, its base
 * directories (system or XDG), /etc/machine-id, the boot id, host name, kernel release and os-release.
 * Anything that cannot be read is left undefined, and the specifiers that need it report an error.
 */
export function hostSpecifierContext(options: HostContextOptions = {}): HostContext {
  const env = options.env ?? process.env;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const scope = options.scope ?? (uid === 0 ? 'system' : 'user');
  let user: ManagerUser;
  if (scope === 'system') {
    user = { name: 'root', uid: 0, group: 'root', gid: 0, home: '/root', shell: '/bin/sh' };
  } else {
    const info = os.userInfo();
    const gid = info.gid;
    user = {
      name: info.username,
      uid: info.uid,
      gid,
      group: groupName(gid) ?? String(gid),
      home: env['HOME'] || info.homedir,
      shell: info.shell || '/bin/sh',
    };
  }
  const tmpEnv = env['TMPDIR'];
  const tmp = tmpEnv !== undefined && path.isAbsolute(tmpEnv) ? tmpEnv : undefined;
  let dirs: ManagerDirectories;
  if (scope === 'system') {
    dirs = { runtime: '/run', state: '/var/lib', cache: '/var/cache', logs: '/var/log', config: '/etc', sharedData: '/usr/share', tmp: tmp ?? '/tmp', varTmp: tmp ?? '/var/tmp' };
  } else {
    const xdg = (name: string, fallback: string) => {
      const v = env[name];
      return v !== undefined && path.isAbsolute(v) ? v : path.join(user.home, fallback);
    };
    const state = xdg('XDG_STATE_HOME', '.local/state');
    dirs = {
      runtime: env['XDG_RUNTIME_DIR'] || `/run/user/${user.uid}`,
      state,
      cache: xdg('XDG_CACHE_HOME', '.cache'),
      logs: path.join(state, 'log'),
      config: xdg('XDG_CONFIG_HOME', '.config'),
      sharedData: xdg('XDG_DATA_HOME', '.local/share'),
      tmp: tmp ?? '/tmp',
      varTmp: tmp ?? '/var/tmp',
    };
  }
  const id128 = (text: string | undefined) => {
    const v = text?.trim().replace(/-/g, '').toLowerCase();
    return v !== undefined && /^[0-9a-f]{32}$/.test(v) ? v : undefined;
  };
  const osText = readOptional('/etc/os-release') ?? readOptional('/usr/lib/os-release');
  const machineInfo = readOptional('/etc/machine-info');
  const pretty = machineInfo !== undefined ? parseSimpleEnvFile(machineInfo)['PRETTY_HOSTNAME'] : undefined;
  const machineId = id128(readOptional('/etc/machine-id'));
  const bootId = id128(readOptional('/proc/sys/kernel/random/boot_id'));
  return {
    scope,
    user,
    dirs,
    architecture: systemdArchitecture(),
    hostname: os.hostname(),
    kernelRelease: os.release(),
    osRelease: osText !== undefined ? parseSimpleEnvFile(osText) : {},
    ...(machineId !== undefined ? { machineId } : {}),
    ...(bootId !== undefined ? { bootId } : {}),
    ...(pretty !== undefined && pretty !== '' ? { prettyHostname: pretty } : {}),
  };
}
