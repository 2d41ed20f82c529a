import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** A long sleep as a `child_process` child. */
export function sleeper(seconds = 600): ChildProcess {
  return spawn('sleep', [String(seconds)], { stdio: 'ignore' });
}

/** Waits for a `child_process` child's exit event (or returns at once if it was already seen). */
export function childExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Open fds of this process. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * A grandchild: a process that is not ours. A shell starts `script` in the background, prints its
 * PID and waits for it, so the shell (not us) reaps it.
 */
export async function grandchild(script: string): Promise<{ pid: number; parent: ChildProcess }> {
  // The grandchild gets no copy of our pipe: a descendant holding it would keep this process alive.
  const parent = spawn('sh', ['-c', `sh -c '${script}' </dev/null >/dev/null 2>&1 & echo $!; wait`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout!.setEncoding('utf8').once('data', (text: string) => resolve(Number(text.trim())));
    parent.once('error', reject);
  });
  return { pid, parent };
}

/** Python's own view of a process's pidfd id: os.pidfd_open + os.fstat. An independent check. */
export function pythonPidfdId(pid: number): bigint {
  const out = spawnSync('python3', ['-c', 'import os,sys; fd=os.pidfd_open(int(sys.argv[1])); print(os.fstat(fd).st_ino)', String(pid)], {
    encoding: 'utf8',
  });
  if (out.status !== 0) throw new Error(`python3 failed: ${out.stderr}`);
  return BigInt(out.stdout.trim());
}

/** Resolves once process `holder` has a pidfd open on `target` (read from its /proc fdinfo). */
export async function untilHoldsPidfd(holder: number, target: number, tries = 400): Promise<void> {
  const { readdirSync: list, readFileSync: read } = await import('node:fs');
  for (let i = 0; i < tries; i++) {
    try {
      for (const fd of list(`/proc/${holder}/fdinfo`)) {
        if (new RegExp(`^Pid:\\s*${target}$`, 'm').test(read(`/proc/${holder}/fdinfo/${fd}`, 'utf8'))) return;
      }
    } catch {
      // The holder may still be starting, or an fd closed while we read.
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`process ${holder} never opened a pidfd on ${target}`);
}

/**
 * The PID a shell wrote to `path` (`echo $! > path`), once the whole line is there: the shell
 * creates the file before it writes the number, so an empty or partial file means "not yet".
 */
export function writtenPid(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return /^\d+\n$/.test(text) ? Number(text) : undefined;
}
