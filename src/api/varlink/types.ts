/**
 * Plain types shared by the Varlink wire layer, server and client.
 *
 * @module
 */

/** Any value JSON can carry after `JSON.parse`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** A JSON object; Varlink parameters are always one of these. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * Who is on the other end of an accepted connection, as the kernel reports it for the socket
 * (`SO_PEERCRED`, and `SO_PEERPIDFD` where available). These are the credentials of the process
 * that called `connect()`, captured at that moment; they do not follow later `setuid()` calls.
 */
export interface PeerIdentity {
  /** Effective user id of the peer at connect time. */
  uid: number;
  /** Effective group id of the peer at connect time. */
  gid: number;
  /** Process id of the peer at connect time. May be recycled once the peer exits: prefer `pidfd`. */
  pid: number;
  /**
   * A pidfd for the peer process, when the kernel offers one (`SO_PEERPIDFD`, Linux 6.5+).
   * The server takes ownership: it is closed when the connection ends.
   */
  pidfd?: number;
}

/**
 * Resolves the identity of the peer of an accepted connection from the connection's file
 * descriptor. Returning `undefined` means "unknown": handlers then see `peer === undefined` and
 * must treat the caller as unprivileged.
 */
export type IdentifyPeer = (fd: number) => PeerIdentity | undefined;

/** A method call as it travels on the wire (varlink.org "Method Call"). */
export interface VarlinkCallMessage {
  /** Fully-qualified method name, `interface.Method`. */
  method: string;
  /** Input parameters; absent or `null` means `{}`. */
  parameters?: JsonObject;
  /** The caller wants no reply. */
  oneway?: boolean;
  /** The caller accepts several replies (`continues: true` on all but the last). */
  more?: boolean;
  /** The caller asks to take the connection over with another protocol after the reply. */
  upgrade?: boolean;
}

/** A reply as it travels on the wire (varlink.org "Method Call", "Reply"). */
export interface VarlinkReplyMessage {
  /** Output parameters, or the error's parameters when `error` is set. */
  parameters?: JsonObject;
  /** More replies to the same call follow. Never set together with `error`. */
  continues?: boolean;
  /** Fully-qualified error name; the call failed. */
  error?: string;
}

/** Severity of a log line emitted by the server or client. */
export type VarlinkLogLevel = 'debug' | 'info' | 'warning' | 'error';

/**
 * Receives one log line at a time. The server never throws on bad input; it reports it here
 * instead, so the daemon's own logger decides where the line goes.
 */
export type VarlinkLogger = (level: VarlinkLogLevel, message: string) => void;
