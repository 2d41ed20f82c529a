/** Which units start with the daemon: `enable` records them in the state directory, durably. */
import { join } from 'node:path';
import { readJson, writeJsonAtomic } from './state-file.js';

/** The set of enabled unit names, as `enabled.json` holds it. */
export class Enablement {
  readonly #path: string;
  readonly #names: Set<string>;

  constructor(stateDir: string) {
    this.#path = join(stateDir, 'enabled.json');
    this.#names = new Set(readJson<string[]>(this.#path) ?? []);
  }

  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** Every enabled name, sorted. */
  names(): string[] {
    return [...this.#names].sort();
  }

  /** Enables or disables units and records it (fsynced: enablement must survive a power loss). */
  set(names: readonly string[], on: boolean): void {
    for (const name of names) {
      if (on) this.#names.add(name);
      else this.#names.delete(name);
    }
    writeJsonAtomic(this.#path, this.names(), true);
  }
}
