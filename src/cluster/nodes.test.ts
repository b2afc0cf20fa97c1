import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { isCode } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { NODE_PROTOCOL_VERSION, type HelloMessage, type ResolveMessage } from '../lib/node-protocol.js';
import { NodeRegistry, validateNodeUpdate, withEdits } from './nodes.js';
import { ClusterState } from './state.js';
import { StoreHealth } from './store-health.js';
import type { ClusterStore } from './store.js';

test('node update edits apply over the labels an engine joins with: added, replaced, removed', () => {
  assert.deepEqual(withEdits({ zone: 'us', disk: 'ssd' }, { zone: 'eu', gpu: '1', disk: null }), { zone: 'eu', gpu: '1' });
  assert.deepEqual(withEdits({ a: '1' }, undefined), { a: '1' });
});

test('a node update body is checked field by field', () => {
  assert.deepEqual(validateNodeUpdate({ labelAdd: { a: '1' }, labelRm: ['b'], availability: 'drain' }), { labelAdd: { a: '1' }, labelRm: ['b'], availability: 'drain' });
  for (const bad of [{ availability: 'pause' }, { labelAdd: { a: 1 } }, { labelRm: 'b' }, { labels: {} }]) {
    assert.throws(() => validateNodeUpdate(bad), (e) => isCode(e, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
});

test('an engine\'s resolve is answered on its connection from the manager\'s resolver: resolved with the same seq', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-resolve-'));
  const store = { checkToken: async (t: string) => t === 'tok', putNode: async () => undefined, health: new StoreHealth() } as unknown as ClusterStore;
  const nodes = new NodeRegistry(new ClusterState(), store, createLogger('test', 'fatal'), 1000);
  const asked: string[] = [];
  nodes.resolve = (network, name) => {
    asked.push(`${network} ${name}`);
    return name === 'web' ? ['10.192.1.2', '10.192.2.2'] : [];
  };
  await nodes.listen(`unix://${dir}/node.sock`);
  const ws = new WebSocket(`ws+unix://${dir}/node.sock:/`);
  try {
    const messages: Array<{ type: string; seq?: number; ips?: string[] }> = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d)) as (typeof messages)[number]));
    await new Promise((r) => ws.once('open', r));
    const hello: HelloMessage = {
      type: 'hello', protocol: NODE_PROTOCOL_VERSION, token: 'tok', nodeName: 'host1', labels: {}, engineId: 'e1', api: 'unix:///x', addr: '10.0.0.2', capacity: { ncpu: 1, memTotal: 1 }, version: '0',
    };
    ws.send(JSON.stringify(hello));
    await until(() => messages.some((m) => m.type === 'welcome'));
    for (const [seq, name] of [[7, 'web'], [8, 'nobody']] as const) ws.send(JSON.stringify({ type: 'resolve', seq, network: 'cluster', name } satisfies ResolveMessage));
    await until(() => messages.filter((m) => m.type === 'resolved').length === 2);
    assert.deepEqual(messages.filter((m) => m.type === 'resolved'), [{ type: 'resolved', seq: 7, ips: ['10.192.1.2', '10.192.2.2'] }, { type: 'resolved', seq: 8, ips: [] }]);
    assert.deepEqual(asked, ['cluster web', 'cluster nobody']);
  } finally {
    ws.close();
    await nodes.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), 'in time');
}
