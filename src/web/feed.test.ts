import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
