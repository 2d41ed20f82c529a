// Shared fixtures for the Varlink tests: a test interface with handlers that record what happened,
// temp directories, raw socket exchanges, and polling.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkError, VarlinkServer, type VarlinkServerOptions } from '../../src/api/varlink/index.js';

export const TEST_IDL = `# An interface for exercising the server.
interface org.example.test

# A process: PID plus, when known, the pidfd inode number and the boot it belongs to.
type ProcessId (pid: int, pidfdId: ?int, bootId: ?string)

type Mode (fast, slow)

# Returns its input.
method Echo(text: string, count: ?int) -> (text: string, count: ?int)

method Add(a: int, b: int) -> (sum: int)

# Fails in the requested way.
method Fail(kind: (varlink, system, bug, array, bigint)) -> ()

# Replies n times.
# [Supports 'more' flag]
method Count(n: int) -> (i: int)

# Sends a tick, then waits until cancelled.
# [Requires 'more' flag]
method Watch() -> (tick: int)

# Remembers a value, for oneway calls.
method Record(value: string) -> ()

# Returns what the server knows about the caller.
method Whoami() -> (uid: ?int, gid: ?int, pid: ?int)

# Waits until the test releases it.
method Hold(id: int) -> (id: int)

# Sleeps a little, differently for each id.
method Delay(id: int) -> (id: int)

method Lookup(
\tpid: ?ProcessId,
\tnames: ?[]string,
\tenv: ?[string]string,
\tmode: ?Mode,
\toptions: ?(verbose: bool, depth: ?int),
\textra: ?object,
\tratio: ?float
) -> (pid: ?ProcessId, names: ?[]string, depth: ?int)

# Returns text repeated, to make replies larger than calls.
method Repeat(text: string, times: int) -> (text: string)

method Unimplemented() -> ()

error Failed (reason: string)
`;

/** What the test handlers observed. */
export interface Observed {
  records: string[];
  cancelled: string[];
  holds: Map<number, () => void>;
  watchStarted: number;
}

/** A deferred promise the test resolves by hand. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export function makeTestServer(options: VarlinkServerOptions = {}): { server: VarlinkServer; observed: Observed; logs: string[] } {
  const logs: string[] = [];
  const observed: Observed = { records: [], cancelled: [], holds: new Map(), watchStarted: 0 };
  const server = new VarlinkServer({
    vendor: 'Example',
    product: 'test',
    version: '1.0',
    url: 'https://example.org',
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...options,
  });
  server.addInterface({
    idl: TEST_IDL,
    methods: {
      Echo: (p) => p,
      Add: (p: { a: number; b: number }) => ({ sum: p.a + p.b }),
      Fail: (p: { kind: string }) => {
        switch (p.kind) {
          case 'varlink':
            throw new VarlinkError('org.example.test.Failed', { reason: 'asked' });
          case 'system':
            readFileSync('/nonexistent/holdfast-test');
            return {};
          case 'array':
            return [1, 2];
          case 'bigint':
            return { n: 1n };
          default:
            throw new Error('boom');
        }
      },
      Count: async (p: { n: number }, call) => {
        for (let i = 0; i < p.n - 1; i++) await call.notify({ i });
        return { i: p.n - 1 };
      },
      Watch: async (_p, call) => {
        observed.watchStarted++;
        await call.notify({ tick: 0 });
        await new Promise<void>((resolve) => {
          if (call.signal.aborted) resolve();
          call.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        observed.cancelled.push(`Watch on connection ${call.connectionId}`);
        throw call.signal.reason;
      },
      Record: (p: { value: string }) => {
        observed.records.push(p.value);
      },
      Whoami: (_p, call) => ({ uid: call.peer?.uid ?? null, gid: call.peer?.gid ?? null, pid: call.peer?.pid ?? null }),
      Hold: async (p: { id: number }, call) => {
        const d = deferred();
        observed.holds.set(p.id, d.resolve);
        call.signal.addEventListener('abort', () => observed.cancelled.push(`Hold ${p.id}`), { once: true });
        await d.promise;
        return { id: p.id };
      },
      Delay: async (p: { id: number }) => {
        await new Promise((r) => setTimeout(r, (p.id * 7) % 5));
        return { id: p.id };
      },
      Repeat: (p: { text: string; times: number }) => ({ text: p.text.repeat(p.times) }),
      Lookup: (p: { pid?: object; names?: string[]; options?: { depth?: number } }) => ({
        pid: p.pid ?? null,
        names: p.names ?? null,
        depth: p.options?.depth ?? null,
      }),
    },
  });
  return { server, observed, logs };
}

/** A fresh temp directory, removed by the returned function. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hf-varlink-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls until `predicate` holds; fails the test after `limitMs` so a bug cannot hang the run. */
export async function waitFor(predicate: () => boolean, what: string, limitMs = 10000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Result of a raw exchange: complete messages received, leftover bytes, and whether the server closed. */
export interface RawResult {
  messages: string[];
  rest: string;
  closed: boolean;
}

/**
 * Connects with a plain socket, writes `data` (each element as its own write), and collects what
 * comes back until `expect` messages have arrived or the server closes the connection.
 */
export function rawExchange(path: string, data: (string | Buffer)[], expect: number): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ path });
    // Chunks of the message being received; only new chunks are scanned, so large replies stay cheap.
    let partial: Buffer[] = [];
    const messages: string[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ messages, rest: Buffer.concat(partial).toString('utf8'), closed });
    };
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close while we are still writing a large message.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') finish(true);
      else if (!done) reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      let nul: number;
      while ((nul = chunk.indexOf(0)) !== -1) {
        partial.push(chunk.subarray(0, nul));
        messages.push(Buffer.concat(partial).toString('utf8'));
        partial = [];
        chunk = chunk.subarray(nul + 1);
      }
      if (chunk.length > 0) partial.push(chunk);
      if (messages.length >= expect && expect > 0) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      for (const d of data) socket.write(d);
    });
  });
}

/** The uid, gid and pid of this process, read the way a fake `identifyPeer` can. */
export function selfIdentity(): { uid: number; gid: number; pid: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+(\\d+)`, 'm').exec(status)![2]);
  const pid = Number(/^Pid:\s+(\d+)/m.exec(status)![1]);
  return { uid: field('Uid'), gid: field('Gid'), pid };
}
