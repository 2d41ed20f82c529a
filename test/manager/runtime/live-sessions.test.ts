// LiveSessions on real processes: a session is the unit's while its leader or a member lives,
// and forgotten once none is left, so its number can never match a later session.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Pidfd } from '../../../src/index.js';
import { LiveSessions } from '../../../src/manager/session.js';

/** A session leader (sh) that starts a member (sleep), prints its PID and waits for a line before exiting. */
async function sessionWithMember(): Promise<{ leader: Pidfd; member: Pidfd; release: () => Promise<void> }> {
  const child = spawn('/bin/sh', ['-c', 'sleep 600 & echo $!; read line'], { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
  const leader = Pidfd.fromChild(child);
  const memberPid = await new Promise<number>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  const member = Pidfd.open(memberPid);
  return {
    leader,
    member,
    async release() {
      child.stdin!.end('\n');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

describe('LiveSessions', () => {
  it('keeps a session while a member outlives its leader, and drops it once none is left', async () => {
    const { leader, member, release } = await sessionWithMember();
    const sessions = new LiveSessions();
    try {
      sessions.addLeader(leader);
      assert.deepEqual(sessions.ids(), [leader.pid]);
      assert.equal(sessions.contains(member), true);
      await release();
      await leader.exited;
      assert.deepEqual(sessions.ids(), [leader.pid], 'the member still holds the session id');
      assert.deepEqual(sessions.members().map((m) => { m.close(); return m.pid; }), [member.pid]);
      member.signal('SIGKILL');
      await member.exited;
      assert.deepEqual(sessions.ids(), [], 'no member is left: the number is dropped');
      assert.equal(sessions.size, 0);
    } finally {
      if (member.isAlive()) member.signal('SIGKILL');
      member.close();
      leader.close();
      sessions.clear();
    }
  });

  it('a leader that has already ended and left no member is dropped at once', async () => {
    const child = spawn('/bin/true', { detached: true, stdio: 'ignore' });
    const leader = Pidfd.fromChild(child);
    await new Promise((r) => child.once('exit', r));
    const sessions = new LiveSessions();
    sessions.addLeader(leader);
    assert.deepEqual(sessions.ids(), []);
    leader.close();
  });
});
