import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import type { HostContext } from '../../src/unit/index.js';

/** A fixed host, so that specifier expansion does not depend on the machine running the tests. */
export const HOST: HostContext = {
  scope: 'system',
  user: { name: 'root', uid: 0, group: 'root', gid: 0, home: '/root', shell: '/bin/sh' },
  dirs: {
    runtime: '/run',
    state: '/var/lib',
    cache: '/var/cache',
    logs: '/var/log',
    config: '/etc',
    sharedData: '/usr/share',
    tmp: '/tmp',
    varTmp: '/var/tmp',
  },
  machineId: '0123456789abcdef0123456789abcdef',
  bootId: 'fedcba9876543210fedcba9876543210',
  hostname: 'host.example.com',
  kernelRelease: '6.18.0-test',
  architecture: 'x86-64',
  osRelease: { ID: 'debian', VERSION_ID: '13', BUILD_ID: '2025-01', IMAGE_ID: 'img', IMAGE_VERSION: '7' },
};

/** The same host seen by a per-user manager. */
export const USER_HOST: HostContext = {
  ...HOST,
  scope: 'user',
  user: { name: 'alice', uid: 1000, group: 'users', gid: 100, home: '/home/alice', shell: '/bin/bash' },
  dirs: {
    runtime: '/run/user/1000',
    state: '/home/alice/.local/state',
    cache: '/home/alice/.cache',
    logs: '/home/alice/.local/state/log',
    config: '/home/alice/.config',
    sharedData: '/home/alice/.local/share',
    tmp: '/tmp',
    varTmp: '/var/tmp',
  },
};

/** A file to create: text, or a symlink to `symlink`. */
export type TreeEntry = string | { readonly symlink: string };

/** Creates a temporary directory removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'holdfast-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `files` (relative paths) under `root`, creating directories as needed. */
export function writeTree(root: string, files: Readonly<Record<string, TreeEntry>>): void {
  for (const [rel, entry] of Object.entries(files)) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    if (typeof entry === 'string') writeFileSync(p, entry);
    else symlinkSync(entry.symlink, p);
  }
}

/**
 * Runs `holdfast VERB ARGS…` from the compiled command module in a child process, so that its output
 * cannot mix with the test runner's own, and returns the exit code and what it printed.
 */
export function runCommand(verb: 'verify' | 'cat', args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const module = new URL(`../../src/cli/commands/${verb}.js`, import.meta.url).href;
  const script = `const { default: c } = await import(${JSON.stringify(module)});
try { process.exitCode = await c.run(process.argv.slice(1)); }
catch (e) { process.stderr.write('usage: ' + e.message + '\\n'); process.exitCode = e.exitCode ?? 99; }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
