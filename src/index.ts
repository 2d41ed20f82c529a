/**
 * holdfast: process handles that never lose a process and never signal the wrong one.
 *
 * ```ts
 * import { Pidfd, ProcessRef } from 'holdfast';
 * using handle = Pidfd.verify(pid, id);   // throws ESTALE if the PID was recycled
 * handle.signal('SIGTERM');
 * const { code, signal } = await handle.exited;
 * ```
 * @packageDocumentation
 */
export * from './pidfd/index.js';
