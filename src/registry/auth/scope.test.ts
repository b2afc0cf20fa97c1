import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
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

// ---- properties

const type = fc.stringMatching(/^[a-z0-9]{1,12}$/);
const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*){0,3}$/),
  fc.tuple(fc.stringMatching(/^[a-z0-9.-]{1,20}$/), fc.nat(65535), fc.stringMatching(/^[a-z0-9/_.-]{1,20}$/)).map(([h, p, n]) => `${h}:${p}/${n}`),
);
const scope = fc.record(
  { type, class: fc.stringMatching(/^[a-z0-9]{1,8}$/), name, actions: fc.uniqueArray(fc.oneof(fc.constantFrom('pull', 'push', 'delete', '*'), fc.stringMatching(/^[a-z]{1,8}$/)), { maxLength: 4 }) },
  { requiredKeys: ['type', 'name', 'actions'], noNullPrototype: true },
);

test('property: a scope reads back as written; several, space-separated, too', () => {
  fc.assert(fc.property(scope, (s) => assert.deepEqual(parseScope(formatScope(s)), s)), { numRuns: 2000 });
  fc.assert(
    fc.property(fc.uniqueArray(scope, { maxLength: 4, selector: (s) => `${s.type}(${s.class ?? ''})${s.name}` }), (list) => {
      assert.deepEqual(parseScopes(formatScopes(list)), list);
    }),
  );
});

test('property: any text parses to a well-formed scope or throws ScopeError', () => {
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: fc.constantFrom('repository', '(', ')', ':', ',', '/', 'a', '*', 'pull', ' ', '\n', '"', 'A', '.') }),
    scope.map(formatScope).chain((s) => fc.tuple(fc.nat(s.length), fc.string({ maxLength: 2 })).map(([i, x]) => s.slice(0, i) + x + s.slice(i))),
  );
  fc.assert(
    fc.property(text, (t) => {
      let s;
      try {
        s = parseScopes(t);
      } catch (err) {
        assert.ok(err instanceof ScopeError, String(err));
        return;
      }
      for (const r of s) {
        assert.match(r.type, /^[a-z0-9]+$/);
        assert.match(r.name, /^[A-Za-z0-9._\-/:]+$/, 'no spaces, quotes or control characters reach a token');
        for (const a of r.actions) assert.match(a, /^(?:[a-z]+|\*)$/);
        assert.equal(parseScope(formatScope(r)).name, r.name);
      }
    }),
    { numRuns: 3000 },
  );
});

test('property: an intersection never grants what was not both asked and allowed', () => {
  const actions = fc.array(fc.constantFrom('pull', 'push', 'delete', '*', 'x', ''), { maxLength: 5 });
  fc.assert(
    fc.property(fc.constantFrom('repository', 'registry'), actions, actions, (t, asked, allowed) => {
      const got = intersectActions(t, asked, allowed);
      assert.ok(coversActions(t, asked, got) && coversActions(t, allowed, got));
      if (t === 'repository') assert.ok(!got.includes('*'));
      assert.equal(new Set(got).size, got.length);
    }),
  );
});
