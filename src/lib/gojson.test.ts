import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goFields } from './gojson.js';

interface Cfg {
  DetachKeys: string;
  Tty: boolean;
}
const FIELDS = ['DetachKeys', 'Tty'] as const;

test('goFields matches keys to fields ignoring case, as Go decodes JSON', () => {
  assert.deepEqual(goFields<Cfg>({ detachKeys: 'ctrl-x,x', TTY: true }, FIELDS), { DetachKeys: 'ctrl-x,x', Tty: true });
  // unknown keys stay as sent
  assert.deepEqual(goFields<Cfg>({ Other: 1 }, FIELDS), { Other: 1 });
});

test('goFields: a later key for the same field wins, as in Go', () => {
  assert.deepEqual(goFields<Cfg>({ DetachKeys: 'ctrl-x,x', detachkeys: 'ctrl-y' }, FIELDS), { DetachKeys: 'ctrl-y' });
  assert.deepEqual(goFields<Cfg>({ detachkeys: 'ctrl-y', DetachKeys: 'ctrl-x,x' }, FIELDS), { DetachKeys: 'ctrl-x,x' });
});

test('goFields: no object is no fields', () => {
  assert.deepEqual(goFields<Cfg>(undefined, FIELDS), {});
  assert.deepEqual(goFields<Cfg>(null, FIELDS), {});
  assert.deepEqual(goFields<Cfg>([1], FIELDS), {});
});
