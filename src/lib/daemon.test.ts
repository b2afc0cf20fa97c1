import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { daemonLogger, daemonStop } from './daemon.js';

test('a daemon stops once, in order: halt, drain every server, release, then "<what> stopped"', async () => {
  const steps: string[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        steps.push(`log: ${(JSON.parse(chunk.toString()) as { msg: string }).msg}`);
        cb();
      },
    }),
  );
  const server = (name: string) => ({ timeoutMs: name === 'a' ? 10 : 20, close: async (ms: number) => void steps.push(`close ${name} ${ms}`) });
  const stop = daemonStop('p2p peer', log, { halt: () => steps.push('halt'), servers: [server('a'), server('b')], release: () => void steps.push('release') }, { handleSignals: false });
  await Promise.all([stop.shutdown(), stop.shutdown()]);
  await stop.done;
  assert.deepEqual(steps, ['log: shutting down: no new connections; waiting for requests in flight', 'halt', 'close a 10', 'close b 20', 'release', 'log: p2p peer stopped']);
});

test('a daemon logs under its own name unless given a logger', () => {
  assert.equal(daemonLogger('p2p scheduler', 'silent').bindings().name, 'sampan-p2p-scheduler');
  const given = pino({ level: 'silent' });
  assert.equal(daemonLogger('registry', 'info', { log: given }), given);
});
