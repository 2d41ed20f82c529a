/**
 * The units the manager knows, loaded from the unit directories on demand as systemctl does: a name
 * asked for is looked up on disk the first time (a file written after the last reload starts without
 * `daemon-reload`), instances come from their template, and `daemon-reload` reads every loaded unit
 * again, instances and drop-ins included. A unit whose file is gone while it runs stays loaded as
 * `not-found`, with the config it had (or a minimal one after a daemon crash), until it stops.
 *
 * The registry is also the dependency graph the job engine reads.
 */
import { formatDiagnostic, parseServiceUnitText, UnitDirectories, type LoadResult, type ServiceUnitConfig } from '../unit/index.js';
import type { DependencyGraph, UnitNode } from './jobs/index.js';
import type { ServiceUnit } from './runtime/service-unit.js';

/** A unit that failed to load, kept so `status` can say why. */
export interface BrokenUnit {
  name: string;
  errors: string[];
  fragmentPath: string | null;
}

/** Options of {@link UnitRegistry}. */
export interface RegistryOptions {
  readonly unitDirs: readonly string[];
  /** Makes the unit object for a config (the manager gives it its host). */
  create(config: ServiceUnitConfig, transient: boolean): ServiceUnit;
  log(level: 'info' | 'warning' | 'error', text: string): void;
}

/** The dependency lists a job pulls along: what a start may need loaded first. */
const PULLED: readonly (keyof ServiceUnitConfig['unit'])[] = ['requires', 'requisite', 'wants', 'bindsTo', 'upholds'];

/** Loaded units by name, and the ones that would not load. */
export class UnitRegistry implements DependencyGraph {
  readonly units = new Map<string, ServiceUnit>();
  readonly broken = new Map<string, BrokenUnit>();
  /** The unit file texts of transient units, which have no file to load again. */
  readonly transientTexts = new Map<string, string>();
  /** Units kept loaded although their file is gone, because they still run. */
  readonly notFound = new Set<string>();
  /** Other names a loaded unit was asked for by (aliases). */
  readonly #aliases = new Map<string, string>();
  readonly #options: RegistryOptions;

  constructor(options: RegistryOptions) {
    this.#options = options;
  }

  /** A bare name means the scope of that name if there is one, else the service. */
  fullName(name: string): string {
    if (name.includes('.')) return name;
    return this.units.has(`${name}.scope`) ? `${name}.scope` : `${name}.service`;
  }

  /** The loaded unit of a name (or alias), without touching the disk. */
  get(name: string): ServiceUnit | undefined {
    const full = this.fullName(name);
    return this.units.get(full) ?? this.units.get(this.#aliases.get(full) ?? '');
  }

  /**
   * The unit, loaded from disk on first use. Throws `ENOENT` when there is no such unit and
   * `EBADMSG` when its file does not load (until the next reload).
   */
  async unit(name: string): Promise<ServiceUnit> {
    const full = this.fullName(name);
    const loaded = this.get(full);
    if (loaded !== undefined) return loaded;
    // Only services have unit files holdfast loads; a scope exists once created, never on disk.
    if (!this.broken.has(full) && full.endsWith('.service')) await this.load(full);
    const unit = this.get(full);
    if (unit !== undefined) return unit;
    const failed = this.broken.get(full);
    if (failed !== undefined) throw Object.assign(new Error(`unit ${full} failed to load: ${failed.errors.join('; ')}`), { code: 'EBADMSG' });
    throw Object.assign(new Error(`unit ${full} not found`), { code: 'ENOENT' });
  }

  /**
   * Loads (or loads again) one unit. A unit that is not found is not recorded as broken: it may be
   * written later. Returns whether it is loaded now.
   */
  async load(name: string, directories?: UnitDirectories): Promise<boolean> {
    const dirs = directories ?? (await UnitDirectories.open({ unitDirs: this.#options.unitDirs }));
    return this.#apply(name, await dirs.load(name));
  }

  /**
   * Loads what a start of `name` pulls in (Requires=, Wants=, BindsTo=, Requisite=, Upholds=),
   * transitively, each name once: the job engine then reads a graph that holds them. Only `.service`
   * units load; other names are left for the caller to report.
   */
  async loadDependencies(name: string): Promise<void> {
    const seen = new Set<string>([name]);
    const queue = [name];
    let directories: UnitDirectories | undefined;
    while (queue.length > 0) {
      const unit = this.get(queue.shift()!);
      if (unit === undefined) continue;
      for (const list of PULLED) {
        for (const dep of unit.config.unit[list] as readonly string[]) {
          if (seen.has(dep)) continue;
          seen.add(dep);
          if (this.get(dep) === undefined && dep.endsWith('.service') && !this.broken.has(dep)) {
            directories ??= await UnitDirectories.open({ unitDirs: this.#options.unitDirs });
            await this.load(dep, directories);
          }
          queue.push(dep);
        }
      }
    }
  }

  /**
   * `daemon-reload`: every unit file is read again, and so is every loaded unit (instances from their
   * template and drop-ins). A loaded unit whose file is gone is dropped if it is down, and kept as
   * `not-found` while it runs. Running units keep running; the new config applies from their next start.
   */
  async reload(): Promise<{ loaded: number; failed: number }> {
    const directories = await UnitDirectories.open({ unitDirs: this.#options.unitDirs });
    const names = new Set<string>();
    for (const entry of await directories.list()) if (entry.kind === 'service') names.add(entry.name);
    for (const [name, unit] of this.units) if (!unit.transient) names.add(name);
    let failed = 0;
    for (const name of [...names].sort()) {
      const loaded = await this.#apply(name, await directories.load(name));
      if (!loaded && this.broken.has(name)) failed++;
    }
    for (const name of this.broken.keys()) if (!names.has(name)) this.broken.delete(name);
    return { loaded: this.units.size, failed };
  }

  /** Adds a transient unit (`holdfast run`, a scope, or one restored from its recorded text). */
  addTransient(config: ServiceUnitConfig, text?: string): ServiceUnit {
    const unit = this.#options.create(config, true);
    this.units.set(config.name, unit);
    this.broken.delete(config.name);
    if (text !== undefined) this.transientTexts.set(config.name, text);
    else this.transientTexts.delete(config.name);
    return unit;
  }

  /** A transient service from its unit text (`holdfast run`). Throws `EEXIST` for a name in use, `EINVAL` for a bad text. */
  createTransient(name: string, text: string): ServiceUnit {
    const full = name.endsWith('.service') ? name : `${name}.service`;
    this.#checkFree(full);
    const parsed = parseServiceUnitText(text, `transient:${full}`, { unitName: full });
    const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0 || parsed.config === undefined) {
      throw Object.assign(new Error(errors.map(formatDiagnostic).join('; ') || 'invalid transient unit'), { code: 'EINVAL' });
    }
    return this.addTransient(parsed.config, text);
  }

  /** An empty scope unit, for processes started elsewhere to be adopted into. Throws `EEXIST` for a name in use. */
  createScope(name: string, description: string): ServiceUnit {
    const full = name.endsWith('.scope') || name.endsWith('.service') ? name : `${name}.scope`;
    this.#checkFree(full);
    // A scope runs nothing itself: the placeholder command is never executed.
    const text = `[Unit]\nDescription=${description.replace(/[\n%]/g, ' ')}\n[Service]\nExecStart=/bin/true\n`;
    const parsed = parseServiceUnitText(text, `transient:${full}`, { unitName: full.replace(/\.scope$/, '.service') });
    if (parsed.config === undefined) throw Object.assign(new Error('invalid scope'), { code: 'EINVAL' });
    return this.addTransient({ ...parsed.config, name: full, names: [full] });
  }

  /** Only a transient unit that is down may be replaced by a new one of the same name. */
  #checkFree(name: string): void {
    const existing = this.units.get(name);
    if (existing !== undefined && (!existing.transient || (existing.activeState !== 'inactive' && existing.activeState !== 'failed'))) {
      throw Object.assign(new Error(`unit ${name} already exists`), { code: 'EEXIST' });
    }
  }

  /**
   * Keeps a unit whose file is gone under supervision: the config it had, or (after a daemon crash)
   * a minimal one, enough to follow its processes and stop them.
   */
  keepNotFound(name: string): ServiceUnit {
    const existing = this.units.get(name);
    this.notFound.add(name);
    if (existing !== undefined) return existing;
    // The placeholder command is never run: the unit only follows what already runs, until it stops.
    const text = `[Unit]\nDescription=${name} (unit file not found)\n[Service]\nExecStart=/bin/true\n`;
    // A scope has no unit file of its own type: its placeholder is parsed as a service of the same name.
    const parsed = parseServiceUnitText(text, `not-found:${name}`, { unitName: name.replace(/\.scope$/, '.service') });
    if (parsed.config === undefined) throw new Error(`cannot make a placeholder config for ${name}`);
    const unit = this.#options.create({ ...parsed.config, name, names: [name] }, false);
    this.units.set(name, unit);
    return unit;
  }

  /** Drops a `not-found` unit once it is down (nothing is left to supervise). Returns whether it went. */
  dropIfGone(name: string): boolean {
    const unit = this.units.get(name);
    if (unit === undefined || !this.notFound.has(name)) return false;
    if (unit.activeState !== 'inactive' && unit.activeState !== 'failed') return false;
    unit.dispose();
    this.units.delete(name);
    this.notFound.delete(name);
    this.#options.log('info', `${name}: its unit file is gone and it no longer runs; unloaded`);
    return true;
  }

  // ------------------------------------------------------------------------- DependencyGraph

  node(name: string): UnitNode | undefined {
    const unit = this.get(name);
    return unit === undefined ? undefined : nodeOf(unit);
  }

  *nodes(): Iterable<UnitNode> {
    for (const unit of this.units.values()) yield nodeOf(unit);
  }

  #apply(name: string, result: LoadResult): boolean {
    const errors = result.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    const existing = this.units.get(name);
    if (result.state === 'not-found') {
      this.broken.delete(name);
      if (existing === undefined || existing.transient) return false;
      if (existing.activeState === 'inactive' || existing.activeState === 'failed') {
        existing.dispose();
        this.units.delete(name);
        this.notFound.delete(name);
      } else if (!this.notFound.has(name)) {
        this.#options.log('warning', `${name}: its unit file is gone; it stays loaded (not-found) until it stops`);
        this.notFound.add(name);
      }
      return false;
    }
    for (const d of result.diagnostics) if (d.severity === 'warning') this.#options.log('warning', formatDiagnostic(d));
    if (result.config === undefined || errors.length > 0) {
      this.broken.set(name, { name, errors: errors.length > 0 ? errors : [`${name}: ${result.state}`], fragmentPath: result.sourcePaths[0] ?? null });
      for (const error of errors) this.#options.log('error', error);
      return false;
    }
    this.broken.delete(name);
    const real = result.config.name;
    if (real !== name) this.#aliases.set(name, real);
    this.notFound.delete(real);
    const unit = this.units.get(real);
    if (unit !== undefined) unit.config = result.config;
    else this.units.set(real, this.#options.create(result.config, false));
    return true;
  }
}

function nodeOf(unit: ServiceUnit): UnitNode {
  const u = unit.config.unit;
  const s = unit.config.service;
  return {
    name: unit.name,
    activeState: unit.activeState,
    requires: u.requires,
    requisite: u.requisite,
    wants: u.wants,
    bindsTo: u.bindsTo,
    partOf: u.partOf,
    upholds: u.upholds,
    conflicts: u.conflicts,
    after: u.after,
    before: u.before,
    canReload: s.execReload.length > 0 || s.type === 'notify-reload',
  };
}
