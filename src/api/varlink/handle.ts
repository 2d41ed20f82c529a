/**
 * Access to the file descriptor behind a Node socket or server.
 *
 * Node does not expose it publicly, but it is needed twice: the peer of an accepted connection can
 * only be identified by calling `getsockopt(SO_PEERCRED / SO_PEERPIDFD)` on that descriptor (in
 * native code, since Node has no binding for it), and a listening socket can only be handed to a
 * re-executed daemon by its descriptor number. libuv keeps the descriptor on the handle object as
 * `_handle.fd` on Unix; this is the one place that reaches for it.
 *
 * @module
 */

import type { Server, Socket } from 'node:net';

interface WithHandle {
  _handle?: { fd?: unknown } | null;
}

/**
 * The file descriptor of a connected socket or a listening server, or `undefined` if it has none
 * (closed, not yet open, or a platform where libuv does not expose it).
 *
 * The descriptor still belongs to Node: use it for `getsockopt`-style queries or to `dup` it, never
 * close it.
 */
export function handleFd(object: Socket | Server): number | undefined {
  const fd = (object as unknown as WithHandle)._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}
