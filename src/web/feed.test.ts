import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LiveFeed } from './feed.js';
import { refusal, parseUiListen, LOGIN_PATH } from './server.js';

describe('LiveFeed', () => {
  it('answers only what changed since the last read: keyed items set or gone, values replaced', () => {
    const nodes = new Map([['a', { id: 'a', up: true }], ['b', { id: 'b', up: true }]]);
    let count = 1;
    const feed = new LiveFeed().add('nodes', { kind: 'keyed', read: () => nodes.values(), key: (n) => (n as { id: string }).id }).add('count', { kind: 'value', read: () => count });
    assert.deepEqual(feed.refresh(), { nodes: { upsert: [{ id: 'a', up: true }, { id: 'b', up: true }], remove: [] }, count: { value: 1 } });
    assert.deepEqual(feed.refresh(), {});
    nodes.set('b', { id: 'b', up: false });
    nodes.delete('a');
    count = 2;
    assert.deepEqual(feed.refresh(), { nodes: { upsert: [{ id: 'b', up: false }], remove: ['a'] }, count: { value: 2 } });
  });
});

describe('LiveFeed streams', () => {
  it('starts each watcher with a snapshot of every topic, then the deltas', async () => {
    const nodes = new Map([['a', { id: 'a', n: 1 }]]);
    const feed = new LiveFeed(50).add('summary', { kind: 'value', read: () => ({ nodes: nodes.size }) }).add('nodes', { kind: 'keyed', read: () => nodes.values(), key: (x) => (x as { id: string }).id });
    const server = http.createServer((_req, res) => feed.subscribe(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const next = async (): Promise<{ event: string; data: unknown }> => {
        for (;;) {
          const at = text.indexOf('\n\n');
          if (at >= 0) {
            const block = text.slice(0, at);
            text = text.slice(at + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) return { event, data: JSON.parse(data) };
            continue;
          }
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          text += value;
        }
      };
      assert.deepEqual(await next(), { event: 'snapshot', data: { summary: { nodes: 1 }, nodes: [{ id: 'a', n: 1 }] } });
      nodes.set('b', { id: 'b', n: 2 });
      assert.deepEqual(await next(), { event: 'delta', data: { summary: { value: { nodes: 2 } }, nodes: { upsert: [{ id: 'b', n: 2 }], remove: [] } } });
      await reader.cancel();
    } finally {
      feed.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('the browsers listener rules', () => {
  it('lets a read-only token read and check itself, and nothing else', () => {
    assert.equal(refusal('read', 'GET', '/containers/json'), undefined);
    assert.equal(refusal('read', 'POST', LOGIN_PATH), undefined);
    assert.ok(refusal('read', 'POST', '/containers/create'));
    assert.ok(refusal('read', 'DELETE', '/sampan/v1/nodes/x'));
    assert.equal(refusal('admin', 'POST', '/sampan/v1/releases/web/confirm'), undefined);
  });

  it('parses HOST:PORT', () => {
    assert.deepEqual(parseUiListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseUiListen('[::1]:0'), { host: '::1', port: 0 });
    assert.throws(() => parseUiListen('8080'));
  });
});
