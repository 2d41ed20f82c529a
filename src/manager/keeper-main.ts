/**
 * The keeper: a small process that holds copies of the daemon's precious fds (log pipe read ends,
 * pidfds of services, the notify socket) so that they outlive a daemon crash. A service whose log
 * pipe still has a reader gets no SIGPIPE; a pidfd still open keeps a dead process's exit status
 * readable (PIDFD_INFO_EXIT); the notify socket keeps its queued datagrams. A new daemon takes
 * copies back with pidfd_getfd and then ends this keeper.
 *
 * Protocol on fd 3 (a SOCK_SEQPACKET socket from the daemon): one JSON object per message,
 * `{"op":"hold","entry":{…}}` with exactly one fd, `{"op":"drop","key":"…"}`, `{"op":"commit"}` (from
 * now on this keeper's manifest is the one that counts) or `{"op":"sync"}`. Once committed, every change is
 * written to the manifest path given as argv[2], atomically.
 */
import { native, type RawMessage } from '../native.js';
import { Pidfd, bootId, hasCode } from '../pidfd/index.js';
import { writeJsonAtomic } from './state-file.js';
import type { KeeperEntry, KeeperManifest } from './keeper.js';

const manifestPath = process.argv[2];
if (manifestPath === undefined) {
  process.stderr.write('holdfast keeper: usage: keeper-main.js MANIFEST\n');
  process.exit(2);
}
const CONTROL_FD = 3;
const self = Pidfd.self();
const held = new Map<string, KeeperEntry & { fd: number }>();
/**
 * Until the daemon commits, the manifest on disk is the previous keeper's, which still holds
 * everything: this keeper writes nothing, and if the daemon dies before committing, nobody will
 * ever ask for what it holds, so it ends.
 */
let committed = false;
let retiring: KeeperManifest['retiring'] = null;

function save(): void {
  if (!committed) return;
  const manifest: KeeperManifest = {
    pid: process.pid,
    pidfdId: self.id?.toString() ?? null,
    bootId: bootId(),
    entries: [...held.values()],
    retiring,
  };
  writeJsonAtomic(manifestPath!, manifest);
}

function handle(text: string, fds: number[]): void {
  let message: { op?: string; entry?: KeeperEntry; key?: string; retiring?: KeeperManifest['retiring'] };
  try {
    message = JSON.parse(text) as typeof message;
  } catch {
    for (const fd of fds) native.close(fd);
    return;
  }
  if (message.op === 'hold' && message.entry !== undefined && fds.length === 1) {
    const previous = held.get(message.entry.key);
    if (previous !== undefined) native.close(previous.fd);
    held.set(message.entry.key, { ...message.entry, fd: fds[0]! });
    return;
  }
  for (const fd of fds) native.close(fd);
  if (message.op === 'commit') {
    committed = true;
    retiring = message.retiring ?? null;
    save();
    return;
  }
  if (message.op === 'sync') {
    // Everything sent before this is in the manifest once this answer arrives.
    save();
    try {
      native.sendMessage(CONTROL_FD, Buffer.from('{"op":"synced"}'));
    } catch (error) {
      // The daemon that asked is gone already; what it handed over stays held.
      if (!hasCode(error, 'EPIPE', 'ECONNRESET', 'EAGAIN')) throw error;
    }
    return;
  }
  if (message.op === 'drop' && message.key !== undefined) {
    const entry = held.get(message.key);
    if (entry !== undefined) {
      native.close(entry.fd);
      held.delete(message.key);
    }
  }
}

const watcher = native.watch(CONTROL_FD, () => {
  let changed = false;
  for (;;) {
    let message: RawMessage | null;
    try {
      message = native.receiveMessage(CONTROL_FD, 65536);
    } catch (error) {
      // A daemon that died with a reply of ours unread resets the connection: it is gone all the same.
      if (!hasCode(error, 'ECONNRESET')) throw error;
      daemonGone();
      break;
    }
    if (message === null) break;
    if (message.data.length === 0 && message.fds.length === 0) {
      daemonGone();
      break;
    }
    handle(message.data.toString('utf8'), message.fds);
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
