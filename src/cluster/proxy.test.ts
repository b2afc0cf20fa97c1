import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../lib/errors.js';
import { clusterFor, parseProxyFlags } from './proxy.js';

const names = new Set(['a', 'b']);

test('a certificate reaches the cluster its CN or an OU is mapped to, else the one named as its CN, else as an OU', () => {
  assert.equal(clusterFor({ CN: 'a' }, {}, names), 'a');
  assert.equal(clusterFor({ CN: 'alice', OU: 'b' }, {}, names), 'b');
  assert.equal(clusterFor({ CN: 'alice', OU: ['ops', 'team-b'] }, { 'team-b': 'b' }, names), 'b');
  // a map beats a name: CN=a mapped to b reaches b
  assert.equal(clusterFor({ CN: 'a' }, { a: 'b' }, names), 'b');
  assert.equal(clusterFor({ CN: 'alice', OU: 'ops' }, { 'team-b': 'b' }, names), undefined);
  assert.equal(clusterFor({}, {}, names), undefined);
  // a key of Object's prototype is no map entry
  assert.equal(clusterFor({ CN: 'constructor' }, {}, names), undefined);
});

test('--cluster and --map are checked', () => {
  assert.deepEqual(parseProxyFlags(['a=http://127.0.0.1:2379,http://127.0.0.1:2381', 'b=http://10.0.0.1:2379'], ['team-b=b']), {
    clusters: [{ name: 'a', etcd: ['http://127.0.0.1:2379', 'http://127.0.0.1:2381'] }, { name: 'b', etcd: ['http://10.0.0.1:2379'] }],
    map: { 'team-b': 'b' },
  });
  for (const [clusters, maps] of [[[], []], [['a'], []], [['a=ftp://x'], []], [['a=http://x:1', 'a=http://y:1'], []], [['a=http://x:1'], ['k=b']], [['a=http://x:1'], ['k']]] as Array<[string[], string[]]>) {
    assert.throws(() => parseProxyFlags(clusters, maps), (err) => isCode(err, 'INVALID_ARGUMENT'), `${clusters} ${maps}`);
  }
});
