/**
 * Finding a unit's files on disk: the fragment in the unit directories, templates for instances,
 * aliases (symlinks, and `Alias=` in [Install]), masks, and drop-ins, the way systemd's unit-file.c and
 * dropin.c do it.
 *
 * Directories are given in increasing priority: a later directory overrides an earlier one, both for
 * the fragment and for drop-ins of the same file name (systemd's /usr/lib, /run, /etc order).
 */

import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Diagnostic } from './diagnostics.js';
import { lexUnitFile } from './lexer.js';
import { parseServiceUnit, type UnitSource } from './parse.js';
import type { ServiceUnitConfig } from './service-config.js';
import { expandSpecifiers, hostSpecifierContext, type HostContext } from './specifiers.js';
import { instantiate, isValidUnitName, parseUnitName, templateOf, unitNameProblem, UNIT_TYPES } from './unit-name.js';
import { splitWords } from './words.js';

/** Options for {@link loadServiceUnit} and {@link resolveUnitFiles}. */
export interface LoadOptions {
  /** Unit directories in increasing priority (a later one overrides an earlier one). */
  readonly unitDirs: readonly string[];
  /** Host facts for specifiers; read from the running system when omitted. */
  readonly host?: HostContext;
  /**
   * Also find a unit by a name listed in some fragment's `[Install] Alias=` (default true). holdfast
   * has no `enable` step to create alias symlinks, so it honours `Alias=` directly.
   */
  readonly installAliases?: boolean;
}

/** Why a unit did or did not load. */
export type LoadState = 'loaded' | 'not-found' | 'masked' | 'bad-setting' | 'unsupported' | 'error';

/** The outcome of {@link loadServiceUnit}. */
export interface LoadResult {
  /** Present only when `state` is `loaded`. */
  readonly config: ServiceUnitConfig | undefined;
  readonly diagnostics: Diagnostic[];
  /** The fragment, then each drop-in in the order applied (empty when no fragment was found). */
  readonly sourcePaths: string[];
  readonly state: LoadState;
}

/** The files that make up a unit, before parsing. */
export interface UnitFiles {
  /** The name the unit goes by (the alias target, or the instance of a template). */
  readonly name: string;
  /** Other names it was found under. */
  readonly aliases: readonly string[];
  /** The fragment, or undefined when not found. */
  readonly fragmentPath?: string;
  readonly dropInPaths: readonly string[];
  readonly masked: boolean;
}

interface DirEntry {
  readonly name: string;
  readonly dir: string;
  readonly path: string;
  readonly symlink: boolean;
}

type Inspection =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'masked'; readonly path: string }
  | { readonly kind: 'alias'; readonly target: string }
  | { readonly kind: 'bad'; readonly path: string; readonly why: string };

/** A file that looks meant as a unit (it ends in `.service`) but whose name no unit can have. */
export interface InvalidUnitFile {
  readonly name: string;
  readonly path: string;
  /** Why the name is not valid, in words. */
  readonly why: string;
}

/**
 * Whether a directory entry that is not a valid unit name deserves a word: files ending in
 * `.service` were surely meant as units (`my app.service`, `café.service`, `.hidden.service`);
 * anything else (a README, an editor's backup `x.service~` or lock `.#x.service`) is not a unit
 * file at all and is passed over quietly.
 */
function invalidUnitFile(dir: string, name: string): InvalidUnitFile | undefined {
  // `.#name` is an editor's lock file, not a unit.
  if (!name.endsWith('.service') || name.startsWith('.#')) return undefined;
  const why = unitNameProblem(name, UNIT_TYPES) ?? 'it is not a valid unit name';
  return { name, path: path.join(dir, name), why };
}

/** Unit files of all directories, the highest-priority entry per name. */
class UnitIndex {
  private installAliases: Map<string, string> | undefined;

  private constructor(
    readonly dirs: readonly string[],
    readonly entries: ReadonlyMap<string, DirEntry>,
    /** Files meant as units whose names are not valid, by name. */
    readonly invalid: ReadonlyMap<string, InvalidUnitFile>,
  ) {}

  static async scan(unitDirs: readonly string[]): Promise<UnitIndex> {
    const dirs = unitDirs.map((d) => path.resolve(d));
    const entries = new Map<string, DirEntry>();
    const invalid = new Map<string, InvalidUnitFile>();
    for (const dir of dirs) {
      let list: import('node:fs').Dirent[];
      try {
        list = await readdir(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const d of list) {
        if (!d.isFile() && !d.isSymbolicLink()) continue;
        // A hidden name is valid for systemd, which skips such files; holdfast's logs and state
        // cannot take one either, so it is reported rather than loaded.
        if (!isValidUnitName(d.name) || d.name.startsWith('.')) {
          const bad = invalidUnitFile(dir, d.name);
          if (bad !== undefined) invalid.set(d.name, bad);
          continue;
        }
        entries.set(d.name, { name: d.name, dir, path: path.join(dir, d.name), symlink: d.isSymbolicLink() });
      }
    }
    return new UnitIndex(dirs, entries, invalid);
  }

  /** Classifies an entry: a fragment, a mask, an alias of another name, or unusable. */
  async inspect(entry: DirEntry): Promise<Inspection> {
    try {
      if (entry.symlink) {
        const target = path.resolve(entry.dir, await readlink(entry.path));
        if (target === '/dev/null') return { kind: 'masked', path: entry.path };
        const inside = this.dirs.some((d) => target.startsWith(d + '/'));
        if (inside) {
          const targetName = path.basename(target);
          const why = aliasProblem(entry.name, targetName);
          if (why !== undefined) return { kind: 'bad', path: entry.path, why };
          if (targetName !== entry.name) return { kind: 'alias', target: targetName };
        }
      }
      const st = await stat(entry.path);
      if (st.isCharacterDevice() || (st.isFile() && st.size === 0)) return { kind: 'masked', path: entry.path };
      if (!st.isFile()) return { kind: 'bad', path: entry.path, why: 'not a regular file' };
      return { kind: 'file', path: entry.path };
    } catch (error) {
      return { kind: 'bad', path: entry.path, why: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
    }
  }

  /** `Alias=` names from the fragments' [Install] sections, mapped to the unit that declares them. */
  async installAliasMap(host: HostContext): Promise<Map<string, string>> {
    if (this.installAliases !== undefined) return this.installAliases;
    const map = new Map<string, string>();
    for (const entry of this.entries.values()) {
      const parts = parseUnitName(entry.name);
      if (parts === undefined || parts.kind === 'instance') continue;
      const info = await this.inspect(entry);
      if (info.kind !== 'file') continue;
      let content: Buffer;
      try {
        content = await readFile(info.path);
      } catch {
        continue;
      }
      for (const a of lexUnitFile(content, info.path, { knownSections: ['Install'] }).assignments) {
        if (a.key !== 'Alias') continue;
        for (const w of splitWords(a.value, { retainEscape: true }).words) {
          const r = expandSpecifiers(w, { ...host, unitName: entry.name, fragmentPath: info.path }, 'name');
          if (r.ok && aliasProblem(r.value, entry.name) === undefined && !this.entries.has(r.value) && !map.has(r.value)) map.set(r.value, entry.name);
        }
      }
    }
    this.installAliases = map;
    return map;
  }
}

/** Why `alias` may not name `target` (systemd's unit_validate_alias_symlink_or_warn()), or undefined. */
function aliasProblem(alias: string, target: string): string | undefined {
  const a = parseUnitName(alias);
  const t = parseUnitName(target);
  if (a === undefined || t === undefined) return `'${target}' is not a unit name`;
  if (a.type !== t.type) return `alias ${alias} and ${target} are of different unit types`;
  if (a.kind === 'template' && t.kind !== 'template') return `template ${alias} can only alias another template`;
  if (a.kind === 'plain' && t.kind !== 'plain') return `${alias} can only alias a unit without instance`;
  if (a.kind === 'instance' && t.kind === 'instance' && a.instance !== t.instance) return `instance ${alias} cannot alias an instance with another name`;
  return undefined;
}

/** Byte-wise comparison, as C's strcmp() sorts drop-in names. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The drop-in directory names for one unit name, most specific first (systemd's unit_file_find_dirs()):
 * `foo-bar@x.service.d`, `foo-bar@.service.d`, `foo-@x.service.d`, `foo-@.service.d`, …
 */
export function dropInDirNames(name: string): string[] {
  const out: string[] = [];
  const visit = (n: string) => {
    out.push(`${n}.d`);
    const parts = parseUnitName(n);
    if (parts === undefined) return;
    if (parts.kind === 'instance') visit(templateOf(n)!);
    let prefix = parts.prefix;
    let chopped = false;
    for (;;) {
      const dash = prefix.lastIndexOf('-');
      if (dash <= 0) return;
      if (dash !== prefix.length - 1 || chopped) {
        prefix = prefix.slice(0, dash + 1);
        break;
      }
      prefix = prefix.slice(0, dash);
      chopped = true;
    }
    if (!/^[0-9A-Za-z:\-_.\\]+$/.test(prefix)) return;
    visit(parts.kind === 'plain' ? `${prefix}.${parts.type}` : `${prefix}@${parts.instance ?? ''}.${parts.type}`);
  };
  visit(name);
  return [...new Set(out)];
}

async function listDropIns(dirs: readonly string[]): Promise<string[]> {
  const chosen = new Map<string, string | null>(); // file name -> path, or null when masked
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!n.endsWith('.conf') || n.startsWith('.') || chosen.has(n)) continue;
      const p = path.join(dir, n);
      try {
        const l = await lstat(p);
        if (l.isSymbolicLink() && path.resolve(dir, await readlink(p)) === '/dev/null') {
          chosen.set(n, null);
          continue;
        }
        const st = await stat(p);
        if (st.isCharacterDevice()) chosen.set(n, null);
        else if (st.isFile()) chosen.set(n, p);
      } catch {
        // A dangling symlink contributes nothing, as in systemd.
      }
    }
  }
  return [...chosen.entries()]
    .filter((e): e is [string, string] => e[1] !== null)
    .sort((a, b) => compareBytes(a[0], b[0]))
    .map((e) => e[1]);
}

async function resolveWith(index: UnitIndex, name: string, options: LoadOptions, host: HostContext): Promise<UnitFiles & { problem?: string }> {
  const byPriority = [...index.dirs].reverse();
  const aliases: string[] = [];
  let current = name;
  let fragmentPath: string | undefined;
  let masked = false;
  let problem: string | undefined;

  let skipExact = false;
  for (let hop = 0; hop < 16; hop++) {
    const parts = parseUnitName(current)!;
    let entry = skipExact ? undefined : index.entries.get(current);
    skipExact = false;
    if (entry === undefined && parts.kind === 'instance') entry = index.entries.get(templateOf(current)!);
    if (entry === undefined) {
      if (options.installAliases === false) break;
      const map = await index.installAliasMap(host);
      let target = map.get(current);
      if (target === undefined && parts.kind === 'instance') {
        const t = map.get(templateOf(current)!);
        if (t !== undefined) target = instantiate(t, parts.instance!);
      }
      if (target === undefined) break;
      aliases.push(current);
      current = target;
      continue;
    }
    const info = await index.inspect(entry);
    if (info.kind === 'alias') {
      const t = parseUnitName(info.target)!;
      const next = t.kind === 'template' && parts.kind === 'instance' ? instantiate(info.target, parts.instance!) : info.target;
      if (next === undefined) {
        problem = `${entry.path}: cannot follow alias to ${info.target}`;
        break;
      }
      if (next === current) {
        // foo@bar.service linked to foo@.service: the instance of its own template.
        skipExact = true;
        continue;
      }
      aliases.push(current);
      current = next;
      continue;
    }
    if (info.kind === 'masked') masked = true;
    if (info.kind === 'bad') problem = `${info.path}: ${info.why}`;
    else fragmentPath = info.path;
    break;
  }

  // Other symlinks that alias the unit also contribute their drop-ins, as in systemd.
  const primaryTemplate = templateOf(current);
  for (const entry of index.entries.values()) {
    if (!entry.symlink || entry.name === current || aliases.includes(entry.name)) continue;
    const info = await index.inspect(entry);
    if (info.kind !== 'alias') continue;
    if (info.target === current) aliases.push(entry.name);
    else if (primaryTemplate !== undefined && info.target === primaryTemplate) {
      const inst = instantiate(entry.name, parseUnitName(current)!.instance ?? '');
      if (inst !== undefined && inst !== current && !aliases.includes(inst)) aliases.push(inst);
    }
  }

  let dropInPaths: string[] = [];
  if (fragmentPath !== undefined && !masked) {
    const dirs: string[] = [];
    for (const d of byPriority) for (const n of dropInDirNames(current)) dirs.push(path.join(d, n));
    for (const alias of aliases) for (const d of byPriority) for (const n of dropInDirNames(alias)) dirs.push(path.join(d, n));
    const type = parseUnitName(current)!.type;
    for (const d of byPriority) dirs.push(path.join(d, `${type}.d`));
    dropInPaths = await listDropIns(dirs);
  }
  return { name: current, aliases, ...(fragmentPath !== undefined ? { fragmentPath } : {}), dropInPaths, masked, ...(problem !== undefined ? { problem } : {}) };
}

/** What kind of entry a unit directory holds under a name. */
export type UnitListKind = 'service' | 'template' | 'alias' | 'masked' | 'unsupported' | 'bad';

/** One name found by {@link listUnits}. */
export interface UnitListEntry {
  readonly name: string;
  readonly kind: UnitListKind;
  /** The file that provides it (the symlink itself for aliases); absent for `[Install] Alias=` names. */
  readonly path?: string;
  /**
   * Why the file cannot be loaded under its name, for a `.service` file whose name is not a valid
   * unit name. It is listed as a service all the same, so that loading it reports the file and why
   * instead of passing it over in silence.
   */
  readonly problem?: string;
  /** For aliases: the unit they stand for. */
  readonly target?: string;
}

/**
 * One scan of the unit directories, for loading many units at once (a daemon start or reload) without
 * reading the directories again for each. Take a new one after the directories change.
 */
export class UnitDirectories {
  private constructor(
    private readonly index: UnitIndex,
    private readonly options: LoadOptions,
    private readonly host: HostContext,
  ) {}

  /** Scans `options.unitDirs` (missing directories are skipped). */
  static async open(options: LoadOptions): Promise<UnitDirectories> {
    return new UnitDirectories(await UnitIndex.scan(options.unitDirs), options, options.host ?? hostSpecifierContext());
  }

  /** The `.service` files whose names are not valid unit names, with why; they cannot be loaded. */
  get invalidFiles(): InvalidUnitFile[] {
    return [...this.index.invalid.values()];
  }

  /**
   * Finds the files of any unit (not only services): the fragment, following aliases and templates,
   * and the drop-ins that apply, in order. Used by `cat`.
   */
  async resolve(name: string): Promise<UnitFiles> {
    if (!isValidUnitName(name)) return { name, aliases: [], dropInPaths: [], masked: false };
    const { problem: _problem, ...files } = await resolveWith(this.index, name, this.options, this.host);
    return files;
  }

  /**
   * Loads a `.service` unit: finds its fragment (an instance falls back to its template), applies the
   * drop-ins and parses everything with {@link parseServiceUnit}. Never throws; a unit that cannot be
   * used has `config: undefined` and says why in `state` and `diagnostics`.
   */
  async load(name: string): Promise<LoadResult> {
    try {
      return await this.loadUnchecked(name);
    } catch (error) {
      // Not expected; a manager must survive any unit file, so a bug here fails only this unit.
      return { config: undefined, diagnostics: [{ file: name, line: 0, severity: 'error', message: `internal error while loading: ${(error as Error).message}` }], sourcePaths: [], state: 'error' };
    }
  }

  private async loadUnchecked(name: string): Promise<LoadResult> {
    const none = (state: LoadState, message: string, file = name, line = 0): LoadResult => ({
      config: undefined,
      diagnostics: [{ file, line, severity: 'error', message }],
      sourcePaths: [],
      state,
    });
    const parts = parseUnitName(name);
    const invalid = this.index.invalid.get(name);
    if (invalid !== undefined) {
      return none('error', `${JSON.stringify(invalid.name)} is not a valid unit name (${invalid.why}); the file is not loaded. Rename it.`, invalid.path);
    }
    if (parts === undefined) return none('not-found', `'${name}' is not a valid unit name${describeProblem(name)}`);
    if (parts.type !== 'service') return none('unsupported', `.${parts.type} units are not supported by holdfast; only .service units are`);
    if (parts.kind === 'template') return none('not-found', `${name} is a template; load an instance of it such as ${parts.prefix}@NAME.service`);

    const files = await resolveWith(this.index, name, this.options, this.host);
    if (files.masked) return { ...none('masked', `Unit ${files.name} is masked.`, files.fragmentPath ?? name) };
    if (files.problem !== undefined) return none('error', files.problem);
    const dirs = this.options.unitDirs;
    if (files.fragmentPath === undefined) return none('not-found', `Unit ${name} not found in ${dirs.length > 0 ? dirs.join(', ') : 'any unit directory'}.`);

    const sourcePaths = [files.fragmentPath, ...files.dropInPaths];
    const sources: UnitSource[] = [];
    for (const p of sourcePaths) {
      try {
        sources.push({ file: p, content: await readFile(p) });
      } catch (error) {
        return { ...none('error', `cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`, p), sourcePaths };
      }
    }
    const r = parseServiceUnit(sources, { unitName: files.name, aliases: files.aliases, host: this.host });
    return { config: r.config, diagnostics: r.diagnostics, sourcePaths, state: r.config !== undefined ? 'loaded' : 'bad-setting' };
  }

  /**
   * Every name in the unit directories, the highest-priority entry per name: services, templates
   * (loadable only with an instance), aliases (symlinks and `Alias=`), masks, and units of other types
   * (reported as unsupported). Sorted by name.
   */
  async list(): Promise<UnitListEntry[]> {
    const index = this.index;
    const out: UnitListEntry[] = [];
    for (const entry of index.entries.values()) {
      const parts = parseUnitName(entry.name)!;
      const info = await index.inspect(entry);
      if (parts.type !== 'service') out.push({ name: entry.name, kind: 'unsupported', path: entry.path });
      else if (info.kind === 'alias') out.push({ name: entry.name, kind: 'alias', path: entry.path, target: info.target });
      else if (info.kind === 'masked') out.push({ name: entry.name, kind: 'masked', path: entry.path });
      else if (info.kind === 'bad') out.push({ name: entry.name, kind: 'bad', path: entry.path });
      else out.push({ name: entry.name, kind: parts.kind === 'template' ? 'template' : 'service', path: entry.path });
    }
    if (this.options.installAliases !== false) {
      for (const [alias, target] of await index.installAliasMap(this.host)) out.push({ name: alias, kind: 'alias', target });
    }
    for (const bad of index.invalid.values()) out.push({ name: bad.name, kind: 'service', path: bad.path, problem: bad.why });
    return out.sort((a, b) => compareBytes(a.name, b.name));
  }
}

/** `: why` for a name that is not valid, or nothing when there is nothing more to say. */
function describeProblem(name: string): string {
  const why = unitNameProblem(name, UNIT_TYPES);
  return why === undefined ? '' : ` (${why})`;
}

/** {@link UnitDirectories.resolve} after a fresh scan. */
export async function resolveUnitFiles(name: string, options: LoadOptions): Promise<UnitFiles> {
  return (await UnitDirectories.open(options)).resolve(name);
}

/** {@link UnitDirectories.load} after a fresh scan: loads one `.service` unit. Never throws. */
export async function loadServiceUnit(name: string, options: LoadOptions): Promise<LoadResult> {
  try {
    return await (await UnitDirectories.open(options)).load(name);
  } catch (error) {
    return { config: undefined, diagnostics: [{ file: name, line: 0, severity: 'error', message: `cannot read the unit directories: ${(error as Error).message}` }], sourcePaths: [], state: 'error' };
  }
}

/** {@link UnitDirectories.list} after a fresh scan. */
export async function listUnits(unitDirs: readonly string[], options: { host?: HostContext; installAliases?: boolean } = {}): Promise<UnitListEntry[]> {
  return (await UnitDirectories.open({ unitDirs, ...options })).list();
}

/**
 * holdfast's default unit directories: `/etc/holdfast/units` for root, otherwise
 * `$XDG_CONFIG_HOME/holdfast/units` (falling back to `~/.config/holdfast/units`).
 */
export function defaultUnitDirs(env: Readonly<Record<string, string | undefined>> = process.env, uid: number = typeof process.getuid === 'function' ? process.getuid() : 0): string[] {
  if (uid === 0) return ['/etc/holdfast/units'];
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env['HOME'] || os.homedir(), '.config');
  return [path.join(base, 'holdfast', 'units')];
}
