/**
 * The daemon's side of the keeper (see main.ts): start one, hand it fds, take them back after a
 * crash or across a re-exec (one path for both, see protocol.ts). Everything a new daemon needs to
 * find the old keeper is in its manifest, and the keeper itself is checked by pidfd id before
 * anything is taken from it. Every message and key is protocol.ts's.
 */
import { openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { native, POLLIN } from '../../native.js';
import { bootId, hasCode, Pidfd } from '../../pidfd/index.js';
import { readJson } from '../state-file.js';
import { decodeFromKeeper, decodeManifest, encodeToKeeper, KeeperProtocolError, MAX_MESSAGE_BYTES, type HeldFd, type HeldItem, type KeeperManifest, type ToKeeper } from './protocol.js';

export type { HeldItem, KeeperManifest } from './protocol.js';

/** What {@link Keeper.takeOver} brings back: the fds, and the old keeper, still holding its copies. */
export interface TakenOver {
  fds: RecoveredFd[];
  /** The previous keeper, to {@link Keeper.commit} as retiring and end once the new keeper holds everything. */
  previous: Pidfd | undefined;
}

/** A taken-back fd with what it is; the daemon owns `fd` now. */
export type RecoveredFd = HeldFd;

const KEEPER_SCRIPT = fileURLToPath(new URL('./main.js', import.meta.url));

/** A running keeper this daemon started. */
export class Keeper {
  readonly handle: Pidfd;
  readonly #socket: number;
  #closed = false;

  private constructor(handle: Pidfd, socket: number) {
    this.handle = handle;
    this.#socket = socket;
  }

  /** Starts a keeper in its own session; `manifestPath` is where it records what it holds. */
  static start(manifestPath: string): Keeper {
    const [ours, theirs] = native.socketPair('seqpacket');
    const devNull = openSync('/dev/null', 'r+');
    try {
      const spawned = native.spawn({
        file: process.execPath,
        argv: [process.execPath, KEEPER_SCRIPT, manifestPath],
        env: Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`),
        fds: [devNull, devNull, 2, theirs],
        session: 'setsid',
      });
      return new Keeper(Pidfd.adopt(spawned.pidfd, { pid: spawned.pid }), ours);
    } finally {
      closeSync(devNull);
      native.close(theirs);
    }
  }

  /** Gives the keeper a copy of `fd` under `item.key` (replacing an older one with that key). */
  hold(item: HeldItem, fd: number): void {
    this.#send({ op: 'hold', item }, [fd]);
  }

  /** Lets the keeper close its copy. */
  drop(key: string): void {
    this.#send({ op: 'drop', key });
  }

  /** Sends one message; a keeper that is gone or full loses it (what it holds is then lost anyway). */
  #send(message: ToKeeper, fds: number[] = []): void {
    if (this.#closed) return;
    try {
      native.sendMessage(this.#socket, encodeToKeeper(message), fds);
    } catch (error) {
      if (!hasCode(error, 'EAGAIN', 'EPIPE', 'ECONNREFUSED')) throw error;
    }
  }

  /**
   * Makes the keeper's manifest the one a next daemon reads: until now the previous keeper's
   * manifest stood, and that keeper still holds everything, so a crash before this point loses
   * nothing. Waits (bounded) for the keeper to confirm, then ends `previous`.
   */
  commit(previous: Pidfd | undefined, timeoutMs = 5000): boolean {
    if (this.#closed) return false;
    const retiring = previous === undefined || previous.id === undefined ? null : { pid: previous.pid, pidfdId: previous.id.toString() };
    native.sendMessage(this.#socket, encodeToKeeper({ op: 'commit', retiring }));
    if (previous === undefined) return true;
    const confirmed = this.sync(timeoutMs);
    // Unconfirmed, the old keeper stays: its manifest still stands and it still holds everything.
    if (confirmed) retire(previous);
    return confirmed;
  }

  /** Waits (synchronously, bounded) until the keeper has recorded everything sent so far. */
  sync(timeoutMs = 5000): boolean {
    if (this.#closed) return false;
    native.sendMessage(this.#socket, encodeToKeeper({ op: 'sync' }));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || native.pollFd(this.#socket, POLLIN, left) === 0) return false;
      const reply = native.receiveMessage(this.#socket, MAX_MESSAGE_BYTES);
      if (reply === null) continue;
      for (const fd of reply.fds) native.close(fd);
      try {
        if (decodeFromKeeper(reply.data).op === 'synced') return true;
      } catch (error) {
        // Not an answer: the keeper says nothing else, so wait on for the one that is.
        if (!(error instanceof KeeperProtocolError)) throw error;
      }
    }
  }

  /** Ends the keeper: the daemon is shutting down cleanly and nothing needs keeping. */
  stop(): void {
    if (this.#closed) return;
    this.#closed = true;
    native.close(this.#socket);
    retire(this.handle);
  }

  /**
   * Takes copies of everything an earlier keeper holds (pidfd_getfd) and leaves it running: it
   * is ended by {@link Keeper.commit} once a new keeper holds everything. Brings back nothing when
   * there is no manifest, it is of another boot, or its keeper is gone or is not the process the
   * manifest names. A keeper the manifest lists as retiring (a daemon died between commit and
   * ending it) is ended here.
   */
  static takeOver(manifestPath: string, log: (text: string) => void): TakenOver {
    const raw = readJson<unknown>(manifestPath);
    if (raw === undefined) return { fds: [], previous: undefined };
    let manifest: KeeperManifest;
    try {
      const decoded = decodeManifest(raw);
      manifest = decoded.manifest;
      for (const reason of decoded.rejected) log(`the keeper's manifest lists something that is not a keeper entry; left with it: ${reason}`);
    } catch (error) {
      if (!(error instanceof KeeperProtocolError)) throw error;
      log(`the keeper's manifest ${manifestPath} is not one (${error.message}); nothing to take over`);
      return { fds: [], previous: undefined };
    }
    if (manifest.bootId !== bootId() || manifest.pidfdId === null) return { fds: [], previous: undefined };
    if (manifest.retiring !== null) {
      try {
        retire(Pidfd.verify(manifest.retiring.pid, manifest.retiring.pidfdId));
      } catch {
        // Already gone (or its PID is someone else's now): nothing to end.
      }
    }
    let keeper: Pidfd;
    try {
      keeper = Pidfd.verify(manifest.pid, manifest.pidfdId);
    } catch (error) {
      log(`the previous keeper (PID ${manifest.pid}) is gone (${(error as NodeJS.ErrnoException).code}); nothing to take over`);
      return { fds: [], previous: undefined };
    }
    const recovered: RecoveredFd[] = [];
    for (const entry of manifest.entries) {
      try {
        recovered.push({ ...entry, fd: native.pidfdGetfd(keeper.fd, entry.fd) });
      } catch (error) {
        log(`could not take ${entry.key} from the keeper: ${(error as Error).message}`);
      }
    }
    return { fds: recovered, previous: keeper };
  }

  /** Ends a keeper that is no longer needed (one {@link Keeper.commit} could not end), through its pidfd. */
  static retire(keeper: Pidfd): void {
    retire(keeper);
  }
}

/** Ends a keeper that is no longer needed, through its pidfd. */
function retire(keeper: Pidfd): void {
  try {
    keeper.signal('SIGTERM');
  } catch (error) {
    if (!hasCode(error, 'ESRCH')) throw error;
  } finally {
    keeper.close();
  }
}
