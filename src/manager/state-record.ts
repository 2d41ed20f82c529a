/**
 * The daemon's record of its units, written on each change and read by the next daemon on the same
 * boot (after a crash or a re-exec) to pick up what runs.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { bootId } from '../pidfd/index.js';
import { readJson } from './state-file.js';
import { readSlots, SlotWriter } from './state-slots.js';
import type { DaemonState, UnitRecord } from './types.js';

/** The state record in a state directory. */
export class StateRecord {
  readonly #stateDir: string;
  #writer: SlotWriter | undefined;

  constructor(stateDir: string) {
    this.#stateDir = stateDir;
  }

  /** What a previous daemon of this boot recorded (nothing from another boot: its PIDs mean nothing now). */
  read(): DaemonState | undefined {
    // `state.json` is where holdfast before the slotted record kept it: read after an upgrade by daemon-reexec.
    const state = readSlots<DaemonState>(join(this.#stateDir, 'state')) ?? readJson<DaemonState>(join(this.#stateDir, 'state.json'));
    return state !== undefined && state.bootId === bootId() ? state : undefined;
  }

  /** Records every unit; throws when the record cannot be written. */
  write(units: UnitRecord[]): void {
    const state: DaemonState = { bootId: bootId(), written: Date.now(), units };
    const first = this.#writer === undefined;
    this.#writer ??= new SlotWriter(join(this.#stateDir, 'state'));
    this.#writer.write(state);
    // The record of a holdfast from before the slots has been read (if any) and is superseded.
    if (first) rmSync(join(this.#stateDir, 'state.json'), { force: true });
  }
}
