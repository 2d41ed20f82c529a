/** User and group lookups from /etc/passwd and /etc/group: what User=/Group= need, with no native getpwnam. */
import { readFileSync } from 'node:fs';
import { errnoError } from '../pidfd/index.js';

/** A resolved account. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

function table(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.split(':'));
  } catch {
    return [];
  }
}

/** Resolves `User=` (name or numeric id). Throws `ENOENT` naming the user when unknown. */
export function lookupUser(user: string): Account {
  const numeric = /^\d+$/.test(user) ? Number(user) : undefined;
  for (const fields of table('/etc/passwd')) {
    const [name, , uid, gid, , home, shell] = fields;
    if (name === user || (numeric !== undefined && Number(uid) === numeric)) {
      return { name: name!, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh' };
    }
  }
  if (numeric !== undefined) return { name: String(numeric), uid: numeric, gid: numeric, home: '/', shell: '/bin/sh' };
  throw errnoError('ENOENT', `no such user: ${user}`);
}

/** Resolves `Group=` (name or numeric id). */
export function lookupGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const [name, , gid] of table('/etc/group')) if (name === group) return Number(gid);
  throw errnoError('ENOENT', `no such group: ${group}`);
}

/** The supplementary groups of a user (those listing it as a member), plus its primary group. */
export function groupsOf(account: Account): number[] {
  const groups = new Set<number>([account.gid]);
  for (const [, , gid, members] of table('/etc/group')) {
    if ((members ?? '').split(',').includes(account.name)) groups.add(Number(gid));
  }
  return [...groups];
}

/** The account this process runs as. */
export function currentAccount(): Account {
  const uid = process.getuid!();
  try {
    return lookupUser(String(uid));
  } catch {
    return { name: process.env['USER'] ?? String(uid), uid, gid: process.getgid!(), home: process.env['HOME'] ?? '/', shell: '/bin/sh' };
  }
}
