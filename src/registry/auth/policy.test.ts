import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Policy, PolicyError, globToRegExp } from './policy.js';
import { catalogScope, repositoryScope } from './scope.js';

const repo = (name: string) => repositoryScope(name, []);

test('defaults: authenticated may pull and push anything, delete nothing; anonymous nothing', () => {
  const p = new Policy();
  assert.deepEqual(p.allowed('bob', repo('any/thing')), ['pull', 'push']);
  assert.deepEqual(p.allowed(undefined, repo('any/thing')), []);
  assert.deepEqual(p.grant('bob', repositoryScope('x', ['pull', 'push', 'delete'])), ['pull', 'push']);
  assert.deepEqual(p.grant(undefined, repositoryScope('x', ['pull'])), []);
  // the catalog: any authenticated account, no anonymous client
  assert.deepEqual(p.allowed('bob', catalogScope()), ['*']);
  assert.deepEqual(p.allowed(undefined, catalogScope()), []);
  // unknown resource types get nothing
  assert.deepEqual(p.allowed('bob', { type: 'registry', name: 'other' }), []);
  assert.deepEqual(p.allowed('bob', { type: 'namespace', name: 'x' }), []);
});

test('rules: per user, any authenticated, anonymous; union of matching rules; defaults when none matches', () => {
  const p = new Policy({
    rules: [
      { user: 'alice', repos: 'alice/**', actions: ['pull', 'push', 'delete'] },
      { user: '*', repos: 'alice/**', actions: ['pull'] },
      { user: ['carol', 'dave'], repos: ['team/*', 'shared/?'], actions: ['*'] },
      { user: '*', repos: 'private/**', actions: [] },
      { anonymous: true, repos: 'public/*', actions: ['pull'] },
    ],
  });
  assert.deepEqual(p.allowed('alice', repo('alice/app')), ['pull', 'push', 'delete']);
  assert.deepEqual(p.allowed('alice', repo('alice/deep/app')), ['pull', 'push', 'delete']);
  assert.deepEqual(p.allowed('bob', repo('alice/app')), ['pull']);
  assert.deepEqual(p.allowed('bob', repo('bob/app')), ['pull', 'push']); // default
  assert.deepEqual(p.allowed('carol', repo('team/x')), ['pull', 'push', 'delete']);
  assert.deepEqual(p.allowed('carol', repo('team/x/y')), ['pull', 'push']); // * stays within a component: default
  assert.deepEqual(p.allowed('dave', repo('shared/a')), ['pull', 'push', 'delete']);
  assert.deepEqual(p.allowed('bob', repo('private/x')), []); // an empty grant overrides the default
  // anonymous grants, for anonymous clients and authenticated accounts alike
  assert.deepEqual(p.allowed(undefined, repo('public/app')), ['pull']);
  assert.deepEqual(p.allowed(undefined, repo('public/a/b')), []);
  assert.deepEqual(p.allowed(undefined, repo('alice/app')), []);
  assert.deepEqual(p.allowed('bob', repo('private/x')), []);
  assert.deepEqual(p.grant(undefined, repositoryScope('public/app', ['pull', 'push'])), ['pull']);
  assert.ok(p.hasAnonymousGrants);
  // repository(plugin) is a repository too
  assert.deepEqual(p.allowed('alice', { type: 'repository', class: 'plugin', name: 'alice/p' } as never), ['pull', 'push', 'delete']);
});

test('catalog config', () => {
  assert.deepEqual(new Policy({ catalog: { users: ['admin'] } }).allowed('bob', catalogScope()), []);
  assert.deepEqual(new Policy({ catalog: { users: ['admin'] } }).allowed('admin', catalogScope()), ['*']);
  assert.deepEqual(new Policy({ catalog: { anonymous: true } }).allowed(undefined, catalogScope()), ['*']);
  assert.deepEqual(new Policy({ defaultActions: ['pull'] }).allowed('bob', repo('x')), ['pull']);
});

test('invalid policies are refused with the path of the problem', () => {
  assert.throws(() => new Policy({ rules: [{ repos: 'a/*', actions: ['pull'] }] } as never), /rules\.0.*either `user` or `anonymous/);
  assert.throws(() => new Policy({ rules: [{ user: 'a', anonymous: true, repos: 'a/*', actions: ['pull'] }] } as never), PolicyError);
  assert.throws(() => new Policy({ rules: [{ user: 'a', repos: 'a/*', actions: ['write'] }] } as never), /rules\.0\.actions/);
  assert.throws(() => new Policy({ rules: [{ user: 'a', repos: 'a/(.*)', actions: ['pull'] }] } as never), /rules\.0\.repos/);
  assert.throws(() => new Policy({ rules: [{ user: 'a', repos: 'a/*', actions: ['pull'], extra: 1 }] } as never), PolicyError);
  assert.throws(() => new Policy({ rule: [] } as never), PolicyError);
});

test('globs', () => {
  const m = (p: string, s: string) => globToRegExp(p).test(s);
  assert.ok(m('a/*', 'a/b'));
  assert.ok(!m('a/*', 'a/b/c'));
  assert.ok(!m('a/*', 'ab/c'));
  assert.ok(m('a/**', 'a/b/c'));
  assert.ok(m('a/**/z', 'a/z'));
  assert.ok(m('a/**/z', 'a/b/c/z'));
  assert.ok(m('**', 'x/y'));
  assert.ok(m('a.b/c?', 'a.b/cd'));
  assert.ok(!m('a.b/c', 'aXb/c')); // dots are literal
  assert.ok(m('exact', 'exact'));
  assert.ok(!m('exact', 'exact/more'));
});
