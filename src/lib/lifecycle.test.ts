import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gracefulStop } from './lifecycle.js';

test('the stop runs once however often it is asked for, and done resolves after it', async () => {
  let runs = 0;
  let finished = false;
  const g = gracefulStop(
    async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 20));
      finished = true;
    },
    { handleSignals: false },
  );
  let doneEarly = false;
  void g.done.then(() => (doneEarly = !finished));
  await Promise.all([g.shutdown(), g.shutdown()]);
  await g.shutdown();
  await g.done;
  assert.equal(runs, 1);
  assert.equal(doneEarly, false);
});

test('SIGTERM starts the stop when signals are handled', async () => {
  const before = process.listenerCount('SIGTERM');
  const sigint = process.listeners('SIGINT');
  let runs = 0;
  const g = gracefulStop(async () => void runs++);
  assert.equal(process.listenerCount('SIGTERM'), before + 1);
  process.emit('SIGTERM');
  await g.done;
  assert.equal(runs, 1);
  for (const l of process.listeners('SIGINT')) if (!sigint.includes(l)) process.off('SIGINT', l);
});
