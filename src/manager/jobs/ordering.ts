/**
 * Ordering between jobs, as systemd's job_compare() decides it. Between two units ordered by
 * After=/Before=, starts run in that order, stops in the reverse order, and a stop always runs before
 * a start whichever way the units are ordered. A restart orders as a stop until its stop is done,
 * then as a start.
 */
import { orderedBefore, type DependencyGraph } from './graph.js';

/**
 * Whether the job on `unit` must wait for the job on `other`, given whether each job is (for now)
 * stopping. Unordered units never wait for each other.
 */
export function mustWaitFor(graph: DependencyGraph, unit: string, stopping: boolean, other: string, otherStopping: boolean): boolean {
  // `other` is ordered first: its job goes first unless ours is a stop (a stop never waits for a start, and stops go in reverse).
  if (orderedBefore(graph, other, unit) && !stopping) return true;
  // We are ordered first: our job goes first unless theirs is a stop.
  if (orderedBefore(graph, unit, other) && otherStopping) return true;
  return false;
}

/** One job as ordering sees it. */
export interface OrderedJob {
  readonly unit: string;
  readonly stopping: boolean;
}

/**
 * The first cycle of "waits for" edges among `jobs`, as unit names from a job back to itself
 * (`[a, b, a]`: a waits for b, b for a), or undefined.
 */
export function findOrderingCycle(graph: DependencyGraph, jobs: readonly OrderedJob[]): string[] | undefined {
  const edges = waitEdges(graph, jobs);
  const state = new Map<string, 'open' | 'closed'>();
  const path: string[] = [];
  const visit = (unit: string): string[] | undefined => {
    state.set(unit, 'open');
    path.push(unit);
    for (const next of edges.get(unit) ?? []) {
      const seen = state.get(next);
      if (seen === 'open') return [...path.slice(path.indexOf(next)), next];
      if (seen === undefined) {
        const found = visit(next);
        if (found !== undefined) return found;
      }
    }
    path.pop();
    state.set(unit, 'closed');
    return undefined;
  };
  for (const job of [...jobs].sort((a, b) => compare(a.unit, b.unit))) {
    if (state.has(job.unit)) continue;
    const found = visit(job.unit);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The units of `jobs` in an order that respects every wait (ties by name); assumes no cycle. */
export function runOrder(graph: DependencyGraph, jobs: readonly OrderedJob[]): string[] {
  const edges = waitEdges(graph, jobs);
  const out: string[] = [];
  const done = new Set<string>();
  const pending = [...jobs].map((j) => j.unit).sort(compare);
  while (pending.length > 0) {
    const index = pending.findIndex((unit) => [...(edges.get(unit) ?? [])].every((dep) => done.has(dep)));
    // A leftover cycle (the caller did not break it) is listed as is rather than looped over.
    const [unit] = pending.splice(index === -1 ? 0 : index, 1);
    out.push(unit!);
    done.add(unit!);
  }
  return out;
}

function waitEdges(graph: DependencyGraph, jobs: readonly OrderedJob[]): Map<string, string[]> {
  const edges = new Map<string, string[]>();
  for (const job of jobs) {
    const list: string[] = [];
    for (const other of jobs) {
      if (other.unit !== job.unit && mustWaitFor(graph, job.unit, job.stopping, other.unit, other.stopping)) list.push(other.unit);
    }
    edges.set(job.unit, list.sort(compare));
  }
  return edges;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
