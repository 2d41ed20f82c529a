/** A dependency graph and units held by the test: a job ends when the test says so. */
import type { DependencyGraph, JobTarget, UnitJobResult, UnitNode } from '../../../src/manager/jobs/index.js';
import type { ActiveState } from '../../../src/manager/types.js';

type Lists = 'requires' | 'requisite' | 'wants' | 'bindsTo' | 'partOf' | 'upholds' | 'conflicts' | 'after' | 'before';

/** One unit's dependencies as a test writes them. */
export type NodeSpec = Partial<Record<Lists, string[]>> & { state?: ActiveState; canReload?: boolean };

interface FakeNode extends UnitNode {
  activeState: ActiveState;
}

/** A graph whose units' states the test (or a fake unit) sets. */
export class FakeGraph implements DependencyGraph {
  readonly #nodes = new Map<string, FakeNode>();

  constructor(spec: Record<string, NodeSpec>) {
    for (const [name, s] of Object.entries(spec)) {
      this.#nodes.set(name, {
        name,
        activeState: s.state ?? 'inactive',
        requires: s.requires ?? [],
        requisite: s.requisite ?? [],
        wants: s.wants ?? [],
        bindsTo: s.bindsTo ?? [],
        partOf: s.partOf ?? [],
        upholds: s.upholds ?? [],
        conflicts: s.conflicts ?? [],
        after: s.after ?? [],
        before: s.before ?? [],
        ...(s.canReload === undefined ? {} : { canReload: s.canReload }),
      });
    }
  }

  node(name: string): UnitNode | undefined {
    return this.#nodes.get(name);
  }

  nodes(): Iterable<UnitNode> {
    return this.#nodes.values();
  }

  set(name: string, state: ActiveState): void {
    this.#nodes.get(name)!.activeState = state;
  }

  state(name: string): ActiveState {
    return this.#nodes.get(name)!.activeState;
  }
}

type Op = 'start' | 'stop' | 'reload';

interface Call {
  unit: string;
  op: Op;
  end(result: UnitJobResult): void;
}

/** Units that record each call and hold it until the test ends it. */
export class FakeUnits {
  /** Every call in the order made, as `unit:op`. */
  readonly log: string[] = [];
  readonly #open: Call[] = [];

  constructor(
    readonly graph: FakeGraph,
    readonly onChange: (unit: string) => void = () => {},
  ) {}

  target = (unit: string): JobTarget | undefined => {
    if (this.graph.node(unit) === undefined) return undefined;
    return {
      start: () => this.#call(unit, 'start'),
      stop: () => this.#call(unit, 'stop'),
      reload: () => this.#call(unit, 'reload'),
    };
  };

  /** Calls made and not yet ended, as `unit:op`. */
  running(): string[] {
    return this.#open.map((c) => `${c.unit}:${c.op}`).sort();
  }

  /** Ends the open call on `unit`, moving the unit to the state the result implies. */
  async end(unit: string, result: UnitJobResult = 'done'): Promise<void> {
    const index = this.#open.findIndex((c) => c.unit === unit);
    if (index === -1) throw new Error(`no open call on ${unit} (open: ${this.running().join(', ')})`);
    const [call] = this.#open.splice(index, 1);
    call!.end(result);
    await flush();
  }

  /** The unit goes down on its own (its process died). */
  async crash(unit: string, state: ActiveState = 'failed'): Promise<void> {
    this.graph.set(unit, state);
    this.onChange(unit);
    await flush();
  }

  #call(unit: string, op: Op): Promise<UnitJobResult> {
    this.log.push(`${unit}:${op}`);
    const before = this.graph.state(unit);
    if (op === 'start' && (before === 'active' || before === 'reloading')) return Promise.resolve('done');
    if (op === 'stop' && (before === 'inactive' || before === 'failed')) return Promise.resolve('done');
    if (op === 'reload' && before !== 'active') return Promise.resolve('failed');
    this.graph.set(unit, op === 'start' ? 'activating' : op === 'stop' ? 'deactivating' : 'reloading');
    this.onChange(unit);
    return new Promise((resolve) => {
      this.#open.push({
        unit,
        op,
        end: (result) => {
          const ok = result === 'done';
          this.graph.set(unit, op === 'stop' ? 'inactive' : op === 'reload' ? 'active' : ok ? 'active' : 'failed');
          this.onChange(unit);
          resolve(result);
        },
      });
    });
  }
}

/** Lets every settled promise's callbacks run (no timer involved). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
