/**
 * The dependency graph as the job engine sees it: each unit's dependency lists, as its unit file
 * names them, and its current active state. Nothing else: the engine never touches a process.
 */
import type { UnitSection } from '../../unit/index.js';
import type { ActiveState } from '../types.js';

/** The dependency lists of a unit's [Unit] section that the job engine reads. */
type DependencyLists = Pick<UnitSection, 'requires' | 'requisite' | 'wants' | 'bindsTo' | 'partOf' | 'upholds' | 'conflicts' | 'after' | 'before'>;

/** One unit of the graph. Names in the lists may be units the graph does not hold. */
export interface UnitNode extends DependencyLists {
  readonly name: string;
  readonly activeState: ActiveState;
  /** Whether the unit has a way to reload (for reload-or-restart; default true). */
  readonly canReload?: boolean;
}

/** The units a transaction may touch. */
export interface DependencyGraph {
  node(name: string): UnitNode | undefined;
  nodes(): Iterable<UnitNode>;
}

/** Active, reloading or on its way up: what systemd's try-restart counts as running. */
export function isRunning(state: ActiveState): boolean {
  return state === 'active' || state === 'reloading' || state === 'activating';
}

/** Active in the sense Requisite= checks: up and not on its way. */
export function isUp(state: ActiveState): boolean {
  return state === 'active' || state === 'reloading';
}

/** Inactive or failed: nothing to stop. */
export function isDown(state: ActiveState): boolean {
  return state === 'inactive' || state === 'failed';
}

/**
 * The reverse edges systemd keeps as RequiredBy=, BoundBy=, ConsistsOf=, ConflictedBy=: who names a
 * unit in its own lists. Built once per transaction from one pass over the graph.
 */
export class ReverseIndex {
  readonly requiredBy = new Map<string, Set<string>>();
  readonly boundBy = new Map<string, Set<string>>();
  readonly consistsOf = new Map<string, Set<string>>();
  readonly conflictedBy = new Map<string, Set<string>>();
  readonly requisiteOf = new Map<string, Set<string>>();

  constructor(graph: DependencyGraph) {
    for (const node of graph.nodes()) {
      add(this.requiredBy, node.requires, node.name);
      add(this.boundBy, node.bindsTo, node.name);
      add(this.consistsOf, node.partOf, node.name);
      add(this.conflictedBy, node.conflicts, node.name);
      add(this.requisiteOf, node.requisite, node.name);
    }
  }

  /** Units that go down with `name`: those that Require=, BindsTo= or are PartOf= it. */
  propagatesStopTo(name: string): string[] {
    return unique([...get(this.requiredBy, name), ...get(this.boundBy, name), ...get(this.consistsOf, name)]);
  }

  /** Units whose start cannot succeed without `name`: Requires=, BindsTo=, Requisite=. */
  startFailurePropagatesTo(name: string): string[] {
    return unique([...get(this.requiredBy, name), ...get(this.boundBy, name), ...get(this.requisiteOf, name)]);
  }
}

/** Whether `first` is ordered before `second` (first Before= second, or second After= first). */
export function orderedBefore(graph: DependencyGraph, first: string, second: string): boolean {
  if (first === second) return false;
  return graph.node(first)?.before.includes(second) === true || graph.node(second)?.after.includes(first) === true;
}

function add(map: Map<string, Set<string>>, targets: readonly string[], source: string): void {
  for (const target of targets) {
    if (target === source) continue;
    let set = map.get(target);
    if (set === undefined) map.set(target, (set = new Set()));
    set.add(source);
  }
}

function get(map: Map<string, Set<string>>, key: string): Iterable<string> {
  return map.get(key) ?? [];
}

function unique(names: string[]): string[] {
  return [...new Set(names)].sort();
}
