/**
 * A scope (`holdfast run --scope`) as a pure state machine: processes started elsewhere, handed to
 * the unit at once. It runs nothing itself; it is active while any of them lives, the first still
 * alive stands as its main process, and a stop signals each (and whatever else belongs to the
 * unit), escalating to FinalKillSignal= after TimeoutStopSec=.
 */
import type { ExitStatus } from '../../pidfd/index.js';
import { signalName } from '../../pidfd/index.js';
import type { ServiceSection } from '../../unit/index.js';
import type { LastExit, ServiceResult } from '../types.js';
import type { ProcessSlot, ServiceEffect } from './service-protocol.js';
import { describeStatus } from './service-policy.js';
import { activeStateOf } from './service-states.js';

/** One process of the scope. */
export interface ScopeMember {
  readonly slot: ProcessSlot;
  readonly pid: number;
  readonly pidfdId: string | null;
}

/** The scope's sub states: a subset of a service's. */
export type ScopeSubState = 'dead' | 'running' | 'stop-sigterm' | 'stop-sigkill' | 'failed';

export interface ScopeMachineState {
  readonly sub: ScopeSubState;
  readonly result: ServiceResult;
  /** The processes still alive, in the order they were handed over; the first is the main process. */
  readonly members: readonly ScopeMember[];
  readonly nextSlot: number;
  readonly invocationId: string | null;
  readonly lastExit: LastExit | null;
  /** A stop job waits for its answer. */
  readonly stopJob: boolean;
  /** The unit's other processes (cgroup or session members) are gone, in a stop. */
  readonly othersGone: boolean;
  readonly timeoutGeneration: number | null;
  readonly timerGeneration: number;
}

export type ScopeEvent = (
  | { readonly type: 'adopt'; readonly processes: readonly { readonly pid: number; readonly pidfdId: string | null }[]; readonly invocationId: string }
  | { readonly type: 'stop' }
  | { readonly type: 'exited'; readonly slot: ProcessSlot; readonly status: ExitStatus }
  | { readonly type: 'timer-fired'; readonly timer: 'timeout'; readonly generation: number }
  | { readonly type: 'members-gone' }
) & { readonly now: number };

export type ScopeEffect =
  /** The processes handed over with `adopt`, in order, are these slots from now on: watch their exits. */
  | { readonly type: 'adopt-members'; readonly slots: readonly ProcessSlot[] }
  /** One signal to one process of the scope through its pidfd. */
  | { readonly type: 'signal-process'; readonly slot: ProcessSlot; readonly signal: number; readonly thenCont?: boolean; readonly thenHup?: boolean }
  | Extract<ServiceEffect, { type: 'signal-members' | 'watch-members' | 'unwatch-members' | 'release' | 'arm-timer' | 'cancel-timer' | 'persist' | 'emit-state' | 'log' | 'job-done' }>;

export function initialScopeState(): ScopeMachineState {
  return { sub: 'dead', result: 'success', members: [], nextSlot: 1, invocationId: null, lastExit: null, stopJob: false, othersGone: false, timeoutGeneration: null, timerGeneration: 0 };
}

/** The scope's main process: the first of its processes still alive. */
export function scopeMain(state: ScopeMachineState): ScopeMember | null {
  return state.members[0] ?? null;
}

type Draft = { -readonly [K in keyof ScopeMachineState]: ScopeMachineState[K] };

/** Takes one event: the next state and the effects to run, in order. */
export function scopeStep(service: ServiceSection, state: ScopeMachineState, event: ScopeEvent): { state: ScopeMachineState; effects: ScopeEffect[] } {
  const s: Draft = { ...state };
  const effects: ScopeEffect[] = [];
  const enter = (sub: ScopeSubState): void => {
    if (s.sub === sub) return;
    s.sub = sub;
    effects.push({ type: 'emit-state', activeState: activeStateOf(sub), subState: sub, result: s.result });
  };
  const cancelTimeout = (): void => {
    if (s.timeoutGeneration === null) return;
    s.timeoutGeneration = null;
    effects.push({ type: 'cancel-timer', timer: 'timeout' });
  };
  const finishStop = (): void => {
    if (s.members.length > 0 || !s.othersGone) return;
    cancelTimeout();
    enter(s.result === 'success' ? 'dead' : 'failed');
    if (s.stopJob) effects.push({ type: 'job-done', job: 'stop', result: 'done' });
    s.stopJob = false;
  };
  const signalAll = (signal: number, polite: boolean): void => {
    const thenCont = signal !== 9 && signal !== 18;
    const thenHup = polite && service.sendSighup;
    for (const member of s.members) effects.push({ type: 'signal-process', slot: member.slot, signal, thenCont, thenHup });
    effects.push({ type: 'signal-members', signal, except: 'none', thenCont, thenHup });
  };

  switch (event.type) {
    case 'adopt': {
      if (s.sub !== 'dead' && s.sub !== 'failed') break;
      const members = event.processes.map((p, i) => ({ slot: state.nextSlot + i, pid: p.pid, pidfdId: p.pidfdId }));
      s.members = members;
      s.nextSlot = state.nextSlot + members.length;
      s.invocationId = event.invocationId;
      s.result = 'success';
      effects.push({ type: 'adopt-members', slots: members.map((m) => m.slot) });
      enter(members.length > 0 ? 'running' : 'dead');
      break;
    }
    case 'exited': {
      const index = s.members.findIndex((m) => m.slot === event.slot);
      if (index < 0) break;
      const member = s.members[index]!;
      s.members = s.members.filter((m) => m.slot !== event.slot);
      effects.push({ type: 'log', level: 'info', text: `scope process ${member.pid} ${describeStatus(event.status)}` });
      if (index === 0) s.lastExit = { code: event.status.code, signal: event.status.signal };
      if (s.sub === 'running' && s.members.length === 0) enter('dead');
      else if (s.sub === 'stop-sigterm' || s.sub === 'stop-sigkill') finishStop();
      break;
    }
    case 'stop': {
      if (s.sub === 'stop-sigterm' || s.sub === 'stop-sigkill') {
        s.stopJob = true;
        break;
      }
      if (s.sub !== 'running') {
        effects.push({ type: 'job-done', job: 'stop', result: 'done' });
        break;
      }
      s.stopJob = true;
      s.othersGone = false;
      enter('stop-sigterm');
      signalAll(service.killSignal, true);
      effects.push({ type: 'watch-members', except: 'none' });
      if (Number.isFinite(service.timeoutStopMs)) {
        s.timeoutGeneration = ++s.timerGeneration;
        effects.push({ type: 'arm-timer', timer: 'timeout', ms: service.timeoutStopMs, generation: s.timeoutGeneration });
      }
      break;
    }
    case 'members-gone':
      if (s.sub !== 'stop-sigterm' && s.sub !== 'stop-sigkill') break;
      s.othersGone = true;
      finishStop();
      break;
    case 'timer-fired': {
      if (event.generation !== s.timeoutGeneration) break;
      s.timeoutGeneration = null;
      if (s.sub === 'stop-sigterm') {
        effects.push({
          type: 'log',
          level: 'warning',
          text: `processes still running after TimeoutStopSec=; ${service.sendSigkill ? `sending ${signalName(service.finalKillSignal)}` : 'leaving them (SendSIGKILL=no)'}`,
        });
        s.result = 'timeout';
        if (service.sendSigkill) {
          enter('stop-sigkill');
          signalAll(service.finalKillSignal, false);
          s.timeoutGeneration = ++s.timerGeneration;
          effects.push({ type: 'arm-timer', timer: 'timeout', ms: service.timeoutStopMs, generation: s.timeoutGeneration });
          break;
        }
      } else if (s.sub === 'stop-sigkill') {
        effects.push({ type: 'log', level: 'error', text: 'processes survived the final kill signal; giving up on them' });
      } else {
        break;
      }
      // Given up: the scope is failed; what is left is no longer waited for.
      for (const member of s.members) effects.push({ type: 'release', slot: member.slot });
      s.members = [];
      s.othersGone = true;
      effects.push({ type: 'unwatch-members' });
      finishStop();
      break;
    }
  }
  if (JSON.stringify([s.sub, s.result, s.members, s.lastExit, s.invocationId]) !== JSON.stringify([state.sub, state.result, state.members, state.lastExit, state.invocationId])) {
    effects.push({ type: 'persist' });
  }
  return { state: s, effects };
}
