/**
 * Fake ports for driving a real ServiceUnit (driver + machine) with no process and no sleep: a
 * process table the test drives by hand ("PID 12 exited with 1") and a clock it advances, as
 * dinit's bp_sys and advance_time do.
 */
import type { ExitStatus, Pidfd, ProcessIdJson } from '../../src/pidfd/index.js';
import { parseServiceUnitText, type ServiceUnitConfig } from '../../src/unit/index.js';
import type { SpawnProtocolEnv } from '../../src/manager/machines/service-protocol.js';
import type {
  ClaimOutcome,
  ClockPort,
  HeldProcess,
  MainPidClaim,
  PortedUnit,
  ProcessPort,
  SpawnOutcome,
  SpawnRequest,
  UnitHost,
  UnitPorts,
} from '../../src/manager/runtime/ports.js';
import type { ActiveState, ServiceResult, SubState } from '../../src/manager/types.js';

/** A process of the fake table. */
export interface FakeProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  /** Which list it was spawned from ('main' for ExecStart=), or 'held' for one taken from elsewhere. */
  readonly kind: string;
  readonly env: SpawnProtocolEnv | undefined;
  /** Signals sent to it, in order. */
  readonly signals: number[];
  alive: boolean;
  /** Handles the driver released (closed) for it. */
  released: number;
}

/** The fake process table: spawn assigns PIDs; the test says which exit, and how. */
export class FakeProcessTable {
  readonly processes = new Map<number, FakeProcess>();
  /** Every spawn request, in order. */
  readonly spawns: FakeProcess[] = [];
  /** The unit's other processes (not main, not control): a list the test controls. */
  readonly members = new Set<number>();
  /** What PIDFile= paths contain. */
  readonly pidFiles = new Map<string, number>();
  /** Signals sent to members, as [pid, signal]. */
  readonly memberSignals: [number, number][] = [];
  readonly sessions = new Set<number>();
  #nextPid = 100;
  readonly #exitWatchers = new Map<number, (status: ExitStatus) => void>();
  readonly #goneWatchers = new Set<{ except: Set<number>; onGone: () => void }>();
  #failNext: { exitCode: number; result: 'exit-code' | 'resources'; message: string } | undefined;

  /** The next spawn fails as if exec failed (203) or, with `resources`, as if an EnvironmentFile= were missing. */
  failNextSpawn(exitCode = 203, result: 'exit-code' | 'resources' = 'exit-code', message = 'no such file'): void {
    this.#failNext = { exitCode, result, message };
  }

  /** Puts a process in the table (alive), e.g. one a previous daemon recorded. */
  add(pid: number, kind = 'held'): FakeProcess {
    const process: FakeProcess = { pid, argv: [], kind, env: undefined, signals: [], alive: true, released: 0 };
    this.processes.set(pid, process);
    return process;
  }

  /** The process with that PID; throws if there is none. */
  get(pid: number): FakeProcess {
    const process = this.processes.get(pid);
    if (process === undefined) throw new Error(`no fake process ${pid}`);
    return process;
  }

  /** The last process spawned. */
  get last(): FakeProcess {
    const process = this.spawns.at(-1);
    if (process === undefined) throw new Error('nothing was spawned');
    return process;
  }

  /** "PID 12 exited with 1" (a number), or was killed by a signal (`{ signal: 'SIGTERM' }`). */
  exit(pid: number, how: number | { signal: string; coreDumped?: boolean }): void {
    const process = this.get(pid);
    if (!process.alive) throw new Error(`fake process ${pid} has exited already`);
    process.alive = false;
    this.members.delete(pid);
    const status: ExitStatus = typeof how === 'number' ? { code: how, signal: null, coreDumped: false } : { code: null, signal: how.signal, coreDumped: how.coreDumped ?? false };
    const watcher = this.#exitWatchers.get(pid);
    this.#exitWatchers.delete(pid);
    watcher?.(status);
    this.#checkGone();
  }

  /** A member process of the unit (a child the service forked). */
  addMember(pid: number): FakeProcess {
    this.members.add(pid);
    return this.add(pid, 'member');
  }

  #held(process: FakeProcess): HeldProcess {
    const table = this;
    let released = false;
    return {
      pid: process.pid,
      pidfdId: String(process.pid * 1000),
      ref: (): ProcessIdJson => ({ pid: process.pid, pidfdId: process.pid * 1000 }),
      signal(signal: number) {
        if (released || !process.alive) return false;
        process.signals.push(signal);
        return true;
      },
      release() {
        if (released) return;
        released = true;
        process.released++;
        table.#exitWatchers.delete(process.pid);
      },
    };
  }

  #checkGone(): void {
    for (const watch of [...this.#goneWatchers]) {
      if ([...this.members].every((pid) => watch.except.has(pid))) {
        this.#goneWatchers.delete(watch);
        watch.onGone();
      }
    }
  }

  /** The process port of one unit over this table. */
  port(): ProcessPort {
    const table = this;
    return {
      sessions: table.sessions,
      isMember(handle: Pidfd) {
        return table.members.has(handle.pid) && table.processes.get(handle.pid)?.alive === true;
      },
      newInvocation() {
        table.sessions.clear();
      },
      spawn(request: SpawnRequest): SpawnOutcome {
        const failure = table.#failNext;
        table.#failNext = undefined;
        if (failure !== undefined) return { ok: false, ...failure };
        const pid = table.#nextPid++;
        const process: FakeProcess = { pid, argv: request.command.argv, kind: request.kind, env: request.env, signals: [], alive: true, released: 0 };
        table.processes.set(pid, process);
        table.spawns.push(process);
        table.sessions.add(pid);
        return { ok: true, process: table.#held(process) };
      },
      watchExit(process: HeldProcess, onExit: (status: ExitStatus) => void) {
        table.#exitWatchers.set(process.pid, onExit);
      },
      signalMembers(signal: number, except: readonly HeldProcess[]) {
        const excluded = new Set(except.map((p) => p.pid));
        let sent = 0;
        for (const pid of table.members) {
          if (excluded.has(pid) || !table.get(pid).alive) continue;
          table.memberSignals.push([pid, signal]);
          table.get(pid).signals.push(signal);
          sent++;
        }
        return sent;
      },
      watchMembers(except: readonly HeldProcess[], onGone: () => void) {
        const watch = { except: new Set(except.map((p) => p.pid)), onGone };
        table.#goneWatchers.add(watch);
        table.#checkGone();
        return () => table.#goneWatchers.delete(watch);
      },
      claimMain(claim: MainPidClaim, _senderUid: number, control: HeldProcess | undefined): ClaimOutcome {
        if (claim.kind !== 'pid') return { ok: false, reason: 'the fake table takes MAINPID= only' };
        const process = table.processes.get(Number(claim.pid));
        if (process === undefined || !process.alive) return { ok: false, reason: `new main PID ${claim.pid} refused: it is gone or a zombie` };
        if (control?.pid === process.pid) return { ok: false, reason: `new main PID ${claim.pid} refused: it is the current control process` };
        return { ok: true, process: table.#held(process) };
      },
      readPidFile(path: string) {
        const pid = table.pidFiles.get(path);
        if (pid === undefined) return { ok: false, reason: `PID file ${path} not readable after start`, retry: true } as const;
        const process = table.processes.get(pid);
        if (process === undefined || !process.alive) return { ok: false, reason: `PID file ${path} names PID ${pid}: gone` };
        return { ok: true, process: table.#held(process) };
      },
      hold(handle: Pidfd) {
        const process = table.processes.get(handle.pid) ?? table.add(handle.pid);
        return table.#held(process);
      },
      adoptSession(process: HeldProcess) {
        table.sessions.add(process.pid);
      },
    };
  }
}

/** A clock the test advances by hand; timers fire in order of their deadlines. */
export class ManualClock implements ClockPort {
  #now = 0;
  readonly #timers: { due: number; seq: number; fire: () => void }[] = [];
  #seq = 0;
  /** Wall-clock time at `now() === 0`. */
  readonly wallBase = 1_700_000_000_000;

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.wallBase + this.#now;
  }

  monotonicUsec(): bigint {
    return BigInt(Math.round(this.#now * 1000));
  }

  arm(ms: number, fire: () => void): () => void {
    if (!Number.isFinite(ms)) return () => {};
    const timer = { due: this.#now + Math.max(0, ms), seq: this.#seq++, fire };
    this.#timers.push(timer);
    return () => {
      const i = this.#timers.indexOf(timer);
      if (i >= 0) this.#timers.splice(i, 1);
    };
  }

  /** How many timers are armed. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time on by `ms`, firing every timer that falls due, in order (0 fires what is due now). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.#timers.splice(this.#timers.indexOf(due), 1);
      this.#now = Math.max(this.#now, due.due);
      due.fire();
    }
    this.#now = target;
  }
}

/** What the unit reported: state changes, log lines, persist requests. */
export class RecordedEvents {
  readonly states: { activeState: ActiveState; subState: SubState; result: ServiceResult }[] = [];
  readonly logs: { level: string; text: string }[] = [];
  persists = 0;

  /** The sub states entered, in order. */
  get subStates(): SubState[] {
    return this.states.map((s) => s.subState);
  }
}

/** One unit's fake world. */
export class FakeWorld implements UnitHost {
  readonly table = new FakeProcessTable();
  readonly clock = new ManualClock();
  readonly events = new RecordedEvents();
  /** The failed condition to report, or null. */
  failedCondition: string | null = null;

  portsFor(_unit: PortedUnit): UnitPorts {
    const events = this.events;
    return {
      processes: this.table.port(),
      clock: this.clock,
      conditions: () => this.failedCondition,
      events: {
        persist: () => {
          events.persists++;
        },
        state: (change) => {
          events.states.push({ ...change });
        },
        log: (level, text) => {
          events.logs.push({ level, text });
        },
      },
    };
  }
}

/** A unit's configuration from unit-file text. */
export function serviceConfig(name: string, text: string): ServiceUnitConfig {
  const parsed = parseServiceUnitText(text, `/test/${name}`, { unitName: name });
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  if (parsed.config === undefined || errors.length > 0) throw new Error(`bad unit ${name}: ${errors.map((d) => d.message).join('; ')}`);
  return parsed.config;
}
