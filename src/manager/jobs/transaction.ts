/**
 * Transactions, as systemd's transaction.c builds them: one request on one unit (the anchor) becomes
 * the set of jobs its dependencies call for, found once over the graph with a visited set, then
 * pruned (jobs with nothing to do, jobs nothing needs any more), checked for ordering cycles (broken
 * by dropping a job the anchor does not need, with a line that names the cycle) and for a unit that
 * would be both started and stopped. Pure: the graph is read, nothing runs.
 *
 * What pulls what (systemd.unit(5)):
 * - start (and restart): Requires=, BindsTo= start (needed); Wants=, Upholds= start (not needed);
 *   Requisite= checks that the unit is up (needed); Conflicts= stops (needed), and a unit that lists
 *   the anchor in its own Conflicts= stops too (not needed).
 * - stop: units that Require=, BindsTo= or are PartOf= the unit stop too (needed).
 * - restart: those same units get a try-restart, which becomes a restart only if they run now.
 */
import { isDown, isRunning, isUp, ReverseIndex, type DependencyGraph } from './graph.js';
import { findOrderingCycle, runOrder, type OrderedJob } from './ordering.js';

/** What a client asks for. */
export type RequestType = 'start' | 'stop' | 'restart' | 'try-restart' | 'reload' | 'reload-or-restart';

/** One request: a job type on one unit, the transaction's anchor. */
export interface JobRequest {
  readonly type: RequestType;
  readonly unit: string;
}

/** A job as it runs (try-restart and reload-or-restart are resolved against the unit's state when built). */
export type JobType = 'start' | 'stop' | 'restart' | 'reload' | 'verify-active';

/** One job of a transaction. */
export interface PlannedJob {
  readonly unit: string;
  readonly type: JobType;
  /** The anchor, or needed by it through Requires=-like links: such a job is never dropped to break a cycle. */
  readonly essential: boolean;
  readonly anchor: boolean;
}

/** A job the transaction left out, and why. */
export interface DroppedJob {
  readonly unit: string;
  readonly type: JobType | 'try-restart';
  readonly reason: 'ordering cycle' | 'conflict' | 'redundant' | 'not running' | 'unneeded';
}

/** A dependency the graph does not hold. */
export interface MissingUnit {
  readonly name: string;
  readonly neededBy: string;
  /** Whether the anchor needed it (then, if it must exist, the transaction fails). */
  readonly essential: boolean;
}

/** What {@link buildTransaction} returns. */
export interface Transaction {
  readonly request: JobRequest;
  /** One job per unit, by unit name. Empty when `errors` is not. */
  readonly jobs: ReadonlyMap<string, PlannedJob>;
  /** The units of `jobs` in an order that respects After=/Before= (what may run together is by name). */
  readonly order: readonly string[];
  readonly dropped: readonly DroppedJob[];
  /** Why the request cannot be carried out; nothing may run when there is one. */
  readonly errors: readonly string[];
  readonly missing: readonly MissingUnit[];
  /** Lines for the daemon's log (each cycle broken). */
  readonly log: readonly string[];
}

/** Options of {@link buildTransaction}. */
export interface BuildOptions {
  /** Whether a missing unit that the anchor needs fails the request (default: every name must exist). */
  mustExist?(name: string): boolean;
}

type Slot = 'up' | 'down';

interface Draft {
  readonly unit: string;
  readonly slot: Slot;
  type: JobType;
  readonly anchor: boolean;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly matters: boolean;
}

/** Builds the jobs for one request over `graph`. */
export function buildTransaction(graph: DependencyGraph, request: JobRequest, options: BuildOptions = {}): Transaction {
  const reverse = new ReverseIndex(graph);
  const mustExist = options.mustExist ?? (() => true);
  const drafts = new Map<string, Draft>();
  const edges: Edge[] = [];
  const expanded = new Set<string>();
  const dropped: DroppedJob[] = [];
  const errors: string[] = [];
  const missing: MissingUnit[] = [];
  const log: string[] = [];
  const idOf = (unit: string, slot: Slot): string => `${unit}/${slot}`;

  const add = (unit: string, requested: RequestType | 'verify-active', from: string | undefined, matters: boolean, anchor = false): void => {
    const node = graph.node(unit);
    if (node === undefined) {
      const neededBy = from?.split('/')[0] ?? unit;
      missing.push({ name: unit, neededBy, essential: matters });
      return;
    }
    let type: JobType;
    if (requested === 'try-restart') {
      if (!isRunning(node.activeState)) {
        if (!dropped.some((d) => d.unit === unit && d.type === 'try-restart')) dropped.push({ unit, type: 'try-restart', reason: 'not running' });
        return;
      }
      type = 'restart';
    } else if (requested === 'reload-or-restart') {
      type = isUp(node.activeState) && node.canReload !== false ? 'reload' : 'restart';
    } else {
      type = requested;
    }
    const slot: Slot = type === 'stop' ? 'down' : 'up';
    const id = idOf(unit, slot);
    const existing = drafts.get(id);
    if (existing === undefined) drafts.set(id, { unit, slot, type, anchor });
    else existing.type = merge(existing.type, type, isUp(node.activeState));
    if (from !== undefined) edges.push({ from, to: id, matters });
    expand(unit, drafts.get(id)!.type, id);
  };

  const expand = (unit: string, type: JobType, id: string): void => {
    const node = graph.node(unit)!;
    const once = (what: string): boolean => {
      const key = `${unit}/${what}`;
      if (expanded.has(key)) return false;
      expanded.add(key);
      return true;
    };
    if ((type === 'start' || type === 'restart') && once('pull')) {
      for (const dep of node.requires) add(dep, 'start', id, true);
      for (const dep of node.bindsTo) add(dep, 'start', id, true);
      for (const dep of node.requisite) add(dep, 'verify-active', id, true);
      for (const dep of node.wants) add(dep, 'start', id, false);
      for (const dep of node.upholds) add(dep, 'start', id, false);
      for (const dep of node.conflicts) if (dep !== unit) add(dep, 'stop', id, true);
      for (const dep of reverse.conflictedBy.get(unit) ?? []) add(dep, 'stop', id, false);
    }
    if (type === 'stop' && once('stop')) {
      for (const dep of reverse.propagatesStopTo(unit)) add(dep, 'stop', id, true);
    }
    if (type === 'restart' && once('restart')) {
      for (const dep of reverse.propagatesStopTo(unit)) add(dep, 'try-restart', id, true);
    }
  };

  add(request.unit, request.type, undefined, true, true);
  const anchorDraft = [...drafts.values()].find((d) => d.anchor);
  if (anchorDraft === undefined) {
    // The anchor is not in the graph, or a try-restart of a unit that does not run (nothing to do).
    if (graph.node(request.unit) === undefined) errors.push(`unit ${request.unit} not found`);
    return { request, jobs: new Map(), order: [], dropped, errors, missing, log };
  }
  const anchorId = idOf(anchorDraft.unit, anchorDraft.slot);
  for (const m of missing) {
    if (m.essential && mustExist(m.name)) errors.push(`unit ${m.name} not found (needed by ${m.neededBy})`);
  }

  // Which jobs the anchor needs: reachable from it along needed links only.
  const essential = reach(anchorId, edges, drafts, true);
  const drop = (id: string, reason: DroppedJob['reason']): void => {
    const draft = drafts.get(id);
    if (draft === undefined) return;
    drafts.delete(id);
    dropped.push({ unit: draft.unit, type: draft.type, reason });
  };
  const collectGarbage = (): void => {
    const alive = reach(anchorId, edges, drafts, false);
    for (const id of [...drafts.keys()]) if (!alive.has(id)) drop(id, 'unneeded');
  };

  // A start of a unit that is up, a stop of one that is down: nothing to do (the anchor always runs, to report).
  // As in systemd, a unit's jobs go only if all of them are redundant (a start and a stop of one unit must meet below).
  const redundant = (draft: Draft): boolean => {
    const state = graph.node(draft.unit)!.activeState;
    return !draft.anchor && (draft.type === 'stop' ? isDown(state) : (draft.type === 'start' || draft.type === 'verify-active') && isUp(state));
  };
  const dropRedundant = (): void => {
    for (const [id, draft] of [...drafts]) {
      const sibling = drafts.get(idOf(draft.unit, draft.slot === 'up' ? 'down' : 'up'));
      if (redundant(draft) && (sibling === undefined || redundant(sibling))) drop(id, 'redundant');
    }
  };
  dropRedundant();
  collectGarbage();

  // A unit to be both started and stopped: the job the anchor does not need goes (the stop, if neither is).
  for (const draft of [...drafts.values()]) {
    if (draft.slot !== 'up') continue;
    const up = idOf(draft.unit, 'up');
    const down = idOf(draft.unit, 'down');
    if (!drafts.has(down) || !drafts.has(up)) continue;
    const upNeeded = essential.has(up);
    const downNeeded = essential.has(down);
    if (upNeeded && downNeeded) {
      errors.push(`${draft.unit} would be both started and stopped (${describe(request)} needs both)`);
      continue;
    }
    dropWithDependents(upNeeded || !downNeeded ? down : up, edges, drafts, (id) => drop(id, 'conflict'));
    collectGarbage();
  }

  // Ordering cycles, in how jobs first run and in how restarts run once their stop is done.
  for (const restartsAs of [true, false]) {
    for (;;) {
      if (errors.length > 0) break;
      const ordered: OrderedJob[] = [...drafts.values()].map((d) => ({ unit: d.unit, stopping: d.type === 'stop' || (restartsAs && d.type === 'restart') }));
      const cycle = findOrderingCycle(graph, ordered);
      if (cycle === undefined) break;
      const named = cycle.join(' → ');
      const victim = cycle.slice(0, -1).map((unit) => [...drafts.values()].find((d) => d.unit === unit)!).find((d) => !essential.has(idOf(d.unit, d.slot)));
      if (victim === undefined) {
        errors.push(`ordering cycle ${named}; every job in it is needed by ${describe(request)}, so none can be dropped`);
        break;
      }
      log.push(`ordering cycle ${named}; dropping the ${victim.type} job of ${victim.unit}`);
      dropWithDependents(idOf(victim.unit, victim.slot), edges, drafts, (id) => drop(id, 'ordering cycle'));
      collectGarbage();
    }
  }

  if (errors.length > 0) return { request, jobs: new Map(), order: [], dropped, errors, missing, log };
  // What the merging above left with nothing to do (the stop of a unit that is down, once its start went).
  dropRedundant();
  const jobs = new Map<string, PlannedJob>();
  for (const [id, d] of drafts) jobs.set(d.unit, { unit: d.unit, type: d.type, essential: essential.has(id), anchor: d.anchor });
  const order = runOrder(graph, [...jobs.values()].map((j) => ({ unit: j.unit, stopping: j.type === 'stop' || j.type === 'restart' })));
  return { request, jobs, order, dropped, errors, missing, log };
}

/** "the start job of a.service", for messages. */
export function describe(request: JobRequest): string {
  return `the ${request.type} job of ${request.unit}`;
}

/** Two jobs on one unit in one: what both ask for (a stop never merges; it has its own slot). */
function merge(a: JobType, b: JobType, up: boolean): JobType {
  if (a === b) return a;
  const pair = new Set([a, b]);
  if (pair.has('restart')) return 'restart';
  if (pair.has('reload') && pair.has('start')) return up ? 'reload' : 'start';
  if (pair.has('reload')) return 'reload';
  return 'start';
}

/** Jobs reachable from `from` through jobs still in `drafts` (only along needed links, when `neededOnly`). */
function reach(from: string, edges: readonly Edge[], drafts: ReadonlyMap<string, Draft>, neededOnly: boolean): Set<string> {
  const seen = new Set<string>([from]);
  const queue = [from];
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const edge of edges) {
      if (edge.from !== id || seen.has(edge.to) || !drafts.has(edge.to) || (neededOnly && !edge.matters)) continue;
      seen.add(edge.to);
      queue.push(edge.to);
    }
  }
  return seen;
}

/** Drops a job and, as systemd does, every job that needs it (they cannot do without it). */
function dropWithDependents(id: string, edges: readonly Edge[], drafts: ReadonlyMap<string, Draft>, drop: (id: string) => void): void {
  const queue = [id];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const current = queue.shift()!;
    if (drafts.has(current)) drop(current);
    for (const edge of edges) {
      if (edge.to === current && edge.matters && !seen.has(edge.from)) {
        seen.add(edge.from);
        queue.push(edge.from);
      }
    }
  }
}
