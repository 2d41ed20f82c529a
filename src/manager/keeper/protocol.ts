/**
 * The keeper protocol, in one place: what the daemon and its keeper (keeper.ts and main.ts) say
 * to each other, what the keeper holds and under which key, and the manifest it records. Nothing
 * else in holdfast builds a keeper message, a held key or a manifest by hand.
 *
 * The keeper is how holdfast survives its own end: it holds copies of the fds that must outlive the
 * daemon (log pipe read ends, pidfds of services, the notify socket). A daemon-reexec and a crash
 * take the same way back: the next daemon reads the manifest and takes copies of what the keeper
 * holds (`Keeper.takeOver` in keeper.ts, by pidfd_getfd), starts a keeper of its own, hands
 * everything to it and commits it. A re-exec only differs in having synced the keeper first, so
 * nothing it sent is missing from the manifest; there is no second path to keep in step. A keeper
 * that dies while its daemon runs is replaced the same way: the daemon hands a new keeper every
 * item still held (it keeps a copy of each fd) and commits it.
 *
 * The wire: one JSON object per SOCK_SEQPACKET message. The keeper must never end on a bad message:
 * every decoder here checks its input and throws a {@link KeeperProtocolError} that says what is
 * wrong, and the keeper drops that message (closing any fd it came with) and goes on.
 */

/** The file, in the daemon's state directory, where the committed keeper records what it holds. */
export const KEEPER_MANIFEST_FILE = 'keeper.json';

/** The largest message either side sends or receives (a held item is a few hundred bytes). */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** A message, a held item or a manifest that is not what the protocol says. */
export class KeeperProtocolError extends Error {
  override readonly name = 'KeeperProtocolError';
}

// ---- What the keeper holds -------------------------------------------------------------------

/** A log pipe's read end: the service keeps a reader (no SIGPIPE), and what it wrote meanwhile stays in the pipe. */
export interface HeldLogPipe {
  kind: 'log';
  /** {@link logPipeKey}: one per pipe of one capture. */
  key: string;
  unit: string;
  stream: 'stdout' | 'stderr';
  invocationId: string | null;
  /** The writer (the service's main process), to attribute the records read after a take-over. */
  pid: number | null;
  pidfdId: string | null;
  /** The spool its reader moves bytes into (logs/spool.ts). */
  spool: string | null;
}

/** A pidfd of a process the daemon supervises: kept open, it keeps an ended process's exit status readable (PIDFD_INFO_EXIT). */
export interface HeldPidfd {
  kind: 'pidfd';
  /** {@link pidfdKey}. */
  key: string;
  pid: number;
  pidfdId: string | null;
}

/** The notify socket: held, it keeps the datagrams queued while no daemon reads them. */
export interface HeldNotifySocket {
  kind: 'notify';
  key: typeof NOTIFY_KEY;
}

/** Something the keeper holds: one fd, and what it is. */
export type HeldItem = HeldLogPipe | HeldPidfd | HeldNotifySocket;

/** A held item with its fd: in the keeper's table and manifest (its number there), or taken back (the daemon's own copy). */
export type HeldFd = HeldItem & { fd: number };

/** The key of the notify socket: there is one. */
export const NOTIFY_KEY = 'notify';

/** The key of one pipe of the `seq`-th capture of `unit`. */
export function logPipeKey(unit: string, seq: number, stream: 'stdout' | 'stderr'): string {
  return `log:${unit}:${seq}:${stream}`;
}

/** The key of a process's pidfd; the pidfd id tells two processes of one recycled PID apart. */
export function pidfdKey(pid: number, pidfdId: bigint | string | null | undefined): string {
  return `pidfd:${pid}:${pidfdId ?? ''}`;
}

/** What a key says, as {@link parseHeldKey} reads it. */
export type ParsedKey =
  | { kind: 'log'; unit: string; seq: number; stream: 'stdout' | 'stderr' }
  | { kind: 'pidfd'; pid: number; pidfdId: string | null }
  | { kind: 'notify' };

/** Reads a key back; undefined when it is none of the protocol's. */
export function parseHeldKey(key: string): ParsedKey | undefined {
  if (key === NOTIFY_KEY) return { kind: 'notify' };
  // A unit name may hold a colon (an instance name): unit is everything between the first and the last two fields.
  const log = /^log:(.+):(\d+):(stdout|stderr)$/.exec(key);
  if (log !== null) {
    const seq = Number(log[2]);
    return Number.isSafeInteger(seq) ? { kind: 'log', unit: log[1]!, seq, stream: log[3] as 'stdout' | 'stderr' } : undefined;
  }
  const pidfd = /^pidfd:([1-9]\d*):(\d*)$/.exec(key);
  if (pidfd !== null) {
    const pid = Number(pidfd[1]);
    return Number.isSafeInteger(pid) ? { kind: 'pidfd', pid, pidfdId: pidfd[2] === '' ? null : pidfd[2]! } : undefined;
  }
  return undefined;
}

/** A held item as it goes on the wire or into the manifest: its own fields only. */
function itemJson(item: HeldItem): HeldItem {
  switch (item.kind) {
    case 'log':
      return { kind: 'log', key: item.key, unit: item.unit, stream: item.stream, invocationId: item.invocationId, pid: item.pid, pidfdId: item.pidfdId, spool: item.spool };
    case 'pidfd':
      return { kind: 'pidfd', key: item.key, pid: item.pid, pidfdId: item.pidfdId };
    case 'notify':
      return { kind: 'notify', key: NOTIFY_KEY };
  }
}

/**
 * Checks a held item read from a message or a manifest. Fields a manifest of an older holdfast may
 * lack (it wrote `undefined` ones as missing) read as null; a key that does not name what the item
 * says it is (another unit, another PID) is rejected.
 */
export function decodeHeldItem(value: unknown, where = 'held item'): HeldItem {
  const o = object(value, where);
  const key = string(o['key'], `${where}.key`);
  const parsed = parseHeldKey(key);
  if (parsed === undefined) throw new KeeperProtocolError(`${where}: ${JSON.stringify(key)} is not a keeper key`);
  if (parsed.kind !== o['kind']) throw new KeeperProtocolError(`${where}: kind ${JSON.stringify(o['kind'])} with a ${parsed.kind} key (${key})`);
  switch (parsed.kind) {
    case 'notify':
      return { kind: 'notify', key: NOTIFY_KEY };
    case 'pidfd': {
      const pid = positiveInteger(o['pid'], `${where}.pid`);
      const pidfdId = nullableString(o['pidfdId'], `${where}.pidfdId`);
      if (pid !== parsed.pid || pidfdId !== parsed.pidfdId) throw new KeeperProtocolError(`${where}: key ${key} names another process than PID ${pid} (${pidfdId ?? 'no id'})`);
      return { kind: 'pidfd', key, pid, pidfdId };
    }
    case 'log': {
      const unit = string(o['unit'], `${where}.unit`);
      const stream = o['stream'];
      if (stream !== 'stdout' && stream !== 'stderr') throw new KeeperProtocolError(`${where}.stream: expected "stdout" or "stderr", got ${describe(stream)}`);
      if (unit !== parsed.unit || stream !== parsed.stream) throw new KeeperProtocolError(`${where}: key ${key} names another pipe than ${unit} ${stream}`);
      const pid = o['pid'] === undefined || o['pid'] === null ? null : positiveInteger(o['pid'], `${where}.pid`);
      return {
        kind: 'log',
        key,
        unit,
        stream,
        invocationId: nullableString(o['invocationId'], `${where}.invocationId`),
        pid,
        pidfdId: nullableString(o['pidfdId'], `${where}.pidfdId`),
        spool: nullableString(o['spool'], `${where}.spool`),
      };
    }
  }
}

// ---- Messages ----------------------------------------------------------------------------------

/** A keeper that was replaced, named by pidfd id so that a recycled PID is never mistaken for it. */
export interface RetiringKeeper {
  pid: number;
  pidfdId: string;
}

/** Daemon → keeper. */
export type ToKeeper =
  /** Hold the one fd that comes with this message under `item.key` (closing an older one of that key). */
  | { op: 'hold'; item: HeldItem }
  /** Close the copy held under `key` (nothing held under it: nothing to do). */
  | { op: 'drop'; key: string }
  /** From now on this keeper's manifest is the one that counts; `retiring` is to be ended by whoever takes over should the daemon die before it did. */
  | { op: 'commit'; retiring: RetiringKeeper | null }
  /** Answer `synced` once everything sent before is in the manifest. */
  | { op: 'sync' };

/** Keeper → daemon. */
export type FromKeeper = { op: 'synced' };

/** How many fds a message of each op carries. */
export function fdsOf(message: ToKeeper): number {
  return message.op === 'hold' ? 1 : 0;
}

/** The bytes of a message to the keeper. */
export function encodeToKeeper(message: ToKeeper): Buffer {
  switch (message.op) {
    case 'hold':
      return encode({ op: 'hold', item: itemJson(message.item) });
    case 'drop':
      return encode({ op: 'drop', key: message.key });
    case 'commit':
      return encode({ op: 'commit', retiring: message.retiring === null ? null : { pid: message.retiring.pid, pidfdId: message.retiring.pidfdId } });
    case 'sync':
      return encode({ op: 'sync' });
  }
}

/** Reads a message to the keeper that came with `fdCount` fds; throws {@link KeeperProtocolError} on anything else. */
export function decodeToKeeper(data: Buffer, fdCount: number): ToKeeper {
  const o = object(parse(data), 'message');
  let message: ToKeeper;
  switch (o['op']) {
    case 'hold':
      message = { op: 'hold', item: decodeHeldItem(o['item'], 'hold.item') };
      break;
    case 'drop':
      message = { op: 'drop', key: string(o['key'], 'drop.key') };
      break;
    case 'commit':
      message = { op: 'commit', retiring: o['retiring'] === undefined || o['retiring'] === null ? null : decodeRetiring(o['retiring'], 'commit.retiring') };
      break;
    case 'sync':
      message = { op: 'sync' };
      break;
    default:
      throw new KeeperProtocolError(`message: unknown op ${describe(o['op'])}`);
  }
  if (fdCount !== fdsOf(message)) throw new KeeperProtocolError(`${message.op}: came with ${fdCount} fd(s), takes ${fdsOf(message)}`);
  return message;
}

/** The bytes of a message to the daemon. */
export function encodeFromKeeper(message: FromKeeper): Buffer {
  return encode({ op: message.op });
}

/** Reads a message from the keeper; throws {@link KeeperProtocolError} on anything else. */
export function decodeFromKeeper(data: Buffer): FromKeeper {
  const o = object(parse(data), 'reply');
  if (o['op'] !== 'synced') throw new KeeperProtocolError(`reply: unknown op ${describe(o['op'])}`);
  return { op: 'synced' };
}

// ---- The manifest --------------------------------------------------------------------------------

/** The keeper's manifest ({@link KEEPER_MANIFEST_FILE}): who holds what, for the next daemon on this boot. */
export interface KeeperManifest {
  pid: number;
  pidfdId: string | null;
  bootId: string;
  /** Each held item with its fd number in the keeper (for pidfd_getfd). */
  entries: HeldFd[];
  /** A previous keeper this one replaced, to be ended by whoever takes over should the daemon die before it did. */
  retiring: RetiringKeeper | null;
}

/** The manifest as written to disk. */
export function manifestJson(manifest: KeeperManifest): KeeperManifest {
  return {
    pid: manifest.pid,
    pidfdId: manifest.pidfdId,
    bootId: manifest.bootId,
    entries: manifest.entries.map((entry) => ({ ...itemJson(entry), fd: entry.fd })),
    retiring: manifest.retiring,
  };
}

/**
 * Reads a manifest. One entry that does not check out is left out and said why in `rejected`
 * (the others still come back); a manifest whose keeper cannot be named throws.
 */
export function decodeManifest(value: unknown): { manifest: KeeperManifest; rejected: string[] } {
  const o = object(value, 'manifest');
  const rejected: string[] = [];
  const entries: HeldFd[] = [];
  if (!Array.isArray(o['entries'])) throw new KeeperProtocolError(`manifest.entries: expected an array, got ${describe(o['entries'])}`);
  o['entries'].forEach((raw: unknown, index) => {
    const where = `manifest.entries[${index}]`;
    try {
      const fd = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)['fd'] : undefined;
      if (typeof fd !== 'number' || !Number.isSafeInteger(fd) || fd < 0) throw new KeeperProtocolError(`${where}.fd: expected an fd number, got ${describe(fd)}`);
      entries.push({ ...decodeHeldItem(raw, where), fd });
    } catch (error) {
      if (!(error instanceof KeeperProtocolError)) throw error;
      rejected.push(error.message);
    }
  });
  const manifest: KeeperManifest = {
    pid: positiveInteger(o['pid'], 'manifest.pid'),
    pidfdId: nullableString(o['pidfdId'], 'manifest.pidfdId'),
    bootId: string(o['bootId'], 'manifest.bootId'),
    entries,
    retiring: o['retiring'] === undefined || o['retiring'] === null ? null : decodeRetiring(o['retiring'], 'manifest.retiring'),
  };
  return { manifest, rejected };
}

// ---- Checks ----------------------------------------------------------------------------------------

function encode(value: object): Buffer {
  const data = Buffer.from(JSON.stringify(value));
  if (data.length > MAX_MESSAGE_BYTES) throw new KeeperProtocolError(`a ${(value as { op: string }).op} message of ${data.length} bytes is over ${MAX_MESSAGE_BYTES}`);
  return data;
}

function parse(data: Buffer): unknown {
  if (data.length === 0) throw new KeeperProtocolError('message: empty');
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data)) as unknown;
  } catch (error) {
    throw new KeeperProtocolError(`message: not JSON (${(error as Error).message})`);
  }
}

function decodeRetiring(value: unknown, where: string): RetiringKeeper {
  const o = object(value, where);
  return { pid: positiveInteger(o['pid'], `${where}.pid`), pidfdId: string(o['pidfdId'], `${where}.pidfdId`) };
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new KeeperProtocolError(`${where}: expected an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw new KeeperProtocolError(`${where}: expected a non-empty string, got ${describe(value)}`);
  return value;
}

function nullableString(value: unknown, where: string): string | null {
  return value === undefined || value === null ? null : string(value, where);
}

function positiveInteger(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new KeeperProtocolError(`${where}: expected a positive integer, got ${describe(value)}`);
  return value;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
