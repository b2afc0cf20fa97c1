import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScopeError, catalogScope, coversActions, expandActions, formatScope, formatScopes, intersectActions, parseScope, parseScopes } from './scope.js';

test('parseScope: repository, class, catalog, host:port names', () => {
  assert.deepEqual(parseScope('repository:samalba/my-app:pull,push'), { type: 'repository', name: 'samalba/my-app', actions: ['pull', 'push'] });
  assert.deepEqual(parseScope('repository(plugin):vieux/sshfs:pull'), { type: 'repository', class: 'plugin', name: 'vieux/sshfs', actions: ['pull'] });
  assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
  assert.deepEqual(parseScope('repository:localhost:5000/a/b:push'), { type: 'repository', name: 'localhost:5000/a/b', actions: ['push'] });
  // duplicates and empty actions collapse
  assert.deepEqual(parseScope('repository:a:pull,pull,').actions, ['pull']);
  assert.deepEqual(parseScope('repository:a:').actions, []);
});

test('parseScope: malformed scopes are refused', () => {
  for (const bad of ['', 'repository', 'repository:a', 'Repository:a:pull', 'repository(:a:pull', 'repository::pull', 'repository:a b:pull', 'repository:a:PULL', 'repository:a:pu*', 'repository:"a":pull', 'x'.repeat(2000) + ':a:pull']) {
    assert.throws(() => parseScope(bad), ScopeError, bad.slice(0, 40));
  }
});

test('parseScopes: several params, space-separated lists, merged per resource', () => {
  assert.deepEqual(parseScopes(undefined), []);
  assert.deepEqual(parseScopes(['repository:a:pull', 'repository:b:push registry:catalog:*', 'repository:a:push']), [
    { type: 'repository', name: 'a', actions: ['pull', 'push'] },
    { type: 'repository', name: 'b', actions: ['push'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  // a class makes a different resource
  assert.equal(parseScopes('repository:a:pull repository(plugin):a:pull').length, 2);
});

test('formatScope round-trips', () => {
  for (const s of ['repository:samalba/my-app:pull,push', 'repository(plugin):x/y:pull', 'registry:catalog:*', 'repository:localhost:5000/a:delete']) {
    assert.equal(formatScope(parseScope(s)), s);
  }
  assert.equal(formatScopes([parseScope('repository:a:pull'), catalogScope()]), 'repository:a:pull registry:catalog:*');
});

test('* means pull, push, delete for repositories; stays * for other types', () => {
  assert.deepEqual(expandActions('repository', ['*']), ['pull', 'push', 'delete']);
  assert.deepEqual(expandActions('repository', ['push', 'pull', 'push']), ['pull', 'push']);
  assert.deepEqual(expandActions('registry', ['*']), ['*']);
});

test('intersection of asked and allowed', () => {
  assert.deepEqual(intersectActions('repository', ['pull', 'push'], ['pull']), ['pull']);
  assert.deepEqual(intersectActions('repository', ['pull', 'push'], ['*']), ['pull', 'push']);
  assert.deepEqual(intersectActions('repository', ['*'], ['pull', 'push']), ['pull', 'push']);
  assert.deepEqual(intersectActions('repository', ['*'], ['*']), ['pull', 'push', 'delete']);
  assert.deepEqual(intersectActions('repository', ['delete'], ['pull', 'push']), []);
  assert.deepEqual(intersectActions('repository', ['pull', 'frobnicate'], ['pull']), ['pull']);
  assert.deepEqual(intersectActions('registry', ['*'], ['*']), ['*']);
  assert.deepEqual(intersectActions('registry', ['*'], []), []);
  assert.ok(coversActions('repository', ['*'], ['pull', 'delete']));
  assert.ok(!coversActions('repository', ['pull'], ['pull', 'push']));
  assert.ok(coversActions('repository', ['pull'], []));
});
