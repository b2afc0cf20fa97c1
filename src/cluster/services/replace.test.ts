import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SlotReplacer } from './replace.js';

// holding and waiting need none of the replacer's collaborators
const replacer = () => new SlotReplacer(undefined as never, undefined as never, undefined as never, undefined as never);

test('idle waits until every holder of the slot let go, and not for other slots', async () => {
  const r = replacer();
  r.hold('s/1');
  r.hold('s/1');
  r.hold('s/2');
  let done = false;
  const waiting = r.idle('s/1').then(() => (done = true));
  r.release('s/1');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(done, false, 'one holder is left');
  r.release('s/1');
  await waiting;
  assert.equal(r.busy.has('s/2'), true);
  await r.idle('s/3'); // nobody holds it: at once
});

test('idle gives up when its signal aborts', async () => {
  const r = replacer();
  r.hold('s/1');
  const ac = new AbortController();
  const waiting = r.idle('s/1', ac.signal);
  ac.abort(new Error('release stopped'));
  await assert.rejects(waiting, /release stopped/);
});
