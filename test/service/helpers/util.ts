/** Small helpers shared by the service tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of a compiled file next to the tests (`dist/test/service/...`). */
export function here(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, import.meta.url));
}

/** The repository root (three levels above dist/test/service/helpers). */
export function repoRoot(): string {
  return fileURLToPath(new URL('../../../../', import.meta.url));
}

/** A child that sleeps until killed. */
export function sleeper(): ChildProcess {
  return spawn('sleep', ['600'], { stdio: 'ignore' });
}

/** Resolves with exit code and signal once the child has exited. */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Runs a command to completion, collecting its output. */
export function run(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdio?: (number | 'pipe' | 'ignore')[] } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; pid: number }> {
  const child = spawn(file, args, { env: options.env ?? process.env, stdio: (options.stdio ?? ['ignore', 'pipe', 'pipe']) as never });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid! }));
  });
}

/** How many fds this process has open. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** process.env without the protocol variables, so that a test's children start clean. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(NOTIFY_SOCKET|MAINPID|MAINPIDFDID|MANAGERPID|MANAGERPIDFDID|LISTEN_.*|WATCHDOG_.*)$/.test(name)) delete env[name];
  }
  return { ...env, ...extra };
}
