/**
 * The daemon's side of the keeper (see main.ts): start one, hand it fds, take them back after a
 * crash or across a re-exec (one path for both, see protocol.ts), and start a new one whenever it
 * dies, at any moment, handing it everything again. Everything a new daemon needs to
 * find the old keeper is in its manifest, and the keeper itself is checked by pidfd id before
 * anything is taken from it. Every message and key is protocol.ts's.
 */
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { native, POLLIN, type RawMessage, type RawWatcher } from '../../native.js';
import { bootId, hasCode, Pidfd } from '../../pidfd/index.js';
import { RateLimitedLog, stderrLogger, type Logger } from '../rate-limited-log.js';
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

/** poll(2)'s POLLOUT, for waiting until the keeper's socket takes a message again. */
const POLLOUT = 0x4;
/**
 * How long one message may wait for room in the socket. The keeper does nothing but read, so one
 * that reads nothing for this long is hung (or stopped): it is ended and replaced like a dead one.
 */
const SEND_WAIT_MS = 10_000;
/** Keepers started in quick succession before the next start waits (a keeper that dies at once, again and again). */
const QUICK_STARTS = 3;
/** What counts as quick succession, and the first wait after it (doubled each time, up to {@link BACKOFF_MAX_MS}). */
const QUICK_WINDOW_MS = 10_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** How long a clean stop waits for the keeper to end before it leaves the manifest to the next start. */
const STOP_WAIT_MS = 2000;

/** Options of {@link Keeper.start}. */
export interface KeeperOptions {
  /** Where the keeper's loss and replacement are said (default: warnings and errors to stderr). */
  log?: Logger;
}

/** One running keeper process and the daemon's end of its socket. */
interface KeeperProcess {
  handle: Pidfd;
  socket: number;
  /** Fires once the keeper ends (its pidfd becomes readable). */
  watcher: RawWatcher | undefined;
}

/** Something the daemon has the keeper hold, with the daemon's own copy of the fd (to hand to a replacement). */
interface HeldCopy {
  item: HeldItem;
  fd: number;
}

/**
 * The daemon's keeper: a keeper process this daemon started, replaced whenever it dies. Every
 * item it holds is also known here, with a copy of its fd, so that a replacement is handed all of
 * it and committed (its manifest then names it) without the daemon's callers noticing: a send to a
 * keeper that is gone never throws.
 */
export class Keeper {
  readonly #manifestPath: string;
  readonly #limited: RateLimitedLog;
  readonly #held = new Map<string, HeldCopy>();
  #process: KeeperProcess | undefined;
  /** Set by {@link commit}: from then on each new keeper's manifest is the one that counts. */
  #committed = false;
  /** A previous keeper that still holds everything (not yet confirmed replaced); named in each commit until it is ended. */
  #retiring: Pidfd | undefined;
  #starts: number[] = [];
  #backoffMs = BACKOFF_FIRST_MS;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Set when a pause is over: one start may come before the next pause, however many came before it. */
  #pauseServed = false;
  #reviving = false;
  #stopped = false;

  private constructor(manifestPath: string, log: Logger) {
    this.#manifestPath = manifestPath;
    this.#limited = new RateLimitedLog(log, 'keeper: ', { burst: 5, intervalMs: 60_000 });
  }

  /** Starts a keeper in its own session; `manifestPath` is where it records what it holds. */
  static start(manifestPath: string, options: KeeperOptions = {}): Keeper {
    const keeper = new Keeper(manifestPath, options.log ?? stderrLogger);
    keeper.#revive();
    return keeper;
  }

  /** The keeper process holding everything now (it changes when one dies); undefined between a death and its replacement. */
  get handle(): Pidfd | undefined {
    return this.#process?.handle;
  }

  /** Gives the keeper a copy of `fd` under `item.key` (replacing an older one with that key). */
  hold(item: HeldItem, fd: number): void {
    if (this.#stopped) return;
    const older = this.#held.get(item.key);
    if (older !== undefined) closeQuietly(older.fd);
    this.#held.delete(item.key);
    let copy: number;
    try {
      copy = native.dup(fd, true);
    } catch (error) {
      // Out of fds: this keeper still gets it, a replacement would not.
      this.#limited.write('warning', `could not keep a copy of ${item.key} (${(error as Error).message}); a replacement keeper would not get it`);
      this.#send({ op: 'hold', item }, [fd]);
      return;
    }
    this.#held.set(item.key, { item, fd: copy });
    this.#send({ op: 'hold', item }, [copy]);
  }

  /** Lets the keeper close its copy. */
  drop(key: string): void {
    const copy = this.#held.get(key);
    if (copy === undefined) return;
    this.#held.delete(key);
    closeQuietly(copy.fd);
    this.#send({ op: 'drop', key });
  }

  /**
   * Makes the keeper's manifest the one a next daemon reads: until now the previous keeper's
   * manifest stood, and that keeper still holds everything, so a crash before this point loses
   * nothing. Waits (bounded) for the keeper to confirm, then ends `previous`. A keeper that dies
   * meanwhile is replaced and the commit made again with the new one.
   */
  commit(previous: Pidfd | undefined, timeoutMs = 5000): boolean {
    if (this.#stopped) return false;
    this.#committed = true;
    this.#retiring = previous;
    // Without a previous keeper there is nothing to confirm before ending: a replacement commits itself.
    if (previous === undefined) {
      this.#send(this.#commitMessage());
      return this.#process !== undefined;
    }
    for (let attempt = 0; attempt < QUICK_STARTS + 1; attempt++) {
      if (this.#process === undefined) this.#revive();
      const current = this.#process;
      if (current === undefined) return false;
      if (!this.#sendTo(current, this.#commitMessage())) continue;
      const answer = this.#syncWith(current, timeoutMs);
      if (answer === 'lost') continue;
      // Unconfirmed, the old keeper stays: its manifest still stands and it still holds everything.
      if (answer === 'timeout') return false;
      this.#retiring = undefined;
      retire(previous);
      return true;
    }
    return false;
  }

  /** Waits (synchronously, bounded) until the keeper has recorded everything sent so far; a keeper that dies meanwhile is replaced and asked again. */
  sync(timeoutMs = 5000): boolean {
    for (let attempt = 0; attempt < QUICK_STARTS + 1 && !this.#stopped; attempt++) {
      if (this.#process === undefined) this.#revive();
      const current = this.#process;
      if (current === undefined) return false;
      const answer = this.#syncWith(current, timeoutMs);
      if (answer !== 'lost') return answer === 'synced';
    }
    return false;
  }

  /**
   * Ends the keeper: the daemon is shutting down cleanly and nothing needs keeping. Once it has
   * ended, its manifest goes too, so that the next start does not look for a keeper that is gone.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    for (const copy of this.#held.values()) closeQuietly(copy.fd);
    this.#held.clear();
    const ended: Pidfd[] = [];
    const current = this.#process;
    this.#process = undefined;
    if (current !== undefined) {
      current.watcher?.close();
      closeQuietly(current.socket);
      ended.push(current.handle);
    }
    if (this.#retiring !== undefined) ended.push(this.#retiring);
    this.#retiring = undefined;
    let allEnded = true;
    for (const handle of ended) if (!endAndWait(handle)) allEnded = false;
    if (allEnded) removeManifest(this.#manifestPath);
    this.#limited.dispose();
  }

  /**
   * Lets go of the keeper without ending it, as a daemon that dies does: it goes on holding
   * everything, under its manifest, for the next daemon to take over. Returns its handle (the
   * caller's to close); nothing is replaced from now on.
   */
  release(): Pidfd | undefined {
    if (this.#stopped) return undefined;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    for (const copy of this.#held.values()) closeQuietly(copy.fd);
    this.#held.clear();
    this.#retiring = undefined;
    this.#limited.dispose();
    const current = this.#process;
    this.#process = undefined;
    if (current === undefined) return undefined;
    current.watcher?.close();
    closeQuietly(current.socket);
    return current.handle;
  }

  #commitMessage(): ToKeeper {
    const previous = this.#retiring;
    return { op: 'commit', retiring: previous === undefined || previous.id === undefined ? null : { pid: previous.pid, pidfdId: previous.id.toString() } };
  }

  /** Sends to the current keeper, if there is one; a keeper found gone is replaced. */
  #send(message: ToKeeper, fds: number[] = []): void {
    const current = this.#process;
    if (current !== undefined) this.#sendTo(current, message, fds);
  }

  /**
   * Sends one message to `target`; false when it is gone (then it is replaced). A keeper slow to
   * read gets a bounded wait for room; one that reads nothing for {@link SEND_WAIT_MS} is ended
   * and replaced, and the replacement gets everything, this message included.
   */
  #sendTo(target: KeeperProcess, message: ToKeeper, fds: number[] = []): boolean {
    const deadline = Date.now() + SEND_WAIT_MS;
    for (;;) {
      try {
        native.sendMessage(target.socket, encodeToKeeper(message), fds);
        return true;
      } catch (error) {
        if (hasCode(error, 'EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ENOTCONN')) {
          this.#lost(target, (error as NodeJS.ErrnoException).code!);
          return false;
        }
        if (!hasCode(error, 'EAGAIN')) throw error;
      }
      const left = deadline - Date.now();
      if (left <= 0 || native.pollFd(target.socket, POLLOUT, left) === 0) {
        try {
          target.handle.signal('SIGKILL');
        } catch (error) {
          if (!hasCode(error, 'ESRCH')) throw error;
        }
        this.#lost(target, `it read nothing for ${SEND_WAIT_MS / 1000} s and was ended`);
        return false;
      }
    }
  }

  /** Asks `target` to confirm and waits for its answer. */
  #syncWith(target: KeeperProcess, timeoutMs: number): 'synced' | 'timeout' | 'lost' {
    if (!this.#sendTo(target, { op: 'sync' })) return 'lost';
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || native.pollFd(target.socket, POLLIN, left) === 0) return 'timeout';
      let reply: RawMessage | null;
      try {
        reply = native.receiveMessage(target.socket, MAX_MESSAGE_BYTES);
      } catch (error) {
        if (!hasCode(error, 'ECONNRESET')) throw error;
        this.#lost(target, 'ECONNRESET');
        return 'lost';
      }
      if (reply === null) continue;
      for (const fd of reply.fds) native.close(fd);
      if (reply.data.length === 0) {
        this.#lost(target, 'its socket closed');
        return 'lost';
      }
      try {
        if (decodeFromKeeper(reply.data).op === 'synced') return 'synced';
      } catch (error) {
        // Not an answer: the keeper says nothing else, so wait on for the one that is.
        if (!(error instanceof KeeperProtocolError)) throw error;
      }
    }
  }

  /** `target` is gone: said once, and a new keeper takes everything over. */
  #lost(target: KeeperProcess, why: string): void {
    if (this.#process !== target) return;
    this.#process = undefined;
    target.watcher?.close();
    closeQuietly(target.socket);
    target.handle.close();
    if (this.#stopped) return;
    this.#limited.write('warning', `the keeper (PID ${target.handle.pid}) is gone (${why}); a new one takes over the ${this.#held.size} fd(s) it held`);
    if (!this.#reviving) this.#revive();
  }

  /**
   * Starts keepers until one holds everything. One that dies at once, again and again, is not
   * restarted in a tight loop: after {@link QUICK_STARTS} starts within {@link QUICK_WINDOW_MS},
   * the next waits, longer each time, and the daemon goes on meanwhile.
   */
  #revive(): void {
    if (this.#stopped || this.#reviving || this.#process !== undefined || this.#retryTimer !== undefined) return;
    this.#reviving = true;
    try {
      while (this.#process === undefined && !this.#stopped) {
        const now = Date.now();
        this.#starts = this.#starts.filter((at) => now - at < QUICK_WINDOW_MS);
        if (this.#starts.length >= QUICK_STARTS && !this.#pauseServed) {
          const wait = this.#backoffMs;
          this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS);
          this.#limited.write('error', `the keeper keeps ending at once; trying again in ${wait} ms (until then a daemon crash loses what it held)`);
          this.#retryTimer = setTimeout(() => {
            this.#retryTimer = undefined;
            this.#pauseServed = true;
            this.#revive();
          }, wait);
          this.#retryTimer.unref();
          return;
        }
        this.#pauseServed = false;
        this.#starts.push(now);
        let started: KeeperProcess;
        try {
          started = spawnKeeper(this.#manifestPath);
        } catch (error) {
          this.#limited.write('error', `could not start a keeper: ${(error as Error).message}`);
          continue;
        }
        this.#process = started;
        this.#handOver(started);
      }
      if (this.#process !== undefined && this.#starts.length < QUICK_STARTS) this.#backoffMs = BACKOFF_FIRST_MS;
    } finally {
      this.#reviving = false;
    }
  }

  /** Hands a new keeper everything held, commits it if the daemon has committed, and watches for its end. */
  #handOver(target: KeeperProcess): void {
    try {
      target.watcher = native.watch(target.handle.fd, (readable, hangup, status) => {
        if (readable || hangup || status !== 0) this.#lost(target, 'it ended');
      });
      target.watcher.ref(false);
    } catch (error) {
      // Unwatched, its end is still found on the next send.
      this.#limited.write('warning', `cannot watch the keeper (PID ${target.handle.pid}): ${(error as Error).message}`);
    }
    for (const copy of this.#held.values()) {
      if (!this.#sendTo(target, { op: 'hold', item: copy.item }, [copy.fd])) return;
    }
    if (this.#committed) this.#sendTo(target, this.#commitMessage());
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

/** Starts one keeper process in its own session, its socket on fd 3. */
function spawnKeeper(manifestPath: string): KeeperProcess {
  const [ours, theirs] = native.socketPair('seqpacket');
  let devNull: number | undefined;
  try {
    devNull = openSync('/dev/null', 'r+');
    const spawned = native.spawn({
      file: process.execPath,
      argv: [process.execPath, KEEPER_SCRIPT, manifestPath],
      env: Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`),
      fds: [devNull, devNull, 2, theirs],
      session: 'setsid',
    });
    return { handle: Pidfd.adopt(spawned.pidfd, { pid: spawned.pid }), socket: ours, watcher: undefined };
  } catch (error) {
    closeQuietly(ours);
    throw error;
  } finally {
    if (devNull !== undefined) closeSync(devNull);
    closeQuietly(theirs);
  }
}

/** Ends a keeper at a clean stop and waits (bounded) until it has; true once it has ended. */
function endAndWait(keeper: Pidfd): boolean {
  // Closed: ended already, by whoever closed it (Keeper.retire).
  if (keeper.closed) return true;
  try {
    keeper.signal('SIGTERM');
    return native.pollFd(keeper.fd, POLLIN, STOP_WAIT_MS) !== 0;
  } catch (error) {
    if (!hasCode(error, 'ESRCH')) throw error;
    return true;
  } finally {
    keeper.close();
  }
}

/** Removes the manifest of keepers that have ended: nothing it names is held any more. */
function removeManifest(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}

function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    // Already closed: nothing to release.
  }
}
