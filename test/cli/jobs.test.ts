/** What the job verbs (start, stop, restart, …) make of each job result the daemon reports. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobFailure, type JobOutcome } from '../../src/cli/commands/jobs.js';

const outcome = (result: string, activeState = 'inactive', subState = 'dead', serviceResult = 'success'): JobOutcome => ({
  unit: 'web.service',
  result,
  activeState,
  subState,
  serviceResult,
});

describe('job results on the command line', () => {
  it('done and skipped are no failure', () => {
    assert.equal(jobFailure(outcome('done', 'active', 'running')), undefined);
    assert.equal(jobFailure(outcome('skipped')), undefined);
  });

  it('a canceled job is a failure that says it was canceled, as systemctl\'s "Job for X canceled."', () => {
    assert.equal(jobFailure(outcome('canceled')), 'job for web.service canceled (another job replaced it before it finished): the unit is inactive (dead).');
  });

  it('failed and timed-out jobs name the unit state and result; unsupported reloads say why', () => {
    assert.match(jobFailure(outcome('failed', 'failed', 'failed', 'exit-code'))!, /^job for web\.service failed: the unit is failed \(failed\), result 'exit-code'/);
    assert.match(jobFailure(outcome('timeout', 'failed', 'failed', 'timeout'))!, /^job for web\.service timed out:/);
    assert.match(jobFailure(outcome('unsupported', 'active', 'running'))!, /cannot be reloaded/);
  });
});
