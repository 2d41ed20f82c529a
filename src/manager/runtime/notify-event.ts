/**
 * Turns a notify datagram into the machine's `notify` event. The one part that needs the world is
 * a `MAINPID=`/`MAINPIDFD=1` claim: the process port opens and checks the candidate first, and the
 * driver holds it while the machine decides (an `adopt` effect takes it, else it is let go).
 */
import type { ServiceEventBody } from '../machines/service-protocol.js';
import { MAINPID_STATES } from '../machines/service-states.js';
import type { SubState } from '../types.js';
import type { ClockPort, HeldProcess, MainPidClaim, ProcessPort } from './ports.js';

/** The parts of a notify datagram a unit reads (the notify server's message satisfies it). */
export interface NotifyInput {
  readonly assignments: readonly (readonly [string, string])[];
  /** Takes the attached fds: the caller owns them from here on. */
  takeFds(): number[];
  readonly sender: { readonly pid: number; readonly uid: number };
}

type NotifyEvent = Extract<ServiceEventBody, { type: 'notify' }>;

/** The event for a datagram, and the candidate main process it named, if one could be opened and checked. */
export function notifyEvent(
  message: NotifyInput,
  origin: NotifyEvent['origin'],
  context: { sub: SubState; control: HeldProcess | undefined; processes: ProcessPort; clock: ClockPort },
): { body: NotifyEvent; candidate: HeldProcess | undefined } {
  const fields: Record<string, string> = {};
  // The last of repeated keys counts, as sd_notify's readers do.
  for (const [key, value] of message.assignments) fields[key] = value;
  // Outside the states that take a new main process the claim is not even opened (its fds stay with the message).
  const claim: MainPidClaim | undefined = !MAINPID_STATES.has(context.sub)
    ? undefined
    : fields['MAINPIDFD'] === '1'
      ? { kind: 'pidfd', fds: message.takeFds() }
      : fields['MAINPID'] !== undefined
        ? { kind: 'pid', pid: fields['MAINPID'], pidfdId: fields['MAINPIDFDID'] }
        : undefined;
  let mainPid: NotifyEvent['mainPid'];
  let candidate: HeldProcess | undefined;
  if (claim !== undefined) {
    const outcome = context.processes.claimMain(claim, message.sender.uid, context.control);
    if (outcome.ok) {
      candidate = outcome.process;
      mainPid = { accepted: true, pid: candidate.pid, pidfdId: candidate.pidfdId };
    } else {
      mainPid = { accepted: false, reason: outcome.reason };
    }
  }
  const body: NotifyEvent = {
    type: 'notify',
    origin,
    senderPid: message.sender.pid,
    fields,
    monotonicUsec: context.clock.monotonicUsec(),
    ...(mainPid === undefined ? {} : { mainPid }),
  };
  return { body, candidate };
}
