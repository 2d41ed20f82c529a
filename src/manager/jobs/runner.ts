/**
 * Runs transactions: each job as soon as the jobs it is ordered after are done (systemd's
 * job_is_runnable), calling the unit's own start, stop or reload and awaiting it. A start that fails
 * fails the waiting starts of what needs it (result `dependency`); a unit that goes down takes the
 * units bound to it (BindsTo=) down with it. Only one job per unit is current: a start asked for
 * while one runs joins it, and a job still waiting is canceled by a newer one of another kind.
 */
import { isDown, isRunning, isUp, ReverseIndex, type DependencyGraph } from './graph.js';
import { mustWaitFor } from './ordering.js';
import { buildTransaction, type BuildOptions, type JobRequest, type JobType, type Transaction } from './transaction.js';

/** How a unit's own job ended, as systemctl reports it. */
export type UnitJobResult = 'done' | 'failed' | 'skipped' | 'canceled' | 'unsupported' | 'timeout';

/** How a job ended: the unit's own result, or `dependency` when something it needs failed first. */
export type JobEndResult = UnitJobResult | 'dependency';

/** One job's end. */
export interface JobEnd {
  readonly unit: string;
  readonly type: JobType;
  readonly result: JobEndResult;
  /** Why, when it did not succeed for a reason the unit itself does not know. */
  readonly message?: string;
}

/** What a job does to a unit. */
export interface JobTarget {
  start(): Promise<UnitJobResult>;
  stop(): Promise<UnitJobResult>;
  reload(): Promise<UnitJobResult>;
}

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions extends BuildOptions {
  readonly graph: DependencyGraph;
  /** The unit a job acts on (undefined if it went away meanwhile). */
  target(unit: string): JobTarget | undefined;
  /** A line about one unit for the daemon's log and the unit's own. */
  note?(unit: string, level: 'info' | 'warning' | 'error', text: string): void;
}

/** A submitted request. */
export interface Submission {
  readonly transaction: Transaction;
  /** The anchor job's end (a failed one at once when the transaction could not be built). */
  readonly anchor: Promise<JobEnd>;
  /** Every job's end. */
  readonly settled: Promise<JobEnd[]>;
}

type Phase = 'start' | 'stop' | 'reload' | 'verify-active';

class LiveJob {
  phase: Phase;
  state: 'waiting' | 'running' | 'done' = 'waiting';
  readonly done: Promise<JobEnd>;
  resolve!: (end: JobEnd) => void;

  constructor(
    readonly unit: string,
    readonly type: JobType,
  ) {
    this.phase = type === 'restart' ? 'stop' : type;
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  get stopping(): boolean {
    return this.phase === 'stop';
  }

  /** Whether it brings the unit up now (what a failed dependency cancels). */
  get startLike(): boolean {
    return this.phase === 'start' || this.phase === 'verify-active';
  }
}

const FAILED_START: ReadonlySet<JobEndResult> = new Set(['failed', 'timeout', 'dependency', 'canceled', 'unsupported']);

/** The job queue of a manager. */
export class JobRunner {
  readonly #options: JobRunnerOptions;
  readonly #jobs = new Set<LiveJob>();
  readonly #current = new Map<string, LiveJob>();

  constructor(options: JobRunnerOptions) {
    this.#options = options;
  }

  /** Builds the transaction for a request and queues its jobs. */
  submit(request: JobRequest): Submission {
    const transaction = buildTransaction(this.#options.graph, request, this.#options);
    for (const line of transaction.log) this.#options.note?.(request.unit, 'warning', line);
    if (transaction.errors.length > 0) {
      const end: JobEnd = { unit: request.unit, type: jobTypeOf(request), result: 'failed', message: transaction.errors.join('; ') };
      return { transaction, anchor: Promise.resolve(end), settled: Promise.resolve([end]) };
    }
    if (transaction.jobs.size === 0) {
      // A try-restart of a unit that does not run: nothing to do, and that is success.
      const end: JobEnd = { unit: request.unit, type: 'restart', result: 'done' };
      return { transaction, anchor: Promise.resolve(end), settled: Promise.resolve([end]) };
    }
    const queued: LiveJob[] = [];
    let anchor: LiveJob | undefined;
    for (const unit of transaction.order) {
      const planned = transaction.jobs.get(unit)!;
      const live = this.#enqueue(unit, planned.type);
      queued.push(live);
      if (planned.anchor) anchor = live;
    }
    this.#dispatch();
    return { transaction, anchor: anchor!.done, settled: Promise.all(queued.map((j) => j.done)) };
  }

  /** Jobs not yet done, for status and tests: unit → job type and whether it waits or runs. */
  pending(): { unit: string; type: JobType; state: 'waiting' | 'running' }[] {
    return [...this.#jobs].map((j) => ({ unit: j.unit, type: j.type, state: j.state as 'waiting' | 'running' }));
  }

  /**
   * Tells the runner a unit's state changed (outside or inside a job): a unit that went down stops the
   * units that are bound to it and still run, as BindsTo= asks.
   */
  unitChanged(name: string): void {
    const node = this.#options.graph.node(name);
    if (node === undefined || !isDown(node.activeState)) return;
    const reverse = new ReverseIndex(this.#options.graph);
    for (const bound of reverse.boundBy.get(name) ?? []) {
      const other = this.#options.graph.node(bound);
      if (other === undefined || !isRunning(other.activeState) || this.#current.has(bound)) continue;
      this.#options.note?.(bound, 'info', `stopping: ${name}, to which it is bound (BindsTo=), went down`);
      void this.submit({ type: 'stop', unit: bound });
    }
  }

  #enqueue(unit: string, type: JobType): LiveJob {
    const existing = this.#current.get(unit);
    if (existing !== undefined && joins(existing, type)) return existing;
    // A waiting job of another kind is superseded; a running one goes on (the unit serialises its own flows).
    if (existing !== undefined && existing.state === 'waiting') this.#finish(existing, 'canceled', `superseded by a ${type} job`);
    const job = new LiveJob(unit, type);
    this.#jobs.add(job);
    this.#current.set(unit, job);
    return job;
  }

  #dispatch(): void {
    for (const job of [...this.#jobs]) {
      if (job.state !== 'waiting' || !this.#runnable(job)) continue;
      job.state = 'running';
      void this.#run(job);
    }
    // Jobs of separate transactions can wait for each other in a circle no single transaction shows
    // (two stops of units ordered both ways). Nothing would ever move: the oldest goes ahead.
    const jobs = [...this.#jobs];
    const stuck = jobs.find((j) => j.state === 'waiting');
    if (stuck !== undefined && !jobs.some((j) => j.state === 'running')) {
      this.#options.note?.(stuck.unit, 'warning', `its ${stuck.type} job waits in an ordering cycle with jobs of other requests; running it first`);
      stuck.state = 'running';
      void this.#run(stuck);
    }
  }

  #runnable(job: LiveJob): boolean {
    for (const other of this.#jobs) {
      if (other === job || other.unit === job.unit) continue;
      if (mustWaitFor(this.#options.graph, job.unit, job.stopping, other.unit, other.stopping)) return false;
    }
    return true;
  }

  async #run(job: LiveJob): Promise<void> {
    const target = this.#options.target(job.unit);
    let result: JobEndResult;
    let message: string | undefined;
    try {
      if (job.phase === 'verify-active') {
        const node = this.#options.graph.node(job.unit);
        result = node !== undefined && isUp(node.activeState) ? 'done' : 'failed';
        if (result === 'failed') message = `${job.unit} is not active (Requisite=)`;
      } else if (target === undefined) {
        result = job.phase === 'stop' ? 'done' : 'failed';
        message = `${job.unit} is not loaded`;
      } else if (job.phase === 'stop') {
        result = await target.stop();
        if (job.type === 'restart' && result === 'done') {
          // The stop half of a restart is done; the start half orders as a start.
          job.phase = 'start';
          job.state = 'waiting';
          this.#dispatch();
          return;
        }
      } else if (job.phase === 'start') {
        result = await target.start();
      } else {
        result = await target.reload();
      }
    } catch (error) {
      result = 'failed';
      message = (error as Error).message;
    }
    this.#finish(job, result, message);
  }

  #finish(job: LiveJob, result: JobEndResult, message?: string): void {
    if (job.state === 'done') return;
    const wasStartLike = job.startLike;
    job.state = 'done';
    this.#jobs.delete(job);
    if (this.#current.get(job.unit) === job) this.#current.delete(job.unit);
    job.resolve({ unit: job.unit, type: job.type, result, ...(message === undefined ? {} : { message }) });
    if (wasStartLike && FAILED_START.has(result)) this.#failDependents(job.unit);
    this.#dispatch();
  }

  /** Waiting starts of units that Require=, BindsTo= or are Requisite= of a unit whose start failed. */
  #failDependents(unit: string): void {
    const reverse = new ReverseIndex(this.#options.graph);
    for (const dependent of reverse.startFailurePropagatesTo(unit)) {
      const job = this.#current.get(dependent);
      if (job === undefined || job.state !== 'waiting' || !job.startLike) continue;
      this.#options.note?.(dependent, 'error', `dependency ${unit} failed; not starting`);
      this.#finish(job, 'dependency', `dependency ${unit} failed`);
    }
  }
}

/** Whether a new job of `type` is already covered by the unit's current job. */
function joins(existing: LiveJob, type: JobType): boolean {
  if (existing.type === type) return true;
  if (type === 'start' || type === 'verify-active') return existing.type === 'start' || existing.type === 'restart' || existing.type === 'reload';
  return false;
}

function jobTypeOf(request: JobRequest): JobType {
  return request.type === 'try-restart' || request.type === 'reload-or-restart' ? 'restart' : request.type;
}

