/**
 * Varlink errors: the well-known names, and the exception type that carries one.
 *
 * @module
 */

import { constants as osConstants } from 'node:os';
import type { JsonObject } from './types.js';

/**
 * Error names with a fixed meaning. The `org.varlink.service` ones are defined by varlink.org and
 * systemd (`ExpectedMore`, `PermissionDenied` come from systemd's copy of that interface). The
 * `io.systemd` ones follow systemd's sd-varlink so that `varlinkctl` and other sd-varlink clients
 * understand our replies: `System` crosses the wire, the other three are only ever synthesized
 * locally by a client and never sent.
 */
export const VarlinkErrorName = {
  /** The called interface is not served here. Parameters: `{interface}`. */
  InterfaceNotFound: 'org.varlink.service.InterfaceNotFound',
  /** The interface is served but has no such method. Parameters: `{method}`. */
  MethodNotFound: 'org.varlink.service.MethodNotFound',
  /** The interface declares the method but the service has no implementation of it. Parameters: `{method}`. */
  MethodNotImplemented: 'org.varlink.service.MethodNotImplemented',
  /** A parameter is missing, has the wrong type, or is not declared. Parameters: `{parameter}`. */
  InvalidParameter: 'org.varlink.service.InvalidParameter',
  /** The caller may not do this. No parameters. */
  PermissionDenied: 'org.varlink.service.PermissionDenied',
  /** The method may only be called with `more: true`. No parameters. */
  ExpectedMore: 'org.varlink.service.ExpectedMore',
  /** A Linux error number. Parameters: `{origin?: "linux", errnoName?, errno?}`. */
  System: 'io.systemd.System',
  /** Local only: the connection went away before the reply arrived. */
  Disconnected: 'io.systemd.Disconnected',
  /** Local only: the call timed out. */
  TimedOut: 'io.systemd.TimedOut',
  /** Local only: the peer broke the protocol (bad framing, bad JSON, unexpected reply). */
  Protocol: 'io.systemd.Protocol',
} as const;

// Reverse-domain interface names; uppercase is allowed because systemd's interfaces use it.
const INTERFACE_NAME = /^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$/;
const MEMBER_NAME = /^[A-Z][A-Za-z0-9]*$/;

/**
 * Whether `name` is a fully-qualified Varlink member name (`interface.Member`), the shape required
 * of method names and error names on the wire.
 */
export function isQualifiedMemberName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return false;
  return INTERFACE_NAME.test(name.slice(0, dot)) && MEMBER_NAME.test(name.slice(dot + 1));
}

/**
 * A Varlink error reply, as an exception. Throw one from a method handler to reply with that error;
 * the client rejects with one when the server replies with an error.
 *
 * `name` is the fully-qualified Varlink error name rather than the class name, so that stack traces
 * and `util.inspect` show which error it was; test for the class with `instanceof`.
 *
 * @example
 * throw new VarlinkError('io.example.NoSuchThing', { thing: 'foo' });
 */
export class VarlinkError extends Error {
  /** Fully-qualified Varlink error name, e.g. `org.varlink.service.InvalidParameter`. */
  override readonly name: string;
  /** The error's parameters (`{}` when it has none). */
  readonly parameters: JsonObject;

  /**
   * @param name - fully-qualified error name (`interface.ErrorName`)
   * @param parameters - error parameters; must be JSON-serializable
   * @param options - `cause` is kept for local diagnostics and never sent
   */
  constructor(name: string, parameters: JsonObject = {}, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? describe(parameters), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = name;
    this.parameters = parameters;
  }
}

// The message holds only the parameters: `String(err)` and stack traces already start with the name.
function describe(parameters: JsonObject): string {
  const keys = Object.keys(parameters);
  if (keys.length === 0) return '';
  let text: string;
  try {
    text = JSON.stringify(parameters);
  } catch {
    text = `{${keys.join(', ')}}`;
  }
  // Long parameter objects would drown the rest of a log line.
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** `InvalidParameter` for the named parameter. */
export function invalidParameter(parameter: string): VarlinkError {
  return new VarlinkError(VarlinkErrorName.InvalidParameter, { parameter });
}

/** `PermissionDenied`, for handlers that check `call.peer`. */
export function permissionDenied(): VarlinkError {
  return new VarlinkError(VarlinkErrorName.PermissionDenied);
}

/**
 * `io.systemd.System` for a Linux error name such as `ENOENT`, carrying both the name and the
 * number, as sd-varlink does, so that both kinds of client can map it back.
 */
export function systemError(errnoName: string, options?: { cause?: unknown }): VarlinkError {
  const errno = (osConstants.errno as Record<string, number | undefined>)[errnoName];
  const parameters: JsonObject = { origin: 'linux', errnoName };
  if (errno !== undefined) parameters.errno = errno;
  return new VarlinkError(VarlinkErrorName.System, parameters, options);
}

/**
 * What the server replies when a handler throws something that is not a {@link VarlinkError}.
 *
 * A Node system error (with an `E...` `code`, e.g. from `node:fs`) becomes `io.systemd.System` with
 * that errno, which is what an sd-varlink service does when a callback returns `-errno`. Anything
 * else is a bug in the handler, and becomes `io.systemd.System` with `EIO`: the reply says only that
 * the operation failed, and the details go to the log rather than to an unprivileged caller.
 */
export function defaultMapError(err: unknown): VarlinkError {
  if (err instanceof VarlinkError) return err;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && code in osConstants.errno) {
    return systemError(code, { cause: err });
  }
  return systemError('EIO', { cause: err });
}
