/** The status snapshot of a unit as `status` and `list` show it, and of a unit that did not load. */
import { existsSync } from 'node:fs';
import type { ServiceUnitConfig } from '../unit/index.js';
import type { CgroupTree } from './cgroups.js';
import type { BrokenUnit } from './registry.js';
import type { ServiceUnit } from './runtime/service-unit.js';
import type { UnitStatus } from './types.js';

/** What the registry and the daemon know of a unit beyond the unit itself. */
export interface StatusContext {
  readonly enabled: boolean;
  /** Its file is gone, but it still runs. */
  readonly notFound: boolean;
  readonly cgroups: CgroupTree | undefined;
  readonly cgroupsUnavailable: string | undefined;
  /** Resource figures (a few cgroupfs reads each) only when asked for. */
  readonly withStats: boolean;
}

/** One unit's snapshot. */
export function statusOf(unit: ServiceUnit, context: StatusContext): UnitStatus {
  const enabled = unit.transient ? 'transient' : context.enabled ? 'enabled' : hasInstall(unit.config) ? 'disabled' : 'static';
  const cgroups = context.cgroups;
  const path = cgroups?.path(unit.name);
  const stats = context.withStats && cgroups !== undefined && path !== undefined && existsSync(path) ? cgroups.stats(unit.name) : undefined;
  return {
    ...unit.status(),
    loadState: context.notFound ? 'not-found' : 'loaded',
    enabled,
    cgroup: stats?.path ?? (path !== undefined && existsSync(path) ? path : null),
    memoryCurrent: stats?.memoryCurrent ?? null,
    cpuUsageUsec: stats?.cpuUsageUsec ?? null,
    tasks: stats?.tasks ?? null,
    ...(context.cgroupsUnavailable === undefined ? {} : { cgroupUnavailable: context.cgroupsUnavailable }),
  };
}

/** Whether a unit can be enabled ([Install] WantedBy=, RequiredBy= or Alias=). */
export function hasInstall(config: ServiceUnitConfig): boolean {
  return config.install.wantedBy.length > 0 || config.install.requiredBy.length > 0 || config.install.alias.length > 0;
}

/** The snapshot of a unit that did not load: why, and where from. */
export function brokenStatus(broken: BrokenUnit): UnitStatus {
  return {
    name: broken.name,
    description: broken.name,
    loadState: 'error',
    loadErrors: broken.errors,
    activeState: 'inactive',
    subState: 'dead',
    result: 'success',
    type: 'unknown',
    mainProcess: null,
    controlProcess: null,
    restarts: 0,
    lastExit: null,
    statusText: null,
    invocationId: null,
    stateChangeTimestamp: Date.now(),
    activeEnterTimestamp: null,
    fragmentPath: broken.fragmentPath,
    dropInPaths: [],
    transient: false,
    enabled: 'static',
  };
}
