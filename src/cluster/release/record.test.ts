/** Service labels that ask `docker service update --image` for a smart release. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../../lib/errors.js';
import { LABELS, releaseFromLabels } from './record.js';

test('labels: smart mode with its settings, Docker mode or none means no smart release, a bad value is a 400', () => {
  assert.equal(releaseFromLabels('web', 'web:2', {}), undefined);
  assert.equal(releaseFromLabels('web', 'web:2', { [LABELS.mode]: 'docker' }), undefined);
  assert.deepEqual(releaseFromLabels('web', 'web:2', {
    [LABELS.mode]: 'smart', [LABELS.firstBatch]: '2', [LABELS.window]: '20', [LABELS.stragglerFactor]: '2.5', [LABELS.maxFailures]: '3',
    [LABELS.failureAction]: 'rollback', [LABELS.prePull]: 'false', [LABELS.order]: 'start-first',
  }), { service: 'web', image: 'web:2', firstBatch: 2, window: 20, stragglerFactor: 2.5, maxFailures: 3, failureAction: 'rollback', prePull: false, order: 'start-first' });
  assert.deepEqual(releaseFromLabels('web', 'web:2', { [LABELS.mode]: 'smart' }), { service: 'web', image: 'web:2', firstBatch: 1, window: 10, stragglerFactor: 3, maxFailures: 0, failureAction: 'pause', prePull: true, order: 'stop-first' });
  for (const bad of [{ [LABELS.mode]: 'fast' }, { [LABELS.mode]: 'smart', [LABELS.window]: 'ten' }, { [LABELS.mode]: 'smart', [LABELS.window]: '0' }, { [LABELS.mode]: 'smart', [LABELS.prePull]: 'maybe' }] as Array<Record<string, string>>) {
    assert.throws(() => releaseFromLabels('web', 'web:2', bad), (err) => isCode(err, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
});
