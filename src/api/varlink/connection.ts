/**
 * One accepted Varlink connection: reads calls, runs them one by one in arrival order, writes the
 * replies, and keeps what it holds bounded whatever the client does (see {@link Connection}).
 *
 * @module
 */

import type { Socket } from 'node:net';
import { MessageDecoder, VarlinkProtocolError, decodeMessage, encodeReply, isJsonObject, parseCall } from './wire.js';
import { VarlinkError, VarlinkErrorName, systemError } from './errors.js';
import type { JsonObject, PeerIdentity, VarlinkCallMessage, VarlinkLogger, VarlinkReplyMessage } from './types.js';
import type { VarlinkCall } from './server.js';

// Calls queued on one connection before we stop reading from it; resumed below the low mark.
const QUEUE_HIGH = 64;
const QUEUE_LOW = 16;
// Bytes of complete calls queued before we stop reading: a pipelining client cannot park 64 large
// calls at once. One call larger than this is still taken, alone.
const QUEUE_HIGH_BYTES = 1024 * 1024;

/** What a connection needs from its server. */
export interface ConnectionHost {
  /** Largest message accepted, in bytes without the NUL. */
  readonly maxMessageSize: number;
  /** Close a connection with no call in progress after this long (0: never). */
  readonly idleTimeoutMs: number;
  /** Stop running calls (and reading) while more than this many reply bytes wait to be sent. */
  readonly outputHighWater: number;
  readonly log: VarlinkLogger;
  /**
   * Logs a line that a client can trigger at will (`kind` names the sort of line); lines caused
   * by strangers are rate-limited per kind and uid.
   */
  logLimited(connection: Connection, kind: 'budget' | 'idle' | 'protocol', level: 'warning' | 'debug', message: string): void;
  /**
   * Reports that the connection now holds `delta` more (or fewer) bytes of input. Returns false
   * when the server's total input budget is spent and this connection must give its bytes back.
   */
  accountInput(connection: Connection, delta: number): boolean;
  /** Runs one call to its final reply; never throws. */
  dispatch(connection: Connection, message: VarlinkCallMessage): Promise<void>;
  /** The socket is gone. */
  forget(connection: Connection): void;
}

type QueueItem = { kind: 'message'; body: Buffer } | { kind: 'error'; reason: string };

/** The first line of an error, for logs. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack?.split('\n', 1)[0] ?? `${err.name}: ${err.message}`;
  return String(err);
}

/** The error a call's signal is aborted with once its connection is gone. */
export function disconnected(message: string): VarlinkError {
  return new VarlinkError(VarlinkErrorName.Disconnected, {}, { message });
}

/** One call's view of its connection, handed to the handler. */
export class CallContext implements VarlinkCall {
  readonly signal: AbortSignal;
  readonly peer: PeerIdentity | undefined;
  readonly connectionId: number;
  #finished = false;

  constructor(
    private readonly connection: Connection,
    readonly method: string,
    readonly more: boolean,
    readonly oneway: boolean,
  ) {
    this.peer = connection.peer;
    this.connectionId = connection.id;
    this.signal = connection.signal;
  }

  finish(): void {
    this.#finished = true;
  }

  async notify(parameters: object = {}): Promise<void> {
    if (!this.more) throw new Error(`${this.method}: notify() needs a call made with 'more'`);
    if (this.#finished) throw new Error(`${this.method}: notify() after the call was answered`);
    this.signal.throwIfAborted();
    if (!isJsonObject(parameters)) throw new TypeError(`${this.method}: notify() needs an object`);
    await this.connection.sendContinues({ parameters: parameters as JsonObject, continues: true }, this.method);
  }
}

/**
 * One accepted socket.
 *
 * What it holds is bounded: input is at most one message below the size limit plus the calls
 * queued (64, or 1 MiB, whichever comes first) plus one read; output waiting to be sent is at most
 * the server's high-water mark plus one reply, since no further call runs (and nothing more is
 * read) until the client has read enough for the socket to drain. A connection with no call in
 * progress for the idle timeout is closed, whatever partial message it holds.
 */
export class Connection {
  readonly #host: ConnectionHost;
  readonly #socket: Socket;
  readonly #decoder: MessageDecoder;
  readonly #abort = new AbortController();
  readonly #queue: QueueItem[] = [];
  #queuedBytes = 0;
  #accountedInput = 0;
  #busy = false;
  #inputEnded = false;
  #failed = false;
  #shuttingDown = false;
  #queueFull = false;
  #writeBlocked = false;
  #readingPaused = false;
  #idleTimer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(
    host: ConnectionHost,
    readonly id: number,
    socket: Socket,
    readonly peer: PeerIdentity | undefined,
  ) {
    this.#host = host;
    this.#socket = socket;
    this.#decoder = new MessageDecoder(host.maxMessageSize);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    // Write errors (EPIPE when the client vanished) end up here; 'close' follows and cleans up.
    socket.on('error', (err) => host.log('debug', `connection ${id}: ${errorText(err)}`));
    socket.on('close', () => this.#onClose());
    this.#armIdleTimer();
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Input bytes held: the partial message plus the calls queued and not yet run. */
  get inputBytes(): number {
    return this.#decoder.bufferedBytes + this.#queuedBytes;
  }

  /** Reply bytes written but not yet taken by the kernel. */
  get outputBytes(): number {
    return this.#socket.writableLength;
  }

  /** Whether reading from the client is paused (backpressure, or a failed stream). */
  get readingPaused(): boolean {
    return this.#readingPaused;
  }

  #onData(chunk: Buffer): void {
    if (this.#failed || this.#shuttingDown) return;
    for (const body of this.#decoder.push(chunk)) {
      this.#queue.push({ kind: 'message', body });
      this.#queuedBytes += body.length;
    }
    const overflow = this.#decoder.error;
    if (overflow !== undefined) {
      // Queued behind the calls that arrived before it, so those are still answered.
      this.#failed = true;
      this.#queue.push({ kind: 'error', reason: overflow.message });
    } else if (this.#queue.length >= QUEUE_HIGH || this.#queuedBytes >= QUEUE_HIGH_BYTES) {
      this.#queueFull = true;
    }
    if (!this.#syncInputAccount()) {
      this.#failed = true;
      this.#queue.length = 0;
      this.#queuedBytes = 0;
      this.#syncInputAccount();
      this.#host.logLimited(this, 'budget', 'warning', `connection ${this.id}${this.#who()}: closed: the server's input budget is spent (too many large partial or queued messages at once)`);
      this.destroy();
      return;
    }
    this.#updateReading();
    if (this.#queue.length > 0) this.#disarmIdleTimer();
    this.#pump();
  }

  #who(): string {
    return this.peer === undefined ? '' : ` (uid ${this.peer.uid}, pid ${this.peer.pid})`;
  }

  /** Tells the server how many input bytes this connection holds now. */
  #syncInputAccount(): boolean {
    const now = this.closed ? 0 : this.inputBytes;
    const delta = now - this.#accountedInput;
    if (delta === 0) return true;
    this.#accountedInput = now;
    return this.#host.accountInput(this, delta) || delta < 0;
  }

  #updateReading(): void {
    if (this.#queueFull && this.#queue.length <= QUEUE_LOW && this.#queuedBytes < QUEUE_HIGH_BYTES / 4) this.#queueFull = false;
    const pause = this.#failed || this.#queueFull || this.#writeBlocked;
    if (pause === this.#readingPaused || this.closed) return;
    this.#readingPaused = pause;
    if (pause) this.#socket.pause();
    else this.#socket.resume();
  }

  #armIdleTimer(): void {
    if (this.#host.idleTimeoutMs <= 0 || this.#idleTimer !== undefined || this.closed) return;
    this.#idleTimer = setTimeout(() => this.#onIdle(), this.#host.idleTimeoutMs);
    this.#idleTimer.unref();
  }

  #disarmIdleTimer(): void {
    if (this.#idleTimer === undefined) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #onIdle(): void {
    this.#idleTimer = undefined;
    if (this.closed || this.#busy || this.#queue.length > 0) return;
    const partial = this.#decoder.bufferedBytes > 0 ? ` with ${this.#decoder.bufferedBytes} bytes of an unfinished message` : '';
    this.#host.logLimited(this, 'idle', 'debug', `connection ${this.id}${this.#who()}: no call for ${this.#host.idleTimeoutMs} ms${partial}, closing`);
    this.#failed = true;
    this.#endGracefully();
    // A client that reads nothing would keep the end from ever completing.
    setTimeout(() => this.destroy(), Math.max(1000, this.#host.idleTimeoutMs)).unref();
  }

  #onEnd(): void {
    this.#inputEnded = true;
    if (this.#decoder.bufferedBytes > 0 && !this.#failed) {
      this.#failed = true;
      this.#queue.push({ kind: 'error', reason: `connection ended inside a message (${this.#decoder.bufferedBytes} bytes without a NUL)` });
    }
    this.#abort.abort(disconnected('client hung up'));
    this.#pump();
  }

  #onClose(): void {
    this.closed = true;
    this.#disarmIdleTimer();
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#syncInputAccount();
    this.#abort.abort(disconnected('connection closed'));
    this.#host.forget(this);
  }

  /** Runs queued calls one at a time; returns at once if a call is already running. */
  #pump(): void {
    if (this.#busy || this.closed) return;
    this.#busy = true;
    this.#disarmIdleTimer();
    void this.#run().finally(() => {
      this.#busy = false;
      this.#afterRun();
    });
  }

  /** Resolves once the socket has written what it buffered, or closed. */
  #drainedOrClosed(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /** Waits until the client has read enough of the replies; reading stays paused meanwhile. */
  async #waitForDrain(): Promise<void> {
    if (this.#socket.writableLength <= this.#host.outputHighWater || this.closed || this.#socket.destroyed) return;
    this.#writeBlocked = true;
    this.#updateReading();
    await this.#drainedOrClosed();
    this.#writeBlocked = false;
    this.#updateReading();
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && !this.closed && !this.#shuttingDown) {
      await this.#waitForDrain();
      if (this.closed || this.#shuttingDown) return;
      const item = this.#queue.shift()!;
      if (item.kind === 'message') this.#queuedBytes -= item.body.length;
      this.#syncInputAccount();
      this.#updateReading();
      if (item.kind === 'error') {
        this.#protocolError(item.reason);
        return;
      }
      let message: VarlinkCallMessage;
      try {
        const parsed = parseCall(decodeMessage(item.body));
        if (!parsed.ok) {
          this.#protocolError(parsed.reason);
          return;
        }
        message = parsed.value;
      } catch (err) {
        this.#protocolError(err instanceof VarlinkProtocolError ? err.message : errorText(err));
        return;
      }
      try {
        await this.#host.dispatch(this, message);
      } catch (err) {
        // dispatch never throws by design; if it did, the connection state is unknown.
        this.#host.log('error', `connection ${this.id}: dispatch failed: ${errorText(err)}`);
        this.destroy();
        return;
      }
    }
  }

  #afterRun(): void {
    if (this.closed) return;
    if (this.#queue.length > 0 && !this.#shuttingDown) {
      this.#pump();
      return;
    }
    if (this.#shuttingDown || (this.#inputEnded && !this.#failed)) this.#endGracefully();
    else this.#armIdleTimer();
  }

  #protocolError(reason: string): void {
    this.#failed = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#syncInputAccount();
    this.#updateReading();
    this.#host.logLimited(this, 'protocol', 'warning', `connection ${this.id}${this.#who()}: protocol violation, closing: ${reason}`);
    // No reply: replies are matched to calls by position, and this message may not have been a call
    // that wanted one. sd-varlink closes in the same situation.
    this.#endGracefully();
  }

  /** Flushes what was already written, then closes both directions. */
  #endGracefully(): void {
    if (this.closed || this.#socket.destroyed) return;
    this.#socket.end(() => this.#socket.destroy());
  }

  /**
   * Serializes a reply, or explains (in the log and as a Varlink error) why it cannot be sent: it
   * does not serialize, or it is larger than a client would accept.
   */
  #encode(reply: VarlinkReplyMessage, method: string): Buffer | VarlinkError {
    let bytes: Buffer;
    try {
      bytes = encodeReply(reply);
    } catch (err) {
      this.#host.log('error', `connection ${this.id}: reply to ${method} cannot be serialized: ${errorText(err)}`);
      return systemError('EIO', { cause: err });
    }
    const max = this.#host.maxMessageSize;
    if (bytes.length - 1 > max) {
      this.#host.log('error', `connection ${this.id}: reply to ${method} is ${bytes.length - 1} bytes, over the ${max} byte limit`);
      return systemError('EMSGSIZE');
    }
    return bytes;
  }

  #write(bytes: Buffer): 'written' | 'full' | 'closed' {
    if (this.closed || this.#socket.destroyed || !this.#socket.writable) return 'closed';
    return this.#socket.write(bytes) ? 'written' : 'full';
  }

  /**
   * Writes a final reply. One that cannot be sent is replaced by the error saying why, so the call
   * is still answered.
   */
  send(reply: VarlinkReplyMessage, method = 'call'): void {
    const encoded = this.#encode(reply, method);
    this.#write(encoded instanceof VarlinkError ? encodeReply({ error: encoded.name, parameters: encoded.parameters }) : encoded);
  }

  /**
   * Writes an intermediate (`continues`) reply and waits until the socket can take more.
   *
   * @throws VarlinkError if the reply cannot be sent (nothing is written, so the stream stays
   *   consistent and the handler decides how to end it), or the abort reason if the connection is
   *   gone
   */
  async sendContinues(reply: VarlinkReplyMessage, method: string): Promise<void> {
    const encoded = this.#encode(reply, method);
    if (encoded instanceof VarlinkError) throw encoded;
    const state = this.#write(encoded);
    if (state === 'written') return;
    if (state === 'full') {
      await this.#drainedOrClosed();
    }
    if (state === 'closed' || this.closed || this.#socket.destroyed) throw this.#abort.signal.reason ?? disconnected('connection closed');
  }

  /** Server shutdown: cancel the running call, drop queued ones, close when the running one is done. */
  shutdown(): void {
    this.#shuttingDown = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#syncInputAccount();
    this.#abort.abort(disconnected('server is shutting down'));
    if (!this.#busy) this.#endGracefully();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
