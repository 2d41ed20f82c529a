/**
 * The only module that touches the compiled addon: it loads it once and gives it types.
 * Everything above works with these typed functions, never with the binding object itself.
 */
import { createRequire } from 'node:module';

if (process.platform !== 'linux') {
  throw new Error(`holdfast works on Linux only (pidfds are a Linux kernel feature); this is ${process.platform}`);
}

/** A raw wait status decoded; `signal` is a number here, the pidfd layer names it. */
export interface RawExit {
  code: number | null;
  signal: number | null;
  coreDumped: boolean;
  status: number;
}

/** What `waitid()` reports about a child. */
export interface RawWaitResult extends RawExit {
  pid: number;
  uid: number;
}

/** The fields of `PIDFD_GET_INFO` that the kernel filled in (`mask` tells which). */
export interface RawPidfdInfo {
  mask: number;
  pid?: number;
  tgid?: number;
  ppid?: number;
  ruid?: number;
  rgid?: number;
  euid?: number;
  egid?: number;
  suid?: number;
  sgid?: number;
  fsuid?: number;
  fsgid?: number;
  cgroupId?: bigint;
  exit?: RawExit;
}

/** A received datagram and everything that came with it; every fd in it is now the caller's. */
export interface RawMessage {
  data: Buffer;
  truncated: boolean;
  controlTruncated: boolean;
  fds: number[];
  creds: { pid: number; uid: number; gid: number } | null;
  /** `SCM_PIDFD` (6.5+), or -1. */
  pidfd: number;
}

/** A poll watcher on the Node event loop. */
export interface RawWatcher {
  close(): void;
  ref(on: boolean): void;
}

/** What the kernel answered to each feature probe at load. */
export interface RawProbe {
  pidfdOpen: boolean;
  pidfdNonblock: boolean;
  pidfdSendSignal: boolean;
  signalProcessGroup: boolean;
  waitidPidfd: boolean;
  pidfsIds: boolean;
  fileHandles: boolean;
  getInfo: boolean;
  infoExit: boolean;
  pidfdGetfd: boolean;
  clone3: boolean;
  peerPidfd: boolean;
  passPidfd: boolean;
}

/** Everything the native spawn needs, already resolved: no lookups or defaults happen in C. */
export interface RawSpawnOptions {
  file: string;
  argv: string[];
  env: string[];
  cwd?: string;
  cwdOptional?: boolean;
  /** Child fd i becomes fds[i]; -1 or null leaves it closed. */
  fds: (number | null)[];
  uid?: number;
  gid?: number;
  groups?: number[];
  umask?: number;
  session?: 'setsid' | 'setpgid' | 'none';
  rlimits?: [resource: number, soft: number | bigint, hard: number | bigint][];
  /** Set LISTEN_PID and LISTEN_PIDFDID to the child's own values, in the child, before exec. */
  listenEnv?: boolean;
  /** Set WATCHDOG_PID to the child's own PID, in the child, before exec. */
  watchdogEnv?: boolean;
  /** Start the child inside this cgroup (`CLONE_INTO_CGROUP`). */
  cgroupFd?: number;
}

/** The addon's functions. Failures throw an `Error` whose `code` is the errno name. */
export interface NativeBinding {
  pidfdOpen(pid: number, nonblock?: boolean | number): number;
  pidfdSendSignal(fd: number, signal: number, flags?: number): void;
  pidfdId(fd: number): bigint | undefined;
  pidfdGetInfo(fd: number, wantExit?: boolean | number): RawPidfdInfo;
  pidfdGetfd(pidfd: number, targetFd: number): number;
  /** options: 1 = WNOHANG, 2 = WNOWAIT. */
  waitPidfd(fd: number, options?: number): RawWaitResult | null;
  reapAny(peek?: boolean | number): RawWaitResult | null;
  setChildSubreaper(on: boolean): void;
  getChildSubreaper(): boolean;
  close(fd: number): void;
  dup(fd: number, cloexec?: boolean | number): number;
  setCloexec(fd: number, on: boolean): void;
  pipe(nonblockRead?: boolean | number): [number, number];
  pollFd(fd: number, events: number, timeoutMs: number): number;
  /** Moves up to `maxBytes` from a pipe into a file at `fileOffset` (splice); 0 at EOF, null while the pipe is empty. */
  spliceToFile(pipeFd: number, fileFd: number, fileOffset: number, maxBytes: number): number | null;
  socket(type: 'dgram' | 'stream' | 'seqpacket'): number;
  socketPair(type: 'dgram' | 'stream' | 'seqpacket'): [number, number];
  bind(fd: number, address: Buffer): void;
  connect(fd: number, address: Buffer): void;
  setSockOpt(fd: number, name: 'SO_PASSCRED' | 'SO_PASSPIDFD' | 'SO_RCVBUF' | 'SO_SNDBUF' | 'SO_RCVBUFFORCE', value: number): void;
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  peerPidfd(fd: number): number;
  sendMessage(
    fd: number,
    data: Buffer,
    fds?: number[] | null,
    creds?: { pid?: number; uid?: number; gid?: number } | null,
    address?: Buffer | null,
  ): number;
  receiveMessage(fd: number, maxBytes: number): RawMessage | null;
  watch(fd: number, callback: (readable: boolean, hangup: boolean, status: number) => void, wantHangup?: boolean): RawWatcher;
  spawn(options: RawSpawnOptions): { pid: number; pidfd: number };
  /** Replaces this process image; returns only by throwing. */
  execve(file: string, argv: string[], env: string[]): never;
  probe(): RawProbe;
}

/** poll(2) event bits, for `pollFd`. */
export const POLLIN = 0x1;
export const POLLHUP = 0x10;

/** pidfd_send_signal(2) flags (6.9+). */
export const PIDFD_SIGNAL_PROCESS_GROUP = 4;

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const candidates = ['../../build/Release/holdfast.node', '../build/Release/holdfast.node'];
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      return require(candidate) as NativeBinding;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
      firstError ??= error;
    }
  }
  throw new Error(
    'holdfast: the native addon is not built (build/Release/holdfast.node is missing); run `npm install` or `npm run build` in the package',
    { cause: firstError },
  );
}

/** The loaded addon. */
export const native: NativeBinding = load();
