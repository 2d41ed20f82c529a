/** This process's own pidfd id, computed once: it belongs to the process and never changes. */
import { Pidfd } from '../pidfd/pidfd.js';

let cached: { pid: number; id: bigint | undefined } | undefined;

/** The pidfd id of this process (`Pidfd.self().id`), or `undefined` on a kernel without pidfd ids. */
export function ownPidfdId(): bigint | undefined {
  if (cached === undefined || cached.pid !== process.pid) {
    const self = Pidfd.self();
    try {
      cached = { pid: process.pid, id: self.id };
    } finally {
      self.close();
    }
  }
  return cached.id;
}
