/**
 * A notify socket whose receiving side is Python's standard library, not our code: it binds an
 * AF_UNIX datagram socket (path or abstract) with SO_PASSCRED (and SO_PASSPIDFD where the kernel has
 * it), reports every datagram with its exact bytes, credentials and fds as one JSON line, and acts
 * on the fds it holds when told to (write into one, close one, compare a pidfd).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const PYTHON = String.raw`
import array, base64, json, os, select, socket, stat, struct, sys, time

address, mode = sys.argv[1], sys.argv[2]
SO_PASSPIDFD, SCM_PIDFD = 76, 0x04
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
try:
    sock.setsockopt(socket.SOL_SOCKET, SO_PASSPIDFD, 1)
except OSError:
    pass
sock.bind(('\0' + address[1:]) if address.startswith('@') else address)

def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()

def kind(mode_bits):
    for name, test in (('fifo', stat.S_ISFIFO), ('socket', stat.S_ISSOCK), ('file', stat.S_ISREG), ('char', stat.S_ISCHR)):
        if test(mode_bits):
            return name
    return 'other'

def pidfd_ino(pid):
    fd = os.pidfd_open(pid)
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)

held = {}
seq = 0
pending = b''
paused_until = 0.0
emit({'event': 'listening'})
while True:
    timeout = max(0.0, paused_until - time.monotonic()) if paused_until else None
    readable, _, _ = select.select([sys.stdin] + ([] if paused_until else [sock]), [], [], timeout)
    if paused_until and time.monotonic() >= paused_until:
        paused_until = 0.0
    if sock in readable:
        data, ancdata, flags, _ = sock.recvmsg(8192, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4) + socket.CMSG_SPACE(4 * 253))
        seq += 1
        fds, cred, sender_ino = [], None, None
        for level, ctype, cdata in ancdata:
            if level != socket.SOL_SOCKET:
                continue
            if ctype == socket.SCM_RIGHTS:
                a = array.array('i')
                a.frombytes(cdata[:len(cdata) - len(cdata) % 4])
                fds.extend(a)
            elif ctype == socket.SCM_CREDENTIALS:
                cred = struct.unpack('iII', cdata[:12])
            elif ctype == SCM_PIDFD:
                pfd = struct.unpack('i', cdata[:4])[0]
                sender_ino = os.fstat(pfd).st_ino
                os.close(pfd)
        text = data.decode('utf-8', 'replace')
        fields = dict(line.split('=', 1) for line in text.split('\n') if '=' in line)
        info = []
        for i, fd in enumerate(fds):
            st = os.fstat(fd)
            entry = {'key': '%d.%d' % (seq, i), 'kind': kind(st.st_mode), 'ino': st.st_ino, 'link': os.readlink('/proc/self/fd/%d' % fd)}
            held[entry['key']] = fd
            info.append(entry)
        main_pid_ino = None
        if 'MAINPID' in fields:
            try:
                main_pid_ino = pidfd_ino(int(fields['MAINPID']))
            except (OSError, ValueError) as e:
                main_pid_ino = 'error: %s' % e
        emit({'event': 'message', 'seq': seq, 'data': base64.b64encode(data).decode(), 'text': text,
              'pid': cred[0] if cred else None, 'uid': cred[1] if cred else None, 'gid': cred[2] if cred else None,
              'senderPidfdIno': sender_ino, 'fds': info, 'mainPidIno': main_pid_ino,
              'truncated': bool(flags & socket.MSG_TRUNC)})
        if mode == 'manager' and data == b'BARRIER=1':
            for entry in info:
                os.close(held.pop(entry['key']))
    if sys.stdin in readable:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        pending += chunk
        quit_now = False
        while b'\n' in pending:
            line, pending = pending.split(b'\n', 1)
            cmd = json.loads(line)
            reply = {'event': 'reply', 'id': cmd['id']}
            try:
                op = cmd['op']
                if op == 'write':
                    reply['written'] = os.write(held[cmd['key']], cmd['data'].encode())
                elif op == 'close':
                    os.close(held.pop(cmd['key']))
                elif op == 'pidfd-ino':
                    reply['ino'] = pidfd_ino(cmd['pid'])
                elif op == 'fd-ino':
                    reply['ino'] = os.fstat(held[cmd['key']]).st_ino
                elif op == 'clock':
                    reply['ns'] = str(time.clock_gettime_ns(time.CLOCK_MONOTONIC))
                elif op == 'pause':
                    paused_until = time.monotonic() + cmd['ms'] / 1000.0
                elif op == 'quit':
                    quit_now = True
            except Exception as e:
                reply['error'] = '%s: %s' % (type(e).__name__, e)
            emit(reply)
        if quit_now:
            break
`;

/** One datagram as Python saw it. */
export interface Datagram {
  seq: number;
  /** The exact bytes. */
  bytes: Buffer;
  text: string;
  /** From SCM_CREDENTIALS (null if none came, which a manager rejects). */
  pid: number | null;
  uid: number | null;
  gid: number | null;
  /** st_ino of the SCM_PIDFD the kernel attached (6.5+), i.e. the sender's pidfd id. */
  senderPidfdIno: number | null;
  fds: { key: string; kind: string; ino: number; link: string }[];
  /** For a message with MAINPID=: st_ino of os.pidfd_open(MAINPID) at receipt. */
  mainPidIno: number | string | null;
  truncated: boolean;
}

/** Why the Python receiver cannot run here, or undefined. */
export function pythonUnavailable(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import os, socket; os.pidfd_open; print(socket.SCM_CREDENTIALS)'], { encoding: 'utf8' });
  if (probe.error !== undefined) return `python3 is not installed: ${probe.error.message}`;
  if (probe.status !== 0) return `python3 lacks os.pidfd_open (3.9+) or SCM_CREDENTIALS: ${probe.stderr.trim()}`;
  return undefined;
}

/** Bounded wait for tests: fails with `what` instead of hanging. */
export function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what} after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let counter = 0;

export class PythonReceiver {
  /** The value for NOTIFY_SOCKET. */
  readonly address: string;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #dir: string | undefined;
  readonly #messages: Datagram[] = [];
  readonly #waiters: { count: number; resolve: () => void }[] = [];
  readonly #replies = new Map<number, (reply: Record<string, unknown>) => void>();
  #nextId = 1;
  #stderr = '';
  #closed: Promise<void>;

  private constructor(kind: 'path' | 'abstract', mode: 'manager' | 'hold') {
    counter++;
    if (kind === 'path') {
      this.#dir = mkdtempSync(join(tmpdir(), 'holdfast-notify-'));
      this.address = join(this.#dir, 'notify');
    } else {
      this.#dir = undefined;
      this.address = `@holdfast-test/${process.pid}/${counter}/${Math.random().toString(36).slice(2)}`;
    }
    this.#child = spawn('python3', ['-u', '-c', PYTHON, this.address, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr += chunk));
    this.#closed = new Promise((resolve) => this.#child.once('close', () => resolve()));
  }

  /**
   * Starts a receiver and waits until its socket is bound. In `manager` mode it closes the fd of a
   * `BARRIER=1` message at once, as a manager does; in `hold` mode it keeps every fd until told.
   */
  static async start(kind: 'path' | 'abstract' = 'path', mode: 'manager' | 'hold' = 'manager'): Promise<PythonReceiver> {
    const receiver = new PythonReceiver(kind, mode);
    await within(
      new Promise<void>((resolve, reject) => {
        const lines = createInterface({ input: receiver.#child.stdout });
        let started = false;
        lines.on('line', (line) => {
          const event = JSON.parse(line) as Record<string, unknown>;
          if (event['event'] === 'listening') {
            started = true;
            resolve();
          } else receiver.#onEvent(event);
        });
        receiver.#child.once('close', (code) => {
          if (!started) reject(new Error(`python receiver exited with ${code}: ${receiver.#stderr}`));
        });
      }),
      'the python receiver to bind its socket',
    );
    return receiver;
  }

  #onEvent(event: Record<string, unknown>): void {
    if (event['event'] === 'message') {
      const { data, ...rest } = event as unknown as Datagram & { data: string };
      this.#messages.push({ ...rest, bytes: Buffer.from(data, 'base64') });
      for (const waiter of [...this.#waiters]) {
        if (this.#messages.length >= waiter.count) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    } else if (event['event'] === 'reply') {
      const resolve = this.#replies.get(event['id'] as number);
      this.#replies.delete(event['id'] as number);
      resolve?.(event);
    }
  }

  /** Every datagram received so far. */
  get messages(): readonly Datagram[] {
    return this.#messages;
  }

  /** Waits until at least `count` datagrams have arrived in total; returns all so far. */
  async waitFor(count: number, what = `${count} datagram(s)`): Promise<readonly Datagram[]> {
    if (this.#messages.length < count) {
      await within(new Promise<void>((resolve) => this.#waiters.push({ count, resolve })), `${what} at ${this.address} (stderr: ${this.#stderr})`);
    }
    return this.#messages;
  }

  /** The next datagram after those already seen by `take`/`next`. */
  #taken = 0;
  async next(what = 'the next datagram'): Promise<Datagram> {
    await this.waitFor(this.#taken + 1, what);
    return this.#messages[this.#taken++]!;
  }

  /** Sends a command to Python and returns its reply; throws if Python reported an error. */
  async command(op: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const reply = within(new Promise<Record<string, unknown>>((resolve) => this.#replies.set(id, resolve)), `python's reply to ${op}`);
    this.#child.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    const answer = await reply;
    if (answer['error'] !== undefined) throw new Error(`python ${op}: ${String(answer['error'])}`);
    return answer;
  }

  /** Stops Python (closing every fd it holds) and removes the socket directory. */
  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.stdin.end();
      await within(this.#closed, 'the python receiver to exit').catch(() => this.#child.kill('SIGKILL'));
    }
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true });
  }
}
