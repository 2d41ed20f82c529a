/**
 * `holdfast/service`: what a program run by a service manager (holdfast or systemd) needs.
 *
 * ```ts
 * import { listenFds, listenOn, ready, startWatchdog, mainProcess } from 'holdfast/service';
 * const server = http.createServer(handler);
 * await listenOn(server, 'web');              // socket activation ($LISTEN_FDS)
 * ready('serving');                           // READY=1 + STATUS=
 * const stopWatchdog = startWatchdog();       // WATCHDOG=1 at half of $WATCHDOG_USEC
 * ```
 *
 * Every PID the environment names is opened and checked against its pidfd id, so a recycled PID is
 * refused (`ESTALE`) rather than trusted. Imports nothing of the manager.
 * @packageDocumentation
 */
export { managerProcess, isDirectChildOfManager } from './manager.js';
export { mainProcess } from './main-process.js';
export type { ProcessFromEnvironmentOptions } from './verified-process.js';
export {
  notify,
  formatNotifyMessage,
  notifyTarget,
  monotonicUsec,
  ready,
  reloading,
  stopping,
  status,
  errno,
  mainPid,
  watchdog,
  watchdogTrigger,
  watchdogTimeout,
  extendTimeout,
  restartReset,
  notifyAccess,
  fdStore,
  fdStoreRemove,
  checkFdName,
  closeNotifySocket,
  parseNotifySocket,
  NOTIFY_MESSAGE_MAX,
  NOTIFY_FDS_MAX,
  type NotifyValue,
  type NotifyFields,
  type NotifyMessage,
  type NotifyOptions,
  type NotifyHelperOptions,
  type NotifyResult,
  type NotifyAddress,
} from './notify.js';
export { barrier } from './barrier.js';
export { watchdogInterval, startWatchdog, type WatchdogIntervalOptions, type StartWatchdogOptions, type WatchdogStopper } from './watchdog.js';
export {
  listenFds,
  inspectListenFds,
  listenOn,
  LISTEN_FDS_START,
  type ListenFd,
  type ListenFdsOptions,
  type ListenFdsResult,
  type ListenOnOptions,
} from './listen-fds.js';
export { ownPidfdId } from './self.js';
export type { Environment } from './env.js';
export { Pidfd } from '../pidfd/pidfd.js';
