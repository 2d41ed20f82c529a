/**
 * The Varlink wire format: each message is one JSON object followed by a NUL byte, on a stream
 * socket. This module turns bytes into messages and back, and checks that a decoded value has the
 * shape of a call or a reply. It knows nothing about sockets.
 *
 * @module
 */

import type { JsonObject, JsonValue, VarlinkCallMessage, VarlinkReplyMessage } from './types.js';

/**
 * Largest message accepted by default, in bytes, not counting the NUL. Matches sd-varlink's buffer
 * limit, so anything systemd would send or accept fits.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/** The peer sent something that is not a Varlink message; the connection cannot continue. */
export class VarlinkProtocolError extends Error {
  override readonly name = 'VarlinkProtocolError';
}

/**
 * Splits a byte stream into NUL-terminated messages. Feed it every chunk read from the socket, in
 * order; it returns the complete messages (without their NUL), keeping any trailing partial message
 * for the next chunk. Chunk boundaries may fall anywhere, including inside a UTF-8 sequence, since
 * bytes are only decoded once a message is complete.
 *
 * A message longer than `maxMessageSize` fails the decoder as soon as that is known (rather than
 * after buffering until the peer stops): `push` still returns the messages completed before it in
 * the same chunk, sets {@link MessageDecoder.error}, and from then on ignores all input, since a
 * stream that overflowed cannot be resynchronized.
 */
export class MessageDecoder {
  /** Largest message body accepted, in bytes. */
  readonly maxMessageSize: number;
  #pending: Buffer[] = [];
  #pendingLength = 0;
  #error: VarlinkProtocolError | undefined;

  /** @param maxMessageSize - largest message body accepted, in bytes */
  constructor(maxMessageSize: number = DEFAULT_MAX_MESSAGE_SIZE) {
    if (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < 1) {
      throw new RangeError(`maxMessageSize must be a positive integer, got ${maxMessageSize}`);
    }
    this.maxMessageSize = maxMessageSize;
  }

  /** Bytes of an incomplete message currently held. */
  get bufferedBytes(): number {
    return this.#pendingLength;
  }

  /** Why the decoder failed, once a message exceeded the limit; `undefined` while healthy. */
  get error(): VarlinkProtocolError | undefined {
    return this.#error;
  }

  /**
   * Consumes one chunk and returns the messages it completes, oldest first. Check
   * {@link MessageDecoder.error} afterwards.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (this.#error !== undefined) return [];
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const messages: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nul = bytes.indexOf(0, start);
      if (nul === -1) break;
      const piece = bytes.subarray(start, nul);
      const size = this.#pendingLength + piece.length;
      if (size > this.maxMessageSize) {
        this.#fail(`message of ${size} bytes exceeds the limit of ${this.maxMessageSize} bytes`);
        return messages;
      }
      if (this.#pending.length === 0) {
        messages.push(piece);
      } else {
        this.#pending.push(piece);
        messages.push(Buffer.concat(this.#pending, size));
        this.#pending = [];
        this.#pendingLength = 0;
      }
      start = nul + 1;
    }
    if (start < bytes.length) {
      const size = this.#pendingLength + bytes.length - start;
      // Checked before storing, so a peer streaming bytes without a NUL costs at most one chunk
      // beyond the limit.
      if (size > this.maxMessageSize) {
        this.#fail(`message exceeds the limit of ${this.maxMessageSize} bytes (${size} bytes without a NUL so far)`);
        return messages;
      }
      this.#pendingLength = size;
      // Copy: a small tail should not pin the whole chunk it came in.
      this.#pending.push(Buffer.from(bytes.subarray(start)));
    }
    return messages;
  }

  #fail(reason: string): void {
    this.#error = new VarlinkProtocolError(reason);
    this.#pending = [];
    this.#pendingLength = 0;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses one message body (without its NUL) as strict UTF-8 JSON.
 *
 * @throws VarlinkProtocolError for invalid UTF-8 or invalid JSON. Invalid UTF-8 is refused rather
 *   than replaced, as sd-json does, so that two implementations never disagree about a string.
 */
export function decodeMessage(body: Uint8Array): JsonValue {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new VarlinkProtocolError('message is not valid UTF-8');
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new VarlinkProtocolError(`message is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Serializes a message and appends the NUL.
 *
 * @throws TypeError if the value cannot be serialized (cycles, BigInt) or is not an object.
 */
export function encodeMessage(message: object): Buffer {
  const text = JSON.stringify(message) as string | undefined;
  if (typeof text !== 'string' || !text.startsWith('{')) {
    throw new TypeError('a Varlink message must serialize to a JSON object');
  }
  return Buffer.from(`${text}\0`, 'utf8');
}

/**
 * Serializes a reply with its keys in a fixed order (`error`, `parameters`, `continues`), the order
 * sd-varlink uses, so that byte-level comparisons with other implementations are meaningful.
 * `parameters` is always present, `{}` when empty.
 */
export function encodeReply(reply: VarlinkReplyMessage): Buffer {
  const ordered: VarlinkReplyMessage = {};
  if (reply.error !== undefined) ordered.error = reply.error;
  ordered.parameters = reply.parameters ?? {};
  if (reply.continues === true) ordered.continues = true;
  return encodeMessage(ordered);
}

/**
 * Serializes a call with its keys in a fixed order, omitting flags that are false and parameters
 * that are absent.
 */
export function encodeCall(call: VarlinkCallMessage): Buffer {
  const ordered: VarlinkCallMessage = { method: call.method };
  if (call.parameters !== undefined) ordered.parameters = call.parameters;
  if (call.oneway === true) ordered.oneway = true;
  if (call.more === true) ordered.more = true;
  if (call.upgrade === true) ordered.upgrade = true;
  return encodeMessage(ordered);
}

/** Outcome of checking a decoded value against the call or reply shape. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Whether a value is a JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// varlink.org lets a vendor add its own keys to calls and replies, each an object named in
// reverse-domain notation. Those are tolerated and ignored; any other unknown key is an error, as in
// sd-varlink, because it most likely means the peer speaks something else.
const VENDOR_KEY = /^[a-z]([-]*[a-z0-9])*(\.[a-z0-9]([-]*[a-z0-9])*)+$/;

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Checks that a decoded value is a well-formed call: an object with a string `method`, optional
 * `parameters` object (or null, meaning none), optional boolean flags of which at most one is true,
 * and no other keys except vendor extensions.
 */
export function parseCall(value: JsonValue): ParseResult<VarlinkCallMessage> {
  if (!isJsonObject(value)) return { ok: false, reason: `call is a JSON ${describeType(value)}, not an object` };
  const call: VarlinkCallMessage = { method: '' };
  let haveMethod = false;
  let flags = 0;
  for (const [key, v] of Object.entries(value)) {
    switch (key) {
      case 'method':
        if (typeof v !== 'string') return { ok: false, reason: `"method" is a ${describeType(v)}, not a string` };
        call.method = v;
        haveMethod = true;
        break;
      case 'parameters':
        if (v === null) break;
        if (!isJsonObject(v)) return { ok: false, reason: `"parameters" is a ${describeType(v)}, not an object` };
        call.parameters = v;
        break;
      case 'oneway':
      case 'more':
      case 'upgrade':
        if (typeof v !== 'boolean') return { ok: false, reason: `"${key}" is a ${describeType(v)}, not a boolean` };
        if (v) {
          call[key] = true;
          flags++;
        }
        break;
      default:
        if (!VENDOR_KEY.test(key) || !isJsonObject(v)) return { ok: false, reason: `unknown key ${JSON.stringify(key)} in call` };
    }
  }
  if (!haveMethod) return { ok: false, reason: 'call has no "method"' };
  // Each flag changes what the reply stream looks like; two at once have no defined meaning.
  if (flags > 1) return { ok: false, reason: 'call sets more than one of "oneway", "more", "upgrade"' };
  return { ok: true, value: call };
}

/**
 * Checks that a decoded value is a well-formed reply: an object with optional `parameters` object
 * (or null), optional boolean `continues`, optional string `error`, not both `error` and
 * `continues: true`, and no other keys except vendor extensions.
 */
export function parseReply(value: JsonValue): ParseResult<VarlinkReplyMessage> {
  if (!isJsonObject(value)) return { ok: false, reason: `reply is a JSON ${describeType(value)}, not an object` };
  const reply: VarlinkReplyMessage = {};
  for (const [key, v] of Object.entries(value)) {
    switch (key) {
      case 'parameters':
        if (v === null) break;
        if (!isJsonObject(v)) return { ok: false, reason: `"parameters" is a ${describeType(v)}, not an object` };
        reply.parameters = v;
        break;
      case 'continues':
        if (typeof v !== 'boolean') return { ok: false, reason: `"continues" is a ${describeType(v)}, not a boolean` };
        if (v) reply.continues = true;
        break;
      case 'error':
        if (typeof v !== 'string' || v === '') return { ok: false, reason: `"error" is not a non-empty string` };
        reply.error = v;
        break;
      default:
        if (!VENDOR_KEY.test(key) || !isJsonObject(v)) return { ok: false, reason: `unknown key ${JSON.stringify(key)} in reply` };
    }
  }
  if (reply.error !== undefined && reply.continues) return { ok: false, reason: 'error reply sets "continues"' };
  return { ok: true, value: reply };
}
