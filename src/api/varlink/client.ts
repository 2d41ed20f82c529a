/**
 * A Varlink client on an AF_UNIX stream socket.
 *
 * Calls may be pipelined: each is written at once, and replies are matched to calls by order, as
 * the protocol prescribes.
 *
 * @module
 */

import { createConnection, type Socket } from 'node:net';
import { DEFAULT_MAX_MESSAGE_SIZE, MessageDecoder, decodeMessage, encodeCall, parseReply } from './wire.js';
import { VarlinkError, VarlinkErrorName } from './errors.js';
import type { JsonObject, VarlinkReplyMessage } from './types.js';

/** Options of {@link VarlinkClient.connect}. */
export interface VarlinkConnectOptions {
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /** Largest reply accepted, in bytes without the NUL (default 16 MiB). */
  maxMessageSize?: number;
}

/** Options of one call. */
export interface VarlinkCallOptions {
  /**
   * Gives up waiting, e.g. `AbortSignal.timeout(5000)`; the call then rejects with the signal's
   * reason. For {@link VarlinkClient.call} the connection stays usable: the reply, when it comes, is
   * dropped. For {@link VarlinkClient.callMore} the connection is closed, since that is the only
   * way to make a server stop a stream.
   */
  signal?: AbortSignal;
}

interface Pending {
  more: boolean;
  reply(reply: VarlinkReplyMessage): void;
  fail(err: Error): void;
}

// Replies buffered for a stream the caller is not consuming yet, before we stop reading.
const STREAM_HIGH = 64;
const STREAM_LOW = 16;

function replyError(reply: VarlinkReplyMessage): VarlinkError {
  return new VarlinkError(reply.error!, reply.parameters ?? {});
}

/**
 * A connection to a Varlink service.
 *
 * @example
 * const client = await VarlinkClient.connect('/run/demo/io.example.demo');
 * try {
 *   const { text } = await client.call<{ text: string }>('io.example.demo.Ping', { text: 'hi' });
 *   for await (const event of client.callMore('io.example.demo.Watch', {})) console.log(event);
 * } finally {
 *   await client.close();
 * }
 */
export class VarlinkClient {
  readonly #socket: Socket;
  readonly #decoder: MessageDecoder;
  readonly #pending: Pending[] = [];
  #error: Error | undefined;
  #closed: Promise<void>;
  #paused = 0;

  private constructor(socket: Socket, maxMessageSize: number) {
    this.#socket = socket;
    this.#decoder = new MessageDecoder(maxMessageSize);
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new VarlinkError(VarlinkErrorName.Disconnected, {}, { cause: err, message: `connection failed: ${err.message}` })));
    socket.on('close', () => this.#fail(new VarlinkError(VarlinkErrorName.Disconnected, {}, { message: 'connection closed' })));
  }

  /**
   * Connects to the service listening on `path`.
   *
   * @throws the Node system error (`ENOENT`, `ECONNREFUSED`, `EACCES`, ...) if the connection fails,
   *   or the signal's reason if aborted
   */
  static connect(path: string, options: VarlinkConnectOptions = {}): Promise<VarlinkClient> {
    const { signal } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const socket = createConnection({ path });
      const onAbort = (): void => {
        socket.destroy();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      socket.once('connect', () => {
        signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(new VarlinkClient(socket, options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE));
      });
    });
  }

  /** Whether the connection is gone; every further call rejects with `io.systemd.Disconnected`. */
  get closed(): boolean {
    return this.#error !== undefined;
  }

  /** Calls still waiting for their final reply. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /**
   * Calls `method` and resolves to the reply's parameters.
   *
   * @param method - fully-qualified, e.g. `org.varlink.service.GetInfo`
   * @param parameters - input parameters (default `{}`)
   * @throws VarlinkError with the server's error name and parameters; `io.systemd.Disconnected` if
   *   the connection closed first, `io.systemd.Protocol` if the server broke the protocol
   * @throws the signal's reason if `options.signal` aborted first
   */
  call<T extends object = JsonObject>(method: string, parameters: object = {}, options: VarlinkCallOptions = {}): Promise<T> {
    const { signal } = options;
    return new Promise<T>((resolve, reject) => {
      if (this.#error !== undefined) return reject(this.#error);
      if (signal?.aborted) return reject(signal.reason);
      let settled = false;
      const onAbort = (): void => {
        // The entry stays queued so that the late reply is consumed in its place and dropped.
        settled = true;
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): boolean => {
        signal?.removeEventListener('abort', onAbort);
        if (settled) return false;
        settled = true;
        return true;
      };
      this.#send(method, parameters, { more: false }, {
        more: false,
        reply: (r) => {
          if (!settle()) return;
          if (r.error !== undefined) reject(replyError(r));
          else resolve((r.parameters ?? {}) as T);
        },
        fail: (err) => {
          if (settle()) reject(err);
        },
      });
    });
  }

  /**
   * Calls `method` with `more: true` and yields the parameters of each reply, the final one
   * included. The iteration ends after the reply without `continues`, or throws a
   * {@link VarlinkError} if the server replies with an error. A server that does not stream simply
   * yields one value.
   *
   * The call is written at once, not on the first `next()`, so it keeps its place among pipelined
   * calls. Leaving the loop early (or aborting the signal) closes the connection: the protocol has
   * no other way to stop a stream.
   */
  callMore<T extends object = JsonObject>(method: string, parameters: object = {}, options: VarlinkCallOptions = {}): AsyncIterableIterator<T> {
    const buffered: T[] = [];
    const waiters: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
    let finished = false;
    let failure: unknown;
    let counted = false;
    const { signal } = options;

    const wake = (): void => {
      while (waiters.length > 0) {
        if (buffered.length > 0) {
          waiters.shift()!.resolve({ value: buffered.shift()!, done: false });
        } else if (failure !== undefined) {
          const err = failure;
          failure = undefined;
          finished = true;
          waiters.shift()!.reject(err);
        } else if (finished) {
          waiters.shift()!.resolve({ value: undefined, done: true });
        } else break;
      }
      this.#flowControl(buffered.length, () => counted, (v) => (counted = v));
    };
    const onAbort = (): void => {
      if (finished) return;
      failure = signal!.reason;
      finished = true;
      this.destroy();
      wake();
    };

    if (this.#error !== undefined) {
      failure = this.#error;
    } else if (signal?.aborted) {
      failure = signal.reason;
    } else {
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#send(method, parameters, { more: true }, {
        more: true,
        reply: (r) => {
          if (finished) return;
          if (r.error !== undefined) {
            failure = replyError(r);
          } else {
            buffered.push((r.parameters ?? {}) as T);
          }
          if (r.continues !== true) {
            signal?.removeEventListener('abort', onAbort);
            if (failure === undefined) finished = true;
          }
          wake();
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          if (finished) return;
          failure = err;
          wake();
        },
      });
    }

    const iterator: AsyncIterableIterator<T> = {
      next: () =>
        new Promise<IteratorResult<T>>((resolve, reject) => {
          waiters.push({ resolve, reject });
          wake();
        }),
      return: async () => {
        signal?.removeEventListener('abort', onAbort);
        if (!finished || failure !== undefined) {
          const abandoned = !finished;
          finished = true;
          failure = undefined;
          buffered.length = 0;
          if (abandoned) this.destroy();
        }
        wake();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /**
   * Calls `method` with `oneway: true`: the server sends nothing back, so this resolves once the
   * call has been handed to the kernel, not when it has been executed.
   */
  oneway(method: string, parameters: object = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#error !== undefined) return reject(this.#error);
      this.#send(method, parameters, { oneway: true }, undefined, (err) => (err ? reject(this.#error ?? err) : resolve()));
    });
  }

  /**
   * Ends the connection gracefully: stops sending, lets the server answer the calls it already
   * received, and resolves when the socket is closed. Calls left unanswered reject with
   * `io.systemd.Disconnected`.
   */
  close(): Promise<void> {
    if (!this.#socket.destroyed) this.#socket.end();
    return this.#closed;
  }

  /** Closes the connection at once; pending calls reject with `io.systemd.Disconnected`. */
  destroy(): void {
    this.#fail(new VarlinkError(VarlinkErrorName.Disconnected, {}, { message: 'connection closed by the client' }));
    this.#socket.destroy();
  }

  #send(
    method: string,
    parameters: object,
    flags: { more?: boolean; oneway?: boolean },
    pending: Pending | undefined,
    written?: (err?: Error | null) => void,
  ): void {
    let bytes: Buffer;
    try {
      bytes = encodeCall({ method, parameters: parameters as JsonObject, ...flags });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (pending !== undefined) pending.fail(error);
      else written?.(error);
      return;
    }
    if (pending !== undefined) this.#pending.push(pending);
    this.#socket.write(bytes, written);
  }

  /** Pauses reading while a stream's consumer lags, so one slow loop cannot fill memory. */
  #flowControl(buffered: number, isCounted: () => boolean, setCounted: (v: boolean) => void): void {
    if (buffered >= STREAM_HIGH && !isCounted()) {
      setCounted(true);
      if (this.#paused++ === 0) this.#socket.pause();
    } else if (buffered <= STREAM_LOW && isCounted()) {
      setCounted(false);
      if (--this.#paused === 0 && !this.#socket.destroyed) this.#socket.resume();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#error !== undefined) return;
    const bodies = this.#decoder.push(chunk);
    for (const body of bodies) {
      let reply: VarlinkReplyMessage;
      try {
        const parsed = parseReply(decodeMessage(body));
        if (!parsed.ok) {
          this.#protocolError(parsed.reason);
          return;
        }
        reply = parsed.value;
      } catch (err) {
        this.#protocolError((err as Error).message);
        return;
      }
      const head = this.#pending[0];
      if (head === undefined) {
        this.#protocolError('reply without a pending call');
        return;
      }
      if (reply.continues === true && !head.more) {
        this.#protocolError("reply sets 'continues' for a call made without 'more'");
        return;
      }
      if (reply.continues !== true) this.#pending.shift();
      head.reply(reply);
    }
    if (this.#decoder.error !== undefined) this.#protocolError(this.#decoder.error.message);
  }

  #protocolError(reason: string): void {
    this.#fail(new VarlinkError(VarlinkErrorName.Protocol, {}, { message: `protocol violation by the server: ${reason}` }));
    this.#socket.destroy();
  }

  #fail(err: Error): void {
    if (this.#error === undefined) this.#error = err;
    const pending = this.#pending.splice(0);
    for (const p of pending) p.fail(this.#error);
  }
}

/**
 * Connects, makes one call, and disconnects.
 *
 * @throws as {@link VarlinkClient.connect} and {@link VarlinkClient.call}
 */
export async function varlinkCall<T extends object = JsonObject>(
  path: string,
  method: string,
  parameters: object = {},
  options: VarlinkCallOptions & Pick<VarlinkConnectOptions, 'maxMessageSize'> = {},
): Promise<T> {
  const connectOptions: VarlinkConnectOptions = {};
  if (options.signal !== undefined) connectOptions.signal = options.signal;
  if (options.maxMessageSize !== undefined) connectOptions.maxMessageSize = options.maxMessageSize;
  const client = await VarlinkClient.connect(path, connectOptions);
  try {
    return await client.call<T>(method, parameters, options.signal === undefined ? {} : { signal: options.signal });
  } finally {
    client.destroy();
  }
}
