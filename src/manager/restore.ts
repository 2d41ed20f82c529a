/**
 * Crash recovery and re-exec: every unit a previous daemon of this boot recorded is rebuilt (from its
 * file, an instance from its template, a transient one from its recorded text) and handed the
 * processes it had, found again through the keeper's pidfds or verified by pidfd id. A unit whose
 * file is gone but whose processes still run is kept as `not-found` until they end. Output the
 * previous daemon never read is read now.
 */
import { native } from '../native.js';
import { Pidfd, ProcessRef, type ExitStatus, type ProcessIdJson } from '../pidfd/index.js';
import { parseServiceUnitText } from '../unit/index.js';
import type { Keeper, RecoveredFd } from './keeper/keeper.js';
import type { CaptureHandle, OutputSink } from './manager.js';
import type { UnitRegistry } from './registry.js';
import type { RecoveredControl, ServiceUnit } from './runtime/service-unit.js';
import { withTimeout } from './timers.js';
import type { DaemonState } from './types.js';

/** What {@link restoreUnits} works with. */
export interface RestoreContext {
  readonly registry: UnitRegistry;
  /** The previous daemon's record, if it was of this boot. */
  readonly state: DaemonState | undefined;
  /** What the previous daemon's keeper held (see {@link Keeper.takeOver}). */
  readonly recovered: readonly RecoveredFd[];
  readonly logs: OutputSink;
  /** Gives the keeper a capture's read ends again. */
  holdCapture(unit: string, capture: CaptureHandle, writer: { pid: number | null; pidfdId: string | null; invocationId: string | null }): void;
  log(level: 'info' | 'warning' | 'error', text: string): void;
}

/** Picks up what a previous daemon on this boot recorded and what its keeper held. */
export async function restoreUnits(ctx: RestoreContext): Promise<void> {
  const { registry, recovered } = ctx;
  const used = new Set<RecoveredFd>();
  for (const record of ctx.state?.units ?? []) {
    const unit = await rebuild(ctx, record.name, record.transientText, record.main !== null || record.control != null, describeProcesses(record));
    if (unit === undefined) continue;
    let main: Pidfd | undefined;
    let exit: ExitStatus | undefined;
    if (record.main !== null) {
      const held = recovered.find((r) => r.kind === 'pidfd' && r.pid === record.main!.pid && r.pidfdId === String(record.main!.pidfdId));
      if (held !== undefined) {
        used.add(held);
        main = Pidfd.adopt(held.fd, { pid: record.main.pid });
      } else {
        try {
          main = ProcessRef.parse(record.main).resolve();
        } catch (error) {
          ctx.log('warning', `${record.name}: recorded main process ${record.main.pid} cannot be re-adopted (${(error as NodeJS.ErrnoException).code})`);
        }
      }
      if (main !== undefined && !main.isAlive()) {
        // Its new parent (init, or a subreaper) reaps it soon; only then does the kernel tell how it ended.
        const ended = await withTimeout(main.unref().exited, 3000);
        exit = ended === 'timeout' ? undefined : ended;
      }
    }
    const control = record.control != null ? await recoverControl(ctx, record.name, record.control.process, used) : undefined;
    unit.restore(record, main, exit, control);
  }
  // A not-found unit whose processes ended while no daemon ran has nothing left to supervise.
  for (const name of [...registry.notFound]) registry.dropIfGone(name);
  // Output the previous daemon never read is still in the pipes: read it now.
  for (const entry of recovered) {
    if (entry.kind === 'log' && entry.unit !== undefined) {
      used.add(entry);
      const capture = ctx.logs.captureFromFds(entry.unit, {
        invocationId: entry.invocationId ?? null,
        ...(entry.stream === 'stderr' ? { stderrReadFd: entry.fd, stderrSpool: entry.spool ?? null } : { stdoutReadFd: entry.fd, stdoutSpool: entry.spool ?? null }),
        writer: { pid: entry.pid ?? null, pidfdId: entry.pidfdId ?? null },
      });
      ctx.holdCapture(entry.unit, capture, { pid: entry.pid ?? null, pidfdId: entry.pidfdId ?? null, invocationId: entry.invocationId ?? null });
    }
  }
  for (const entry of recovered) if (!used.has(entry) && entry.kind !== 'notify') native.close(entry.fd);
  // Spools whose pipes did not come back (the keeper died too) still hold what was read into them.
  const spooled = await ctx.logs.recoverSpools?.();
  if (spooled !== undefined && spooled > 0) ctx.log('warning', `recovered ${spooled} line(s) from spools whose pipes were lost`);
}

/**
 * The unit object for a record: already loaded, loaded now (an instance from its template), made
 * from its recorded text (transient), or, when its file is gone and it had processes, kept as
 * `not-found` so that they stay supervised.
 */
async function rebuild(ctx: RestoreContext, name: string, transientText: string | undefined, hadProcesses: boolean, processes: string): Promise<ServiceUnit | undefined> {
  const { registry } = ctx;
  const loaded = registry.get(name);
  if (loaded !== undefined) return loaded;
  if (transientText !== undefined) {
    const parsed = parseServiceUnitText(transientText, `transient:${name}`, { unitName: name });
    if (parsed.config !== undefined) return registry.addTransient(parsed.config, transientText);
  }
  if (name.endsWith('.service') && (await registry.load(name))) return registry.get(name);
  if (!hadProcesses) return undefined;
  ctx.log('warning', `${name} was running (${processes}) but its unit file is gone; supervising it as not-found until it stops`);
  return registry.keepNotFound(name);
}

function describeProcesses(record: DaemonState['units'][number]): string {
  const parts: string[] = [];
  if (record.main !== null) parts.push(`main PID ${record.main.pid}`);
  if (record.control != null) parts.push(`control PID ${record.control.process.pid}`);
  return parts.join(', ');
}

/**
 * A recorded control process, as the main process is found: the keeper's pidfd, or `pidfd_open` +
 * id comparison. One that ended comes with how it ended (`PIDFD_INFO_EXIT`); one that does not
 * verify (a recycled PID) is never opened for good, let alone signalled.
 */
async function recoverControl(ctx: RestoreContext, unit: string, ref: ProcessIdJson, used: Set<RecoveredFd>): Promise<RecoveredControl> {
  let handle: Pidfd;
  const held = ctx.recovered.find((r) => r.kind === 'pidfd' && r.pid === ref.pid && r.pidfdId === String(ref.pidfdId));
  if (held !== undefined) {
    used.add(held);
    handle = Pidfd.adopt(held.fd, { pid: ref.pid });
  } else {
    try {
      handle = ProcessRef.parse(ref).resolve();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      ctx.log('warning', `${unit}: recorded control process ${ref.pid} cannot be re-adopted (${code})`);
      return { state: 'lost', reason: code === 'ESTALE' ? 'its PID now belongs to another process' : code === 'ESRCH' ? 'it is gone and the kernel kept no status' : code };
    }
  }
  if (handle.isAlive()) return { state: 'alive', handle };
  // Its new parent (init, or a subreaper) reaps it soon; only then does the kernel tell how it ended.
  const ended = await withTimeout(handle.unref().exited, 3000);
  handle.close();
  return { state: 'ended', exit: ended === 'timeout' ? undefined : ended };
}
