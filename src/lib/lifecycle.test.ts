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
  const before = { SIGTERM: process.listeners('SIGTERM'), SIGINT: process.listeners('SIGINT') };
  const added = (sig: 'SIGTERM' | 'SIGINT') => process.listeners(sig).filter((l) => !before[sig].includes(l));
  let runs = 0;
  const g = gracefulStop(async () => void runs++);
  const [onTerm] = added('SIGTERM');
  assert.ok(onTerm, 'no SIGTERM handler');
  assert.equal(added('SIGINT').length, 1);
  // call the handler rather than signal the whole test process
  (onTerm as () => void)();
  await g.done;
  assert.equal(runs, 1);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) for (const l of added(sig)) process.off(sig, l);
});
