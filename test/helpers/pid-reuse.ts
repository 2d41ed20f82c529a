/**
 * Making PID reuse happen for real: a fresh PID namespace (as root, `unshare --pid --fork
 * --mount-proc`) whose `pid_max` is set small (per namespace since Linux 6.14), so that a PID
 * comes round again within a few hundred spawns. Scenario scripts run inside the namespace and
 * report JSON on stdout; the test outside asserts on it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';

let support: string | undefined | null = null;

/** Undefined when PID reuse can be forced here, else why not (for `t.skip`). */
export function pidReuseUnsupported(): string | undefined {
  if (support !== null) return support;
  if (process.getuid?.() !== 0) return (support = 'forcing PID reuse needs root (unshare --pid with a small pid_max)');
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'sh', '-c', 'echo 400 > /proc/sys/kernel/pid_max && cat /proc/sys/kernel/pid_max'], {
    encoding: 'utf8',
  });
  if (probe.error !== undefined) return (support = `unshare is not available: ${probe.error.message}`);
  if (probe.status !== 0 || probe.stdout.trim() !== '400') {
    return (support = `this kernel does not allow a per-namespace pid_max (Linux 6.14+): ${probe.stderr.trim()}`);
  }
  return (support = undefined);
}

/** Runs `node script` as PID 1 of a fresh PID namespace and returns the JSON it prints last. */
export async function runInFreshPidNamespace<T>(script: string, input: unknown = {}): Promise<T> {
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, script], {
    env: { ...process.env, HOLDFAST_SCENARIO_INPUT: JSON.stringify(input) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const last = stdout.trim().split('\n').at(-1) ?? '';
  if (code !== 0) throw new Error(`scenario ${script} exited with ${code}: ${stderr}${stdout}`);
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`scenario ${script} printed no JSON: ${stdout}\n${stderr}`);
  }
}

/** Inside the namespace: the scenario's input. */
export function scenarioInput<T>(): T {
  return JSON.parse(process.env['HOLDFAST_SCENARIO_INPUT'] ?? '{}') as T;
}

/** Inside the namespace: make PIDs wrap after 400. */
export function shrinkPidMax(max = 400): void {
  writeFileSync('/proc/sys/kernel/pid_max', String(max));
}

/**
 * Inside the namespace: spawns long sleeps until one of them gets `pid`, which must be free
 * (its old owner reaped). Every other sleep is killed and reaped on the way.
 */
export async function takeOverPid(pid: number, maxAttempts = 5000): Promise<ChildProcess> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const probe = spawnSync('/bin/true');
    if (probe.pid !== pid - 1 && !(pid === 300 && probe.pid === 399)) continue;
    const holder = spawn('sleep', ['600'], { stdio: 'ignore' });
    if (holder.pid === pid) return holder;
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
  }
  throw new Error(`PID ${pid} did not come round again in ${maxAttempts} spawns`);
}

/** Writes the scenario's result for the test outside. */
export function report(result: unknown): void {
  process.stdout.write(JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
}
