/**
 * A Varlink server on an AF_UNIX stream socket, serving any number of interfaces.
 *
 * Each connection handles one call at a time, in the order the calls arrived, which is what the
 * protocol requires: replies carry no call id, so the n-th reply belongs to the n-th call that
 * wanted one. Clients get concurrency by opening more connections.
 *
 * @module
 */

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { closeSync, promises as fsp } from 'node:fs';
import { dirname, join, resolve as resolvePath, sep } from 'node:path';
import { DEFAULT_MAX_MESSAGE_SIZE, isJsonObject } from './wire.js';
import { findMethod, parseInterface, validateParameters, type VarlinkInterface, type VarlinkMethodDefinition } from './idl.js';
import { VarlinkError, VarlinkErrorName, defaultMapError, systemError } from './errors.js';
import { handleFd } from './handle.js';
import { CallContext, Connection, errorText, type ConnectionHost } from './connection.js';
import type { IdentifyPeer, JsonObject, PeerIdentity, VarlinkCallMessage, VarlinkLogger } from './types.js';

/** What a method handler may return: the final reply's parameters, or nothing for `{}`. */
export type VarlinkHandlerResult = object | undefined | void;

/**
 * Implements one method.
 *
 * Receives the call's parameters, already validated against the method's input type (so a handler
 * may declare a narrower parameter type than {@link JsonObject}), and the call context. Returns (or
 * resolves to) the parameters of the final reply. Throw a {@link VarlinkError} to reply with that
 * error; anything else thrown is logged and replied as `io.systemd.System` (see
 * {@link VarlinkServerOptions.mapError}).
 *
 * Declared as a method signature so that handlers with narrower parameter types are assignable.
 */
export type VarlinkMethodHandler = {
  handle(parameters: JsonObject, call: VarlinkCall): VarlinkHandlerResult | Promise<VarlinkHandlerResult>;
}['handle'];

/** The context of one method call, passed to its handler. */
export interface VarlinkCall {
  /** Fully-qualified method name, e.g. `io.example.Foo.Bar`. */
  readonly method: string;
  /** The caller set `more`: it accepts any number of replies via {@link VarlinkCall.notify}. */
  readonly more: boolean;
  /** The caller set `oneway`: nothing will be sent back, whatever the handler returns or throws. */
  readonly oneway: boolean;
  /**
   * Who called, as returned by {@link VarlinkServerOptions.identifyPeer} when the connection was
   * accepted; `undefined` if no identification was configured or it failed. Treat `undefined` as
   * "unprivileged".
   */
  readonly peer: PeerIdentity | undefined;
  /** Identifies the connection within this server, for logs. */
  readonly connectionId: number;
  /**
   * Aborted when the answer is probably no longer wanted: the client hung up (read EOF), the
   * connection closed, or the server is closing. Long-running handlers and streams should watch it.
   *
   * Node cannot tell a client that shut down only its sending side (and still reads) from one that
   * went away, as there is no POLLHUP to look at, so an EOF counts as hanging up. A reply the handler
   * still produces is written if the socket takes it, so a `printf ... | socat` style client that
   * half-closes still gets answers from handlers that do not stop on the signal.
   */
  readonly signal: AbortSignal;
  /**
   * Sends an intermediate reply (`continues: true`) to a `more` call; the handler's return value is
   * still the final reply. Resolves once the socket has taken the data, waiting for the client to
   * catch up if it reads slowly, so a loop of `await notify()` cannot flood memory.
   *
   * @throws Error if the call is not a `more` call or has already been answered
   * @throws VarlinkError `io.systemd.System` (`EMSGSIZE` or `EIO`) if the reply is larger than the
   *   message limit or does not serialize; nothing is sent, so the handler may carry on or end the
   *   stream (if it lets the error escape, that error becomes the final reply)
   * @throws the signal's reason if the connection is gone
   */
  notify(parameters?: object): Promise<void>;
}

/** An interface to serve: its IDL text and its method implementations. */
export interface VarlinkInterfaceImplementation {
  /**
   * The interface definition. Returned verbatim by `GetInterfaceDescription`, and used to validate
   * every call's parameters before the handler sees them.
   */
  idl: string;
  /** Handlers by unqualified method name. Methods declared but missing here reply `MethodNotImplemented`. */
  methods: Record<string, VarlinkMethodHandler>;
}

/** Where to listen. */
export type VarlinkListenTarget =
  | {
      /** Socket path. The parent directory is created if needed; a stale socket there is replaced. */
      path: string;
      /** Permission bits of the socket file (default `0o600`). Applied before the path becomes reachable. */
      mode?: number;
      /** Permission bits for directories created on the way (default `0o755`). */
      directoryMode?: number;
    }
  | {
      /**
       * An already bound (listening or not) AF_UNIX stream socket, e.g. inherited across a daemon
       * re-exec. The server does not unlink anything on close in this mode.
       */
      fd: number;
    };

/** Options of {@link VarlinkServer}. */
export interface VarlinkServerOptions {
  /** `GetInfo` `vendor` (default `""`). */
  vendor?: string;
  /** `GetInfo` `product` (default `""`). */
  product?: string;
  /** `GetInfo` `version` (default `""`). */
  version?: string;
  /** `GetInfo` `url` (default `""`). */
  url?: string;
  /**
   * Identifies the peer of each accepted connection from its file descriptor (normally through a
   * native `getsockopt(SO_PEERCRED / SO_PEERPIDFD)`). Called once per connection, synchronously,
   * before any byte is read. If it throws, the peer is unknown and a warning is logged. A returned
   * `pidfd` is owned by the server from then on and closed with the connection.
   */
  identifyPeer?: IdentifyPeer;
  /** Largest message accepted from a client, in bytes without the NUL (default 16 MiB). */
  maxMessageSize?: number;
  /**
   * Connections served at once for everyone but the privileged uids; more are closed right after
   * accept (default 2048).
   */
  maxConnections?: number;
  /**
   * Connections served at once per peer uid that is not privileged (default 256), and for peers
   * that could not be identified, together. Keeps one user from exhausting
   * {@link VarlinkServerOptions.maxConnections} for everyone else.
   */
  maxConnectionsPerUid?: number;
  /**
   * Connections kept for the privileged uids beyond {@link VarlinkServerOptions.maxConnections}
   * (default 64), so that root's and the owner's CLI get through however many connections others
   * hold.
   */
  reservedConnections?: number;
  /**
   * Uids never refused for the per-uid limit and allowed into the reserve (default: root and the
   * uid this process runs as).
   */
  privilegedUids?: readonly number[];
  /**
   * A connection with no call in progress (a running `more` call such as a subscription counts as
   * one) is closed after this many milliseconds, whatever partial message it holds (default
   * 60000; 0 never closes).
   */
  idleTimeoutMs?: number;
  /**
   * Input bytes all connections may hold at once, partial messages and queued calls together
   * (default 64 MiB), plus {@link VarlinkServerOptions.reservedInputBytes} for the privileged uids.
   * Beyond it, a connection that holds more than a small call's worth (64 KiB) is closed, so that
   * small calls (the CLI's) still get through. Each connection on its own is limited by
   * {@link VarlinkServerOptions.maxMessageSize}.
   */
  maxInputBytes?: number;
  /** Input bytes only the privileged uids may use beyond {@link VarlinkServerOptions.maxInputBytes} (default 32 MiB). */
  reservedInputBytes?: number;
  /**
   * Reply bytes waiting for a client to read them above which the connection stops running its
   * queued calls and stops reading, until the client catches up (default 1 MiB).
   */
  outputHighWater?: number;
  /** Where log lines go (default: warnings and errors to stderr). */
  log?: VarlinkLogger;
  /**
   * Turns an exception that is not a {@link VarlinkError}, thrown by a handler, into the error
   * replied (default {@link defaultMapError}: Node system errors keep their errno, anything else is
   * `EIO`). The original is always logged.
   */
  mapError?: (err: unknown) => VarlinkError;
}

/** Options of {@link VarlinkServer.close}. */
export interface VarlinkCloseOptions {
  /**
   * How long to let handlers that are still running finish after their signal was aborted, in
   * milliseconds, before their connections are destroyed (default 5000).
   */
  graceMs?: number;
  /**
   * Leave the socket file in place (default false): for a daemon that re-executes itself and keeps
   * a copy of the listening fd, so clients keep connecting to the same path.
   */
  keepSocketFile?: boolean;
}

const SERVICE_IDL = `# The interface every Varlink service offers: it describes the service and the interfaces it
# implements.
interface org.varlink.service

# Information about the service, and the names of the interfaces it implements.
method GetInfo() -> (
\tvendor: string,
\tproduct: string,
\tversion: string,
\turl: string,
\tinterfaces: []string
)

# The definition of one implemented interface, in the interface definition language.
method GetInterfaceDescription(interface: string) -> (description: string)

# The called interface is not implemented by this service.
error InterfaceNotFound (interface: string)

# The called interface has no such method.
error MethodNotFound (method: string)

# The interface declares the method, but this service does not implement it.
error MethodNotImplemented (method: string)

# A parameter is missing, has the wrong type, or is not declared by the method.
error InvalidParameter (parameter: string)

# The caller is not allowed to do this.
error PermissionDenied ()

# The method may only be called with the 'more' flag set.
error ExpectedMore ()
`;

// Longest path a sockaddr_un can hold, not counting the terminating NUL.
const SUN_PATH_MAX = 107;
// Lines a client can trigger at will: this many per key, then one summary per interval.
const LOG_BURST = 5;
const LOG_INTERVAL_MS = 10_000;
// A connection holding no more than this is never closed for the input budget: the CLI's calls fit.
const SMALL_CALL_BYTES = 64 * 1024;

interface ServedInterface {
  definition: VarlinkInterface;
  idl: string;
  methods: Map<string, VarlinkMethodHandler>;
}

function defaultLog(level: string, message: string): void {
  if (level === 'warning' || level === 'error') process.stderr.write(`varlink: ${message}\n`);
}

/** What a server holds at the moment, for monitoring and tests. */
export interface VarlinkServerStats {
  /** Connections open. */
  connections: number;
  /** Input bytes held: partial messages and calls queued, over every connection. */
  inputBytes: number;
  /** Reply bytes written and not yet taken by the kernel, over every connection. */
  outputBytes: number;
  /** Connections whose reading is paused (backpressure, or a failed stream being closed). */
  pausedConnections: number;
  /** Connections refused since the server started (limits reached). */
  refusedConnections: number;
  /** Connections closed for a protocol violation since the server started. */
  protocolViolations: number;
}

/**
 * A Varlink service on a Unix socket.
 *
 * @example
 * const server = new VarlinkServer({ vendor: 'Example', product: 'demo', version: '1' });
 * server.addInterface({
 *   idl: 'interface io.example.demo\nmethod Ping(text: string) -> (text: string)\n',
 *   methods: { Ping: (p) => ({ text: p.text }) },
 * });
 * await server.listen({ path: '/run/demo/io.example.demo' });
 */
export class VarlinkServer {
  readonly #options: Required<
    Pick<
      VarlinkServerOptions,
      'vendor' | 'product' | 'version' | 'url' | 'maxMessageSize' | 'maxConnections' | 'maxConnectionsPerUid' | 'reservedConnections' | 'idleTimeoutMs' | 'maxInputBytes' | 'reservedInputBytes' | 'outputHighWater'
    >
  > &
    VarlinkServerOptions;
  readonly #privileged: ReadonlySet<number>;
  readonly #host: ConnectionHost;
  readonly #logBudget = new Map<string, { since: number; count: number }>();
  #inputBytes = 0;
  #refused = 0;
  #violations = 0;
  readonly #log: VarlinkLogger;
  readonly #mapError: (err: unknown) => VarlinkError;
  readonly #interfaces = new Map<string, ServedInterface>();
  readonly #connections = new Set<Connection>();
  readonly #perUid = new Map<number, number>();
  #server: Server | undefined;
  #socketPath: string | undefined;
  #socketId: { dev: number; ino: number } | undefined;
  #closing: Promise<void> | undefined;
  #nextConnectionId = 1;
  #allGone: (() => void) | undefined;

  /** @param options - see {@link VarlinkServerOptions} */
  constructor(options: VarlinkServerOptions = {}) {
    this.#options = {
      ...options,
      vendor: options.vendor ?? '',
      product: options.product ?? '',
      version: options.version ?? '',
      url: options.url ?? '',
      maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      maxConnections: options.maxConnections ?? 2048,
      maxConnectionsPerUid: options.maxConnectionsPerUid ?? 256,
      reservedConnections: options.reservedConnections ?? 64,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxInputBytes: options.maxInputBytes ?? 64 * 1024 * 1024,
      reservedInputBytes: options.reservedInputBytes ?? 32 * 1024 * 1024,
      outputHighWater: options.outputHighWater ?? 1024 * 1024,
    };
    this.#privileged = new Set(options.privilegedUids ?? [0, process.getuid?.() ?? 0]);
    const server = this;
    this.#host = {
      maxMessageSize: this.#options.maxMessageSize,
      idleTimeoutMs: this.#options.idleTimeoutMs,
      outputHighWater: this.#options.outputHighWater,
      get log() {
        return server.#log;
      },
      logLimited: (connection, kind, level, message) => {
        if (kind === 'protocol') this.#violations++;
        if (this.#isStranger(connection.peer)) this.#logLimited(`${kind}:${connection.peer?.uid ?? 'unidentified'}`, level, message);
        else this.#log(level, message);
      },
      accountInput: (connection, delta) => this.#accountInput(connection, delta),
      dispatch: (connection, message) => this.#dispatch(connection, message),
      forget: (connection) => this.#forget(connection),
    };
    this.#log = options.log ?? defaultLog;
    this.#mapError = options.mapError ?? defaultMapError;
    this.#register(SERVICE_IDL, {
      GetInfo: () => ({
        vendor: this.#options.vendor,
        product: this.#options.product,
        version: this.#options.version,
        url: this.#options.url,
        interfaces: [...this.#interfaces.keys()],
      }),
      GetInterfaceDescription: (p) => {
        const name = p.interface as string;
        const served = this.#interfaces.get(name);
        if (served === undefined) throw new VarlinkError(VarlinkErrorName.InterfaceNotFound, { interface: name });
        return { description: served.idl };
      },
    });
  }

  /**
   * Serves another interface. May be called before or after {@link VarlinkServer.listen}.
   *
   * @throws VarlinkIdlError if the IDL does not parse
   * @throws Error if the interface is already served, or a handler names a method the IDL does not
   *   declare (a typo there would otherwise silently leave the method unimplemented)
   */
  addInterface(implementation: VarlinkInterfaceImplementation): void {
    this.#register(implementation.idl, implementation.methods);
  }

  #register(idl: string, methods: Record<string, VarlinkMethodHandler>): void {
    const definition = parseInterface(idl);
    if (this.#interfaces.has(definition.name)) throw new Error(`interface ${definition.name} is already served`);
    const handlers = new Map<string, VarlinkMethodHandler>();
    for (const [name, handler] of Object.entries(methods)) {
      if (findMethod(definition, name) === undefined) throw new Error(`interface ${definition.name} declares no method ${name}`);
      if (typeof handler !== 'function') throw new TypeError(`handler for ${definition.name}.${name} is not a function`);
      handlers.set(name, handler);
    }
    this.#interfaces.set(definition.name, { definition, idl, methods: handlers });
  }

  /** Names of the interfaces served, `org.varlink.service` first. */
  get interfaces(): string[] {
    return [...this.#interfaces.keys()];
  }

  /** The listening socket's file descriptor, e.g. to pass it to a re-executed daemon; `undefined` when not listening. */
  get fd(): number | undefined {
    return this.#server === undefined ? undefined : handleFd(this.#server);
  }

  /** The socket path when listening on a path. */
  get path(): string | undefined {
    return this.#socketPath;
  }

  /** Connections currently open. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** What the server holds right now: connections, buffered input and output. */
  get stats(): VarlinkServerStats {
    let inputBytes = 0;
    let outputBytes = 0;
    let pausedConnections = 0;
    for (const connection of this.#connections) {
      inputBytes += connection.inputBytes;
      outputBytes += connection.outputBytes;
      if (connection.readingPaused) pausedConnections++;
    }
    return { connections: this.#connections.size, inputBytes, outputBytes, pausedConnections, refusedConnections: this.#refused, protocolViolations: this.#violations };
  }

  #isPrivileged(peer: PeerIdentity | undefined): boolean {
    return peer !== undefined && this.#privileged.has(peer.uid);
  }

  /**
   * A peer whose log lines are rate-limited: anyone but the privileged uids, once the server
   * identifies peers at all (without identification it cannot tell, and logs everything).
   */
  #isStranger(peer: PeerIdentity | undefined): boolean {
    return this.#options.identifyPeer !== undefined && !this.#isPrivileged(peer);
  }

  /**
   * Logs a line a client can cause at will (refusals, protocol violations) at most
   * {@link LOG_BURST} times per key and interval, then once more with the number left out, so a
   * flood cannot fill the daemon's log.
   */
  #logLimited(key: string, level: 'warning' | 'debug', message: string): void {
    const now = Date.now();
    let budget = this.#logBudget.get(key);
    if (budget === undefined || now - budget.since >= LOG_INTERVAL_MS) {
      const skipped = budget === undefined ? 0 : budget.count - LOG_BURST;
      if (skipped > 0) this.#log(level, `${skipped} similar line(s) (${key}) left out in the last ${Math.round((now - budget!.since) / 1000)} s`);
      budget = { since: now, count: 0 };
      this.#logBudget.set(key, budget);
      // Keys are per uid; forget old ones so a stream of uids cannot grow the map without end.
      if (this.#logBudget.size > 1024) for (const [k, b] of this.#logBudget) if (now - b.since >= LOG_INTERVAL_MS) this.#logBudget.delete(k);
    }
    budget.count++;
    if (budget.count <= LOG_BURST) this.#log(level, message);
    else if (budget.count === LOG_BURST + 1) this.#log(level, `more lines like the last (${key}) are left out for ${LOG_INTERVAL_MS / 1000} s`);
  }

  #accountInput(connection: Connection, delta: number): boolean {
    this.#inputBytes += delta;
    if (delta <= 0 || connection.inputBytes <= SMALL_CALL_BYTES) return true;
    const limit = this.#options.maxInputBytes + (this.#isPrivileged(connection.peer) ? this.#options.reservedInputBytes : 0);
    return this.#inputBytes <= limit;
  }

  /**
   * Starts accepting connections.
   *
   * With a path, the socket is created with its final permissions before anyone can reach it: it is
   * bound inside a fresh private (0700) directory next to the target, chmod-ed, then renamed into
   * place, which also replaces a stale socket atomically. A path that exists and is not a socket,
   * or a socket someone is still accepting on, is refused.
   *
   * @throws Error with `code` `EADDRINUSE` if another server is listening on the path, `EEXIST`
   *   if the path is not a socket, `ENAMETOOLONG` if it does not fit in a socket address
   */
  async listen(target: VarlinkListenTarget): Promise<void> {
    if (this.#server !== undefined) throw new Error('already listening');
    if (this.#closing !== undefined) throw new Error('server is closed');
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false });
    // The hard limit, reserve included; who gets the reserve is decided once the peer is known.
    server.maxConnections = this.#options.maxConnections + this.#options.reservedConnections;
    server.on('connection', (socket) => this.#accept(socket));
    server.on('drop', () => {
      this.#refused++;
      this.#logLimited('drop', 'warning', `connection refused: limit of ${server.maxConnections} connections reached`);
    });
    this.#server = server;
    try {
      if ('fd' in target) await listenOn(server, { fd: target.fd });
      else await this.#listenPath(server, target);
    } catch (err) {
      this.#server = undefined;
      server.close();
      throw err;
    }
    // Only now: errors while starting are thrown to the caller rather than logged.
    server.on('error', (err) => this.#log('error', `listening socket failed: ${errorText(err)}`));
  }

  async #listenPath(server: Server, target: { path: string; mode?: number; directoryMode?: number }): Promise<void> {
    const path = resolvePath(target.path);
    const mode = target.mode ?? 0o600;
    if (Buffer.byteLength(path) > SUN_PATH_MAX) throw codedError('ENAMETOOLONG', `socket path is longer than ${SUN_PATH_MAX} bytes: ${path}`);
    const dir = dirname(path);
    await fsp.mkdir(dir, { recursive: true, mode: target.directoryMode ?? 0o755 });
    await refuseLiveOrForeign(path);

    // Not join(dir, '.'), which normalizes to `dir` and would put the directory next to it.
    const privateDir = await fsp.mkdtemp(`${dir}${sep}.`);
    try {
      const tempPath = join(privateDir, 's');
      if (Buffer.byteLength(tempPath) <= SUN_PATH_MAX) {
        await listenOn(server, { path: tempPath });
        await fsp.chmod(tempPath, mode);
        await fsp.rename(tempPath, path);
      } else {
        // The private directory's name made the path too long for a socket address. Bind in place
        // instead, with a umask that creates the socket with the final mode: bind() happens
        // synchronously inside listen(), so the umask is restored before anything else runs on this
        // thread (files created concurrently by the thread pool may get a tighter mode, never a
        // looser one).
        await fsp.rm(path, { force: true });
        const old = process.umask(0o777 & ~mode);
        let listening: Promise<void>;
        try {
          listening = listenOn(server, { path });
        } finally {
          process.umask(old);
        }
        await listening;
        await fsp.chmod(path, mode);
      }
    } finally {
      await fsp.rm(privateDir, { recursive: true, force: true });
    }
    const st = await fsp.stat(path);
    this.#socketPath = path;
    this.#socketId = { dev: st.dev, ino: st.ino };
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    const id = this.#nextConnectionId++;
    let peer: PeerIdentity | undefined;
    if (this.#options.identifyPeer !== undefined) {
      const fd = handleFd(socket);
      if (fd === undefined) {
        this.#log('warning', `connection ${id}: no file descriptor, peer unknown`);
      } else {
        try {
          peer = this.#options.identifyPeer(fd);
        } catch (err) {
          this.#log('warning', `connection ${id}: identifying the peer failed, peer unknown: ${errorText(err)}`);
        }
      }
    }
    // Peers that could not be identified share one count, under an impossible uid.
    const uidKey = peer?.uid ?? -1;
    const count = this.#perUid.get(uidKey) ?? 0;
    let refusal: string | undefined;
    if (!this.#isPrivileged(peer)) {
      // Without identification configured, all peers are alike: only the total applies.
      const counted = peer !== undefined || this.#options.identifyPeer !== undefined;
      if (counted && count >= this.#options.maxConnectionsPerUid) refusal = `${peer === undefined ? 'unidentified peers' : `uid ${peer.uid}`} already has ${count} connections`;
      else if (this.#connections.size >= this.#options.maxConnections) refusal = `${this.#connections.size} connections open, the rest are kept for root and the owner`;
    }
    if (refusal !== undefined) {
      this.#refused++;
      const line = `connection ${id}: refused, ${refusal}`;
      if (this.#isStranger(peer)) this.#logLimited(`refused:${uidKey}`, 'warning', line);
      else this.#log('warning', line);
      if (peer !== undefined) closePidfd(peer);
      socket.destroy();
      return;
    }
    this.#perUid.set(uidKey, count + 1);
    const connection = new Connection(this.#host, id, socket, peer);
    this.#connections.add(connection);
  }

  /** Called by a connection once its socket is fully closed. */
  #forget(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    const peer = connection.peer;
    const uidKey = peer?.uid ?? -1;
    const count = (this.#perUid.get(uidKey) ?? 1) - 1;
    if (count <= 0) this.#perUid.delete(uidKey);
    else this.#perUid.set(uidKey, count);
    if (peer !== undefined) closePidfd(peer);
    if (this.#connections.size === 0) this.#allGone?.();
  }

  /**
   * Runs one well-formed call to completion and writes its final reply (unless it is
   * oneway or the connection is gone). Never throws: every failure becomes an error reply.
   */
  async #dispatch(connection: Connection, message: VarlinkCallMessage): Promise<void> {
    const method = message.method;
    const wantsReply = message.oneway !== true;
    const dot = method.lastIndexOf('.');
    const ifaceName = dot > 0 ? method.slice(0, dot) : '';
    const memberName = dot > 0 ? method.slice(dot + 1) : method;
    const served = dot > 0 ? this.#interfaces.get(ifaceName) : undefined;

    const refuse = (error: VarlinkError, logLine: string): void => {
      // Paths into deeply nested values can be long; the start says enough.
      const shown = logLine.length > 300 ? `${logLine.slice(0, 297)}...` : logLine;
      this.#log('debug', `connection ${connection.id}: ${method}: ${shown}`);
      if (wantsReply) connection.send({ error: error.name, parameters: error.parameters }, method);
    };

    if (dot <= 0) return refuse(new VarlinkError(VarlinkErrorName.MethodNotFound, { method }), 'not a qualified method name');
    if (served === undefined) return refuse(new VarlinkError(VarlinkErrorName.InterfaceNotFound, { interface: ifaceName }), 'interface not found');
    const definition: VarlinkMethodDefinition | undefined = findMethod(served.definition, memberName);
    if (definition === undefined) return refuse(new VarlinkError(VarlinkErrorName.MethodNotFound, { method }), 'method not found');
    const handler = served.methods.get(memberName);
    if (handler === undefined) return refuse(new VarlinkError(VarlinkErrorName.MethodNotImplemented, { method }), 'method not implemented');
    if (message.upgrade === true) {
      // Protocol upgrades hand the raw connection to the handler; nothing here supports that yet.
      return refuse(new VarlinkError(VarlinkErrorName.MethodNotImplemented, { method }), 'protocol upgrade is not supported');
    }
    if (definition.more === 'requires' && message.more !== true) {
      return refuse(new VarlinkError(VarlinkErrorName.ExpectedMore), "called without 'more'");
    }
    const parameters: JsonObject = message.parameters ?? {};
    const failure = validateParameters(served.definition, definition, parameters);
    if (failure !== undefined) {
      return refuse(new VarlinkError(VarlinkErrorName.InvalidParameter, { parameter: failure.parameter }), `invalid parameters: ${failure.reason}`);
    }

    const call = new CallContext(connection, method, message.more === true, !wantsReply);
    let result: VarlinkHandlerResult;
    try {
      result = await handler(parameters, call);
    } catch (err) {
      call.finish();
      if (call.signal.aborted && (err === call.signal.reason || connection.closed)) {
        this.#log('debug', `connection ${connection.id}: ${method}: cancelled`);
        return;
      }
      let error: VarlinkError;
      if (err instanceof VarlinkError) {
        error = err;
        this.#log('debug', `connection ${connection.id}: ${method}: replied ${err.name}`);
      } else {
        try {
          error = this.#mapError(err);
        } catch {
          error = systemError('EIO');
        }
        this.#log('error', `connection ${connection.id}: ${method} failed: ${errorText(err)}`);
      }
      if (wantsReply) connection.send({ error: error.name, parameters: error.parameters }, method);
      return;
    }
    call.finish();
    if (!wantsReply) return;
    if (result !== undefined && !isJsonObject(result)) {
      this.#log('error', `connection ${connection.id}: ${method} returned a ${Array.isArray(result) ? 'array' : typeof result}, not an object`);
      const error = systemError('EIO');
      connection.send({ error: error.name, parameters: error.parameters }, method);
      return;
    }
    connection.send({ parameters: (result ?? {}) as JsonObject }, method);
  }

  /**
   * Stops the server: no new connections are accepted, the socket file (if the server created it)
   * is removed, every running handler's signal is aborted, and each connection is closed once its
   * running call has finished (its reply, if any, is still sent) or after `graceMs`. Calls queued
   * behind it are dropped. Resolves when every connection is gone. Calling it again returns the same
   * promise.
   */
  close(options: VarlinkCloseOptions = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = this.#shutdown(options.graceMs ?? 5000, options.keepSocketFile === true);
    return this.#closing;
  }

  async #shutdown(graceMs: number, keepSocketFile: boolean): Promise<void> {
    const server = this.#server;
    const stopped = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    if (!keepSocketFile) await this.#unlinkOwnSocket();
    const gone = new Promise<void>((resolve) => {
      this.#allGone = resolve;
    });
    if (this.#connections.size === 0) this.#allGone?.();
    for (const connection of [...this.#connections]) connection.shutdown();
    const timer = setTimeout(() => {
      for (const connection of [...this.#connections]) {
        this.#log('warning', `connection ${connection.id}: still busy ${graceMs} ms after close(), destroying it`);
        connection.destroy();
      }
    }, graceMs);
    timer.unref();
    try {
      await gone;
      await stopped;
    } finally {
      clearTimeout(timer);
    }
  }

  async #unlinkOwnSocket(): Promise<void> {
    const path = this.#socketPath;
    const id = this.#socketId;
    if (path === undefined || id === undefined) return;
    try {
      // Only our own socket: a successor may already have replaced it with its own.
      const st = await fsp.lstat(path);
      if (st.dev === id.dev && st.ino === id.ino) await fsp.unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log('warning', `removing ${path} failed: ${errorText(err)}`);
    }
  }
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function closePidfd(peer: PeerIdentity): void {
  if (peer.pidfd === undefined) return;
  try {
    closeSync(peer.pidfd);
  } catch {
    // Already closed by someone else; nothing to release.
  }
}

function listenOn(server: Server, options: { path: string } | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Refuses to replace anything but a stale socket: a regular file is someone's data, and a socket
 * that accepts connections belongs to a running server.
 */
async function refuseLiveOrForeign(path: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw codedError('EEXIST', `${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw codedError('EADDRINUSE', `another server is listening on ${path}`);
}

