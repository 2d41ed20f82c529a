/**
 * What a new daemon found of a unit a previous daemon recorded, in the terms the driver feeds to
 * the machine: processes found alive are adopted into their recorded slots; one that ended while no
 * daemon watched becomes an `exited` event marked `unwatched`.
 */
import type { ExitStatus, Pidfd } from '../../pidfd/index.js';

/** What a new daemon found of a recorded control process. */
export type RecoveredControl =
  | { state: 'alive'; handle: Pidfd }
  | { state: 'ended'; exit: ExitStatus | undefined }
  | { state: 'lost'; reason: string };

/** How a process ended when nobody watched it, or "unknown" (both null) where the kernel kept nothing. */
export function unwatchedStatus(exit: ExitStatus | undefined): ExitStatus {
  return exit ?? { code: null, signal: null, coreDumped: false };
}
