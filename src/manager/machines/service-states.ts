/**
 * The service's fine states and what follows from them. The sub state is the only state a service
 * machine stores; the coarse ActiveState is looked up here, as systemd's state_translation_table
 * does, so an inconsistent (active, sub) pair cannot be written.
 */
import type { ActiveState, SubState } from '../types.js';

/** systemd's state_translation_table for services. */
export const ACTIVE_STATE_OF: Readonly<Record<SubState, ActiveState>> = Object.freeze({
  dead: 'inactive',
  failed: 'failed',
  condition: 'activating',
  'start-pre': 'activating',
  start: 'activating',
  'start-post': 'activating',
  'auto-restart': 'activating',
  running: 'active',
  exited: 'active',
  reload: 'reloading',
  'reload-signal': 'reloading',
  'reload-notify': 'reloading',
  stop: 'deactivating',
  'stop-sigterm': 'deactivating',
  'stop-sigkill': 'deactivating',
  'stop-post': 'deactivating',
  'final-sigterm': 'deactivating',
  'final-sigkill': 'deactivating',
});

/** The ActiveState a sub state stands for. */
export function activeStateOf(sub: SubState): ActiveState {
  return ACTIVE_STATE_OF[sub];
}

const set = (...states: SubState[]): ReadonlySet<SubState> => new Set(states);

/** States in which a start job is under way (the unit is on its way up, not waiting for a restart). */
export const STARTING_STATES = set('condition', 'start-pre', 'start', 'start-post');

/** States in which the unit counts as started: a stop runs ExecStop=, a start is done at once. */
export const STARTED_STATES = set('running', 'exited', 'reload', 'reload-signal', 'reload-notify');

/** States of a reload. */
export const RELOADING_STATES = set('reload', 'reload-signal', 'reload-notify');

/** States of the stop sequence. */
export const STOPPING_STATES = set('stop', 'stop-sigterm', 'stop-sigkill', 'stop-post', 'final-sigterm', 'final-sigkill');

/** States in which signals are being sent and the machine waits for processes to end. */
export const KILLING_STATES = set('stop-sigterm', 'stop-sigkill', 'final-sigterm', 'final-sigkill');

/** States that may have a main process (systemd's SERVICE_STATE_WITH_MAIN_PROCESS, plus `start` for non-forking types). */
export const MAIN_PROCESS_STATES = set('start', 'start-post', 'running', 'reload', 'reload-signal', 'reload-notify', 'stop', 'stop-sigterm', 'stop-sigkill', 'stop-post', 'final-sigterm', 'final-sigkill');

/** States that may have a control process. */
export const CONTROL_STATES = set('condition', 'start-pre', 'start-post', 'reload', 'stop', 'stop-sigterm', 'stop-sigkill', 'stop-post', 'final-sigterm', 'final-sigkill');

/** States in which `MAINPID=`/`MAINPIDFD=1` is accepted. */
export const MAINPID_STATES = set('start', 'start-post', 'running', 'reload', 'reload-signal', 'reload-notify', 'stop', 'stop-sigterm');

/** States in which nothing runs and no timer but the restart timer is armed. */
export const RESTING_STATES = set('dead', 'failed', 'auto-restart');

/** Whether the unit is up (active or reloading): the watchdog and RuntimeMaxSec= apply. */
export function isUp(sub: SubState): boolean {
  return STARTED_STATES.has(sub);
}

/** Whether the unit is inactive or failed. */
export function isDown(sub: SubState): boolean {
  return sub === 'dead' || sub === 'failed';
}
