/**
 * Crash survival for the service machine: the record a daemon writes, and the machine a new daemon
 * builds from it. Restoring never resumes in the middle of anything: it builds the state the
 * record describes (processes found alive get fresh slots, timeouts count from now), and what
 * happened while no daemon watched comes back as ordinary events, fed right after.
 */
import { UNKNOWN_EXIT, type ExitStatus, type ProcessIdJson } from '../../pidfd/index.js';
import type { ServiceUnitConfig } from '../../unit/index.js';
import type { ControlRecord, SubState, UnitRecord } from '../types.js';
import type { ProcessSlot, ServiceEffect, ServiceEventBody } from './service-protocol.js';
import { ACTIVE_STATE_OF, CONTROL_STATES, KILLING_STATES, MAIN_PROCESS_STATES, activeStateOf } from './service-states.js';
import { controlTimeoutMs, StepContext } from './service-context.js';
import { describeStatus } from './service-policy.js';
import { draftOf, initialServiceState, type ServiceMachineState } from './service-state.js';
import { enterCondition, enterRunning, enterStart, enterStartPost, readPidFile } from './service-start.js';
import { enterAutoRestart, enterSignal, enterStop, type KillState } from './service-stop.js';

/** What the driver knows for a record that the machine does not: references, wall-clock times, sessions. */
export interface RecordFacts {
  /** The reference to record for the process in a slot (boot id, PID, pidfd id), or null if none is held. */
  refOf(slot: ProcessSlot): ProcessIdJson | null;
  /** Wall-clock ms of the last entry into `active`. */
  readonly activeEnterTimestamp: number | null;
  readonly sessions: readonly number[];
  readonly transientText?: string;
}

/** The state record of a service machine. */
export function recordOf(config: ServiceUnitConfig, state: ServiceMachineState, facts: RecordFacts): UnitRecord {
  const main = state.main === null ? null : facts.refOf(state.main.slot);
  const control = state.control === null ? null : facts.refOf(state.control.slot);
  return {
    name: config.name,
    activeState: activeStateOf(state.sub),
    subState: state.sub,
    result: state.result,
    restarts: state.restarts,
    invocationId: state.invocationId,
    statusText: state.statusText,
    lastExit: state.lastExit,
    activeEnterTimestamp: facts.activeEnterTimestamp,
    main,
    control: control === null || state.control === null ? null : { process: control, kind: state.control.kind, index: state.control.index },
    manualStop: state.manualStop,
    mainIndex: state.main?.index ?? -1,
    watchdogUsec: state.watchdogUsec,
    notifyAccess: state.notifyAccess,
    sessions: [...facts.sessions],
    ...(facts.transientText === undefined ? {} : { transientText: facts.transientText }),
  };
}

/** What a new daemon found of a recorded process. */
export type FoundProcess =
  /** Verified and held again by the driver (it gets a new slot through an `adopt` effect). */
  | { readonly state: 'alive'; readonly pid: number; readonly pidfdId: string | null }
  /** Gone; `status` is how it ended where the kernel kept that, null when unknown. */
  | { readonly state: 'ended'; readonly status: ExitStatus | null }
  /** Cannot be verified (PID reused, no pidfd id, …): never signalled; its step counts as failed. */
  | { readonly state: 'lost'; readonly reason: string };

/** The recorded main and control processes, as found. A recorded process not described counts as lost. */
export interface FoundProcesses {
  readonly main?: FoundProcess;
  readonly control?: FoundProcess;
}

/** A machine rebuilt from a record: its state, the effects to run now, then the events to feed in order. */
export interface RestoreResult {
  readonly state: ServiceMachineState;
  readonly effects: readonly ServiceEffect[];
  /** What happened while no daemon watched (processes that ended), to feed with `serviceStep` right after the effects. */
  readonly meanwhile: readonly ServiceEventBody[];
}

function pidfdIdText(ref: ProcessIdJson): string | null {
  return ref.pidfdId === undefined ? null : String(ref.pidfdId);
}

/**
 * Builds the machine a record describes, at time `now`. A found process that gets no `adopt`
 * effect is not the unit's any more: the driver releases it.
 */
export function restoreServiceState(config: ServiceUnitConfig, record: UnitRecord, found: FoundProcesses, now: number): RestoreResult {
  const draft = draftOf(initialServiceState());
  draft.restarts = record.restarts;
  draft.invocationId = record.invocationId;
  draft.statusText = record.statusText;
  draft.lastExit = record.lastExit;
  draft.result = record.result;
  draft.watchdogUsec = record.watchdogUsec ?? Math.round(config.service.watchdogMs * 1000);
  draft.notifyAccess = record.notifyAccess ?? null;
  draft.manualStop = record.manualStop ?? record.activeState === 'deactivating';
  const c = new StepContext(config, draft, now);
  const meanwhile: ServiceEventBody[] = [];
  const sub: SubState = record.subState in ACTIVE_STATE_OF ? record.subState : record.activeState === 'failed' ? 'failed' : 'dead';
  // A unit restored into a kill phase signals its processes at once: one already gone (or lost) gets
  // no slot, so nothing is ever sent to it; its end is only noted.
  const signalsAtOnce = KILLING_STATES.has(sub) || ((sub === 'stop' || sub === 'stop-post') && (record.control ?? null) === null);

  // The control process's end is fed first: its step decides before the main process's exit does.
  // A process recorded for a state that has none (a record written by something else) is let go.
  if (record.control !== undefined && record.control !== null && CONTROL_STATES.has(sub)) {
    restoreControl(c, record.control, found.control ?? NOT_LOOKED_FOR, signalsAtOnce, meanwhile);
  }
  if (record.main !== null && MAIN_PROCESS_STATES.has(sub)) restoreMain(c, record, found.main ?? NOT_LOOKED_FOR, signalsAtOnce, meanwhile);

  resumeAt(c, sub);
  // The state a new daemon starts from is always told, even when the way to it passed none.
  const told = c.effects.filter((e) => e.type === 'emit-state').pop();
  if (told === undefined || told.subState !== c.s.sub) c.effects.push({ type: 'emit-state', activeState: activeStateOf(c.s.sub), subState: c.s.sub, result: c.s.result });
  return { state: c.s, effects: [...c.effects, { type: 'persist' }], meanwhile };
}

const NOT_LOOKED_FOR: FoundProcess = { state: 'lost', reason: 'it was not looked for' };

/** The status an `exited` event carries for a process found ended (UNKNOWN_EXIT when the kernel could not tell). */
function endStatus(f: FoundProcess): ExitStatus {
  return f.state === 'ended' && f.status !== null ? f.status : UNKNOWN_EXIT;
}

/**
 * The recorded control process: alive, it gets a new slot (adopted); ended or lost, its end is fed
 * as an event. Where the restored state signals at once, one that is gone gets no slot at all.
 */
function restoreControl(c: StepContext, at: ControlRecord, f: FoundProcess, signalsAtOnce: boolean, meanwhile: ServiceEventBody[]): void {
  if (signalsAtOnce && f.state !== 'alive') {
    c.log('info', `${at.kind} command ${at.process.pid} ${f.state === 'lost' ? `cannot be re-adopted (${f.reason}); it is left alone` : 'ended while no daemon was watching'}`);
    return;
  }
  const slot = c.s.nextSlot++;
  const pid = f.state === 'alive' ? f.pid : at.process.pid;
  c.s.control = { slot, pid, pidfdId: f.state === 'alive' ? f.pidfdId : pidfdIdText(at.process), kind: at.kind, index: at.index, timedOut: 0 };
  if (f.state === 'alive') {
    c.effects.push({ type: 'adopt', slot, role: 'control' });
    c.log('info', `re-adopted ${at.kind} command ${pid}${f.pidfdId === null ? '' : ` (pidfd id ${f.pidfdId})`}; waiting for it to end`);
    return;
  }
  if (f.state === 'lost') c.log('warning', `${at.kind} command ${pid} cannot be re-adopted (${f.reason}); it is left alone and its step counts as failed`);
  meanwhile.push({ type: 'exited', slot, status: endStatus(f), unwatched: true });
}

/** The recorded main process, as {@link restoreControl}; one that cannot be verified is taken as ended, how unknown. */
function restoreMain(c: StepContext, record: UnitRecord, f: FoundProcess, signalsAtOnce: boolean, meanwhile: ServiceEventBody[]): void {
  const recorded = record.main!;
  if (signalsAtOnce && f.state !== 'alive') {
    const status = endStatus(f);
    if (status.code !== null || status.signal !== null) c.s.lastExit = { code: status.code, signal: status.signal };
    c.log('warning', `main process ${recorded.pid} ${f.state === 'lost' ? `cannot be re-adopted (${f.reason}); it is left alone` : `${describeStatus(status)} while no daemon was watching`}`);
    return;
  }
  const slot = c.s.nextSlot++;
  const pid = f.state === 'alive' ? f.pid : recorded.pid;
  c.s.main = { slot, pid, pidfdId: f.state === 'alive' ? f.pidfdId : pidfdIdText(recorded), index: record.mainIndex ?? -1 };
  if (f.state === 'alive') {
    c.effects.push({ type: 'adopt', slot, role: 'main' });
    c.log('info', `re-adopted main process ${pid}${f.pidfdId === null ? '' : ` (pidfd id ${f.pidfdId})`}`);
    return;
  }
  meanwhile.push({ type: 'exited', slot, status: endStatus(f), unwatched: true });
}

/** Puts the machine in `sub` with what that state waits for armed again, counted from now. */
function resumeAt(c: StepContext, sub: SubState): void {
  const { s, service } = c;
  const lostWithoutMain = (): void => {
    c.enter(sub);
    c.log('warning', `was ${activeStateOf(sub)} (${sub}) without a main process when the daemon stopped; stopping what is left`);
    c.fail('resources');
    enterStop(c, false);
  };
  if (KILLING_STATES.has(sub)) {
    // The previous daemon was stopping it: the signals go out again and the timeout counts from now.
    return enterSignal(c, sub as KillState);
  }
  if (s.control !== null) {
    c.enter(sub);
    if (sub === 'stop' && s.control.kind !== 'stop') s.stopAfterControl = true;
    c.armTimeout(s.stopAfterControl ? service.timeoutStopMs : controlTimeoutMs(c.config, s.control.kind));
    return;
  }
  switch (sub) {
    case 'dead':
    case 'failed':
      c.enter(sub);
      return;
    case 'auto-restart':
      // It was waiting to be restarted: the restart still happens.
      return enterAutoRestart(c);
    case 'exited':
      c.enter('exited');
      c.armWatchdog();
      return;
    case 'running':
    case 'reload':
    case 'reload-signal':
    case 'reload-notify':
      // A reload's requester went with the old daemon: the unit is simply running.
      if (s.main === null) return lostWithoutMain();
      c.enter('running');
      c.armWatchdog();
      return;
    case 'condition':
      c.enter('condition');
      if (c.config.unit.conditions.length > 0) {
        s.checkingConditions = true;
        c.effects.push({ type: 'check-conditions' });
        return;
      }
      return enterCondition(c);
    case 'start':
      if (s.main === null) {
        if (service.type === 'forking' && service.pidFile !== undefined) {
          c.enter('start');
          c.armTimeout(service.timeoutStartMs);
          return readPidFile(c, service.pidFile);
        }
        return lostWithoutMain();
      }
      c.enter('start');
      // Still waiting for READY=1, an exit or a PID file: the start timeout counts from now.
      if (service.type === 'simple' || service.type === 'exec') return enterStartPost(c);
      c.armTimeout(service.timeoutStartMs);
      return;
    case 'start-pre':
      // Between two steps (nothing was running): on with the main process.
      c.enter('start-pre');
      return enterStart(c);
    case 'start-post':
      c.enter('start-post');
      return enterRunning(c);
    case 'stop':
      c.enter('stop');
      return enterSignal(c, 'stop-sigterm');
    case 'stop-post':
      c.enter('stop-post');
      return enterSignal(c, 'final-sigterm');
    default:
      return lostWithoutMain();
  }
}
