/**
 * The keeper: a small process that holds copies of the daemon's precious fds (log pipe read ends,
 * pidfds of services, the notify socket) so that they outlive a daemon crash. A service whose log
 * pipe still has a reader gets no SIGPIPE; a pidfd still open keeps a dead process's exit status
 * readable (PIDFD_INFO_EXIT); the notify socket keeps its queued datagrams. A new daemon takes
 * copies back with pidfd_getfd and then ends this keeper.
 *
 * The daemon talks to it on fd 3 (a SOCK_SEQPACKET socket) in the messages of protocol.ts. Once
 * committed, every change is written to the manifest path given as argv[2], atomically. A message
 * that does not check out is dropped with a line on stderr: the keeper never ends on bad input,
 * since ending would lose everything it holds.
 */
import { native, type RawMessage } from '../../native.js';
import { Pidfd, bootId, hasCode } from '../../pidfd/index.js';
import { readJson, writeJsonAtomic } from '../state-file.js';
import { decodeToKeeper, encodeFromKeeper, KeeperProtocolError, manifestJson, MAX_MESSAGE_BYTES, type HeldFd, type RetiringKeeper, type ToKeeper } from './protocol.js';

const manifestPath = process.argv[2];
if (manifestPath === undefined) {
  process.stderr.write('holdfast keeper: usage: main.js MANIFEST\n');
  process.exit(2);
}
const CONTROL_FD = 3;
const self = Pidfd.self();
const held = new Map<string, HeldFd>();
/**
 * Until the daemon commits, the manifest on disk is the previous keeper's, which still holds
 * everything: this keeper writes nothing, and if the daemon dies before committing, nobody will
 * ever ask for what it holds, so it ends.
 */
let committed = false;
let retiring: RetiringKeeper | null = null;
/** Manifest writes that failed in a row. */
let failedSaves = 0;
let retrySave: NodeJS.Timeout | undefined;

/**
 * Writes the manifest (once committed). A write that fails (a full disk) is said on stderr and
 * leaves the previous manifest: the keeper goes on holding everything, and the next change or
 * sync tries again.
 */
function save(): boolean {
  if (!committed) return true;
  const manifest = manifestJson({ pid: process.pid, pidfdId: self.id?.toString() ?? null, bootId: bootId(), entries: [...held.values()], retiring });
  try {
    writeJsonAtomic(manifestPath!, manifest);
  } catch (error) {
    // Said once per run of failures: a full disk fails every write until space comes back.
    if (failedSaves++ === 0) process.stderr.write(`holdfast keeper: could not write ${manifestPath!}: ${(error as Error).message}; holding on, and trying again\n`);
    // A stale manifest misleads the next daemon: try again even if nothing changes meanwhile.
    retrySave ??= setTimeout(() => {
      retrySave = undefined;
      // A successor's manifest names this keeper as retiring: overwriting it would hide the successor.
      if (!superseded()) save();
    }, 1000);
    return false;
  }
  if (failedSaves > 0) process.stderr.write(`holdfast keeper: wrote ${manifestPath!} again, after ${failedSaves} failed write(s)\n`);
  failedSaves = 0;
  return true;
}

/** Whether the manifest on disk is a newer keeper's, one that replaces this one. */
function superseded(): boolean {
  const onDisk = readJson<{ retiring?: { pidfdId?: unknown } | null }>(manifestPath!);
  const id = self.id?.toString();
  return id !== undefined && onDisk?.retiring?.pidfdId === id;
}

/** Reads one message; a bad one is said on stderr and its fds are closed. */
function decode(message: RawMessage): ToKeeper | undefined {
  try {
    if (message.truncated || message.controlTruncated) throw new KeeperProtocolError(`message: cut short (over ${MAX_MESSAGE_BYTES} bytes, or too many fds)`);
    return decodeToKeeper(message.data, message.fds.length);
  } catch (error) {
    if (!(error instanceof KeeperProtocolError)) throw error;
    for (const fd of message.fds) native.close(fd);
    process.stderr.write(`holdfast keeper: dropped a message: ${error.message}\n`);
    return undefined;
  }
}

function handle(message: ToKeeper, fds: number[]): void {
  switch (message.op) {
    case 'hold': {
      const previous = held.get(message.item.key);
      if (previous !== undefined) native.close(previous.fd);
      held.set(message.item.key, { ...message.item, fd: fds[0]! });
      return;
    }
    case 'drop': {
      const entry = held.get(message.key);
      if (entry !== undefined) {
        native.close(entry.fd);
        held.delete(message.key);
      }
      return;
    }
    case 'commit':
      committed = true;
      retiring = message.retiring;
      save();
      return;
    case 'sync':
      // Everything sent before this is in the manifest once this answer arrives; unwritten, no
      // answer, and the daemon says the keeper did not confirm.
      if (!save()) return;
      try {
        native.sendMessage(CONTROL_FD, encodeFromKeeper({ op: 'synced' }));
      } catch (error) {
        // The daemon that asked is gone already; what it handed over stays held.
        if (!hasCode(error, 'EPIPE', 'ECONNRESET', 'EAGAIN')) throw error;
      }
      return;
  }
}

const watcher = native.watch(CONTROL_FD, () => {
  let changed = false;
  for (;;) {
    let raw: RawMessage | null;
    try {
      raw = native.receiveMessage(CONTROL_FD, MAX_MESSAGE_BYTES);
    } catch (error) {
      // A daemon that died with a reply of ours unread resets the connection: it is gone all the same.
      if (!hasCode(error, 'ECONNRESET')) throw error;
      daemonGone();
      break;
    }
    if (raw === null) break;
    if (raw.data.length === 0 && raw.fds.length === 0) {
      daemonGone();
      break;
    }
    const message = decode(raw);
    if (message === undefined) continue;
    handle(message, raw.fds);
    changed = true;
  }
  if (changed) save();
});
/** The daemon is gone. Hold on to everything until a new daemon takes it and ends us; uncommitted, nobody will. */
function daemonGone(): void {
  watcher.close();
  if (!committed) process.exit(0);
}

process.on('SIGTERM', () => process.exit(0));
// Holding fds is all the keeper does once the daemon is gone: nothing else keeps its loop alive.
setInterval(() => {}, 2 ** 30);
