import { native, type RawProbe } from '../native.js';

/** What this kernel supports, found by trying each call once at first use (never by version number). */
export interface Features {
  /** `pidfd_open(2)`: a handle bound to one process (5.3). */
  pidfdOpen: boolean;
  /** `pidfd_send_signal(2)` (5.1). */
  pidfdSendSignal: boolean;
  /** `PIDFD_SIGNAL_PROCESS_GROUP`: signal a process group through its leader's pidfd (6.9). */
  signalProcessGroup: boolean;
  /** `waitid(P_PIDFD)` (5.4). */
  waitidPidfd: boolean;
  /** pidfs inode ids, unique for the whole boot (6.9). */
  pidfdIds: boolean;
  /** `name_to_handle_at(2)` on pidfds (6.14). */
  fileHandles: boolean;
  /** `PIDFD_GET_INFO` (6.13). */
  getInfo: boolean;
  /** `PIDFD_INFO_EXIT`: how a process ended, readable after it was reaped (6.15). */
  infoExit: boolean;
  /** `clone3(2)` with `CLONE_PIDFD` (5.3). */
  clone3: boolean;
  /** `pidfd_getfd(2)` (5.6). */
  pidfdGetfd: boolean;
  /** `SO_PEERPIDFD`: a pidfd for a Unix socket's peer (6.5). */
  peerPidfd: boolean;
  /** `SO_PASSPIDFD` / `SCM_PIDFD`: a pidfd for each datagram's sender (6.5). */
  passPidfd: boolean;
}

/** One row of `holdfast features`. */
export interface FeatureDescription {
  key: keyof Features;
  name: string;
  since: string;
  available: boolean;
  /** What holdfast does when the feature is missing. */
  without: string;
}

let probed: Features | undefined;

function fromProbe(raw: RawProbe): Features {
  return {
    pidfdOpen: raw.pidfdOpen,
    pidfdSendSignal: raw.pidfdSendSignal,
    signalProcessGroup: raw.signalProcessGroup,
    waitidPidfd: raw.waitidPidfd,
    pidfdIds: raw.pidfsIds,
    fileHandles: raw.fileHandles,
    getInfo: raw.getInfo,
    infoExit: raw.infoExit,
    clone3: raw.clone3,
    pidfdGetfd: raw.pidfdGetfd,
    peerPidfd: raw.peerPidfd,
    passPidfd: raw.passPidfd,
  };
}

/** The kernel features holdfast uses, probed once per process. */
export function features(): Readonly<Features> {
  probed ??= Object.freeze(fromProbe(native.probe()));
  return probed;
}

const table: Omit<FeatureDescription, 'available'>[] = [
  { key: 'pidfdOpen', name: 'pidfd_open', since: '5.3', without: 'no race-free handle exists: Pidfd.open throws ENOSYS and the daemon refuses to start rather than signal bare PIDs' },
  { key: 'pidfdSendSignal', name: 'pidfd_send_signal', since: '5.1', without: 'no race-free signal exists: Pidfd.signal throws ENOSYS and the daemon refuses to start rather than signal a bare PID' },
  { key: 'signalProcessGroup', name: 'PIDFD_SIGNAL_PROCESS_GROUP', since: '6.9', without: 'a service\'s other processes are signalled one by one, each through its own pidfd' },
  { key: 'waitidPidfd', name: 'waitid(P_PIDFD)', since: '5.4', without: 'children are reaped with waitid(P_ALL) on SIGCHLD' },
  { key: 'pidfdIds', name: 'pidfs ids', since: '6.9', without: 'MAINPIDFDID and MANAGERPIDFDID are not set; a PID is accepted unverified and every check says so' },
  { key: 'fileHandles', name: 'name_to_handle_at on pidfds', since: '6.14', without: 'the id comes from fstat(2) st_ino, which is the same number on 64-bit systems' },
  { key: 'getInfo', name: 'PIDFD_GET_INFO', since: '6.13', without: 'pid, parent and credentials are read from /proc/self/fdinfo and /proc/PID/status' },
  { key: 'infoExit', name: 'PIDFD_INFO_EXIT', since: '6.15', without: 'how a process that is not our child ended is unknown (reported as such); our own children are still exact' },
  { key: 'clone3', name: 'clone3 with CLONE_PIDFD', since: '5.3', without: 'services are started with fork and pidfd_open, still race-free because the daemon reaps its own children' },
  { key: 'pidfdGetfd', name: 'pidfd_getfd', since: '5.6', without: 'nothing holdfast needs today' },
  { key: 'peerPidfd', name: 'SO_PEERPIDFD', since: '6.5', without: 'API callers are identified by SO_PEERCRED and a pidfd opened right after' },
  { key: 'passPidfd', name: 'SO_PASSPIDFD / SCM_PIDFD', since: '6.5', without: 'notify senders are attributed by the PID in their credentials, as systemd does on such kernels' },
];

/** Every feature with whether it is here and what holdfast does without it. */
export function describeFeatures(): FeatureDescription[] {
  const have = features();
  return table.map((row) => ({ ...row, available: have[row.key] }));
}
