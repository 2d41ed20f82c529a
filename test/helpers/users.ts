/** Real second users for privilege tests: created with useradd and removed after (root only). */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** Undefined when test users can be made here, else why not (for `t.skip`). */
export function testUsersUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create a second user';
  if (!['/usr/sbin/useradd', '/sbin/useradd'].some((p) => existsSync(p))) return 'needs useradd to create a real user';
  return undefined;
}

/** A user made for one test. */
export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Removes the user (its processes must be gone). */
  remove(): void;
}

/** Creates a system user without a home (name `hf<tag><random>`, short enough for useradd). */
export function createTestUser(tag: string): TestUser {
  const name = `hf${tag}${randomBytes(3).toString('hex')}`;
  execFileSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name], { stdio: 'pipe' });
  const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return {
    name,
    uid: id('-u'),
    gid: id('-g'),
    remove() {
      try {
        execFileSync('userdel', [name], { stdio: 'pipe' });
      } catch {
        // Already gone.
      }
    },
  };
}
